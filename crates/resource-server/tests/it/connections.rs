//! Connection handling: half-sent requests are cut off.

use std::time::{Duration, Instant};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::fixture::{TestAuthServer, TestKey, start_rs, test_config};

#[tokio::test]
async fn a_half_sent_request_head_is_closed_after_the_timeout() {
    let auth = TestAuthServer::with_keys(&[TestKey::rsa1()]).await;
    let issuer = auth.issuer().to_string();
    let url = start_rs(move |url| {
        test_config(url, &issuer).with_header_read_timeout(Duration::from_secs(1))
    })
    .await;
    let mut stream = TcpStream::connect(url.trim_start_matches("http://"))
        .await
        .unwrap();
    stream
        .write_all(b"GET /mcp HTTP/1.1\r\nHost: ")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buffer = [0u8; 512];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
        .await
        .expect("the server closes the connection");
    let elapsed = started.elapsed();
    assert!(read.is_ok());
    assert!(
        elapsed >= Duration::from_millis(900),
        "not before the timeout ({elapsed:?})"
    );
}

/// Connects and sends `sent`, then reads until the server closes the connection;
/// returns how long that took (or `None` if it was still open after 10 s).
async fn closed_after(addr: &str, sent: &[u8]) -> Option<Duration> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    if !sent.is_empty() {
        stream.write_all(sent).await.unwrap();
    }
    let started = Instant::now();
    let mut buffer = [0u8; 512];
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
    .map(|()| started.elapsed())
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty HTTP/2 SETTINGS frame (length 0, type 4, no flags, stream 0).
const H2_SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

/// Whatever a connection sent before going quiet (nothing, one byte of the HTTP/2
/// preface, the whole preface, the preface and its SETTINGS), it is closed once the
/// idle timeout has passed, and not before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_silent_connection_is_closed_after_the_idle_timeout() {
    let auth = TestAuthServer::with_keys(&[TestKey::rsa1()]).await;
    let issuer = auth.issuer().to_string();
    let url = start_rs(move |url| {
        test_config(url, &issuer)
            .with_header_read_timeout(Duration::from_secs(30))
            .with_idle_timeout(Duration::from_secs(1))
    })
    .await;
    let addr = url.trim_start_matches("http://").to_string();
    let preface_and_settings = [H2_PREFACE, H2_SETTINGS].concat();
    let cases: [(&str, &[u8]); 5] = [
        ("nothing", b""),
        ("one byte of the h2 preface", b"P"),
        ("one byte of an HTTP/1 request", b"G"),
        ("the h2 preface", H2_PREFACE),
        (
            "the h2 preface and SETTINGS (an idle h2 connection)",
            &preface_and_settings,
        ),
    ];
    let results =
        futures::future::join_all(cases.iter().map(|(_, sent)| closed_after(&addr, sent))).await;
    for ((case, _), elapsed) in cases.iter().zip(results) {
        let elapsed = elapsed.unwrap_or_else(|| panic!("{case}: still open after 10 s"));
        assert!(
            elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(5),
            "{case}: closed after {elapsed:?}, expected about 1 s"
        );
    }
}

/// The idle timeout counts from the end of the last response: a keep-alive connection
/// serving requests is not cut, and an open event stream is a request in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_connections_and_open_streams_are_not_idle() {
    let auth = TestAuthServer::with_keys(&[TestKey::rsa1()]).await;
    let issuer = auth.issuer().to_string();
    let url =
        start_rs(move |url| test_config(url, &issuer).with_idle_timeout(Duration::from_secs(1)))
            .await;
    let token = TestKey::rsa1().sign_with_typ(
        &auth.claims("alice", &format!("{url}/mcp"), "mcp:tools"),
        None,
    );
    let session = crate::fixture::open_mcp_session(&url, &token).await;
    let stream = crate::fixture::standalone_stream(&url, &token, &session).await;
    assert_eq!(stream.status(), 200);
    let mut body = stream.bytes_stream();
    // Requests every 400 ms on one keep-alive connection for 2.4 s.
    let client = crate::fixture::client();
    for _ in 0..6 {
        let response = client
            .get(format!("{url}/.well-known/oauth-protected-resource/mcp"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    use futures::StreamExt;
    // The event stream (its priming event aside) is still open.
    loop {
        match tokio::time::timeout(Duration::from_millis(300), body.next()).await {
            Err(_) => break,
            Ok(Some(Ok(_))) => {}
            Ok(other) => panic!("the open event stream ended: {other:?}"),
        }
    }
}

/// Out of file descriptors, the accept loop backs off and logs once per episode instead
/// of spinning; once the silent connections are closed by the idle timeout, clients
/// are served again. Runs the real binary with a low descriptor limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn descriptor_exhaustion_backs_off_and_recovers() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{port}");
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 64 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_resource-server"))
        .args([
            "--listen",
            &listen,
            "--public-url",
            &format!("http://{listen}"),
        ])
        .args([
            "--issuer",
            "http://127.0.0.1:9/issuer",
            "--idle-timeout",
            "2",
        ])
        .env("RUST_LOG", "mcp_resource_server=info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let prm = format!("http://{listen}/.well-known/oauth-protected-resource/mcp");
    let client = crate::fixture::client();
    let mut up = false;
    for _ in 0..100 {
        if client.get(&prm).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the server did not start");
    // More silent connections than the server has descriptors.
    let mut silent = Vec::new();
    for _ in 0..100 {
        if let Ok(stream) = TcpStream::connect(&listen).await {
            silent.push(stream);
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The idle timeout frees the descriptors; the server serves again, without a
    // client closing anything.
    let started = Instant::now();
    let mut served = false;
    while started.elapsed() < Duration::from_secs(15) {
        let attempt = tokio::time::timeout(Duration::from_secs(3), async {
            let fresh = crate::fixture::client();
            fresh.get(&prm).send().await
        })
        .await;
        if matches!(attempt, Ok(Ok(ref r)) if r.status() == 200) {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(silent);
    child.start_kill().unwrap();
    let output = child.wait_with_output().await.unwrap();
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        served,
        "never served again after descriptor exhaustion:\n{logs}"
    );
    let warnings = logs.matches("accept failed").count();
    assert!(
        (1..=3).contains(&warnings),
        "expected the accept failure logged once per episode, got {warnings}:\n{logs}"
    );
    assert!(logs.contains("accepting connections again"), "{logs}");
}
