//! Real binaries as child processes: started with their output captured (in memory, or
//! stderr into a log file), awaited until they print `READY <value>` on stdout, and
//! killed when dropped.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use anyhow::{Context as _, bail};
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, BufReader},
    process::{Child, Command},
    sync::watch,
};

/// How many lines of a child's output are kept.
pub const MAX_LINES: usize = 2000;

/// A free port on 127.0.0.1 (bound, read, released), for a child that must be told its
/// port before it starts.
///
/// # Panics
/// When no port can be bound.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Lines printed by a child, shared with the tasks that read its pipes.
#[derive(Debug, Clone, Default)]
pub struct Output {
    lines: Arc<Mutex<Vec<String>>>,
}

impl Output {
    fn push(&self, line: String) {
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        if lines.len() == MAX_LINES {
            lines.remove(0);
        }
        lines.push(line);
    }

    /// Every line kept so far, stdout and stderr interleaved (stderr prefixed `! `).
    pub fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The last `n` lines, joined for a failure report.
    pub fn tail(&self, n: usize) -> String {
        let lines = self.lines();
        let start = lines.len().saturating_sub(n);
        lines[start..].join("\n")
    }
}

/// How to start a child that announces itself with a `READY <value>` line.
#[derive(Debug)]
pub struct Spawn {
    name: String,
    command: Command,
    stderr_log: Option<PathBuf>,
    stdin_open: bool,
    ready_timeout: Duration,
}

impl Spawn {
    /// `command`, called `name` in errors.
    pub fn new(name: &str, command: Command) -> Self {
        Self {
            name: name.to_string(),
            command,
            stderr_log: None,
            stdin_open: false,
            ready_timeout: Duration::from_secs(30),
        }
    }

    /// Writes stderr to the file `log` (created, with its directory) instead of keeping it
    /// in [`Output`].
    pub fn stderr_to(mut self, log: &Path) -> Self {
        self.stderr_log = Some(log.to_path_buf());
        self
    }

    /// Keeps a pipe on stdin open for as long as the child runs, so that a child that
    /// exits on end of input does not outlive a test process killed before it could
    /// kill the child.
    pub fn keep_stdin_open(mut self) -> Self {
        self.stdin_open = true;
        self
    }

    /// How long to wait for `READY` (default 30 s).
    pub fn ready_within(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Starts the child and waits for its `READY <value>` line.
    ///
    /// # Errors
    /// When it cannot start, exits before it is ready, or is not ready in time: the
    /// error names it and carries its last output lines or its log file.
    pub async fn start(self) -> anyhow::Result<Process> {
        let Self {
            name,
            mut command,
            stderr_log,
            stdin_open,
            ready_timeout,
        } = self;
        let stderr = match &stderr_log {
            Some(log) => {
                if let Some(dir) = log.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let file = std::fs::File::create(log)
                    .with_context(|| format!("creating the log file {}", log.display()))?;
                Stdio::from(file)
            }
            None => Stdio::piped(),
        };
        command
            .stdin(if stdin_open {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("{name}: cannot start {:?}", command.as_std()))?;
        let pid = child.id().context("the child has no pid")?;
        let output = Output::default();
        let (ready_tx, mut ready_rx) = watch::channel(None::<String>);
        pipe_lines(
            child.stdout.take().context("no piped stdout")?,
            output.clone(),
            "",
            Some(ready_tx),
        );
        if let Some(stderr) = child.stderr.take() {
            pipe_lines(stderr, output.clone(), "! ", None);
        }
        let see = |output: &Output| match &stderr_log {
            Some(log) => format!("see {}", log.display()),
            None => format!("output:\n{}", output.tail(40)),
        };
        let waited = tokio::time::timeout(ready_timeout, async {
            loop {
                if let Some(value) = ready_rx.borrow_and_update().clone() {
                    return Some(value);
                }
                if ready_rx.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await;
        match waited {
            Ok(Some(ready)) => Ok(Process {
                name,
                ready,
                output,
                child,
                pid,
            }),
            Ok(None) => {
                let status = child
                    .wait()
                    .await
                    .map_or_else(|_| "unknown status".into(), |s| s.to_string());
                bail!(
                    "{name}: exited before it was ready ({status}); {}",
                    see(&output)
                )
            }
            Err(_) => bail!(
                "{name}: not ready after {ready_timeout:?}; {}",
                see(&output)
            ),
        }
    }
}

/// A running child process; killed when dropped.
#[derive(Debug)]
pub struct Process {
    name: String,
    ready: String,
    output: Output,
    child: Child,
    pid: u32,
}

impl Process {
    /// Its name, as used in errors.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value of its `READY` line (a URL, usually).
    pub fn ready(&self) -> &str {
        &self.ready
    }

    /// Its output so far.
    pub fn output(&self) -> &Output {
        &self.output
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Fails if it has exited.
    ///
    /// # Errors
    /// Naming it and its exit status.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited ({status})", self.name);
        }
        Ok(())
    }

    /// Kills it and waits (up to 5 s) for it to go.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

fn pipe_lines(
    pipe: impl AsyncRead + Unpin + Send + 'static,
    output: Output,
    prefix: &'static str,
    ready: Option<watch::Sender<Option<String>>>,
) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(tx) = &ready
                && tx.borrow().is_none()
                && let Some(value) = line.strip_prefix("READY ")
            {
                tx.send_replace(Some(value.trim().to_string()));
            }
            output.push(format!("{prefix}{line}"));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        command
    }

    #[test]
    fn output_keeps_the_last_lines() {
        let output = Output::default();
        for i in 0..MAX_LINES + 5 {
            output.push(format!("line {i}"));
        }
        assert_eq!(output.lines().len(), MAX_LINES);
        assert_eq!(
            output.tail(2),
            format!("line {}\nline {}", MAX_LINES + 3, MAX_LINES + 4)
        );
    }

    #[tokio::test]
    async fn waits_for_ready_keeps_output_and_kills_on_drop() {
        let mut child = Spawn::new(
            "echoer",
            sh("echo starting; echo oops >&2; echo 'READY http://x'; echo after; sleep 30"),
        )
        .start()
        .await
        .unwrap();
        assert_eq!(child.ready(), "http://x");
        assert!(child.is_running());
        tokio::time::sleep(Duration::from_millis(200)).await;
        let lines = child.output().lines();
        for line in ["starting", "! oops", "READY http://x", "after"] {
            assert!(lines.iter().any(|l| l == line), "{line} in {lines:?}");
        }
        let pid = child.pid();
        drop(child);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for its parent to reap it: not running either way.
        assert!(state.is_empty() || state.contains(") Z"), "{state}");
    }

    #[tokio::test]
    async fn an_early_exit_or_a_silent_child_is_a_clear_error() {
        let error = Spawn::new("quitter", sh("echo 'no luck' >&2; exit 3"))
            .start()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("quitter: exited before it was ready"),
            "{error}"
        );
        assert!(error.contains("no luck"), "{error}");

        let log = std::env::temp_dir().join(format!("testkit-silent-{}.log", std::process::id()));
        let error = Spawn::new("silent", sh("echo to-the-log >&2; sleep 30"))
            .stderr_to(&log)
            .ready_within(Duration::from_millis(500))
            .start()
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("silent: not ready after"), "{error}");
        assert!(error.contains(&log.display().to_string()), "{error}");
        assert!(
            std::fs::read_to_string(&log)
                .unwrap()
                .contains("to-the-log")
        );
        std::fs::remove_file(&log).unwrap();
    }
}
