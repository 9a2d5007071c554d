//! Limits on open event streams: per principal (429) and overall (503), shared by the
//! legacy `GET /sse` and the standalone `GET /mcp` streams, and slots freed when a
//! stream ends (client disconnect, token expiry, `DELETE /session`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fixture::{
    SseReader, TestAuthServer, TestKey, client, initialize, now, open_mcp_session, rpc,
    standalone_stream, start_rs, test_config,
};

async fn setup(per_principal: usize, total: usize) -> (TestAuthServer, String) {
    let auth = TestAuthServer::with_keys(&[TestKey::rsa1()]).await;
    let issuer = auth.issuer().to_string();
    let url = start_rs(move |url| {
        test_config(url, &issuer)
            .with_max_streams_per_principal(per_principal)
            .with_max_streams(total)
            .with_leeway(Duration::ZERO)
    })
    .await;
    (auth, url)
}

fn sse_token(auth: &TestAuthServer, url: &str, sub: &str) -> String {
    TestKey::rsa1().sign_with_typ(&auth.claims(sub, &format!("{url}/sse"), "mcp:tools"), None)
}

enum Credential<'a> {
    Bearer(&'a str),
    Cookie(&'a str),
}

/// `GET /sse`: the status, and the open stream when it is 200.
async fn open_sse(url: &str, credential: Credential<'_>) -> (u16, Option<SseReader>, Value) {
    let request = client()
        .get(format!("{url}/sse"))
        .header("accept", "text/event-stream");
    let request = match credential {
        Credential::Bearer(token) => request.bearer_auth(token),
        Credential::Cookie(cookie) => request.header("cookie", cookie),
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    if status == 200 {
        let mut reader = SseReader::new(response);
        let endpoint = reader.next().await.expect("the endpoint event");
        assert_eq!(endpoint.event, "endpoint");
        (status, Some(reader), Value::Null)
    } else {
        let body = response.json().await.unwrap_or(Value::Null);
        (status, None, body)
    }
}

/// Retries opening a stream until it succeeds or `within` passes.
async fn opens_within(url: &str, token: &str, within: Duration) -> Option<SseReader> {
    let started = Instant::now();
    while started.elapsed() < within {
        if let (200, reader, _) = open_sse(url, Credential::Bearer(token)).await {
            return reader;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test]
async fn one_principal_is_limited_others_are_served() {
    let (auth, url) = setup(3, 100).await;
    let alice = sse_token(&auth, &url, "alice");
    let mut held = Vec::new();
    for _ in 0..3 {
        let (status, reader, _) = open_sse(&url, Credential::Bearer(&alice)).await;
        assert_eq!(status, 200);
        held.push(reader.unwrap());
    }
    let (status, _, body) = open_sse(&url, Credential::Bearer(&alice)).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"], "too_many_streams");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );
    // Another token of the same principal does not get around it.
    let mut claims = auth.claims("alice", &format!("{url}/sse"), "mcp:tools");
    claims["jti"] = json!("another");
    let alice_again = TestKey::rsa1().sign_with_typ(&claims, None);
    let (status, _, _) = open_sse(&url, Credential::Bearer(&alice_again)).await;
    assert_eq!(status, 429);
    // Another principal is still served.
    let bob = sse_token(&auth, &url, "bob");
    let (status, _, _) = open_sse(&url, Credential::Bearer(&bob)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_overall_limit_is_503() {
    let (auth, url) = setup(5, 2).await;
    let alice = sse_token(&auth, &url, "alice");
    let bob = sse_token(&auth, &url, "bob");
    let (status, _a, _) = open_sse(&url, Credential::Bearer(&alice)).await;
    assert_eq!(status, 200);
    let (status, _b, _) = open_sse(&url, Credential::Bearer(&bob)).await;
    assert_eq!(status, 200);
    let carol = sse_token(&auth, &url, "carol");
    let (status, _, body) = open_sse(&url, Credential::Bearer(&carol)).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"], "temporarily_unavailable");
}

#[tokio::test]
async fn a_disconnected_client_frees_its_slot() {
    let (auth, url) = setup(1, 100).await;
    let alice = sse_token(&auth, &url, "alice");
    let (status, reader, _) = open_sse(&url, Credential::Bearer(&alice)).await;
    assert_eq!(status, 200);
    let (status, _, _) = open_sse(&url, Credential::Bearer(&alice)).await;
    assert_eq!(status, 429);
    drop(reader);
    assert!(
        opens_within(&url, &alice, Duration::from_secs(20))
            .await
            .is_some(),
        "the slot of a closed stream was not freed"
    );
}

#[tokio::test]
async fn a_stream_ended_at_token_expiry_frees_its_slot() {
    let (auth, url) = setup(1, 100).await;
    let mut claims = auth.claims("alice", &format!("{url}/sse"), "mcp:tools");
    claims["exp"] = json!(now() + 1);
    let short = TestKey::rsa1().sign_with_typ(&claims, None);
    let (status, reader, _) = open_sse(&url, Credential::Bearer(&short)).await;
    assert_eq!(status, 200);
    let mut reader = reader.unwrap();
    let long = sse_token(&auth, &url, "alice");
    let (status, _, _) = open_sse(&url, Credential::Bearer(&long)).await;
    assert_eq!(status, 429);
    // The client keeps reading; the server ends the stream at expiry.
    let ended = tokio::time::timeout(Duration::from_secs(8), async {
        while reader.next().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the stream outlived its token");
    assert!(
        opens_within(&url, &long, Duration::from_secs(5))
            .await
            .is_some(),
        "the slot of an expired stream was not freed"
    );
}

#[tokio::test]
async fn ending_the_cookie_session_closes_its_streams_and_frees_them() {
    let (auth, url) = setup(2, 100).await;
    let alice = sse_token(&auth, &url, "alice");
    let response = client()
        .post(format!("{url}/session"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let mut readers = Vec::new();
    for _ in 0..2 {
        let (status, reader, _) = open_sse(&url, Credential::Cookie(&cookie)).await;
        assert_eq!(status, 200);
        readers.push(reader.unwrap());
    }
    let (status, _, _) = open_sse(&url, Credential::Bearer(&alice)).await;
    assert_eq!(status, 429);

    let response = client()
        .delete(format!("{url}/session"))
        .header("cookie", &cookie)
        .header("origin", &url)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    for mut reader in readers {
        let ended = tokio::time::timeout(Duration::from_secs(5), async {
            while reader.next().await.is_some() {}
        })
        .await;
        assert!(ended.is_ok(), "a stream outlived its cookie session");
    }
    assert!(
        opens_within(&url, &alice, Duration::from_secs(5))
            .await
            .is_some(),
        "the slots of the cookie session's streams were not freed"
    );
}

/// Opens a Streamable HTTP session and its standalone `GET /mcp` stream.
async fn mcp_stream(url: &str, token: &str) -> (u16, Option<reqwest::Response>) {
    let session = open_mcp_session(url, token).await;
    let response = standalone_stream(url, token, &session).await;
    let status = response.status().as_u16();
    (status, (status == 200).then_some(response))
}

#[tokio::test]
async fn standalone_mcp_streams_share_the_per_principal_limit() {
    let (auth, url) = setup(2, 100).await;
    let mcp = TestKey::rsa1().sign_with_typ(
        &auth.claims("alice", &format!("{url}/mcp"), "mcp:tools"),
        None,
    );
    let sse = sse_token(&auth, &url, "alice");
    let (status, first) = mcp_stream(&url, &mcp).await;
    assert_eq!(status, 200);
    let (status, _legacy, _) = open_sse(&url, Credential::Bearer(&sse)).await;
    assert_eq!(status, 200);
    // A third stream of either kind is refused.
    let (status, _) = mcp_stream(&url, &mcp).await;
    assert_eq!(status, 429);
    let (status, _, _) = open_sse(&url, Credential::Bearer(&sse)).await;
    assert_eq!(status, 429);
    // Replies to POSTs are not streams held open: still served.
    let init = rpc(&url, Some(&mcp), None, initialize()).await;
    assert_eq!(init.status, 200);
    assert!(init.body.is_some_and(|body| body.get("result").is_some()));
    // Closing the standalone stream frees its slot.
    drop(first);
    let started = Instant::now();
    let mut reopened = false;
    while started.elapsed() < Duration::from_secs(20) {
        if mcp_stream(&url, &mcp).await.0 == 200 {
            reopened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        reopened,
        "the slot of a closed GET /mcp stream was not freed"
    );
}
