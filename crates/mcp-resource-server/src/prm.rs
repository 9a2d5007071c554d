//! Protected Resource Metadata (RFC 9728) for each protected endpoint and the root.
//!
//! `resource` is, as RFC 9728 §3.3 requires, the identifier into which the well-known
//! suffix was inserted: `/.well-known/oauth-protected-resource/mcp` describes
//! `<public>/mcp`, `/.well-known/oauth-protected-resource/sse` describes `<public>/sse`,
//! and the root document describes `<public>`. The documents are public and readable
//! cross-origin (`Access-Control-Allow-Origin: *`), since browser clients fetch them.

use axum::{
    Json, Router,
    http::{HeaderValue, Method, header},
    response::{IntoResponse, Response},
    routing::get,
};
use mcp_auth_proto::prm::ProtectedResourceMetadata;
use tower_http::cors::{Any, CorsLayer};

use crate::{auth::DpopPolicy, config::ValidatedConfig};

/// The PRM document describing `resource`.
pub(crate) fn document(config: &ValidatedConfig, resource: &str) -> ProtectedResourceMetadata {
    let mut prm = ProtectedResourceMetadata::new(resource);
    prm.authorization_servers = config.authorization_servers.clone();
    prm.scopes_supported = config.scopes_supported.iter().map(str::to_string).collect();
    prm.bearer_methods_supported = vec!["header".into()];
    prm.resource_name = Some(config.raw.resource_name.clone());
    // RFC 9728 §2: what proofs are accepted, and whether bound tokens are required.
    if config.raw.dpop.policy != DpopPolicy::Off && !config.raw.no_auth {
        prm.dpop_signing_alg_values_supported = config.raw.dpop.algorithms.clone();
        prm.dpop_bound_access_tokens_required = config.raw.dpop.policy == DpopPolicy::Required;
    }
    prm
}

fn respond(prm: &ProtectedResourceMetadata) -> Response {
    let mut response = Json(prm).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

/// Routes serving the three documents.
pub(crate) fn router(config: &ValidatedConfig) -> Router {
    let mcp = document(config, &config.resource_mcp);
    let sse = document(config, &config.resource_sse);
    let root = document(config, &config.resource_root);
    Router::new()
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(move || async move { respond(&mcp) }),
        )
        .route(
            "/.well-known/oauth-protected-resource/sse",
            get(move || async move { respond(&sse) }),
        )
        .route(
            "/.well-known/oauth-protected-resource",
            get(move || async move { respond(&root) }),
        )
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods([Method::GET, Method::OPTIONS])
                .allow_headers(Any),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn documents_name_their_resource() {
        let config = Config::default().validate().unwrap();
        let prm = document(&config, &config.resource_mcp);
        let json = serde_json::to_value(&prm).unwrap();
        assert_eq!(json["resource"], "http://localhost:3001/mcp");
        assert_eq!(
            json["authorization_servers"][0],
            "http://localhost:5556/dex"
        );
        assert_eq!(json["bearer_methods_supported"][0], "header");
        assert_eq!(json["scopes_supported"][0], "mcp:tools");
        assert!(json["resource_name"].is_string());
    }
}
