//! `Origin` validation (DNS rebinding and cross-site protection, MCP "Security Best
//! Practices"), with the [`OriginPolicy`] that [`crate::host`] shares.
//!
//! - A request carrying an `Origin` not in the allowed list (by default the public URL's
//!   origin) is answered 403. Requests without `Origin` (non-browser clients) pass;
//!   cookie-authenticated ones have stricter rules in [`crate::auth::layer`].

use std::sync::Arc;

use axum::{extract::Request, http::header};

use crate::{
    check::{CheckLayer, RequestCheck},
    error::Error,
};

/// Allowed `Host` and `Origin` values.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    /// Allowed `Host` values, lower case, as `host[:port]`.
    pub hosts: Vec<String>,
    /// Allowed origins, serialised.
    pub origins: Vec<String>,
}

impl OriginPolicy {
    /// Whether a `Host` header value is allowed.
    pub fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim();
        self.hosts
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(host))
    }

    /// Whether an `Origin` header value is allowed.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.origins
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(origin.trim()))
    }
}

/// The `Origin` check of an [`OriginPolicy`].
#[derive(Debug)]
pub struct OriginCheck(pub Arc<OriginPolicy>);

impl RequestCheck for OriginCheck {
    fn check(&self, request: &Request) -> Result<(), Error> {
        match request.headers().get(header::ORIGIN).map(|v| v.to_str()) {
            None => Ok(()),
            Some(Ok(origin)) if self.0.origin_allowed(origin) => Ok(()),
            Some(origin) => {
                tracing::info!(origin = ?origin.ok(), "refused a request from a foreign Origin");
                Err(Error::OriginNotAllowed)
            }
        }
    }
}

/// Layer refusing requests whose `Origin` is not allowed.
pub type OriginLayer = CheckLayer<OriginCheck>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        let policy = OriginPolicy {
            hosts: vec!["localhost:3001".into()],
            origins: vec!["http://localhost:3001".into()],
        };
        assert!(policy.host_allowed("LOCALHOST:3001"));
        assert!(!policy.host_allowed("evil.example.com"));
        assert!(!policy.host_allowed("localhost:3002"));
        assert!(policy.origin_allowed("http://localhost:3001"));
        assert!(!policy.origin_allowed("http://evil.example.com"));
    }
}
