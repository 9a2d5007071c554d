//! The servers under test as child processes: the project's resource server (this
//! binary re-executed with the `resource-server` subcommand) and the official TypeScript
//! SDK server (`interop/ts-server.mjs` on the pinned Node.js). Both print `READY <url>`
//! once they listen. Their memory is read from `/proc/<pid>/status`; the peak is reset
//! between cases through `/proc/<pid>/clear_refs`. Their CPU time (every thread, user
//! and system) is read from `/proc/<pid>/stat`.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, bail};
use testkit::process::{Process, Spawn, free_port};
use tokio::process::Command;

/// Resident memory of a process, in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the peak since start or since the last [`Server::reset_peak`].
    pub peak_kib: u64,
}

/// `utime` + `stime` of a `/proc/<pid>/stat` line (fields 14 and 15, in clock ticks).
fn cpu_time_of(stat: &str) -> anyhow::Result<Duration> {
    // The command name (field 2) is in parentheses and may hold spaces or parentheses.
    let after_name = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .context("no command name")?;
    // `after_name` starts with field 3 (`state`).
    let mut fields = after_name.split_whitespace().skip(14 - 3);
    let mut ticks =
        || -> anyhow::Result<u64> { Ok(fields.next().context("too few fields")?.parse()?) };
    let ticks = ticks()? + ticks()?;
    let per_second = rustix::param::clock_ticks_per_second();
    anyhow::ensure!(per_second > 0, "no clock tick rate");
    Ok(Duration::from_micros(ticks * 1_000_000 / per_second))
}

/// A server running as a child process; killed when dropped.
#[derive(Debug)]
pub struct Server {
    /// Short name for reports.
    pub name: String,
    /// Its MCP endpoint, as printed after `READY`.
    pub mcp_url: String,
    process: Process,
    pid: u32,
    log: PathBuf,
}

impl Server {
    /// Resident memory now and at its peak.
    ///
    /// # Errors
    /// When `/proc` cannot be read (the process is gone).
    pub fn memory(&self) -> anyhow::Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .with_context(|| format!("{} is not running", self.name))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok(Memory {
            rss_kib: field("VmRSS:"),
            peak_kib: field("VmHWM:"),
        })
    }

    /// CPU time used so far by every thread of the process, user and system.
    ///
    /// # Errors
    /// When `/proc` cannot be read (the process is gone) or is not understood.
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .with_context(|| format!("{} is not running", self.name))?;
        cpu_time_of(&stat).with_context(|| format!("reading /proc/{}/stat", self.pid))
    }

    /// Resets the peak (`VmHWM`) to the current resident size.
    ///
    /// # Errors
    /// When the kernel refuses (then peaks cover the whole process lifetime).
    pub fn reset_peak(&self) -> anyhow::Result<()> {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5")
            .with_context(|| format!("resetting the peak RSS of {}", self.name))
    }

    /// Fails if the process has exited.
    ///
    /// # Errors
    /// Naming the server, its exit status and its log file.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        let log = self.log.display();
        self.process
            .check_alive()
            .with_context(|| format!("see {log}"))
    }

    /// The host and port of the MCP URL.
    pub fn authority(&self) -> &str {
        let rest = self
            .mcp_url
            .strip_prefix("http://")
            .unwrap_or(&self.mcp_url);
        rest.split('/').next().unwrap_or(rest)
    }

    /// Stops the process and waits for it.
    pub async fn stop(self) {
        self.process.stop().await;
    }
}

/// Starts `command` (stderr into `log`) and waits for its `READY <url>` line.
pub(crate) async fn spawn_ready(
    name: &str,
    command: Command,
    log: &Path,
) -> anyhow::Result<Server> {
    let process = Spawn::new(name, command).stderr_to(log).start().await?;
    Ok(Server {
        name: name.to_string(),
        mcp_url: process.ready().to_string(),
        pid: process.pid(),
        process,
        log: log.to_path_buf(),
    })
}

/// How the resource server is run.
#[derive(Debug, Clone, Default)]
pub struct ResourceServerOptions {
    /// Authorization off (`--no-auth`): the ceiling.
    pub no_auth: bool,
    /// Capacity of the verified-token cache; `None` keeps the server's default.
    pub token_cache: Option<usize>,
    /// `RUST_LOG` of the server [default: [`DEFAULT_LOG_FILTER`], or the harness's own
    /// `RUST_LOG` when set].
    pub log_filter: Option<String>,
    /// The binary with the `resource-server` subcommand [default: this executable].
    pub exe: Option<PathBuf>,
    /// More `resource-server` flags.
    pub extra_args: Vec<String>,
}

/// The resource server's log filter under load: its own INFO lines, but not rmcp's, which
/// logs three INFO lines per stateless request (`Service initialized as server`, `input
/// stream terminated`, `serve finished`).
pub const DEFAULT_LOG_FILTER: &str = "info,rmcp=warn";

/// Starts the project's resource server against `issuer`, stateless with JSON replies.
///
/// # Errors
/// When it does not become ready.
pub async fn start_resource_server(
    name: &str,
    issuer: &str,
    options: &ResourceServerOptions,
    log: &Path,
) -> anyhow::Result<Server> {
    let port = free_port();
    let mut command = harness_command(options.exe.as_deref())?;
    command
        .arg("resource-server")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--public-url", &format!("http://127.0.0.1:{port}")])
        .args(["--issuer", issuer])
        .args(["--stateless", "--jwks-min-refetch", "1"]);
    if options.no_auth {
        command.arg("--no-auth");
    }
    command.args(&options.extra_args);
    if let Some(capacity) = options.token_cache {
        command.args(["--token-cache", &capacity.to_string()]);
    }
    match (&options.log_filter, std::env::var("RUST_LOG")) {
        (Some(filter), _) => command.env("RUST_LOG", filter),
        (None, Ok(filter)) => command.env("RUST_LOG", filter),
        (None, Err(_)) => command.env("RUST_LOG", DEFAULT_LOG_FILTER),
    };
    spawn_ready(name, command, log).await
}

/// A command running the binary with the harness's components (`exe`, by default this
/// executable: the harness re-executes itself).
pub(crate) fn harness_command(exe: Option<&Path>) -> anyhow::Result<Command> {
    let exe = match exe {
        Some(exe) => exe.to_path_buf(),
        None => std::env::current_exe().context("locating the harness binary")?,
    };
    Ok(Command::new(exe))
}

/// Starts the bare axum SSE reference server (see `bench bare-sse`).
///
/// # Errors
/// When it does not become ready.
pub async fn start_bare_sse(exe: Option<&Path>, log: &Path) -> anyhow::Result<Server> {
    let mut command = harness_command(exe)?;
    command.args(["bare-sse", "--listen", "127.0.0.1:0"]);
    spawn_ready("bare axum SSE server", command, log).await
}

/// Starts the bare axum HTTP reference server (see `bench bare-http`).
///
/// # Errors
/// When it does not become ready.
pub async fn start_bare_http(exe: Option<&Path>, log: &Path) -> anyhow::Result<Server> {
    let mut command = harness_command(exe)?;
    command.args(["bare-http", "--listen", "127.0.0.1:0"]);
    spawn_ready("bare axum HTTP server", command, log).await
}

/// Starts the TypeScript SDK server (`interop/ts-server.mjs`) against `issuer`.
///
/// # Errors
/// When the SDK is not installed or the server does not become ready.
pub async fn start_ts_server(
    node: &Path,
    repo: &Path,
    issuer: &str,
    log: &Path,
) -> anyhow::Result<Server> {
    let script = repo.join("interop/ts-server.mjs");
    let sdk = repo.join("interop/node_modules/@modelcontextprotocol/sdk/package.json");
    if !sdk.exists() {
        bail!(
            "the TypeScript SDK is not installed (missing {}); run `npm ci --prefix interop`",
            sdk.display()
        );
    }
    let port = free_port();
    let mut command = Command::new(node);
    command
        .arg(&script)
        .arg(port.to_string())
        .env("AS_ISSUER", issuer)
        .env("TS_HOST", "127.0.0.1")
        .env("NODE_ENV", "production")
        .current_dir(repo.join("interop"));
    spawn_ready("TypeScript SDK server", command, log).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_user_plus_system() {
        // A command name with a space and a parenthesis; utime 250, stime 150 ticks.
        let stat = "4242 (node (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 7 0 12345 1000000 2000 18446744073709551615";
        let ticks = rustix::param::clock_ticks_per_second();
        assert_eq!(
            cpu_time_of(stat).unwrap(),
            Duration::from_micros(400 * 1_000_000 / ticks)
        );
        assert!(cpu_time_of("4242 (cut").is_err());
        assert!(cpu_time_of("4242 (x) S 1 2").is_err());
    }
}
