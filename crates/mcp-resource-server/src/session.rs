//! Cookie sessions for browser clients of the legacy SSE transport.
//!
//! `EventSource` cannot send an `Authorization` header, so `POST /session` exchanges a
//! valid bearer token for a cookie. The cookie value is an opaque random id (256 bits)
//! mapped here to the verified claims and an expiry; it is never the token. The session
//! lives no longer than the token nor than [`crate::config::CookieConfig::max_age`].
//! `DELETE /session` ends it, and the event streams opened with it. The cookie is
//! `HttpOnly`, `SameSite=Strict`, `Path=/`, and `Secure` on https.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    Extension,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::{auth::claims::VerifiedClaims, error::Error, server::AppState};

/// Most sessions held at once.
const MAX_SESSIONS: usize = 100_000;

struct Entry {
    claims: Arc<VerifiedClaims>,
    expires_at: u64,
}

/// Server-side map from cookie values to verified principals.
#[derive(Default)]
pub struct CookieSessions {
    entries: Mutex<HashMap<String, Entry>>,
}

impl std::fmt::Debug for CookieSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieSessions")
            .field("len", &self.lock().len())
            .finish()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl CookieSessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens a session for `claims`, at most `max_age` long; returns the id and lifetime.
    ///
    /// # Errors
    /// [`Error::InvalidToken`]-like refusal when the token has (almost) expired, or
    /// [`Error::Internal`] when the store is full.
    pub fn issue(
        &self,
        claims: Arc<VerifiedClaims>,
        max_age: Duration,
    ) -> Result<(String, Duration), Error> {
        let now = now();
        let token_left = claims.expires_at.saturating_sub(now);
        let lifetime = token_left.min(max_age.as_secs());
        if lifetime == 0 {
            return Err(Error::InvalidSession);
        }
        let id = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let mut entries = self.lock();
        if entries.len() >= MAX_SESSIONS {
            entries.retain(|_, e| e.expires_at > now);
            if entries.len() >= MAX_SESSIONS {
                return Err(Error::Internal("cookie session store is full".into()));
            }
        }
        entries.insert(
            id.clone(),
            Entry {
                claims,
                expires_at: now + lifetime,
            },
        );
        Ok((id, Duration::from_secs(lifetime)))
    }

    /// The claims of a live session and when it ends (seconds since the epoch).
    pub fn get(&self, id: &str) -> Option<(Arc<VerifiedClaims>, u64)> {
        let mut entries = self.lock();
        let entry = entries.get(id)?;
        if entry.expires_at > now() {
            Some((entry.claims.clone(), entry.expires_at))
        } else {
            entries.remove(id);
            None
        }
    }

    /// Ends a session; true if it existed.
    pub fn remove(&self, id: &str) -> bool {
        self.lock().remove(id).is_some()
    }

    /// Number of sessions held (live or not yet purged).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads the cookie `name` from the `Cookie` headers.
pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"'))
}

fn set_cookie(name: &str, value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let value =
        format!("{name}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Strict{secure}");
    HeaderValue::from_str(&value).expect("cookie made of token characters")
}

/// `POST /session`: exchanges the verified bearer token for a session cookie.
pub async fn create_session(
    State(state): State<AppState>,
    Extension(claims): Extension<Arc<VerifiedClaims>>,
    headers: HeaderMap,
) -> Response {
    let cookie = &state.config.raw.cookie;
    // A new sign-in (a step-up, say) replaces the session this browser held.
    if let Some(previous) = cookie_value(&headers, &cookie.name)
        && state.cookie_sessions.remove(previous)
    {
        tracing::info!("previous cookie session replaced");
    }
    match state.cookie_sessions.issue(claims.clone(), cookie.max_age) {
        Ok((id, lifetime)) => {
            tracing::info!(
                subject = %claims.subject,
                token = %claims.token_fingerprint,
                lifetime_secs = lifetime.as_secs(),
                "cookie session opened"
            );
            let mut response = StatusCode::NO_CONTENT.into_response();
            response.headers_mut().insert(
                header::SET_COOKIE,
                set_cookie(
                    &cookie.name,
                    &id,
                    lifetime.as_secs(),
                    state.config.secure_cookie,
                ),
            );
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(error) => error.into_response(),
    }
}

/// `DELETE /session`: ends the session named by the cookie and clears the cookie.
pub async fn delete_session(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let cookie = &state.config.raw.cookie;
    if let Some(id) = cookie_value(&headers, &cookie.name) {
        if state.cookie_sessions.remove(id) {
            tracing::info!("cookie session ended");
        }
        // Streams opened with the cookie end with it, and free their slots.
        let ended = state.sse_sessions.end_cookie_streams(id);
        if ended > 0 {
            tracing::info!(
                streams = ended,
                "event streams of the cookie session closed"
            );
        }
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(&cookie.name, "", 0, state.config.secure_cookie),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cookie_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; mcp_session=abc"),
        );
        headers.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie_value(&headers, "mcp_session"), Some("abc"));
        assert_eq!(cookie_value(&headers, "b"), Some("2"));
        assert_eq!(cookie_value(&headers, "c"), None);
    }

    #[test]
    fn cookie_attributes() {
        let value = set_cookie("mcp_session", "x", 60, true);
        assert_eq!(
            value.to_str().unwrap(),
            "mcp_session=x; Max-Age=60; Path=/; HttpOnly; SameSite=Strict; Secure"
        );
    }
}
