//! The soak load: Streamable HTTP sessions calling tools, legacy SSE streams held open
//! and used, tokens renewed from the authorization server (so key rotations reach the
//! resource server), and the resource server's resident memory sampled from `/proc`.
//!
//! Every request is counted by outcome. "Lost" counts a JSON-RPC request that was
//! accepted but whose answer never came.

use std::{
    collections::BTreeSet,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use futures::StreamExt;
use serde_json::{Value, json};
use url::Url;

/// What the soak run does.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// Base URL of the resource server.
    pub resource_server: Url,
    /// Issuer of the authorization server (dev-idp with auto-login).
    pub issuer: Url,
    /// Public client to authorize as.
    pub client_id: String,
    /// Scopes to request.
    pub scope: String,
    /// Length of the run.
    pub duration: Duration,
    /// Concurrent Streamable HTTP sessions.
    pub workers: usize,
    /// Legacy SSE streams held open.
    pub sse_streams: usize,
    /// Renew the access token this often.
    pub token_every: Duration,
    /// Process whose memory is sampled.
    pub pid: Option<u32>,
    /// Sampling period.
    pub sample_every: Duration,
    /// Samples before this point are warm-up (not used for the growth figure).
    pub warmup: Duration,
}

/// Outcome counters.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub ok: AtomicU64,
    pub client_errors: AtomicU64,
    pub unauthorized: AtomicU64,
    pub server_errors: AtomicU64,
    pub transport_errors: AtomicU64,
    pub lost: AtomicU64,
    pub sse_posted: AtomicU64,
    pub sse_answered: AtomicU64,
    pub sse_streams_opened: AtomicU64,
    pub tokens: AtomicU64,
}

impl Counters {
    fn status(&self, status: u16) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let counter = match status {
            200..=299 => &self.ok,
            401 => &self.unauthorized,
            400..=499 => &self.client_errors,
            _ => &self.server_errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if status == 401 {
            self.client_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn transport(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.transport_errors.fetch_add(1, Ordering::Relaxed);
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// One memory sample.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: Duration,
    pub rss_kib: u64,
}

/// Figures of a finished run.
#[derive(Debug)]
pub struct Report {
    pub elapsed: Duration,
    pub counters: Arc<Counters>,
    pub samples: Vec<Sample>,
    pub warmup: Duration,
    pub signing_keys: usize,
}

impl Report {
    /// First sample after warm-up, last sample, and growth in percent.
    pub fn rss_growth(&self) -> Option<(Sample, Sample, f64)> {
        let first = *self
            .samples
            .iter()
            .find(|s| s.at >= self.warmup)
            .or(self.samples.first())?;
        let last = *self.samples.last()?;
        let growth = (last.rss_kib as f64 - first.rss_kib as f64) / first.rss_kib as f64 * 100.0;
        Some((first, last, growth))
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.counters;
        let requests = Counters::get(&c.requests);
        let secs = self.elapsed.as_secs_f64().max(0.001);
        writeln!(f, "soak figures")?;
        writeln!(f, "  duration           {:.1} s", secs)?;
        writeln!(
            f,
            "  requests           {requests} ({:.1}/s)",
            requests as f64 / secs
        )?;
        writeln!(f, "  2xx                {}", Counters::get(&c.ok))?;
        writeln!(
            f,
            "  4xx                {} (401: {})",
            Counters::get(&c.client_errors),
            Counters::get(&c.unauthorized)
        )?;
        writeln!(
            f,
            "  5xx                {}",
            Counters::get(&c.server_errors)
        )?;
        writeln!(
            f,
            "  transport errors   {}",
            Counters::get(&c.transport_errors)
        )?;
        writeln!(f, "  lost answers       {}", Counters::get(&c.lost))?;
        writeln!(
            f,
            "  sse                {} streams, {} messages posted, {} answered",
            Counters::get(&c.sse_streams_opened),
            Counters::get(&c.sse_posted),
            Counters::get(&c.sse_answered)
        )?;
        writeln!(
            f,
            "  tokens             {} obtained, {} signing keys seen",
            Counters::get(&c.tokens),
            self.signing_keys
        )?;
        match self.rss_growth() {
            Some((first, last, growth)) => {
                let max = self.samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
                writeln!(
                    f,
                    "  rss                first {} KiB (at {} s), last {} KiB (at {} s), max {} KiB, {} samples",
                    first.rss_kib,
                    first.at.as_secs(),
                    last.rss_kib,
                    last.at.as_secs(),
                    max,
                    self.samples.len()
                )?;
                write!(f, "  rss growth         {growth:.2} %")
            }
            None => write!(f, "  rss                not sampled"),
        }
    }
}

/// The current access token, shared by every task (never printed).
#[derive(Clone, Default)]
struct Token(Arc<RwLock<String>>);

impl Token {
    fn get(&self) -> String {
        self.0.read().unwrap().clone()
    }
    fn set(&self, token: String) {
        *self.0.write().unwrap() = token;
    }
}

fn http() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// Authorization code flow with PKCE against an auto-login authorization server.
async fn obtain_token(client: &reqwest::Client, config: &SoakConfig) -> anyhow::Result<String> {
    let (challenge, verifier) = oauth2::PkceCodeChallenge::new_random_sha256();
    let state = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
    let redirect_uri = "http://127.0.0.1:9/callback";
    let resource = config.resource_server.join("mcp")?;
    let issuer = config.issuer.as_str().trim_end_matches('/');
    let mut authorize = Url::parse(&format!("{issuer}/auth"))?;
    authorize
        .query_pairs_mut()
        .append_pair("client_id", &config.client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("scope", &config.scope)
        .append_pair("state", &state)
        .append_pair("code_challenge", challenge.as_str())
        .append_pair("code_challenge_method", "S256")
        .append_pair("resource", resource.as_str());
    // Dex's hops, which dev-idp mirrors: /auth -> /auth/local (a relative Location) ->
    // (auto-login) the redirect URI.
    let location = testkit::http::follow_redirects(client, authorize, redirect_uri, 5).await?;
    let param = |name: &str| {
        location
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    if param("state").as_deref() != Some(state.as_str()) {
        bail!("state mismatch in the authorization response");
    }
    let code = param("code").context("no code in the authorization response")?;
    let response = client
        .post(format!("{issuer}/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect_uri),
            ("client_id", &config.client_id),
            ("code_verifier", verifier.secret()),
            ("resource", resource.as_str()),
        ])
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("token request answered {}", response.status());
    }
    let body: Value = response.json().await?;
    body["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("token response without access_token")
}

/// The `kid` of a JWS header (not secret).
fn kid(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    header["kid"].as_str().map(str::to_owned)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A JSON-RPC reply from a Streamable HTTP response (JSON or SSE-framed).
fn rpc_reply(content_type: &str, text: &str) -> Option<Value> {
    if content_type.starts_with("text/event-stream") {
        text.lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
            .find(|v| v.get("id").is_some())
    } else {
        serde_json::from_str(text).ok()
    }
}

struct Mcp {
    client: reqwest::Client,
    url: Url,
    session: Option<String>,
}

enum Outcome {
    Reply(Option<Value>),
    Status(u16),
    Transport,
}

impl Mcp {
    async fn post(&mut self, token: &str, body: &Value, counters: &Counters) -> Outcome {
        let mut request = self
            .client
            .post(self.url.clone())
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2025-06-18")
            .body(body.to_string());
        if let Some(session) = &self.session {
            request = request.header("mcp-session-id", session);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(_) => {
                counters.transport();
                return Outcome::Transport;
            }
        };
        let status = response.status().as_u16();
        counters.status(status);
        if let Some(session) = response.headers().get("mcp-session-id")
            && let Ok(session) = session.to_str()
        {
            self.session = Some(session.to_owned());
        }
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let Ok(text) = response.text().await else {
            counters.transport_errors.fetch_add(1, Ordering::Relaxed);
            return Outcome::Transport;
        };
        if !(200..300).contains(&status) {
            return Outcome::Status(status);
        }
        Outcome::Reply(rpc_reply(&content_type, &text))
    }

    async fn initialize(&mut self, token: &str, counters: &Counters) -> bool {
        self.session = None;
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "soak-driver", "version": "0"}}});
        if !matches!(
            self.post(token, &init, counters).await,
            Outcome::Reply(Some(_))
        ) {
            return false;
        }
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        matches!(
            self.post(token, &initialized, counters).await,
            Outcome::Reply(_)
        )
    }
}

fn tool_call(id: u64) -> Value {
    let (name, arguments) = match id % 3 {
        0 => (
            "calculator",
            json!({"operation": "multiply", "a": id as f64, "b": 3}),
        ),
        1 => ("weather", json!({"location": format!("city-{}", id % 17)})),
        _ => ("whoami", json!({})),
    };
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": arguments}})
}

async fn streamable_worker(
    config: Arc<SoakConfig>,
    token: Token,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let mut mcp = Mcp {
        client: http()?,
        url: config.resource_server.join("mcp")?,
        session: None,
    };
    let mut id = 1u64;
    let mut ready = false;
    while !stop.load(Ordering::Relaxed) {
        let current = token.get();
        if !ready {
            ready = mcp.initialize(&current, &counters).await;
            if !ready {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            continue;
        }
        id += 1;
        match mcp.post(&current, &tool_call(id), &counters).await {
            Outcome::Reply(Some(reply)) if reply["id"] == id && reply.get("result").is_some() => {}
            Outcome::Reply(_) => {
                counters.lost.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Status(404) => ready = false,
            Outcome::Status(_) | Outcome::Transport => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    Ok(())
}

/// The next server-sent event, within 10 s.
async fn next_event(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, String)>,
) -> Option<(String, String)> {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .ok()
        .flatten()
}

async fn sse_worker(
    config: Arc<SoakConfig>,
    token: Token,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let client = http()?;
    let opener = token.get();
    let response = match client
        .get(config.resource_server.join("sse")?)
        .bearer_auth(&opener)
        .header("accept", "text/event-stream")
        .timeout(Duration::from_secs(24 * 3600))
        .send()
        .await
    {
        Ok(response) => response,
        Err(_) => {
            counters.transport();
            return Ok(());
        }
    };
    counters.status(response.status().as_u16());
    if !response.status().is_success() {
        return Ok(());
    }
    counters.sse_streams_opened.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
    let mut bytes = response.bytes_stream();
    let reader = tokio::spawn(async move {
        let mut buffer = String::new();
        while let Some(Ok(chunk)) = bytes.next().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let mut event = "message".to_owned();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if !data.is_empty() && tx.send((event, data)).is_err() {
                    return;
                }
            }
        }
    });
    let Some((event, endpoint)) = next_event(&mut rx).await else {
        counters.lost.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    };
    if event != "endpoint" {
        bail!("first SSE event is {event}, not endpoint");
    }
    let endpoint = config.resource_server.join(&endpoint)?;
    let mut id = 0u64;
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2024-11-05", "capabilities": {},
        "clientInfo": {"name": "soak-driver", "version": "0"}}});
    let mut pending = vec![init];
    while !stop.load(Ordering::Relaxed) {
        let body = pending.pop().unwrap_or_else(|| {
            id += 1;
            tool_call(id)
        });
        let expected = body["id"].clone();
        // The stream was opened by this principal; any of its tokens may post.
        let response = client
            .post(endpoint.clone())
            .bearer_auth(token.get())
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await;
        let status = match response {
            Ok(response) => response.status().as_u16(),
            Err(_) => {
                counters.transport();
                continue;
            }
        };
        counters.status(status);
        if status != 202 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        counters.sse_posted.fetch_add(1, Ordering::Relaxed);
        match next_event(&mut rx).await {
            Some((_, data)) => {
                let reply: Value = serde_json::from_str(&data).unwrap_or_default();
                if reply["id"] == expected {
                    counters.sse_answered.fetch_add(1, Ordering::Relaxed);
                } else {
                    counters.lost.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => {
                counters.lost.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
        if expected == 0 {
            let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
            let _ = client
                .post(endpoint.clone())
                .bearer_auth(token.get())
                .header("content-type", "application/json")
                .body(initialized.to_string())
                .send()
                .await;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    reader.abort();
    Ok(())
}

/// Runs the soak and returns its figures.
///
/// # Errors
/// When the first token cannot be obtained.
pub async fn run(config: SoakConfig) -> anyhow::Result<Report> {
    let config = Arc::new(config);
    let client = http()?;
    let counters = Arc::new(Counters::default());
    let kids = Arc::new(Mutex::new(BTreeSet::new()));
    let token = Token::default();
    let first = obtain_token(&client, &config)
        .await
        .context("first access token")?;
    kids.lock().unwrap().extend(kid(&first));
    token.set(first);
    counters.tokens.fetch_add(1, Ordering::Relaxed);

    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    {
        let (config, token, counters, stop, kids) = (
            config.clone(),
            token.clone(),
            counters.clone(),
            stop.clone(),
            kids.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(config.token_every).await;
                match obtain_token(&client, &config).await {
                    Ok(fresh) => {
                        kids.lock().unwrap().extend(kid(&fresh));
                        token.set(fresh);
                        counters.tokens.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => tracing::warn!(%error, "could not renew the token"),
                }
            }
            Ok(())
        }));
    }
    for _ in 0..config.workers {
        tasks.push(tokio::spawn(streamable_worker(
            config.clone(),
            token.clone(),
            counters.clone(),
            stop.clone(),
        )));
    }
    for _ in 0..config.sse_streams {
        tasks.push(tokio::spawn(sse_worker(
            config.clone(),
            token.clone(),
            counters.clone(),
            stop.clone(),
        )));
    }

    let mut samples = Vec::new();
    while started.elapsed() < config.duration {
        if let Some(pid) = config.pid
            && let Some(rss_kib) = rss_kib(pid)
        {
            samples.push(Sample {
                at: started.elapsed(),
                rss_kib,
            });
        }
        let left = config.duration.saturating_sub(started.elapsed());
        tokio::time::sleep(config.sample_every.min(left)).await;
    }
    if let Some(pid) = config.pid
        && let Some(rss_kib) = rss_kib(pid)
    {
        samples.push(Sample {
            at: started.elapsed(),
            rss_kib,
        });
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        match tokio::time::timeout(Duration::from_secs(15), task).await {
            Ok(Ok(Err(error))) => tracing::warn!(%error, "a load task failed"),
            Ok(_) => {}
            Err(_) => tracing::warn!("a load task did not stop in time"),
        }
    }
    let signing_keys = kids.lock().unwrap().len();
    Ok(Report {
        elapsed: started.elapsed(),
        counters,
        samples,
        warmup: config.warmup,
        signing_keys,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_replies_in_both_framings() {
        let sse = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}\n\n";
        assert_eq!(rpc_reply("text/event-stream", sse).unwrap()["id"], 3);
        assert_eq!(
            rpc_reply("application/json", r#"{"id":4,"result":{}}"#).unwrap()["id"],
            4
        );
    }

    #[test]
    fn kid_of_a_jws_header() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"k-1"}"#);
        assert_eq!(kid(&format!("{header}.e30.sig")).as_deref(), Some("k-1"));
        assert_eq!(kid("not a token"), None);
    }

    #[test]
    fn growth_is_measured_after_warm_up() {
        let report = Report {
            elapsed: Duration::from_secs(60),
            counters: Arc::default(),
            samples: vec![
                Sample {
                    at: Duration::from_secs(0),
                    rss_kib: 1000,
                },
                Sample {
                    at: Duration::from_secs(10),
                    rss_kib: 2000,
                },
                Sample {
                    at: Duration::from_secs(60),
                    rss_kib: 2100,
                },
            ],
            warmup: Duration::from_secs(10),
            signing_keys: 1,
        };
        let (first, last, growth) = report.rss_growth().unwrap();
        assert_eq!((first.rss_kib, last.rss_kib), (2000, 2100));
        assert!((growth - 5.0).abs() < 1e-9);
    }

    #[test]
    fn own_process_memory_is_readable() {
        assert!(rss_kib(std::process::id()).unwrap() > 0);
    }
}
