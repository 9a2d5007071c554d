//! Legacy SSE across instances: the instance holding a stream records it as
//! `mcp:sse:<session id>` (its instance id and the principal that opened it, expiring
//! with the stream); a `POST /messages` landing on another instance checks the
//! principal against that record, then publishes the message on the owner's channel
//! `mcp:instance:<id>`.
//!
//! A post costs one Redis round trip once the poster's instance knows the stream's
//! record: records never change while their stream lives, so each instance keeps the
//! ones it read ([`Owners`]), and the publication is one Lua script that publishes only
//! if the record is still there, unchanged (the stream has not ended), and otherwise
//! answers that it is gone; a post is never answered `202` on the strength of a kept
//! record alone.
//!
//! Messages from one poster arrive in order: one connection publishes them, Redis
//! delivers a channel's messages in order, and the owner hands them to the session's
//! queue in that order. A POST is answered `202` only when an instance received the
//! message; when none did (the owner died), the stale record is dropped and the POST is
//! answered `404`, as for any ended session.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use rmcp::model::ClientJsonRpcMessage;
use serde::{Deserialize, Serialize};

use super::{Cluster, unavailable};
use crate::{
    auth::claims::{Principal, VerifiedClaims},
    error::Error,
};

/// The legacy SSE streams this instance holds, as the other instances' messages reach
/// them ([`Cluster::spawn_tasks`]).
pub(crate) trait HeldStreams: Send + Sync {
    /// Ends the streams opened with the cookie session whose key hash is `hash` (as
    /// announced by another instance); returns how many.
    fn end_cookie_streams_hashed(&self, hash: &str) -> usize;

    /// Hands a message forwarded by another instance to stream `id`, if `claims`'
    /// principal opened it; false when it did not or the stream is gone.
    fn deliver_forwarded(
        &self,
        id: &str,
        claims: Option<Arc<VerifiedClaims>>,
        message: ClientJsonRpcMessage,
    ) -> bool;
}

/// Longest a stream record lives without its stream (it is deleted when the stream ends).
const MAX_RECORD: Duration = Duration::from_secs(24 * 3600);

/// The channel of instance `instance`.
pub(crate) fn instance_channel(instance: &str) -> String {
    format!("mcp:instance:{instance}")
}

fn session_key(id: &str) -> String {
    format!("mcp:sse:{id}")
}

/// Most stream records an instance keeps; past it, they are all dropped and read again.
const MAX_KEPT: usize = 10_000;

/// Publishes `ARGV[3]` on channel `ARGV[2]` if `KEYS[1]` still holds `ARGV[1]`:
/// the number of receivers, or -1 when the record is gone or another.
const CHECKED_PUBLISH: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
return redis.call('PUBLISH', ARGV[2], ARGV[3])
";

/// Stream records this instance read (they never change while their stream lives).
#[derive(Debug, Default)]
pub(crate) struct Owners(Mutex<HashMap<String, StreamOwner>>);

impl Owners {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, StreamOwner>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Who holds a legacy SSE stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StreamOwner {
    /// The instance holding the stream.
    pub instance: String,
    /// The principal that opened it.
    pub principal: Principal,
}

#[derive(Serialize, Deserialize)]
struct Forwarded {
    session: String,
    claims: Option<VerifiedClaims>,
    message: serde_json::Value,
}

impl Cluster {
    /// Records that this instance holds stream `id`, opened by `principal`, for `lifetime`.
    ///
    /// # Errors
    /// [`Error::StoreUnavailable`] when Redis cannot be reached.
    pub(crate) async fn register_stream(
        &self,
        id: &str,
        principal: &Principal,
        lifetime: Duration,
    ) -> Result<(), Error> {
        let owner = StreamOwner {
            instance: self.instance.clone(),
            principal: principal.clone(),
        };
        let value = serde_json::to_string(&owner)
            .map_err(|e| Error::Internal(format!("cannot serialise stream owner: {e}")))?;
        let mut conn = self.conn()?;
        redis::cmd("SET")
            .arg(session_key(id))
            .arg(value)
            .arg("EX")
            .arg(lifetime.min(MAX_RECORD).as_secs().max(1))
            .query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)
    }

    /// Forgets stream `id` (when it ends); a failure is only logged, the record expires.
    pub(crate) async fn forget_stream(&self, id: &str) {
        self.sse_owners.lock().remove(id);
        let Ok(mut conn) = self.conn() else { return };
        if let Err(error) = redis::cmd("DEL")
            .arg(session_key(id))
            .query_async::<usize>(&mut conn)
            .await
        {
            tracing::debug!(kind = ?error.kind(), "could not forget a stream record; it expires");
        }
    }

    /// Who holds stream `id`, if anyone.
    ///
    /// # Errors
    /// [`Error::StoreUnavailable`] when Redis cannot be reached.
    pub(crate) async fn stream_owner(&self, id: &str) -> Result<Option<StreamOwner>, Error> {
        let mut conn = self.conn()?;
        if let Some(owner) = self.sse_owners.lock().get(id) {
            return Ok(Some(owner.clone()));
        }
        let value: Option<String> = redis::cmd("GET")
            .arg(session_key(id))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let owner: Option<StreamOwner> = value.and_then(|v| serde_json::from_str(&v).ok());
        if let Some(owner) = &owner {
            let mut kept = self.sse_owners.lock();
            if kept.len() >= MAX_KEPT {
                kept.clear();
            }
            kept.insert(id.to_string(), owner.clone());
        }
        Ok(owner)
    }

    /// Publishes `message` for stream `id` to `owner`; false when no instance received
    /// it (the record is then dropped).
    ///
    /// # Errors
    /// [`Error::StoreUnavailable`] when Redis cannot be reached.
    pub(crate) async fn forward(
        &self,
        owner: &StreamOwner,
        id: &str,
        claims: Option<&VerifiedClaims>,
        message: serde_json::Value,
    ) -> Result<bool, Error> {
        let payload = serde_json::to_vec(&Forwarded {
            session: id.to_string(),
            claims: claims.cloned(),
            message,
        })
        .map_err(|e| Error::Internal(format!("cannot serialise a message: {e}")))?;
        // The record as `register_stream` wrote it.
        let record = serde_json::to_string(owner)
            .map_err(|e| Error::Internal(format!("cannot serialise stream owner: {e}")))?;
        let mut conn = self.conn()?;
        let receivers: i64 = redis::Script::new(CHECKED_PUBLISH)
            .key(session_key(id))
            .arg(record)
            .arg(instance_channel(&owner.instance))
            .arg(payload)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        match receivers {
            -1 => {
                self.sse_owners.lock().remove(id);
                Ok(false)
            }
            0 => {
                self.forget_stream(id).await;
                Ok(false)
            }
            _ => Ok(true),
        }
    }
}

/// Hands a message another instance forwarded to the local session it names, if the
/// principal still matches.
pub(crate) fn deliver(sse: &dyn HeldStreams, payload: &[u8]) {
    let Ok(forwarded) = serde_json::from_slice::<Forwarded>(payload) else {
        tracing::warn!("unreadable forwarded message ignored");
        return;
    };
    let Ok(message) = serde_json::from_value::<ClientJsonRpcMessage>(forwarded.message) else {
        tracing::warn!("forwarded body is not a JSON-RPC message; ignored");
        return;
    };
    let claims = forwarded.claims.map(Arc::new);
    if !sse.deliver_forwarded(&forwarded.session, claims, message) {
        tracing::info!("forwarded message for a stream no longer here (or another principal's)");
    }
}
