//! Cluster-wide stream limits: each open event stream holds a lease in the sorted set
//! `mcp:streams:<SHA-256 of the principal>`, scored by the lease's expiry.
//!
//! Taking a lease is one Lua script (atomic in Redis): drop the expired leases
//! (`ZREMRANGEBYSCORE`), count the rest (`ZCARD`), add the new one (`ZADD`) if under
//! the limit. The instance holding a stream renews its lease every
//! [`RENEW_EVERY`] and removes it when the stream ends, so the streams of an instance
//! that dies stop counting within [`LEASE_TTL`].

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use super::{Cluster, sha256_hex, unavailable};
use crate::{auth::claims::Principal, error::Error};

/// How long a lease lives unless renewed.
pub(crate) const LEASE_TTL: Duration = Duration::from_secs(30);
/// How often the holding instance renews its leases.
pub(crate) const RENEW_EVERY: Duration = Duration::from_secs(10);

/// Drops the expired members of `KEYS[1]`, then adds `ARGV[3]` scored `ARGV[2]` if
/// fewer than `ARGV[4]` remain (1), or not (0); the set expires after `ARGV[5]` ms.
pub(super) const ACQUIRE: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
";

pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ttl_ms() -> u64 {
    u64::try_from(LEASE_TTL.as_millis()).unwrap_or(u64::MAX)
}

/// Leases this instance holds: (sorted set, member).
#[derive(Debug, Default)]
pub(crate) struct HeldLeases(Mutex<Vec<(String, String)>>);

impl HeldLeases {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, String)>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A stream's place in its principal's cluster-wide count; dropping it gives it back.
#[derive(Debug)]
pub(crate) struct Lease {
    cluster: Arc<Cluster>,
    key: String,
    member: String,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.cluster
            .leases
            .lock()
            .retain(|(_, member)| *member != self.member);
        let cluster = self.cluster.clone();
        let key = std::mem::take(&mut self.key);
        let member = std::mem::take(&mut self.member);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let Ok(mut conn) = cluster.conn() else { return };
                let _ = redis::cmd("ZREM")
                    .arg(key)
                    .arg(member)
                    .query_async::<usize>(&mut conn)
                    .await;
            });
        }
    }
}

impl Cluster {
    /// Takes a lease for one more stream of `principal`, if it holds fewer than `limit`
    /// over all instances.
    ///
    /// # Errors
    /// [`Error::TooManyStreams`] at the limit, [`Error::StoreUnavailable`] when Redis
    /// cannot be reached.
    pub(crate) async fn lease_stream(
        self: &Arc<Self>,
        principal: &Principal,
        limit: usize,
    ) -> Result<Lease, Error> {
        let key = format!(
            "mcp:streams:{}",
            sha256_hex(&format!("{}\n{}", principal.issuer, principal.subject))
        );
        let member = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
        let now = now_ms();
        let mut conn = self.conn()?;
        let taken: i64 = redis::Script::new(ACQUIRE)
            .key(&key)
            .arg(now)
            .arg(now + ttl_ms())
            .arg(&member)
            .arg(limit)
            .arg(ttl_ms() * 2)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if taken == 0 {
            tracing::info!(subject = %principal.subject, limit, "event stream refused: cluster-wide per-principal limit");
            return Err(Error::TooManyStreams { limit });
        }
        self.leases.lock().push((key.clone(), member.clone()));
        Ok(Lease {
            cluster: self.clone(),
            key,
            member,
        })
    }

    /// Pushes the expiry of every lease this instance holds [`LEASE_TTL`] ahead (and
    /// puts them back after Redis lost them in a restart).
    pub(super) async fn renew_leases(&self) {
        let held = self.leases.lock().clone();
        if held.is_empty() {
            return;
        }
        let Ok(mut conn) = self.conn() else { return };
        let expiry = now_ms() + ttl_ms();
        let mut pipe = redis::pipe();
        for (key, member) in &held {
            pipe.cmd("ZADD")
                .arg(key)
                .arg(expiry)
                .arg(member)
                .ignore()
                .cmd("PEXPIRE")
                .arg(key)
                .arg(ttl_ms() * 2)
                .ignore();
        }
        if let Err(error) = pipe.query_async::<()>(&mut conn).await {
            tracing::debug!(kind = ?error.kind(), "could not renew stream leases");
        }
    }
}
