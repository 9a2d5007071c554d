//! The client's start-up and full flow, against the TypeScript SDK client (T6 in the
//! report). `dev-idp --mcp-ready --auto-login` is the local authorization server and
//! the project's resource server sits in front of it. Measured, as whole processes from
//! spawn to exit:
//!
//! - `mcp-client call` with a cached token (process start to the `tools/call` result);
//! - the full headless flow (discovery, registration, authorization, token, initialize,
//!   call) by `mcp-client --headless --no-cache` and by the official TypeScript SDK
//!   client (`interop/ts-client.mjs`), alternately, in the same run.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use tokio::process::Command;

use crate::procs::{self, ResourceServerOptions, Server};

/// Timings of the client case, in milliseconds.
#[derive(Debug, Clone, Default)]
pub struct ClientResult {
    /// `mcp-client call` with a cached token, each run.
    pub cached_ms: Vec<f64>,
    /// The project's full headless flow, each run.
    pub ours_full_ms: Vec<f64>,
    /// The TypeScript SDK client's full flow, each run.
    pub ts_full_ms: Vec<f64>,
}

/// The median of `values` (NaN when empty).
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

/// Builds `mcp-client` and `dev-idp` in release mode next to this binary (a no-op when
/// they are up to date) and returns the directory holding them.
///
/// # Errors
/// When cargo fails or the binaries are missing.
pub async fn build_binaries(repo: &Path) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .context("the harness binary has no directory")?
        .to_path_buf();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let profile = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("release")
        .to_string();
    let mut command = Command::new(cargo);
    command
        .current_dir(repo)
        .args(["build", "--quiet", "-p", "mcp-auth-client", "-p", "dev-idp"])
        .stdin(Stdio::null());
    if profile == "release" {
        command.arg("--release");
    }
    let status = command.status().await.context("running cargo build")?;
    if !status.success() {
        bail!("cargo build -p mcp-auth-client -p dev-idp failed ({status})");
    }
    for bin in ["mcp-client", "dev-idp"] {
        anyhow::ensure!(
            dir.join(bin).exists(),
            "{} was not built",
            dir.join(bin).display()
        );
    }
    Ok(dir)
}

struct DevIdp {
    child: tokio::process::Child,
    issuer: String,
}

async fn start_dev_idp(bin: &Path, repo: &Path, log: &Path) -> anyhow::Result<DevIdp> {
    let port = testkit::process::free_port();
    let issuer = format!("http://127.0.0.1:{port}/dex");
    let log_file = std::fs::File::create(log)?;
    let child = Command::new(bin.join("dev-idp"))
        .args([
            "--config",
            &repo.join("dex-config.yaml").display().to_string(),
        ])
        .args(["--issuer", &issuer])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--mcp-ready", "--auto-login", "alice@example.com"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log_file))
        .kill_on_drop(true)
        .spawn()
        .context("starting dev-idp")?;
    // Ready when its metadata answers.
    let started = Instant::now();
    loop {
        let addr = format!("127.0.0.1:{port}").parse()?;
        if let Ok(mut stream) = crate::raw::connect(addr).await {
            let request = crate::raw::request(
                "GET",
                "/dex/.well-known/openid-configuration",
                &format!("127.0.0.1:{port}"),
                &[],
                "",
            );
            if let Ok(response) = crate::raw::exchange(&mut stream, &request).await
                && crate::raw::status_of(&response) == Some(200)
            {
                break;
            }
        }
        if started.elapsed() > Duration::from_secs(20) {
            bail!("dev-idp did not answer within 20 s; see {}", log.display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(DevIdp { child, issuer })
}

/// Runs a command to completion and returns its wall time in ms, checking its output.
async fn timed(mut command: Command, what: &str, expect: &str) -> anyhow::Result<f64> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let start = Instant::now();
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .with_context(|| format!("{what} did not finish within 60 s"))?
        .with_context(|| format!("starting {what}"))?;
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || !stdout.contains(expect) {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: String = stderr
            .lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join(" / ");
        bail!(
            "{what} failed ({}): {} {}",
            output.status,
            stdout.trim(),
            tail
        );
    }
    Ok(ms)
}

/// Runs the client case: `runs` timed runs of each kind, with the binaries in `bin`
/// (see [`build_binaries`]).
///
/// # Errors
/// When a component does not start or a client run fails.
pub async fn run(
    repo: &Path,
    bin: &Path,
    out_dir: &Path,
    node: &Path,
    runs: usize,
) -> anyhow::Result<ClientResult> {
    let idp = start_dev_idp(bin, repo, &out_dir.join("dev-idp.log")).await?;
    let rs: Server = procs::start_resource_server(
        "resource server (client case)",
        &idp.issuer,
        &ResourceServerOptions::default(),
        &out_dir.join("resource-server-client.log"),
    )
    .await?;
    let url = rs.mcp_url.clone();
    let cache_dir = out_dir.join("client-cache");
    let _ = std::fs::remove_dir_all(&cache_dir);
    std::fs::create_dir_all(&cache_dir)?;
    let client = bin.join("mcp-client");
    let call_args = [
        "call",
        url.as_str(),
        "calculator",
        "operation=add",
        "a=2",
        "b=3",
    ];

    let mut result = ClientResult::default();
    // Warm-up: one full flow of each (first-run costs such as Node's module cache), which
    // also fills the cache of the cached-token runs.
    let mut login = Command::new(&client);
    login
        .args(["--headless", "--quiet", "--cache-dir"])
        .arg(&cache_dir)
        .args(call_args);
    timed(login, "mcp-client (login)", "5").await?;
    let mut warm_ts = Command::new(node);
    warm_ts
        .arg(repo.join("interop/ts-client.mjs"))
        .arg(&url)
        .current_dir(repo.join("interop"));
    timed(warm_ts, "ts-client.mjs", "\"ok\":true").await?;

    for _ in 0..runs {
        let mut cached = Command::new(&client);
        cached
            .args(["--quiet", "--cache-dir"])
            .arg(&cache_dir)
            .args(call_args);
        result
            .cached_ms
            .push(timed(cached, "mcp-client (cached token)", "5").await?);
    }
    for _ in 0..runs {
        let mut ours = Command::new(&client);
        ours.args(["--headless", "--no-cache", "--quiet"])
            .args(call_args);
        result
            .ours_full_ms
            .push(timed(ours, "mcp-client (full flow)", "5").await?);
        let mut ts = Command::new(node);
        ts.arg(repo.join("interop/ts-client.mjs"))
            .arg(&url)
            .current_dir(repo.join("interop"));
        result
            .ts_full_ms
            .push(timed(ts, "ts-client.mjs (full flow)", "\"ok\":true").await?);
    }
    rs.stop().await;
    drop(idp.child);
    let _ = std::fs::remove_dir_all(&cache_dir);
    Ok(result)
}
