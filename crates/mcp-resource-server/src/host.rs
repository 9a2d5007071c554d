//! `Host` validation (DNS rebinding protection): `Host` must name this server as its
//! public URL does (or be a loopback address literal of the listening socket); anything
//! else is answered 403.

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

use crate::{error::Error, origin::OriginPolicy};

/// Layer refusing requests whose `Host` is not allowed.
#[derive(Debug, Clone)]
pub struct HostLayer {
    policy: Arc<OriginPolicy>,
}

impl HostLayer {
    /// A layer allowing the hosts of `policy`.
    pub fn new(policy: Arc<OriginPolicy>) -> Self {
        Self { policy }
    }
}

impl<S> Layer<S> for HostLayer {
    type Service = HostService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HostService {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// The service made by [`HostLayer`].
#[derive(Debug, Clone)]
pub struct HostService<S> {
    inner: S,
    policy: Arc<OriginPolicy>,
}

impl<S> Service<Request> for HostService<S>
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
        let host = match request.headers().get(header::HOST) {
            Some(value) => value.to_str().ok(),
            None => request.uri().authority().map(|a| a.as_str()),
        };
        if host.is_some_and(|host| self.policy.host_allowed(host)) {
            return Either::Right(self.inner.call(request));
        }
        tracing::info!(host = ?host, "refused a request for a foreign Host");
        Either::Left(ready(Ok(Error::HostNotAllowed.into_response())))
    }
}
