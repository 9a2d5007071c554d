//! Throughput and latency of both servers (T1-T3 in the report): the same bounded `wrk`
//! load (authenticated `tools/call`, and the same request without a token) against the
//! project's resource server, the same server with authorization off or its token cache
//! off, and the TypeScript SDK server.

use std::{path::Path, time::Duration};

use anyhow::{Context as _, bail};

use crate::{
    authz::{AuthServer, TokenSpec},
    procs::Server,
    raw,
    wrk::{self, Expect, Load, LoadResult, PROTOCOL_VERSION, TOOLS_CALL, WrkCpu},
};

/// What a server's calculator answers to `add 2 3` (a substring of the JSON reply).
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// The server.
    pub server: &'a Server,
    /// The bearer token sent to it (a server with authorization off ignores it).
    pub token: Option<String>,
    /// Text its reply must contain.
    pub expect_text: &'static str,
}

/// How wrk runs: the program, its script and its threads.
#[derive(Debug, Clone, Copy)]
pub struct Wrk<'a> {
    /// The wrk binary.
    pub program: &'a Path,
    /// The Lua script (see [`wrk::write_script`]).
    pub script: &'a Path,
    /// Load threads.
    pub threads: u32,
    /// Where wrk runs.
    pub cpu: WrkCpu,
}

/// One measured row.
#[derive(Debug, Clone)]
pub struct Row {
    /// What was sent.
    pub case: &'static str,
    /// Which server.
    pub server: String,
    /// Connections.
    pub connections: u32,
    /// wrk's figures.
    pub result: LoadResult,
    /// Peak resident memory of the server during the run, KiB.
    pub peak_rss_kib: u64,
    /// CPU time the server used per request answered, µs (every thread, user and
    /// system): its own cost, apart from how the cores were shared with the load
    /// generator. `NaN` when it could not be read.
    pub cpu_us_per_request: f64,
    /// How many runs this row summarises.
    pub runs: usize,
    /// The lowest and highest requests/s of those runs.
    pub rps_range: (f64, f64),
    /// The lowest and highest p99 of those runs, ms.
    pub p99_range: (f64, f64),
}

/// The request cases.
pub const CASE_TOOLS_CALL: &str = "tools/call, Bearer";
/// Same request, no token.
pub const CASE_NO_TOKEN: &str = "no token (401)";

/// Mints the token a server accepts: `aud` = its MCP URL.
///
/// # Errors
pub fn token_for(auth: &AuthServer, server: &Server) -> String {
    TokenSpec::for_audience(server.mcp_url.clone()).mint(auth)
}

/// Sends one request with the raw client and checks the reply, so a misconfigured server
/// is reported as such before any load runs.
///
/// # Errors
/// When the reply is not the expected one.
pub async fn sanity_check(target: &Target<'_>) -> anyhow::Result<()> {
    let addr = target
        .server
        .authority()
        .parse()
        .with_context(|| format!("address of {}", target.server.name))?;
    let bearer = target.token.as_ref().map(|t| format!("Bearer {t}"));
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
        ("MCP-Protocol-Version", PROTOCOL_VERSION),
    ];
    if let Some(bearer) = &bearer {
        headers.push(("Authorization", bearer));
    }
    let request = raw::request(
        "POST",
        "/mcp",
        target.server.authority(),
        &headers,
        TOOLS_CALL,
    );
    let mut stream = raw::connect(addr).await?;
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        raw::exchange(&mut stream, &request),
    )
    .await
    .context("no reply within 10 s")??;
    let status = raw::status_of(&response);
    if status != Some(200) || !raw::contains(&response, target.expect_text.as_bytes()) {
        let head = String::from_utf8_lossy(&response[..response.len().min(600)]).to_string();
        bail!(
            "{} answered an authenticated tools/call with {:?} instead of a result containing {:?}: {}",
            target.server.name,
            status,
            target.expect_text,
            head.replace("\r\n", " | ")
        );
    }
    Ok(())
}

/// Runs one load against one server, with its peak memory.
///
/// # Errors
/// When wrk fails or the server died.
pub async fn measure(
    wrk: &Wrk<'_>,
    case: &'static str,
    target: &Target<'_>,
    connections: u32,
    duration: Duration,
) -> anyhow::Result<Row> {
    let (token, expect) = if case == CASE_NO_TOKEN {
        (None, Expect::Challenge)
    } else {
        (
            target.token.as_deref(),
            Expect::ToolResult(target.expect_text.to_string()),
        )
    };
    // The peak covers this run only (if the kernel allows resetting it).
    let _ = target.server.reset_peak();
    let cpu_before = target.server.cpu_time().ok();
    let result = wrk::run(
        wrk.program,
        wrk.script,
        &Load {
            url: &target.server.mcp_url,
            threads: wrk.threads,
            cpu: wrk.cpu,
            connections,
            duration,
            token,
            expect,
        },
    )
    .await
    .with_context(|| format!("load on {}", target.server.name))?;
    let memory = target.server.memory()?;
    let cpu = cpu_before.zip(target.server.cpu_time().ok());
    let cpu_us_per_request = match cpu {
        Some((before, after)) if result.requests > 0 => {
            after.saturating_sub(before).as_secs_f64() * 1e6 / result.requests as f64
        }
        _ => f64::NAN,
    };
    Ok(Row {
        case,
        server: target.server.name.clone(),
        connections,
        result,
        peak_rss_kib: memory.peak_kib,
        cpu_us_per_request,
        runs: 1,
        rps_range: (result.rps, result.rps),
        p99_range: (result.p99_ms, result.p99_ms),
    })
}
