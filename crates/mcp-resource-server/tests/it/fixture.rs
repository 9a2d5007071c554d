//! A test authorization server (OIDC metadata + JWKS on 127.0.0.1:0, with a fetch
//! counter, key rotation and an outage switch), token signing helpers, and helpers to
//! start the resource server and speak MCP to it.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
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
use futures::StreamExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk::Jwk, jwk::JwkSet};
use mcp_resource_server::{Config, config::JwksConfig};
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub const RSA1_PEM: &[u8] = include_bytes!("../keys/rsa1.pem");
pub const RSA1_PUB_PEM: &[u8] = include_bytes!("../keys/rsa1.pub.pem");
pub const RSA2_PEM: &[u8] = include_bytes!("../keys/rsa2.pem");
pub const EC_PEM: &[u8] = include_bytes!("../keys/ec256.pem");
pub const ED_PEM: &[u8] = include_bytes!("../keys/ed25519.pem");

/// A signing key with its `kid` and algorithm.
#[derive(Clone)]
pub struct TestKey {
    pub kid: &'static str,
    pub alg: Algorithm,
    pub key: EncodingKey,
}

impl TestKey {
    pub fn rsa1() -> Self {
        Self {
            kid: "rsa-1",
            alg: Algorithm::RS256,
            key: EncodingKey::from_rsa_pem(RSA1_PEM).unwrap(),
        }
    }
    pub fn rsa2() -> Self {
        Self {
            kid: "rsa-2",
            alg: Algorithm::RS256,
            key: EncodingKey::from_rsa_pem(RSA2_PEM).unwrap(),
        }
    }
    pub fn ec() -> Self {
        Self {
            kid: "ec-1",
            alg: Algorithm::ES256,
            key: EncodingKey::from_ec_pem(EC_PEM).unwrap(),
        }
    }
    pub fn ed() -> Self {
        Self {
            kid: "ed-1",
            alg: Algorithm::EdDSA,
            key: EncodingKey::from_ed_pem(ED_PEM).unwrap(),
        }
    }

    pub fn jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.key, self.alg).unwrap();
        jwk.common.key_id = Some(self.kid.to_string());
        jwk
    }

    /// Signs `claims` with this key; `typ` goes into the header when given.
    pub fn sign(&self, claims: &Value, typ: Option<&str>) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.to_string());
        header.typ = typ.map(str::to_string);
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[derive(Clone)]
struct AsState {
    issuer: String,
    keys: Arc<Mutex<Vec<Jwk>>>,
    fetches: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
}

/// The test authorization server.
#[derive(Clone)]
pub struct TestAs {
    pub issuer: String,
    pub jwks_uri: String,
    keys: Arc<Mutex<Vec<Jwk>>>,
    fetches: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
}

impl TestAs {
    /// Starts an AS whose issuer has the path `/dex` (as Dex's does), publishing `keys`.
    pub async fn start(keys: &[TestKey]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}/dex", listener.local_addr().unwrap());
        let state = AsState {
            issuer: issuer.clone(),
            keys: Arc::new(Mutex::new(keys.iter().map(TestKey::jwk).collect())),
            fetches: Arc::new(AtomicUsize::new(0)),
            down: Arc::new(AtomicBool::new(false)),
        };
        let app = Router::new()
            .route("/dex/.well-known/openid-configuration", get(metadata))
            .route("/dex/keys", get(jwks))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            jwks_uri: format!("{issuer}/keys"),
            issuer,
            keys: state.keys,
            fetches: state.fetches,
            down: state.down,
        }
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    pub fn set_keys(&self, keys: &[TestKey]) {
        *self.keys.lock().unwrap() = keys.iter().map(TestKey::jwk).collect();
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// RFC 9068-shaped claims for `aud`, with `scope`.
    pub fn claims(&self, sub: &str, aud: &str, scope: &str) -> Value {
        let now = now();
        json!({
            "iss": self.issuer, "sub": sub, "aud": aud, "exp": now + 300, "iat": now,
            "scope": scope, "client_id": "test-client", "jti": format!("{sub}-{now}")
        })
    }
}

async fn metadata(State(state): State<AsState>) -> Response {
    if state.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    Json(json!({
        "issuer": state.issuer,
        "authorization_endpoint": format!("{}/auth", state.issuer),
        "token_endpoint": format!("{}/token", state.issuer),
        "jwks_uri": format!("{}/keys", state.issuer),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256", "plain"]
    }))
    .into_response()
}

async fn jwks(State(state): State<AsState>) -> Response {
    state.fetches.fetch_add(1, Ordering::SeqCst);
    if state.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let set = JwkSet {
        keys: state.keys.lock().unwrap().clone(),
    };
    ([(header::CACHE_CONTROL, "public, max-age=600")], Json(set)).into_response()
}

/// Test-friendly configuration: quick refetches, everything else default.
pub fn test_config(public_url: String, issuer: &str) -> Config {
    Config::new(public_url, issuer).with_jwks_config(JwksConfig {
        min_refetch_interval: Duration::from_millis(300),
        ..JwksConfig::default()
    })
}

/// Starts the resource server on 127.0.0.1:0 with the configuration `make` builds from
/// its public URL; returns that URL.
pub async fn start_rs(make: impl FnOnce(String) -> Config) -> String {
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
        .build()
        .unwrap()
}

/// Every `WWW-Authenticate` value (`Bearer` and `DPoP` challenges), joined.
pub fn www_authenticate(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all(header::WWW_AUTHENTICATE.as_str())
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One JSON-RPC exchange over Streamable HTTP; the reply may be JSON or SSE-framed.
pub struct Rpc {
    pub status: u16,
    pub session: Option<String>,
    pub www_authenticate: String,
    pub body: Option<Value>,
}

pub async fn rpc(url: &str, token: Option<&str>, session: Option<&str>, body: Value) -> Rpc {
    rpc_with(url, token, session, body, &[]).await
}

pub async fn rpc_with(
    url: &str,
    token: Option<&str>,
    session: Option<&str>,
    body: Value,
    extra: &[(&str, &str)],
) -> Rpc {
    let mut request = client()
        .post(format!("{url}/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let session = response
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_string());
    let www_authenticate = www_authenticate(&response);
    let is_sse = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap().starts_with("text/event-stream"));
    let text = response.text().await.unwrap();
    let body = if is_sse {
        text.lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
            .find(|v| v.get("id").is_some())
    } else {
        serde_json::from_str(&text).ok()
    };
    Rpc {
        status,
        session,
        www_authenticate,
        body,
    }
}

pub fn initialize() -> Value {
    json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "it", "version": "0"}
        }
    })
}

/// Opens a Streamable HTTP session (`initialize`, then `notifications/initialized`)
/// and returns its id.
pub async fn open_mcp_session(url: &str, token: &str) -> String {
    let init = rpc(url, Some(token), None, initialize()).await;
    assert_eq!(init.status, 200);
    let result = &init.body.as_ref().unwrap()["result"];
    assert_eq!(result["serverInfo"]["name"], "mcp-resource-server");
    let session = init.session.expect("stateful mode issues a session id");
    let notified = rpc(
        url,
        Some(token),
        Some(&session),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
    )
    .await;
    assert_eq!(notified.status, 202);
    session
}

/// Asks for the standalone `GET /mcp` event stream of `session`.
pub async fn standalone_stream(url: &str, token: &str, session: &str) -> reqwest::Response {
    client()
        .get(format!("{url}/mcp"))
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .unwrap()
}

pub fn call(id: u64, tool: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}})
}

/// Reads server-sent events from a streaming response.
pub struct SseReader {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

/// One server-sent event.
#[derive(Debug)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> Self {
        Self {
            stream: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event (comments and keep-alives skipped); `None` when the stream ends.
    pub async fn next(&mut self) -> Option<SseEvent> {
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

    /// The next `message` event parsed as JSON, within a few seconds.
    pub async fn message(&mut self) -> Value {
        let event = tokio::time::timeout(Duration::from_secs(10), self.next())
            .await
            .expect("an SSE event in time")
            .expect("the stream is open");
        assert_eq!(event.event, "message");
        serde_json::from_str(&event.data).unwrap()
    }
}
