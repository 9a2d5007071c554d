//! The legacy HTTP+SSE transport with Bearer and with the session cookie.

use std::time::Duration;

use serde_json::json;

use testkit::legacy_sse::{SseAuth, open_sse, post_message, sse_handshake};

use crate::fixture::{
    SseReader, TestAuthServer, TestKey, call, client, now, start_rs, test_config,
};

async fn setup() -> (TestAuthServer, String) {
    let auth = TestAuthServer::with_keys(&[TestKey::rsa1()]).await;
    let issuer = auth.issuer().to_string();
    let url = start_rs(move |url| test_config(url, &issuer)).await;
    (auth, url)
}

fn token(auth: &TestAuthServer, url: &str, sub: &str, scope: &str) -> String {
    TestKey::rsa1().sign_with_typ(&auth.claims(sub, &format!("{url}/sse"), scope), None)
}

async fn handshake(url: &str, endpoint: &str, auth: SseAuth<'_>, reader: &mut SseReader) {
    let result = sse_handshake(url, endpoint, auth, reader, "it").await;
    assert_eq!(result["serverInfo"]["name"], "resource-server");
}

#[tokio::test]
async fn full_session_over_sse_with_bearer() {
    let (auth, url) = setup().await;
    let token = token(&auth, &url, "alice", "mcp:tools");
    let (mut reader, endpoint) = open_sse(&url, SseAuth::Bearer(&token)).await;
    handshake(&url, &endpoint, SseAuth::Bearer(&token), &mut reader).await;
    post_message(
        &url,
        &endpoint,
        SseAuth::Bearer(&token),
        &call(
            2,
            "calculator",
            json!({"operation":"subtract","a":50,"b":8}),
        ),
    )
    .await;
    let reply = reader.message().await;
    assert_eq!(reply["result"]["structuredContent"]["result"], 42.0);
    // Scope check on /messages too: HTTP 403 pointing at the SSE PRM.
    let response = post_message(
        &url,
        &endpoint,
        SseAuth::Bearer(&token),
        &call(3, "admin_status", json!({})),
    )
    .await;
    assert_eq!(response.status(), 403);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.contains(r#"scope="mcp:tools mcp:admin""#),
        "{challenge}"
    );
    assert!(
        challenge.contains("/.well-known/oauth-protected-resource/sse"),
        "{challenge}"
    );
    // No credentials on /sse: 401 naming the SSE PRM.
    let response = client().get(format!("{url}/sse")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("oauth-protected-resource/sse")
    );
}

#[tokio::test]
async fn full_session_over_sse_with_the_cookie() {
    let (auth, url) = setup().await;
    let token = token(&auth, &url, "alice", "mcp:tools");
    let response = post_message(&url, "/session", SseAuth::Bearer(&token), &json!({})).await;
    assert_eq!(response.status(), 204);
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        set_cookie.contains("HttpOnly")
            && set_cookie.contains("SameSite=Strict")
            && set_cookie.contains("Path=/")
    );
    assert!(!set_cookie.contains("Secure"), "plain http: no Secure");
    let max_age: u64 = set_cookie
        .split("Max-Age=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(max_age <= 300, "no longer than the token ({max_age})");
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    assert!(cookie.starts_with("mcp_session="));
    assert!(
        !cookie.contains(&token[..16]),
        "the cookie is not the token"
    );

    let origin = Some(url.as_str());
    let (mut reader, endpoint) = open_sse(&url, SseAuth::Cookie(&cookie, None)).await;
    handshake(
        &url,
        &endpoint,
        SseAuth::Cookie(&cookie, origin),
        &mut reader,
    )
    .await;
    post_message(
        &url,
        &endpoint,
        SseAuth::Cookie(&cookie, origin),
        &call(2, "whoami", json!({})),
    )
    .await;
    let reply = reader.message().await;
    assert_eq!(reply["result"]["structuredContent"]["subject"], "alice");

    // A cross-origin cookie POST, and one without Origin, are refused.
    let response = post_message(
        &url,
        &endpoint,
        SseAuth::Cookie(&cookie, Some("http://evil.example.com")),
        &call(3, "whoami", json!({})),
    )
    .await;
    assert_eq!(response.status(), 403);
    let response = post_message(
        &url,
        &endpoint,
        SseAuth::Cookie(&cookie, None),
        &call(3, "whoami", json!({})),
    )
    .await;
    assert_eq!(response.status(), 403);

    // DELETE /session ends it: the cookie no longer authenticates.
    let response = client()
        .delete(format!("{url}/session"))
        .header("cookie", &cookie)
        .header("origin", &url)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert!(
        response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let response = post_message(
        &url,
        &endpoint,
        SseAuth::Cookie(&cookie, origin),
        &call(4, "whoami", json!({})),
    )
    .await;
    assert_eq!(response.status(), 401);
}

async fn new_session(url: &str, token: &str, previous_cookie: Option<&str>) -> String {
    let mut request = client().post(format!("{url}/session")).bearer_auth(token);
    if let Some(cookie) = previous_cookie {
        request = request.header("cookie", cookie).header("origin", url);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 204);
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap();
    set_cookie.split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn a_new_session_replaces_the_one_the_browser_held() {
    let (auth, url) = setup().await;
    let first = new_session(&url, &token(&auth, &url, "alice", "mcp:tools"), None).await;
    let (_reader, _endpoint) = open_sse(&url, SseAuth::Cookie(&first, None)).await;

    // Signing in again (a step-up, say) while holding the first cookie ends the first session.
    let step_up = token(&auth, &url, "alice", "mcp:tools mcp:admin");
    let second = new_session(&url, &step_up, Some(&first)).await;
    assert_ne!(first, second);
    let response = client()
        .get(format!("{url}/sse"))
        .header("accept", "text/event-stream")
        .header("cookie", &first)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        401,
        "the replaced cookie no longer opens a stream"
    );
    let (_reader, _endpoint) = open_sse(&url, SseAuth::Cookie(&second, None)).await;
}

#[tokio::test]
async fn another_principal_cannot_post_to_a_stream() {
    let (auth, url) = setup().await;
    let alice = token(&auth, &url, "alice", "mcp:tools");
    let mallory = token(&auth, &url, "mallory", "mcp:tools");
    let (mut reader, endpoint) = open_sse(&url, SseAuth::Bearer(&alice)).await;
    handshake(&url, &endpoint, SseAuth::Bearer(&alice), &mut reader).await;
    let response = post_message(
        &url,
        &endpoint,
        SseAuth::Bearer(&mallory),
        &call(2, "whoami", json!({})),
    )
    .await;
    assert_eq!(response.status(), 404);
    // The session id alone is no credential either.
    let response = client()
        .post(format!("{url}{endpoint}"))
        .json(&call(2, "whoami", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // Alice's own POST still works and nothing from mallory reached her stream.
    post_message(
        &url,
        &endpoint,
        SseAuth::Bearer(&alice),
        &call(3, "whoami", json!({})),
    )
    .await;
    let reply = reader.message().await;
    assert_eq!(reply["id"], 3);
}

#[tokio::test]
async fn the_stream_closes_when_its_token_expires() {
    let auth = TestAuthServer::with_keys(&[TestKey::rsa1()]).await;
    let issuer = auth.issuer().to_string();
    // The stream ends when the token is refused: exp + leeway.
    let url =
        start_rs(move |url| test_config(url, &issuer).with_leeway(Duration::from_secs(1))).await;
    let mut claims = auth.claims("alice", &format!("{url}/sse"), "mcp:tools");
    claims["exp"] = json!(now() + 2);
    let token = TestKey::rsa1().sign_with_typ(&claims, None);
    let (mut reader, endpoint) = open_sse(&url, SseAuth::Bearer(&token)).await;
    handshake(&url, &endpoint, SseAuth::Bearer(&token), &mut reader).await;
    let end = tokio::time::timeout(Duration::from_secs(8), async {
        while reader.next().await.is_some() {}
    })
    .await;
    assert!(end.is_ok(), "the stream ended at token expiry");
    // The session is gone with it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let fresh = token_for(&auth, &url);
    let response = post_message(
        &url,
        &endpoint,
        SseAuth::Bearer(&fresh),
        &call(2, "whoami", json!({})),
    )
    .await;
    assert_eq!(response.status(), 404);
}

fn token_for(auth: &TestAuthServer, url: &str) -> String {
    token(auth, url, "alice", "mcp:tools")
}

#[tokio::test]
async fn a_cookie_stream_closes_when_the_cookie_session_ends() {
    let auth = TestAuthServer::with_keys(&[TestKey::rsa1()]).await;
    let issuer = auth.issuer().to_string();
    // The token lives 5 minutes; the cookie session only 2 seconds.
    let url = start_rs(move |url| {
        test_config(url, &issuer).with_cookie(mcp_resource_server::config::CookieConfig {
            max_age: Duration::from_secs(2),
            ..Default::default()
        })
    })
    .await;
    let token = token(&auth, &url, "alice", "mcp:tools");
    let response = post_message(&url, "/session", SseAuth::Bearer(&token), &json!({})).await;
    assert_eq!(response.status(), 204);
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(set_cookie.contains("Max-Age=2"), "{set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let (mut reader, _endpoint) = open_sse(&url, SseAuth::Cookie(&cookie, None)).await;
    let end = tokio::time::timeout(Duration::from_secs(8), async {
        while reader.next().await.is_some() {}
    })
    .await;
    assert!(end.is_ok(), "the stream ended with the cookie session");
    let response = client()
        .get(format!("{url}/sse"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}
