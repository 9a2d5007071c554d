//! The servers a client meets, for client tests: an MCP resource server and its
//! authorization server in one axum app on `127.0.0.1:0`, correct unless told to break
//! something ([`Break`]), recording what reached it.
//!
//! The resource server: `/mcp` (Origin checked first, then the Bearer token, only from the
//! `Authorization` header; 401 with `resource_metadata` and `scope`; the tool `admin` needs
//! the admin scope; JSON replies, SSE-framed for `tools/list`; an `Mcp-Session-Id` that
//! must come back), Protected Resource Metadata at the path-inserted and root well-known
//! URLs (CORS `*`). The authorization server, issuer `<base>/as`: RFC 8414 metadata (CORS
//! `*`), `/as/authorize` (approves at once: redirects to the `redirect_uri` with `code`,
//! `state` and `iss`), `/as/token` (authorization_code with PKCE S256 and `redirect_uri`
//! checked, refresh_token with rotation), `/as/register` (RFC 7591) and `/as/jwks`.
//!
//! ```no_run
//! # async fn example() {
//! use testkit::client_side::{Break, ClientSideConfig, ClientSideServer};
//! let server = ClientSideServer::start(ClientSideConfig::default().with(Break::NoS256)).await;
//! // ... point a client at server.mcp_url(), then:
//! assert_eq!(server.count("authorize"), 0);
//! # }
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::StreamExt as _;
use jsonwebtoken::jwk::JwkSet;
use serde_json::{Value, json};
use url::Url;

use crate::keys::TestKey;
use crate::server::now;

/// A response padded past the client's 256 KiB limit for it ([`Break::Oversized`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Oversized {
    /// The Protected Resource Metadata.
    ProtectedResourceMetadata,
    /// The authorization server metadata.
    AuthorizationServerMetadata,
    /// The registration response.
    Registration,
    /// The token response.
    Token,
}

/// One thing the servers do wrong. A server may have several ([`ClientSideConfig::with`],
/// [`ClientSideServer::add_break`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Break {
    // --- the resource server's challenge and checks
    /// A foreign `Origin` is not refused.
    OriginIgnored,
    /// No token: 403 instead of 401.
    Status403,
    /// No token: 401 without `WWW-Authenticate`.
    NoChallenge,
    /// The challenge has no `resource_metadata`.
    NoResourceMetadata,
    /// The challenge has no `scope`.
    NoScope,
    /// The challenge to a request without a token says `error="invalid_token"`.
    ErrorCodeWithoutToken,
    /// `GET /mcp` without a token opens an event stream.
    GetServedWithoutToken,
    /// An invalid token gets 400.
    InvalidToken400,
    /// An unsigned JWT naming this server as audience is accepted.
    UnsignedAccepted,
    /// The resource server refuses the tokens the authorization server issues.
    TokenRefused,
    /// A token in the query string is accepted.
    QueryTokenAccepted,
    /// A call that needs more scope gets 401.
    InsufficientScope401,
    /// The first call of each tool revokes its token and answers 401 `invalid_token`.
    ReauthorizePerTool,
    /// `initialize` (with a token) is answered with a JSON body that never ends.
    EndlessInitialize,
    // --- Protected Resource Metadata
    /// No Protected Resource Metadata anywhere, and none named by the challenge.
    NoPrm,
    /// The challenge's `resource_metadata` URL answers 404.
    ChallengeUrl404,
    /// No metadata at the path-inserted URL (the challenge names the root one).
    NoPathPrm,
    /// The root metadata URL answers 500.
    RootPrmBroken,
    /// The metadata is served as `text/plain`.
    PrmAsText,
    /// The path-inserted metadata names another resource (`<base>/other`).
    PrmWrongResource,
    /// The metadata lists no authorization server.
    NoAuthorizationServers,
    /// The metadata offers tokens in the query string.
    QueryBearerMethod,
    /// The metadata has no CORS header.
    PrmNoCors,
    /// The metadata lists `offline_access`.
    OfflineAccessAsked,
    // --- authorization server metadata
    /// No authorization server metadata anywhere.
    NoAsMetadata,
    /// The metadata only at `<issuer>/.well-known/oauth-authorization-server`.
    AsMetadataMisplaced,
    /// The metadata's issuer is another URL (`<base>/other`).
    IssuerMismatch,
    /// The metadata is served as `application/octet-stream`, as a static file server would.
    AsAsOctetStream,
    /// The metadata has no `response_types_supported`.
    NoResponseTypes,
    /// The metadata lists `plain` only, not `S256`.
    NoS256,
    /// Neither CIMD nor dynamic registration in the metadata.
    NoRegistration,
    /// `iss` is sent in the callback but not advertised.
    IssNotAdvertised,
    /// The metadata has no CORS header.
    AsNoCors,
    /// DPoP advertised with `none` and `HS256`.
    DpopWeakAlgs,
    /// The metadata names a plain-http JWKS off loopback.
    PlainHttpEndpoint,
    // --- the authorization redirect
    /// The callback has no `iss`.
    IssAbsent,
    /// The callback's `iss` is another authorization server.
    IssWrong,
    /// The callback carries another `state` than the one sent.
    WrongState,
    /// The callback carries `error=access_denied` (with HTML in its description).
    CallbackError,
    /// `/as/authorize` shows a login form instead of redirecting.
    LoginPage,
    /// The admin scope is never granted, however often it is asked for.
    AdminScopeNeverGranted,
    // --- the token endpoint
    /// The token endpoint answers 500.
    TokenEndpointDown,
    /// The access token's `aud` is not the requested resource.
    AudienceIgnored,
    // --- sizes
    /// One response padded past the client's limit.
    Oversized(Oversized),
}

/// How the servers behave when nothing is broken.
#[derive(Debug, Clone)]
pub struct ClientSideConfig {
    /// The authorization server the PRM names (default: this one).
    pub prm_authorization_server: Option<String>,
    /// The PRM's `scopes_supported`.
    pub prm_scopes: Vec<String>,
    /// The scopes (space-separated) every MCP request needs, named in the challenge.
    pub required_scope: Option<String>,
    /// The scope the tool `admin` needs besides.
    pub admin_scope: Option<String>,
    /// The authorization server metadata's `scopes_supported`.
    pub as_scopes: Vec<String>,
    /// The metadata's `token_endpoint_auth_methods_supported`.
    pub token_auth_methods: Vec<String>,
    /// Whether the metadata says `client_id_metadata_document_supported`.
    pub cimd: bool,
    /// The metadata's `dpop_signing_alg_values_supported` (absent when empty).
    pub dpop_algs: Vec<String>,
    /// `expires_in` of access tokens (and `exp`, when signed).
    pub expires_in: u64,
    /// Whether token responses carry a refresh token.
    pub refresh_tokens: bool,
    /// Whether a refresh returns a new refresh token and forgets the old one.
    pub rotate_refresh: bool,
    /// Tools `tool-1` .. `tool-N` listed besides `echo` and `admin`, without arguments.
    pub extra_tools: usize,
    /// Whether `initialize` assigns an `Mcp-Session-Id` that later requests must carry
    /// (with `MCP-Protocol-Version`).
    pub sessions: bool,
    /// Access tokens are JWTs with this `aud` (no `aud` claim when empty) instead of opaque
    /// strings. `{resource}` stands for the `resource` of the token request.
    pub jwt_audience: Option<Vec<String>>,
    /// The `aud` of JWT access tokens issued by the refresh grant, if other.
    pub jwt_audience_on_refresh: Option<Vec<String>>,
    /// Access tokens are JWTs signed with this key (published at `/as/jwks`), for a real
    /// resource server; their `aud` is the requested `resource` unless `jwt_audience` says.
    pub signing_key: Option<TestKey>,
    /// What is broken from the start.
    pub breaks: Vec<Break>,
}

impl Default for ClientSideConfig {
    fn default() -> Self {
        Self {
            prm_authorization_server: None,
            prm_scopes: vec!["mcp:tools".into()],
            required_scope: Some("mcp:tools".into()),
            admin_scope: Some("mcp:admin".into()),
            as_scopes: vec![
                "mcp:tools".into(),
                "mcp:admin".into(),
                "offline_access".into(),
            ],
            token_auth_methods: vec!["none".into()],
            cimd: false,
            dpop_algs: Vec::new(),
            expires_in: 3600,
            refresh_tokens: true,
            rotate_refresh: true,
            extra_tools: 0,
            sessions: true,
            jwt_audience: None,
            jwt_audience_on_refresh: None,
            signing_key: None,
            breaks: Vec::new(),
        }
    }
}

impl ClientSideConfig {
    /// Everything a 2025-11-25 audit looks for: both scopes in the PRM (no
    /// `offline_access` anywhere), CIMD, DPoP algorithms, JWT access tokens for the
    /// requested resource, no refresh tokens.
    pub fn complete() -> Self {
        Self {
            prm_scopes: vec!["mcp:tools".into(), "mcp:admin".into()],
            as_scopes: vec!["mcp:tools".into(), "mcp:admin".into()],
            cimd: true,
            dpop_algs: vec!["ES256".into(), "EdDSA".into()],
            expires_in: 600,
            refresh_tokens: false,
            jwt_audience: Some(vec!["{resource}".into()]),
            ..Self::default()
        }
    }

    /// The same, with `broken` added.
    pub fn with(mut self, broken: Break) -> Self {
        self.breaks.push(broken);
        self
    }
}

/// What the authorization server has issued and the resource server has seen.
#[derive(Default)]
struct Issued {
    /// access token -> granted scopes
    access: HashMap<String, Vec<String>>,
    /// refresh token -> granted scopes
    refresh: HashMap<String, Vec<String>>,
    /// code -> what it was issued for
    codes: HashMap<String, Code>,
    counter: u64,
    /// Tools called once ([`Break::ReauthorizePerTool`]).
    called: HashSet<String>,
    from_refresh: Vec<String>,
    presented: Vec<String>,
}

struct Code {
    challenge: String,
    scopes: Vec<String>,
    redirect_uri: String,
    resource: String,
}

struct Shared {
    base: String,
    config: ClientSideConfig,
    breaks: Mutex<HashSet<Break>>,
    issued: Mutex<Issued>,
    log: Mutex<Vec<String>>,
    client_auth: Mutex<Vec<String>>,
    streamed: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn broken(&self, b: Break) -> bool {
        lock(&self.breaks).contains(&b)
    }

    fn issuer(&self) -> String {
        format!("{}/as", self.base)
    }

    fn push(&self, line: String) {
        lock(&self.log).push(line);
    }
}

type S = State<Arc<Shared>>;

/// The running servers; stopped on drop.
pub struct ClientSideServer {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ClientSideServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ClientSideServer {
    /// Binds `127.0.0.1:0` and serves.
    pub async fn start(config: ClientSideConfig) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let shared = Arc::new(Shared {
            base: base.clone(),
            breaks: Mutex::new(config.breaks.iter().copied().collect()),
            config,
            issued: Mutex::default(),
            log: Mutex::default(),
            client_auth: Mutex::default(),
            streamed: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/mcp", any(mcp))
            .route("/.well-known/oauth-protected-resource/mcp", get(prm_path))
            .route("/.well-known/oauth-protected-resource", get(prm_root))
            .route(
                "/.well-known/oauth-authorization-server/as",
                get(as_metadata),
            )
            .route(
                "/as/.well-known/oauth-authorization-server",
                get(as_metadata_misplaced),
            )
            .route("/as/authorize", get(authorize))
            .route("/as/token", post(token))
            .route("/as/register", post(register))
            .route("/as/jwks", get(jwks))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { base, shared, task }
    }

    /// `<base>/mcp`.
    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.base)
    }

    /// `<base>/as`.
    pub fn issuer(&self) -> String {
        self.shared.issuer()
    }

    /// Breaks one more thing, from now on.
    pub fn add_break(&self, broken: Break) {
        lock(&self.shared.breaks).insert(broken);
    }

    /// Stops serving: the port refuses connections from now on.
    pub fn stop(&self) {
        self.task.abort();
    }

    /// One line per notable request, never a token: `authorize scope=… resource=…
    /// method=…`, `token grant=… resource=…`, `mcp <method> <status>`,
    /// `register application_type=…`.
    pub fn log(&self) -> Vec<String> {
        lock(&self.shared.log).clone()
    }

    /// How many log lines start with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.log().iter().filter(|l| l.starts_with(prefix)).count()
    }

    /// The client authentication of each token request: the `Authorization` scheme
    /// (`Basic`, …) or `none`.
    pub fn client_auth(&self) -> Vec<String> {
        lock(&self.shared.client_auth).clone()
    }

    /// Every bearer token presented at `/mcp` (for assertions; never print them).
    pub fn presented(&self) -> Vec<String> {
        lock(&self.shared.issued).presented.clone()
    }

    /// Access tokens minted by the refresh grant.
    pub fn from_refresh(&self) -> Vec<String> {
        lock(&self.shared.issued).from_refresh.clone()
    }

    /// Bytes of the endless `initialize` reply handed to the connection so far.
    pub fn streamed(&self) -> usize {
        self.shared.streamed.load(Ordering::Relaxed)
    }

    /// Forgets every access token (as if they had expired): the next request gets 401.
    pub fn revoke_access_tokens(&self) {
        lock(&self.shared.issued).access.clear();
    }

    /// Forgets every refresh token: refreshing fails with `invalid_grant`.
    pub fn revoke_refresh_tokens(&self) {
        lock(&self.shared.issued).refresh.clear();
    }
}

/// Adds 300 KiB to a JSON object (an unknown member, which readers ignore).
fn pad(mut v: Value) -> Value {
    v["padding"] = json!("x".repeat(300 * 1024));
    v
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn claims_of(token: &str) -> Option<(Value, Value)> {
    let mut parts = token.split('.');
    let dec = |p: &str| -> Option<Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()
    };
    Some((dec(parts.next()?)?, dec(parts.next()?)?))
}

/// The RFC 7636 S256 challenge of `verifier`.
fn s256(verifier: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

fn json_response(cors: bool, content_type: &'static str, body: &Value) -> Response {
    let mut resp = ([(header::CONTENT_TYPE, content_type)], body.to_string()).into_response();
    if cors {
        resp.headers_mut()
            .insert("access-control-allow-origin", "*".parse().unwrap());
    }
    resp
}

// ---------------------------------------------------------------------------
// The resource server

fn challenge(s: &Shared, error: Option<&str>, scope: Option<&str>) -> String {
    let mut parts = Vec::new();
    if let Some(e) = error {
        parts.push(format!("error=\"{e}\""));
    }
    if let Some(sc) = scope {
        parts.push(format!("scope=\"{sc}\""));
    }
    let rm = if s.broken(Break::NoResourceMetadata) || s.broken(Break::NoPrm) {
        None
    } else if s.broken(Break::ChallengeUrl404) {
        Some(format!(
            "{}/.well-known/oauth-protected-resource/elsewhere",
            s.base
        ))
    } else if s.broken(Break::NoPathPrm) {
        Some(format!("{}/.well-known/oauth-protected-resource", s.base))
    } else {
        Some(format!(
            "{}/.well-known/oauth-protected-resource/mcp",
            s.base
        ))
    };
    if let Some(rm) = rm {
        parts.push(format!("resource_metadata=\"{rm}\""));
    }
    if parts.is_empty() {
        "Bearer".to_owned()
    } else {
        format!("Bearer {}", parts.join(", "))
    }
}

fn refuse(
    s: &Shared,
    method: &str,
    status: StatusCode,
    error: Option<&str>,
    scope: Option<&str>,
) -> Response {
    s.push(format!("mcp {method} {}", status.as_u16()));
    let mut resp = (
        status,
        axum::Json(json!({"error": error.unwrap_or("unauthorized")})),
    )
        .into_response();
    if !s.broken(Break::NoChallenge) {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            challenge(s, error, scope).parse().unwrap(),
        );
    }
    resp
}

fn endless_initialize(s: &Arc<Shared>) -> Response {
    let s = s.clone();
    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
    let endless = futures::stream::once(async {
        Ok::<_, std::convert::Infallible>(Bytes::from_static(
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"padding\":\"",
        ))
    })
    .chain(futures::stream::repeat(chunk).map(move |c| {
        s.streamed.fetch_add(c.len(), Ordering::Relaxed);
        Ok(c)
    }));
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(endless),
    )
        .into_response()
}

async fn mcp(
    State(s): S,
    http_method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let method = msg["method"].as_str().unwrap_or("").to_owned();
    let required = if s.broken(Break::NoScope) {
        None
    } else {
        s.config.required_scope.clone()
    };
    let required = required.as_deref();
    let invalid_token = || {
        refuse(
            &s,
            &method,
            StatusCode::UNAUTHORIZED,
            Some("invalid_token"),
            required,
        )
    };
    if !s.broken(Break::OriginIgnored)
        && let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())
        && origin != s.base
    {
        return (StatusCode::FORBIDDEN, "Origin not allowed").into_response();
    }
    let query_token = uri.query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v.into_owned())
    });
    let header_token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let token = match (header_token, query_token) {
        (h, Some(q)) if s.broken(Break::QueryTokenAccepted) => h.or(Some(q)),
        (_, Some(q)) => {
            // Refused, and (sloppily) echoed back: a client must not repeat it.
            let echo = format!(
                "Bearer error=\"invalid_request\", error_description=\"the token {q} was sent in the query string\""
            );
            return (
                StatusCode::BAD_REQUEST,
                [(header::WWW_AUTHENTICATE, echo)],
                "tokens go in the Authorization header",
            )
                .into_response();
        }
        (h, None) => h,
    };
    let Some(token) = token else {
        if s.broken(Break::GetServedWithoutToken) && http_method == Method::GET {
            return ([(header::CONTENT_TYPE, "text/event-stream")], ": open\n\n").into_response();
        }
        let status = if s.broken(Break::Status403) {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::UNAUTHORIZED
        };
        let error = s
            .broken(Break::ErrorCodeWithoutToken)
            .then_some("invalid_token");
        return refuse(&s, &method, status, error, required);
    };
    let unsigned_ok = s.broken(Break::UnsignedAccepted)
        && claims_of(&token)
            .is_some_and(|(h, c)| h["alg"] == "none" && c["aud"] == format!("{}/mcp", s.base));
    let scopes = {
        let mut issued = lock(&s.issued);
        issued.presented.push(token.clone());
        if s.broken(Break::TokenRefused) {
            None
        } else {
            issued.access.get(&token).cloned()
        }
    };
    let scopes = match (scopes, unsigned_ok) {
        (Some(sc), _) => sc,
        (None, true) => required
            .map(|r| r.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        (None, false) => {
            if s.broken(Break::InvalidToken400) {
                return (StatusCode::BAD_REQUEST, "bad token").into_response();
            }
            return invalid_token();
        }
    };
    if http_method != Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    if s.broken(Break::EndlessInitialize) && method == "initialize" {
        return endless_initialize(&s);
    }
    if s.broken(Break::ReauthorizePerTool) && method == "tools/call" {
        let name = msg["params"]["name"].as_str().unwrap_or("").to_owned();
        let mut issued = lock(&s.issued);
        if issued.called.insert(name) {
            issued.access.remove(&token);
            drop(issued);
            return invalid_token();
        }
    }
    let mut needed: Vec<String> = required
        .map(|r| r.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    if method == "tools/call" && msg["params"]["name"] == "admin" {
        needed.extend(s.config.admin_scope.iter().cloned());
    }
    if !needed.iter().all(|n| scopes.contains(n)) {
        if s.broken(Break::InsufficientScope401) {
            return invalid_token();
        }
        return refuse(
            &s,
            &method,
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
            Some(&needed.join(" ")),
        );
    }
    // After initialize, the session id and the negotiated version must come back.
    if s.config.sessions && method != "initialize" {
        let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if h("mcp-session-id") != Some("kit-session")
            || h("mcp-protocol-version") != Some("2025-11-25")
        {
            s.push(format!("mcp {method} 400"));
            return (
                StatusCode::BAD_REQUEST,
                "missing Mcp-Session-Id or MCP-Protocol-Version",
            )
                .into_response();
        }
    }
    s.push(format!("mcp {method} 200"));
    let id = msg["id"].clone();
    let result = match method.as_str() {
        "initialize" => {
            let body = json!({"jsonrpc": "2.0", "id": id, "result": {
                "protocolVersion": "2025-11-25",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "testkit client-side server", "version": "1"}
            }});
            if s.config.sessions {
                return ([("mcp-session-id", "kit-session")], axum::Json(body)).into_response();
            }
            return axum::Json(body).into_response();
        }
        m if m.starts_with("notifications/") => return StatusCode::ACCEPTED.into_response(),
        "tools/list" => {
            let mut tools = vec![
                json!({"name": "echo", "inputSchema": {"type": "object"}}),
                json!({"name": "admin", "inputSchema": {"type": "object"}}),
            ];
            for n in 1..=s.config.extra_tools {
                tools.push(json!({"name": format!("tool-{n}"), "inputSchema": {"type": "object"}}));
            }
            let reply = json!({"jsonrpc": "2.0", "id": id, "result": {"tools": tools}});
            return (
                [(header::CONTENT_TYPE, "text/event-stream")],
                format!(": comment\n\nevent: message\ndata: {reply}\n\n"),
            )
                .into_response();
        }
        "tools/call" => json!({"content": [{"type": "text",
            "text": format!("called {}", msg["params"]["name"].as_str().unwrap_or(""))}]}),
        _ => {
            return axum::Json(json!({"jsonrpc": "2.0", "id": id,
                "error": {"code": -32601, "message": "method not found"}}))
            .into_response();
        }
    };
    axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response()
}

// ---------------------------------------------------------------------------
// Protected Resource Metadata

fn prm_document(s: &Shared, resource: String) -> Value {
    let mut doc = json!({
        "resource": resource,
        "authorization_servers": [s
            .config
            .prm_authorization_server
            .clone()
            .unwrap_or_else(|| s.issuer())],
        "scopes_supported": s.config.prm_scopes,
        "bearer_methods_supported": ["header"],
    });
    if s.broken(Break::NoAuthorizationServers) {
        doc.as_object_mut().unwrap().remove("authorization_servers");
    }
    if s.broken(Break::QueryBearerMethod) {
        doc["bearer_methods_supported"] = json!(["header", "query"]);
    }
    if s.broken(Break::OfflineAccessAsked) {
        doc["scopes_supported"]
            .as_array_mut()
            .unwrap()
            .push(json!("offline_access"));
    }
    if s.broken(Break::Oversized(Oversized::ProtectedResourceMetadata)) {
        doc = pad(doc);
    }
    doc
}

fn prm_response(s: &Shared, doc: &Value) -> Response {
    let ctype = if s.broken(Break::PrmAsText) {
        "text/plain"
    } else {
        "application/json"
    };
    json_response(!s.broken(Break::PrmNoCors), ctype, doc)
}

async fn prm_path(State(s): S) -> Response {
    if s.broken(Break::NoPrm) || s.broken(Break::NoPathPrm) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let resource = if s.broken(Break::PrmWrongResource) {
        format!("{}/other", s.base)
    } else {
        format!("{}/mcp", s.base)
    };
    prm_response(&s, &prm_document(&s, resource))
}

async fn prm_root(State(s): S) -> Response {
    if s.broken(Break::NoPrm) {
        return StatusCode::NOT_FOUND.into_response();
    }
    if s.broken(Break::RootPrmBroken) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "oops").into_response();
    }
    // The challenge names this document, so it describes the MCP URL (MCP allows that).
    let resource = if s.broken(Break::NoPathPrm) {
        format!("{}/mcp", s.base)
    } else {
        s.base.clone()
    };
    prm_response(&s, &prm_document(&s, resource))
}

// ---------------------------------------------------------------------------
// The authorization server

fn as_document(s: &Shared) -> Value {
    let issuer = s.issuer();
    let mut md = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "registration_endpoint": format!("{issuer}/register"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": s.config.token_auth_methods,
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": s.config.as_scopes,
        "authorization_response_iss_parameter_supported": true,
    });
    let o = md.as_object_mut().unwrap();
    if s.config.cimd {
        o.insert("client_id_metadata_document_supported".into(), json!(true));
    }
    if !s.config.dpop_algs.is_empty() {
        o.insert(
            "dpop_signing_alg_values_supported".into(),
            json!(s.config.dpop_algs),
        );
    }
    if s.broken(Break::PlainHttpEndpoint) {
        o.insert("jwks_uri".into(), json!("http://as.example.test/jwks"));
    }
    if s.broken(Break::IssuerMismatch) {
        o.insert("issuer".into(), json!(format!("{}/other", s.base)));
    }
    if s.broken(Break::NoResponseTypes) {
        o.remove("response_types_supported");
    }
    if s.broken(Break::NoS256) {
        o.insert("code_challenge_methods_supported".into(), json!(["plain"]));
    }
    if s.broken(Break::NoRegistration) {
        o.remove("registration_endpoint");
        o.remove("client_id_metadata_document_supported");
    }
    if s.broken(Break::IssNotAdvertised) {
        o.remove("authorization_response_iss_parameter_supported");
    }
    if s.broken(Break::DpopWeakAlgs) {
        o.insert(
            "dpop_signing_alg_values_supported".into(),
            json!(["none", "HS256"]),
        );
    }
    if s.broken(Break::Oversized(Oversized::AuthorizationServerMetadata)) {
        md = pad(md);
    }
    md
}

fn as_response(s: &Shared) -> Response {
    let ctype = if s.broken(Break::AsAsOctetStream) {
        "application/octet-stream"
    } else {
        "application/json"
    };
    json_response(!s.broken(Break::AsNoCors), ctype, &as_document(s))
}

async fn as_metadata(State(s): S) -> Response {
    if s.broken(Break::NoAsMetadata) || s.broken(Break::AsMetadataMisplaced) {
        return StatusCode::NOT_FOUND.into_response();
    }
    as_response(&s)
}

async fn as_metadata_misplaced(State(s): S) -> Response {
    if !s.broken(Break::AsMetadataMisplaced) {
        return StatusCode::NOT_FOUND.into_response();
    }
    as_response(&s)
}

async fn jwks(State(s): S) -> Response {
    let key = s.config.signing_key.clone().unwrap_or_else(TestKey::rsa1);
    axum::Json(JwkSet {
        keys: vec![key.jwk()],
    })
    .into_response()
}

async fn register(State(s): S, axum::Json(body): axum::Json<Value>) -> Response {
    s.push(format!(
        "register application_type={}",
        body["application_type"].as_str().unwrap_or("(none)")
    ));
    let mut out = body;
    out["client_id"] = json!("dyn-client-1");
    if s.broken(Break::Oversized(Oversized::Registration)) {
        out = pad(out);
    }
    (StatusCode::CREATED, axum::Json(out)).into_response()
}

async fn authorize(State(s): S, Query(q): Query<HashMap<String, String>>) -> Response {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let scope = get("scope");
    s.push(format!(
        "authorize scope={scope} resource={} method={}",
        get("resource"),
        get("code_challenge_method"),
    ));
    if s.broken(Break::LoginPage) {
        return axum::response::Html("<form method=post><input name=login></form>").into_response();
    }
    let redirect = get("redirect_uri");
    let Ok(mut url) = Url::parse(&redirect) else {
        return (StatusCode::BAD_REQUEST, "redirect_uri is not a URL").into_response();
    };
    let state = if s.broken(Break::WrongState) {
        "forged-state".to_owned()
    } else {
        get("state")
    };
    {
        let mut p = url.query_pairs_mut();
        if s.broken(Break::CallbackError) {
            p.append_pair("error", "access_denied")
                .append_pair("error_description", "<b>denied</b> by the test");
        } else {
            let mut issued = lock(&s.issued);
            issued.counter += 1;
            let code = format!("code-{}", issued.counter);
            let mut scopes: Vec<String> = scope.split_whitespace().map(str::to_owned).collect();
            if s.broken(Break::AdminScopeNeverGranted)
                && let Some(admin) = &s.config.admin_scope
            {
                scopes.retain(|g| g != admin);
            }
            issued.codes.insert(
                code.clone(),
                Code {
                    challenge: get("code_challenge"),
                    scopes,
                    redirect_uri: redirect.clone(),
                    resource: get("resource"),
                },
            );
            p.append_pair("code", &code);
        }
        p.append_pair("state", &state);
        if s.broken(Break::IssWrong) {
            p.append_pair("iss", "http://127.0.0.1:1/elsewhere");
        } else if !s.broken(Break::IssAbsent) {
            p.append_pair("iss", &s.issuer());
        }
    }
    (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response()
}

fn oauth_error(error: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": error, "error_description": "refused by the test server"})),
    )
        .into_response()
}

/// The access token for `scopes` and `resource`, by the config's token form.
fn mint(s: &Shared, n: u64, grant: &str, resource: &str, scopes: &[String]) -> String {
    let audience = match (&s.config.jwt_audience_on_refresh, grant) {
        (Some(aud), "refresh_token") => Some(aud),
        _ => s.config.jwt_audience.as_ref(),
    };
    let mut aud: Option<Value> = audience.map(|aud| {
        json!(
            aud.iter()
                .map(|a| a.replace("{resource}", resource))
                .collect::<Vec<_>>()
        )
    });
    if s.broken(Break::AudienceIgnored) {
        aud = Some(json!("some-client-id"));
    }
    if let Some(key) = &s.config.signing_key {
        let now = now();
        let mut claims = json!({
            "iss": s.issuer(), "sub": "alice", "aud": resource, "exp": now + s.config.expires_in,
            "iat": now, "scope": scopes.join(" "), "client_id": "mcp-client", "jti": format!("{n}-{}", rand::random::<u64>()),
        });
        if let Some(aud) = aud {
            claims["aud"] = aud;
        }
        return key.sign(&claims);
    }
    let Some(aud) = aud else {
        return format!("secret-access-{n}");
    };
    let mut claims = json!({"iss": s.issuer(), "sub": "alice", "scope": scopes.join(" "), "n": n});
    if aud.as_array().is_none_or(|a| !a.is_empty()) {
        claims["aud"] = aud;
    }
    // Not signed (the server looks tokens up); the last part keeps a marker tests look
    // for in output that must not hold tokens.
    format!(
        "{}.{}.secret-access-{n}",
        b64(&json!({"alg": "RS256", "typ": "at+jwt"})),
        b64(&claims)
    )
}

async fn token(
    State(s): S,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let grant = get("grant_type");
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or("none");
    s.push(format!("token grant={grant} resource={}", get("resource")));
    lock(&s.client_auth).push(auth.to_owned());
    if s.broken(Break::TokenEndpointDown) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "token endpoint down").into_response();
    }
    let mut issued = lock(&s.issued);
    let (scopes, resource) = match grant.as_str() {
        "authorization_code" => {
            let Some(code) = issued.codes.remove(&get("code")) else {
                return oauth_error("invalid_grant");
            };
            if s256(&get("code_verifier")) != code.challenge
                || get("redirect_uri") != code.redirect_uri
            {
                return oauth_error("invalid_grant");
            }
            let resource = f.get("resource").cloned().unwrap_or(code.resource);
            (code.scopes, resource)
        }
        "refresh_token" => {
            let rt = get("refresh_token");
            let found = if s.config.rotate_refresh {
                issued.refresh.remove(&rt)
            } else {
                issued.refresh.get(&rt).cloned()
            };
            let Some(scopes) = found else {
                return oauth_error("invalid_grant");
            };
            (scopes, get("resource"))
        }
        _ => return oauth_error("unsupported_grant_type"),
    };
    issued.counter += 1;
    let n = issued.counter;
    let access = mint(&s, n, &grant, &resource, &scopes);
    issued.access.insert(access.clone(), scopes.clone());
    if grant == "refresh_token" {
        issued.from_refresh.push(access.clone());
    }
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": s.config.expires_in,
        "scope": scopes.join(" "),
    });
    let keep_old = grant == "refresh_token" && !s.config.rotate_refresh;
    if s.config.refresh_tokens && !keep_old {
        let rt = format!("secret-refresh-{n}");
        issued.refresh.insert(rt.clone(), scopes);
        body["refresh_token"] = json!(rt);
    }
    if s.broken(Break::Oversized(Oversized::Token)) {
        body = pad(body);
    }
    axum::Json(body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_rfc_7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[tokio::test]
    async fn approves_by_redirect_with_code_state_and_iss_and_checks_pkce() {
        let server = ClientSideServer::start(ClientSideConfig::default()).await;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = s256(verifier);
        let authorize = async || {
            let resp = http
                .get(format!("{}/authorize", server.issuer()))
                .query(&[
                    ("redirect_uri", "http://127.0.0.1:9/cb"),
                    ("state", "st"),
                    ("scope", "mcp:tools"),
                    ("code_challenge", challenge.as_str()),
                    ("code_challenge_method", "S256"),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 302);
            let location = Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
            let q: HashMap<String, String> = location.query_pairs().into_owned().collect();
            assert_eq!(q["state"], "st");
            assert_eq!(q["iss"], server.issuer());
            q["code"].clone()
        };
        let token = async |code: &str, verifier: &str| {
            http.post(format!("{}/token", server.issuer()))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("code_verifier", verifier),
                    ("redirect_uri", "http://127.0.0.1:9/cb"),
                ])
                .send()
                .await
                .unwrap()
        };
        let code = authorize().await;
        assert_eq!(token(&code, "wrong-verifier").await.status(), 400);
        let code = authorize().await;
        let ok = token(&code, verifier).await;
        assert_eq!(ok.status(), 200);
        let body: Value = ok.json().await.unwrap();
        assert_eq!(body["scope"], "mcp:tools");
        assert!(body["refresh_token"].is_string());
        assert_eq!(server.count("token grant=authorization_code"), 2);
        assert!(server.log()[0].starts_with("authorize scope=mcp:tools"));
        // The token opens /mcp; nothing in the log holds it.
        let access = body["access_token"].as_str().unwrap();
        assert!(server.log().iter().all(|l| !l.contains(access)));
    }

    #[tokio::test]
    async fn a_break_added_later_applies_to_the_next_request() {
        let server = ClientSideServer::start(ClientSideConfig::default()).await;
        let url = format!("{}/.well-known/oauth-authorization-server/as", server.base);
        let md: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
        assert_eq!(md["code_challenge_methods_supported"], json!(["S256"]));
        server.add_break(Break::NoS256);
        let md: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
        assert_eq!(md["code_challenge_methods_supported"], json!(["plain"]));
    }
}
