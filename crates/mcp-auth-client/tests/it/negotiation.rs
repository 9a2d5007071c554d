//! Protocol negotiation: the 2026-07-28 wire with a server that speaks it, and a clean
//! fallback to `initialize` with the servers of earlier revisions: a 2026-07-28-only
//! mock (headers checked against the body, a refused first version, `x-mcp-header`
//! tools, a multi-round tool), a 2025-03-26-only mock, the project's resource server and
//! the TypeScript SDK's server (interop/).

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use e2e::node::NodePeer;
use mcp_auth_client::ClientError;
use serde_json::{Value, json};

use crate::support::{options, session, text};

/// What a mock saw: one entry per POST (method, headers of interest, params).
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    id: Value,
    header_version: Option<String>,
    mcp_method: Option<String>,
    mcp_name: Option<String>,
    session_id: Option<String>,
    params_headers: Vec<(String, String)>,
    params: Value,
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<Seen>>>);

impl Log {
    fn all(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }
}

fn record(log: &Log, headers: &HeaderMap, msg: &Value) -> Seen {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut params_headers: Vec<(String, String)> = headers
        .iter()
        .filter(|(n, _)| n.as_str().starts_with("mcp-param-"))
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    params_headers.sort();
    let seen = Seen {
        method: msg["method"].as_str().unwrap_or("").to_owned(),
        id: msg["id"].clone(),
        header_version: h("mcp-protocol-version"),
        mcp_method: h("mcp-method"),
        mcp_name: h("mcp-name"),
        session_id: h("mcp-session-id"),
        params_headers,
        params: msg["params"].clone(),
    };
    log.0.lock().unwrap().push(seen.clone());
    seen
}

async fn serve(app: Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://127.0.0.1:{}/mcp",
        listener.local_addr().unwrap().port()
    );
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, task)
}

fn reply(id: &Value, result: Value) -> Response {
    axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response()
}

fn error(status: StatusCode, id: &Value, code: i64, message: &str, data: Value) -> Response {
    (
        status,
        axum::Json(json!({"jsonrpc": "2.0", "id": id,
            "error": {"code": code, "message": message, "data": data}})),
    )
        .into_response()
}

fn decode(v: &str) -> String {
    match v
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(b) => {
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b).unwrap()).unwrap()
        }
        None => v.to_owned(),
    }
}

/// A server of the 2026-07-28 revision only, validating as its transport page asks:
/// the version header equals `_meta`, `Mcp-Method` and `Mcp-Name` equal the body. It
/// refuses the very first request's version once (listing an unknown version first).
/// Every reply carries an `Mcp-Session-Id`, which a 2026-07-28 client must ignore.
async fn modern_mcp(state: State<Log>, headers: HeaderMap, body: String) -> Response {
    let mut r = modern_reply(state, headers, body).await;
    r.headers_mut()
        .insert("mcp-session-id", "not-in-this-revision".parse().unwrap());
    r
}

async fn modern_reply(State(log): State<Log>, headers: HeaderMap, body: String) -> Response {
    let msg: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let first = log.all().is_empty();
    let seen = record(&log, &headers, &msg);
    let id = &msg["id"];
    let meta = &msg["params"]["_meta"];
    let meta_version = meta["io.modelcontextprotocol/protocolVersion"].as_str();
    if seen.header_version.is_none()
        || meta_version != seen.header_version.as_deref()
        || !meta["io.modelcontextprotocol/clientCapabilities"].is_object()
    {
        return error(
            StatusCode::BAD_REQUEST,
            id,
            -32020,
            "header/_meta",
            json!(null),
        );
    }
    if seen.mcp_method.as_deref() != Some(seen.method.as_str()) {
        return error(
            StatusCode::BAD_REQUEST,
            id,
            -32020,
            "Mcp-Method",
            json!(null),
        );
    }
    if first {
        return error(
            StatusCode::BAD_REQUEST,
            id,
            -32022,
            "Unsupported protocol version",
            json!({"supported": ["2099-01-01", "2026-07-28"], "requested": meta_version}),
        );
    }
    if meta_version != Some("2026-07-28") {
        return error(
            StatusCode::BAD_REQUEST,
            id,
            -32022,
            "unsupported",
            json!({"supported": ["2026-07-28"]}),
        );
    }
    match seen.method.as_str() {
        "server/discover" => reply(
            id,
            json!({"resultType": "complete", "supportedVersions": ["2026-07-28"],
                "capabilities": {"tools": {}}, "ttlMs": 0, "cacheScope": "private",
                "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "modern-mock", "version": "1"}}}),
        ),
        "tools/list" => reply(
            id,
            json!({"resultType": "complete", "ttlMs": 0, "cacheScope": "private", "tools": [
                {"name": "where", "inputSchema": {"type": "object", "properties": {
                    "region": {"type": "string", "x-mcp-header": "Region"},
                    "opts": {"type": "object", "properties": {
                        "verbose": {"type": "boolean", "x-mcp-header": "Verbose"}}}}}},
                {"name": "broken", "inputSchema": {"type": "object", "properties": {
                    "a": {"type": "string", "x-mcp-header": "Dup"},
                    "b": {"type": "string", "x-mcp-header": "dup"}}}},
                {"name": "confirm", "inputSchema": {"type": "object"}}
            ]}),
        ),
        "tools/call" => {
            let name = seen.params["name"].as_str().unwrap_or("");
            if seen.mcp_name.as_deref().map(decode).as_deref() != Some(name) {
                return error(StatusCode::BAD_REQUEST, id, -32020, "Mcp-Name", json!(null));
            }
            match name {
                "where" => {
                    let args = &seen.params["arguments"];
                    let got: Vec<(String, String)> = seen
                        .params_headers
                        .iter()
                        .map(|(n, v)| (n.clone(), decode(v)))
                        .collect();
                    let mut want = Vec::new();
                    if let Some(r) = args["region"].as_str() {
                        want.push(("mcp-param-region".to_owned(), r.to_owned()));
                    }
                    if let Some(v) = args["opts"]["verbose"].as_bool() {
                        want.push(("mcp-param-verbose".to_owned(), v.to_string()));
                    }
                    if got != want {
                        return error(
                            StatusCode::BAD_REQUEST,
                            id,
                            -32020,
                            "Mcp-Param",
                            json!(null),
                        );
                    }
                    reply(id, json!({"content": [{"type": "text", "text": "ok"}]}))
                }
                "confirm" => match seen.params.get("inputResponses") {
                    None => reply(
                        id,
                        json!({"resultType": "input_required", "requestState": "opaque state 1",
                            "inputRequests": {"ok": {"method": "elicitation/create",
                                "params": {"message": "Sure?", "requestedSchema": {"type": "object"}}}}}),
                    ),
                    Some(r) => reply(
                        id,
                        json!({"resultType": "complete", "content": [{"type": "text",
                            "text": format!("{} / {}", r["ok"]["action"], seen.params["requestState"])}]}),
                    ),
                },
                _ => error(
                    StatusCode::NOT_FOUND,
                    id,
                    -32602,
                    "unknown tool",
                    json!(null),
                ),
            }
        }
        _ => error(
            StatusCode::NOT_FOUND,
            id,
            -32601,
            "Method not found",
            json!(null),
        ),
    }
}

#[tokio::test]
async fn speaks_2026_07_28_to_a_modern_server() {
    let log = Log::default();
    let (url, _task) = serve(
        Router::new()
            .route("/mcp", post(modern_mcp))
            .with_state(log.clone()),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (mut s, buf) = session(options(&url), dir.path());
    s.connect()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", text(&buf)));
    assert_eq!(s.protocol_version(), Some("2026-07-28"), "{}", text(&buf));
    assert_eq!(s.transport_name(), Some("streamable-http"));

    // The malformed tool is left out, the others stay.
    let tools = s.list_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["where", "confirm"]);
    assert!(
        text(&buf).contains("leaving out the tool \"broken\""),
        "{}",
        text(&buf)
    );

    // Designated arguments are mirrored, non-ASCII ones Base64-encoded.
    let r = s
        .call_tool(
            "where",
            json!({"region": "Zürich", "opts": {"verbose": true}}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", text(&buf)));
    assert_eq!(r["content"][0]["text"], "ok");
    let r = s.call_tool("where", json!({})).await.unwrap();
    assert_eq!(r["content"][0]["text"], "ok");
    let calls = log.all();
    let call = calls.iter().find(|c| c.method == "tools/call").unwrap();
    assert_eq!(
        call.params_headers,
        [
            (
                "mcp-param-region".to_owned(),
                "=?base64?WsO8cmljaA==?=".to_owned()
            ),
            ("mcp-param-verbose".to_owned(), "true".to_owned())
        ]
    );

    // The malformed tool is not called at all.
    let before = log.all().len();
    let e = s.call_tool("broken", json!({"a": "x"})).await.unwrap_err();
    assert!(matches!(e, ClientError::Config(_)), "{e}");
    assert_eq!(log.all().len(), before);

    // A multi-round tool: the retry has a new id, the answer and the state as sent.
    let r = s
        .call_tool("confirm", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", text(&buf)));
    assert_eq!(r["content"][0]["text"], "\"decline\" / \"opaque state 1\"");
    let rounds: Vec<Seen> = log
        .all()
        .into_iter()
        .filter(|c| c.params["name"] == "confirm")
        .collect();
    assert_eq!(rounds.len(), 2);
    assert_ne!(rounds[0].id, rounds[1].id);
    assert!(rounds[0].params.get("requestState").is_none());

    // Every request: the version in the header and in _meta, client info, no
    // initialize; the first was refused and retried with the version both speak.
    let all = log.all();
    assert!(all.iter().all(|c| c.method != "initialize"), "{all:?}");
    assert_eq!(all[0].method, "server/discover");
    assert_eq!(all[1].method, "server/discover");
    for c in &all {
        assert_eq!(c.header_version.as_deref(), Some("2026-07-28"));
        assert_eq!(c.session_id, None, "{c:?}");
        assert_eq!(
            c.params["_meta"]["io.modelcontextprotocol/clientInfo"]["name"],
            "mcp-client"
        );
    }
}

/// A server of the 2025-03-26 revision: `initialize` opens a session (it answers
/// 2025-03-26 whatever the client asks for); anything without the session is refused
/// with a plain JSON-RPC error, as that revision's servers did.
async fn legacy_2025_03_26(State(log): State<Log>, headers: HeaderMap, body: String) -> Response {
    let msg: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let seen = record(&log, &headers, &msg);
    let id = &msg["id"];
    if seen.method == "initialize" {
        let mut r = reply(
            id,
            json!({"protocolVersion": "2025-03-26", "capabilities": {"tools": {}},
                "serverInfo": {"name": "old-mock", "version": "1"}}),
        );
        r.headers_mut()
            .insert("mcp-session-id", "old-session".parse().unwrap());
        return r;
    }
    if headers.get("mcp-session-id").and_then(|v| v.to_str().ok()) != Some("old-session") {
        return error(
            StatusCode::BAD_REQUEST,
            &Value::Null,
            -32000,
            "Bad Request: No valid session ID provided",
            json!(null),
        );
    }
    match seen.method.as_str() {
        "notifications/initialized" => StatusCode::ACCEPTED.into_response(),
        "tools/list" => reply(
            id,
            json!({"tools": [{"name": "echo", "inputSchema": {"type": "object", "properties": {
                "region": {"type": "string", "x-mcp-header": "Region"}}}}]}),
        ),
        "tools/call" => reply(id, json!({"content": [{"type": "text", "text": "old ok"}]})),
        _ => error(StatusCode::OK, id, -32601, "Method not found", json!(null)),
    }
}

#[tokio::test]
async fn falls_back_to_a_2025_03_26_server() {
    let log = Log::default();
    let (url, _task) = serve(
        Router::new()
            .route("/mcp", post(legacy_2025_03_26))
            .with_state(log.clone()),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (mut s, buf) = session(options(&url), dir.path());
    s.connect()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", text(&buf)));
    assert_eq!(s.protocol_version(), Some("2025-03-26"), "{}", text(&buf));
    assert_eq!(s.transport_name(), Some("streamable-http"));
    let tools = s.list_tools().await.unwrap();
    assert_eq!(tools.len(), 1);
    let r = s.call_tool("echo", json!({"region": "eu"})).await.unwrap();
    assert_eq!(r["content"][0]["text"], "old ok");
    assert!(
        text(&buf).contains("falling back to initialize"),
        "{}",
        text(&buf)
    );

    let all = log.all();
    let methods: Vec<&str> = all.iter().map(|c| c.method.as_str()).collect();
    assert_eq!(
        methods,
        [
            "server/discover",
            "initialize",
            "notifications/initialized",
            "tools/list",
            "tools/call"
        ]
    );
    // After the fallback: the legacy wire, with the negotiated version, no modern
    // _meta and none of the 2026-07-28 request headers.
    for c in &all[1..] {
        assert!(c.params.get("_meta").is_none(), "{c:?}");
        assert!(
            c.mcp_method.is_none() && c.params_headers.is_empty(),
            "{c:?}"
        );
    }
    assert_eq!(all[4].header_version.as_deref(), Some("2025-03-26"));
    assert_eq!(all[1].params["protocolVersion"], "2025-11-25");
}

/// The 2025-03-26 mock, except that `server/discover` is answered 200 with a body
/// that is not JSON at all, as some older servers answer an unknown method.
async fn garbled_discover(state: State<Log>, headers: HeaderMap, body: String) -> Response {
    if body.contains("\"server/discover\"") {
        return (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            "<not json>",
        )
            .into_response();
    }
    legacy_2025_03_26(state, headers, body).await
}

#[tokio::test]
async fn falls_back_when_discover_is_not_json() {
    let log = Log::default();
    let (url, _task) = serve(
        Router::new()
            .route("/mcp", post(garbled_discover))
            .with_state(log.clone()),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (mut s, buf) = session(options(&url), dir.path());
    s.connect()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", text(&buf)));
    assert_eq!(s.protocol_version(), Some("2025-03-26"), "{}", text(&buf));
    assert!(
        text(&buf).contains("server/discover -> not a JSON-RPC reply"),
        "{}",
        text(&buf)
    );
}

#[tokio::test]
async fn falls_back_with_the_project_resource_server() {
    let servers = crate::project::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut s, buf) = session(options(&format!("{}/mcp", servers.mcp_base)), dir.path());
    s.connect()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", text(&buf)));
    let version = s.protocol_version().unwrap().to_owned();
    let trace = text(&buf);
    // The resource server speaks the handshake revisions; should it speak 2026-07-28,
    // the client must stay there without falling back.
    match version.as_str() {
        "2026-07-28" => assert!(!trace.contains("falling back to initialize"), "{trace}"),
        "2025-11-25" => assert!(trace.contains("falling back to initialize"), "{trace}"),
        other => panic!("unexpected protocol version {other}\n{trace}"),
    }
    assert!(!s.list_tools().await.unwrap().is_empty());
    let r = s
        .call_tool("calculator", json!({"operation": "add", "a": 2, "b": 3}))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", text(&buf)));
    assert_ne!(r["isError"], json!(true), "{r}");
    assert!(
        r["content"][0]["text"].as_str().unwrap_or("").contains('5'),
        "{r}"
    );
}

#[tokio::test]
async fn falls_back_with_the_typescript_sdk_server() {
    let op = NodePeer::start("oidc-provider", "oidc-provider.mjs", &[], &[])
        .await
        .expect("oidc-provider starts (npm ci --prefix interop)");
    let server = NodePeer::start(
        "ts-server",
        "ts-server.mjs",
        &[],
        &[("AS_ISSUER", op.ready())],
    )
    .await
    .expect("ts-server starts");
    let dir = tempfile::tempdir().unwrap();
    let (mut s, buf) = session(options(server.ready()), dir.path());
    s.connect()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", text(&buf)));
    let trace = text(&buf);
    // The pinned SDK (1.32.2) negotiates up to 2025-11-25.
    assert_eq!(s.protocol_version(), Some("2025-11-25"), "{trace}");
    assert!(trace.contains("falling back to initialize"), "{trace}");
    let r = s
        .call_tool(
            "calculator",
            json!({"operation": "multiply", "a": 6, "b": 7}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", text(&buf)));
    assert!(r.to_string().contains("42"), "{r}");
}
