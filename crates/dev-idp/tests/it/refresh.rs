//! Refresh tokens: only with offline_access, rotated on use, a spent one refused (as
//! Dex: `invalid_request`, and the newer token stays usable).

use reqwest::StatusCode;

use crate::support::{auto_login, start};

#[tokio::test]
async fn refresh_tokens_rotate_and_replay_is_refused() {
    let t = start(auto_login).await;
    let (code, verifier) = t.code("openid offline_access email", &[]).await;
    let (status, first) = t.exchange(&code, &verifier, &[]).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let r1 = first["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();

    let (status, second) = t
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &r1),
            ("client_id", "mcp-client"),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let r2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2, "rotated");
    assert!(second["id_token"].is_string());
    t.verify(second["access_token"].as_str().unwrap()).await;

    // Narrowing scopes is allowed, widening is not.
    let (status, narrowed) = t
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &r2),
            ("client_id", "mcp-client"),
            ("scope", "openid offline_access"),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{narrowed}");
    assert!(
        crate::support::claims(narrowed["access_token"].as_str().unwrap())
            .get("email")
            .is_none()
    );
    let r3 = narrowed["refresh_token"].as_str().unwrap().to_owned();
    let (status, wider) = t
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &r3),
            ("client_id", "mcp-client"),
            ("scope", "openid offline_access groups"),
        ])
        .await;
    assert_eq!(
        (status, wider["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );

    // r1 was spent twice over: replaying it fails, and r3 still works.
    let (status, replay) = t
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &r1),
            ("client_id", "mcp-client"),
        ])
        .await;
    assert_eq!(
        (status, replay["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let (status, fourth) = t
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &r3),
            ("client_id", "mcp-client"),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{fourth}");
}

#[tokio::test]
async fn another_client_cannot_use_the_refresh_token() {
    let t = start(auto_login).await;
    let (code, verifier) = t.code("openid offline_access", &[]).await;
    let (_, body) = t.exchange(&code, &verifier, &[]).await;
    let refresh = body["refresh_token"].as_str().unwrap();
    let (status, body) = t
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", "stranger"),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
}
