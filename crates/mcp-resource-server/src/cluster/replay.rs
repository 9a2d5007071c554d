//! DPoP proofs seen by any instance: each accepted proof's replay key is set in Redis
//! with `SET mcp:dpop:<key> 1 NX PX <ms>`, one round trip that both checks and records
//! it, living as long as the proof could still be accepted. A proof used on one
//! instance and replayed to another finds its key there and is refused.
//!
//! Each instance's own replay cache ([`crate::auth::replay`]) stays in front as a first
//! filter: it refuses a replay to the same instance without a round trip and holds
//! each principal to its share before anything reaches Redis, so what one principal
//! can put in Redis is bounded by its share on each instance.
//!
//! While Redis is away, DPoP requests are refused (503 with `Retry-After`): without
//! the shared record a proof could be replayed to another instance, so this fails
//! closed. Bearer requests are not affected.

use futures::future::BoxFuture;

use super::{Cluster, unavailable};
use crate::{auth::replay::SharedReplay, error::Error};

/// The Redis key of a proof's replay key (a digest of the proof key's thumbprint and
/// its `jti`, never the proof itself).
fn proof_key(replay_key: u128) -> String {
    format!("mcp:dpop:{replay_key:032x}")
}

impl SharedReplay for Cluster {
    /// # Errors
    /// [`Error::StoreUnavailable`] when Redis cannot be reached.
    fn record_proof(
        &self,
        replay_key: u128,
        expires_at: u64,
        now: u64,
    ) -> BoxFuture<'_, Result<bool, Error>> {
        Box::pin(async move {
            let mut conn = self.conn()?;
            // At least a second: a key set with no life would be no record at all.
            let ttl_ms = expires_at.saturating_sub(now).max(1).saturating_mul(1000);
            let set: Option<String> = redis::cmd("SET")
                .arg(proof_key(replay_key))
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            Ok(set.is_some())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_fixed_width_hex() {
        assert_eq!(proof_key(0xab), format!("mcp:dpop:{}ab", "0".repeat(30)));
        assert_eq!(proof_key(u128::MAX).len(), "mcp:dpop:".len() + 32);
    }
}
