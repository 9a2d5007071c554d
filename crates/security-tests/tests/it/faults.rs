//! Faults of the authorization server while traffic flows: its JWKS endpoint down,
//! slow (past the fetch timeout) or answering garbage, and a restart with new keys.

use std::time::{Duration, Instant};

use futures::future::join_all;

use mcp_resource_server::config::JwksConfig;

use crate::support::{
    JwksMode, SLOW_JWKS, TestAuthServer, TestKey, logs, mcp_with_token, rs_config, start_rs,
};

/// The longest a request may take while the authorization server misbehaves: under
/// the 3 s fetch timeout of the servers these tests start, so a request that waited on
/// a fetch is caught, with room for a loaded machine.
const QUICK: Duration = Duration::from_secs(2);

/// A resource server whose JWKS fetches time out after 3 s. Every request of
/// [`traffic`] is an `initialize` by one of four principals, so each opens a session:
/// the per-principal session cap is raised past what these tests open, as it is not
/// what they measure.
fn config(url: String, issuer: &str) -> mcp_resource_server::Config {
    rs_config(url, issuer)
        .with_token_cache_capacity(0)
        .with_max_mcp_sessions_per_principal(1_000)
        .with_jwks_config(JwksConfig {
            min_refetch_interval: Duration::from_millis(300),
            min_ttl: Duration::ZERO,
            http_timeout: Duration::from_secs(3),
            ..JwksConfig::default()
        })
}

/// `rounds` rounds of `parallel` requests, each with a fresh token (no verified-token
/// cache can answer for it); every one must succeed quickly.
async fn traffic(
    url: &str,
    auth_server: &TestAuthServer,
    key: &TestKey,
    rounds: usize,
    parallel: usize,
) {
    let aud = format!("{url}/mcp");
    for _ in 0..rounds {
        let requests = (0..parallel).map(|i| {
            let token = key.sign(&auth_server.claims(&format!("user-{i}"), &aud, "mcp:tools"));
            async move {
                let started = Instant::now();
                let reply = mcp_with_token(url, &token).await;
                (reply, started.elapsed())
            }
        });
        for (reply, elapsed) in join_all(requests).await {
            assert_eq!(reply.status, 200, "served from cached keys: {}", reply.body);
            assert!(elapsed < QUICK, "a request took {elapsed:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_down_slow_or_garbage_while_traffic_flows() {
    logs();
    let key = TestKey::rsa1();
    // max-age=1: the cached keys go stale after a second, so every fault below is met
    // by background refreshes while requests keep coming.
    let auth_server = TestAuthServer::builder()
        .keys(std::slice::from_ref(&key))
        .jwks_max_age(1)
        .start()
        .await;
    let issuer = auth_server.issuer().to_string();
    let url = start_rs(|url| config(url, &issuer)).await;

    traffic(&url, &auth_server, &key, 3, 4).await;
    for mode in [JwksMode::Down, JwksMode::Slow, JwksMode::Garbage] {
        auth_server.set_jwks_mode(mode);
        let before = auth_server.fetches();
        // 2.5 s of traffic: past the keys' max-age and several refetch intervals.
        traffic(&url, &auth_server, &key, 12, 4).await;
        assert!(
            auth_server.fetches() > before,
            "{mode:?}: the server did try to refresh its stale keys"
        );
        auth_server.set_jwks_mode(JwksMode::Ok);
        traffic(&url, &auth_server, &key, 3, 4).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_key_while_jwks_is_slow_does_not_hang() {
    logs();
    let key = TestKey::rsa1();
    let auth_server = TestAuthServer::with_keys(std::slice::from_ref(&key)).await;
    let issuer = auth_server.issuer().to_string();
    let url = start_rs(|url| rs_config(url, &issuer)).await;
    traffic(&url, &auth_server, &key, 1, 2).await;

    auth_server.set_jwks_mode(JwksMode::Slow);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let stranger = TestKey::rsa2();
    let token = stranger.sign(&auth_server.claims("alice", &format!("{url}/mcp"), "mcp:tools"));
    let started = Instant::now();
    let reply = mcp_with_token(&url, &token).await;
    assert_eq!(reply.status, 401, "unknown kid: {}", reply.body);
    assert!(
        started.elapsed() < SLOW_JWKS / 2,
        "bounded by the 1 s fetch timeout, not the {SLOW_JWKS:?} answer; took {:?}",
        started.elapsed()
    );
    // Known keys are still served at once meanwhile.
    traffic(&url, &auth_server, &key, 2, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_keys_yet_and_jwks_slow_answers_503_in_bounded_time() {
    logs();
    let key = TestKey::rsa1();
    let auth_server = TestAuthServer::with_keys(std::slice::from_ref(&key)).await;
    auth_server.set_jwks_mode(JwksMode::Slow);
    let issuer = auth_server.issuer().to_string();
    let url = start_rs(|url| rs_config(url, &issuer)).await;
    let token = key.sign(&auth_server.claims("alice", &format!("{url}/mcp"), "mcp:tools"));
    let started = Instant::now();
    let response = crate::support::client()
        .post(format!("{url}/mcp"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(crate::support::initialize().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"5"[..])
    );
    assert!(started.elapsed() < SLOW_JWKS / 2, "{:?}", started.elapsed());
    // Once the authorization server answers again, the same token is accepted.
    auth_server.set_jwks_mode(JwksMode::Ok);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let reply = mcp_with_token(&url, &token).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_server_restarts_with_new_keys() {
    logs();
    let old = TestKey::rsa1();
    let new = TestKey::rsa2();
    let mut auth_server = TestAuthServer::with_keys(std::slice::from_ref(&old)).await;
    let addr = auth_server.addr();
    let issuer = auth_server.issuer().to_string();
    let url = start_rs(|url| config(url, &issuer)).await;
    traffic(&url, &auth_server, &old, 2, 4).await;

    // Down (connection refused): tokens signed with the cached key keep working.
    auth_server.stop().await;
    traffic(&url, &auth_server, &old, 3, 4).await;

    // Back on the same address with a new key only.
    let restarted = TestAuthServer::builder()
        .bind(addr)
        .keys(std::slice::from_ref(&new))
        .start()
        .await;
    assert_eq!(restarted.issuer(), issuer);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let aud = format!("{url}/mcp");
    // Eight concurrent requests with the unknown kid: one fetch serves them all.
    let requests = (0..8).map(|i| {
        let token = new.sign(&restarted.claims(&format!("user-{i}"), &aud, "mcp:tools"));
        let url = url.clone();
        async move { mcp_with_token(&url, &token).await }
    });
    for reply in join_all(requests).await {
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    assert_eq!(restarted.fetches(), 1, "recovered with one JWKS fetch");
    traffic(&url, &restarted, &new, 2, 4).await;
    assert_eq!(restarted.fetches(), 1);

    // The old key is no longer published: its tokens are refused from now on.
    let stale = old.sign(&restarted.claims("alice", &aud, "mcp:tools"));
    let reply = mcp_with_token(&url, &stale).await;
    assert_eq!(reply.status, 401);
}
