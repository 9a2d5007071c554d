//! Logs never contain a token, whatever the client does with it.

use serde_json::json;

use crate::fixture::{TestAuthServer, TestKey, call, client, initialize, rpc};

/// Runs the real binary with every log level on and its output in a file: a
/// subscriber scoped to a test thread would share tracing's global callsite state with
/// the tests running beside it, and miss events now and then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_reaches_the_logs() {
    let auth = TestAuthServer::with_keys(&[TestKey::rsa1()]).await;
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let log_path =
        std::env::temp_dir().join(format!("mcp-rs-logs-{}-{port}.log", std::process::id()));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_resource-server"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--public-url",
            &url,
        ])
        .args(["--issuer", auth.issuer()])
        .env("RUST_LOG", "trace")
        .env("NO_COLOR", "1")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut up = false;
    for _ in 0..100 {
        let prm = format!("{url}/.well-known/oauth-protected-resource/mcp");
        if client().get(prm).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(up, "the server did not start");
    let aud = format!("{url}/mcp");
    let good = TestKey::rsa1().sign_with_typ(&auth.claims("alice", &aud, "mcp:tools"), None);
    let foreign =
        TestKey::rsa1().sign_with_typ(&auth.claims("alice", "http://other/mcp", "mcp:tools"), None);

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

    child.kill().await.unwrap();
    let logs = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
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
