//! Bounds on every accepted connection, whatever protocol it speaks (or fails to).
//!
//! hyper's `header_read_timeout` starts only once a connection has been recognised as
//! HTTP/1: a connection that sends nothing, a single byte of the HTTP/2 preface, or the
//! whole preface and then no stream, would be held forever. Here each connection counts
//! its requests in flight ([`Tracked`] wraps the service, and each response body holds
//! a guard until it is finished or dropped), and [`idle_watch`] ends the connection once
//! it has had no request in flight for the idle timeout, from the moment it was
//! accepted. An event stream is a request in flight for as long as it is open, so it is
//! never cut for being idle; HTTP/2 keep-alive pings (set in [`crate::server`]) detect a
//! peer that vanished under an open stream.
//!
//! [`AcceptBackoff`] keeps the accept loop from spinning (and flooding the log) when
//! accepting fails, e.g. when the process is out of file descriptors.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::http::{Request, Response};
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Instant;
use tower::Service;

/// Requests in flight on one connection, and since when it has had none.
#[derive(Debug)]
pub(crate) struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `started` at which the last request finished.
    idle_since_ms: AtomicU64,
}

impl Activity {
    /// A connection accepted now, with nothing in flight.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
        })
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// When the connection goes idle, or `None` while a request is in flight.
    fn idle_deadline(&self, timeout: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
        Some(self.started + since + timeout)
    }
}

/// Counts one request as in flight until dropped.
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        let elapsed = u64::try_from(activity.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        activity.idle_since_ms.store(elapsed, Ordering::Release);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Completes once the connection has had no request in flight for `timeout`.
///
/// It wakes at most once per `timeout` while requests come and go, so the requests
/// themselves only pay for two atomic counters and a clock read.
pub(crate) async fn idle_watch(activity: Arc<Activity>, timeout: Duration) {
    loop {
        match activity.idle_deadline(timeout) {
            Some(deadline) if deadline <= Instant::now() => return,
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => tokio::time::sleep(timeout).await,
        }
    }
}

/// The connection's service, counting each request until its response body ends.
#[derive(Debug, Clone)]
pub(crate) struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Tracked<S> {
    /// Wraps `inner`, reporting to `activity`.
    pub(crate) fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<S, Req, B> Service<Request<Req>> for Tracked<S>
where
    S: Service<Request<Req>, Response = Response<B>>,
{
    type Response = Response<TrackedBody<B>>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Req>) -> Self::Future {
        let guard = self.activity.begin();
        TrackedFuture {
            inner: self.inner.call(request),
            guard: Some(guard),
        }
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`Tracked`].
    pub struct TrackedFuture<F> {
        #[pin]
        inner: F,
        guard: Option<InFlight>,
    }
}

impl<F, B, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<TrackedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        let guard = this.guard.take();
        Poll::Ready(result.map(|response| {
            response.map(|body| TrackedBody {
                inner: body,
                _guard: guard,
            })
        }))
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request counted as in flight until it ends.
    pub struct TrackedBody<B> {
        #[pin]
        inner: B,
        _guard: Option<InFlight>,
    }
}

impl<B: Body> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Exponential back-off of the accept loop after failures, logged once per episode.
#[derive(Debug, Default)]
pub(crate) struct AcceptBackoff {
    delay: Option<Duration>,
    failures: u64,
}

impl AcceptBackoff {
    /// First pause after a failure.
    pub(crate) const FIRST: Duration = Duration::from_millis(10);
    /// Longest pause.
    pub(crate) const MAX: Duration = Duration::from_secs(1);

    /// Records a failure and returns how long to pause before accepting again. Only
    /// the first failure of an episode is logged (as a warning).
    pub(crate) fn failed(&mut self, error: &std::io::Error) -> Duration {
        self.failures += 1;
        let delay = match self.delay {
            None => {
                tracing::warn!(
                    %error,
                    "accept failed; backing off (up to 1 s between attempts) until it succeeds"
                );
                Self::FIRST
            }
            Some(delay) => (delay * 2).min(Self::MAX),
        };
        self.delay = Some(delay);
        delay
    }

    /// Records a success, ending an episode of failures (logged with its count).
    pub(crate) fn succeeded(&mut self) {
        if self.delay.take().is_some() {
            tracing::info!(
                failures = self.failures,
                "accepting connections again after failures"
            );
            self.failures = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum_and_resets() {
        let error = std::io::Error::other("Too many open files");
        let mut backoff = AcceptBackoff::default();
        let delays: Vec<_> = (0..10).map(|_| backoff.failed(&error)).collect();
        assert_eq!(delays[0], Duration::from_millis(10));
        assert_eq!(delays[1], Duration::from_millis(20));
        assert_eq!(delays[6], Duration::from_millis(640));
        assert_eq!(delays[7], AcceptBackoff::MAX);
        assert_eq!(delays[9], AcceptBackoff::MAX);
        backoff.succeeded();
        assert_eq!(backoff.failed(&error), AcceptBackoff::FIRST);
    }

    #[tokio::test]
    async fn idle_deadline_follows_requests_in_flight() {
        let activity = Activity::new();
        let timeout = Duration::from_millis(300);
        assert_eq!(
            activity.idle_deadline(timeout),
            Some(activity.started + timeout)
        );
        let guard = activity.begin();
        assert_eq!(activity.idle_deadline(timeout), None);
        let watch = tokio::spawn(idle_watch(activity.clone(), timeout));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!watch.is_finished(), "idle while a request was in flight");
        drop(guard);
        let finished_at = Instant::now();
        let deadline = activity.idle_deadline(timeout).unwrap();
        assert!(deadline >= activity.started + Duration::from_millis(500) + timeout);
        watch.await.unwrap();
        let waited = finished_at.elapsed();
        assert!(
            waited >= Duration::from_millis(250),
            "closed {waited:?} after the last request"
        );
    }
}
