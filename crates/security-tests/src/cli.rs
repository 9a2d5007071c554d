//! Command line of the `soak-driver` binary (used by `scripts/soak.sh`). Every flag can
//! also be set through the environment variable shown in `--help`.

use std::{process::ExitCode, time::Duration};

use clap::Parser;
use url::Url;

use crate::soak::{self, SoakConfig};

/// Drives a soak load against a running resource server and authorization server
/// (dev-idp with auto-login), samples the resource server's memory, prints the figures
/// and fails on any 5xx, transport error, lost answer or memory growth over the limit.
#[derive(Debug, Clone, Parser)]
#[command(name = "soak-driver", version)]
pub struct Cli {
    /// Base URL of the resource server.
    #[arg(long, env = "SOAK_RESOURCE_SERVER")]
    pub resource_server: Url,

    /// Issuer URL of the authorization server (auto-login must be on).
    #[arg(long, env = "SOAK_ISSUER")]
    pub issuer: Url,

    /// Public client id to authorize as.
    #[arg(long, env = "SOAK_CLIENT_ID", default_value = "mcp-client")]
    pub client_id: String,

    /// Scopes to request.
    #[arg(long, env = "SOAK_SCOPE", default_value = "openid mcp:tools")]
    pub scope: String,

    /// Length of the run, in seconds.
    #[arg(long, env = "SOAK_SECONDS", default_value_t = 60)]
    pub seconds: u64,

    /// Concurrent Streamable HTTP sessions.
    #[arg(long, env = "SOAK_WORKERS", default_value_t = 8)]
    pub workers: usize,

    /// Legacy SSE streams held open (and used) during the run.
    #[arg(long, env = "SOAK_SSE_STREAMS", default_value_t = 3)]
    pub sse_streams: usize,

    /// Renew the access token every this many seconds.
    #[arg(long, env = "SOAK_TOKEN_EVERY", default_value_t = 15)]
    pub token_every: u64,

    /// Process id of the resource server, whose resident memory is sampled.
    #[arg(long, env = "SOAK_PID")]
    pub pid: Option<u32>,

    /// Seconds between memory samples.
    #[arg(long, env = "SOAK_SAMPLE_EVERY", default_value_t = 5)]
    pub sample_every: u64,

    /// Seconds of warm-up before the first sample counted for growth
    /// [default: a sixth of the run, at least 10 s].
    #[arg(long, env = "SOAK_WARMUP")]
    pub warmup: Option<u64>,

    /// Largest allowed memory growth, in percent.
    #[arg(long, env = "SOAK_MAX_RSS_GROWTH", default_value_t = 10.0)]
    pub max_rss_growth: f64,
}

/// Runs the soak; the exit code is non-zero when a criterion failed.
///
/// # Errors
/// When the run cannot start (no first token).
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let warmup = cli.warmup.unwrap_or((cli.seconds / 6).max(10));
    let config = SoakConfig {
        resource_server: cli.resource_server,
        issuer: cli.issuer,
        client_id: cli.client_id,
        scope: cli.scope,
        duration: Duration::from_secs(cli.seconds),
        workers: cli.workers,
        sse_streams: cli.sse_streams,
        token_every: Duration::from_secs(cli.token_every.max(1)),
        pid: cli.pid,
        sample_every: Duration::from_secs(cli.sample_every.max(1)),
        warmup: Duration::from_secs(warmup),
    };
    let report = soak::run(config).await?;
    println!("{report}");
    let c = &report.counters;
    let get =
        |counter: &std::sync::atomic::AtomicU64| counter.load(std::sync::atomic::Ordering::Relaxed);
    let mut failures = Vec::new();
    if get(&c.server_errors) > 0 {
        failures.push(format!("{} responses were 5xx", get(&c.server_errors)));
    }
    if get(&c.transport_errors) > 0 {
        failures.push(format!("{} transport errors", get(&c.transport_errors)));
    }
    if get(&c.lost) > 0 {
        failures.push(format!("{} answers lost", get(&c.lost)));
    }
    if get(&c.ok) == 0 {
        failures.push("no request succeeded".into());
    }
    match report.rss_growth() {
        Some((_, _, growth)) if growth >= cli.max_rss_growth => failures.push(format!(
            "memory grew {growth:.2} % (limit {} %)",
            cli.max_rss_growth
        )),
        None if cli.pid.is_some() => failures.push("memory could not be sampled".into()),
        _ => {}
    }
    if failures.is_empty() {
        println!("soak: passed");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("soak: FAILED: {}", failures.join("; "));
        Ok(ExitCode::FAILURE)
    }
}
