//! The harness's own authorization server: the test kit's [`TestAuthServer`](testkit::TestAuthServer) with its
//! issuer at the root of `127.0.0.1:<port>`, one freshly generated key, and RFC 9068
//! access tokens for the load. It counts JWKS fetches (the rotation case reads them)
//! and rotates its signing key on demand.
//!
//! It issues tokens directly (no authorization endpoint runs behind the metadata's
//! `authorization_endpoint`): the load needs valid tokens, not a login.

use std::time::Duration;

pub use testkit::{TestAuthServer as AuthServer, now as unix_now};

use crate::keys::KeyAlg;

/// Starts the authorization server on `127.0.0.1:0` with one `alg` key (`key-1`).
///
/// # Errors
/// When the key cannot be generated or the socket cannot be bound.
pub async fn start(alg: KeyAlg) -> anyhow::Result<AuthServer> {
    let key = testkit::TestKey::generate(alg.algorithm(), "key-1")?;
    AuthServer::builder()
        .issuer_path("")
        .keys(&[key])
        .client_id("bench-client")
        .scopes_supported(&["mcp:tools", "mcp:admin"])
        .try_start()
        .await
}

/// What an access token says.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    /// `aud`.
    pub audience: String,
    /// `sub`.
    pub subject: String,
    /// `scope`.
    pub scope: String,
    /// Lifetime from now, in seconds.
    pub lifetime_secs: u64,
}

impl TokenSpec {
    /// A token for `audience` with scope `mcp:tools`, valid for an hour.
    pub fn for_audience(audience: impl Into<String>) -> Self {
        Self {
            audience: audience.into(),
            subject: "bench-user".into(),
            scope: "mcp:tools".into(),
            lifetime_secs: 3600,
        }
    }

    /// Mints this token with `auth`'s current key (`nbf` a second ago).
    pub fn mint(&self, auth: &AuthServer) -> String {
        auth.token()
            .subject(&self.subject)
            .aud(&self.audience)
            .scope(&self.scope)
            .expires_in(Duration::from_secs(self.lifetime_secs))
            .claim("nbf", unix_now().saturating_sub(1))
            .sign()
    }

    /// Mints this token bound to the client key whose thumbprint is `jkt` (`cnf.jkt`,
    /// RFC 9449 §6.1), for DPoP.
    pub fn mint_bound(&self, auth: &AuthServer, jkt: &str) -> String {
        auth.token()
            .subject(&self.subject)
            .aud(&self.audience)
            .scope(&self.scope)
            .expires_in(Duration::from_secs(self.lifetime_secs))
            .claim("nbf", unix_now().saturating_sub(1))
            .claim("cnf", serde_json::json!({ "jkt": jkt }))
            .sign()
    }
}
