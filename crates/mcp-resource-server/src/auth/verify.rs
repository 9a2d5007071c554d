//! "Verify this token": the one question the authorization layer asks, answered by
//! local JWT verification ([`super::Validator`]) or by asking the authorization server
//! (RFC 7662 introspection, [`super::Introspector`]).

use std::{future::Future, pin::Pin, sync::Arc, time::SystemTime};

use super::{claims::VerifiedClaims, validator::ValidationError};

/// A boxed verification in progress.
pub type Verification<'a> =
    Pin<Box<dyn Future<Output = Result<Arc<VerifiedClaims>, ValidationError>> + Send + 'a>>;

/// Turns a bearer token into verified claims.
///
/// # Security
/// Implementations never log, return or store the token in clear; errors describe the
/// check that failed. [`ValidationError::is_unavailable`] separates "cannot tell right
/// now" (503) from "refused" (401).
pub trait VerifyToken: Send + Sync + std::fmt::Debug {
    /// The claims of `token` if a recent verification can be reused without waiting;
    /// `None` says nothing about the token.
    fn cached(&self, token: &str) -> Option<Arc<VerifiedClaims>>;

    /// Verifies `token`.
    fn verify<'a>(&'a self, token: &'a str) -> Verification<'a>;

    /// The first instant at which the token behind `claims` is refused (its `exp` plus
    /// any leeway); streams opened with it end there.
    fn accepted_until(&self, claims: &VerifiedClaims) -> SystemTime;
}

impl VerifyToken for super::Validator {
    fn cached(&self, token: &str) -> Option<Arc<VerifiedClaims>> {
        super::Validator::cached(self, token)
    }

    fn verify<'a>(&'a self, token: &'a str) -> Verification<'a> {
        Box::pin(self.validate(token))
    }

    fn accepted_until(&self, claims: &VerifiedClaims) -> SystemTime {
        super::Validator::accepted_until(self, claims)
    }
}
