//! A client for MCP's legacy HTTP+SSE transport (protocol 2024-11-05): `GET /sse`
//! opens the stream and names the `/messages` endpoint, JSON-RPC requests go to that
//! endpoint with `POST`, and their answers come back on the stream.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    SseReader,
    http::{client, client_for_streams, initialize},
};

/// How a legacy SSE request authenticates.
#[derive(Debug, Clone, Copy)]
pub enum SseAuth<'a> {
    /// `Authorization: Bearer <token>`.
    Bearer(&'a str),
    /// A `Cookie` header value and an optional `Origin` (sent with posts only).
    Cookie(&'a str, Option<&'a str>),
}

/// `GET {url}/sse`; returns the reader and the `endpoint` path it announced.
///
/// # Panics
/// When the answer is not 200 or the first event is not an `endpoint` event naming
/// `/messages?sessionId=` within 10 s.
pub async fn open_sse(url: &str, auth: SseAuth<'_>) -> (SseReader, String) {
    let mut request = client_for_streams()
        .get(format!("{url}/sse"))
        .header("accept", "text/event-stream");
    match auth {
        SseAuth::Bearer(token) => request = request.bearer_auth(token),
        SseAuth::Cookie(cookie, _) => request = request.header("cookie", cookie),
    }
    let response = request.send().await.expect("GET /sse is answered");
    assert_eq!(response.status(), 200, "GET /sse");
    let mut reader = SseReader::new(response);
    let endpoint = tokio::time::timeout(Duration::from_secs(10), reader.next())
        .await
        .expect("the endpoint event in time")
        .expect("the stream is open");
    assert_eq!(endpoint.event, "endpoint");
    assert!(
        endpoint.data.starts_with("/messages?sessionId="),
        "{}",
        endpoint.data
    );
    (reader, endpoint.data)
}

/// `POST {url}{endpoint}` with a JSON-RPC `body`.
///
/// # Panics
/// When the request gets no answer.
pub async fn post_message(
    url: &str,
    endpoint: &str,
    auth: SseAuth<'_>,
    body: &Value,
) -> reqwest::Response {
    let mut request = client()
        .post(format!("{url}{endpoint}"))
        .header("content-type", "application/json")
        .body(body.to_string());
    match auth {
        SseAuth::Bearer(token) => request = request.bearer_auth(token),
        SseAuth::Cookie(cookie, origin) => {
            request = request.header("cookie", cookie);
            if let Some(origin) = origin {
                request = request.header("origin", origin);
            }
        }
    }
    request.send().await.expect("the post is answered")
}

/// `initialize` (from a client named `client_name`) and `notifications/initialized`
/// over an open stream; returns the `initialize` result.
///
/// # Panics
/// When a post is not accepted (202) or the answer on the stream is not the answer to
/// `initialize`.
pub async fn sse_handshake(
    url: &str,
    endpoint: &str,
    auth: SseAuth<'_>,
    reader: &mut SseReader,
    client_name: &str,
) -> Value {
    let response = post_message(url, endpoint, auth, &initialize(client_name)).await;
    assert_eq!(response.status(), 202, "initialize");
    let reply = reader.message().await;
    assert_eq!(reply["id"], 1);
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let response = post_message(url, endpoint, auth, &initialized).await;
    assert_eq!(response.status(), 202, "notifications/initialized");
    reply["result"].clone()
}
