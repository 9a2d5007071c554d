//! Binds Streamable HTTP sessions (`Mcp-Session-Id`) to the principal that created them.
//!
//! A session id is not a credential: each request is authorized on its own, and a
//! request naming a session created by another principal (or an unknown one) is
//! answered 404, as for a session that does not exist.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    extract::{Request, State},
    http::Method,
    middleware::Next,
    response::Response,
};

use crate::{
    auth::claims::{Principal, VerifiedClaims},
    error::{ChallengeContext, Error},
};

const HEADER: &str = "mcp-session-id";
const MAX_SESSIONS: usize = 100_000;
const MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// Owners of Streamable HTTP sessions.
#[derive(Debug, Default)]
pub struct McpSessionOwners {
    owners: Mutex<HashMap<String, (Principal, Instant)>>,
    challenge: ChallengeContext,
}

impl McpSessionOwners {
    /// An empty map; refusals carry `challenge`.
    pub fn new(challenge: ChallengeContext) -> Self {
        Self {
            owners: Mutex::default(),
            challenge,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Principal, Instant)>> {
        self.owners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Middleware enforcing session ownership (after the authorization layer).
pub async fn bind_sessions(
    State(owners): State<Arc<McpSessionOwners>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(principal) = request
        .extensions()
        .get::<Arc<VerifiedClaims>>()
        .map(|claims| claims.principal())
    else {
        return next.run(request).await;
    };
    let session = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(id) = &session {
        let owned = owners
            .lock()
            .get(id)
            .is_some_and(|(owner, _)| *owner == principal);
        if !owned {
            tracing::info!(subject = %principal.subject, "request for an unknown session or another principal's session");
            return Error::SessionNotFound.into_response_with(Some(&owners.challenge));
        }
    }
    let is_delete = request.method() == Method::DELETE;
    let response = next.run(request).await;
    if let Some(id) = &session {
        if is_delete && response.status().is_success() {
            owners.lock().remove(id);
        }
    } else if let Some(id) = response.headers().get(HEADER).and_then(|v| v.to_str().ok()) {
        let mut map = owners.lock();
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, (_, created)| created.elapsed() < MAX_AGE);
        }
        if map.len() < MAX_SESSIONS {
            map.insert(id.to_string(), (principal, Instant::now()));
        }
    }
    response
}
