//! Streamable HTTP sessions across instances: **re-created**, not forwarded.
//!
//! The instance answering `initialize` stores what rmcp needs to re-create the session
//! (the client's `initialize` parameters: protocol version, capabilities, client info)
//! as `mcp:session:<id>` through rmcp's [`SessionStore`] hook, and the principal that
//! owns it as `mcp:session-owner:<id>`. A request for that session landing on another
//! instance is checked against the stored owner first (on every instance, for every
//! request), then rmcp replays the stored `initialize` into a fresh handler there. The
//! tools keep no state between calls, so a re-created session answers exactly as the
//! original would; re-creating needs no hop to the first instance and survives its
//! death, where forwarding would not.
//!
//! `DELETE /mcp` on any instance removes both keys and announces the end on
//! `mcp:session-ended`; every instance then drops its copy.
//!
//! Replies always travel on the response of the POST that asked. Messages a server
//! sends outside any request (this server's tools send none) would go to the
//! standalone `GET` stream of the instance whose copy produced them.

use std::time::Duration;

use rmcp::transport::streamable_http_server::session::{
    SessionState, SessionStore, SessionStoreError,
};

use super::{Cluster, unavailable};
use crate::{auth::claims::Principal, error::Error};

/// Channel on which ended Streamable HTTP sessions are announced (payload: the id).
pub(crate) const SESSION_ENDED: &str = "mcp:session-ended";
/// Longest a session is kept (as in the in-process owner map).
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(24 * 3600);

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
            .arg("EX")
            .arg(SESSION_TTL.as_secs())
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
    /// Records `principal` (`None` with authorization off) as the owner of Streamable
    /// HTTP session `id`.
    ///
    /// # Errors
    /// [`Error::StoreUnavailable`] when Redis cannot be reached.
    pub(crate) async fn set_session_owner(
        &self,
        id: &str,
        principal: Option<&Principal>,
    ) -> Result<(), Error> {
        let value = serde_json::to_string(&principal)
            .map_err(|e| Error::Internal(format!("cannot serialise a principal: {e}")))?;
        let mut conn = self.conn()?;
        redis::cmd("SET")
            .arg(owner_key(id))
            .arg(value)
            .arg("EX")
            .arg(SESSION_TTL.as_secs())
            .query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)
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

    /// Ends Streamable HTTP session `id` on every instance.
    ///
    /// # Errors
    /// [`Error::StoreUnavailable`] when Redis cannot be reached.
    pub(crate) async fn end_session(&self, id: &str) -> Result<(), Error> {
        let mut conn = self.conn()?;
        redis::pipe()
            .cmd("DEL")
            .arg(owner_key(id))
            .arg(state_key(id))
            .ignore()
            .cmd("PUBLISH")
            .arg(SESSION_ENDED)
            .arg(id)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)
    }
}
