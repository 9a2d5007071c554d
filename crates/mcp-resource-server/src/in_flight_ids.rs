//! JSON-RPC request ids in flight per Streamable HTTP session, and the middleware that
//! refuses a request reusing one.
//!
//! JSON-RPC requires a client's request ids to be unique among its requests in flight.
//! rmcp routes a reply by `(session, id)`: a second request with the id of one still
//! running in the same session would take over the first one's reply, leaving the first
//! response open (and its router entry held) until the session closes. Such a request
//! is therefore answered here, before rmcp reads it: 400 with a JSON-RPC error `-32600`
//! ([`Error::DuplicateRequestId`]).
//!
//! A pair is recorded when a request with a `Mcp-Session-Id` reaches rmcp and released
//! when its response body is dropped: the reply stream ended, the client went away, or
//! rmcp answered without a stream. The set holds one entry per open response, so it is
//! bounded by the open connections and the stream limits; each entry's size by the
//! body limit. The set is per instance: with shared state (`--redis-url`) a duplicate
//! landing on another instance reaches that instance's copy of the session, whose
//! replies are routed by that copy alone.

use std::{
    collections::HashSet,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll, ready},
};

use axum::{
    body::{Body, Bytes, HttpBody},
    extract::{Request, State},
    http::Method,
    middleware::Next,
    response::Response,
};
use http_body::{Frame, SizeHint};
use serde::Deserialize;

use crate::error::Error;

const HEADER: &str = "mcp-session-id";

/// The `(session, request id)` pairs whose response is still open.
#[derive(Debug)]
pub(crate) struct InFlightIds {
    pairs: Mutex<HashSet<(String, String)>>,
    max_body_bytes: usize,
}

impl InFlightIds {
    /// No request in flight; bodies read up to `max_body_bytes`.
    pub(crate) fn new(max_body_bytes: usize) -> Self {
        Self {
            pairs: Mutex::default(),
            max_body_bytes,
        }
    }

    /// Records `(session, id)`, or `None` if it is already in flight.
    fn enter(self: &Arc<Self>, session: &str, id: String) -> Option<InFlight> {
        let key = (session.to_string(), id);
        let mut pairs = self.pairs.lock().unwrap_or_else(PoisonError::into_inner);
        if pairs.contains(&key) {
            return None;
        }
        pairs.insert(key.clone());
        Some(InFlight {
            ids: self.clone(),
            key,
        })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.pairs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// One request in flight; dropping it frees its id.
#[derive(Debug)]
struct InFlight {
    ids: Arc<InFlightIds>,
    key: (String, String),
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.ids
            .pairs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}

/// The part of a JSON-RPC message that tells a request from the rest.
#[derive(Deserialize)]
struct Message {
    method: Option<serde::de::IgnoredAny>,
    id: Option<serde_json::Value>,
}

/// The id of the request `body` holds, as JSON text (`1` and `"1"` differ), if it is
/// a single request. Anything else (a notification, a response, a batch, not JSON) is
/// left to rmcp.
fn request_id(body: &[u8]) -> Option<String> {
    let message: Message = serde_json::from_slice(body).ok()?;
    message.method?;
    match message.id? {
        id @ (serde_json::Value::Number(_) | serde_json::Value::String(_)) => Some(id.to_string()),
        _ => None,
    }
}

/// Middleware refusing a request whose id is in flight in its session (put it right
/// in front of rmcp, after the session checks).
pub(crate) async fn refuse_duplicate_ids(
    State(ids): State<Arc<InFlightIds>>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let Some(session) = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    else {
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, ids.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => return Error::PayloadTooLarge.into_response_with(None),
    };
    let guard = match request_id(&bytes) {
        Some(id) => match ids.enter(&session, id) {
            Some(guard) => Some(guard),
            None => {
                tracing::info!("request id reused while a request with it is in flight");
                return Error::DuplicateRequestId.into_response_with(None);
            }
        },
        None => None,
    };
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let Some(guard) = guard else {
        return response;
    };
    response.map(|inner| {
        Body::new(Guarded {
            inner,
            guard: Some(guard),
        })
    })
}

/// A response body holding its request's id until its last frame is read (so the id is
/// free before the client sees the end of the reply) or the body is dropped. It keeps
/// the inner body's size: a reply that leaves in one piece with its length
/// ([`crate::sse_reply`]) still does.
struct Guarded {
    inner: Body,
    guard: Option<InFlight>,
}

impl HttpBody for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if frame.is_none() {
            self.guard = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_requests_only() {
        assert_eq!(
            request_id(br#"{"jsonrpc":"2.0","id":7,"method":"tools/call"}"#).as_deref(),
            Some("7")
        );
        assert_eq!(
            request_id(br#"{"jsonrpc":"2.0","id":"7","method":"ping"}"#).as_deref(),
            Some("\"7\"")
        );
        assert_eq!(
            request_id(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            None
        );
        assert_eq!(request_id(br#"{"jsonrpc":"2.0","id":7,"result":{}}"#), None);
        assert_eq!(
            request_id(br#"[{"jsonrpc":"2.0","id":7,"method":"ping"}]"#),
            None
        );
        assert_eq!(request_id(b"not json"), None);
    }

    #[tokio::test]
    async fn a_guarded_body_keeps_its_length_and_frees_its_id_at_the_end() {
        let ids = Arc::new(InFlightIds::new(1024));
        let guard = ids.enter("s1", "1".into()).unwrap();
        let body = Guarded {
            inner: Body::from("data: {}\n\n"),
            guard: Some(guard),
        };
        // Known length: the reply still leaves with a Content-Length, in one write.
        assert_eq!(body.size_hint().exact(), Some(10));
        assert!(ids.enter("s1", "1".into()).is_none());
        let bytes = axum::body::to_bytes(Body::new(body), 1024).await.unwrap();
        assert_eq!(&bytes[..], b"data: {}\n\n");
        assert_eq!(ids.len(), 0);
    }

    #[test]
    fn a_pair_is_free_again_once_its_guard_drops() {
        let ids = Arc::new(InFlightIds::new(1024));
        let first = ids.enter("s1", "1".into()).unwrap();
        assert!(ids.enter("s1", "1".into()).is_none());
        // Same id in another session, another id in the same session.
        let other_session = ids.enter("s2", "1".into()).unwrap();
        let other_id = ids.enter("s1", "\"1\"".into()).unwrap();
        assert_eq!(ids.len(), 3);
        drop(first);
        let again = ids.enter("s1", "1".into());
        assert!(again.is_some());
        drop((again, other_session, other_id));
        assert_eq!(ids.len(), 0);
    }
}
