//! How an access token goes on an MCP request: `Authorization: Bearer <token>`, or, for a
//! DPoP-bound token, `Authorization: DPoP <token>` with a fresh `DPoP` proof for that
//! request's method and URL (RFC 9449 §7.1). The transports ask a [`Credential`] to
//! authorize each request they send, and hand it every response's headers so it keeps
//! the server's latest `DPoP-Nonce`.

use std::sync::Arc;

use mcp_auth_proto::AccessToken;
use reqwest::header::HeaderMap;
use url::Url;

use crate::dpop::{self, DpopKey};
use crate::error::Result;
use crate::trace::Trace;

/// An access token and, when it is DPoP-bound, its key.
#[derive(Clone)]
pub struct Credential {
    token: AccessToken,
    dpop: Option<Arc<DpopKey>>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("scheme", &self.scheme())
            .field("dpop", &self.dpop)
            .finish_non_exhaustive()
    }
}

impl Credential {
    /// A Bearer token (`dpop: None`) or a DPoP-bound one.
    #[must_use]
    pub fn new(token: AccessToken, dpop: Option<Arc<DpopKey>>) -> Self {
        Self { token, dpop }
    }

    /// The access token.
    #[must_use]
    pub fn token(&self) -> &AccessToken {
        &self.token
    }

    /// `Bearer` or `DPoP`.
    #[must_use]
    pub fn scheme(&self) -> &'static str {
        if self.dpop.is_some() {
            "DPoP"
        } else {
            "Bearer"
        }
    }

    /// Adds the authorization of a `method` request to `url`.
    pub fn apply(
        &self,
        trace: &Trace,
        req: reqwest::RequestBuilder,
        method: &str,
        url: &Url,
    ) -> Result<reqwest::RequestBuilder> {
        match &self.dpop {
            None => Ok(req.bearer_auth(self.token.secret())),
            Some(key) => {
                let req = req.header(
                    reqwest::header::AUTHORIZATION,
                    format!("DPoP {}", self.token.secret()),
                );
                dpop::with_proof(trace, key, req, method, url, Some(self.token.secret()))
            }
        }
    }

    /// Keeps the `DPoP-Nonce` of a response from `url`; true if the server gave a new one.
    pub fn note_nonce(&self, url: &Url, headers: &HeaderMap) -> bool {
        self.dpop
            .as_ref()
            .is_some_and(|k| k.note_nonce(url, headers))
    }
}
