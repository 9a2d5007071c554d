//! RFC 7591 registration and the MCP-ready flow with a registered client.

use dev_idp::Features;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{auto_login, pkce_pair, query, start};

#[tokio::test]
async fn registered_public_client_runs_the_mcp_ready_flow() {
    let t = start(|c| auto_login(c.with_features(Features::mcp_ready()))).await;
    let response = t
        .http
        .post(format!("{}/register", t.issuer))
        .json(&json!({
            "redirect_uris": ["http://127.0.0.1:40000/callback"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "client_name": "test <client>",
            "scope": "mcp:tools mcp:admin"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let reg: Value = response.json().await.unwrap();
    let client_id = reg["client_id"].as_str().unwrap().to_owned();
    assert!(reg.get("client_secret").is_none());
    assert_eq!(reg["client_name"], "test <client>");

    // RFC 8252 §7.3: any port on the registered loopback IP.
    let redirect = "http://127.0.0.1:40123/callback";
    let resource = "http://localhost:3001/mcp";
    let (verifier, challenge) = pkce_pair();
    let (_, location) = t
        .authorize(&[
            ("client_id", client_id.as_str()),
            ("redirect_uri", redirect),
            ("response_type", "code"),
            ("scope", "mcp:tools offline_access"),
            ("state", "s"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("resource", resource),
        ])
        .await;
    let location = location.unwrap();
    assert_eq!(
        query(&location, "iss").as_deref(),
        Some(t.issuer.as_str()),
        "RFC 9207"
    );
    let code = query(&location, "code").unwrap_or_else(|| panic!("{location}"));
    let (status, body) = t
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("client_id", &client_id),
            ("code_verifier", &verifier),
            ("resource", resource),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("id_token").is_none(), "no openid, no ID token");
    assert_eq!(body["scope"], "mcp:tools offline_access");
    let token = body["access_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let claims = t.verify(token).await;
    assert_eq!(claims["aud"], resource);
    assert_eq!(claims["scope"], "mcp:tools offline_access");
    assert_eq!(claims["client_id"], client_id);
    assert!(claims["jti"].is_string());

    // Refresh keeps the audience.
    let (status, refreshed) = t
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", body["refresh_token"].as_str().unwrap()),
            ("client_id", &client_id),
            ("resource", resource),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert_eq!(
        t.verify(refreshed["access_token"].as_str().unwrap()).await["aud"],
        resource
    );
}

#[tokio::test]
async fn confidential_registration_gets_a_secret_and_bad_metadata_is_refused() {
    let mut features = Features::default();
    features.registration = true;
    let t = start(|c| c.with_features(features)).await;
    let reg: Value = t
        .http
        .post(format!("{}/register", t.issuer))
        .json(&json!({"redirect_uris": ["https://app.example/cb"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(reg["client_secret"].as_str().unwrap().len() >= 32);
    assert_eq!(reg["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(reg["client_secret_expires_at"], 0);

    for (body, error) in [
        (
            json!({"redirect_uris": ["http://app.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (json!({"redirect_uris": []}), "invalid_redirect_uri"),
        (
            json!({"redirect_uris": ["https://a/cb"], "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://a/cb"], "grant_types": ["implicit"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://a/cb"], "scope": "openid launch-missiles"}),
            "invalid_client_metadata",
        ),
        (json!(["not an object"]), "invalid_client_metadata"),
    ] {
        let response = t
            .http
            .post(format!("{}/register", t.issuer))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"], error, "{body}");
    }
}
