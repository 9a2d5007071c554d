//! Limits on open event streams, and the middleware applying them to `GET /mcp`.
//!
//! Each event stream holds a task, channels and an MCP handler until it ends, so the
//! number a client can hold is bounded twice:
//! - per principal (`iss`, `sub`): past [`Config::max_streams_per_principal`] opening
//!   another is refused with 429, while other principals are still served;
//! - overall: past [`Config::max_streams`], 503.
//!
//! Both transports draw from the same [`StreamSlots`]: the legacy `GET /sse` stream
//! and the standalone `GET /mcp` stream of Streamable HTTP. A stream holds a
//! [`StreamSlot`] for as long as its body lives, so the slot is released however the
//! stream ends: token expiry, client disconnect, `DELETE /session`, shutdown.
//!
//! With shared state (`--redis-url`) the per-principal limit counts the streams of every
//! instance ([`crate::cluster::leases`]); the overall limit stays per instance, as it
//! protects this process.
//!
//! [`Config::max_streams_per_principal`]: crate::config::Config::max_streams_per_principal
//! [`Config::max_streams`]: crate::config::Config::max_streams

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use axum::{
    body::Body,
    extract::{Request, State},
    http::{Method, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use futures::StreamExt;

use crate::{
    auth::{VerifiedClaims, claims::Principal, stream_expiry::is_event_stream},
    cluster::{Cluster, leases::Lease},
    error::Error,
};

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_principal: HashMap<Principal, usize>,
}

/// Counts of open event streams, overall and per principal.
#[derive(Debug)]
pub(crate) struct StreamSlots {
    per_principal: usize,
    total: usize,
    counts: Mutex<Counts>,
    cluster: Option<Arc<Cluster>>,
}

impl StreamSlots {
    /// Slots for at most `total` streams, `per_principal` of them for one principal.
    pub(crate) fn new(per_principal: usize, total: usize) -> Self {
        Self {
            per_principal,
            total,
            counts: Mutex::default(),
            cluster: None,
        }
    }

    /// Counts each principal's streams over every instance sharing `cluster`.
    #[must_use]
    pub(crate) fn shared(mut self, cluster: Arc<Cluster>) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// [`StreamSlots::acquire`], then, with shared state, a cluster-wide lease for the
    /// principal.
    ///
    /// # Errors
    /// As [`StreamSlots::acquire`]; [`Error::TooManyStreams`] past the cluster-wide
    /// limit; [`Error::StoreUnavailable`] when Redis cannot be reached.
    pub(crate) async fn acquire_anywhere(
        self: &Arc<Self>,
        principal: Option<Principal>,
    ) -> Result<StreamSlot, Error> {
        let mut slot = self.acquire(principal)?;
        if let (Some(cluster), Some(principal)) = (&self.cluster, &slot.principal) {
            slot.lease = Some(cluster.lease_stream(principal, self.per_principal).await?);
        }
        Ok(slot)
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a slot for a stream of `principal` (`None`: authorization is off, only the
    /// overall limit applies). The slot is released when the returned guard is dropped.
    ///
    /// # Errors
    /// [`Error::TooManyStreams`] past the per-principal limit, [`Error::StreamCapacity`]
    /// past the overall one.
    pub(crate) fn acquire(
        self: &Arc<Self>,
        principal: Option<Principal>,
    ) -> Result<StreamSlot, Error> {
        let mut counts = self.lock();
        if counts.total >= self.total {
            return Err(Error::StreamCapacity { limit: self.total });
        }
        if let Some(principal) = &principal {
            let held = counts.by_principal.get(principal).copied().unwrap_or(0);
            if held >= self.per_principal {
                tracing::info!(subject = %principal.subject, held, "event stream refused: per-principal limit");
                return Err(Error::TooManyStreams {
                    limit: self.per_principal,
                });
            }
            counts.by_principal.insert(principal.clone(), held + 1);
        }
        counts.total += 1;
        Ok(StreamSlot {
            slots: self.clone(),
            principal,
            lease: None,
        })
    }

    #[cfg(test)]
    /// Number of streams open.
    pub(crate) fn open(&self) -> usize {
        self.lock().total
    }

    #[cfg(test)]
    /// Number of streams `principal` holds open.
    pub(crate) fn open_for(&self, principal: &Principal) -> usize {
        self.lock()
            .by_principal
            .get(principal)
            .copied()
            .unwrap_or(0)
    }
}

/// One taken slot; dropping it releases the slot.
#[derive(Debug)]
pub(crate) struct StreamSlot {
    slots: Arc<StreamSlots>,
    principal: Option<Principal>,
    /// The cluster-wide lease, with shared state.
    lease: Option<Lease>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut counts = self.slots.lock();
        counts.total = counts.total.saturating_sub(1);
        if let Some(principal) = &self.principal
            && let Some(held) = counts.by_principal.get_mut(principal)
        {
            *held = held.saturating_sub(1);
            if *held == 0 {
                counts.by_principal.remove(principal);
            }
        }
    }
}

fn accepts_event_stream(request: &Request) -> bool {
    request
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/event-stream"))
}

/// Middleware (after the authorization layer) limiting standalone `GET` event streams
/// per principal: a slot is taken before the stream is opened and held by its body.
pub(crate) async fn limit_streams(
    State(slots): State<Arc<StreamSlots>>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::GET || !accepts_event_stream(&request) {
        return next.run(request).await;
    }
    let principal = request
        .extensions()
        .get::<Arc<VerifiedClaims>>()
        .map(|claims| claims.principal());
    let slot = match slots.acquire_anywhere(principal).await {
        Ok(slot) => slot,
        Err(error) => return error.into_response(),
    };
    let response = next.run(request).await;
    if !is_event_stream(&response) {
        return response;
    }
    response.map(|body| {
        let stream = body.into_data_stream().map(move |chunk| {
            let _ = &slot;
            chunk
        });
        Body::from_stream(stream)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(subject: &str) -> Principal {
        Principal {
            issuer: "http://as".into(),
            subject: subject.into(),
        }
    }

    #[test]
    fn per_principal_and_overall_limits() {
        let slots = Arc::new(StreamSlots::new(2, 3));
        let a1 = slots.acquire(Some(principal("a"))).unwrap();
        let _a2 = slots.acquire(Some(principal("a"))).unwrap();
        assert!(matches!(
            slots.acquire(Some(principal("a"))),
            Err(Error::TooManyStreams { limit: 2 })
        ));
        let _b1 = slots.acquire(Some(principal("b"))).unwrap();
        assert!(matches!(
            slots.acquire(Some(principal("c"))),
            Err(Error::StreamCapacity { limit: 3 })
        ));
        assert_eq!(slots.open(), 3);
        drop(a1);
        assert_eq!(slots.open_for(&principal("a")), 1);
        let _a3 = slots.acquire(Some(principal("a"))).unwrap();
        assert_eq!(slots.open(), 3);
    }

    #[test]
    fn the_same_subject_of_another_issuer_is_another_principal() {
        let slots = Arc::new(StreamSlots::new(1, 10));
        let _one = slots.acquire(Some(principal("a"))).unwrap();
        let other = Principal {
            issuer: "http://other".into(),
            subject: "a".into(),
        };
        assert!(slots.acquire(Some(other)).is_ok());
    }

    #[test]
    fn without_a_principal_only_the_overall_limit_applies() {
        let slots = Arc::new(StreamSlots::new(1, 2));
        let _one = slots.acquire(None).unwrap();
        let _two = slots.acquire(None).unwrap();
        assert!(matches!(
            slots.acquire(None),
            Err(Error::StreamCapacity { .. })
        ));
        assert!(slots.open_for(&principal("a")) == 0);
    }
}
