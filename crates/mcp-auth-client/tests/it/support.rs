//! A small, real MCP resource server and authorization server (one axum app on
//! 127.0.0.1:0) whose behaviour each test configures, and a headless client for it.
//!
//! The resource server answers `/mcp` (JSON replies, SSE-framed for `tools/list`), serves
//! its PRM, and checks Bearer tokens against those the authorization server issued.
//! The authorization server (issuer `<base>/as`) has RFC 8414 metadata, `/as/authorize`
//! (approves at once by redirect), `/as/token` (checks PKCE, records `resource`, rotates
//! refresh tokens) and `/as/register`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use mcp_auth_client::audience::AudiencePolicy;
use mcp_auth_client::authorize::{AuthorizeOptions, Interaction};
use mcp_auth_client::cache::Cache;
use mcp_auth_client::mcp::sse::SseAuth;
use mcp_auth_client::registration::ClientConfig;
use mcp_auth_client::trace::{Trace, Verbosity};
use mcp_auth_client::{ConnectionOptions, McpConnection, TransportChoice};
use mcp_auth_proto::Scopes;
use serde_json::{Value, json};
use url::Url;

/// What the callback carries about `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateMode {
    Echo,
    Wrong,
}

/// What the callback carries about `iss`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssMode {
    Absent,
    Correct,
    Wrong,
}

/// A response the mock pads past the client's 256 KiB limit for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oversized {
    ProtectedResourceMetadata,
    AuthorizationServerMetadata,
    Registration,
    Token,
}

/// Adds 300 KiB to a JSON object (an unknown member, which readers ignore).
fn pad(mut v: Value) -> Value {
    v["padding"] = json!("x".repeat(300 * 1024));
    v
}

/// The mock's behaviour.
#[derive(Debug, Clone)]
pub struct MockConfig {
    pub metadata_issuer_override: Option<String>,
    pub s256: bool,
    pub iss: IssMode,
    pub advertise_iss: bool,
    pub state: StateMode,
    pub callback_error: Option<String>,
    pub login_page: bool,
    pub prm_resource_override: Option<String>,
    pub prm_authorization_server: Option<String>,
    pub prm_scopes: Vec<String>,
    pub required_scope: Option<String>,
    pub admin_scope: Option<String>,
    pub never_grant: Option<String>,
    pub expires_in: u64,
    pub refresh_tokens: bool,
    pub rotate_refresh: bool,
    pub as_scopes: Vec<String>,
    /// Tools `tool-1` .. `tool-N` listed besides `echo` and `admin`, without arguments.
    pub extra_tools: usize,
    /// The first call of each tool revokes the token it came with and answers 401, as a
    /// server that wants a new authorization for every tool would.
    pub reauthorize_per_tool: bool,
    /// Access tokens are JWTs with this `aud` (no `aud` claim when empty), instead of
    /// opaque strings. `{resource}` stands for the `resource` of the token request.
    pub jwt_audience: Option<Vec<String>>,
    /// The `aud` of JWT access tokens issued by the refresh grant, if other.
    pub jwt_audience_on_refresh: Option<Vec<String>>,
    /// One response padded past the client's limit.
    pub oversized: Option<Oversized>,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            metadata_issuer_override: None,
            s256: true,
            iss: IssMode::Correct,
            advertise_iss: true,
            state: StateMode::Echo,
            callback_error: None,
            login_page: false,
            prm_resource_override: None,
            prm_authorization_server: None,
            prm_scopes: vec!["mcp:tools".into()],
            required_scope: Some("mcp:tools".into()),
            admin_scope: Some("mcp:admin".into()),
            never_grant: None,
            expires_in: 3600,
            refresh_tokens: true,
            rotate_refresh: true,
            as_scopes: vec![
                "mcp:tools".into(),
                "mcp:admin".into(),
                "offline_access".into(),
            ],
            extra_tools: 0,
            reauthorize_per_tool: false,
            jwt_audience: None,
            jwt_audience_on_refresh: None,
            oversized: None,
        }
    }
}

#[derive(Default)]
pub struct Issued {
    access: HashMap<String, Vec<String>>,
    refresh: HashMap<String, Vec<String>>,
    codes: HashMap<String, (String, Vec<String>, String)>,
    counter: u64,
    called: std::collections::HashSet<String>,
    /// Access tokens minted by the refresh grant.
    pub from_refresh: Vec<String>,
    /// Every bearer token presented at `/mcp`.
    pub presented: Vec<String>,
}

/// The running mock.
pub struct Mock {
    pub base: String,
    pub issued: Arc<Mutex<Issued>>,
    /// One line per notable request: `authorize scope=...`, `token grant=... resource=...`,
    /// `mcp <method> <status>`, `register application_type=...`.
    pub log: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct AppState {
    base: String,
    config: MockConfig,
    issued: Arc<Mutex<Issued>>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Mock {
    pub async fn start(config: MockConfig) -> Mock {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let issued = Arc::new(Mutex::new(Issued::default()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let state = AppState {
            base: base.clone(),
            config,
            issued: issued.clone(),
            log: log.clone(),
        };
        let app = Router::new()
            .route("/mcp", post(mcp))
            .route("/.well-known/oauth-protected-resource/mcp", get(prm))
            .route(
                "/.well-known/oauth-authorization-server/as",
                get(as_metadata),
            )
            .route("/as/authorize", get(authorize))
            .route("/as/token", post(token))
            .route("/as/register", post(register))
            .with_state(state);
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Mock {
            base,
            issued,
            log,
            task,
        }
    }

    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.base)
    }

    pub fn issuer(&self) -> String {
        format!("{}/as", self.base)
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn count(&self, prefix: &str) -> usize {
        self.log().iter().filter(|l| l.starts_with(prefix)).count()
    }

    /// Forgets every access token (as if they had expired): the next request gets 401.
    pub fn revoke_access_tokens(&self) {
        self.issued.lock().unwrap().access.clear();
    }

    /// Forgets every refresh token: refreshing fails with `invalid_grant`.
    pub fn revoke_refresh_tokens(&self) {
        self.issued.lock().unwrap().refresh.clear();
    }
}

fn push(log: &Arc<Mutex<Vec<String>>>, line: String) {
    log.lock().unwrap().push(line);
}

async fn prm(State(s): State<AppState>) -> Response {
    let resource = s
        .config
        .prm_resource_override
        .clone()
        .unwrap_or_else(|| format!("{}/mcp", s.base));
    let md = json!({
        "resource": resource,
        "authorization_servers": [s
            .config
            .prm_authorization_server
            .clone()
            .unwrap_or_else(|| format!("{}/as", s.base))],
        "scopes_supported": s.config.prm_scopes,
    });
    if s.config.oversized == Some(Oversized::ProtectedResourceMetadata) {
        return axum::Json(pad(md)).into_response();
    }
    axum::Json(md).into_response()
}

async fn as_metadata(State(s): State<AppState>) -> Response {
    let issuer = format!("{}/as", s.base);
    let mut md = json!({
        "issuer": s.config.metadata_issuer_override.clone().unwrap_or(issuer.clone()),
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "registration_endpoint": format!("{issuer}/register"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": s.config.as_scopes,
        "authorization_response_iss_parameter_supported": s.config.advertise_iss,
    });
    md["code_challenge_methods_supported"] = if s.config.s256 {
        json!(["S256"])
    } else {
        json!(["plain"])
    };
    if s.config.oversized == Some(Oversized::AuthorizationServerMetadata) {
        md = pad(md);
    }
    // Served the way a static file server would: not as JSON.
    (
        [(header::CONTENT_TYPE, "application/octet-stream")],
        md.to_string(),
    )
        .into_response()
}

async fn register(State(s): State<AppState>, axum::Json(body): axum::Json<Value>) -> Response {
    push(
        &s.log,
        format!(
            "register application_type={}",
            body["application_type"].as_str().unwrap_or("(none)")
        ),
    );
    let mut out = body.clone();
    out["client_id"] = json!("dyn-client-1");
    if s.config.oversized == Some(Oversized::Registration) {
        out = pad(out);
    }
    (StatusCode::CREATED, axum::Json(out)).into_response()
}

async fn authorize(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let scope = q.get("scope").cloned().unwrap_or_default();
    push(
        &s.log,
        format!(
            "authorize scope={scope} resource={} method={}",
            q.get("resource").cloned().unwrap_or_default(),
            q.get("code_challenge_method").cloned().unwrap_or_default()
        ),
    );
    if s.config.login_page {
        return axum::response::Html("<form method=post><input name=login></form>").into_response();
    }
    let redirect = q.get("redirect_uri").cloned().unwrap_or_default();
    let mut url = Url::parse(&redirect).unwrap();
    let state = match s.config.state {
        StateMode::Echo => q.get("state").cloned().unwrap_or_default(),
        StateMode::Wrong => "forged-state".to_owned(),
    };
    {
        let mut p = url.query_pairs_mut();
        if let Some(err) = &s.config.callback_error {
            p.append_pair("error", err)
                .append_pair("error_description", "<b>denied</b> by the test");
        } else {
            let mut issued = s.issued.lock().unwrap();
            issued.counter += 1;
            let code = format!("code-{}", issued.counter);
            let mut granted: Vec<String> = scope.split_whitespace().map(str::to_owned).collect();
            if let Some(never) = &s.config.never_grant {
                granted.retain(|g| g != never);
            }
            issued.codes.insert(
                code.clone(),
                (
                    q.get("code_challenge").cloned().unwrap_or_default(),
                    granted,
                    redirect.clone(),
                ),
            );
            p.append_pair("code", &code);
        }
        p.append_pair("state", &state);
        match s.config.iss {
            IssMode::Absent => {}
            IssMode::Correct => {
                p.append_pair("iss", &format!("{}/as", s.base));
            }
            IssMode::Wrong => {
                p.append_pair("iss", "http://127.0.0.1:1/elsewhere");
            }
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

async fn token(State(s): State<AppState>, Form(f): Form<HashMap<String, String>>) -> Response {
    let grant = f.get("grant_type").cloned().unwrap_or_default();
    let resource = f.get("resource").cloned().unwrap_or_default();
    push(&s.log, format!("token grant={grant} resource={resource}"));
    let mut issued = s.issued.lock().unwrap();
    let scopes = match grant.as_str() {
        "authorization_code" => {
            let Some((challenge, scopes, redirect)) = issued
                .codes
                .remove(f.get("code").map_or("", String::as_str))
            else {
                return oauth_error("invalid_grant");
            };
            let verifier =
                oauth2::PkceCodeVerifier::new(f.get("code_verifier").cloned().unwrap_or_default());
            if oauth2::PkceCodeChallenge::from_code_verifier_sha256(&verifier).as_str() != challenge
                || f.get("redirect_uri") != Some(&redirect)
            {
                return oauth_error("invalid_grant");
            }
            scopes
        }
        "refresh_token" => {
            let rt = f.get("refresh_token").cloned().unwrap_or_default();
            let found = if s.config.rotate_refresh {
                issued.refresh.remove(&rt)
            } else {
                issued.refresh.get(&rt).cloned()
            };
            let Some(scopes) = found else {
                return oauth_error("invalid_grant");
            };
            scopes
        }
        _ => return oauth_error("unsupported_grant_type"),
    };
    issued.counter += 1;
    let n = issued.counter;
    let audience = match (&s.config.jwt_audience_on_refresh, grant.as_str()) {
        (Some(aud), "refresh_token") => Some(aud),
        _ => s.config.jwt_audience.as_ref(),
    };
    let access = match audience {
        None => format!("secret-access-{n}"),
        Some(aud) => {
            let aud: Vec<String> = aud
                .iter()
                .map(|a| a.replace("{resource}", &resource))
                .collect();
            let mut claims = json!({"iss": format!("{}/as", s.base), "sub": "alice"});
            if !aud.is_empty() {
                claims["aud"] = json!(aud);
            }
            // Not signed (the mock looks tokens up); the last part keeps the marker that
            // `assert_no_secrets` looks for.
            format!(
                "{}.{}.secret-access-{n}",
                b64(&json!({"alg": "RS256"})),
                b64(&claims)
            )
        }
    };
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
    if s.config.oversized == Some(Oversized::Token) {
        body = pad(body);
    }
    axum::Json(body).into_response()
}

fn b64(v: &Value) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

fn challenge(base: &str, error: Option<&str>, scope: Option<&str>) -> String {
    let mut parts = Vec::new();
    if let Some(e) = error {
        parts.push(format!("error=\"{e}\""));
    }
    if let Some(s) = scope {
        parts.push(format!("scope=\"{s}\""));
    }
    parts.push(format!(
        "resource_metadata=\"{base}/.well-known/oauth-protected-resource/mcp\""
    ));
    format!("Bearer {}", parts.join(", "))
}

async fn mcp(State(s): State<AppState>, headers: HeaderMap, body: String) -> Response {
    let msg: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let method = msg["method"].as_str().unwrap_or("").to_owned();
    let required = s.config.required_scope.clone();
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let scopes = token.as_ref().and_then(|t| {
        let mut issued = s.issued.lock().unwrap();
        issued.presented.push(t.clone());
        issued.access.get(t).cloned()
    });
    let refuse = |status: StatusCode, ch: String| {
        push(&s.log, format!("mcp {method} {}", status.as_u16()));
        (status, [(header::WWW_AUTHENTICATE, ch)], "").into_response()
    };
    let Some(scopes) = scopes else {
        let error = token.as_ref().map(|_| "invalid_token");
        return refuse(
            StatusCode::UNAUTHORIZED,
            challenge(&s.base, error, required.as_deref()),
        );
    };
    if s.config.reauthorize_per_tool && method == "tools/call" {
        let name = msg["params"]["name"].as_str().unwrap_or("").to_owned();
        let mut issued = s.issued.lock().unwrap();
        if issued.called.insert(name) {
            if let Some(t) = &token {
                issued.access.remove(t);
            }
            drop(issued);
            return refuse(
                StatusCode::UNAUTHORIZED,
                challenge(&s.base, Some("invalid_token"), required.as_deref()),
            );
        }
    }
    let mut needed: Vec<String> = required.iter().cloned().collect();
    if method == "tools/call" && msg["params"]["name"] == "admin" {
        needed.extend(s.config.admin_scope.iter().cloned());
    }
    if !needed.iter().all(|n| scopes.contains(n)) {
        return refuse(
            StatusCode::FORBIDDEN,
            challenge(&s.base, Some("insufficient_scope"), Some(&needed.join(" "))),
        );
    }
    // After initialize, the session id and the negotiated version must come back.
    if method != "initialize" {
        let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if h("mcp-session-id") != Some("mock-session")
            || h("mcp-protocol-version") != Some("2025-11-25")
        {
            push(&s.log, format!("mcp {method} 400"));
            return (
                StatusCode::BAD_REQUEST,
                "missing Mcp-Session-Id or MCP-Protocol-Version",
            )
                .into_response();
        }
    }
    push(&s.log, format!("mcp {method} 200"));
    let id = msg["id"].clone();
    let result = match method.as_str() {
        "initialize" => {
            let body = json!({"jsonrpc": "2.0", "id": id, "result": {
                "protocolVersion": "2025-11-25",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "mock", "version": "1"}
            }});
            return ([("mcp-session-id", "mock-session")], axum::Json(body)).into_response();
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

/// McpConnection options for a headless client of `server_url`.
pub fn options(server_url: &str) -> ConnectionOptions {
    ConnectionOptions {
        server_url: Url::parse(server_url).unwrap(),
        transport: TransportChoice::Auto,
        sse_auth: SseAuth::Bearer,
        authorize: AuthorizeOptions {
            interaction: Interaction::Headless,
            redirect_port: 0,
            timeout: Duration::from_secs(10),
            client: ClientConfig {
                client_name: "mcp-client tests".into(),
                ..ClientConfig::default()
            },
            grant: Default::default(),
            dpop: Default::default(),
            dpop_alg: Default::default(),
        },
        extra_scopes: Scopes::default(),
        audiences: AudiencePolicy::new(),
        max_authorizations: 3,
        allow_insecure_http: false,
        refresh_margin_secs: 60,
    }
}

/// A headless session and the buffer its trace goes to.
pub fn session(
    options: ConnectionOptions,
    cache_dir: &Path,
) -> (McpConnection, Arc<Mutex<Vec<u8>>>) {
    let (trace, buf) = Trace::capture(Verbosity::Verbose);
    let session = McpConnection::new(options, trace, Cache::new(cache_dir)).unwrap();
    (session, buf)
}

/// The trace so far, as text.
pub fn text(buf: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&buf.lock().unwrap()).into_owned()
}

/// Asserts no secret the mock issued appears in `s`.
pub fn assert_no_secrets(s: &str) {
    assert!(
        !s.contains("secret-access-") && !s.contains("secret-refresh-") && !s.contains("code-"),
        "a token or code leaked:\n{s}"
    );
}

/// Every file under `dir`, recursively, as (path, contents).
pub fn files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files(&p));
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}
