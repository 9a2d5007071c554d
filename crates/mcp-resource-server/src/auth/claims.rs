//! Verified token claims, and the axum extractor that hands them to handlers.
//!
//! The authorization layer inserts an `Arc<VerifiedClaims>` into the request extensions
//! after a token (or a session cookie standing for one) passed validation. Handlers take
//! [`VerifiedClaims`] as an argument; if the layer is missing the extractor rejects the
//! request with [`ClaimsRejection`] (a server bug, answered 500) rather than letting an
//! unauthenticated request through.

use std::sync::Arc;

use axum::{
    extract::FromRequestParts,
    http::{StatusCode, request::Parts},
    response::{IntoResponse, Response},
};
use mcp_auth_proto::scope::Scopes;
use rmcp::{RoleServer, service::RequestContext};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The kind of access token that was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TokenKind {
    /// An RFC 9068 JWT access token (`typ: at+jwt`).
    Rfc9068,
    /// A plain JWT (Dex-shaped: an ID-token-like JWT, no `scope` claim).
    Jwt,
    /// A token (opaque or not) the authorization server vouched for by introspection
    /// (RFC 7662).
    Introspected,
}

/// Claims of a verified access token. Holds no token, only what was read from it.
///
/// They deserialise too, so that instances sharing state (`--redis-url`) can hand a
/// cookie session's or a forwarded message's principal to one another.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifiedClaims {
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// `aud`, as a list.
    pub audience: Vec<String>,
    /// `exp` (seconds since the epoch).
    pub expires_at: u64,
    /// `iat`, if present.
    pub issued_at: Option<u64>,
    /// Scopes from `scope` (RFC 9068) or `scp`; empty for Dex-shaped tokens.
    #[serde(
        serialize_with = "serialize_scopes",
        deserialize_with = "deserialize_scopes"
    )]
    pub scopes: Scopes,
    /// `client_id` (RFC 9068) or `azp` (OIDC).
    pub client_id: Option<String>,
    /// Which shape of token this was.
    pub kind: TokenKind,
    /// Selected profile claims (`email`, `email_verified`, `name`, `preferred_username`, `groups`).
    pub profile: Map<String, Value>,
    /// A short non-reversible tag of the token, for logs.
    pub token_fingerprint: String,
    /// `cnf.jkt`: the thumbprint of the key the token is bound to (RFC 9449 §6.1), if
    /// it is DPoP-bound.
    pub dpop_jkt: Option<String>,
}

fn deserialize_scopes<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Scopes, D::Error> {
    let scopes = Vec::<String>::deserialize(deserializer)?;
    Ok(scopes.into_iter().collect())
}

fn serialize_scopes<S: serde::Serializer>(
    scopes: &Scopes,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(scopes.iter())
}

impl VerifiedClaims {
    /// The claims of the caller of an MCP request, inside an rmcp handler: the
    /// authorization layers put them in the HTTP request whose head rmcp hands the
    /// handler (on `/mcp` and on the legacy SSE transport alike). `None` only when
    /// authorization is off.
    pub fn from_context(context: &RequestContext<RoleServer>) -> Option<Arc<Self>> {
        context
            .extensions
            .get::<Parts>()
            .and_then(|parts| parts.extensions.get::<Arc<Self>>())
            .cloned()
    }

    /// The principal this token speaks for: issuer and subject together.
    pub fn principal(&self) -> Principal {
        Principal {
            issuer: self.issuer.clone(),
            subject: self.subject.clone(),
        }
    }

    /// Whether the token carries every scope in `needed`.
    pub fn has_scopes(&self, needed: &Scopes) -> bool {
        self.scopes.contains_all(needed)
    }

    /// Claims carrying `scopes` and placeholders elsewhere, for unit tests of scope rules.
    #[cfg(test)]
    pub(crate) fn with_scopes(scopes: &str) -> Self {
        Self {
            issuer: "i".into(),
            subject: "s".into(),
            audience: vec![],
            expires_at: 0,
            issued_at: None,
            scopes: Scopes::parse(scopes),
            client_id: None,
            kind: TokenKind::Jwt,
            profile: Default::default(),
            token_fingerprint: String::new(),
            dpop_jkt: None,
        }
    }
}

/// Who a request is from: `(iss, sub)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Principal {
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
}

/// Why [`VerifiedClaims`] could not be extracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClaimsRejectionReason {
    /// No authorization layer ran in front of this handler.
    MissingLayer,
}

/// Rejection of the [`VerifiedClaims`] extractor.
#[derive(Debug, Clone, Copy)]
pub struct ClaimsRejection {
    reason: ClaimsRejectionReason,
}

impl ClaimsRejection {
    /// Why the extraction failed.
    pub fn reason(&self) -> ClaimsRejectionReason {
        self.reason
    }
}

impl IntoResponse for ClaimsRejection {
    fn into_response(self) -> Response {
        tracing::error!(reason = ?self.reason, "handler needs verified claims but no authorization layer ran");
        (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for VerifiedClaims {
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Arc<VerifiedClaims>>()
            .map(|claims| claims.as_ref().clone())
            .ok_or(ClaimsRejection {
                reason: ClaimsRejectionReason::MissingLayer,
            })
    }
}
