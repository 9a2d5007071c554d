//! The authorization layer in front of a plain axum router, outside this server.

use std::sync::Arc;

use axum::{Router, routing::get};
use mcp_auth_proto::scope::Scopes;
use mcp_resource_server::{
    auth::{AuthLayer, JwksCache, JwksSource, Validator, ValidatorConfig, VerifiedClaims},
    config::JwksConfig,
};
use tokio::net::TcpListener;

use crate::fixture::{TestAuthServer, TestKey, client, www_authenticate};

async fn hello(claims: VerifiedClaims) -> String {
    format!("hello {}", claims.subject)
}

async fn unprotected(claims: VerifiedClaims) -> String {
    claims.subject
}

/// A validator for `auth`'s tokens with audience `https://api.example/`.
fn validator(auth: &TestAuthServer, cache_capacity: usize) -> Arc<Validator> {
    let jwks = Arc::new(JwksCache::new(
        JwksSource::Uri(auth.jwks_url().parse().unwrap()),
        JwksConfig::default(),
    ));
    Arc::new(Validator::new(
        ValidatorConfig {
            issuer: auth.issuer().to_string(),
            audiences: vec!["https://api.example/".into()],
            leeway: std::time::Duration::from_secs(5),
            max_token_bytes: 8192,
            cache_capacity,
        },
        jwks,
    ))
}

#[tokio::test]
async fn layer_protects_a_plain_axum_router() {
    let auth = TestAuthServer::with_keys(&[TestKey::rsa1()]).await;
    let validator = validator(&auth, 0);
    let layer = AuthLayer::new(validator)
        .with_resource_metadata("https://api.example/.well-known/oauth-protected-resource")
        .with_required_scopes(Scopes::parse("read"));
    let app = Router::new()
        .route("/hello", get(hello))
        .layer(layer)
        .route("/open", get(unprotected));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let response = client().get(format!("{url}/hello")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        www_authenticate(&response),
        r#"Bearer scope="read", resource_metadata="https://api.example/.well-known/oauth-protected-resource""#
    );

    let key = TestKey::rsa1();
    let token = key.sign_with_typ(
        &auth.claims("alice", "https://api.example/", "read write"),
        None,
    );
    let response = client()
        .get(format!("{url}/hello"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "hello alice");

    let weak = key.sign_with_typ(&auth.claims("alice", "https://api.example/", "write"), None);
    let response = client()
        .get(format!("{url}/hello"))
        .bearer_auth(&weak)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let challenge = www_authenticate(&response);
    assert!(
        challenge.contains(r#"error="insufficient_scope""#)
            && challenge.contains(r#"scope="read""#),
        "{challenge}"
    );

    let foreign = key.sign_with_typ(
        &auth.claims("alice", "https://other.example/", "read"),
        None,
    );
    let response = client()
        .get(format!("{url}/hello"))
        .bearer_auth(&foreign)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // A handler asking for claims without the layer in front is a server bug: 500, never a pass.
    let response = client()
        .get(format!("{url}/open"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
}

#[tokio::test]
async fn layer_wraps_an_rmcp_service_directly() {
    use rmcp::transport::{
        StreamableHttpServerConfig, StreamableHttpService,
        streamable_http_server::session::never::NeverSessionManager,
    };
    use tower::Layer;

    let auth = TestAuthServer::with_keys(&[TestKey::rsa1()]).await;
    let jwks = Arc::new(JwksCache::new(
        JwksSource::Uri(auth.jwks_url().parse().unwrap()),
        JwksConfig::default(),
    ));
    let validator = Arc::new(Validator::new(
        ValidatorConfig {
            issuer: auth.issuer().to_string(),
            audiences: vec!["urn:test:mcp".into()],
            leeway: std::time::Duration::from_secs(5),
            max_token_bytes: 8192,
            cache_capacity: 100,
        },
        jwks,
    ));
    let rmcp_service = StreamableHttpService::new(
        || Ok(crate::custom_tools::example::Tools),
        Arc::new(NeverSessionManager::default()),
        StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true),
    );
    // The layer applied to the rmcp service itself, not to a router.
    let protected = AuthLayer::new(validator).layer(rmcp_service);
    let app = Router::new().route_service("/mcp", protected);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let no_token = crate::fixture::rpc(&url, None, None, crate::fixture::initialize()).await;
    assert_eq!(no_token.status, 401);
    let token = TestKey::rsa1().sign_with_typ(&auth.claims("alice", "urn:test:mcp", ""), None);
    let reply = crate::fixture::rpc(
        &url,
        Some(&token),
        None,
        crate::fixture::call(1, "whoami", serde_json::json!({})),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.unwrap()["result"]["content"][0]["text"], "alice");
}

/// The cache of verified tokens answers only for the very token it verified: a token
/// that ends like a cached one but differs before is checked on its own (and refused),
/// and malformed credentials stay a 400 whatever the cache holds.
#[tokio::test]
async fn cached_tokens_match_whole() {
    let auth = TestAuthServer::with_keys(&[TestKey::rsa1()]).await;
    let validator = validator(&auth, 16);
    let app = Router::new()
        .route("/hello", get(hello))
        .layer(AuthLayer::new(validator));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let status = |credentials: String| {
        let url = format!("{url}/hello");
        async move {
            client()
                .get(url)
                .header("authorization", credentials)
                .send()
                .await
                .unwrap()
                .status()
        }
    };

    let token =
        TestKey::rsa1().sign_with_typ(&auth.claims("alice", "https://api.example/", "read"), None);
    // Twice: verified, then served from the cache.
    assert_eq!(status(format!("Bearer {token}")).await, 200);
    assert_eq!(status(format!("Bearer {token}")).await, 200);

    // Same signature, another payload: the payload's first character changed.
    let (header, rest) = token.split_once('.').unwrap();
    let tampered_first = if rest.starts_with('A') { 'B' } else { 'A' };
    let tampered = format!("{header}.{tampered_first}{}", &rest[1..]);
    assert_ne!(tampered, token);
    assert_eq!(status(format!("Bearer {tampered}")).await, 401);

    // Not a b64token (RFC 6750 §2.1): 400, before and after the same prefix was cached.
    assert_eq!(status(format!("Bearer {token}!")).await, 400);
    assert_eq!(status(format!("Bearer !{token}")).await, 400);
    assert_eq!(status("Bearer a b".into()).await, 400);
}
