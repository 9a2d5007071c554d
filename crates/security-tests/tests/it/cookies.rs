//! The session cookie of the legacy SSE transport: its attributes on http and https,
//! cross-origin (CSRF) refusals, and isolation between principals.

use std::time::Duration;

use serde_json::json;

use crate::support::{
    Reply, SseAuth, TestAuthServer, TestKey, call, client, logs, now, open_sse, post_message,
    rs_config, sse_handshake, start_rs,
};
use mcp_resource_server::config::CookieConfig;

struct Setup {
    auth_server: TestAuthServer,
    /// Where the server listens.
    url: String,
    /// Its public URL (the `aud` of its tokens).
    public: String,
    key: TestKey,
}

async fn setup(https_public_url: bool) -> Setup {
    setup_with(https_public_url, |config| config).await
}

async fn setup_with(
    https_public_url: bool,
    adjust: impl FnOnce(mcp_resource_server::Config) -> mcp_resource_server::Config,
) -> Setup {
    logs();
    let key = TestKey::rsa1();
    let auth_server = TestAuthServer::with_keys(std::slice::from_ref(&key)).await;
    let issuer = auth_server.issuer().to_string();
    let url = start_rs(|url| {
        if https_public_url {
            // Served over plain http on loopback, published as https (behind a proxy):
            // the loopback address literal stays an allowed Host.
            let https = url.replace("http://", "https://");
            adjust(rs_config(https, &issuer))
        } else {
            adjust(rs_config(url, &issuer))
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
    // Secure, Path=/ and no Domain: the `__Host-` prefix applies, so no other host or
    // plain-http port can set a cookie of this name.
    assert!(
        set_cookie.starts_with("__Host-mcp_session="),
        "{set_cookie}"
    );
    let attrs = attributes(&set_cookie);
    assert!(
        !attrs.iter().any(|a| a.starts_with("domain")),
        "{set_cookie}"
    );
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
    let (mut reader, endpoint) = open_sse(url, SseAuth::Cookie(&cookie, None)).await;

    // A page on another origin posting into the session with the victim's cookie.
    let evil = post_message(
        url,
        &endpoint,
        SseAuth::Cookie(&cookie, Some("http://evil.example")),
        &crate::support::initialize(),
    )
    .await;
    assert_eq!(evil.status, 403, "{}", evil.body);
    // Same-site but a different port is another origin too.
    let sibling = url.rsplit_once(':').unwrap().0.to_string() + ":1";
    let reply = post_message(
        url,
        &endpoint,
        SseAuth::Cookie(&cookie, Some(&sibling)),
        &crate::support::initialize(),
    )
    .await;
    assert_eq!(reply.status, 403);
    // A cookie-authenticated POST without Origin is refused as well.
    let reply = post_message(
        url,
        &endpoint,
        SseAuth::Cookie(&cookie, None),
        &crate::support::initialize(),
    )
    .await;
    assert_eq!(reply.status, 403);
    // `Origin: null` (sandboxed frames, file://) is not an allowed origin.
    let reply = post_message(
        url,
        &endpoint,
        SseAuth::Cookie(&cookie, Some("null")),
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
        SseAuth::Cookie(&cookie, Some(url)),
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
        SseAuth::Cookie(&cookie, Some(url)),
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

    let (mut alice_stream, alice_endpoint) = open_sse(url, SseAuth::Cookie(&alice, None)).await;
    let (mut bob_stream, bob_endpoint) = open_sse(url, SseAuth::Cookie(&bob, None)).await;
    sse_handshake(
        url,
        &alice_endpoint,
        SseAuth::Cookie(&alice, Some(url)),
        &mut alice_stream,
    )
    .await;
    sse_handshake(
        url,
        &bob_endpoint,
        SseAuth::Cookie(&bob, Some(url)),
        &mut bob_stream,
    )
    .await;

    // Bob, with his cookie or his token, posting into Alice's session: unknown session.
    let whoami = call(7, "whoami", json!({}));
    let reply = post_message(
        url,
        &alice_endpoint,
        SseAuth::Cookie(&bob, Some(url)),
        &whoami,
    )
    .await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    let reply = post_message(url, &alice_endpoint, SseAuth::Bearer(&bob_token), &whoami).await;
    assert_eq!(reply.status, 404);
    // Both cookies at once: it must not reach Alice's session as Bob.
    let both = format!("{bob}; {alice}");
    let reply = post_message(
        url,
        &alice_endpoint,
        SseAuth::Cookie(&both, Some(url)),
        &whoami,
    )
    .await;
    let nothing = tokio::time::timeout(Duration::from_millis(300), alice_stream.next()).await;
    // Two session cookies in one request are refused outright (cookie tossing).
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert!(nothing.is_err());

    // Alice's own call is answered on her stream, with her identity, and only there.
    let reply = post_message(
        url,
        &alice_endpoint,
        SseAuth::Cookie(&alice, Some(url)),
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

/// `GET /sse` with a `Cookie` header and extra headers; returns the status.
async fn sse_status(url: &str, cookie: &str, extra: &[(&str, &str)]) -> u16 {
    let mut request = client()
        .get(format!("{url}/sse"))
        .header("accept", "text/event-stream")
        .header("cookie", cookie);
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap().status().as_u16()
}

/// One principal cannot fill the cookie store: past its limit, opening a session ends
/// its own oldest; the store full is a 503 with a reason, never a 500; another
/// principal is unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_sessions_are_capped_per_principal_and_overall() {
    let setup = setup_with(false, |mut config| {
        config.cookie.max_per_principal = 3;
        config.cookie.max_sessions = 5;
        config
    })
    .await;
    let url = &setup.url;
    let alice = setup.token("alice", 300);
    let bob = setup.token("bob", 300);
    let bob_cookie = cookie_pair(&setup.session(&bob, None).await.1);
    let mut alices = Vec::new();
    for _ in 0..50 {
        let (reply, set_cookie) = setup.session(&alice, None).await;
        assert_eq!(reply.status, 204, "{}", reply.body);
        alices.push(cookie_pair(&set_cookie));
    }
    // Only Alice's three newest sessions are alive.
    for (index, cookie) in alices.iter().enumerate() {
        let expected = if index >= 47 { 200 } else { 401 };
        assert_eq!(
            sse_status(url, cookie, &[]).await,
            expected,
            "cookie {index}"
        );
    }
    // Bob's session was never touched.
    assert_eq!(sse_status(url, &bob_cookie, &[]).await, 200);
    let _bob_second = setup.session(&bob, None).await;
    // Five sessions held: a new principal gets 503 with a reason, not 500.
    let (full, set_cookie) = setup.session(&setup.token("carol", 300), None).await;
    assert_eq!(full.status, 503, "{full:?}");
    assert!(set_cookie.is_empty());
    assert!(
        full.body.contains("temporarily_unavailable"),
        "{}",
        full.body
    );
    assert!(full.headers.contains("retry-after"), "{full:?}");
    // Alice (at her limit) can still sign in again: she replaces her oldest.
    assert_eq!(setup.session(&alice, None).await.0.status, 204);
}

/// A cookie session is removed at its end: its place is free again without anyone
/// presenting the cookie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_cookie_sessions_free_their_place() {
    let setup = setup_with(false, |mut config| {
        config.cookie.max_sessions = 1;
        config
    })
    .await;
    let (reply, _) = setup.session(&setup.token("alice", 2), None).await;
    assert_eq!(reply.status, 204);
    let bob = setup.token("bob", 300);
    assert_eq!(setup.session(&bob, None).await.0.status, 503);
    tokio::time::sleep(Duration::from_millis(3200)).await;
    assert_eq!(setup.session(&bob, None).await.0.status, 204);
}

/// Cookie tossing: a page on another localhost port can set a cookie of the same name
/// (cookies ignore ports). A request carrying the session cookie name twice is refused,
/// whichever order and whichever of them is valid.
#[tokio::test]
async fn a_request_carrying_the_session_cookie_twice_is_refused() {
    let setup = setup(false).await;
    let url = &setup.url;
    let real = cookie_pair(&setup.session(&setup.token("alice", 300), None).await.1);
    let attacker = cookie_pair(&setup.session(&setup.token("mallory", 300), None).await.1);
    assert_eq!(sse_status(url, &real, &[]).await, 200);
    for cookie in [
        format!("{attacker}; {real}"),
        format!("{real}; {attacker}"),
        format!("{real}; {real}"),
        format!("mcp_session=junk; {real}"),
    ] {
        assert_eq!(sse_status(url, &cookie, &[]).await, 401, "{cookie}");
    }
}

/// `GET /sse` with the cookie opens a stream only for a same-origin fetch: a same-site
/// page on another port (an `<img>` or navigation: no `Origin`, `Sec-Fetch-Site:
/// same-site`) cannot use up the victim's stream slots.
#[tokio::test]
async fn cookie_event_streams_need_a_same_origin_fetch() {
    let setup = setup(false).await;
    let url = &setup.url;
    let cookie = cookie_pair(&setup.session(&setup.token("alice", 300), None).await.1);
    for site in ["same-site", "cross-site", "none"] {
        assert_eq!(
            sse_status(url, &cookie, &[("sec-fetch-site", site)]).await,
            403,
            "Sec-Fetch-Site: {site}"
        );
    }
    assert_eq!(
        sse_status(url, &cookie, &[("sec-fetch-site", "same-origin")]).await,
        200
    );
    // A CORS request from an allowed origin, and a client sending neither header.
    assert_eq!(
        sse_status(
            url,
            &cookie,
            &[("sec-fetch-site", "same-origin"), ("origin", url)]
        )
        .await,
        200
    );
    assert_eq!(sse_status(url, &cookie, &[]).await, 200);
    // A bearer token is not subject to it.
    let token = setup.token("alice", 300);
    let response = client()
        .get(format!("{url}/sse"))
        .header("accept", "text/event-stream")
        .header("sec-fetch-site", "cross-site")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// `--no-auth` is refused on a non-loopback socket, with a sentence naming it.
#[tokio::test]
async fn no_auth_is_refused_on_a_non_loopback_listener() {
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = rs_config(
        format!("http://localhost:{}", addr.port()),
        "http://127.0.0.1:9",
    );
    config.no_auth = true;
    let result = tokio::time::timeout(
        Duration::from_secs(5),
        resource_server::serve(config, listener),
    )
    .await
    .expect("refused at once");
    let error = result.unwrap_err().to_string();
    assert!(
        error.contains("no-auth") && error.contains("non-loopback"),
        "{error}"
    );
    // The command line refuses it before binding.
    let cli = <resource_server::cli::Cli as clap::Parser>::try_parse_from([
        "resource-server",
        "--no-auth",
        "--listen",
        "0.0.0.0:3001",
    ])
    .unwrap();
    let error = cli.to_config().unwrap().validate().unwrap_err();
    assert_eq!(error.setting, "no-auth");
}
