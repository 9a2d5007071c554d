//! Streamable HTTP sessions (`Mcp-Session-Id`): who owns each one, and how many there
//! may be.
//!
//! A session id is not a credential: each request is authorized on its own, and a
//! request naming a session created by another principal (or an unknown one) is
//! answered 404, as for a session that does not exist.
//!
//! Every live session is recorded in [`McpSessionOwners`] with its owner from the moment rmcp
//! creates it until rmcp closes it (`DELETE`, idle expiry, shutdown, a failed
//! handshake): [`OwnedSessionManager`] wraps rmcp's session manager so that the record
//! is made and removed by the same calls that make and remove the session. There is no
//! other limit on the record, so ownership is never dropped while the session lives.
//!
//! Before a request that may create a session reaches rmcp, [`bind_sessions`] reserves
//! a place for it: past [`McpSessionOwners`]'s per-principal limit the request is answered
//! 429, past the overall limit 503, both with a JSON-RPC error body. The reservation is
//! handed to the session manager through a task-local, and released if no session was
//! created. One principal's sessions therefore never take the places of another's
//! beyond the overall limit, and sessions idle out after rmcp's `keep_alive`
//! ([`crate::config::Config::mcp_session_idle_timeout`]).
//!
//! With shared state (`--redis-url`) the owner is also kept in Redis, so that a session
//! created on one instance is served, and a session ended on one instance is refused,
//! by all of them ([`crate::cluster::mcp_sessions`]). An instance reads a session's
//! owner from Redis once per copy it holds, not on every request: the owner never
//! changes, and the end of a session is announced to every instance, which closes its
//! copy (and forgets the owner with it). The owner read is trusted only while the
//! subscription that carries those announcements is the one that was live when it was
//! read; when that subscription drops (Redis restarted, connection lost) every copy's
//! owner is read again. A request for a session this instance does not
//! hold reserves a place for the session's owner as an `initialize` does (429/503 past
//! the limits), and [`OwnedSessionManager::restore_session`] records the copy rmcp
//! re-creates from Redis with that owner; without shared state no place is reserved
//! for such a request and nothing is restored. The per-principal limit is also
//! counted over the whole cluster when a session is created (a sorted set per
//! principal in Redis, [`crate::cluster::mcp_sessions`]); the overall limit counts the
//! sessions each instance holds (its own and re-created copies), as it protects the
//! process.

use std::{
    cell::RefCell,
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use axum::{
    extract::{Request, State},
    http::Method,
    middleware::Next,
    response::Response,
};
use futures::{Stream, future::BoxFuture};
use rmcp::{
    model::{ClientJsonRpcMessage, ServerJsonRpcMessage},
    transport::streamable_http_server::session::{
        EventStore, RestoreOutcome, ServerSseMessage, SessionId, SessionManager,
    },
};

use crate::{
    auth::claims::{Principal, VerifiedClaims},
    cluster::{Cluster, mcp_sessions::LocalMcpSessions, session_messages::SessionOwners},
    error::{ChallengeContext, Error},
};

const HEADER: &str = "mcp-session-id";

/// Live Streamable HTTP sessions: each one's owner, and the count per owner.
///
/// The owner is `None` with authorization off (only the overall limit applies then).
#[derive(Debug)]
pub(crate) struct McpSessionOwners {
    inner: Mutex<Registry>,
    per_principal: usize,
    total: usize,
}

#[derive(Debug, Default)]
struct Registry {
    owners: HashMap<SessionId, Option<Principal>>,
    /// Sessions whose owner was read from the shared store, with the number of the
    /// subscription that was live then ([`Cluster::subscription`]).
    verified: HashMap<SessionId, u64>,
    /// Sessions and reservations per principal.
    counts: HashMap<Principal, usize>,
    /// Sessions and reservations over all principals.
    total: usize,
}

impl Registry {
    fn release(&mut self, owner: Option<&Principal>) {
        self.total = self.total.saturating_sub(1);
        if let Some(owner) = owner
            && let Some(count) = self.counts.get_mut(owner)
        {
            *count -= 1;
            if *count == 0 {
                self.counts.remove(owner);
            }
        }
    }
}

impl McpSessionOwners {
    /// No session yet; at most `per_principal` per principal and `total` overall.
    pub(crate) fn new(per_principal: usize, total: usize) -> Self {
        Self {
            inner: Mutex::default(),
            per_principal,
            total,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reserves a place for a session of `owner`.
    ///
    /// # Errors
    /// [`Error::TooManySessions`] past the per-principal limit, [`Error::SessionCapacity`]
    /// past the overall limit.
    pub(crate) fn reserve(
        self: &Arc<Self>,
        owner: Option<Principal>,
    ) -> Result<Reservation, Error> {
        let mut registry = self.lock();
        if let Some(principal) = &owner
            && registry.counts.get(principal).copied().unwrap_or(0) >= self.per_principal
        {
            return Err(Error::TooManySessions {
                limit: self.per_principal,
            });
        }
        if registry.total >= self.total {
            return Err(Error::SessionCapacity { limit: self.total });
        }
        registry.total += 1;
        if let Some(principal) = &owner {
            *registry.counts.entry(principal.clone()).or_insert(0) += 1;
        }
        Ok(Reservation {
            sessions: self.clone(),
            owner: Some(owner),
        })
    }

    /// Whether `id` is a live session of `principal`.
    pub(crate) fn is_owned_by(&self, id: &str, principal: Option<&Principal>) -> bool {
        self.lock()
            .owners
            .get(id)
            .is_some_and(|owner| owner.as_ref() == principal)
    }

    /// Whether `id` is a live session held by this instance.
    pub(crate) fn holds(&self, id: &str) -> bool {
        self.lock().owners.contains_key(id)
    }

    /// Whether `id` is a live session of `principal` held here whose owner was read
    /// from the shared store while subscription `subscription` was live.
    pub(crate) fn is_verified(
        &self,
        id: &str,
        principal: Option<&Principal>,
        subscription: u64,
    ) -> bool {
        let registry = self.lock();
        registry.verified.get(id) == Some(&subscription)
            && registry
                .owners
                .get(id)
                .is_some_and(|owner| owner.as_ref() == principal)
    }

    /// Notes that the owner of `id`, a session held here, was read from the shared
    /// store while subscription `subscription` was live.
    pub(crate) fn set_verified(&self, id: &str, subscription: u64) {
        let mut registry = self.lock();
        if let Some((id, _)) = registry.owners.get_key_value(id) {
            let id = id.clone();
            registry.verified.insert(id, subscription);
        }
    }

    /// Forgets session `id`, freeing its place.
    pub(crate) fn remove(&self, id: &str) {
        let mut registry = self.lock();
        registry.verified.remove(id);
        if let Some(owner) = registry.owners.remove(id) {
            registry.release(owner.as_ref());
        }
    }

    #[cfg(test)]
    /// Live sessions (and reservations) of `principal`.
    pub(crate) fn count_of(&self, principal: &Principal) -> usize {
        self.lock().counts.get(principal).copied().unwrap_or(0)
    }

    /// Most sessions one principal may hold.
    pub(crate) fn per_principal(&self) -> usize {
        self.per_principal
    }

    #[cfg(test)]
    /// Live sessions (and reservations) overall.
    pub(crate) fn len(&self) -> usize {
        self.lock().total
    }
}

impl SessionOwners for McpSessionOwners {
    fn owner_of(&self, id: &str) -> Option<Option<Principal>> {
        self.lock().owners.get(id).cloned()
    }
}

/// A place held for a session about to be created; freed on drop unless bound.
#[derive(Debug)]
pub(crate) struct Reservation {
    sessions: Arc<McpSessionOwners>,
    owner: Option<Option<Principal>>,
}

impl Reservation {
    /// Records session `id` in the reserved place.
    fn bind(mut self, id: SessionId) {
        let owner = self.owner.take().expect("bound once");
        self.sessions.lock().owners.insert(id, owner);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(owner) = self.owner.take() {
            self.sessions.lock().release(owner.as_ref());
        }
    }
}

tokio::task_local! {
    /// The reservation of the request being served, for the session manager.
    static RESERVATION: RefCell<Option<Reservation>>;
}

/// Why [`OwnedSessionManager`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum OwnedSessionError<E: std::error::Error + 'static> {
    /// A session was about to be created without a reserved place.
    #[error("no place reserved for a new session")]
    NotReserved,
    /// The wrapped session manager failed.
    #[error(transparent)]
    Inner(#[from] E),
}

/// rmcp's session manager `M`, recording each session in [`McpSessionOwners`] with the
/// place [`bind_sessions`] reserved for it, and removing it when rmcp closes it.
#[derive(Debug)]
pub(crate) struct OwnedSessionManager<M> {
    inner: M,
    sessions: Arc<McpSessionOwners>,
}

impl<M> OwnedSessionManager<M> {
    /// Wraps `inner`, recording into `sessions`.
    pub(crate) fn new(inner: M, sessions: Arc<McpSessionOwners>) -> Self {
        Self { inner, sessions }
    }
}

impl LocalMcpSessions
    for OwnedSessionManager<
        rmcp::transport::streamable_http_server::session::local::LocalSessionManager,
    >
{
    fn idle_timeout(&self) -> Option<std::time::Duration> {
        self.inner.session_config.keep_alive
    }

    fn close(&self, id: SessionId) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let _ = self.close_session(&id).await;
        })
    }
}

impl<M: SessionManager> SessionManager for OwnedSessionManager<M> {
    type Error = OwnedSessionError<M::Error>;
    type Transport = M::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        // Only requests that went through `bind_sessions` may create a session.
        let reservation = RESERVATION
            .try_with(|cell| cell.borrow_mut().take())
            .ok()
            .flatten()
            .ok_or(OwnedSessionError::NotReserved)?;
        let (id, transport) = self.inner.create_session().await?;
        reservation.bind(id.clone());
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        Ok(self.inner.initialize_session(id, message).await?)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        Ok(self.inner.has_session(id).await?)
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        let closed = self.inner.close_session(id).await;
        self.sessions.remove(id);
        Ok(closed?)
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.inner.create_stream(id, message).await?)
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        Ok(self.inner.accept_message(id, message).await?)
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.inner.create_standalone_stream(id).await?)
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.inner.resume(id, last_event_id).await?)
    }

    async fn restore_session(
        &self,
        id: SessionId,
    ) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        // Only a request whose owner `bind_sessions` checked in the shared store
        // carries a reservation for the owner; without one the copy would have no
        // recorded owner, so it is not made.
        let Some(reservation) = RESERVATION
            .try_with(|cell| cell.borrow_mut().take())
            .ok()
            .flatten()
        else {
            return Ok(RestoreOutcome::NotSupported);
        };
        let outcome = self.inner.restore_session(id.clone()).await?;
        if let RestoreOutcome::Restored(_) = &outcome {
            reservation.bind(id);
        }
        Ok(outcome)
    }

    fn event_store(&self) -> Option<Arc<dyn EventStore>> {
        self.inner.event_store()
    }
}

/// State of [`bind_sessions`].
#[derive(Debug, Clone)]
pub(crate) struct SessionBinding {
    /// The live sessions.
    pub sessions: Arc<McpSessionOwners>,
    /// Refusals carry this challenge.
    pub challenge: ChallengeContext,
    /// State shared with other instances (`--redis-url`), if any.
    pub cluster: Option<Arc<Cluster>>,
}

/// Middleware enforcing session ownership and the session limits (after the
/// authorization layer, if any).
pub(crate) async fn bind_sessions(
    State(binding): State<SessionBinding>,
    request: Request,
    next: Next,
) -> Response {
    let principal = request
        .extensions()
        .get::<Arc<VerifiedClaims>>()
        .map(|claims| claims.principal());
    if let Some(cluster) = &binding.cluster {
        return bind_shared(cluster, &binding, principal, request, next).await;
    }
    match request.headers().get(HEADER) {
        Some(id) => {
            let owned = id
                .to_str()
                .is_ok_and(|id| binding.sessions.is_owned_by(id, principal.as_ref()));
            if !owned {
                tracing::info!(
                    subject = principal.as_ref().map(|p| p.subject.as_str()),
                    "request for an unknown session or another principal's session"
                );
                return Error::SessionNotFound.into_response_with(Some(&binding.challenge));
            }
            next.run(request).await
        }
        // Only a POST without a session id (an `initialize`) creates a session.
        None if request.method() == Method::POST => {
            let reservation = match binding.sessions.reserve(principal.clone()) {
                Ok(reservation) => reservation,
                Err(error) => {
                    tracing::info!(
                        subject = principal.as_ref().map(|p| p.subject.as_str()),
                        %error,
                        "new MCP session refused"
                    );
                    return error.into_response_with(Some(&binding.challenge));
                }
            };
            RESERVATION
                .scope(RefCell::new(Some(reservation)), next.run(request))
                .await
        }
        None => next.run(request).await,
    }
}

/// Reserves a place for a session of `principal`; a refusal is logged.
fn reserve(binding: &SessionBinding, principal: Option<&Principal>) -> Result<Reservation, Error> {
    binding
        .sessions
        .reserve(principal.cloned())
        .inspect_err(|error| {
            tracing::info!(
                subject = principal.map(|p| p.subject.as_str()),
                %error,
                "new MCP session refused"
            );
        })
}

/// [`bind_sessions`] with the owners also in Redis.
async fn bind_shared(
    cluster: &Cluster,
    binding: &SessionBinding,
    principal: Option<Principal>,
    request: Request,
    next: Next,
) -> Response {
    let fail = |error: Error| error.into_response_with(Some(&binding.challenge));
    let session = request
        .headers()
        .get(HEADER)
        .map(|v| v.to_str().map(str::to_string));
    let Some(id) = session else {
        if request.method() != Method::POST {
            return next.run(request).await;
        }
        // A new session: refused up front while Redis is away, as it could not be
        // recorded for the other instances.
        if !cluster.is_up() {
            return fail(Error::StoreUnavailable("redis is not answering".into()));
        }
        let reservation = match reserve(binding, principal.as_ref()) {
            Ok(reservation) => reservation,
            Err(error) => return fail(error),
        };
        // The per-principal cap counts every instance's sessions.
        let place = match &principal {
            Some(principal) => match cluster
                .reserve_session(principal, binding.sessions.per_principal())
                .await
            {
                Ok(place) => Some(place),
                Err(error) => return fail(error),
            },
            None => None,
        };
        let subscription = cluster.subscription();
        let response = RESERVATION
            .scope(RefCell::new(Some(reservation)), next.run(request))
            .await;
        match response.headers().get(HEADER).and_then(|v| v.to_str().ok()) {
            Some(id) => {
                if let Err(error) = cluster
                    .set_session_owner(id, principal.as_ref(), place)
                    .await
                {
                    return fail(error);
                }
                if let Some(live) = subscription {
                    binding.sessions.set_verified(id, live);
                }
            }
            None => {
                if let Some(place) = place {
                    cluster.release_session_place(place).await;
                }
            }
        }
        return response;
    };
    let Ok(id) = id else {
        return fail(Error::SessionNotFound);
    };
    // While Redis is away no session request is served, even for a copy held here:
    // an end announced meanwhile would not have reached this instance.
    if !cluster.is_up() {
        return fail(Error::StoreUnavailable("redis is not answering".into()));
    }
    // A session's owner never changes, and its end is announced on the subscription:
    // an owner read from Redis while the live subscription was already there holds
    // until the session closes here. Only the first request per copy reads it.
    let subscription = cluster.subscription();
    let verified = subscription
        .is_some_and(|live| binding.sessions.is_verified(&id, principal.as_ref(), live));
    if !verified {
        match cluster.session_owner(&id).await {
            Ok(Some(owner)) if owner == principal => {}
            Ok(_) => {
                tracing::info!(
                    subject = principal.as_ref().map(|p| p.subject.as_str()),
                    "request for an unknown session or another principal's session"
                );
                return fail(Error::SessionNotFound);
            }
            Err(error) => return fail(error),
        }
    }
    let is_delete = request.method() == Method::DELETE;
    cluster.session_served(&id, principal.as_ref());
    let response = if binding.sessions.holds(&id) {
        if !verified && let Some(live) = subscription {
            binding.sessions.set_verified(&id, live);
        }
        next.run(request).await
    } else {
        // rmcp re-creates the session here from Redis; its place is reserved first.
        let reservation = match reserve(binding, principal.as_ref()) {
            Ok(reservation) => reservation,
            Err(error) => return fail(error),
        };
        let response = RESERVATION
            .scope(RefCell::new(Some(reservation)), next.run(request))
            .await;
        if let Some(live) = subscription {
            binding.sessions.set_verified(&id, live);
        }
        response
    };
    if is_delete
        && response.status().is_success()
        && let Err(error) = cluster.end_session(&id, principal.as_ref()).await
    {
        tracing::warn!(%error, "session ended here but not announced; it expires elsewhere");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(subject: &str) -> Principal {
        Principal {
            issuer: "https://as".into(),
            subject: subject.into(),
        }
    }

    #[test]
    fn limits_per_principal_and_overall() {
        let sessions = Arc::new(McpSessionOwners::new(2, 3));
        let alice = Some(principal("alice"));
        let a1 = sessions.reserve(alice.clone()).unwrap();
        let a2 = sessions.reserve(alice.clone()).unwrap();
        assert!(matches!(
            sessions.reserve(alice.clone()),
            Err(Error::TooManySessions { limit: 2 })
        ));
        let b1 = sessions.reserve(Some(principal("bob"))).unwrap();
        assert!(matches!(
            sessions.reserve(Some(principal("carol"))),
            Err(Error::SessionCapacity { limit: 3 })
        ));
        // An unbound reservation frees its place; a bound one keeps it until removed.
        drop(a2);
        assert_eq!(sessions.count_of(&principal("alice")), 1);
        a1.bind(SessionId::from("s1"));
        b1.bind(SessionId::from("s2"));
        assert!(sessions.is_owned_by("s1", alice.as_ref()));
        assert!(!sessions.is_owned_by("s1", Some(&principal("bob"))));
        assert!(!sessions.is_owned_by("s1", None));
        assert_eq!(sessions.len(), 2);
        sessions.remove("s1");
        sessions.remove("s1");
        assert_eq!(sessions.len(), 1);
        assert_eq!(sessions.count_of(&principal("alice")), 0);
        assert!(!sessions.is_owned_by("s1", alice.as_ref()));
    }

    #[test]
    fn anonymous_sessions_count_overall_only() {
        let sessions = Arc::new(McpSessionOwners::new(1, 2));
        let first = sessions.reserve(None).unwrap();
        let second = sessions.reserve(None).unwrap();
        assert!(matches!(
            sessions.reserve(None),
            Err(Error::SessionCapacity { limit: 2 })
        ));
        first.bind(SessionId::from("x"));
        assert!(sessions.is_owned_by("x", None));
        drop(second);
        assert_eq!(sessions.len(), 1);
    }
}
