//! Where cookie sessions live: in this process ([`CookieSessions`]) or, with
//! `--redis-url`, in Redis shared by every instance ([`crate::cluster::cookies`]).
//!
//! The in-process store answers without waiting, so the authorization layer keeps its
//! fast path; the shared one is looked up asynchronously.
//!
//! Both honour the same caps (`--cookie-max-per-principal`, `--cookie-max-sessions`):
//! past a principal's cap its oldest session ends, past the overall cap a new session is
//! refused with [`Error::CookieStoreFull`] (503). In Redis the caps hold across every
//! instance (see [`crate::cluster::cookies`]); expired sessions there vanish with their
//! key's expiry, so [`CookieStore::purge_expired`] has nothing to do for it.
//!
//! `POST /session` ([`create_session`]) opens a session and `DELETE /session`
//! ([`delete_session`]) ends it, in whichever store the server keeps them.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    Extension,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::{
    auth::{
        claims::VerifiedClaims,
        layer::{CookieLookup, CookieSessionLookup},
    },
    cluster::Cluster,
    config::ValidatedConfig,
    cookie_session::{CookieSessions, cookie_value, set_cookie},
    error::Error,
    legacy_sse::LegacySseSessions,
};

/// A cookie session store.
#[derive(Debug)]
pub(crate) enum CookieStore {
    /// In this process.
    Local(CookieSessions),
    /// In Redis, with the same caps counted over every instance.
    Shared {
        /// The connection to Redis.
        cluster: Arc<Cluster>,
        /// Most sessions of one principal; past it, its oldest ends.
        per_principal: usize,
        /// Most sessions overall; past it, [`Error::CookieStoreFull`].
        capacity: usize,
    },
}

impl Default for CookieStore {
    fn default() -> Self {
        Self::Local(CookieSessions::default())
    }
}

/// The answer of [`CookieStore::lookup`].
pub(crate) enum Lookup {
    /// Known at once: the session's claims and end, or none.
    Ready(Option<(Arc<VerifiedClaims>, u64)>),
    /// To be asked of Redis ([`Cluster::get_cookie`]).
    Shared(Arc<Cluster>),
}

impl CookieStore {
    /// The session `id` if the answer is at hand, else where to ask.
    pub(crate) fn lookup(&self, id: &str) -> Lookup {
        match self {
            Self::Local(sessions) => Lookup::Ready(sessions.get(id)),
            Self::Shared { cluster, .. } => Lookup::Shared(cluster.clone()),
        }
    }

    /// Opens a session for `claims`, at most `max_age` long; returns the id and lifetime.
    ///
    /// When the principal already holds the most sessions allowed, its oldest ends (on
    /// every instance, with the shared store).
    ///
    /// # Errors
    /// [`Error::InvalidSession`] when the token has (almost) expired,
    /// [`Error::CookieStoreFull`] when the store holds as many sessions as it may, or
    /// [`Error::StoreUnavailable`] when the shared store cannot be reached.
    pub(crate) async fn issue(
        &self,
        claims: Arc<VerifiedClaims>,
        max_age: Duration,
    ) -> Result<(String, Duration), Error> {
        match self {
            Self::Local(sessions) => sessions.issue(claims, max_age),
            Self::Shared {
                cluster,
                per_principal,
                capacity,
            } => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let lifetime = claims.expires_at.saturating_sub(now).min(max_age.as_secs());
                if lifetime == 0 {
                    return Err(Error::InvalidSession);
                }
                let id = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
                cluster
                    .put_cookie(&id, &claims, now + lifetime, *per_principal, *capacity)
                    .await?;
                Ok((id, Duration::from_secs(lifetime)))
            }
        }
    }

    /// Ends a session (on every instance, with the shared store); true if it existed.
    ///
    /// # Errors
    /// [`Error::StoreUnavailable`] when the shared store cannot be reached.
    pub(crate) async fn remove(&self, id: &str) -> Result<bool, Error> {
        match self {
            Self::Local(sessions) => Ok(sessions.remove(id)),
            Self::Shared { cluster, .. } => cluster.remove_cookie(id).await,
        }
    }

    /// Removes the in-process sessions whose end has come; returns how many. Redis
    /// removes the shared ones itself (each key expires at the session's end).
    pub(crate) fn purge_expired(&self) -> usize {
        match self {
            Self::Local(sessions) => sessions.purge_expired(),
            Self::Shared { .. } => 0,
        }
    }
}

/// A [`CookieStore`] with the name of its cookie: where the authorization layer looks
/// up the session a request's cookie names.
#[derive(Debug)]
pub(crate) struct NamedCookieStore {
    /// The sessions.
    pub(crate) store: Arc<CookieStore>,
    /// The cookie's name (with its `__Host-` prefix, if any).
    pub(crate) cookie_name: String,
}

impl CookieSessionLookup for NamedCookieStore {
    fn find(&self, headers: &HeaderMap) -> Option<CookieLookup> {
        let id = cookie_value(headers, &self.cookie_name)?;
        Some(match self.store.lookup(id) {
            Lookup::Ready(found) => CookieLookup::Ready(found),
            Lookup::Shared(cluster) => {
                let id = id.to_string();
                CookieLookup::Pending(Box::pin(async move { cluster.get_cookie(&id).await }))
            }
        })
    }
}

/// What the cookie session routes (`POST /session`, `DELETE /session`) work with.
#[derive(Clone, Debug)]
pub(crate) struct CookieRouteState {
    /// The configuration (the cookie's name, attributes and longest life).
    pub(crate) config: Arc<ValidatedConfig>,
    /// The sessions.
    pub(crate) cookie_sessions: Arc<CookieStore>,
    /// The legacy SSE sessions, whose streams opened with a cookie end with it.
    pub(crate) sse_sessions: Arc<LegacySseSessions>,
}

/// `POST /session`: exchanges the verified bearer token for a session cookie.
pub(crate) async fn create_session(
    State(state): State<CookieRouteState>,
    Extension(claims): Extension<Arc<VerifiedClaims>>,
    headers: HeaderMap,
) -> Response {
    let cookie = &state.config.raw.cookie;
    let name = &state.config.cookie_name;
    // A new sign-in (a step-up, say) replaces the session this browser held.
    if let Some(previous) = cookie_value(&headers, name) {
        match state.cookie_sessions.remove(previous).await {
            Ok(true) => tracing::info!("previous cookie session replaced"),
            Ok(false) => {}
            Err(error) => return error.into_response(),
        }
    }
    match state
        .cookie_sessions
        .issue(claims.clone(), cookie.max_age)
        .await
    {
        Ok((id, lifetime)) => {
            tracing::info!(
                subject = %claims.subject,
                token = %claims.token_fingerprint,
                dpop_jkt = claims.dpop_jkt.as_deref().unwrap_or("none"),
                lifetime_secs = lifetime.as_secs(),
                "cookie session opened"
            );
            let mut response = StatusCode::NO_CONTENT.into_response();
            response.headers_mut().insert(
                header::SET_COOKIE,
                set_cookie(name, &id, lifetime.as_secs(), state.config.secure_cookie),
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
pub(crate) async fn delete_session(
    State(state): State<CookieRouteState>,
    headers: HeaderMap,
) -> Response {
    let name = &state.config.cookie_name;
    if let Some(id) = cookie_value(&headers, name) {
        // With shared state this also ends the streams other instances hold.
        match state.cookie_sessions.remove(id).await {
            Ok(true) => tracing::info!("cookie session ended"),
            Ok(false) => {}
            Err(error) => return error.into_response(),
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
        set_cookie(name, "", 0, state.config.secure_cookie),
    );
    response
}
