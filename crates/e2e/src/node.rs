//! Locating the pinned Node.js peers and running them as child processes.
//!
//! A long-running peer ([`NodePeer`]) prints `READY <url>` on stdout once it listens;
//! every later stdout line (such as the authorization server's `EVENT ...` lines) and
//! every stderr line is kept for assertions and for failure reports (the test kit's
//! process runner does the starting, the waiting and the capture). The child is killed
//! when the [`NodePeer`] is dropped. A one-shot script ([`run_script`]) is awaited with a
//! timeout and its output returned.

use std::{path::PathBuf, process::Stdio, time::Duration};

use anyhow::Context;
pub use testkit::process::Output;
use testkit::process::{Process, Spawn};
use tokio::process::Command;

/// The `interop/` directory of the repository.
pub fn interop_dir() -> PathBuf {
    testkit::node::interop_dir()
}

/// The pinned Node.js 22 binary, after checking that every pinned package is installed.
///
/// # Errors
/// When something is missing, with the command that installs it.
pub fn node_binary() -> anyhow::Result<PathBuf> {
    testkit::node::node_binary(&interop_dir())
}

/// A long-running Node.js peer, killed on drop (and ending by itself when this process
/// dies, as its stdin then closes).
#[derive(Debug)]
pub struct NodePeer {
    process: Process,
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
            .env("EXIT_ON_STDIN_EOF", "1");
        let process = Spawn::new(name, command).keep_stdin_open().start().await?;
        Ok(Self { process })
    }

    /// The peer's name, as used in failure reports.
    pub fn name(&self) -> &str {
        self.process.name()
    }

    /// The value of the `READY` line (the peer's URL).
    pub fn ready(&self) -> &str {
        self.process.ready()
    }

    /// The peer's output.
    pub fn output(&self) -> &Output {
        self.process.output()
    }

    /// The `EVENT ...` lines printed so far, without the `EVENT ` prefix.
    pub fn events(&self) -> Vec<String> {
        self.output()
            .lines()
            .into_iter()
            .filter_map(|l| l.strip_prefix("EVENT ").map(str::to_string))
            .collect()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
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
