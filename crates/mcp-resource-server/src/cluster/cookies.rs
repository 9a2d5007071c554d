//! Cookie sessions in Redis: `mcp:cookie:<SHA-256 of the cookie value>` holds the
//! verified claims and the session's end, and expires at that end (`SET … EX`).
//!
//! Caps, counted over every instance: `mcp:cookies-of:<SHA-256 of the principal>` is a
//! sorted set of the principal's session hashes scored by when they were opened (so
//! the oldest is first), `mcp:cookies` the set of every session hash scored by its end.
//! Opening a session is one Lua script: drop ended sessions from both sets, end the
//! principal's oldest while it holds its cap (their streams end through
//! `mcp:cookie-ended`), else refuse when the overall cap is reached, then store the
//! session and add it to both sets. The script touches the keys of the principal's
//! sessions by name, so it needs a single Redis (not Redis Cluster).
//!
//! # Security
//! The raw cookie value is never stored nor logged: whoever reads Redis learns who is
//! signed in, not how to act as them.

use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};

use super::{Cluster, sha256_hex, unavailable};
use crate::{
    auth::claims::{Principal, VerifiedClaims},
    error::Error,
};

const PREFIX: &str = "mcp:cookie:";
const ALL: &str = "mcp:cookies";

/// KEYS: session key, principal's set, overall set. ARGV: value, lifetime (s), end (s),
/// now (s), per-principal cap, overall cap, session hash, now (ms), session key prefix.
/// Returns the hashes of the sessions ended to make room, or nil when full.
const ISSUE: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[4])
for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if redis.call('EXISTS', ARGV[9] .. m) == 0 then
    redis.call('ZREM', KEYS[2], m)
    redis.call('ZREM', KEYS[3], m)
  end
end
local ended = {}
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then
  while redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) do
    local oldest = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
    redis.call('ZREM', KEYS[2], oldest)
    redis.call('ZREM', KEYS[3], oldest)
    redis.call('DEL', ARGV[9] .. oldest)
    table.insert(ended, oldest)
  end
elseif redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[6]) then
  return false
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[8], ARGV[7])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[7])
if redis.call('TTL', KEYS[2]) < tonumber(ARGV[2]) then
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end
return ended
";

fn principal_key(principal: &Principal) -> String {
    format!(
        "mcp:cookies-of:{}",
        sha256_hex(&format!("{}\n{}", principal.issuer, principal.subject))
    )
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[derive(Serialize, Deserialize)]
struct Stored {
    claims: VerifiedClaims,
    expires_at: u64,
}

fn key(hash: &str) -> String {
    format!("{PREFIX}{hash}")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Cluster {
    /// Stores the session `id` for `claims` until `expires_at` (seconds since the
    /// epoch), ending the principal's oldest sessions while it holds `per_principal`.
    ///
    /// # Errors
    /// [`Error::CookieStoreFull`] when `capacity` sessions are live over all instances,
    /// [`Error::StoreUnavailable`] when Redis cannot be reached.
    pub(crate) async fn put_cookie(
        &self,
        id: &str,
        claims: &VerifiedClaims,
        expires_at: u64,
        per_principal: usize,
        capacity: usize,
    ) -> Result<(), Error> {
        let now = now();
        let lifetime = expires_at.saturating_sub(now).max(1);
        let value = serde_json::to_string(&Stored {
            claims: claims.clone(),
            expires_at,
        })
        .map_err(|e| Error::Internal(format!("cannot serialise claims: {e}")))?;
        let hash = sha256_hex(id);
        let mut conn = self.conn()?;
        let ended: Option<Vec<String>> = redis::Script::new(ISSUE)
            .key(key(&hash))
            .key(principal_key(&claims.principal()))
            .key(ALL)
            .arg(value)
            .arg(lifetime)
            .arg(expires_at)
            .arg(now)
            .arg(per_principal.max(1))
            .arg(capacity.max(1))
            .arg(&hash)
            .arg(now_ms())
            .arg(PREFIX)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let Some(ended) = ended else {
            return Err(Error::CookieStoreFull);
        };
        for oldest in ended {
            tracing::info!(
                subject = %claims.subject,
                limit = per_principal,
                "oldest cookie session of the principal ended to make room"
            );
            self.announce_cookie_ended(&oldest).await?;
        }
        Ok(())
    }

    /// The claims of the live session `id` and its end.
    ///
    /// # Errors
    /// [`Error::StoreUnavailable`] when Redis cannot be reached.
    pub(crate) async fn get_cookie(
        &self,
        id: &str,
    ) -> Result<Option<(Arc<VerifiedClaims>, u64)>, Error> {
        let mut conn = self.conn()?;
        let value: Option<String> = redis::cmd("GET")
            .arg(key(&sha256_hex(id)))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let Some(value) = value else { return Ok(None) };
        let stored: Stored = match serde_json::from_str(&value) {
            Ok(stored) => stored,
            Err(error) => {
                tracing::warn!(%error, "unreadable cookie session in redis; refused");
                return Ok(None);
            }
        };
        Ok((stored.expires_at > now()).then(|| (Arc::new(stored.claims), stored.expires_at)))
    }

    /// Ends the session `id` on every instance (its key, then its streams through the
    /// `mcp:cookie-ended` channel); true if it existed.
    ///
    /// # Errors
    /// [`Error::StoreUnavailable`] when Redis cannot be reached.
    pub(crate) async fn remove_cookie(&self, id: &str) -> Result<bool, Error> {
        let hash = sha256_hex(id);
        let mut conn = self.conn()?;
        let (removed, _): (usize, usize) = redis::pipe()
            .atomic()
            .cmd("DEL")
            .arg(key(&hash))
            .cmd("ZREM")
            .arg(ALL)
            .arg(&hash)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        self.announce_cookie_ended(&hash).await?;
        Ok(removed > 0)
    }
}
