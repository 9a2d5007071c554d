//! Ends event streams when the authorization behind them ends.
//!
//! A `text/event-stream` response (the standalone `GET /mcp` stream, or an SSE-framed
//! reply) is cut when the token that opened it expires, so no stream outlives its
//! token. Other responses pass untouched.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{body::Body, extract::Request, http::header, middleware::Next, response::Response};
use futures::StreamExt;

use super::{AuthMethod, claims::VerifiedClaims};

fn remaining(until: u64) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Duration::from_secs(until.saturating_sub(now))
}

/// Middleware (after the authorization layer) bounding event streams by the token's life.
pub async fn end_streams_at_expiry(request: Request, next: Next) -> Response {
    let deadline = request
        .extensions()
        .get::<Arc<VerifiedClaims>>()
        .map(|claims| {
            let method = request
                .extensions()
                .get::<AuthMethod>()
                .copied()
                .unwrap_or(AuthMethod::Bearer);
            method.valid_until(claims)
        });
    let response = next.run(request).await;
    let Some(deadline) = deadline else {
        return response;
    };
    let is_stream = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_stream {
        return response;
    }
    let lifetime = remaining(deadline);
    response.map(|body| {
        let stream = body
            .into_data_stream()
            .take_until(tokio::time::sleep(lifetime));
        Body::from_stream(stream)
    })
}
