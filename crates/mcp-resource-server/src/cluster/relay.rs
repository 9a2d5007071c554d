//! Legacy SSE across instances: the instance holding a stream records it as
//! `mcp:sse:<session id>` (its instance id and the principal that opened it, expiring
//! with the stream); a `POST /messages` landing on another instance checks the
//! principal against that record, then publishes the message on the owner's channel
//! `mcp:instance:<id>`.
//!
//! Messages from one poster arrive in order: one connection publishes them, Redis
//! delivers a channel's messages in order, and the owner hands them to the session's
//! queue in that order. A POST is answered `202` only when an instance received the
//! message; when none did (the owner died), the stale record is dropped and the POST is
//! answered `404`, as for any ended session.

use std::time::Duration;

use rmcp::model::ClientJsonRpcMessage;
use serde::{Deserialize, Serialize};

use super::{Cluster, unavailable};
use crate::{
    auth::claims::{Principal, VerifiedClaims},
    error::Error,
    legacy_sse::LegacySseSessions,
};

/// Longest a stream record lives without its stream (it is deleted when the stream ends).
const MAX_RECORD: Duration = Duration::from_secs(24 * 3600);

/// The channel of instance `instance`.
pub(crate) fn instance_channel(instance: &str) -> String {
    format!("mcp:instance:{instance}")
}

fn session_key(id: &str) -> String {
    format!("mcp:sse:{id}")
}

/// Who holds a legacy SSE stream.
#[derive(Debug, Serialize, Deserialize)]
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
        let value: Option<String> = redis::cmd("GET")
            .arg(session_key(id))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(value.and_then(|v| serde_json::from_str(&v).ok()))
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
        let mut conn = self.conn()?;
        let receivers: usize = redis::cmd("PUBLISH")
            .arg(instance_channel(&owner.instance))
            .arg(payload)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if receivers == 0 {
            self.forget_stream(id).await;
        }
        Ok(receivers > 0)
    }
}

/// Hands a message another instance forwarded to the local session it names, if the
/// principal still matches.
pub(crate) fn deliver(sse: &LegacySseSessions, payload: &[u8]) {
    let Ok(forwarded) = serde_json::from_slice::<Forwarded>(payload) else {
        tracing::warn!("unreadable forwarded message ignored");
        return;
    };
    let Ok(message) = serde_json::from_value::<ClientJsonRpcMessage>(forwarded.message) else {
        tracing::warn!("forwarded body is not a JSON-RPC message; ignored");
        return;
    };
    let claims = forwarded.claims.map(std::sync::Arc::new);
    if !sse.deliver_forwarded(&forwarded.session, claims, message) {
        tracing::info!("forwarded message for a stream no longer here (or another principal's)");
    }
}
