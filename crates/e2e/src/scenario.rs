//! Steps of an interoperability scenario, each attributed to a peer.
//!
//! [`Scenario::step`] runs one step with a time limit. When it fails (or times out), the
//! error names the scenario, the peer and the step, and carries the recent output of
//! every watched peer, so a red test says at once who broke and where.

use std::{fmt, future::Future, time::Duration};

use crate::node::Output;

/// The error a scenario test returns: its `Debug` (what the test harness prints) is the
/// chain of messages, peer and step first, without a backtrace.
pub struct Failure(anyhow::Error);

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chain = self.0.chain();
        if let Some(first) = chain.next() {
            write!(f, "{first}")?;
        }
        for cause in chain {
            write!(f, "\ncaused by: {cause}")?;
        }
        Ok(())
    }
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(err: E) -> Self {
        Self(err.into())
    }
}

/// What a scenario test returns.
pub type Outcome = Result<(), Failure>;

/// Default time limit of one step.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(90);

/// A named scenario whose failures are reported with peer, step and peers' output.
#[derive(Debug, Default)]
pub struct Scenario {
    name: String,
    watched: Vec<(String, Output)>,
}

impl Scenario {
    /// A scenario with a human-readable name.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            watched: Vec::new(),
        }
    }

    /// Adds a peer's output to failure reports.
    pub fn watch(&mut self, peer: impl Into<String>, output: &Output) {
        self.watched.push((peer.into(), output.clone()));
    }

    /// Runs `step` of `peer` with the default time limit.
    ///
    /// # Errors
    /// The step's error or a timeout, with the context described in the module docs.
    pub async fn step<T>(
        &self,
        peer: &str,
        step: &str,
        fut: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        self.step_within(peer, step, STEP_TIMEOUT, fut).await
    }

    /// Runs `step` of `peer`, failing after `limit`.
    ///
    /// # Errors
    /// The step's error or a timeout, with the context described in the module docs.
    pub async fn step_within<T>(
        &self,
        peer: &str,
        step: &str,
        limit: Duration,
        fut: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        let outcome = match tokio::time::timeout(limit, fut).await {
            Ok(outcome) => outcome,
            Err(_) => Err(anyhow::anyhow!("timed out after {limit:?}")),
        };
        outcome.map_err(|err| err.context(self.describe(peer, step)))
    }

    /// Fails `step` of `peer` unless `condition` holds.
    ///
    /// # Errors
    /// When `condition` is false, with `what` and the context described in the module docs.
    pub fn check(
        &self,
        peer: &str,
        step: &str,
        condition: bool,
        what: impl FnOnce() -> String,
    ) -> anyhow::Result<()> {
        if condition {
            Ok(())
        } else {
            Err(anyhow::anyhow!(what()).context(self.describe(peer, step)))
        }
    }

    fn describe(&self, peer: &str, step: &str) -> String {
        let mut text = format!("[{}] peer `{peer}`: step `{step}` failed", self.name);
        for (name, output) in &self.watched {
            let tail = output.tail(30);
            if !tail.is_empty() {
                text.push_str(&format!("\n--- recent output of {name} ---\n{tail}"));
            }
        }
        text
    }
}
