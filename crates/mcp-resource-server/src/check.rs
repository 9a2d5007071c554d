//! A layer for checks that need only the request head and answer at once: the request
//! goes on to the inner service untouched, or is refused with an [`Error`] response.
//! [`crate::host`] and [`crate::origin`] are such checks.
//!
//! The service is tower-http's [`ValidateRequestHeader`]: a [`RequestCheck`] becomes
//! its validator, so a refusal is answered without a boxed future or a clone of the
//! inner service. [`CheckLayer`] only keeps the check behind one `Arc`, shared by every
//! clone of the layer and of the services it makes.

use std::sync::Arc;

use axum::{
    body::Body,
    extract::Request,
    response::{IntoResponse, Response},
};
use tower::Layer;
use tower_http::validate_request::{
    ValidateRequest, ValidateRequestHeader, ValidateRequestHeaderLayer,
};

use crate::error::Error;

/// A check of a request head.
pub trait RequestCheck: Send + Sync + 'static {
    /// `Ok` lets the request through.
    ///
    /// # Errors
    /// The refusal to answer with.
    fn check(&self, request: &Request) -> Result<(), Error>;
}

/// A [`RequestCheck`] as tower-http's request validator.
#[derive(Debug)]
pub struct Validator<C>(Arc<C>);

impl<C> Clone for Validator<C> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<C: RequestCheck> ValidateRequest<Body> for Validator<C> {
    type ResponseBody = Body;

    fn validate(&mut self, request: &mut Request) -> Result<(), Response> {
        self.0.check(request).map_err(Error::into_response)
    }
}

/// Layer applying a [`RequestCheck`].
#[derive(Debug)]
pub(crate) struct CheckLayer<C>(ValidateRequestHeaderLayer<Validator<C>>);

impl<C> Clone for CheckLayer<C> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<C: RequestCheck> CheckLayer<C> {
    /// A layer applying `check`.
    pub(crate) fn new(check: C) -> Self {
        Self(ValidateRequestHeaderLayer::custom(Validator(Arc::new(
            check,
        ))))
    }
}

impl<S, C> Layer<S> for CheckLayer<C> {
    type Service = CheckService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        self.0.layer(inner)
    }
}

/// The service made by [`CheckLayer`].
pub(crate) type CheckService<S, C> = ValidateRequestHeader<S, Validator<C>>;

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::{body::Body, http::StatusCode};
    use tower::{ServiceExt as _, service_fn};

    use super::*;

    struct NeedsHeader;

    impl RequestCheck for NeedsHeader {
        fn check(&self, request: &Request) -> Result<(), Error> {
            match request.headers().get("x-pass") {
                Some(_) => Ok(()),
                None => Err(Error::HostNotAllowed),
            }
        }
    }

    #[tokio::test]
    async fn a_refusal_answers_without_calling_the_inner_service() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let inner = service_fn(move |_: Request| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, std::convert::Infallible>(StatusCode::IM_A_TEAPOT.into_response()) }
        });
        let service = CheckLayer::new(NeedsHeader).layer(inner);

        let refused = service
            .clone()
            .oneshot(Request::new(Body::empty()))
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert_eq!(calls.load(Ordering::SeqCst), 0);

        let passed = service
            .oneshot(
                Request::builder()
                    .header("x-pass", "1")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(passed.status(), StatusCode::IM_A_TEAPOT);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
