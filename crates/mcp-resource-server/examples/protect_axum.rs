//! Protect any axum router with the authorization layer.
//!
//! ```sh
//! cargo run -p mcp-resource-server --example protect_axum
//! curl -i http://127.0.0.1:8080/hello   # 401 with a WWW-Authenticate challenge
//! ```
//!
//! Tokens are validated against the JWKS of the issuer (here the local dev-idp in
//! MCP-ready mode: `cargo run -p dev-idp -- --mcp-ready`).

use std::sync::Arc;
use std::time::Duration;

use axum::{Router, routing::get};
use mcp_resource_server::auth::{
    AuthLayer, JwksCache, JwksConfig, JwksSource, Scopes, Validator, ValidatorConfig,
    VerifiedClaims,
};

async fn hello(claims: VerifiedClaims) -> String {
    format!("hello {}\n", claims.subject)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = "http://localhost:5556/dex";
    // The JWKS URI is read from the issuer's metadata, then keys are cached.
    let jwks = Arc::new(JwksCache::new(
        JwksSource::Discover {
            issuer: issuer.into(),
            issuer_url: issuer.parse()?,
        },
        JwksConfig::default(),
    ));
    let validator = Arc::new(Validator::new(
        ValidatorConfig {
            issuer: issuer.into(),
            audiences: vec!["http://127.0.0.1:8080".into()],
            leeway: Duration::from_secs(30),
            max_token_bytes: 8 * 1024,
            cache_capacity: 10_000,
        },
        jwks,
    ));
    let app = Router::new().route("/hello", get(hello)).layer(
        AuthLayer::new(validator)
            .with_resource_metadata("http://127.0.0.1:8080/.well-known/oauth-protected-resource")
            .with_required_scopes(Scopes::parse("mcp:tools")),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    axum::serve(listener, app).await?;
    Ok(())
}
