//! `--opaque-tokens`: access tokens a resource server can only check by introspection.

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{auto_login, start};

#[tokio::test]
async fn opaque_access_tokens_are_introspected_and_expire() {
    let t = start(|mut c| {
        c.opaque_tokens = true;
        auto_login(c)
    })
    .await;
    let (code, verifier) = t.code("openid email", &[]).await;
    let (status, body) = t.exchange(&code, &verifier, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let access = body["access_token"].as_str().unwrap();
    assert!(jsonwebtoken::decode_header(access).is_err(), "not a JWT");
    // The ID token stays a JWT bound to the opaque access token.
    let id = t.verify(body["id_token"].as_str().unwrap()).await;
    assert!(id["at_hash"].is_string());

    let introspect = |token: String| {
        let t = &t;
        async move {
            let response = t
                .http
                .post(format!("{}/token/introspect", t.issuer))
                .form(&[("token", token.as_str())])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<Value>().await.unwrap()
        }
    };
    let answer = introspect(access.to_owned()).await;
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["client_id"], "mcp-client");
    assert_eq!(answer["aud"], "mcp-client");
    assert_eq!(answer["token_use"], "access_token");
    assert_eq!(answer["ext"]["email"], "alice@example.com");
    assert_eq!(answer["sub"], id["sub"]);

    let info = t
        .http
        .get(format!("{}/userinfo", t.issuer))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), StatusCode::OK);
    assert_eq!(
        info.json::<Value>().await.unwrap()["email"],
        "alice@example.com"
    );

    let forged = introspect(format!("{access}x")).await;
    assert_eq!(forged, serde_json::json!({"active": false}));
}

#[tokio::test]
async fn expired_opaque_tokens_are_inactive() {
    let t = start(|mut c| {
        c.opaque_tokens = true;
        auto_login(c.with_token_lifetime(std::time::Duration::from_secs(1)))
    })
    .await;
    let (code, verifier) = t.code("openid", &[]).await;
    let (_, body) = t.exchange(&code, &verifier, &[]).await;
    let access = body["access_token"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let answer: Value = t
        .http
        .post(format!("{}/token/introspect", t.issuer))
        .form(&[("token", access.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer, serde_json::json!({"active": false}));
}
