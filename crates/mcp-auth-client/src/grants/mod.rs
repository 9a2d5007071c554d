//! How the client obtains tokens once discovery has found the authorization server.
//!
//! - [`Grant::AuthorizationCode`]: a person logs in (`authorize.rs`), the default.
//!
//! Whatever the grant, tokens are DPoP-bound when [`dpop_key`] says so, and the client
//! authenticates at the token endpoint as configured (`none`, a secret, or
//! `private_key_jwt` with [`assertion::ClientKey`]).

pub mod assertion;

use std::sync::Arc;

use mcp_auth_proto::Scopes;

use crate::authorize::{self, AuthorizeOptions, Authorized};
use crate::cache::Cache;
use crate::discovery::{AuthorizationServer, Discovered};
use crate::dpop::{self, DpopKey};
use crate::error::Result;
use crate::registration::StoredClient;
use crate::trace::Trace;

/// How tokens are obtained (`--grant`).
#[derive(Debug, Clone, Default)]
pub enum Grant {
    /// The authorization code flow with PKCE: a person logs in.
    #[default]
    AuthorizationCode,
}

/// Obtains tokens for `discovered` with the configured grant.
pub async fn obtain(
    http: &reqwest::Client,
    trace: &Trace,
    cache: &Cache,
    discovered: &Discovered,
    options: &AuthorizeOptions,
    scopes: &Scopes,
) -> Result<Authorized> {
    match &options.grant {
        Grant::AuthorizationCode => {
            authorize::authorize(http, trace, cache, discovered, options, scopes).await
        }
    }
}

/// The DPoP key of `client` at `as_`, when tokens are to be DPoP-bound there (the policy
/// and what the server advertises decide; see [`dpop::choose`]).
pub fn dpop_key(
    trace: &Trace,
    cache: &Cache,
    options: &AuthorizeOptions,
    as_: &AuthorizationServer,
    client: &StoredClient,
) -> Result<Option<Arc<DpopKey>>> {
    match dpop::choose(trace, options.dpop, options.dpop_alg, &as_.metadata)? {
        Some(alg) => Ok(Some(DpopKey::for_client(
            trace,
            cache,
            &as_.issuer,
            &client.client_id,
            alg,
        )?)),
        None => Ok(None),
    }
}
