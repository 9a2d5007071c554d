//! A layer for checks that need only the request head and answer at once: the request
//! goes on to the inner service untouched, or is refused with an [`Error`] response,
//! without a boxed future or a clone of the inner service. [`crate::host`] and
//! [`crate::origin`] are such checks.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use axum::{
    extract::Request,
    response::{IntoResponse, Response},
};
use futures::future::{Either, Ready, ready};
use tower::{Layer, Service};

use crate::error::Error;

/// A check of a request head.
pub trait RequestCheck: Send + Sync + 'static {
    /// `Ok` lets the request through.
    ///
    /// # Errors
    /// The refusal to answer with.
    fn check(&self, request: &Request) -> Result<(), Error>;
}

/// Layer applying a [`RequestCheck`].
#[derive(Debug)]
pub(crate) struct CheckLayer<C> {
    check: Arc<C>,
}

impl<C> Clone for CheckLayer<C> {
    fn clone(&self) -> Self {
        Self {
            check: self.check.clone(),
        }
    }
}

impl<C: RequestCheck> CheckLayer<C> {
    /// A layer applying `check`.
    pub(crate) fn new(check: C) -> Self {
        Self {
            check: Arc::new(check),
        }
    }
}

impl<S, C> Layer<S> for CheckLayer<C> {
    type Service = CheckService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CheckService {
            inner,
            check: self.check.clone(),
        }
    }
}

/// The service made by [`CheckLayer`].
#[derive(Debug)]
pub struct CheckService<S, C> {
    inner: S,
    check: Arc<C>,
}

impl<S: Clone, C> Clone for CheckService<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            check: self.check.clone(),
        }
    }
}

impl<S, C> Service<Request> for CheckService<S, C>
where
    S: Service<Request, Response = Response>,
    C: RequestCheck,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match self.check.check(&request) {
            Ok(()) => Either::Right(self.inner.call(request)),
            Err(error) => Either::Left(ready(Ok(error.into_response()))),
        }
    }
}
