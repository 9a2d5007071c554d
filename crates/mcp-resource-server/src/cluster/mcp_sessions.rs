//! Streamable HTTP sessions across instances: **re-created**, not forwarded.
//!
//! The instance answering `initialize` stores what rmcp needs to re-create the session
//! (the client's `initialize` parameters: protocol version, capabilities, client info)
//! as `mcp:session:<id>` through rmcp's [`SessionStore`] hook, and the principal that
//! owns it as `mcp:session-owner:<id>`. A request for that session landing on another
//! instance is checked against the stored owner (once per copy an instance holds: see
//! [`crate::mcp_session_owners`]), then rmcp replays the stored `initialize` into a fresh
//! handler there. The tools keep no state between calls, so a re-created session
//! answers exactly as the original would; re-creating needs no hop to the first
//! instance and survives its death, where forwarding would not.
//!
//! # Lifetime and the cluster-wide cap
//! Both keys expire after the sessions' idle timeout (plus a margin). Each instance
//! notes the sessions it served and pushes their expiry ahead in one pipeline every
//! [`super::leases::RENEW_EVERY`] ([`Cluster::renew_sessions`]), not on
//! every request; a session no instance served for the idle timeout thus ends in Redis
//! as it does in one process.
//!
//! The sessions of a principal are the sorted set `mcp:sessions-of:<SHA-256 of the
//! principal>`, scored by expiry. An `initialize` first takes a place there with one
//! Lua script (drop the expired, count, add a pending member if under
//! `--max-mcp-sessions-per-principal`), so the cap counts the sessions of every
//! instance: past it, 429 on whichever instance the request lands. Once rmcp created
//! the session, the pending member is swapped for the session id in the same pipeline
//! that records the owner; a request that created no session gives its place back (a
//! place left behind by a crash expires after [`PENDING_TTL`]).
//!
//! `DELETE /mcp` on any instance removes the keys and the session's place and
//! announces the end on `mcp:session-ended`; every instance then drops its copy.
//!
//! # Messages a server sends outside any request
//! Replies always travel on the response of the POST that asked. A message a copy's
//! handler sends on its own (a notification, a request to the client) is routed to the
//! instance holding the session's standalone `GET` stream, and the client's response
//! back to the copy that asked: see [`super::session_messages`].

use std::{
    collections::HashMap,
    sync::{Mutex, OnceLock, PoisonError},
    time::Duration,
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use futures::future::BoxFuture;
use rmcp::transport::streamable_http_server::session::{
    SessionId, SessionState, SessionStore, SessionStoreError,
};

use super::{
    Cluster,
    leases::{ACQUIRE, RENEW_EVERY, now_ms},
    sha256_hex, unavailable,
};
use crate::{auth::claims::Principal, error::Error};

/// Channel on which ended Streamable HTTP sessions are announced (payload: the id).
pub(crate) const SESSION_ENDED: &str = "mcp:session-ended";

/// This instance's Streamable HTTP sessions, as the ends announced by other instances
/// reach them ([`Cluster::follow_mcp_sessions`]).
pub(crate) trait LocalMcpSessions: Send + Sync {
    /// How long a session with no message lives.
    fn idle_timeout(&self) -> Option<Duration>;

    /// Closes this instance's copy of session `id`.
    fn close(&self, id: SessionId) -> BoxFuture<'_, ()>;
}

/// How long a session lives in Redis without an idle timeout.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a place taken by an `initialize` waits for its session id.
pub(crate) const PENDING_TTL: Duration = Duration::from_secs(30);

fn sessions_of_key(principal: &Principal) -> String {
    format!(
        "mcp:sessions-of:{}",
        sha256_hex(&format!("{}\n{}", principal.issuer, principal.subject))
    )
}

fn ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Sessions' lifetime in Redis, and the sessions this instance served since their last
/// renewal (id → the principal's set, if any).
#[derive(Debug, Default)]
pub(crate) struct Activity {
    ttl: OnceLock<Duration>,
    served: Mutex<HashMap<String, Option<String>>>,
}

impl Activity {
    fn served(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<String>>> {
        self.served.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A place in a principal's cluster-wide count of sessions, taken for an `initialize`.
#[derive(Debug)]
pub(crate) struct SessionPlace {
    key: String,
    member: String,
}

fn state_key(id: &str) -> String {
    format!("mcp:session:{id}")
}

fn owner_key(id: &str) -> String {
    format!("mcp:session-owner:{id}")
}

/// rmcp's session store in Redis.
#[derive(Debug, Clone)]
pub(crate) struct RedisSessionStore(pub std::sync::Arc<Cluster>);

#[async_trait::async_trait]
impl SessionStore for RedisSessionStore {
    async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        let mut conn = self.0.conn()?;
        let value: Option<String> = redis::cmd("GET")
            .arg(state_key(session_id))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(match value {
            Some(value) => Some(serde_json::from_str(&value)?),
            None => None,
        })
    }

    async fn store(&self, session_id: &str, state: &SessionState) -> Result<(), SessionStoreError> {
        let value = serde_json::to_string(state)?;
        let mut conn = self.0.conn()?;
        redis::cmd("SET")
            .arg(state_key(session_id))
            .arg(value)
            .arg("PX")
            .arg(ms(self.0.session_ttl()))
            .query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
        let mut conn = self.0.conn()?;
        redis::cmd("DEL")
            .arg(state_key(session_id))
            .query_async::<usize>(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

impl Cluster {
    /// Sessions live in Redis for `idle` (the idle timeout of a session copy) plus
    /// margin for the batched renewal; without an idle timeout, [`SESSION_TTL`].
    pub(super) fn set_session_idle_timeout(&self, idle: Option<Duration>) {
        let ttl = idle.map_or(SESSION_TTL, |idle| idle + RENEW_EVERY * 2);
        let _ = self.mcp_activity.ttl.set(ttl);
    }

    pub(super) fn session_ttl(&self) -> Duration {
        self.mcp_activity.ttl.get().copied().unwrap_or(SESSION_TTL)
    }

    /// Takes a place for a new session of `principal` if it holds fewer than `limit`
    /// over all instances.
    ///
    /// # Errors
    /// [`Error::TooManySessions`] at the limit, [`Error::StoreUnavailable`] when Redis
    /// cannot be reached.
    pub(crate) async fn reserve_session(
        &self,
        principal: &Principal,
        limit: usize,
    ) -> Result<SessionPlace, Error> {
        let key = sessions_of_key(principal);
        let member = format!(
            "pending:{}",
            URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>())
        );
        let now = now_ms();
        let mut conn = self.conn()?;
        let taken: i64 = redis::Script::new(ACQUIRE)
            .key(&key)
            .arg(now)
            .arg(now + ms(PENDING_TTL))
            .arg(&member)
            .arg(limit)
            .arg(ms(self.session_ttl()) * 2)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if taken == 0 {
            tracing::info!(subject = %principal.subject, limit, "new MCP session refused: cluster-wide per-principal limit");
            return Err(Error::TooManySessions { limit });
        }
        Ok(SessionPlace { key, member })
    }

    /// Gives back a place no session was created in.
    pub(crate) async fn release_session_place(&self, place: SessionPlace) {
        let Ok(mut conn) = self.conn() else { return };
        if let Err(error) = redis::cmd("ZREM")
            .arg(&place.key)
            .arg(&place.member)
            .query_async::<usize>(&mut conn)
            .await
        {
            tracing::debug!(kind = ?error.kind(), "session place not given back; it expires");
        }
    }

    /// Records `principal` (`None` with authorization off) as the owner of Streamable
    /// HTTP session `id`, in the place taken for it.
    ///
    /// # Errors
    /// [`Error::StoreUnavailable`] when Redis cannot be reached.
    pub(crate) async fn set_session_owner(
        &self,
        id: &str,
        principal: Option<&Principal>,
        place: Option<SessionPlace>,
    ) -> Result<(), Error> {
        let value = serde_json::to_string(&principal)
            .map_err(|e| Error::Internal(format!("cannot serialise a principal: {e}")))?;
        let ttl = ms(self.session_ttl());
        let mut conn = self.conn()?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(owner_key(id))
            .arg(value)
            .arg("PX")
            .arg(ttl)
            .ignore();
        if let Some(place) = &place {
            pipe.cmd("ZREM")
                .arg(&place.key)
                .arg(&place.member)
                .ignore()
                .cmd("ZADD")
                .arg(&place.key)
                .arg(now_ms() + ttl)
                .arg(id)
                .ignore()
                .cmd("PEXPIRE")
                .arg(&place.key)
                .arg(ttl * 2)
                .ignore();
        }
        pipe.query_async::<()>(&mut conn).await.map_err(unavailable)
    }

    /// The owner of Streamable HTTP session `id` (itself `None` with authorization
    /// off), if the session lives.
    ///
    /// # Errors
    /// [`Error::StoreUnavailable`] when Redis cannot be reached.
    pub(crate) async fn session_owner(&self, id: &str) -> Result<Option<Option<Principal>>, Error> {
        let mut conn = self.conn()?;
        let value: Option<String> = redis::cmd("GET")
            .arg(owner_key(id))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(value.and_then(|v| serde_json::from_str(&v).ok()))
    }

    /// Notes that this instance served session `id` of `principal`: its expiry in
    /// Redis is pushed ahead at the next renewal. No Redis round trip.
    pub(crate) fn session_served(&self, id: &str, principal: Option<&Principal>) {
        let mut served = self.mcp_activity.served();
        if !served.contains_key(id) {
            served.insert(id.to_string(), principal.map(sessions_of_key));
        }
    }

    /// Pushes the expiry of every session served since the last call
    /// [`Cluster::session_ttl`] ahead, in one pipeline.
    pub(super) async fn renew_sessions(&self) {
        let served = std::mem::take(&mut *self.mcp_activity.served());
        if served.is_empty() {
            return;
        }
        let Ok(mut conn) = self.conn() else { return };
        let ttl = ms(self.session_ttl());
        let expiry = now_ms() + ttl;
        let mut pipe = redis::pipe();
        for (id, key) in &served {
            pipe.cmd("PEXPIRE")
                .arg(owner_key(id))
                .arg(ttl)
                .ignore()
                .cmd("PEXPIRE")
                .arg(state_key(id))
                .arg(ttl)
                .ignore();
            if let Some(key) = key {
                pipe.cmd("ZADD")
                    .arg(key)
                    .arg("XX")
                    .arg(expiry)
                    .arg(id)
                    .ignore()
                    .cmd("PEXPIRE")
                    .arg(key)
                    .arg(ttl * 2)
                    .ignore();
            }
        }
        if let Err(error) = pipe.query_async::<()>(&mut conn).await {
            tracing::debug!(kind = ?error.kind(), "could not renew MCP sessions");
        }
    }

    /// Ends Streamable HTTP session `id` of `principal` on every instance.
    ///
    /// # Errors
    /// [`Error::StoreUnavailable`] when Redis cannot be reached.
    pub(crate) async fn end_session(
        &self,
        id: &str,
        principal: Option<&Principal>,
    ) -> Result<(), Error> {
        self.mcp_activity.served().remove(id);
        let mut conn = self.conn()?;
        let mut pipe = redis::pipe();
        pipe.cmd("DEL")
            .arg(owner_key(id))
            .arg(state_key(id))
            .ignore();
        if let Some(principal) = principal {
            pipe.cmd("ZREM")
                .arg(sessions_of_key(principal))
                .arg(id)
                .ignore();
        }
        pipe.cmd("PUBLISH")
            .arg(SESSION_ENDED)
            .arg(id)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_principal_set_is_named_by_a_hash_of_issuer_and_subject() {
        let principal = |issuer: &str, subject: &str| Principal {
            issuer: issuer.into(),
            subject: subject.into(),
        };
        let key = sessions_of_key(&principal("https://as", "alice"));
        assert!(key.starts_with("mcp:sessions-of:"));
        assert!(!key.contains("alice"));
        assert_ne!(key, sessions_of_key(&principal("https://other", "alice")));
    }
}
