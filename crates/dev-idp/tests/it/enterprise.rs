//! Enterprise-managed authorization and workload identity: one dev-idp as the
//! enterprise identity provider (`--id-jag`: ID token → ID-JAG by token exchange),
//! another as the MCP authorization server (`--trusted-issuer`: the JWT bearer grant),
//! and a test key standing for a workload platform. Each refusal has its error code and
//! status.

use dev_idp::{Features, IdpConfig, TrustedIssuer};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::signer::{Signer, jti, now, serve_jwks, unsigned_and_hmac};
use crate::support::{REDIRECT, TestIdp, auto_login, claims, start};

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const ID_JAG: &str = "urn:ietf:params:oauth:token-type:id-jag";
const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
const RESOURCE: &str = "http://127.0.0.1:3999/mcp";
const WORKLOAD_ISSUER: &str = "https://workloads.example";

async fn enterprise_idp() -> TestIdp {
    start(|c| {
        let mut features = Features::default();
        features.id_jag = true;
        auto_login(c.with_features(features))
    })
    .await
}

/// An MCP authorization server trusting `issuers`.
async fn mcp_as(issuers: Vec<TrustedIssuer>) -> TestIdp {
    start(move |c: IdpConfig| {
        let mut features = Features::mcp_ready();
        features.trusted_issuers = issuers;
        c.with_features(features)
    })
    .await
}

fn trusted(issuer: &str, jwks_uri: Option<String>) -> TrustedIssuer {
    TrustedIssuer {
        issuer: issuer.to_owned(),
        jwks_uri,
    }
}

/// Alice signs in at the identity provider as `mcp-client`; returns her ID token.
async fn id_token(idp: &TestIdp) -> String {
    let (code, verifier) = idp.code("openid email", &[]).await;
    let (status, body) = idp
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &verifier),
            ("redirect_uri", REDIRECT),
            ("client_id", "mcp-client"),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["id_token"].as_str().unwrap().to_owned()
}

async fn exchange(
    idp: &TestIdp,
    client_id: &str,
    subject_token: &str,
    audience: &str,
) -> (StatusCode, Value) {
    idp.token(&[
        ("grant_type", TOKEN_EXCHANGE),
        ("client_id", client_id),
        ("requested_token_type", ID_JAG),
        ("subject_token", subject_token),
        ("subject_token_type", ID_TOKEN),
        ("audience", audience),
        ("resource", RESOURCE),
        ("scope", "mcp:tools"),
    ])
    .await
}

async fn bearer(t: &TestIdp, client_id: &str, assertion: &str) -> (StatusCode, Value) {
    t.token(&[
        ("grant_type", JWT_BEARER),
        ("client_id", client_id),
        ("assertion", assertion),
        ("resource", RESOURCE),
    ])
    .await
}

async fn refused(t: &TestIdp, assertion: &str, error: &str, because: &str) {
    let (status, body) = bearer(t, "mcp-client", assertion).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{because}: {body}");
    assert_eq!(body["error"], error, "{because}: {body}");
}

#[tokio::test]
async fn id_token_to_id_jag_to_access_token() {
    let idp = enterprise_idp().await;
    let as_ = mcp_as(vec![trusted(&idp.issuer, None)]).await;
    let doc: Value = as_
        .http
        .get(format!("{}/.well-known/openid-configuration", as_.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!(JWT_BEARER)),
        "{doc}"
    );

    let id_token = id_token(&idp).await;
    let (status, body) = exchange(&idp, "mcp-client", &id_token, &as_.issuer).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["issued_token_type"], ID_JAG);
    assert_eq!(body["token_type"], "N_A");
    let jag = body["access_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(jag).unwrap();
    assert_eq!(header.typ.as_deref(), Some("oauth-id-jag+jwt"));
    let jag_claims = idp.verify(jag).await;
    assert_eq!(jag_claims["iss"], idp.issuer);
    assert_eq!(jag_claims["aud"], as_.issuer);
    assert_eq!(jag_claims["client_id"], "mcp-client");
    assert_eq!(jag_claims["resource"], RESOURCE);
    assert_eq!(jag_claims["scope"], "mcp:tools");
    assert_eq!(jag_claims["sub"], claims(&id_token)["sub"]);
    assert_eq!(jag_claims["email"], "alice@example.com");
    assert!(jag_claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    let lifetime = jag_claims["exp"].as_u64().unwrap() - jag_claims["iat"].as_u64().unwrap();
    assert!(lifetime <= 300, "{jag_claims}");

    let (status, body) = bearer(&as_, "mcp-client", jag).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let access = as_.verify(body["access_token"].as_str().unwrap()).await;
    assert_eq!(access["iss"], as_.issuer);
    assert_eq!(access["sub"], jag_claims["sub"]);
    assert_eq!(access["aud"], RESOURCE);
    assert_eq!(access["client_id"], "mcp-client");
    assert_eq!(access["scope"], "mcp:tools");
    assert!(body.get("refresh_token").is_none(), "{body}");

    // The same ID-JAG a second time: its jti is spent.
    refused(&as_, jag, "invalid_grant", "replayed ID-JAG").await;
}

#[tokio::test]
async fn the_identity_provider_refuses_what_it_cannot_vouch_for() {
    let idp = enterprise_idp().await;
    let other = enterprise_idp().await;
    let aud = "http://127.0.0.1:1/as";

    // An ID token of another server.
    let foreign = id_token(&other).await;
    let (status, body) = exchange(&idp, "mcp-client", &foreign, aud).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{body}"
    );

    // Alice's ID token, presented by another client.
    let mine = id_token(&idp).await;
    let (status, body) = exchange(&idp, "stranger", &mine, aud).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{body}"
    );

    // No audience.
    let (status, body) = idp
        .token(&[
            ("grant_type", TOKEN_EXCHANGE),
            ("client_id", "mcp-client"),
            ("requested_token_type", ID_JAG),
            ("subject_token", &mine),
            ("subject_token_type", ID_TOKEN),
            ("resource", RESOURCE),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request")),
        "{body}"
    );

    // A client that fails authentication.
    let (status, body) = exchange(&idp, "nobody", &mine, aud).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client")),
        "{body}"
    );

    // Without the switch, token exchange answers as Dex does with only the password
    // database.
    let dex = start(auto_login).await;
    let dex_token = id_token(&dex).await;
    let (status, body) = exchange(&dex, "mcp-client", &dex_token, aud).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["error_description"],
        "Requested connector does not exist."
    );
}

#[tokio::test]
async fn the_authorization_server_checks_every_id_jag_claim() {
    let platform = Signer::new("idp-key");
    let jwks = serve_jwks(platform.jwks()).await;
    let as_ = mcp_as(vec![trusted(WORKLOAD_ISSUER, Some(jwks))]).await;
    let good = || {
        json!({
            "iss": WORKLOAD_ISSUER,
            "sub": "user-1",
            "aud": as_.issuer,
            "client_id": "mcp-client",
            "resource": RESOURCE,
            "scope": "mcp:tools",
            "iat": now(),
            "exp": now() + 300,
            "jti": jti(),
        })
    };
    let jag = |claims: &Value| platform.sign(Some("oauth-id-jag+jwt"), claims);

    let (status, body) = bearer(&as_, "mcp-client", &jag(&good())).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let mut c = good();
    c["aud"] = json!("http://127.0.0.1:1/another-as");
    refused(&as_, &jag(&c), "invalid_grant", "wrong aud").await;

    let mut c = good();
    c["exp"] = json!(now() - 120);
    c["iat"] = json!(now() - 420);
    refused(&as_, &jag(&c), "invalid_grant", "expired").await;

    let mut c = good();
    c.as_object_mut().unwrap().remove("jti");
    refused(&as_, &jag(&c), "invalid_grant", "no jti").await;

    let mut c = good();
    c["client_id"] = json!("stranger");
    refused(&as_, &jag(&c), "invalid_grant", "issued to another client").await;

    // The right ID-JAG, presented by the wrong client.
    let (status, body) = bearer(&as_, "stranger", &jag(&good())).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{body}"
    );

    let mut c = good();
    c["resource"] = json!("http://127.0.0.1:4000/other-mcp");
    refused(&as_, &jag(&c), "invalid_grant", "another resource").await;

    let mut c = good();
    c["iss"] = json!("https://unknown-idp.example");
    refused(&as_, &jag(&c), "invalid_grant", "unknown issuer").await;

    // Signed by a key the issuer does not publish.
    let impostor = Signer::new("idp-key");
    refused(
        &as_,
        &impostor.sign(Some("oauth-id-jag+jwt"), &good()),
        "invalid_grant",
        "wrong key",
    )
    .await;

    for token in unsigned_and_hmac(&good()) {
        refused(&as_, &token, "invalid_grant", "alg none or HMAC").await;
    }

    // An access token is not an authorization grant.
    refused(
        &as_,
        &platform.sign(Some("at+jwt"), &good()),
        "invalid_grant",
        "typ at+jwt",
    )
    .await;

    // A scope beyond the ID-JAG's.
    let (status, body) = as_
        .token(&[
            ("grant_type", JWT_BEARER),
            ("client_id", "mcp-client"),
            ("assertion", &jag(&good())),
            ("scope", "mcp:tools mcp:admin"),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope")),
        "{body}"
    );

    // A client that fails authentication is invalid_client, whatever the assertion.
    let (status, body) = bearer(&as_, "nobody", &jag(&good())).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client")),
        "{body}"
    );
}

#[tokio::test]
async fn workload_jwts_are_grants_without_a_person() {
    let platform = Signer::new("wl-1");
    let jwks = serve_jwks(platform.jwks()).await;
    let as_ = mcp_as(vec![trusted(WORKLOAD_ISSUER, Some(jwks))]).await;
    let workload = |aud: &str, exp: u64| {
        platform.sign(
            Some("JWT"),
            &json!({
                "iss": WORKLOAD_ISSUER,
                "sub": "system:serviceaccount:ci:deployer",
                "aud": aud,
                "iat": now(),
                "exp": exp,
                "jti": jti(),
            }),
        )
    };
    let (status, body) = as_
        .token(&[
            ("grant_type", JWT_BEARER),
            ("client_id", "mcp-client"),
            ("assertion", &workload(&as_.issuer, now() + 600)),
            ("resource", RESOURCE),
            ("scope", "mcp:tools"),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let access = claims(body["access_token"].as_str().unwrap());
    assert_eq!(access["sub"], "system:serviceaccount:ci:deployer");
    // offline_access is left out: a new assertion gets a new token.
    let (status, body) = as_
        .token(&[
            ("grant_type", JWT_BEARER),
            ("client_id", "mcp-client"),
            ("assertion", &workload(&as_.issuer, now() + 600)),
            ("scope", "mcp:tools offline_access"),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "mcp:tools");
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert_eq!(access["aud"], RESOURCE);

    refused(
        &as_,
        &workload("https://wrong.example", now() + 600),
        "invalid_grant",
        "wrong aud",
    )
    .await;
    refused(
        &as_,
        &workload(&as_.issuer, now() - 120),
        "invalid_grant",
        "expired",
    )
    .await;
    refused(
        &as_,
        &workload(&as_.issuer, now() + 86_400),
        "invalid_grant",
        "a day long",
    )
    .await;

    // Without trusted issuers the grant is not offered at all.
    let plain = start(|c| c.with_features(Features::mcp_ready())).await;
    let (status, body) = bearer(&plain, "mcp-client", &workload(&plain.issuer, now() + 60)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type")),
        "{body}"
    );
}
