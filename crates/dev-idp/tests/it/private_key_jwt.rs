//! `private_key_jwt` client authentication (RFC 7523 §2.2, §3): a client registered
//! with public keys proves itself with a JWT it signed; each refusal is
//! `invalid_client` with 401.

use dev_idp::config::StaticClient;
use dev_idp::{Features, IdpConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::signer::{Signer, jti, now, serve_jwks, unsigned_and_hmac};
use crate::support::{TestIdp, claims, start};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn with_client(config: IdpConfig, yaml: &str, switch_on: bool) -> IdpConfig {
    let mut config = config;
    config
        .dex
        .static_clients
        .push(serde_yaml_ng::from_str::<StaticClient>(yaml).unwrap());
    let mut features = Features::mcp_ready();
    features.client_credentials = true;
    features.private_key_jwt = switch_on;
    config.with_features(features)
}

async fn server(signer: &Signer, switch_on: bool) -> TestIdp {
    let yaml = format!("id: robot\njwks: {}\n", signer.jwks());
    start(|c| with_client(c, &yaml, switch_on)).await
}

fn good_claims(t: &TestIdp, client_id: &str) -> Value {
    json!({
        "iss": client_id,
        "sub": client_id,
        "aud": t.issuer,
        "iat": now(),
        "exp": now() + 60,
        "jti": jti(),
    })
}

async fn client_credentials(t: &TestIdp, assertion: &str) -> (StatusCode, Value) {
    t.token(&[
        ("grant_type", "client_credentials"),
        ("scope", "mcp:tools"),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion),
    ])
    .await
}

async fn refused(t: &TestIdp, assertion: &str, because: &str) {
    let (status, body) = client_credentials(t, assertion).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{because}: {body}");
    assert_eq!(body["error"], "invalid_client", "{because}: {body}");
}

#[tokio::test]
async fn metadata_advertises_private_key_jwt_only_when_on() {
    let signer = Signer::new("k1");
    for on in [true, false] {
        let t = server(&signer, on).await;
        let doc: Value = t
            .http
            .get(format!("{}/.well-known/openid-configuration", t.issuer))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let methods = doc["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap();
        assert_eq!(methods.contains(&json!("private_key_jwt")), on, "{doc}");
        let algs = &doc["token_endpoint_auth_signing_alg_values_supported"];
        if on {
            let algs = algs.as_array().unwrap();
            assert!(algs.contains(&json!("ES256")), "{doc}");
            assert!(!algs.iter().any(|a| a.as_str().unwrap().starts_with("HS")));
            assert!(!algs.contains(&json!("none")));
        } else {
            assert!(algs.is_null(), "{doc}");
        }
    }
}

#[tokio::test]
async fn a_signed_assertion_authenticates_the_client() {
    let signer = Signer::new("k1");
    let t = server(&signer, true).await;
    let (status, body) =
        client_credentials(&t, &signer.sign(None, &good_claims(&t, "robot"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let access = claims(body["access_token"].as_str().unwrap());
    assert_eq!(access["client_id"], "robot");
    assert_eq!(access["sub"], "robot");
    // offline_access is left out: no refresh token without a person.
    let (status, body) = t
        .token(&[
            ("grant_type", "client_credentials"),
            ("scope", "mcp:tools offline_access"),
            ("client_assertion_type", ASSERTION_TYPE),
            (
                "client_assertion",
                &signer.sign(None, &good_claims(&t, "robot")),
            ),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "mcp:tools");
    assert!(body.get("refresh_token").is_none(), "{body}");
    // The token endpoint is an accepted audience too, and aud may be an array.
    let mut c = good_claims(&t, "robot");
    c["aud"] = json!([format!("{}/token", t.issuer)]);
    let (status, body) = client_credentials(&t, &signer.sign(None, &c)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn keys_are_fetched_from_the_jwks_uri() {
    let signer = Signer::new("k-uri");
    let url = serve_jwks(signer.jwks()).await;
    let yaml = format!("id: robot-uri\njwksURI: {url}\n");
    let t = start(|c| with_client(c, &yaml, true)).await;
    let (status, body) =
        client_credentials(&t, &signer.sign(None, &good_claims(&t, "robot-uri"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Another key under the same kid is not in the published set.
    let impostor = Signer::new("k-uri");
    refused(
        &t,
        &impostor.sign(None, &good_claims(&t, "robot-uri")),
        "a key that is not the client's",
    )
    .await;
}

#[tokio::test]
async fn each_bad_assertion_is_invalid_client() {
    let signer = Signer::new("k1");
    let t = server(&signer, true).await;

    let mut wrong_aud = good_claims(&t, "robot");
    wrong_aud["aud"] = json!("http://127.0.0.1:1/other");
    refused(&t, &signer.sign(None, &wrong_aud), "wrong aud").await;

    let mut expired = good_claims(&t, "robot");
    expired["exp"] = json!(now() - 120);
    expired["iat"] = json!(now() - 180);
    refused(&t, &signer.sign(None, &expired), "expired").await;

    let mut long = good_claims(&t, "robot");
    long["exp"] = json!(now() + 3600);
    refused(&t, &signer.sign(None, &long), "exp too far ahead").await;

    let mut no_exp = good_claims(&t, "robot");
    no_exp.as_object_mut().unwrap().remove("exp");
    refused(&t, &signer.sign(None, &no_exp), "no exp").await;

    let mut future = good_claims(&t, "robot");
    future["iat"] = json!(now() + 600);
    refused(&t, &signer.sign(None, &future), "iat in the future").await;

    let mut nbf = good_claims(&t, "robot");
    nbf["nbf"] = json!(now() + 600);
    refused(&t, &signer.sign(None, &nbf), "nbf in the future").await;

    let mut no_jti = good_claims(&t, "robot");
    no_jti.as_object_mut().unwrap().remove("jti");
    refused(&t, &signer.sign(None, &no_jti), "no jti").await;

    let mut other_sub = good_claims(&t, "robot");
    other_sub["sub"] = json!("someone-else");
    refused(&t, &signer.sign(None, &other_sub), "iss is not sub").await;

    refused(
        &t,
        &signer.sign(None, &good_claims(&t, "nobody")),
        "unknown client",
    )
    .await;
    // backend has a secret and no keys.
    refused(
        &t,
        &signer.sign(None, &good_claims(&t, "backend")),
        "client without keys",
    )
    .await;

    for token in unsigned_and_hmac(&good_claims(&t, "robot")) {
        refused(&t, &token, "alg none or HMAC").await;
    }

    let once = signer.sign(None, &good_claims(&t, "robot"));
    let (status, body) = client_credentials(&t, &once).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = client_credentials(&t, &once).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("used before"),
        "{body}"
    );

    let (status, body) = t
        .token(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
            ),
            (
                "client_assertion",
                &signer.sign(None, &good_claims(&t, "robot")),
            ),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
}

#[tokio::test]
async fn the_switch_is_needed_and_one_method_at_a_time() {
    let signer = Signer::new("k1");
    let off = server(&signer, false).await;
    refused(
        &off,
        &signer.sign(None, &good_claims(&off, "robot")),
        "switch off",
    )
    .await;

    let on = server(&signer, true).await;
    let assertion = signer.sign(None, &good_claims(&on, "robot"));
    let (status, body) = on
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_secret", "x"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &assertion),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_request");
}
