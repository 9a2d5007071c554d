//! Metadata: OpenID Connect discovery at `{issuer}/.well-known/openid-configuration` (the
//! only document Dex serves) and, when switched on, the same content as RFC 8414
//! authorization server metadata at `/.well-known/oauth-authorization-server{issuer path}`.
//!
//! The document is Dex's `constructDiscovery`: device authorization and introspection
//! endpoints, the device code and token exchange grants, no `response_modes_supported`.
//! Token exchange is answered as Dex answers it when its only connector is the password
//! database (which cannot verify a subject token).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::endpoints::token::{DEVICE_CODE_GRANT, TOKEN_EXCHANGE_GRANT};
use crate::state::Idp;

/// The metadata document.
pub(crate) fn metadata(idp: &Idp) -> Value {
    let config = &idp.config;
    let features = &config.features;
    let pkce: &[&str] = if features.require_s256 {
        &["S256"]
    } else {
        &["S256", "plain"]
    };
    let mut auth_methods = vec!["client_secret_basic", "client_secret_post"];
    if features.registration {
        auth_methods.push("none");
    }
    let mut doc = json!({
        "issuer": config.issuer_str(),
        "authorization_endpoint": config.endpoint("/auth"),
        "token_endpoint": config.endpoint("/token"),
        "jwks_uri": config.endpoint("/keys"),
        "userinfo_endpoint": config.endpoint("/userinfo"),
        "device_authorization_endpoint": config.endpoint("/device/code"),
        "introspection_endpoint": config.endpoint("/token/introspect"),
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            DEVICE_CODE_GRANT,
            TOKEN_EXCHANGE_GRANT,
        ],
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": pkce,
        "scopes_supported": config.scopes_supported(),
        "token_endpoint_auth_methods_supported": auth_methods,
        "claims_supported": [
            "iss", "sub", "aud", "iat", "exp", "email", "email_verified",
            "locale", "name", "preferred_username", "at_hash"
        ],
    });
    if features.registration {
        doc["registration_endpoint"] = json!(config.endpoint("/register"));
    }
    if features.dpop {
        doc["dpop_signing_alg_values_supported"] = json!(crate::dpop::ALGORITHMS);
    }
    if features.client_credentials {
        doc["grant_types_supported"] =
            json!(["authorization_code", "refresh_token", "client_credentials"]);
    }
    if !features.trusted_issuers.is_empty()
        && let Some(grants) = doc["grant_types_supported"].as_array_mut()
    {
        grants.push(json!(crate::endpoints::jwt_bearer::JWT_BEARER_GRANT));
    }
    if features.private_key_jwt {
        if let Some(methods) = doc["token_endpoint_auth_methods_supported"].as_array_mut() {
            methods.push(json!("private_key_jwt"));
        }
        doc["token_endpoint_auth_signing_alg_values_supported"] =
            json!(crate::assertion::ALGORITHMS);
    }
    if features.issuer_in_response {
        doc["authorization_response_iss_parameter_supported"] = json!(true);
    }
    doc
}

/// `GET {issuer}/.well-known/openid-configuration` and the RFC 8414 location.
pub(crate) async fn get(State(idp): State<Arc<Idp>>) -> Json<Value> {
    Json(metadata(&idp))
}
