//! Ends standalone event streams when the authorization behind them ends.
//!
//! The standalone `GET /mcp` event stream is cut at the instant the credentials that
//! opened it stop being accepted ([`AuthorizedUntil`]: `exp` plus the clock leeway, or
//! the end of the cookie session), so no long-lived stream outlives its token.
//!
//! An SSE-framed reply to a `POST` is not cut: the request was accepted, its call ran,
//! and the stream ends by itself once the JSON-RPC response is sent. Cutting it at
//! expiry would lose the answer of a call that was executed.

use axum::{
    body::Body,
    extract::Request,
    http::{Method, header},
    middleware::Next,
    response::Response,
};
use futures::StreamExt;

use super::AuthorizedUntil;

/// Middleware (after the authorization layer) bounding `GET` event streams by the
/// life of the credentials that opened them.
pub async fn end_streams_at_expiry(request: Request, next: Next) -> Response {
    if request.method() != Method::GET {
        return next.run(request).await;
    }
    let until = request.extensions().get::<AuthorizedUntil>().copied();
    let response = next.run(request).await;
    let Some(until) = until else {
        return response;
    };
    if !is_event_stream(&response) {
        return response;
    }
    let lifetime = until.remaining();
    response.map(|body| {
        let stream = body
            .into_data_stream()
            .take_until(tokio::time::sleep(lifetime));
        Body::from_stream(stream)
    })
}

/// Whether `response` is a `text/event-stream`.
pub fn is_event_stream(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}
