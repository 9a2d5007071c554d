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
use mcp_auth_proto::AuthorizationServerMetadata;
use serde_json::{Value, json};

use crate::endpoints::grants::{DEVICE_CODE_GRANT, JWT_BEARER_GRANT, TOKEN_EXCHANGE_GRANT};
use crate::state::Idp;

/// Dex's claims (`claims_supported`, which has no field of its own in
/// [`AuthorizationServerMetadata`]).
const CLAIMS_SUPPORTED: [&str; 11] = [
    "iss",
    "sub",
    "aud",
    "iat",
    "exp",
    "email",
    "email_verified",
    "locale",
    "name",
    "preferred_username",
    "at_hash",
];

/// The metadata document, as the workspace's wire type of it.
pub(crate) fn metadata(idp: &Idp) -> AuthorizationServerMetadata {
    let config = &idp.config;
    let features = &config.features;
    let strings = |values: &[&str]| values.iter().map(|v| (*v).to_owned()).collect();
    let mut doc = AuthorizationServerMetadata::new(config.issuer_str());
    doc.authorization_endpoint = Some(config.endpoint("/auth"));
    doc.token_endpoint = Some(config.endpoint("/token"));
    doc.jwks_uri = Some(config.endpoint("/keys"));
    doc.userinfo_endpoint = Some(config.endpoint("/userinfo"));
    doc.introspection_endpoint = Some(config.endpoint("/token/introspect"));
    doc.grant_types_supported = if features.client_credentials {
        strings(&["authorization_code", "refresh_token", "client_credentials"])
    } else {
        strings(&[
            "authorization_code",
            "refresh_token",
            DEVICE_CODE_GRANT,
            TOKEN_EXCHANGE_GRANT,
        ])
    };
    doc.response_types_supported = strings(&["code"]);
    doc.subject_types_supported = strings(&["public"]);
    doc.id_token_signing_alg_values_supported = strings(&["RS256"]);
    doc.code_challenge_methods_supported = if features.require_s256 {
        strings(&["S256"])
    } else {
        strings(&["S256", "plain"])
    };
    doc.scopes_supported = config.scopes_supported();
    doc.token_endpoint_auth_methods_supported =
        strings(&["client_secret_basic", "client_secret_post"]);
    if !features.trusted_issuers.is_empty() {
        doc.grant_types_supported.push(JWT_BEARER_GRANT.to_owned());
    }
    if features.registration {
        doc.token_endpoint_auth_methods_supported
            .push("none".to_owned());
        doc.registration_endpoint = Some(config.endpoint("/register"));
    }
    if features.private_key_jwt {
        doc.token_endpoint_auth_methods_supported
            .push("private_key_jwt".to_owned());
    }
    doc.authorization_response_iss_parameter_supported = features.issuer_in_response;
    let mut extra = |name: &str, value: Value| {
        doc.extra.insert(name.to_owned(), value);
    };
    extra(
        "device_authorization_endpoint",
        json!(config.endpoint("/device/code")),
    );
    extra("claims_supported", json!(CLAIMS_SUPPORTED));
    if features.dpop {
        extra(
            "dpop_signing_alg_values_supported",
            json!(crate::dpop::ALGORITHMS),
        );
    }
    if features.private_key_jwt {
        extra(
            "token_endpoint_auth_signing_alg_values_supported",
            json!(crate::assertion::ALGORITHMS),
        );
    }
    doc
}

/// `GET {issuer}/.well-known/openid-configuration` and the RFC 8414 location.
pub(crate) async fn get(State(idp): State<Arc<Idp>>) -> Json<AuthorizationServerMetadata> {
    Json(metadata(&idp))
}
