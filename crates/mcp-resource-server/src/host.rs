//! `Host` validation (DNS rebinding protection): `Host` must name this server as its
//! public URL does (or be a loopback address literal of the listening socket); anything
//! else is answered 403.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::header,
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{error::Error, origin::OriginPolicy};

/// Middleware refusing foreign `Host` values.
pub async fn check_host(
    State(policy): State<Arc<OriginPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_string()));
    match host {
        Some(host) if policy.host_allowed(&host) => next.run(request).await,
        _ => {
            tracing::info!(host = ?host, "refused a request for a foreign Host");
            Error::HostNotAllowed.into_response()
        }
    }
}
