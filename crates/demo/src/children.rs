//! Child processes: spawned from this same executable with a subcommand, their output
//! forwarded line by line with a `[name]` prefix, waited on until their port answers
//! HTTP, and all stopped together (also when this process is interrupted or fails:
//! every child is killed when its handle is dropped).

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::io::{
    AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWriteExt as _, BufReader,
};
use tokio::process::{Child, Command};

/// Log filter of the children unless `RUST_LOG` says otherwise.
pub const CHILD_LOG_FILTER: &str =
    "warn,dev_idp=info,mcp_resource_server=info,resource_server=info";

/// The running children.
#[derive(Default)]
pub struct Children {
    list: Vec<(String, Child)>,
    /// When a child's line was last forwarded.
    last_line: Arc<Mutex<Option<Instant>>>,
}

fn forward(
    name: &str,
    stream: impl AsyncRead + Unpin + Send + 'static,
    last_line: Arc<Mutex<Option<Instant>>>,
) {
    let name = name.to_owned();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            // One write per line: `eprintln!` writes its pieces separately, and the
            // client, writing to the same stderr, could cut a forwarded line in two.
            let text = format!("[{name}] {line}\n");
            let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), text.as_bytes());
            if let Ok(mut last) = last_line.lock() {
                *last = Some(Instant::now());
            }
        }
    });
}

impl Children {
    /// Starts `exe args...` as the child `name`.
    pub fn spawn(&mut self, name: &str, exe: &Path, args: &[String]) -> anyhow::Result<()> {
        tracing::debug!(name, ?args, "starting");
        let mut command = Command::new(exe);
        if !std::io::stderr().is_terminal() {
            command.env("NO_COLOR", "1");
        }
        if std::env::var_os("RUST_LOG").is_none() {
            // The servers' own decisions, without the MCP library's per-message chatter.
            command.env("RUST_LOG", CHILD_LOG_FILTER);
        }
        let mut child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start the {name}"))?;
        if let Some(out) = child.stdout.take() {
            forward(name, out, self.last_line.clone());
        }
        if let Some(err) = child.stderr.take() {
            forward(name, err, self.last_line.clone());
        }
        self.list.push((name.to_owned(), child));
        Ok(())
    }

    /// Fails if a child has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        for (name, child) in &mut self.list {
            if let Some(status) = child.try_wait()? {
                bail!("the {name} stopped unexpectedly ({status})");
            }
        }
        Ok(())
    }

    /// Waits until `addr` answers an HTTP request, failing if any child exits first. A
    /// port accepts connections as soon as it is bound, which may be before its server
    /// serves (dev-idp makes its signing keys in between); an answer means it serves, and
    /// that it has logged that it is ready.
    pub async fn wait_ready(
        &mut self,
        name: &str,
        addr: SocketAddr,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        self.wait_until(name, addr, timeout, Probe::Http).await
    }

    /// Waits until `addr` accepts TCP connections, for a server that does not speak
    /// HTTP (redis-server), failing if any child exits first.
    pub async fn wait_listening(
        &mut self,
        name: &str,
        addr: SocketAddr,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        self.wait_until(name, addr, timeout, Probe::Tcp).await
    }

    async fn wait_until(
        &mut self,
        name: &str,
        addr: SocketAddr,
        timeout: Duration,
        probe: Probe,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            let up = match probe {
                Probe::Http => answers_http(addr).await,
                Probe::Tcp => tokio::net::TcpStream::connect(addr).await.is_ok(),
            };
            if up {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the {name} did not start serving on {addr} within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the children have been quiet for a moment (at most a second), so that
    /// what they print on start (`[idp] ... ready`) comes before what follows, not in the
    /// middle of the client's trace: a port accepts connections before its server has
    /// logged that it is ready.
    pub async fn settle(&self) {
        const QUIET: Duration = Duration::from_millis(150);
        let deadline = Instant::now() + Duration::from_secs(1);
        let start = Instant::now();
        while Instant::now() < deadline {
            let last = self.last_line.lock().ok().and_then(|l| *l).unwrap_or(start);
            if last.elapsed() >= QUIET {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Stops every child and waits for it.
    pub async fn stop_all(&mut self) {
        for (name, child) in &mut self.list {
            if let Err(e) = child.start_kill() {
                tracing::debug!(name, error = %e, "already stopped");
            }
        }
        for (_, child) in &mut self.list {
            let _ = child.wait().await;
        }
        self.list.clear();
    }
}

/// How a child's readiness is seen.
#[derive(Clone, Copy)]
enum Probe {
    Http,
    Tcp,
}

/// Whether `addr` answers a plain HTTP/1.1 request with anything at all, within 5 s.
async fn answers_http(addr: SocketAddr) -> bool {
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut first = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), stream.read(&mut first)).await,
        Ok(Ok(1))
    )
}

/// Runs `exe args...` in the foreground (inheriting the terminal) and returns its status.
pub async fn run_foreground(exe: &Path, args: &[String]) -> anyhow::Result<ExitStatus> {
    let mut child = Command::new(exe)
        .args(args)
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the client")?;
    Ok(child.wait().await?)
}
