//! Memory and latency of many SSE streams (T4 in the report): many authenticated legacy
//! SSE streams held by one resource-server process.
//!
//! The harness opens `N` streams (`GET /sse` with a Bearer token, a hundred distinct
//! tokens, each shared by `N/100` streams), waits for every `endpoint` event, reads the
//! server's resident memory, then waits for the tokens to expire: every stream must be
//! closed by the server shortly after.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::Context as _;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::Semaphore,
};

use crate::{
    authz::{AuthServer, TokenSpec, unix_now},
    procs::Server,
    raw,
};

/// Streams sharing one token (one principal): below the resource server's default limit
/// of streams per principal (16).
const STREAMS_PER_TOKEN: usize = 10;
/// Connection attempts in flight at once while opening.
const OPENING_CONCURRENCY: usize = 256;
/// How long after `exp` every stream must be closed.
pub const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Results of the SSE case.
#[derive(Debug, Clone, Default)]
pub struct SseResult {
    /// Streams asked for.
    pub requested: usize,
    /// Distinct tokens (and subjects) among them.
    pub tokens: usize,
    /// The server's clock leeway: streams end at `exp` plus this.
    pub leeway: Duration,
    /// Streams whose `endpoint` event arrived.
    pub opened: usize,
    /// Time to open them all.
    pub open_secs: f64,
    /// Server RSS before any stream, KiB.
    pub baseline_kib: u64,
    /// Server RSS with every stream open, KiB.
    pub held_kib: u64,
    /// Server peak RSS (since the baseline), KiB.
    pub peak_kib: u64,
    /// Streams closed by the server at the tokens' expiry (not before, and within
    /// [`CLOSE_GRACE`] after).
    pub closed_in_time: usize,
    /// Latest close, seconds after expiry (negative: before).
    pub last_close_after_exp_secs: f64,
    /// Failures seen while opening (first few).
    pub failures: Vec<String>,
}

impl SseResult {
    /// Peak RSS growth per open stream, KiB.
    pub fn peak_per_stream_kib(&self) -> f64 {
        if self.opened == 0 {
            return 0.0;
        }
        self.peak_kib.saturating_sub(self.baseline_kib) as f64 / self.opened as f64
    }
}

/// The monotonic instant of a Unix time in seconds.
fn instant_of(unix_secs: u64) -> Instant {
    let target = UNIX_EPOCH + Duration::from_secs(unix_secs);
    match target.duration_since(SystemTime::now()) {
        Ok(ahead) => Instant::now() + ahead,
        Err(behind) => Instant::now()
            .checked_sub(behind.duration())
            .unwrap_or_else(Instant::now),
    }
}

/// Opens `count` streams on `server`, then waits for them to close when their tokens stop
/// being accepted: at `exp` plus the server's clock `leeway`.
///
/// # Errors
/// When tokens cannot be minted or the server is unreachable.
pub async fn run(
    auth: &AuthServer,
    server: &Server,
    count: usize,
    leeway: Duration,
) -> anyhow::Result<SseResult> {
    let addr: SocketAddr = server.authority().parse().context("server address")?;
    let authority = server.authority().to_string();
    let audience = server.mcp_url.replace("/mcp", "/sse");
    // Long enough to open everything (a few thousand per second is slow) and measure.
    let lifetime = 8 + (count as u64) / 800;
    // One warm-up stream with a short-lived token, so the baseline includes first-use
    // allocations; it closes at its own expiry before the measured streams open.
    let baseline_kib = {
        let warm_token = TokenSpec {
            audience: audience.clone(),
            subject: "sse-warm-up".into(),
            scope: "mcp:tools".into(),
            lifetime_secs: 1,
        }
        .mint(auth);
        let bearer = format!("Bearer {warm_token}");
        let request = raw::request(
            "GET",
            "/sse",
            &authority,
            &[("Authorization", &bearer), ("Accept", "text/event-stream")],
            "",
        );
        let mut stream = raw::connect(addr).await?;
        stream.write_all(&request).await?;
        let mut response = Vec::new();
        tokio::time::timeout(
            leeway + Duration::from_secs(10),
            stream.read_to_end(&mut response),
        )
        .await
        .context("the warm-up stream was not closed at its token's expiry")??;
        anyhow::ensure!(
            raw::status_of(&response) == Some(200) && raw::contains(&response, b"event: endpoint"),
            "GET /sse answered {:?}",
            raw::status_of(&response)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let memory = server.memory()?;
        let _ = server.reset_peak();
        memory.rss_kib
    };
    let exp = unix_now() + lifetime;
    let tokens = count.div_ceil(STREAMS_PER_TOKEN).max(1);
    let mut requests = Vec::with_capacity(tokens);
    for i in 0..tokens {
        let token = TokenSpec {
            audience: audience.clone(),
            subject: format!("sse-user-{i}"),
            scope: "mcp:tools".into(),
            lifetime_secs: lifetime,
        }
        .mint(auth);
        let bearer = format!("Bearer {token}");
        requests.push(Arc::new(raw::request(
            "GET",
            "/sse",
            &authority,
            &[("Authorization", &bearer), ("Accept", "text/event-stream")],
            "",
        )));
    }

    let opened = Arc::new(AtomicUsize::new(0));
    let closed_in_time = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let last_close = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let gate = Arc::new(Semaphore::new(OPENING_CONCURRENCY));
    let (open_tx, mut open_rx) = tokio::sync::mpsc::unbounded_channel::<bool>();
    // The instant the server stops accepting the tokens.
    let exp_instant = instant_of(exp) + leeway;
    let deadline = exp_instant + CLOSE_GRACE + Duration::from_secs(1);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(count);
    for i in 0..count {
        let request = requests[i % tokens].clone();
        let gate = gate.clone();
        let opened = opened.clone();
        let closed_in_time = closed_in_time.clone();
        let failures = failures.clone();
        let last_close = last_close.clone();
        let open_tx = open_tx.clone();
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await;
            let fail = |message: String| {
                let mut f = failures
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if f.len() < 5 {
                    f.push(message);
                }
            };
            let mut stream = match raw::connect(addr).await {
                Ok(s) => s,
                Err(e) => {
                    fail(format!("connect: {e}"));
                    let _ = open_tx.send(false);
                    return;
                }
            };
            if let Err(e) = stream.write_all(&request).await {
                fail(format!("write: {e}"));
                let _ = open_tx.send(false);
                return;
            }
            let mut head = Vec::with_capacity(1024);
            let mut buf = vec![0u8; 2048];
            let ok = loop {
                match tokio::time::timeout_at(deadline.into(), stream.read(&mut buf)).await {
                    Ok(Ok(0)) | Err(_) => break false,
                    Ok(Ok(n)) => {
                        head.extend_from_slice(&buf[..n]);
                        if raw::contains(&head, b"event: endpoint") {
                            break raw::status_of(&head) == Some(200);
                        }
                        if head.len() > 64 * 1024 {
                            break false;
                        }
                    }
                    Ok(Err(_)) => break false,
                }
            };
            drop(permit);
            if !ok {
                fail(format!(
                    "stream {i} did not open: {}",
                    String::from_utf8_lossy(&head[..head.len().min(200)]).replace("\r\n", " | ")
                ));
                let _ = open_tx.send(false);
                return;
            }
            opened.fetch_add(1, Ordering::SeqCst);
            let _ = open_tx.send(true);
            drop(open_tx);
            // Hold the stream until the server ends it.
            let mut small = [0u8; 512];
            loop {
                match tokio::time::timeout_at(deadline.into(), stream.read(&mut small)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => {
                        let now = Instant::now();
                        // Closed at expiry: not before it (half a second of clock slack),
                        // and within the grace period after it.
                        if now + Duration::from_millis(500) >= exp_instant
                            && now <= exp_instant + CLOSE_GRACE
                        {
                            closed_in_time.fetch_add(1, Ordering::SeqCst);
                        }
                        let mut last = last_close
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        if last.is_none_or(|l| now > l) {
                            *last = Some(now);
                        }
                        return;
                    }
                    Ok(Ok(_)) => {}
                    Err(_) => return,
                }
            }
        }));
    }
    drop(open_tx);
    let mut answered = 0;
    while answered < count {
        match open_rx.recv().await {
            Some(_) => answered += 1,
            None => break,
        }
    }
    let open_secs = started.elapsed().as_secs_f64();
    // Let the server settle, then read its memory with every stream open.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let memory = server.memory()?;
    for task in tasks {
        let _ = task.await;
    }
    let last = *last_close
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let last_close_after_exp_secs = last.map_or(f64::NAN, |l| {
        if l >= exp_instant {
            l.duration_since(exp_instant).as_secs_f64()
        } else {
            -exp_instant.duration_since(l).as_secs_f64()
        }
    });
    let failures = failures
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    Ok(SseResult {
        requested: count,
        tokens,
        leeway,
        opened: opened.load(Ordering::SeqCst),
        open_secs,
        baseline_kib,
        held_kib: memory.rss_kib,
        peak_kib: memory.peak_kib,
        closed_in_time: closed_in_time.load(Ordering::SeqCst),
        last_close_after_exp_secs,
        failures,
    })
}
