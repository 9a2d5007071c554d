//! Helpers to start a resource server and speak MCP to it; the test authorization
//! server, keys and SSE reader come from the test kit. The `resource-server` crate's
//! tests use this file too.

use std::time::Duration;

use mcp_resource_server::{Config, McpResourceServer, config::JwksConfig};
use serde_json::{Value, json};

pub use testkit::{
    SseReader, TestAuthServer, TestKey,
    http::{call, client_for_streams as client, serve_on_loopback, www_authenticate},
    now,
};

/// Test-friendly configuration: quick refetches, everything else default.
pub fn test_config(public_url: String, issuer: &str) -> Config {
    Config::new(public_url, issuer).with_jwks_config(JwksConfig {
        min_refetch_interval: Duration::from_millis(300),
        ..JwksConfig::default()
    })
}

/// Starts an [`McpResourceServer`] on 127.0.0.1:0, serving the handlers `factory`
/// makes, with the configuration `make` builds from its public URL; returns that URL.
pub async fn start_with<H, F>(make: impl FnOnce(String) -> Config, factory: F) -> String
where
    H: rmcp::ServerHandler,
    F: Fn() -> H + Send + Sync + 'static,
{
    serve_on_loopback(|listener, url| {
        let config = make(url);
        config.validate().expect("test configuration is valid");
        McpResourceServer::new(config, factory).serve(listener)
    })
    .await
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

/// `initialize` from a client named `it`.
pub fn initialize() -> Value {
    testkit::http::initialize("it")
}

/// Opens a Streamable HTTP session (`initialize`, then `notifications/initialized`)
/// and returns its id.
pub async fn open_mcp_session(url: &str, token: &str) -> String {
    let init = rpc(url, Some(token), None, initialize()).await;
    assert_eq!(init.status, 200);
    assert!(init.body.as_ref().unwrap()["result"].is_object());
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
