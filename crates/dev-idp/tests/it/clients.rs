//! Client authentication at the token endpoint.

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{REDIRECT, TestIdp, auto_login, query, start};

async fn backend_code(t: &TestIdp) -> String {
    let (_, location) = t
        .authorize(&[
            ("client_id", "backend"),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", "openid"),
        ])
        .await;
    query(&location.unwrap(), "code").unwrap()
}

async fn basic(
    t: &TestIdp,
    user: &str,
    password: &str,
    code: &str,
) -> (StatusCode, Option<String>, Value) {
    let credentials =
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let response = t
        .http
        .post(format!("{}/token", t.issuer))
        .header("authorization", format!("Basic {credentials}"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .unwrap();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (response.status(), challenge, response.json().await.unwrap())
}

#[tokio::test]
async fn confidential_client_basic_and_post() {
    let t = start(auto_login).await;
    let code = backend_code(&t).await;
    let (status, challenge, body) = basic(&t, "backend", "wrong", &code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    assert!(challenge.unwrap().starts_with("Basic"));
    // The failed authentication did not spend the code.
    let (status, _, body) = basic(&t, "backend", "backend-secret", &code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        t.verify(body["access_token"].as_str().unwrap()).await["aud"],
        "backend"
    );

    let code = backend_code(&t).await;
    let (status, body) = t
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", "backend"),
            ("client_secret", "backend-secret"),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = t
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", "x"),
            ("client_id", "backend"),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
}

#[tokio::test]
async fn public_client_sending_a_secret_is_refused() {
    let t = start(auto_login).await;
    let (code, verifier) = t.code("openid", &[]).await;
    let (status, body) = t
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", "mcp-client"),
            ("client_secret", "anything"),
            ("code_verifier", &verifier),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
}

#[tokio::test]
async fn token_endpoint_wants_a_form() {
    let t = start(|c| c).await;
    let response = t
        .http
        .post(format!("{}/token", t.issuer))
        .json(&serde_json::json!({"grant_type": "authorization_code"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    let response = t
        .http
        .post(format!("{}/token", t.issuer))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=authorization_code&grant_type=refresh_token&client_id=mcp-client")
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
}
