//! Shared test machinery: a test authorization server (OIDC metadata + JWKS on
//! 127.0.0.1, with switchable faults and restarts on the same port), signing keys, a
//! raw token builder for forged headers, the resource server started in-process, and a
//! capture of every log line the process writes (to prove no token reaches the logs).

use std::{
    io::Write,
    net::SocketAddr,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU8, AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{
    Algorithm, EncodingKey,
    jwk::{Jwk, JwkSet},
};
use mcp_resource_server::{Config, config::JwksConfig};
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::oneshot};

pub const AS1_PEM: &[u8] = include_bytes!("../../keys/as1.pem");
pub const AS1_PUB_PEM: &[u8] = include_bytes!("../../keys/as1.pub.pem");
pub const AS2_PEM: &[u8] = include_bytes!("../../keys/as2.pem");
pub const ATTACKER_PEM: &[u8] = include_bytes!("../../keys/attacker.pem");
pub const EC_PEM: &[u8] = include_bytes!("../../keys/ec.pem");

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

// ---------------------------------------------------------------------------
// Keys and tokens

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A signing key with its `kid` and algorithm.
#[derive(Clone)]
pub struct Key {
    pub kid: String,
    pub alg: Algorithm,
    pub key: EncodingKey,
}

impl Key {
    pub fn rsa(pem: &[u8], kid: &str) -> Self {
        Self {
            kid: kid.into(),
            alg: Algorithm::RS256,
            key: EncodingKey::from_rsa_pem(pem).unwrap(),
        }
    }
    pub fn as1() -> Self {
        Self::rsa(AS1_PEM, "as-1")
    }
    pub fn as2() -> Self {
        Self::rsa(AS2_PEM, "as-2")
    }
    pub fn attacker() -> Self {
        Self::rsa(ATTACKER_PEM, "attacker")
    }
    pub fn ec() -> Self {
        Self {
            kid: "ec-1".into(),
            alg: Algorithm::ES256,
            key: EncodingKey::from_ec_pem(EC_PEM).unwrap(),
        }
    }

    /// The public JWK, with `kid`.
    pub fn jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.key, self.alg).unwrap();
        jwk.common.key_id = Some(self.kid.clone());
        jwk
    }

    /// A JWS with this key's `alg` and `kid` over `claims`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(
            json!({"alg": alg_name(self.alg), "kid": self.kid, "typ": "at+jwt"}),
            claims,
        )
    }

    /// A JWS with an arbitrary header, signed with this key's algorithm.
    pub fn sign_with_header(&self, header: Value, claims: &Value) -> String {
        raw_jws(&header, claims, |input| {
            jsonwebtoken::crypto::sign(input, &self.key, self.alg).unwrap()
        })
    }
}

pub fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::RS256 => "RS256",
        Algorithm::ES256 => "ES256",
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        _ => unimplemented!("not used in these tests"),
    }
}

pub fn b64(value: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(value)
}

/// `b64(header).b64(claims).sign(input)`.
pub fn raw_jws(header: &Value, claims: &Value, sign: impl FnOnce(&[u8]) -> String) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = sign(input.as_bytes());
    format!("{input}.{signature}")
}

// ---------------------------------------------------------------------------
// The test authorization server

/// How long the JWKS endpoint takes in [`Mode::Slow`].
pub const SLOW_JWKS: Duration = Duration::from_secs(8);

/// What the JWKS endpoint does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    Ok = 0,
    /// 503 to every request.
    Down = 1,
    /// Answers after 8 s, past the resource server's fetch timeout in these tests.
    Slow = 2,
    /// 200 with a body that is not a JWKS.
    Garbage = 3,
}

#[derive(Clone)]
struct AsState {
    issuer: String,
    keys: Arc<Mutex<Vec<Jwk>>>,
    fetches: Arc<AtomicUsize>,
    mode: Arc<AtomicU8>,
    max_age: u64,
}

/// The test authorization server: OIDC metadata and a JWKS under `/dex`, as Dex serves them.
pub struct TestAs {
    pub addr: SocketAddr,
    pub issuer: String,
    pub jwks_uri: String,
    state: AsState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestAs {
    /// Starts on 127.0.0.1:0 publishing `keys` with `Cache-Control: max-age=<max_age>`.
    pub async fn start(keys: &[Key], max_age: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(listener, keys, max_age)
    }

    /// Starts again on `addr` (after [`Self::stop`]), with fresh counters and `keys`.
    pub async fn restart_at(addr: SocketAddr, keys: &[Key], max_age: u64) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        Self::start_on(listener, keys, max_age)
    }

    fn start_on(listener: TcpListener, keys: &[Key], max_age: u64) -> Self {
        let addr = listener.local_addr().unwrap();
        let issuer = format!("http://{addr}/dex");
        let state = AsState {
            issuer: issuer.clone(),
            keys: Arc::new(Mutex::new(keys.iter().map(Key::jwk).collect())),
            fetches: Arc::default(),
            mode: Arc::default(),
            max_age,
        };
        let app = Router::new()
            .route("/dex/.well-known/openid-configuration", get(metadata))
            .route("/dex/keys", get(jwks))
            .with_state(state.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Self {
            addr,
            jwks_uri: format!("{issuer}/keys"),
            issuer,
            state,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops serving; the port is free afterwards.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// RFC 9068-shaped claims for `aud`, with `scope`, valid for 5 minutes.
    pub fn claims(&self, sub: &str, aud: &str, scope: &str) -> Value {
        let now = now();
        json!({
            "iss": self.issuer, "sub": sub, "aud": aud, "exp": now + 300, "iat": now,
            "scope": scope, "client_id": "mcp-client", "jti": format!("{sub}-{}", rand::random::<u64>())
        })
    }
}

impl Drop for TestAs {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn metadata(State(state): State<AsState>) -> Response {
    Json(json!({
        "issuer": state.issuer,
        "authorization_endpoint": format!("{}/auth", state.issuer),
        "token_endpoint": format!("{}/token", state.issuer),
        "jwks_uri": format!("{}/keys", state.issuer),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
    .into_response()
}

async fn jwks(State(state): State<AsState>) -> Response {
    state.fetches.fetch_add(1, Ordering::SeqCst);
    match state.mode.load(Ordering::SeqCst) {
        1 => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
        2 => tokio::time::sleep(SLOW_JWKS).await,
        3 => {
            return (
                [(header::CONTENT_TYPE, "application/json")],
                "<html>502 upstream</html>",
            )
                .into_response();
        }
        _ => {}
    }
    let set = JwkSet {
        keys: state.keys.lock().unwrap().clone(),
    };
    (
        [(
            header::CACHE_CONTROL,
            format!("public, max-age={}", state.max_age),
        )],
        Json(set),
    )
        .into_response()
}

/// A server that must never be contacted: it counts every request it gets.
pub struct Tripwire {
    pub url: String,
    hits: Arc<AtomicUsize>,
}

impl Tripwire {
    /// Serves the attacker's JWKS (and anything else) and counts requests.
    pub async fn start(attacker: &Key) -> Self {
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
    Config::new(public_url, issuer).with_jwks_config(JwksConfig {
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
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = make(url.clone());
    config.validate().expect("test configuration is valid");
    tokio::spawn(async move { mcp_resource_server::serve(config, listener).await.unwrap() });
    url
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

pub fn initialize() -> Value {
    json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "security-tests", "version": "0"}
        }
    })
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
        let www_authenticate = response
            .headers()
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().unwrap_or("<non-ascii>").to_string())
            .collect::<Vec<_>>()
            .join(", ");
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
// Server-sent events

/// One server-sent event.
#[derive(Debug)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

/// Reads server-sent events from a streaming response.
pub struct SseReader {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> Self {
        use futures::StreamExt;
        Self {
            stream: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event with data (comments skipped); `None` when the stream ends.
    pub async fn next(&mut self) -> Option<SseEvent> {
        use futures::StreamExt;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = String::from("message");
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        event = value.trim().to_string();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push(value.strip_prefix(' ').unwrap_or(value).to_string());
                    }
                }
                if !data.is_empty() {
                    return Some(SseEvent {
                        event,
                        data: data.join("\n"),
                    });
                }
            }
            match self.stream.next().await {
                Some(Ok(chunk)) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return None,
            }
        }
    }

    /// The next `message` event as JSON, within 10 s.
    pub async fn message(&mut self) -> Value {
        let event = tokio::time::timeout(Duration::from_secs(10), self.next())
            .await
            .expect("an SSE event in time")
            .expect("the stream is open");
        assert_eq!(event.event, "message");
        serde_json::from_str(&event.data).unwrap()
    }
}

/// How a legacy SSE request authenticates.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    Bearer(&'a str),
    /// A `Cookie` header value and an optional `Origin`.
    Cookie(&'a str, Option<&'a str>),
}

/// `GET /sse`; returns the reader and the `endpoint` path.
pub async fn open_sse(url: &str, auth: Auth<'_>) -> (SseReader, String) {
    let mut request = client()
        .get(format!("{url}/sse"))
        .header("accept", "text/event-stream");
    match auth {
        Auth::Bearer(token) => request = request.bearer_auth(token),
        Auth::Cookie(cookie, _) => request = request.header("cookie", cookie),
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200, "GET /sse");
    let mut reader = SseReader::new(response);
    let endpoint = tokio::time::timeout(Duration::from_secs(10), reader.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(endpoint.event, "endpoint");
    assert!(endpoint.data.starts_with("/messages?sessionId="));
    (reader, endpoint.data)
}

/// `POST <endpoint>` with a JSON-RPC body.
pub async fn post_message(url: &str, endpoint: &str, auth: Auth<'_>, body: &Value) -> Reply {
    let mut request = client()
        .post(format!("{url}{endpoint}"))
        .header("content-type", "application/json")
        .body(body.to_string());
    match auth {
        Auth::Bearer(token) => request = request.bearer_auth(token),
        Auth::Cookie(cookie, origin) => {
            request = request.header("cookie", cookie);
            if let Some(origin) = origin {
                request = request.header("origin", origin);
            }
        }
    }
    Reply::from(request.send().await.unwrap()).await
}

/// `initialize` + `notifications/initialized` over a legacy SSE session.
pub async fn sse_handshake(url: &str, endpoint: &str, auth: Auth<'_>, reader: &mut SseReader) {
    let reply = post_message(url, endpoint, auth, &initialize()).await;
    assert_eq!(reply.status, 202, "initialize: {}", reply.body);
    let message = reader.message().await;
    assert_eq!(message["id"], 1);
    let reply = post_message(
        url,
        endpoint,
        auth,
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(reply.status, 202);
}

pub fn call(id: u64, tool: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}})
}
