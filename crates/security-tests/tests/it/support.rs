//! Shared test machinery beside the test kit's authorization server and keys: a server
//! that must never be contacted, the resource server started in-process, requests in
//! the shapes the attacks need, and a capture of every log line the process writes (to
//! prove no token reaches the logs).

use std::{
    io::Write,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Json, Router};
use jsonwebtoken::jwk::JwkSet;
use mcp_resource_server::{Config, config::JwksConfig};
use serde_json::Value;
use tokio::net::TcpListener;

pub use testkit::{
    JwksMode, SLOW_JWKS, SseReader, TestAuthServer, TestKey,
    http::{call, client, serve_on_loopback, www_authenticate},
    keys::{RSA1_PUB_PEM, alg_name, b64, raw_jws},
    legacy_sse::{SseAuth, open_sse},
    now,
};

// ---------------------------------------------------------------------------
// Log capture

/// Every log line written by this test process (TRACE for the project's crates).
#[derive(Clone)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Whether `needle` appears anywhere in the captured output.
    pub fn contains(&self, needle: &str) -> bool {
        let buffer = self.0.lock().unwrap();
        let needle = needle.as_bytes();
        !needle.is_empty() && buffer.windows(needle.len()).any(|w| w == needle)
    }

    /// Every captured line containing `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        let buffer = self.0.lock().unwrap();
        String::from_utf8_lossy(&buffer)
            .lines()
            .filter(|line| line.contains(needle))
            .map(str::to_string)
            .collect()
    }

    /// The first captured line containing `needle`.
    pub fn line_with(&self, needle: &str) -> Option<String> {
        if !self.contains(needle) {
            return None;
        }
        let buffer = self.0.lock().unwrap();
        String::from_utf8_lossy(&buffer)
            .lines()
            .find(|line| line.contains(needle))
            .map(str::to_string)
    }
}

/// The process-wide capture, installed on first use.
pub fn logs() -> Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs(Arc::default());
        let writer = logs.clone();
        let filter = tracing_subscriber::EnvFilter::new(
            "mcp_resource_server=trace,mcp_auth_proto=trace,mcp_auth_client=trace,\
             tower_http=trace,axum=trace,rmcp=debug,it=trace,info",
        );
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init()
            .expect("no other subscriber in this test binary");
        logs
    })
    .clone()
}

/// Fails if `secret` (or, for a JWS, its signature part) is in the logs or `haystacks`.
pub fn assert_not_leaked(secret: &str, haystacks: &[&str], case: &str) {
    let mut needles = vec![secret.to_string()];
    if let Some(signature) = secret.rsplit('.').next()
        && signature.len() >= 16
        && signature != secret
    {
        needles.push(signature.to_string());
    }
    for needle in needles.iter().filter(|n| n.trim().len() >= 16) {
        if let Some(line) = logs().line_with(needle) {
            panic!(
                "{case}: token text reached the logs: {}",
                line.replace(needle.as_str(), "<TOKEN>")
            );
        }
        for haystack in haystacks {
            assert!(
                !haystack.contains(needle.as_str()),
                "{case}: token text reached the response"
            );
        }
    }
}

/// A server that must never be contacted: it counts every request it gets.
pub struct Tripwire {
    pub url: String,
    hits: Arc<AtomicUsize>,
}

impl Tripwire {
    /// Serves the attacker's JWKS (and anything else) and counts requests.
    pub async fn start(attacker: &TestKey) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let set = JwkSet {
            keys: vec![attacker.jwk()],
        };
        let counter = hits.clone();
        let app = Router::new().fallback(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let set = set.clone();
            async move { Json(set) }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, hits }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

// ---------------------------------------------------------------------------
// The resource server

/// Test-friendly configuration: quick refetches, keys cached as the AS says (≥ 0 s).
pub fn rs_config(public_url: String, issuer: &str) -> Config {
    resource_server::demo_config(public_url, issuer).with_jwks_config(JwksConfig {
        min_refetch_interval: Duration::from_millis(300),
        min_ttl: Duration::ZERO,
        http_timeout: Duration::from_secs(1),
        ..JwksConfig::default()
    })
}

/// Starts the resource server on 127.0.0.1:0 with the configuration `make` builds from
/// its public URL; returns that URL.
pub async fn start_rs(make: impl FnOnce(String) -> Config) -> String {
    logs();
    serve_on_loopback(|listener, url| {
        let config = make(url);
        config.validate().expect("test configuration is valid");
        resource_server::serve(config, listener)
    })
    .await
}

/// `initialize` from a client named `security-tests`.
pub fn initialize() -> Value {
    testkit::http::initialize("security-tests")
}

/// A captured response: status, headers as text, body as text.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub www_authenticate: String,
    pub headers: String,
    pub body: String,
}

impl Reply {
    pub async fn from(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let www_authenticate = www_authenticate(&response);
        let headers = format!("{:?}", response.headers());
        let body = response.text().await.unwrap_or_default();
        Self {
            status,
            www_authenticate,
            headers,
            body,
        }
    }
}

/// `POST {url}/mcp` with an `initialize` body, plus `headers` exactly as given.
pub async fn post_mcp(url: &str, path_and_query: &str, headers: &[(&str, String)]) -> Reply {
    let mut request = client()
        .post(format!("{url}{path_and_query}"))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-06-18")
        .body(initialize().to_string());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    Reply::from(request.send().await.unwrap()).await
}

/// `POST /mcp` with `Authorization: Bearer <token>`.
pub async fn mcp_with_token(url: &str, token: &str) -> Reply {
    post_mcp(url, "/mcp", &[("authorization", format!("Bearer {token}"))]).await
}

// ---------------------------------------------------------------------------
// Legacy SSE

/// `POST <endpoint>` with a JSON-RPC body.
pub async fn post_message(url: &str, endpoint: &str, auth: SseAuth<'_>, body: &Value) -> Reply {
    Reply::from(testkit::legacy_sse::post_message(url, endpoint, auth, body).await).await
}

/// `initialize` + `notifications/initialized` over a legacy SSE session.
pub async fn sse_handshake(url: &str, endpoint: &str, auth: SseAuth<'_>, reader: &mut SseReader) {
    testkit::legacy_sse::sse_handshake(url, endpoint, auth, reader, "security-tests").await;
}
