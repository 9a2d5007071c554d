//! Metadata documents, JWKS caching headers and CORS.

use dev_idp::Features;
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::start;

#[tokio::test]
async fn dex_mode_serves_oidc_discovery_only() {
    let t = start(|c| c).await;
    let doc: Value = t
        .http
        .get(format!("{}/.well-known/openid-configuration", t.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], t.issuer);
    assert_eq!(doc["authorization_endpoint"], format!("{}/auth", t.issuer));
    assert_eq!(doc["token_endpoint"], format!("{}/token", t.issuer));
    assert_eq!(doc["jwks_uri"], format!("{}/keys", t.issuer));
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256", "plain"])
    );
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post"])
    );
    assert!(doc.get("registration_endpoint").is_none());
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));

    let rfc8414 = t
        .http
        .get(format!(
            "{}/.well-known/oauth-authorization-server/dex",
            t.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(rfc8414.status(), StatusCode::NOT_FOUND);
    let register = t
        .http
        .post(format!("{}/register", t.issuer))
        .json(&serde_json::json!({"redirect_uris": ["http://127.0.0.1:1/cb"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(register.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn mcp_ready_serves_rfc8414_with_registration_and_s256_only() {
    let t = start(|c| c.with_features(Features::mcp_ready())).await;
    let doc: Value = t
        .http
        .get(format!(
            "{}/.well-known/oauth-authorization-server/dex",
            t.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], t.issuer);
    assert_eq!(
        doc["registration_endpoint"],
        format!("{}/register", t.issuer)
    );
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    let scopes = doc["scopes_supported"].as_array().unwrap();
    assert!(scopes.contains(&Value::from("mcp:tools")));
    assert!(scopes.contains(&Value::from("mcp:admin")));
    assert!(
        doc["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&Value::from("none"))
    );
}

#[tokio::test]
async fn jwks_has_cache_control_and_cors_follows_allowed_origins() {
    let t = start(|c| c).await;
    let keys = t
        .http
        .get(format!("{}/keys", t.issuer))
        .header("origin", "http://localhost:3001")
        .send()
        .await
        .unwrap();
    let cache = keys.headers()["cache-control"].to_str().unwrap().to_owned();
    assert!(cache.starts_with("max-age="), "{cache}");
    assert_eq!(
        keys.headers()["access-control-allow-origin"],
        "http://localhost:3001"
    );
    let jwks: Value = keys.json().await.unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["kid"], t.idp.current_kid());

    let other = t
        .http
        .get(format!("{}/.well-known/openid-configuration", t.issuer))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

async fn document(t: &crate::support::TestIdp, path: &str) -> Value {
    t.http
        .get(format!("{}{path}", t.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The whole documents, member for member: Dex's, and the one with every addition on.
#[tokio::test]
async fn metadata_documents_member_for_member() {
    let t = start(|c| c).await;
    let i = &t.issuer;
    assert_eq!(
        document(&t, "/dex/.well-known/openid-configuration").await,
        serde_json::json!({
            "issuer": i,
            "authorization_endpoint": format!("{i}/auth"),
            "token_endpoint": format!("{i}/token"),
            "jwks_uri": format!("{i}/keys"),
            "userinfo_endpoint": format!("{i}/userinfo"),
            "device_authorization_endpoint": format!("{i}/device/code"),
            "introspection_endpoint": format!("{i}/token/introspect"),
            "grant_types_supported": [
                "authorization_code",
                "refresh_token",
                "urn:ietf:params:oauth:grant-type:device_code",
                "urn:ietf:params:oauth:grant-type:token-exchange"
            ],
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256", "plain"],
            "scopes_supported": ["openid", "email", "groups", "profile", "offline_access"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "claims_supported": [
                "iss", "sub", "aud", "iat", "exp", "email", "email_verified",
                "locale", "name", "preferred_username", "at_hash"
            ]
        })
    );

    let t = start(|c| {
        let mut features = Features::mcp_ready();
        features.client_credentials = true;
        c.with_features(features)
    })
    .await;
    let i = &t.issuer;
    let expected = serde_json::json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/auth"),
        "token_endpoint": format!("{i}/token"),
        "jwks_uri": format!("{i}/keys"),
        "userinfo_endpoint": format!("{i}/userinfo"),
        "device_authorization_endpoint": format!("{i}/device/code"),
        "introspection_endpoint": format!("{i}/token/introspect"),
        "registration_endpoint": format!("{i}/register"),
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": [
            "openid", "email", "groups", "profile", "offline_access", "mcp:tools", "mcp:admin"
        ],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic", "client_secret_post", "none"
        ],
        "claims_supported": [
            "iss", "sub", "aud", "iat", "exp", "email", "email_verified",
            "locale", "name", "preferred_username", "at_hash"
        ],
        "dpop_signing_alg_values_supported": ["ES256", "ES384", "EdDSA", "PS256", "RS256"],
        "authorization_response_iss_parameter_supported": true
    });
    assert_eq!(
        document(&t, "/dex/.well-known/openid-configuration").await,
        expected
    );
    assert_eq!(
        document(&t, "/.well-known/oauth-authorization-server/dex").await,
        expected
    );
}
