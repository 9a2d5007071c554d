//! An MCP server and its authorization server in one axum app on 127.0.0.1:0, correct in
//! every respect the audit checks unless told to break exactly one of them ([`Break`]).
//!
//! The resource server: `/mcp` (Origin checked first, then the Bearer token; 401 with
//! `resource_metadata` and `scope`; tokens only from the header; the tool `admin` needs
//! `mcp:admin`), Protected Resource Metadata at the path-inserted and root well-known
//! URLs (CORS `*`). The authorization server, issuer `<base>/as`: RFC 8414 metadata
//! (S256, CIMD, registration, `iss`, DPoP algorithms, CORS `*`), `/as/authorize`
//! (approves at once, with `iss`), `/as/token` (checks PKCE; the access token is a JWT
//! whose `aud` is the requested `resource`), `/as/register`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use base64::Engine;
use serde_json::{Value, json};
use url::Url;

/// The one thing the mock does wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Break {
    /// Nothing: every check passes.
    Nothing,
    /// The metadata names a plain-http JWKS off loopback.
    PlainHttpEndpoint,
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
    /// The path-inserted metadata names another resource.
    PrmWrongResource,
    /// The metadata lists no authorization server.
    NoAuthorizationServers,
    /// The metadata offers tokens in the query string.
    QueryBearerMethod,
    /// The metadata has no CORS header.
    PrmNoCors,
    /// The metadata lists `offline_access`.
    OfflineAccessAsked,
    /// No authorization server metadata anywhere.
    NoAsMetadata,
    /// The authorization server metadata only at `<issuer>/.well-known/oauth-authorization-server`.
    AsMetadataMisplaced,
    /// The metadata's issuer is another URL.
    IssuerMismatch,
    /// The authorization server metadata is served as `application/octet-stream`.
    AsAsOctetStream,
    /// The metadata has no `response_types_supported`.
    NoResponseTypes,
    /// The metadata lists `plain` only.
    NoS256,
    /// Neither CIMD nor dynamic registration.
    NoRegistration,
    /// `iss` is sent in the callback but not advertised.
    IssNotAdvertised,
    /// The authorization server metadata has no CORS header.
    AsNoCors,
    /// DPoP advertised with `none` and `HS256`.
    DpopWeakAlgs,
    /// The token endpoint answers 500.
    TokenEndpointDown,
    /// The resource server refuses the tokens the authorization server issues.
    TokenRefused,
    /// The access token's `aud` is not the requested resource.
    AudienceIgnored,
    /// A token in the query string is accepted.
    QueryTokenAccepted,
    /// A call that needs more scope gets 401.
    InsufficientScope401,
}

#[derive(Default)]
struct Issued {
    /// access token -> granted scopes
    access: HashMap<String, Vec<String>>,
    /// code -> (PKCE challenge, scopes, resource)
    codes: HashMap<String, (String, Vec<String>, String)>,
    counter: u64,
}

#[derive(Clone)]
struct AppState {
    base: String,
    broken: Break,
    issued: Arc<Mutex<Issued>>,
}

/// The running mock; stopped on drop.
pub struct BrokenServer {
    pub base: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for BrokenServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl BrokenServer {
    pub async fn start(broken: Break) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let state = AppState {
            base: base.clone(),
            broken,
            issued: Arc::default(),
        };
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
            .with_state(state);
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { base, task }
    }

    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.base)
    }
}

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

fn claims_of(token: &str) -> Option<(Value, Value)> {
    let mut parts = token.split('.');
    let dec = |p: &str| -> Option<Value> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p)
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    };
    Some((dec(parts.next()?)?, dec(parts.next()?)?))
}

fn json_response(cors: bool, content_type: &'static str, body: &Value) -> Response {
    let mut resp = ([(header::CONTENT_TYPE, content_type)], body.to_string()).into_response();
    if cors {
        resp.headers_mut()
            .insert("access-control-allow-origin", "*".parse().unwrap());
    }
    resp
}

fn challenge(s: &AppState, error: Option<&str>, scope: Option<&str>) -> String {
    let mut parts = Vec::new();
    if let Some(e) = error {
        parts.push(format!("error=\"{e}\""));
    }
    if let Some(sc) = scope {
        parts.push(format!("scope=\"{sc}\""));
    }
    let rm = match s.broken {
        Break::NoResourceMetadata | Break::NoPrm => None,
        Break::ChallengeUrl404 => Some(format!(
            "{}/.well-known/oauth-protected-resource/elsewhere",
            s.base
        )),
        Break::NoPathPrm => Some(format!("{}/.well-known/oauth-protected-resource", s.base)),
        _ => Some(format!(
            "{}/.well-known/oauth-protected-resource/mcp",
            s.base
        )),
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

fn refuse(s: &AppState, status: StatusCode, error: Option<&str>, scope: Option<&str>) -> Response {
    let mut resp = (
        status,
        axum::Json(json!({"error": error.unwrap_or("unauthorized")})),
    )
        .into_response();
    if s.broken != Break::NoChallenge {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            challenge(s, error, scope).parse().unwrap(),
        );
    }
    resp
}

async fn mcp(
    State(s): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let required = if s.broken == Break::NoScope {
        None
    } else {
        Some("mcp:tools")
    };
    if s.broken != Break::OriginIgnored
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
        (h, Some(q)) if s.broken == Break::QueryTokenAccepted => h.or(Some(q)),
        (_, Some(q)) => {
            // Refused, and (sloppily) echoed back: the audit must not repeat it.
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
        if s.broken == Break::GetServedWithoutToken && method == Method::GET {
            return ([(header::CONTENT_TYPE, "text/event-stream")], ": open\n\n").into_response();
        }
        let status = if s.broken == Break::Status403 {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::UNAUTHORIZED
        };
        let error = (s.broken == Break::ErrorCodeWithoutToken).then_some("invalid_token");
        return refuse(&s, status, error, required);
    };
    let unsigned_ok = s.broken == Break::UnsignedAccepted
        && claims_of(&token)
            .is_some_and(|(h, c)| h["alg"] == "none" && c["aud"] == format!("{}/mcp", s.base));
    let scopes = if s.broken == Break::TokenRefused {
        None
    } else {
        s.issued.lock().unwrap().access.get(&token).cloned()
    };
    let scopes = match (scopes, unsigned_ok) {
        (Some(sc), _) => sc,
        (None, true) => vec!["mcp:tools".to_owned()],
        (None, false) => {
            if s.broken == Break::InvalidToken400 {
                return (StatusCode::BAD_REQUEST, "bad token").into_response();
            }
            return refuse(
                &s,
                StatusCode::UNAUTHORIZED,
                Some("invalid_token"),
                required,
            );
        }
    };
    if method != Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let id = msg["id"].clone();
    match msg["method"].as_str().unwrap_or("") {
        "initialize" => axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": {
            "protocolVersion": "2025-11-25",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "broken-mock", "version": "1"}
        }}))
        .into_response(),
        m if m.starts_with("notifications/") => StatusCode::ACCEPTED.into_response(),
        "tools/call" => {
            if msg["params"]["name"] == "admin" && !scopes.iter().any(|sc| sc == "mcp:admin") {
                if s.broken == Break::InsufficientScope401 {
                    return refuse(
                        &s,
                        StatusCode::UNAUTHORIZED,
                        Some("invalid_token"),
                        required,
                    );
                }
                return refuse(
                    &s,
                    StatusCode::FORBIDDEN,
                    Some("insufficient_scope"),
                    Some("mcp:tools mcp:admin"),
                );
            }
            axum::Json(json!({"jsonrpc": "2.0", "id": id,
                "result": {"content": [{"type": "text", "text": "done"}]}}))
            .into_response()
        }
        _ => axum::Json(json!({"jsonrpc": "2.0", "id": id,
            "error": {"code": -32601, "message": "method not found"}}))
        .into_response(),
    }
}

fn prm_document(s: &AppState, resource: String) -> Value {
    let mut doc = json!({
        "resource": resource,
        "authorization_servers": [format!("{}/as", s.base)],
        "scopes_supported": ["mcp:tools", "mcp:admin"],
        "bearer_methods_supported": ["header"],
    });
    match s.broken {
        Break::NoAuthorizationServers => {
            doc.as_object_mut().unwrap().remove("authorization_servers");
        }
        Break::QueryBearerMethod => doc["bearer_methods_supported"] = json!(["header", "query"]),
        Break::OfflineAccessAsked => {
            doc["scopes_supported"] = json!(["mcp:tools", "mcp:admin", "offline_access"]);
        }
        _ => {}
    }
    doc
}

fn prm_response(s: &AppState, doc: &Value) -> Response {
    let ctype = if s.broken == Break::PrmAsText {
        "text/plain"
    } else {
        "application/json"
    };
    json_response(s.broken != Break::PrmNoCors, ctype, doc)
}

async fn prm_path(State(s): State<AppState>) -> Response {
    if matches!(s.broken, Break::NoPrm | Break::NoPathPrm) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let resource = if s.broken == Break::PrmWrongResource {
        format!("{}/other", s.base)
    } else {
        format!("{}/mcp", s.base)
    };
    prm_response(&s, &prm_document(&s, resource))
}

async fn prm_root(State(s): State<AppState>) -> Response {
    match s.broken {
        Break::NoPrm => StatusCode::NOT_FOUND.into_response(),
        Break::RootPrmBroken => (StatusCode::INTERNAL_SERVER_ERROR, "oops").into_response(),
        // The challenge names this document, so it describes the MCP URL (MCP allows that).
        Break::NoPathPrm => prm_response(&s, &prm_document(&s, format!("{}/mcp", s.base))),
        _ => prm_response(&s, &prm_document(&s, s.base.clone())),
    }
}

fn as_document(s: &AppState) -> Value {
    let issuer = format!("{}/as", s.base);
    let mut md = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "registration_endpoint": format!("{issuer}/register"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["none"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["mcp:tools", "mcp:admin"],
        "client_id_metadata_document_supported": true,
        "authorization_response_iss_parameter_supported": true,
        "dpop_signing_alg_values_supported": ["ES256", "EdDSA"],
    });
    let o = md.as_object_mut().unwrap();
    match s.broken {
        Break::PlainHttpEndpoint => {
            o.insert("jwks_uri".into(), json!("http://as.example.test/jwks"));
        }
        Break::IssuerMismatch => {
            o.insert("issuer".into(), json!(format!("{}/other", s.base)));
        }
        Break::NoResponseTypes => {
            o.remove("response_types_supported");
        }
        Break::NoS256 => {
            o.insert("code_challenge_methods_supported".into(), json!(["plain"]));
        }
        Break::NoRegistration => {
            o.remove("registration_endpoint");
            o.remove("client_id_metadata_document_supported");
        }
        Break::IssNotAdvertised => {
            o.remove("authorization_response_iss_parameter_supported");
        }
        Break::DpopWeakAlgs => {
            o.insert(
                "dpop_signing_alg_values_supported".into(),
                json!(["none", "HS256"]),
            );
        }
        _ => {}
    }
    md
}

fn as_response(s: &AppState) -> Response {
    let ctype = if s.broken == Break::AsAsOctetStream {
        "application/octet-stream"
    } else {
        "application/json"
    };
    json_response(s.broken != Break::AsNoCors, ctype, &as_document(s))
}

async fn as_metadata(State(s): State<AppState>) -> Response {
    if matches!(s.broken, Break::NoAsMetadata | Break::AsMetadataMisplaced) {
        return StatusCode::NOT_FOUND.into_response();
    }
    as_response(&s)
}

async fn as_metadata_misplaced(State(s): State<AppState>) -> Response {
    if s.broken != Break::AsMetadataMisplaced {
        return StatusCode::NOT_FOUND.into_response();
    }
    as_response(&s)
}

async fn register(axum::Json(body): axum::Json<Value>) -> Response {
    let mut out = body;
    out["client_id"] = json!("registered-client");
    (StatusCode::CREATED, axum::Json(out)).into_response()
}

async fn authorize(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let redirect = q.get("redirect_uri").cloned().unwrap_or_default();
    let mut url = Url::parse(&redirect).unwrap();
    let scopes: Vec<String> = q
        .get("scope")
        .map(|sc| sc.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    let code = {
        let mut issued = s.issued.lock().unwrap();
        issued.counter += 1;
        let code = format!("code-{}", issued.counter);
        issued.codes.insert(
            code.clone(),
            (
                q.get("code_challenge").cloned().unwrap_or_default(),
                scopes,
                q.get("resource").cloned().unwrap_or_default(),
            ),
        );
        code
    };
    url.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", q.get("state").map_or("", String::as_str))
        .append_pair("iss", &format!("{}/as", s.base));
    (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response()
}

async fn token(State(s): State<AppState>, Form(f): Form<HashMap<String, String>>) -> Response {
    if s.broken == Break::TokenEndpointDown {
        return (StatusCode::INTERNAL_SERVER_ERROR, "token endpoint down").into_response();
    }
    let mut issued = s.issued.lock().unwrap();
    let Some((challenge, scopes, resource)) = issued
        .codes
        .remove(f.get("code").map_or("", String::as_str))
    else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    };
    let verifier =
        oauth2::PkceCodeVerifier::new(f.get("code_verifier").cloned().unwrap_or_default());
    if oauth2::PkceCodeChallenge::from_code_verifier_sha256(&verifier).as_str() != challenge {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    }
    issued.counter += 1;
    let aud = if s.broken == Break::AudienceIgnored {
        "some-client-id".to_owned()
    } else {
        resource
    };
    let access = format!(
        "{}.{}.c2ln",
        b64(&json!({"alg": "RS256", "typ": "at+jwt"})),
        b64(
            &json!({"iss": format!("{}/as", s.base), "aud": aud, "scope": scopes.join(" "), "n": issued.counter})
        )
    );
    issued.access.insert(access.clone(), scopes.clone());
    axum::Json(json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": 600,
        "scope": scopes.join(" "),
    }))
    .into_response()
}
