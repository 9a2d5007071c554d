//! Limits of the resource server: request body size, header size, token size, SSE
//! stream lifetime, idle connections and slow-loris clients.

use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::support::{
    Reply, SseAuth, TestAuthServer, TestKey, client, logs, mcp_with_token, now, open_sse,
    post_message, rs_config, start_rs,
};

async fn setup() -> (TestAuthServer, String, TestKey) {
    logs();
    let key = TestKey::rsa1();
    let auth_server = TestAuthServer::with_keys(std::slice::from_ref(&key)).await;
    let issuer = auth_server.issuer().to_string();
    let url = start_rs(|url| rs_config(url, &issuer)).await;
    (auth_server, url, key)
}

fn token(auth_server: &TestAuthServer, key: &TestKey, url: &str, path: &str) -> String {
    key.sign(&auth_server.claims("alice", &format!("{url}{path}"), "mcp:tools"))
}

/// A JSON-RPC body of about `bytes` bytes.
fn big_body(bytes: usize) -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "weather", "arguments": {"location": "x".repeat(bytes)}}})
    .to_string()
}

#[tokio::test]
async fn request_body_over_the_limit_is_413_on_both_transports() {
    let (auth_server, url, key) = setup().await;
    let mcp_token = token(&auth_server, &key, &url, "/mcp");
    // Default limit: 1 MiB.
    let response = client()
        .post(format!("{url}/mcp"))
        .bearer_auth(&mcp_token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(big_body(2 * 1024 * 1024))
        .send()
        .await
        .unwrap();
    let reply = Reply::from(response).await;
    assert_eq!(reply.status, 413, "{}", reply.body);

    let sse_token = token(&auth_server, &key, &url, "/sse");
    let (_reader, endpoint) = open_sse(&url, SseAuth::Bearer(&sse_token)).await;
    let response = client()
        .post(format!("{url}{endpoint}"))
        .bearer_auth(&sse_token)
        .header("content-type", "application/json")
        .body(big_body(2 * 1024 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);

    // Just under the limit is still served.
    let reply = post_message(
        &url,
        &endpoint,
        SseAuth::Bearer(&sse_token),
        &serde_json::from_str(&big_body(512 * 1024)).unwrap(),
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
}

/// Sends raw bytes on a fresh connection and returns what the server answered before
/// closing it; `None` if it neither answered and closed within 5 s.
async fn raw_exchange(url: &str, request: &[u8]) -> Option<String> {
    let addr = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // The server may answer (and close) before it has read everything.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&answer).into_owned())
}

#[tokio::test]
async fn oversized_request_head_is_refused() {
    let (auth_server, url, key) = setup().await;
    let host = url.trim_start_matches("http://");
    let token = token(&auth_server, &key, &url, "/mcp");
    // A head of about 1 MiB: refused by the HTTP server (hyper's read buffer limit),
    // never handed to the application.
    let padding = "a".repeat(1024 * 1024);
    let request = format!(
        "GET /.well-known/oauth-protected-resource HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nX-Padding: {padding}\r\n\r\n"
    );
    let answer = raw_exchange(&url, request.as_bytes())
        .await
        .expect("the server closed the connection");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "answer: {}",
        &answer[..answer.len().min(200)]
    );
    // A header of 8 KiB is an ordinary request.
    let padding = "a".repeat(8 * 1024);
    let request = format!(
        "GET /.well-known/oauth-protected-resource HTTP/1.1\r\nHost: {host}\r\nX-Padding: {padding}\r\nConnection: close\r\n\r\n"
    );
    let answer = raw_exchange(&url, request.as_bytes())
        .await
        .expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn oversized_bearer_token_is_refused_without_echo() {
    let (auth_server, url, key) = setup().await;
    let mut claims = auth_server.claims("alice", &format!("{url}/mcp"), "mcp:tools");
    claims["pad"] = json!("b".repeat(200 * 1024));
    let token = key.sign(&claims);
    let reply = mcp_with_token(&url, &token).await;
    assert_eq!(reply.status, 401);
    assert!(reply.www_authenticate.contains("invalid_token"));
    crate::support::assert_not_leaked(&token, &[&reply.body, &reply.headers], "200 KiB token");
}

#[tokio::test]
async fn sse_stream_ends_when_its_token_expires() {
    logs();
    let key = TestKey::rsa1();
    let auth_server = TestAuthServer::with_keys(std::slice::from_ref(&key)).await;
    let issuer = auth_server.issuer().to_string();
    // The stream ends when the token stops being accepted: exp + leeway (1 s here).
    let url = start_rs(|url| rs_config(url, &issuer).with_leeway(Duration::from_secs(1))).await;
    let mut claims = auth_server.claims("alice", &format!("{url}/sse"), "mcp:tools");
    claims["exp"] = json!(now() + 2);
    let token = key.sign(&claims);
    let started = Instant::now();
    let (mut reader, _endpoint) = open_sse(&url, SseAuth::Bearer(&token)).await;
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        while reader.next().await.is_some() {}
    })
    .await;
    assert!(end.is_ok(), "the stream outlived its token");
    assert!(started.elapsed() <= Duration::from_secs(5));
}

/// Opens a connection that sends a request head one byte at a time, slowly.
async fn slow_loris(url: String, hold: Duration) {
    let addr = url.trim_start_matches("http://").to_string();
    let Ok(mut stream) = TcpStream::connect(&addr).await else {
        return;
    };
    let head = format!("POST /mcp HTTP/1.1\r\nHost: {addr}\r\nX-Slow: ");
    let _ = stream.write_all(head.as_bytes()).await;
    let until = Instant::now() + hold;
    while Instant::now() < until {
        if stream.write_all(b"a").await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_clients_do_not_starve_others() {
    let (auth_server, url, key) = setup().await;
    let hold = Duration::from_secs(6);
    let loris: Vec<_> = (0..300)
        .map(|_| tokio::spawn(slow_loris(url.clone(), hold)))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..5 {
        let requests = (0..4).map(|_| {
            let token = token(&auth_server, &key, &url, "/mcp");
            let url = url.clone();
            async move {
                let started = Instant::now();
                let reply = mcp_with_token(&url, &token).await;
                (reply.status, started.elapsed())
            }
        });
        for (status, elapsed) in join_all(requests).await {
            assert_eq!(status, 200);
            assert!(
                elapsed < Duration::from_secs(3),
                "served in {elapsed:?} next to 300 slow clients"
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for task in loris {
        task.abort();
    }
}

/// A connection that never completes its request head is closed after the configured
/// header read timeout; otherwise enough of them exhaust the file descriptors.
#[tokio::test]
async fn idle_connection_without_a_request_is_closed() {
    logs();
    let key = TestKey::rsa1();
    let auth_server = TestAuthServer::with_keys(std::slice::from_ref(&key)).await;
    let issuer = auth_server.issuer().to_string();
    let url =
        start_rs(|url| rs_config(url, &issuer).with_header_read_timeout(Duration::from_secs(2)))
            .await;
    let addr = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: ").await.unwrap();
    let started = Instant::now();
    let mut buffer = [0u8; 256];
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "a half-sent request head was held for 10 s");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "not closed at once"
    );
    // A connection that sends one byte at a time is closed too: the timeout covers the
    // whole head, not the gap between bytes.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let dribble = async {
        for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        {
            if stream.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(12), dribble).await;
    assert!(
        started.elapsed() < Duration::from_secs(11),
        "a slow-loris connection was kept past the header read timeout"
    );
}

/// One principal cannot hold an unbounded number of legacy SSE streams (each one is a
/// task, two channels and an MCP handler): past a per-principal limit, opening another
/// is refused with 429 while other principals are still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_streams_per_principal_are_limited() {
    let (auth_server, url, key) = setup().await;
    let alice = token(&auth_server, &key, &url, "/sse");
    let mut open = Vec::new();
    let mut refused = None;
    for i in 0..101 {
        let response = client()
            .get(format!("{url}/sse"))
            .bearer_auth(&alice)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            open.push(response);
        } else {
            refused = Some((i, response.status().as_u16()));
            break;
        }
    }
    let (at, status) = refused.expect("a limit below 101 streams for one principal");
    assert_eq!(status, 429, "refused at stream {at}");
    let bob = key.sign(&auth_server.claims("bob", &format!("{url}/sse"), "mcp:tools"));
    let (_reader, _endpoint) = open_sse(&url, SseAuth::Bearer(&bob)).await;
}

/// A token inside the clock leeway (`exp` passed a few seconds ago, default leeway
/// 30 s) is accepted, so the request it carries runs; its reply must then arrive. An
/// SSE-framed reply cut at `exp` would lose the answer of a call that was executed.
#[tokio::test]
async fn accepted_request_in_the_leeway_gets_its_reply() {
    let (auth_server, url, key) = setup().await;
    let aud = format!("{url}/mcp");
    let fresh = key.sign(&auth_server.claims("alice", &aud, "mcp:tools"));
    let mut claims = auth_server.claims("alice", &aud, "mcp:tools");
    claims["exp"] = json!(now() - 5);
    let in_leeway = key.sign(&claims);

    let post = |token: String, session: Option<String>, body: serde_json::Value| {
        let url = url.clone();
        async move {
            let mut request = client()
                .post(format!("{url}/mcp"))
                .bearer_auth(token)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", "2025-06-18")
                .body(body.to_string());
            if let Some(session) = session {
                request = request.header("mcp-session-id", session);
            }
            let response = request.send().await.unwrap();
            let session = response
                .headers()
                .get("mcp-session-id")
                .map(|v| v.to_str().unwrap().to_string());
            (
                response.status().as_u16(),
                session,
                response.text().await.unwrap(),
            )
        }
    };
    // A session opened with a fresh token of the same principal.
    let (status, session, _) = post(fresh.clone(), None, crate::support::initialize()).await;
    assert_eq!(status, 200);
    let session = session.expect("a session id");
    let (status, _, _) = post(
        fresh,
        Some(session.clone()),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(status, 202);
    // Many at once, so that some replies take more than the timer's millisecond.
    let requests = (2..66).map(|id| {
        let list = json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"});
        post(in_leeway.clone(), Some(session.clone()), list)
    });
    let replies = futures::future::join_all(requests).await;
    let cut = replies
        .iter()
        .filter(|(status, _, body)| *status == 200 && !body.contains("\"result\""))
        .count();
    for (status, _, _) in &replies {
        assert!(*status == 200 || *status == 401, "status {status}");
    }
    assert_eq!(
        cut,
        0,
        "{cut} of {} requests were accepted (200) but their reply was cut",
        replies.len()
    );
}
