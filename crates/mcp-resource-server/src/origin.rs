//! `Origin` validation (DNS rebinding and cross-site protection, MCP "Security Best
//! Practices"), with the [`OriginPolicy`] that [`crate::host`] shares.
//!
//! - A request carrying an `Origin` not in the allowed list (by default the public URL's
//!   origin) is answered 403. Requests without `Origin` (non-browser clients) pass;
//!   cookie-authenticated ones have stricter rules in [`crate::auth::layer`].

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::header,
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::error::Error;

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
        let host = host.trim().to_ascii_lowercase();
        self.hosts.contains(&host)
    }

    /// Whether an `Origin` header value is allowed.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.origins
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(origin.trim()))
    }
}

/// Middleware refusing requests whose `Origin` is not allowed.
pub async fn check_origin(
    State(policy): State<Arc<OriginPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    match request.headers().get(header::ORIGIN).map(|v| v.to_str()) {
        None => next.run(request).await,
        Some(Ok(origin)) if policy.origin_allowed(origin) => next.run(request).await,
        Some(origin) => {
            tracing::info!(origin = ?origin.ok(), "refused a request from a foreign Origin");
            Error::OriginNotAllowed.into_response()
        }
    }
}

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
