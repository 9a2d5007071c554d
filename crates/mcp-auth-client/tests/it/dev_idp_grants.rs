//! The grants without a person against the project's own servers, in-process on
//! 127.0.0.1:0: dev-idp checks the client's `private_key_jwt` assertions and, as an MCP
//! authorization server trusting a workload platform, its JWT bearer grant; the
//! resource server accepts the tokens. Each side is checked by the other's code, not by
//! its own.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use dev_idp::config::StaticClient;
use dev_idp::{Features, IdpConfig, TrustedIssuer};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mcp_auth_client::grants::Grant;
use mcp_auth_client::grants::assertion::ClientKey;
use serde_json::json;

use testkit::dex::LocalDex;

use crate::support::{ResourceServer, assert_no_secrets, options, session, text};

const WORKLOAD_ISSUER: &str = "https://workloads.example";

/// A P-256 key in a PEM file, and its public JWK.
fn key_pair(dir: &Path, kid: &str) -> (PathBuf, EncodingKey, serde_json::Value) {
    let pair = aws_lc_rs::signature::EcdsaKeyPair::generate(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
    )
    .unwrap();
    let der = pair.to_pkcs8v1().unwrap();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(der.as_ref())
    );
    let path = dir.join(format!("{kid}.pem"));
    std::fs::write(&path, &pem).unwrap();
    let key = EncodingKey::from_ec_pem(pem.as_bytes()).unwrap();
    let mut jwk =
        serde_json::to_value(Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap()).unwrap();
    jwk["kid"] = json!(kid);
    (path, key, jwk)
}

struct Servers {
    mcp_url: String,
    issuer: String,
    _idp: LocalDex,
    _rs: ResourceServer,
}

async fn start(configure: impl FnOnce(IdpConfig) -> IdpConfig) -> Servers {
    let idp = LocalDex::start(configure).await;
    let issuer = idp.issuer.clone();
    let rs = ResourceServer::start(|base| resource_server::demo_config(base, &issuer)).await;
    Servers {
        mcp_url: rs.mcp_url(),
        issuer,
        _idp: idp,
        _rs: rs,
    }
}

#[tokio::test]
async fn client_credentials_with_private_key_jwt_at_dev_idp() {
    let dir = tempfile::tempdir().unwrap();
    let (key_path, _, jwk) = key_pair(dir.path(), "robot-1");
    let servers = start(|config| {
        let mut config = config;
        let robot: StaticClient =
            serde_json::from_value(json!({"id": "robot", "jwks": {"keys": [jwk]}})).unwrap();
        config.dex.static_clients.push(robot);
        let mut features = Features::mcp_ready();
        features.client_credentials = true;
        features.private_key_jwt = true;
        config.with_features(features)
    })
    .await;
    let mut o = options(&servers.mcp_url);
    o.authorize.grant = Grant::ClientCredentials;
    o.authorize.client.client_id = Some("robot".into());
    o.authorize.client.client_key = Some(Arc::new(
        ClientKey::from_pem_file(&key_path, "ES256").unwrap(),
    ));
    let cache = tempfile::tempdir().unwrap();
    let (mut s, buf) = session(o, cache.path());
    s.connect().await.unwrap();
    let tools = s.list_tools().await.unwrap();
    let whoami = s.call_tool("whoami", json!({})).await.unwrap();
    s.close().await;
    assert!(!tools.is_empty());
    let whoami = whoami.to_string();
    // The verified claims name the client as subject and client_id.
    assert!(whoami.contains("robot"), "{whoami}");
    assert!(whoami.contains(&servers.issuer), "{whoami}");
    let trace = text(&buf);
    assert!(trace.contains("private_key_jwt"), "{trace}");
    assert_no_secrets(&trace);
}

#[tokio::test]
async fn workload_jwt_bearer_grant_at_dev_idp() {
    let dir = tempfile::tempdir().unwrap();
    let (_, platform_key, jwk) = key_pair(dir.path(), "platform-1");
    // The workload platform publishes its key.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let jwks = json!({"keys": [jwk]});
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let jwks = jwks.clone();
            async move { axum::Json(jwks) }
        }),
    );
    let platform = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let servers = start(|config| {
        let mut features = Features::mcp_ready();
        features.trusted_issuers = vec![TrustedIssuer {
            issuer: WORKLOAD_ISSUER.into(),
            jwks_uri: Some(jwks_url),
        }];
        config.with_features(features)
    })
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("platform-1".into());
    let workload_jwt = jsonwebtoken::encode(
        &header,
        &json!({
            "iss": WORKLOAD_ISSUER,
            "sub": "system:serviceaccount:ci:deployer",
            "aud": servers.issuer,
            "iat": now,
            "exp": now + 600,
            "jti": "workload-jwt-1",
        }),
        &platform_key,
    )
    .unwrap();
    let assertion_file = dir.path().join("token");
    std::fs::write(&assertion_file, &workload_jwt).unwrap();

    let mut o = options(&servers.mcp_url);
    o.authorize.grant = Grant::JwtBearer {
        assertion_file: assertion_file.clone(),
    };
    o.authorize.client.client_id = Some("mcp-client".into());
    let cache = tempfile::tempdir().unwrap();
    let (mut s, buf) = session(o, cache.path());
    s.connect().await.unwrap();
    let whoami = s.call_tool("whoami", json!({})).await.unwrap().to_string();
    s.close().await;
    assert!(
        whoami.contains("system:serviceaccount:ci:deployer"),
        "{whoami}"
    );
    let trace = text(&buf);
    assert!(!trace.contains(&workload_jwt), "no assertion in the trace");

    // The same JWT again, in a fresh cache: its jti is spent, and the client does not
    // retry or fall back to another grant.
    let mut o = options(&servers.mcp_url);
    o.authorize.grant = Grant::JwtBearer { assertion_file };
    o.authorize.client.client_id = Some("mcp-client".into());
    let cache = tempfile::tempdir().unwrap();
    let (mut s, buf) = session(o, cache.path());
    let error = s.connect().await.unwrap_err().to_string();
    assert!(error.contains("invalid_grant"), "{error}\n{}", text(&buf));
    platform.abort();
}
