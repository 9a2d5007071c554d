//! Token validation through the real server: every accepted and refused shape, and the
//! JWKS cache (coalesced refetch, outage, rotation, discovery).

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::fixture::{
    TestAuthServer, TestKey, client, initialize, now, rpc, start_rs, test_config, www_authenticate,
};

async fn setup() -> (TestAuthServer, String) {
    let auth = TestAuthServer::with_keys(&[TestKey::rsa1(), TestKey::ec(), TestKey::ed()]).await;
    let issuer = auth.issuer().to_string();
    let url = start_rs(move |url| test_config(url, &issuer)).await;
    (auth, url)
}

async fn status_of(url: &str, token: &str) -> (u16, String) {
    let reply = rpc(url, Some(token), None, initialize()).await;
    (reply.status, reply.www_authenticate)
}

fn assert_invalid_token((status, challenge): (u16, String)) {
    assert_eq!(status, 401, "{challenge}");
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    assert!(challenge.contains("resource_metadata="), "{challenge}");
}

#[tokio::test]
async fn valid_tokens_of_every_key_type_and_shape_are_accepted() {
    let (auth, url) = setup().await;
    let aud = format!("{url}/mcp");
    let claims = auth.claims("alice", &aud, "mcp:tools");
    for key in [TestKey::rsa1(), TestKey::ec(), TestKey::ed()] {
        let token = key.sign_with_typ(&claims, Some("at+jwt"));
        let (status, challenge) = status_of(&url, &token).await;
        assert_eq!(status, 200, "{:?}: {challenge}", key.alg());
    }
    // RFC 9068 `aud` may be an array.
    let mut array = claims.clone();
    array["aud"] = json!(["someone-else", aud]);
    assert_eq!(
        status_of(&url, &TestKey::rsa1().sign_with_typ(&array, Some("JWT")))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn dex_shaped_tokens_work_with_a_client_id_audience() {
    let auth = TestAuthServer::with_keys(&[TestKey::rsa1()]).await;
    let issuer = auth.issuer().to_string();
    // As with Dex: aud = the resource server's client id, no scope claim, so no required scopes.
    let url = start_rs(move |url| {
        test_config(url, &issuer)
            .with_audiences(["mcp-resource-server"])
            .with_required_scopes(Vec::<String>::new())
            .with_scopes_supported(["openid", "audience:server:client_id:mcp-resource-server"])
    })
    .await;
    let now = now();
    let claims = json!({
        "iss": auth.issuer(), "sub": "CiQwOGE4Njg0Yi1kYjg4LTRiNzMtOTBhOS0zY2QxNjYxZjU0NjYSBWxvY2Fs",
        "aud": ["mcp-resource-server", "mcp-client"], "azp": "mcp-client",
        "exp": now + 300, "iat": now, "email": "alice@example.com", "email_verified": true, "name": "alice"
    });
    let token = TestKey::rsa1().sign_with_typ(&claims, None);
    let init = rpc(&url, Some(&token), None, initialize()).await;
    assert_eq!(init.status, 200);
    let session = init.session.unwrap();
    rpc(
        &url,
        Some(&token),
        Some(&session),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
    )
    .await;
    let whoami = rpc(
        &url,
        Some(&token),
        Some(&session),
        crate::fixture::call(2, "whoami", json!({})),
    )
    .await;
    let result = &whoami.body.unwrap()["result"];
    assert_eq!(result["structuredContent"]["client_id"], "mcp-client");
    assert_eq!(
        result["structuredContent"]["profile"]["email"],
        "alice@example.com"
    );
    assert!(
        !result.to_string().contains(&token),
        "whoami never returns the token"
    );
    // A Dex token minted for another client only is refused.
    let mut other = claims.clone();
    other["aud"] = json!("mcp-client");
    assert_invalid_token(status_of(&url, &TestKey::rsa1().sign_with_typ(&other, None)).await);
}

#[tokio::test]
async fn bad_tokens_are_refused_with_invalid_token() {
    let (auth, url) = setup().await;
    let aud = format!("{url}/mcp");
    let base = auth.claims("alice", &aud, "mcp:tools");
    let key = TestKey::rsa1();

    let mut expired = base.clone();
    expired["exp"] = json!(now() - 120);
    let (status, challenge) = status_of(&url, &key.sign_with_typ(&expired, None)).await;
    assert_invalid_token((status, challenge.clone()));
    assert!(challenge.contains("expired"), "{challenge}");

    let mut early = base.clone();
    early["nbf"] = json!(now() + 120);
    assert_invalid_token(status_of(&url, &key.sign_with_typ(&early, None)).await);

    let mut no_exp = base.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_invalid_token(status_of(&url, &key.sign_with_typ(&no_exp, None)).await);

    let mut wrong_iss = base.clone();
    wrong_iss["iss"] = json!(format!("{}/", auth.issuer()));
    assert_invalid_token(status_of(&url, &key.sign_with_typ(&wrong_iss, None)).await);

    let mut wrong_aud = base.clone();
    wrong_aud["aud"] = json!("http://127.0.0.1:1/mcp");
    let (status, challenge) = status_of(&url, &key.sign_with_typ(&wrong_aud, None)).await;
    assert_invalid_token((status, challenge.clone()));
    assert!(
        challenge.contains("not issued for this resource"),
        "{challenge}"
    );

    // alg: none, with and without a signature part.
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&base).unwrap());
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"rsa-1"}"#);
    assert_invalid_token(status_of(&url, &format!("{none_header}.{payload}.")).await);
    assert_invalid_token(status_of(&url, &format!("{none_header}.{payload}.c2ln")).await);

    // HMAC "signed" with the RSA public key, naming the RSA key's kid.
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some("rsa-1".into());
    let forged = jsonwebtoken::encode(
        &hs,
        &base,
        &EncodingKey::from_secret(testkit::keys::RSA1_PUB_PEM),
    )
    .unwrap();
    assert_invalid_token(status_of(&url, &forged).await);

    // An allowed algorithm that does not fit the key (PS256 header on... an EC key).
    let valid_ec = TestKey::ec().sign_with_typ(&base, None);
    let mut parts: Vec<String> = valid_ec.split('.').map(str::to_string).collect();
    parts[0] = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"ec-1"}"#);
    assert_invalid_token(status_of(&url, &parts.join(".")).await);

    // Tampered signature and tampered payload.
    let valid = key.sign_with_typ(&base, None);
    let mut tampered: Vec<u8> = valid.clone().into_bytes();
    let last = tampered.len() - 5;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    assert_invalid_token(status_of(&url, std::str::from_utf8(&tampered).unwrap()).await);
    let mut parts: Vec<&str> = valid.split('.').collect();
    let mut admin = base.clone();
    admin["scope"] = json!("mcp:tools mcp:admin");
    let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&admin).unwrap());
    parts[1] = &forged_payload;
    assert_invalid_token(status_of(&url, &parts.join(".")).await);

    // crit, JWE, garbage, a typ that is not an access token.
    let mut crit = Header::new(Algorithm::RS256);
    crit.kid = Some("rsa-1".into());
    crit.crit = Some(vec!["exp".into()]);
    let crit = jsonwebtoken::encode(&crit, &base, key.encoding_key()).unwrap();
    assert_invalid_token(status_of(&url, &crit).await);
    assert_invalid_token(status_of(&url, "a.b.c.d.e").await);
    assert_invalid_token(status_of(&url, "not-a-jwt").await);
    assert_invalid_token(status_of(&url, &key.sign_with_typ(&base, Some("dpop+jwt"))).await);

    // The valid one still passes.
    assert_eq!(status_of(&url, &valid).await.0, 200);
}

#[tokio::test]
async fn missing_and_misplaced_credentials() {
    let (auth, url) = setup().await;
    let token = TestKey::rsa1().sign_with_typ(
        &auth.claims("alice", &format!("{url}/mcp"), "mcp:tools"),
        None,
    );

    let none = rpc(&url, None, None, initialize()).await;
    assert_eq!(none.status, 401);
    assert_eq!(
        none.www_authenticate,
        format!(
            r#"Bearer scope="mcp:tools", resource_metadata="{url}/.well-known/oauth-protected-resource/mcp""#
        )
    );

    // A token in the query string is refused even though it is valid, and never used.
    let response = client()
        .post(format!("{url}/mcp?access_token={token}"))
        .header("accept", "application/json, text/event-stream")
        .json(&initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(www_authenticate(&response).contains(r#"error="invalid_request""#));

    // ... also next to a valid header.
    let response = client()
        .post(format!("{url}/mcp?access_token={token}"))
        .bearer_auth(&token)
        .header("accept", "application/json, text/event-stream")
        .json(&initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    // A token in a form body.
    let response = client()
        .post(format!("{url}/mcp"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("access_token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body = response.text().await.unwrap();
    assert!(!body.contains(&token));

    // Scheme is case-insensitive; two Authorization headers are a malformed request.
    let response = client()
        .post(format!("{url}/mcp"))
        .header("authorization", format!("bEARER {token}"))
        .header("accept", "application/json, text/event-stream")
        .json(&initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = client()
        .post(format!("{url}/mcp"))
        .header("authorization", format!("Bearer {token}"))
        .header("authorization", format!("Bearer {token}"))
        .json(&initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn unknown_kid_refetches_once_for_many_concurrent_requests() {
    // A refetch interval long enough that all 100 requests fall within one interval,
    // even on a slow machine.
    let auth = TestAuthServer::with_keys(&[TestKey::rsa1(), TestKey::ec(), TestKey::ed()]).await;
    let issuer = auth.issuer().to_string();
    let url = start_rs(move |url| {
        test_config(url, &issuer).with_jwks_config(mcp_resource_server::config::JwksConfig {
            min_refetch_interval: Duration::from_secs(3),
            ..Default::default()
        })
    })
    .await;
    let aud = format!("{url}/mcp");
    let good = TestKey::rsa1().sign_with_typ(&auth.claims("alice", &aud, "mcp:tools"), None);
    assert_eq!(status_of(&url, &good).await.0, 200);
    let before = auth.fetches();
    assert!(before >= 1);
    // Let the refetch interval pass, then 100 concurrent requests with an unknown kid.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let unknown = TestKey::rsa2().sign_with_typ(&auth.claims("alice", &aud, "mcp:tools"), None);
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let url = url.clone();
            let unknown = unknown.clone();
            tokio::spawn(async move { status_of(&url, &unknown).await })
        })
        .collect();
    for task in tasks {
        assert_invalid_token(task.await.unwrap());
    }
    assert_eq!(
        auth.fetches() - before,
        1,
        "exactly one JWKS fetch for 100 misses"
    );
    // Within the interval, further misses do not refetch.
    assert_invalid_token(status_of(&url, &unknown).await);
    assert_eq!(auth.fetches() - before, 1);
}

#[tokio::test]
async fn key_rotation_is_picked_up() {
    let (auth, url) = setup().await;
    let aud = format!("{url}/mcp");
    let old = TestKey::rsa1().sign_with_typ(&auth.claims("alice", &aud, "mcp:tools"), None);
    assert_eq!(status_of(&url, &old).await.0, 200);
    auth.set_keys(&[TestKey::rsa2()]);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let new = TestKey::rsa2().sign_with_typ(&auth.claims("bob", &aud, "mcp:tools"), None);
    assert_eq!(
        status_of(&url, &new).await.0,
        200,
        "new key found by one refetch"
    );
}

#[tokio::test]
async fn cached_keys_keep_working_while_the_authorization_server_is_down() {
    let (auth, url) = setup().await;
    let aud = format!("{url}/mcp");
    let first = TestKey::rsa1().sign_with_typ(&auth.claims("alice", &aud, "mcp:tools"), None);
    assert_eq!(status_of(&url, &first).await.0, 200);
    auth.set_down(true);
    tokio::time::sleep(Duration::from_millis(400)).await;
    // A different token (not in the verified-token cache), signed by a cached key.
    let second = TestKey::ec().sign_with_typ(&auth.claims("bob", &aud, "mcp:tools"), None);
    assert_eq!(status_of(&url, &second).await.0, 200);
    // An unknown kid cannot be resolved while down, and is refused.
    let unknown = TestKey::rsa2().sign_with_typ(&auth.claims("carol", &aud, "mcp:tools"), None);
    assert_invalid_token(status_of(&url, &unknown).await);
    auth.set_down(false);
}

#[tokio::test]
async fn no_keys_at_all_is_a_503_not_a_401() {
    let auth = TestAuthServer::with_keys(&[TestKey::rsa1()]).await;
    auth.set_down(true);
    let issuer = auth.issuer().to_string();
    let url = start_rs(move |url| test_config(url, &issuer)).await;
    let token = TestKey::rsa1().sign_with_typ(
        &auth.claims("alice", &format!("{url}/mcp"), "mcp:tools"),
        None,
    );
    let reply = rpc(&url, Some(&token), None, initialize()).await;
    assert_eq!(reply.status, 503);
    auth.set_down(false);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        rpc(&url, Some(&token), None, initialize()).await.status,
        200
    );
}

#[tokio::test]
async fn jwks_uri_is_discovered_or_configured() {
    // `setup` configures no JWKS URI: discovery through `{issuer}/.well-known/openid-configuration`.
    let (auth, url) = setup().await;
    let token = TestKey::ed().sign_with_typ(
        &auth.claims("alice", &format!("{url}/mcp"), "mcp:tools"),
        None,
    );
    assert_eq!(status_of(&url, &token).await.0, 200);
    // Configured explicitly, on another "issuer" (as with the static metadata server).
    let jwks_uri = auth.jwks_url();
    let issuer = auth.issuer().to_string();
    let url = start_rs(move |url| test_config(url, &issuer).with_jwks_uri(jwks_uri)).await;
    let token = TestKey::ed().sign_with_typ(
        &auth.claims("alice", &format!("{url}/mcp"), "mcp:tools"),
        None,
    );
    assert_eq!(status_of(&url, &token).await.0, 200);
}

#[tokio::test]
async fn error_bodies_and_headers_never_carry_the_token() {
    let (auth, url) = setup().await;
    let mut claims = auth.claims("alice", "http://elsewhere/mcp", "mcp:tools");
    claims["exp"] = Value::from(now() + 60);
    let token = TestKey::rsa1().sign_with_typ(&claims, None);
    let response = client()
        .post(format!("{url}/mcp"))
        .bearer_auth(&token)
        .json(&initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let headers = format!("{:?}", response.headers());
    let body = response.text().await.unwrap();
    assert!(!headers.contains(&token) && !body.contains(&token));
    assert!(!body.contains(&token[..20]));
}

#[tokio::test]
async fn expired_cache_entries_are_still_used_while_refresh_fails() {
    let auth = TestAuthServer::with_keys(&[TestKey::rsa1(), TestKey::ec()]).await;
    let issuer = auth.issuer().to_string();
    let url = start_rs(move |url| {
        test_config(url, &issuer).with_jwks_config(mcp_resource_server::config::JwksConfig {
            min_ttl: Duration::ZERO,
            max_ttl: Duration::from_millis(200),
            min_refetch_interval: Duration::from_millis(100),
            ..Default::default()
        })
    })
    .await;
    let aud = format!("{url}/mcp");
    let first = TestKey::rsa1().sign_with_typ(&auth.claims("alice", &aud, "mcp:tools"), None);
    assert_eq!(status_of(&url, &first).await.0, 200);
    auth.set_down(true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = auth.fetches();
    for sub in ["bob", "carol", "dave"] {
        let token = TestKey::ec().sign_with_typ(&auth.claims(sub, &aud, "mcp:tools"), None);
        assert_eq!(
            status_of(&url, &token).await.0,
            200,
            "stale keys serve {sub}"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(
        auth.fetches() > before,
        "a refresh was attempted in the background"
    );
    auth.set_down(false);
}
