//! A `DEBUG` span around each request, naming its method and path (never the query
//! string, where a misbehaving client may put a token), and a `DEBUG` event with the
//! status and latency when the response is ready.
//!
//! tower-http's `TraceLayer` does the same and more, but reads the clock several times
//! per request, and wraps the response body, whether or not anything is recorded. Here
//! a request whose span the subscriber does not record costs one level check.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use axum::http::{Request, Response};
use tower::{Layer, Service};
use tracing::{Instrument as _, Span, instrument::Instrumented};

/// Layer adding the request span.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RequestSpanLayer;

impl<S> Layer<S> for RequestSpanLayer {
    type Service = RequestSpan<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestSpan { inner }
    }
}

/// The service made by [`RequestSpanLayer`].
#[derive(Debug, Clone)]
pub struct RequestSpan<S> {
    inner: S,
}

impl<S, B, ResBody> Service<Request<B>> for RequestSpan<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = RequestSpanFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let span = tracing::debug_span!(
            "request",
            method = %request.method(),
            path = %request.uri().path(),
        );
        if span.is_disabled() {
            return RequestSpanFuture::Plain {
                future: self.inner.call(request),
            };
        }
        let future = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        RequestSpanFuture::Recorded {
            future: future.instrument(span),
            start: Instant::now(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`RequestSpan`].
    #[project = Projection]
    pub enum RequestSpanFuture<F> {
        /// The span is not recorded: the inner future as it is.
        Plain { #[pin] future: F },
        /// The inner future inside the span, timed.
        Recorded { #[pin] future: Instrumented<F>, start: Instant },
    }
}

impl<F, ResBody, E> Future for RequestSpanFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            Projection::Plain { future } => future.poll(cx),
            Projection::Recorded { mut future, start } => {
                let output = std::task::ready!(future.as_mut().poll(cx));
                if let Ok(response) = &output {
                    let span: &Span = future.span();
                    tracing::debug!(
                        parent: span,
                        status = response.status().as_u16(),
                        latency_us = start.elapsed().as_micros(),
                        "response",
                    );
                }
                Poll::Ready(output)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io::Write,
        sync::{Arc, Mutex},
    };

    use axum::{Router, body::Body, http::StatusCode, routing::get};
    use tower::ServiceExt as _;

    use super::*;

    /// A writer collecting what the subscriber prints.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn app() -> RequestSpan<Router> {
        RequestSpanLayer.layer(Router::new().route(
            "/mcp",
            get(|| async {
                tracing::debug!("inside the handler");
                StatusCode::IM_A_TEAPOT
            }),
        ))
    }

    async fn call(level: tracing::Level) -> (StatusCode, String) {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
        let request = Request::get("/mcp?access_token=secret-value")
            .body(Body::empty())
            .unwrap();
        let status = app().oneshot(request).await.unwrap().status();
        let printed = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        (status, printed)
    }

    #[tokio::test]
    async fn debug_records_the_request_span_and_the_response() {
        let (status, printed) = call(tracing::Level::DEBUG).await;
        assert_eq!(status, StatusCode::IM_A_TEAPOT);
        assert!(
            printed.contains("request{method=GET path=/mcp}: ")
                && printed.contains("inside the handler"),
            "{printed}"
        );
        assert!(printed.contains("status=418"), "{printed}");
        assert!(printed.contains("latency_us="), "{printed}");
        assert!(!printed.contains("secret-value"), "{printed}");
    }

    #[tokio::test]
    async fn above_debug_the_request_passes_unrecorded() {
        let (status, printed) = call(tracing::Level::INFO).await;
        assert_eq!(status, StatusCode::IM_A_TEAPOT);
        assert_eq!(printed, "");
    }
}
