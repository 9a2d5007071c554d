//! A JWKS key rotation under load (T5 in the report): the authorization server rotates
//! its signing key, and a burst of requests signed with the new key reaches the
//! resource server at once. The resource server does not know the new `kid`; it must
//! fetch the JWKS exactly once (counted by the harness's authorization server) and
//! accept every request.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::Barrier,
};

use crate::{
    authz::{AuthServer, TokenSpec},
    procs::Server,
    raw,
    wrk::{PROTOCOL_VERSION, TOOLS_CALL},
};

/// Results of the rotation case.
#[derive(Debug, Clone, Default)]
pub struct RotationResult {
    /// Requests sent.
    pub requests: usize,
    /// Requests answered 200 with the tool result.
    pub succeeded: usize,
    /// JWKS fetches during the burst.
    pub jwks_fetches: u64,
    /// Time from release to the last response, ms.
    pub burst_ms: f64,
    /// Status codes of failed requests (first few).
    pub failures: Vec<String>,
}

/// Rotates the key and releases `count` concurrent requests carrying a token signed with
/// it, on `count` connections opened beforehand.
///
/// # Errors
/// When the server is unreachable or a token cannot be minted.
pub async fn run(
    auth: &AuthServer,
    server: &Server,
    expect_text: &'static str,
    count: usize,
) -> anyhow::Result<RotationResult> {
    let addr: SocketAddr = server.authority().parse().context("server address")?;
    // The resource server refetches at most once a second (`--jwks-min-refetch 1`).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let old_kid = auth.current_kid();
    let new_kid = auth.rotate()?;
    anyhow::ensure!(old_kid != new_kid, "rotation kept the key id");
    let token = TokenSpec::for_audience(server.mcp_url.clone()).mint(auth);
    let bearer = format!("Bearer {token}");
    let request = Arc::new(raw::request(
        "POST",
        "/mcp",
        server.authority(),
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
            ("MCP-Protocol-Version", PROTOCOL_VERSION),
            ("Authorization", &bearer),
        ],
        TOOLS_CALL,
    ));

    let mut streams = Vec::with_capacity(count);
    for chunk in (0..count).collect::<Vec<_>>().chunks(200) {
        let connecting = chunk.iter().map(|_| raw::connect(addr));
        for stream in futures::future::join_all(connecting).await {
            streams.push(stream.context("opening the burst's connections")?);
        }
    }
    let barrier = Arc::new(Barrier::new(count + 1));
    let before = auth.fetches() as u64;
    let mut tasks = Vec::with_capacity(count);
    for mut stream in streams {
        let barrier = barrier.clone();
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            stream.write_all(&request).await?;
            let mut response = Vec::with_capacity(1024);
            tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut response))
                .await
                .map_err(|_| std::io::Error::other("no reply within 30 s"))??;
            Ok::<_, std::io::Error>(response)
        }));
    }
    barrier.wait().await;
    let released = Instant::now();
    let mut succeeded = 0;
    let mut failures = Vec::new();
    for task in tasks {
        match task.await {
            Ok(Ok(response))
                if raw::status_of(&response) == Some(200)
                    && raw::contains(&response, expect_text.as_bytes()) =>
            {
                succeeded += 1;
            }
            Ok(Ok(response)) => {
                if failures.len() < 5 {
                    failures.push(format!("HTTP {:?}", raw::status_of(&response)));
                }
            }
            Ok(Err(e)) => {
                if failures.len() < 5 {
                    failures.push(e.to_string());
                }
            }
            Err(e) => {
                if failures.len() < 5 {
                    failures.push(e.to_string());
                }
            }
        }
    }
    let burst_ms = released.elapsed().as_secs_f64() * 1000.0;
    Ok(RotationResult {
        requests: count,
        succeeded,
        jwks_fetches: auth.fetches() as u64 - before,
        burst_ms,
        failures,
    })
}
