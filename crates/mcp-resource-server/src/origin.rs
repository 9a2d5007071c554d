//! `Origin` validation (DNS rebinding and cross-site protection, MCP "Security Best
//! Practices"), with the [`OriginPolicy`] that [`crate::host`] shares.
//!
//! - A request carrying an `Origin` not in the allowed list (by default the public URL's
//!   origin) is answered 403. Requests without `Origin` (non-browser clients) pass;
//!   cookie-authenticated ones have stricter rules in [`crate::auth::layer`].

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use axum::{
    extract::Request,
    http::header,
    response::{IntoResponse, Response},
};
use futures::future::{Either, Ready, ready};
use tower::{Layer, Service};

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

/// Layer refusing requests whose `Origin` is not allowed.
#[derive(Debug, Clone)]
pub struct OriginLayer {
    policy: Arc<OriginPolicy>,
}

impl OriginLayer {
    /// A layer allowing the origins of `policy`.
    pub fn new(policy: Arc<OriginPolicy>) -> Self {
        Self { policy }
    }
}

impl<S> Layer<S> for OriginLayer {
    type Service = OriginService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OriginService {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// The service made by [`OriginLayer`].
#[derive(Debug, Clone)]
pub struct OriginService<S> {
    inner: S,
    policy: Arc<OriginPolicy>,
}

impl<S> Service<Request> for OriginService<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match request.headers().get(header::ORIGIN).map(|v| v.to_str()) {
            None => Either::Right(self.inner.call(request)),
            Some(Ok(origin)) if self.policy.origin_allowed(origin) => {
                Either::Right(self.inner.call(request))
            }
            Some(origin) => {
                tracing::info!(origin = ?origin.ok(), "refused a request from a foreign Origin");
                Either::Left(ready(Ok(Error::OriginNotAllowed.into_response())))
            }
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
