//! Cookie sessions for browser clients of the legacy SSE transport.
//!
//! `EventSource` cannot send an `Authorization` header, so `POST /session` exchanges a
//! valid bearer token for a cookie. The cookie value is an opaque random id (256 bits)
//! mapped here to the verified claims and an expiry; it is never the token. The session
//! lives no longer than the token nor than [`crate::config::CookieConfig::max_age`].
//! `DELETE /session` ends it, and the event streams opened with it. The cookie is
//! `HttpOnly`, `SameSite=Strict`, `Path=/`, and on https `Secure` with the `__Host-`
//! name prefix. On plain http (e.g. `http://localhost`) neither applies, and cookies
//! are shared by every port of the host: see [`cookie_value`] for what a cookie set by
//! another port can and cannot do.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::http::{HeaderMap, HeaderValue, header};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use cookie::{Cookie, SameSite};

use crate::{
    auth::claims::{Principal, VerifiedClaims},
    error::Error,
};

struct Entry {
    claims: Arc<VerifiedClaims>,
    principal: Principal,
    /// Key in the expiry index: (end in seconds since the epoch, insertion number).
    deadline: (u64, u64),
}

#[derive(Default)]
struct Store {
    entries: HashMap<String, Entry>,
    /// Ids by deadline: the expired ones are at the front.
    expiry: BTreeMap<(u64, u64), String>,
    /// Each principal's ids, oldest first (at most the per-principal limit).
    by_principal: HashMap<Principal, VecDeque<String>>,
    next: u64,
}

impl Store {
    fn remove(&mut self, id: &str) -> Option<Entry> {
        let entry = self.entries.remove(id)?;
        self.expiry.remove(&entry.deadline);
        if let Some(ids) = self.by_principal.get_mut(&entry.principal) {
            ids.retain(|other| other != id);
            if ids.is_empty() {
                self.by_principal.remove(&entry.principal);
            }
        }
        Some(entry)
    }

    /// Removes every session whose end has come; each removal is O(log n), and only
    /// expired sessions are visited.
    fn purge(&mut self, now: u64) -> usize {
        let mut purged = 0;
        while let Some(entry) = self.expiry.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let id = entry.remove();
            self.remove(&id);
            purged += 1;
        }
        purged
    }
}

/// Server-side map from cookie values to verified principals.
///
/// Bounded two ways: at most `per_principal` sessions per principal (opening one more
/// ends that principal's oldest, so a principal can only crowd out itself), and at most
/// `capacity` overall (past it, [`Error::CookieStoreFull`], a 503). Each session is
/// removed at its end: sessions are indexed by deadline, and expired ones are removed
/// by [`CookieSessions::purge_expired`] (run every second by the server) and before
/// every insertion. Lookup, insertion and removal are hash-map operations plus an
/// ordered-index update, under one short lock.
pub(crate) struct CookieSessions {
    store: Mutex<Store>,
    per_principal: usize,
    capacity: usize,
}

impl Default for CookieSessions {
    fn default() -> Self {
        Self::new(
            crate::config::DEFAULT_COOKIE_SESSIONS_PER_PRINCIPAL,
            crate::config::DEFAULT_COOKIE_SESSIONS,
        )
    }
}

impl std::fmt::Debug for CookieSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieSessions")
            .field("len", &self.lock().entries.len())
            .field("per_principal", &self.per_principal)
            .field("capacity", &self.capacity)
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
    /// An empty store holding at most `per_principal` sessions per principal and
    /// `capacity` overall.
    pub(crate) fn new(per_principal: usize, capacity: usize) -> Self {
        Self {
            store: Mutex::default(),
            per_principal: per_principal.max(1),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens a session for `claims`, at most `max_age` long; returns the id and lifetime.
    /// When the principal already holds the most sessions allowed, its oldest ends.
    ///
    /// # Errors
    /// [`Error::InvalidSession`] when the token has (almost) expired, or
    /// [`Error::CookieStoreFull`] when the store holds as many sessions as it may.
    pub(crate) fn issue(
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
        let principal = claims.principal();
        let mut store = self.lock();
        store.purge(now);
        let held = store.by_principal.get(&principal).map_or(0, VecDeque::len);
        if held >= self.per_principal {
            if let Some(oldest) = store
                .by_principal
                .get_mut(&principal)
                .and_then(VecDeque::pop_front)
            {
                store.remove(&oldest);
                tracing::info!(
                    subject = %principal.subject,
                    limit = self.per_principal,
                    "oldest cookie session of the principal ended to make room"
                );
            }
        } else if store.entries.len() >= self.capacity {
            return Err(Error::CookieStoreFull);
        }
        let deadline = (now + lifetime, store.next);
        store.next += 1;
        store.expiry.insert(deadline, id.clone());
        store
            .by_principal
            .entry(principal.clone())
            .or_default()
            .push_back(id.clone());
        store.entries.insert(
            id.clone(),
            Entry {
                claims,
                principal,
                deadline,
            },
        );
        Ok((id, Duration::from_secs(lifetime)))
    }

    /// The claims of a live session and when it ends (seconds since the epoch).
    pub(crate) fn get(&self, id: &str) -> Option<(Arc<VerifiedClaims>, u64)> {
        let now = now();
        let mut store = self.lock();
        let entry = store.entries.get(id)?;
        if entry.deadline.0 > now {
            Some((entry.claims.clone(), entry.deadline.0))
        } else {
            store.remove(id);
            None
        }
    }

    /// Ends a session; true if it existed.
    pub(crate) fn remove(&self, id: &str) -> bool {
        self.lock().remove(id).is_some()
    }

    /// Removes the sessions whose end has come; returns how many.
    pub(crate) fn purge_expired(&self) -> usize {
        self.lock().purge(now())
    }

    #[cfg(test)]
    /// Sessions of `principal` held.
    pub(crate) fn count_of(&self, principal: &Principal) -> usize {
        self.lock()
            .by_principal
            .get(principal)
            .map_or(0, VecDeque::len)
    }

    #[cfg(test)]
    /// Number of sessions held (live or not yet purged).
    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

/// Reads the cookie `name` from the `Cookie` headers.
///
/// # Security
/// A request carrying `name` more than once is answered as if it carried none (`None`).
/// Cookies are not isolated by port (RFC 6265 §8.5): a page on another port of the same
/// host can set a cookie of the same name (with a longer `Path`, so the browser sends
/// it first), hoping the server takes its value ("cookie tossing"). Taking the first,
/// or the one that validates, would let the tossed cookie win or probe; refusing both
/// means the worst a tossed cookie can do is sign the browser out of the cookie session
/// (`POST /session` and `DELETE /session` clear it again).
pub(crate) fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut values = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .filter(|cookie| cookie.name() == name)
        .filter_map(|cookie| cookie.value_raw())
        .map(|value| value.trim_matches('"'));
    let first = values.next()?;
    if values.next().is_some() {
        tracing::info!(
            cookie = name,
            "request with the session cookie more than once refused (possible cookie tossing)"
        );
        return None;
    }
    Some(first)
}

/// The `Set-Cookie` value of the session cookie `name`.
pub(crate) fn set_cookie(name: &str, value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let cookie = Cookie::build((name, value))
        .max_age(cookie::time::Duration::seconds(
            i64::try_from(max_age).unwrap_or(i64::MAX),
        ))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .build();
    HeaderValue::from_str(&cookie.to_string()).expect("cookie made of token characters")
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

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
    fn duplicate_cookie_names_are_refused() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("mcp_session=tossed; a=1; mcp_session=real"),
        );
        assert_eq!(cookie_value(&headers, "mcp_session"), None);
        assert_eq!(cookie_value(&headers, "a"), Some("1"));
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("mcp_session=x"));
        headers.append(header::COOKIE, HeaderValue::from_static("mcp_session=x"));
        assert_eq!(cookie_value(&headers, "mcp_session"), None);
    }

    fn claims(subject: &str, lifetime: u64) -> Arc<VerifiedClaims> {
        let mut claims = VerifiedClaims::with_scopes("mcp:tools");
        claims.subject = subject.into();
        claims.expires_at = now() + lifetime;
        Arc::new(claims)
    }

    fn principal(subject: &str) -> Principal {
        claims(subject, 60).principal()
    }

    #[test]
    fn a_principal_past_its_limit_ends_its_oldest_session() {
        let store = CookieSessions::new(2, 10);
        let hour = Duration::from_secs(3600);
        let first = store.issue(claims("alice", 600), hour).unwrap().0;
        let second = store.issue(claims("alice", 600), hour).unwrap().0;
        let bob = store.issue(claims("bob", 600), hour).unwrap().0;
        let third = store.issue(claims("alice", 600), hour).unwrap().0;
        assert!(store.get(&first).is_none(), "the oldest ended");
        assert!(store.get(&second).is_some());
        assert!(store.get(&third).is_some());
        assert!(store.get(&bob).is_some(), "another principal untouched");
        assert_eq!(store.count_of(&principal("alice")), 2);
        assert_eq!(store.len(), 3);
        assert!(store.remove(&second));
        assert_eq!(store.count_of(&principal("alice")), 1);
        assert!(!store.remove(&second));
    }

    #[test]
    fn a_full_store_refuses_with_503_not_500() {
        let store = CookieSessions::new(5, 2);
        let hour = Duration::from_secs(3600);
        store.issue(claims("alice", 600), hour).unwrap();
        store.issue(claims("bob", 600), hour).unwrap();
        let error = store.issue(claims("carol", 600), hour).unwrap_err();
        assert!(matches!(error, Error::CookieStoreFull));
        assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
        // A principal at its own limit replaces its oldest even when the store is full.
        let store = CookieSessions::new(1, 1);
        store.issue(claims("alice", 600), hour).unwrap();
        store.issue(claims("alice", 600), hour).unwrap();
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn sessions_are_removed_at_their_deadline() {
        let store = CookieSessions::new(5, 2);
        let hour = Duration::from_secs(3600);
        let short = store.issue(claims("alice", 1), hour).unwrap().0;
        let long = store.issue(claims("bob", 600), hour).unwrap().0;
        assert_eq!(store.purge_expired(), 0);
        std::thread::sleep(Duration::from_millis(2100));
        assert_eq!(store.purge_expired(), 1);
        assert_eq!(store.len(), 1);
        assert_eq!(store.count_of(&principal("alice")), 0);
        assert!(store.get(&short).is_none());
        assert!(store.get(&long).is_some());
        // The freed place is usable.
        store.issue(claims("carol", 600), hour).unwrap();
    }

    #[test]
    fn cookie_attributes() {
        let attributes = |value: HeaderValue| {
            let mut attributes: Vec<String> = value
                .to_str()
                .unwrap()
                .split(';')
                .map(|part| part.trim().to_string())
                .collect();
            let pair = attributes.remove(0);
            attributes.sort();
            (pair, attributes)
        };
        assert_eq!(
            attributes(set_cookie("__Host-mcp_session", "x", 60, true)),
            (
                "__Host-mcp_session=x".to_string(),
                [
                    "HttpOnly",
                    "Max-Age=60",
                    "Path=/",
                    "SameSite=Strict",
                    "Secure"
                ]
                .map(String::from)
                .to_vec()
            )
        );
        assert_eq!(
            attributes(set_cookie("mcp_session", "", 0, false)),
            (
                "mcp_session=".to_string(),
                ["HttpOnly", "Max-Age=0", "Path=/", "SameSite=Strict"]
                    .map(String::from)
                    .to_vec()
            )
        );
    }

    #[test]
    fn cookie_values_are_read_as_sent() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=\"q\";b=;  c=x=y== ; junk"),
        );
        assert_eq!(cookie_value(&headers, "a"), Some("q"));
        assert_eq!(cookie_value(&headers, "b"), Some(""));
        assert_eq!(cookie_value(&headers, "c"), Some("x=y=="));
        assert_eq!(cookie_value(&headers, "junk"), None);
    }
}
