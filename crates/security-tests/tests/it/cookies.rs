//! The session cookie of the legacy SSE transport: its attributes on http and https,
//! cross-origin (CSRF) refusals, and isolation between principals.

use std::time::Duration;

use serde_json::json;

use crate::support::{
    Auth, Key, Reply, TestAs, call, client, logs, now, open_sse, post_message, rs_config,
    sse_handshake, start_rs,
};
use mcp_resource_server::config::CookieConfig;

struct Setup {
    auth_server: TestAs,
    /// Where the server listens.
    url: String,
    /// Its public URL (the `aud` of its tokens).
    public: String,
    key: Key,
}

async fn setup(https_public_url: bool) -> Setup {
    logs();
    let key = Key::as1();
    let auth_server = TestAs::start(std::slice::from_ref(&key), 600).await;
    let issuer = auth_server.issuer.clone();
    let url = start_rs(|url| {
        if https_public_url {
            // Served over plain http on loopback, published as https (behind a proxy):
            // the loopback address literal stays an allowed Host.
            let https = url.replace("http://", "https://");
            rs_config(https, &issuer)
        } else {
            rs_config(url, &issuer)
        }
    })
    .await;
    let public = if https_public_url {
        url.replace("http://", "https://")
    } else {
        url.clone()
    };
    Setup {
        auth_server,
        url,
        public,
        key,
    }
}

impl Setup {
    fn token(&self, sub: &str, lifetime: u64) -> String {
        let mut claims = self
            .auth_server
            .claims(sub, &format!("{}/sse", self.public), "mcp:tools");
        claims["exp"] = json!(now() + lifetime);
        self.key.sign(&claims)
    }

    /// `POST /session` with the token; returns the reply and the `Set-Cookie` value.
    async fn session(&self, token: &str, origin: Option<&str>) -> (Reply, String) {
        let mut request = client()
            .post(format!("{}/session", self.url))
            .bearer_auth(token);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let response = request.send().await.unwrap();
        let set_cookie = response
            .headers()
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (Reply::from(response).await, set_cookie)
    }
}

/// `name=value` of a `Set-Cookie` header.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().trim().to_string()
}

fn attributes(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect()
}

fn max_age(set_cookie: &str) -> u64 {
    attributes(set_cookie)
        .iter()
        .find_map(|a| a.strip_prefix("max-age=").map(|v| v.parse().unwrap()))
        .expect("Max-Age")
}

#[tokio::test]
async fn cookie_attributes_on_http() {
    let setup = setup(false).await;
    let token = setup.token("alice", 120);
    let (reply, set_cookie) = setup.session(&token, None).await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    let pair = cookie_pair(&set_cookie);
    assert!(pair.starts_with("mcp_session="), "{set_cookie}");
    let value = pair.trim_start_matches("mcp_session=");
    assert!(value.len() >= 32, "an unguessable id");
    assert!(!token.contains(value), "the cookie is not the token");
    let attrs = attributes(&set_cookie);
    for needed in ["httponly", "samesite=strict", "path=/"] {
        assert!(
            attrs.iter().any(|a| a == needed),
            "{needed} in {set_cookie}"
        );
    }
    assert!(!attrs.iter().any(|a| a == "secure"), "no Secure on http");
    let age = max_age(&set_cookie);
    assert!(
        age > 0 && age <= 120,
        "Max-Age {age} within the token's lifetime"
    );
    assert!(!reply.headers.contains(&token));
}

#[tokio::test]
async fn cookie_attributes_on_https() {
    let setup = setup(true).await;
    let token = setup.token("alice", 7200);
    let (reply, set_cookie) = setup.session(&token, None).await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    assert!(set_cookie.starts_with("mcp_session="), "{set_cookie}");
    let attrs = attributes(&set_cookie);
    for needed in ["httponly", "samesite=strict", "path=/", "secure"] {
        assert!(
            attrs.iter().any(|a| a == needed),
            "{needed} in {set_cookie}"
        );
    }
    // Capped by the configured maximum (1 h) even though the token lives 2 h.
    assert!(max_age(&set_cookie) <= CookieConfig::default().max_age.as_secs());
}

#[tokio::test]
async fn cross_origin_requests_carrying_the_cookie_are_refused() {
    let setup = setup(false).await;
    let url = &setup.url;
    let token = setup.token("alice", 300);
    let (_, set_cookie) = setup.session(&token, None).await;
    let cookie = cookie_pair(&set_cookie);
    let (mut reader, endpoint) = open_sse(url, Auth::Cookie(&cookie, None)).await;

    // A page on another origin posting into the session with the victim's cookie.
    let evil = post_message(
        url,
        &endpoint,
        Auth::Cookie(&cookie, Some("http://evil.example")),
        &crate::support::initialize(),
    )
    .await;
    assert_eq!(evil.status, 403, "{}", evil.body);
    // Same-site but a different port is another origin too.
    let sibling = url.rsplit_once(':').unwrap().0.to_string() + ":1";
    let reply = post_message(
        url,
        &endpoint,
        Auth::Cookie(&cookie, Some(&sibling)),
        &crate::support::initialize(),
    )
    .await;
    assert_eq!(reply.status, 403);
    // A cookie-authenticated POST without Origin is refused as well.
    let reply = post_message(
        url,
        &endpoint,
        Auth::Cookie(&cookie, None),
        &crate::support::initialize(),
    )
    .await;
    assert_eq!(reply.status, 403);
    // `Origin: null` (sandboxed frames, file://) is not an allowed origin.
    let reply = post_message(
        url,
        &endpoint,
        Auth::Cookie(&cookie, Some("null")),
        &crate::support::initialize(),
    )
    .await;
    assert_eq!(reply.status, 403);

    // None of them reached the session: nothing arrived on the stream.
    let nothing = tokio::time::timeout(Duration::from_millis(300), reader.next()).await;
    assert!(nothing.is_err(), "a refused POST reached the session");

    // The same origin works.
    sse_handshake(
        url,
        &endpoint,
        Auth::Cookie(&cookie, Some(url)),
        &mut reader,
    )
    .await;

    // A cross-origin DELETE /session cannot log the victim out.
    let response = client()
        .delete(format!("{url}/session"))
        .header("cookie", &cookie)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let reply = post_message(
        url,
        &endpoint,
        Auth::Cookie(&cookie, Some(url)),
        &call(2, "calculator", json!({"operation": "add", "a": 1, "b": 2})),
    )
    .await;
    assert_eq!(reply.status, 202, "session still alive: {}", reply.body);
    let answer = reader.message().await;
    assert_eq!(answer["id"], 2);

    // A cross-origin request to get a cookie is refused too.
    let (reply, set_cookie) = setup.session(&token, Some("http://evil.example")).await;
    assert_eq!(reply.status, 403);
    assert!(set_cookie.is_empty());
}

#[tokio::test]
async fn one_principals_cookie_never_reaches_anothers_session() {
    let setup = setup(false).await;
    let url = &setup.url;
    let alice_token = setup.token("alice", 300);
    let bob_token = setup.token("bob", 300);
    let alice = cookie_pair(&setup.session(&alice_token, None).await.1);
    let bob = cookie_pair(&setup.session(&bob_token, None).await.1);
    assert_ne!(alice, bob);

    let (mut alice_stream, alice_endpoint) = open_sse(url, Auth::Cookie(&alice, None)).await;
    let (mut bob_stream, bob_endpoint) = open_sse(url, Auth::Cookie(&bob, None)).await;
    sse_handshake(
        url,
        &alice_endpoint,
        Auth::Cookie(&alice, Some(url)),
        &mut alice_stream,
    )
    .await;
    sse_handshake(
        url,
        &bob_endpoint,
        Auth::Cookie(&bob, Some(url)),
        &mut bob_stream,
    )
    .await;

    // Bob, with his cookie or his token, posting into Alice's session: unknown session.
    let whoami = call(7, "whoami", json!({}));
    let reply = post_message(url, &alice_endpoint, Auth::Cookie(&bob, Some(url)), &whoami).await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    let reply = post_message(url, &alice_endpoint, Auth::Bearer(&bob_token), &whoami).await;
    assert_eq!(reply.status, 404);
    // Both cookies at once: the request is still Bob's or Alice's, never a mix; it must
    // not reach Alice's session as Bob.
    let both = format!("{bob}; {alice}");
    let reply = post_message(
        url,
        &alice_endpoint,
        Auth::Cookie(&both, Some(url)),
        &whoami,
    )
    .await;
    let nothing = tokio::time::timeout(Duration::from_millis(300), alice_stream.next()).await;
    if reply.status == 202 {
        // Accepted only if the server read Alice's cookie; then the answer is Alice's.
        let event = nothing.expect("an answer").expect("open stream");
        assert!(event.data.contains("alice"), "{}", event.data);
        assert!(!event.data.contains("bob"));
    } else {
        assert_eq!(reply.status, 404);
        assert!(nothing.is_err());
    }

    // Alice's own call is answered on her stream, with her identity, and only there.
    let reply = post_message(
        url,
        &alice_endpoint,
        Auth::Cookie(&alice, Some(url)),
        &call(8, "whoami", json!({})),
    )
    .await;
    assert_eq!(reply.status, 202);
    let answer = alice_stream.message().await;
    assert_eq!(answer["id"], 8);
    let text = answer.to_string();
    assert!(
        text.contains("alice") && !text.contains("\\\"bob\\\""),
        "{text}"
    );
    let leaked = tokio::time::timeout(Duration::from_millis(300), bob_stream.next()).await;
    assert!(
        leaked.is_err(),
        "Bob's stream received something: {leaked:?}"
    );

    // After Alice signs out, her cookie opens nothing.
    let response = client()
        .delete(format!("{url}/session"))
        .header("cookie", &alice)
        .header("origin", url.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let response = client()
        .get(format!("{url}/sse"))
        .header("cookie", &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}
