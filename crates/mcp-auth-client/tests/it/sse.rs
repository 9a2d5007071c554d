//! The legacy HTTP+SSE transport against a minimal server of its own: the `endpoint`
//! event, replies on the stream, the automatic fallback, and the refusal to POST (with
//! credentials) to an endpoint on another origin.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::stream::Stream;
use mcp_auth_client::{ClientError, TransportChoice};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream_shim::ReceiverStream;

use crate::support::{options, session, text};

mod tokio_stream_shim {
    //! `mpsc::Receiver` as a `Stream`, without another dependency.
    use std::pin::Pin;
    use std::task::{Context, Poll};

    pub struct ReceiverStream<T>(pub tokio::sync::mpsc::Receiver<T>);

    impl<T> futures::Stream for ReceiverStream<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}

type EventSender = mpsc::Sender<Result<Event, Infallible>>;

#[derive(Clone)]
struct Legacy {
    endpoint: String,
    to_stream: Arc<Mutex<Option<EventSender>>>,
}

async fn sse(State(s): State<Legacy>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (tx, rx) = mpsc::channel(16);
    tx.send(Ok(Event::default()
        .event("endpoint")
        .data(s.endpoint.clone())))
        .await
        .unwrap();
    *s.to_stream.lock().unwrap() = Some(tx);
    Sse::new(ReceiverStream(rx))
}

async fn messages(State(s): State<Legacy>, body: String) -> Response {
    let msg: Value = serde_json::from_str(&body).unwrap();
    let Some(id) = msg.get("id").cloned() else {
        return StatusCode::ACCEPTED.into_response();
    };
    let result = match msg["method"].as_str().unwrap_or("") {
        "initialize" => json!({"protocolVersion": "2024-11-05", "capabilities": {},
            "serverInfo": {"name": "legacy"}}),
        "tools/list" => json!({"tools": [{"name": "hello", "inputSchema": {"type": "object"}}]}),
        _ => json!({"content": [{"type": "text", "text": "hi"}]}),
    };
    let reply = json!({"jsonrpc": "2.0", "id": id, "result": result});
    let tx = s.to_stream.lock().unwrap().clone().unwrap();
    // A server notification first: it must be skipped, not taken for the reply.
    tx.send(Ok(Event::default().event("message").data(
        json!({"jsonrpc": "2.0", "method": "notifications/message"}).to_string(),
    )))
    .await
    .unwrap();
    tx.send(Ok(Event::default()
        .event("message")
        .data(reply.to_string())))
        .await
        .unwrap();
    StatusCode::ACCEPTED.into_response()
}

async fn start(endpoint: impl Fn(&str) -> String) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let state = Legacy {
        endpoint: endpoint(&base),
        to_stream: Arc::new(Mutex::new(None)),
    };
    // Like a 2024-11-05 server: /sse answers GET only, so a POST gets 405.
    let app = Router::new()
        .route("/sse", get(sse))
        .route("/messages", post(messages))
        .with_state(state);
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (base, task)
}

#[tokio::test]
async fn falls_back_to_legacy_sse_and_talks_over_the_stream() {
    let (base, task) = start(|_| "/messages?sessionId=abc".to_owned()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(&format!("{base}/sse"));
    opts.transport = TransportChoice::Auto;
    let (mut s, buf) = session(opts, dir.path());
    s.connect()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", text(&buf)));
    assert_eq!(s.transport_name(), Some("sse"));
    let tools = s.list_tools().await.unwrap();
    assert_eq!(tools[0]["name"], "hello");
    let r = s.call_tool("hello", json!({})).await.unwrap();
    assert_eq!(r["content"][0]["text"], "hi");
    let trace = text(&buf);
    assert!(trace.contains("-> 405: not Streamable HTTP"), "{trace}");
    assert!(
        trace.contains("server sent notifications/message"),
        "{trace}"
    );
    assert!(s.tokens().is_none(), "no authorization was asked for");
    task.abort();
}

#[tokio::test]
async fn refuses_an_endpoint_on_another_origin() {
    let (base, task) = start(|_| "http://evil.example.com/messages?sessionId=abc".to_owned()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(&format!("{base}/sse"));
    opts.transport = TransportChoice::Sse;
    let (mut s, _) = session(opts, dir.path());
    let err = s.connect().await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Transport(m) if m.contains("another origin")),
        "{err}"
    );
    task.abort();
}

#[tokio::test]
async fn a_server_of_neither_transport_gets_one_sentence() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let task = tokio::spawn(async move {
        axum::serve(listener, Router::new()).await.unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = session(options(&format!("{base}/mcp")), dir.path());
    let err = s.connect().await.unwrap_err().to_string();
    assert!(err.contains("speaks neither transport"), "{err}");
    assert!(err.contains("answered 404"), "{err}");
    task.abort();
}

#[tokio::test]
async fn an_endpoint_that_is_not_a_url_keeps_the_parse_error() {
    let (base, task) = start(|_| "http://[::1/messages".to_owned()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(&format!("{base}/sse"));
    opts.transport = TransportChoice::Sse;
    let (mut s, _) = session(opts, dir.path());
    let err = s.connect().await.unwrap_err();
    let source = std::error::Error::source(&err)
        .and_then(|e| e.downcast_ref::<url::ParseError>())
        .unwrap_or_else(|| panic!("the url error is kept: {err:?}"));
    assert_eq!(
        err.to_string(),
        format!(
            "legacy SSE stream from {base}/sse is not valid: endpoint event \"http://[::1/messages\": {source}"
        )
    );
    task.abort();
}
