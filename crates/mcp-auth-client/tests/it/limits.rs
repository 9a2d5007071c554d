//! Every body the client reads is bounded: metadata, registration and token responses
//! (256 KiB), a JSON-RPC reply or one event (16 MiB), the event stream of one reply
//! (64 MiB). A hostile server that sends more, or announces more, gets a clear error
//! naming the URL and the limit, and the client stops reading: the server's counter of
//! bytes handed to the connection shows it.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt as _;
use mcp_auth_client::{ClientError, TransportChoice};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use testkit::client_side::{Break, ClientSideServer, Oversized};

use crate::support::{config, options, session, text};

const MIB: usize = 1024 * 1024;
/// What may be in flight beyond what the client read: loopback socket buffers on both
/// sides (several MiB each once autotuned) and the server's own. Far below the 1.5 GB a
/// client without limits reads.
const SLACK: usize = 32 * MIB;

/// What the hostile server sends.
#[derive(Clone, Copy)]
enum Hostile {
    /// `initialize` answered with a JSON body that never ends.
    EndlessJson,
    /// `initialize` answered with an event stream whose one event never ends.
    EndlessEvent,
    /// `initialize` answered with an event stream of 64 KiB events, none the response.
    EndlessEvents,
    /// The legacy transport: the endpoint event, then a message event that never ends.
    LegacyEndlessEvent,
}

#[derive(Clone)]
struct HostileState {
    mode: Hostile,
    sent: Arc<AtomicUsize>,
}

/// An endless body of `chunk` repeated, counting what it hands to the connection.
fn endless(prefix: &'static str, chunk: Bytes, sent: Arc<AtomicUsize>) -> Body {
    let first = futures::stream::once(async move { Ok::<_, Infallible>(Bytes::from(prefix)) });
    let rest = futures::stream::repeat(chunk).map(move |c| {
        sent.fetch_add(c.len(), Ordering::Relaxed);
        Ok::<_, Infallible>(c)
    });
    Body::from_stream(first.chain(rest))
}

async fn post_mcp(State(s): State<HostileState>) -> Response {
    let (content_type, prefix, chunk) = match s.mode {
        Hostile::EndlessJson => (
            "application/json",
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"padding\":\"",
            Bytes::from(vec![b'x'; 64 * 1024]),
        ),
        Hostile::EndlessEvent => (
            "text/event-stream",
            "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"p\":\"",
            Bytes::from(vec![b'x'; 64 * 1024]),
        ),
        Hostile::EndlessEvents => {
            let mut event = b"event: progress\ndata: ".to_vec();
            event.extend(std::iter::repeat_n(b'x', 64 * 1024));
            event.extend(b"\n\n");
            ("text/event-stream", "", Bytes::from(event))
        }
        Hostile::LegacyEndlessEvent => return StatusCode::METHOD_NOT_ALLOWED.into_response(),
    };
    (
        [(header::CONTENT_TYPE, content_type)],
        endless(prefix, chunk, s.sent.clone()),
    )
        .into_response()
}

async fn get_sse(State(s): State<HostileState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        endless(
            "event: endpoint\ndata: /messages\n\nevent: message\ndata: ",
            Bytes::from(vec![b'x'; 64 * 1024]),
            s.sent.clone(),
        ),
    )
        .into_response()
}

async fn start(mode: Hostile) -> (String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let sent = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route("/mcp", post(post_mcp))
        .route("/sse", get(get_sse))
        .route("/messages", post(|| async { StatusCode::ACCEPTED }))
        .with_state(HostileState {
            mode,
            sent: sent.clone(),
        });
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (base, sent, task)
}

/// Connects to a hostile server; returns the error, its message and the bytes it sent.
async fn connect(mode: Hostile, path: &str, transport: TransportChoice) -> (ClientError, usize) {
    let (base, sent, task) = start(mode).await;
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(&format!("{base}{path}"));
    o.transport = transport;
    let (mut s, buf) = session(o, dir.path());
    let err = s.connect().await.unwrap_err();
    // The server stops once the client has dropped the connection.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let sent = sent.load(Ordering::Relaxed);
    task.abort();
    eprintln!(
        "{err}\n(the server handed {sent} bytes to the connection)\n{}",
        text(&buf)
    );
    (err, sent)
}

fn assert_too_large(err: &ClientError, what: &str, limit: &str, url: &str) {
    let msg = err.to_string();
    assert!(
        matches!(err, ClientError::BodyTooLarge { .. }),
        "not BodyTooLarge: {msg}"
    );
    assert!(msg.contains(what) && msg.contains(limit), "{msg}");
    assert!(msg.contains(url), "{msg}");
}

#[tokio::test]
async fn an_endless_json_reply_stops_at_16_mib() {
    let (err, sent) = connect(Hostile::EndlessJson, "/mcp", TransportChoice::Streamable).await;
    assert_too_large(&err, "one MCP message", "16 MiB", "/mcp");
    assert!(sent < 16 * MIB + SLACK, "{sent} bytes were sent");
}

#[tokio::test]
async fn an_endless_event_stops_at_16_mib() {
    let (err, sent) = connect(Hostile::EndlessEvent, "/mcp", TransportChoice::Streamable).await;
    assert_too_large(&err, "one MCP message", "16 MiB", "/mcp");
    assert!(sent < 16 * MIB + SLACK, "{sent} bytes were sent");
}

#[tokio::test]
async fn a_reply_stream_stops_at_64_mib() {
    let (err, sent) = connect(Hostile::EndlessEvents, "/mcp", TransportChoice::Streamable).await;
    assert_too_large(&err, "the event stream of one MCP reply", "64 MiB", "/mcp");
    assert!(
        sent >= 64 * MIB - 64 * 1024,
        "events below the limit pass: {sent}"
    );
    assert!(sent < 64 * MIB + SLACK, "{sent} bytes were sent");
}

#[tokio::test]
async fn a_legacy_stream_event_stops_at_16_mib() {
    let (err, sent) = connect(Hostile::LegacyEndlessEvent, "/sse", TransportChoice::Sse).await;
    assert_too_large(&err, "one MCP message", "16 MiB", "/sse");
    assert!(sent < 16 * MIB + SLACK, "{sent} bytes were sent");
}

#[tokio::test]
async fn an_announced_length_past_the_limit_is_refused_before_reading() {
    // A raw server: 200 with a Content-Length of 2 GB, then nothing at all. Waiting for
    // the body would hang; the client must refuse on the header alone.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let task = tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = conn.read(&mut buf).await;
                let _ = conn
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2000000000\r\n\r\n",
                    )
                    .await;
                tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(&format!("{base}/mcp"));
    o.transport = TransportChoice::Streamable;
    let (mut s, _) = session(o, dir.path());
    let err = tokio::time::timeout(std::time::Duration::from_secs(10), s.connect())
        .await
        .expect("refused without waiting for the body")
        .unwrap_err();
    assert_too_large(&err, "one MCP message", "16 MiB", "/mcp");
    task.abort();
}

#[tokio::test]
async fn oversized_oauth_documents_are_refused() {
    for (oversized, what, path) in [
        (
            Oversized::ProtectedResourceMetadata,
            "a metadata document",
            "/.well-known/oauth-protected-resource/mcp",
        ),
        (
            Oversized::AuthorizationServerMetadata,
            "a metadata document",
            "/.well-known/oauth-authorization-server/as",
        ),
        (
            Oversized::Registration,
            "a client registration response",
            "/as/register",
        ),
        (Oversized::Token, "a token response", "/as/token"),
    ] {
        let mock = ClientSideServer::start(config().with(Break::Oversized(oversized))).await;
        let dir = tempfile::tempdir().unwrap();
        let (mut s, buf) = session(options(&mock.mcp_url()), dir.path());
        let err = s.connect().await.unwrap_err();
        assert_too_large(&err, what, "256 KiB", &format!("{}{path}", mock.base));
        crate::support::assert_no_secrets(&err.to_string());
        crate::support::assert_no_secrets(&text(&buf));
    }
}
