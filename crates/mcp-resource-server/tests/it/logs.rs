//! Logs never contain a token, whatever the client does with it.

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use serde_json::json;
use tracing_subscriber::fmt::MakeWriter;

use crate::fixture::{TestAs, TestKey, call, client, initialize, rpc, start_rs, test_config};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

// Single-threaded runtime: the thread-local subscriber sees the server's tasks too.
#[tokio::test(flavor = "current_thread")]
async fn no_token_reaches_the_logs() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let auth = TestAs::start(&[TestKey::rsa1()]).await;
    let issuer = auth.issuer.clone();
    let url = start_rs(move |url| test_config(url, &issuer)).await;
    let aud = format!("{url}/mcp");
    let good = TestKey::rsa1().sign(&auth.claims("alice", &aud, "mcp:tools"), None);
    let foreign =
        TestKey::rsa1().sign(&auth.claims("alice", "http://other/mcp", "mcp:tools"), None);

    let init = rpc(&url, Some(&good), None, initialize()).await;
    assert_eq!(init.status, 200);
    let session = init.session.unwrap();
    rpc(
        &url,
        Some(&good),
        Some(&session),
        call(2, "whoami", json!({})),
    )
    .await;
    rpc(
        &url,
        Some(&good),
        Some(&session),
        call(3, "admin_status", json!({})),
    )
    .await;
    assert_eq!(
        rpc(&url, Some(&foreign), None, initialize()).await.status,
        401
    );
    let query = client()
        .post(format!("{url}/mcp?access_token={good}"))
        .json(&initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(query.status(), 400);
    let form = client()
        .post(format!("{url}/session"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("access_token={foreign}"))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 400);

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("bearer token refused"),
        "the refusals were logged"
    );
    for token in [&good, &foreign] {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!logs.contains(token.as_str()), "a token was logged");
        assert!(!logs.contains(signature), "a token signature was logged");
    }
}
