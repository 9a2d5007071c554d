//! Streamable HTTP messages a handler sends outside a request, across instances.
//!
//! Each instance runs its own copy of a session's handler ([`super::mcp_sessions`]), and
//! a copy on instance B may send a message on its own: a notification
//! (`notifications/message`, `notifications/resources/updated`, …) or a request to the
//! client (`sampling/createMessage`, `roots/list`, …) that no request is waiting for.
//! In one process rmcp writes such a message to the session's standalone `GET /mcp`
//! stream; here that stream may be open on instance A. [`RelayedSessions`] wraps the
//! session manager so that every copy's transport is seen, and routes:
//!
//! - **Where the stream is.** The instance holding a session's standalone stream
//!   records itself and the stream as `mcp:get-stream:<id>` (renewed while the stream
//!   is open, written again if Redis lost it, deleted when the stream ends, expiring
//!   after [`super::leases::LEASE_TTL`] when its instance dies).
//! - **Server to client.** A message bound for the standalone stream goes, from any
//!   copy, through one Lua script ([`ROUTE`]): published on the channel of the
//!   recorded instance (`mcp:instance:<id>:messages`), which writes it into the stream.
//!   When no stream is open anywhere, or its instance is gone (no subscriber), the
//!   message is appended to `mcp:get-backlog:<id>` (the last [`BACKLOG`] messages, for
//!   the session's lifetime), which the next stream to open, on any instance, sends
//!   first: what rmcp's own worker keeps for a stream not yet open, cluster-wide.
//!   One task per session copy sends the copy's messages in order, and Redis delivers a
//!   channel's messages in order, so they arrive in the order the copy sent them.
//!   A copy on the instance holding the stream skips all this: its messages take
//!   rmcp's own way to the stream (no Redis round trip, event ids for `Last-Event-ID`).
//! - **Client to server.** The ids of the requests a copy sends are tagged with its
//!   instance (`<instance>:n:<id>`); the client's response, posted through whichever
//!   instance, is handed to the copy that asked, over that instance's channel, with
//!   its original id, so `peer.create_message(..)` or `list_roots()` completes there.
//!   This holds for every request a copy sends, including those issued while handling
//!   a request, which ride that request's stream (SEP-2260) but may be answered
//!   through another instance.
//!
//! A session's messages only ever travel under its id, and a request reaches this
//! manager only after its principal was found to own the session
//! ([`crate::mcp_session_owners`]): a stream of session X carries X's messages only,
//! and only X's owner can answer X's requests.
//!
//! # One standalone stream per session
//! As in rmcp, a second standalone stream of a session whose stream is open (on this
//! instance or, recorded, on another live one) is answered 200 but carries none of
//! these messages; a stream whose instance died is taken over by the next one.
//!
//! # What can be lost
//! A message published to the instance holding the stream is lost if that instance
//! dies before writing it, or if the stream's queue ([`QUEUE`]) is full (the stream is
//! then ended; the client reconnects and gets what is sent from then on). Messages
//! relayed this way carry no event id, so a reconnection with `Last-Event-ID` replays
//! only what this instance's own worker wrote. A response from the client to an
//! instance that died since it asked is dropped, like the copy that waited for it.
//! Without Redis the handler's send fails (the handler sees the error).
//!
//! rmcp closes a session copy that saw no message for the idle timeout; messages that
//! go through Redis do not pass the copy's worker, so a copy whose handler only sends
//! to a stream on another instance still closes then, unless the client sends
//! something through that instance (the next request re-creates it). The same holds
//! for the copy whose instance holds the stream: its stream then ends, the client
//! reconnects, and what is sent meanwhile waits in the backlog. The instance holding
//! a stream keeps the session's keys in Redis alive while the stream is open.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use futures::{FutureExt, Stream, StreamExt, future::Either};
use rmcp::{
    RoleServer,
    model::{
        ClientJsonRpcMessage, GetExtensions, JsonRpcMessage, NumberOrString, RequestId,
        ServerJsonRpcMessage, ServerNotification,
    },
    service::OriginatingRequestId,
    transport::{
        Transport,
        streamable_http_server::session::{
            EventStore, RestoreOutcome, ServerSseMessage, SessionId, SessionManager,
        },
    },
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::{Cluster, leases::LEASE_TTL, unavailable};
use crate::{auth::claims::Principal, error::Error};

/// Most relayed messages waiting to be written to one stream; past it the stream ends.
pub(crate) const QUEUE: usize = 256;
/// Most messages kept for a session whose standalone stream is not open anywhere.
pub(crate) const BACKLOG: usize = 64;

/// Routes a message for a session's standalone stream: published to the instance
/// recorded in `KEYS[1]` if it listens, otherwise kept in the backlog `KEYS[2]`.
/// 1 when published, 0 when kept.
const ROUTE: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder then
  local instance = string.match(holder, '^[^ ]+')
  if redis.call('PUBLISH', 'mcp:instance:' .. instance .. ':messages', ARGV[1]) > 0 then
    return 1
  end
  redis.call('DEL', KEYS[1])
end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 0
";

/// Records `ARGV[1]` (`<instance> <stream>`) as the holder of the stream `KEYS[1]`
/// unless another instance that still listens holds it; takes the backlog `KEYS[2]`
/// with it. `{1, backlog…}` when taken, `{0}` when another instance holds the stream.
const CLAIM: &str = r"
local holder = redis.call('GET', KEYS[1])
local instance = holder and string.match(holder, '^[^ ]+')
if instance and instance ~= ARGV[3] then
  local listening = redis.call('PUBSUB', 'NUMSUB', 'mcp:instance:' .. instance .. ':messages')
  if listening[2] > 0 then
    return {0}
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local backlog = redis.call('LRANGE', KEYS[2], 0, -1)
redis.call('DEL', KEYS[2])
table.insert(backlog, 1, 1)
return backlog
";

/// Renews the stream record `KEYS[1]` as `ARGV[1]` for `ARGV[2]` ms if it is that or
/// gone (Redis restarted), not if another stream took it.
const RENEW: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

/// Deletes the stream record `KEYS[1]` if it still names `ARGV[1]`.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// The channel on which instance `instance` receives session messages.
pub(crate) fn channel(instance: &str) -> String {
    format!("mcp:instance:{instance}:messages")
}

fn stream_key(id: &str) -> String {
    format!("mcp:get-stream:{id}")
}

fn backlog_key(id: &str) -> String {
    format!("mcp:get-backlog:{id}")
}

/// The owners of the sessions this instance holds, for the renewal of their keys while
/// their stream is open.
pub(crate) trait SessionOwners: std::fmt::Debug + Send + Sync {
    /// The owner of session `id` if this instance holds it (itself `None` with
    /// authorization off).
    fn owner_of(&self, id: &str) -> Option<Option<Principal>>;
}

/// A message between instances, for session `session`.
#[derive(Serialize, Deserialize)]
struct Relayed {
    session: String,
    /// `true`: from the client, for the copy that asked; `false`: for the stream.
    #[serde(default)]
    to_handler: bool,
    message: serde_json::Value,
}

/// A standalone stream held here.
#[derive(Debug)]
struct Held {
    token: u64,
    /// Its record in Redis: `<instance> <token>`.
    record: String,
    tx: mpsc::Sender<ServerSseMessage>,
    /// The session's owner, for the renewal of its keys while the stream is open.
    owner: Option<Principal>,
}

/// This instance's standalone streams and session copies, by session id.
#[derive(Debug, Default)]
pub(crate) struct Routes {
    streams: Mutex<HashMap<String, Held>>,
    copies: Mutex<HashMap<String, (u64, mpsc::UnboundedSender<ClientJsonRpcMessage>)>>,
    next: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Routes {
    fn token(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Hands a message another instance published to its stream or copy here.
    pub(crate) fn deliver(&self, payload: &[u8]) {
        let Ok(relayed) = serde_json::from_slice::<Relayed>(payload) else {
            tracing::warn!("unreadable session message ignored");
            return;
        };
        if relayed.to_handler {
            let Ok(message) = serde_json::from_value::<ClientJsonRpcMessage>(relayed.message)
            else {
                tracing::warn!("relayed client message is not JSON-RPC; ignored");
                return;
            };
            let copies = lock(&self.copies);
            match copies.get(&relayed.session) {
                Some((_, tx)) if tx.send(message).is_ok() => {}
                _ => tracing::info!("response for a session copy no longer here; dropped"),
            }
            return;
        }
        let Ok(message) = serde_json::from_value::<ServerJsonRpcMessage>(relayed.message) else {
            tracing::warn!("relayed server message is not JSON-RPC; ignored");
            return;
        };
        let mut streams = lock(&self.streams);
        let Some(held) = streams.get(&relayed.session) else {
            tracing::info!("message for a standalone stream no longer here; dropped");
            return;
        };
        if held
            .tx
            .try_send(ServerSseMessage::from_message(message))
            .is_err()
        {
            // Full or gone: the stream ends (the client reconnects).
            tracing::warn!("standalone stream not keeping up; ended");
            streams.remove(&relayed.session);
        }
    }

    /// The sessions whose standalone stream is open here, with their owners.
    fn open_streams(&self) -> Vec<(String, String, Option<Principal>)> {
        lock(&self.streams)
            .iter()
            .map(|(id, held)| (id.clone(), held.record.clone(), held.owner.clone()))
            .collect()
    }
}

impl Cluster {
    async fn route(&self, session: &str, payload: Vec<u8>) -> Result<bool, Error> {
        let mut conn = self.conn()?;
        let published: i64 = redis::Script::new(ROUTE)
            .key(stream_key(session))
            .key(backlog_key(session))
            .arg(payload)
            .arg(BACKLOG)
            .arg(u64::try_from(self.session_ttl().as_millis()).unwrap_or(u64::MAX))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(published == 1)
    }

    /// Hands a client's response to the copy of `session` on `instance`; false when
    /// that instance no longer listens.
    async fn relay_to_handler(
        &self,
        instance: &str,
        session: &str,
        message: &ClientJsonRpcMessage,
    ) -> Result<bool, Error> {
        let payload = serde_json::to_vec(&Relayed {
            session: session.to_string(),
            to_handler: true,
            message: serde_json::to_value(message)
                .map_err(|e| Error::Internal(format!("cannot serialise a message: {e}")))?,
        })
        .map_err(|e| Error::Internal(format!("cannot serialise a message: {e}")))?;
        let mut conn = self.conn()?;
        let receivers: i64 = redis::cmd("PUBLISH")
            .arg(channel(instance))
            .arg(payload)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(receivers > 0)
    }

    /// Records this instance as the holder of `session`'s standalone stream, unless a
    /// live instance holds it; `Some(backlog)` when recorded.
    async fn claim_stream(
        &self,
        session: &str,
        record: &str,
    ) -> Result<Option<Vec<Vec<u8>>>, Error> {
        let mut conn = self.conn()?;
        let reply: Vec<redis::Value> = redis::Script::new(CLAIM)
            .key(stream_key(session))
            .key(backlog_key(session))
            .arg(record)
            .arg(u64::try_from(LEASE_TTL.as_millis()).unwrap_or(u64::MAX))
            .arg(&self.instance)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let mut reply = reply.into_iter();
        if !matches!(reply.next(), Some(redis::Value::Int(1))) {
            return Ok(None);
        }
        Ok(Some(
            reply
                .filter_map(|value| match value {
                    redis::Value::BulkString(bytes) => Some(bytes),
                    _ => None,
                })
                .collect(),
        ))
    }

    async fn release_stream(&self, session: &str, record: &str) {
        let Ok(mut conn) = self.conn() else { return };
        if let Err(error) = redis::Script::new(RELEASE)
            .key(stream_key(session))
            .arg(record)
            .invoke_async::<i64>(&mut conn)
            .await
        {
            tracing::debug!(kind = ?error.kind(), "stream record not deleted; it expires");
        }
    }

    /// Keeps the records of the standalone streams open here, and their sessions'
    /// keys, alive: a session whose only activity is an open stream does not expire
    /// under it.
    pub(super) async fn renew_streams(&self) {
        let open = self.session_routes.open_streams();
        if open.is_empty() {
            return;
        }
        for (id, _, owner) in &open {
            self.session_served(id, owner.as_ref());
        }
        let Ok(mut conn) = self.conn() else { return };
        // One pipeline of EVALSHA, the script loaded first.
        let renew = redis::Script::new(RENEW);
        if let Err(error) = renew.load_async(&mut conn).await {
            tracing::debug!(kind = ?error.kind(), "could not renew stream records");
            return;
        }
        let mut pipe = redis::pipe();
        for (id, record, _) in &open {
            pipe.cmd("EVALSHA")
                .arg(renew.get_hash())
                .arg(1)
                .arg(stream_key(id))
                .arg(record)
                .arg(u64::try_from(LEASE_TTL.as_millis()).unwrap_or(u64::MAX))
                .ignore();
        }
        if let Err(error) = pipe.query_async::<()>(&mut conn).await {
            tracing::debug!(kind = ?error.kind(), "could not renew stream records");
        }
    }
}

/// Why [`RelayedSessions`] or its transport failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum RelayError<E: std::error::Error + 'static> {
    /// The wrapped session manager or transport failed.
    #[error(transparent)]
    Inner(#[from] E),
    /// The message could not be routed (Redis away, the session copy closed).
    #[error("session message not routed: {0}")]
    Route(String),
}

/// Whether rmcp would write `message` to the standalone stream: a notification other
/// than progress (which follows its request), or a request issued outside any
/// request's handling (SEP-2260: those issued while handling one ride its stream).
fn for_standalone_stream(message: &ServerJsonRpcMessage) -> bool {
    match message {
        JsonRpcMessage::Notification(notification) => !matches!(
            notification.notification,
            ServerNotification::ProgressNotification(_)
        ),
        JsonRpcMessage::Request(request) => request
            .request
            .extensions()
            .get::<OriginatingRequestId>()
            .is_none(),
        _ => false,
    }
}

/// `id` tagged with `instance`, so the response finds its way back.
fn tag(instance: &str, id: &RequestId) -> RequestId {
    NumberOrString::String(
        match id {
            NumberOrString::Number(n) => format!("{instance}:n:{n}"),
            NumberOrString::String(s) => format!("{instance}:s:{s}"),
        }
        .into(),
    )
}

/// The instance and original id of a tagged id.
fn untag(id: &RequestId) -> Option<(&str, RequestId)> {
    let NumberOrString::String(text) = id else {
        return None;
    };
    let (instance, rest) = text.split_once(':')?;
    if instance.len() != 16 {
        return None;
    }
    let original = if let Some(n) = rest.strip_prefix("n:") {
        NumberOrString::Number(n.parse().ok()?)
    } else {
        NumberOrString::String(rest.strip_prefix("s:")?.into())
    };
    Some((instance, original))
}

/// A message queued for [`ROUTE`], with who waits for the outcome.
struct Outgoing {
    payload: Vec<u8>,
    done: oneshot::Sender<Result<(), String>>,
}

/// A session copy's transport: messages for the standalone stream go through
/// [`ROUTE`], in order; responses other instances received are handed in.
pub(crate) struct RelayedTransport<T> {
    inner: T,
    instance: String,
    session: SessionId,
    outgoing: mpsc::UnboundedSender<Outgoing>,
    responses: mpsc::UnboundedReceiver<ClientJsonRpcMessage>,
    cluster: Arc<Cluster>,
    token: u64,
}

impl<T> RelayedTransport<T> {
    fn new(inner: T, session: SessionId, cluster: Arc<Cluster>) -> Self {
        let (tx, responses) = mpsc::unbounded_channel();
        let token = cluster.session_routes.token();
        lock(&cluster.session_routes.copies).insert(session.to_string(), (token, tx));
        let (outgoing, mut queue) = mpsc::unbounded_channel::<Outgoing>();
        let pump = cluster.clone();
        let id = session.to_string();
        tokio::spawn(async move {
            while let Some(Outgoing { payload, done }) = queue.recv().await {
                let routed = pump.route(&id, payload).await.map(|_| ());
                let _ = done.send(routed.map_err(|e| e.to_string()));
            }
        });
        Self {
            inner,
            instance: cluster.instance().to_string(),
            session,
            outgoing,
            responses,
            cluster,
            token,
        }
    }
}

impl<T> Drop for RelayedTransport<T> {
    fn drop(&mut self) {
        let mut copies = lock(&self.cluster.session_routes.copies);
        if copies
            .get(self.session.as_ref())
            .is_some_and(|(token, _)| *token == self.token)
        {
            copies.remove(self.session.as_ref());
        }
    }
}

impl<T: Transport<RoleServer>> Transport<RoleServer> for RelayedTransport<T> {
    type Error = RelayError<T::Error>;

    fn send(
        &mut self,
        mut item: ServerJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        match &mut item {
            JsonRpcMessage::Request(request) => request.id = tag(&self.instance, &request.id),
            JsonRpcMessage::Notification(notification) => {
                if let ServerNotification::CancelledNotification(cancelled) =
                    &mut notification.notification
                    && let Some(id) = &mut cancelled.params.request_id
                {
                    *id = tag(&self.instance, id);
                }
            }
            _ => {}
        }
        // Replies follow their request; a message for a standalone stream held here
        // takes rmcp's own way to it (event ids, and the copy stays alive while it
        // sends).
        if !for_standalone_stream(&item)
            || lock(&self.cluster.session_routes.streams).contains_key(self.session.as_ref())
        {
            return Either::Left(self.inner.send(item).map(|r| r.map_err(RelayError::Inner)));
        }
        let payload = serde_json::to_value(&item).and_then(|message| {
            serde_json::to_vec(&Relayed {
                session: self.session.to_string(),
                to_handler: false,
                message,
            })
        });
        let (done, outcome) = oneshot::channel();
        let queued = payload
            .map_err(|e| format!("cannot serialise a message: {e}"))
            .and_then(|payload| {
                self.outgoing
                    .send(Outgoing { payload, done })
                    .map_err(|_| "session copy closed".to_string())
            });
        Either::Right(async move {
            queued.map_err(RelayError::Route)?;
            outcome
                .await
                .map_err(|_| RelayError::Route("session copy closed".into()))?
                .map_err(RelayError::Route)
        })
    }

    async fn receive(&mut self) -> Option<ClientJsonRpcMessage> {
        tokio::select! {
            message = self.inner.receive() => message,
            Some(message) = self.responses.recv() => Some(message),
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        Ok(self.inner.close().await?)
    }
}

/// A session manager `M` whose copies' messages outside a request reach the
/// session's standalone stream wherever it is open (see the module docs).
#[derive(Debug)]
pub(crate) struct RelayedSessions<M> {
    inner: Arc<M>,
    cluster: Arc<Cluster>,
    owners: Arc<dyn SessionOwners>,
}

impl<M> RelayedSessions<M> {
    /// Wraps `inner`, routing through `cluster`; `owners` names each session's owner.
    pub(crate) fn new(
        inner: Arc<M>,
        cluster: Arc<Cluster>,
        owners: Arc<dyn SessionOwners>,
    ) -> Self {
        Self {
            inner,
            cluster,
            owners,
        }
    }

    /// `stream` as the session's standalone stream: the one relayed messages are
    /// written to if this instance could take it, otherwise as it is (a second stream).
    async fn standalone<S>(
        &self,
        id: &SessionId,
        stream: S,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static + use<S, M>, Error>
    where
        S: Stream<Item = ServerSseMessage> + Send + Sync + 'static,
    {
        let routes = &self.cluster.session_routes;
        if lock(&routes.streams).contains_key(id.as_ref()) {
            return Ok(stream.left_stream());
        }
        // Register first so that nothing published once the record names this
        // instance is missed; the backlog taken with the record goes out before it.
        let (tx, rx) = mpsc::channel(QUEUE);
        let token = routes.token();
        let record = format!("{} {token}", self.cluster.instance());
        let owner = self.owners.owner_of(id).flatten();
        lock(&routes.streams).insert(
            id.to_string(),
            Held {
                token,
                record: record.clone(),
                tx,
                owner,
            },
        );
        let backlog = match self.cluster.claim_stream(id, &record).await {
            Ok(Some(backlog)) => backlog,
            outcome => {
                let mut streams = lock(&routes.streams);
                if streams
                    .get(id.as_ref())
                    .is_some_and(|held| held.token == token)
                {
                    streams.remove(id.as_ref());
                }
                return outcome.map(|_| stream.left_stream());
            }
        };
        let guard = StreamGuard {
            cluster: self.cluster.clone(),
            session: id.to_string(),
            token,
            record,
        };
        let backlog: Vec<ServerSseMessage> = backlog
            .iter()
            .filter_map(|payload| serde_json::from_slice::<Relayed>(payload).ok())
            .filter_map(|relayed| serde_json::from_value(relayed.message).ok())
            .map(ServerSseMessage::from_message)
            .collect();
        let relayed = futures::stream::iter(backlog)
            .chain(tokio_stream::wrappers::ReceiverStream::new(rx))
            .map(Some);
        // The stream ends with the session copy's own stream, or when the relayed
        // messages stop (their queue overflowed).
        let end = || futures::stream::once(async { None });
        let merged = futures::stream::select(stream.map(Some).chain(end()), relayed.chain(end()))
            .take_while(|item| futures::future::ready(item.is_some()))
            .filter_map(futures::future::ready);
        Ok(Guarded {
            inner: merged,
            _guard: guard,
        }
        .right_stream())
    }
}

/// Ends the record of a standalone stream held here when the stream is dropped.
struct StreamGuard {
    cluster: Arc<Cluster>,
    session: String,
    token: u64,
    record: String,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        {
            let mut streams = lock(&self.cluster.session_routes.streams);
            if streams
                .get(&self.session)
                .is_some_and(|held| held.token == self.token)
            {
                streams.remove(&self.session);
            }
        }
        let cluster = self.cluster.clone();
        let session = std::mem::take(&mut self.session);
        let record = std::mem::take(&mut self.record);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { cluster.release_stream(&session, &record).await });
        }
    }
}

pin_project_lite::pin_project! {
    /// A stream carrying a guard dropped with it.
    struct Guarded<S> {
        #[pin]
        inner: S,
        _guard: StreamGuard,
    }
}

impl<S: Stream> Stream for Guarded<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        self.project().inner.poll_next(cx)
    }
}

impl<M> SessionManager for RelayedSessions<M>
where
    M: SessionManager,
{
    type Error = RelayError<M::Error>;
    type Transport = RelayedTransport<M::Transport>;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let (id, transport) = self.inner.create_session().await?;
        let transport = RelayedTransport::new(transport, id.clone(), self.cluster.clone());
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
        Ok(self.inner.close_session(id).await?)
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
        mut message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        let answered = match &mut message {
            JsonRpcMessage::Response(response) => Some(&mut response.id),
            JsonRpcMessage::Error(error) => error.id.as_mut(),
            _ => None,
        };
        if let Some(answered) = answered
            && let Some((instance, original)) = untag(answered)
        {
            let instance = instance.to_string();
            *answered = original;
            if instance != self.cluster.instance() {
                let delivered = self
                    .cluster
                    .relay_to_handler(&instance, id, &message)
                    .await
                    .map_err(|e| RelayError::Route(e.to_string()))?;
                if !delivered {
                    tracing::info!("response for an instance that is gone; dropped");
                }
                return Ok(());
            }
        }
        Ok(self.inner.accept_message(id, message).await?)
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let stream = self.inner.create_standalone_stream(id).await?;
        self.standalone(id, stream)
            .await
            .map_err(|e| RelayError::Route(e.to_string()))
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        // An event id without a request part is one of the standalone stream's.
        let standalone = !last_event_id.contains('/');
        let stream = self.inner.resume(id, last_event_id).await?;
        if standalone {
            Ok(self
                .standalone(id, stream)
                .await
                .map_err(|e| RelayError::Route(e.to_string()))?
                .left_stream())
        } else {
            Ok(stream.right_stream())
        }
    }

    async fn restore_session(
        &self,
        id: SessionId,
    ) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        Ok(match self.inner.restore_session(id.clone()).await? {
            RestoreOutcome::Restored(transport) => {
                RestoreOutcome::Restored(RelayedTransport::new(transport, id, self.cluster.clone()))
            }
            RestoreOutcome::AlreadyPresent => RestoreOutcome::AlreadyPresent,
            _ => RestoreOutcome::NotSupported,
        })
    }

    fn event_store(&self) -> Option<Arc<dyn EventStore>> {
        self.inner.event_store()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_ids_come_back_as_they_were() {
        let instance = "AAAAAAAAAAAAAAAA";
        for id in [
            NumberOrString::Number(7),
            NumberOrString::Number(-1),
            NumberOrString::String("a:b".into()),
        ] {
            let tagged = tag(instance, &id);
            assert_eq!(untag(&tagged), Some((instance, id)));
        }
        assert_eq!(untag(&NumberOrString::Number(3)), None);
        assert_eq!(untag(&NumberOrString::String("short:n:1".into())), None);
        assert_eq!(
            untag(&NumberOrString::String("AAAAAAAAAAAAAAAA:x".into())),
            None
        );
    }

    #[test]
    fn only_messages_outside_a_request_go_to_the_standalone_stream() {
        let notification: ServerJsonRpcMessage = serde_json::from_value(serde_json::json!({
            "jsonrpc": "2.0", "method": "notifications/message",
            "params": {"level": "info", "data": "hi"}
        }))
        .unwrap();
        assert!(for_standalone_stream(&notification));
        let progress: ServerJsonRpcMessage = serde_json::from_value(serde_json::json!({
            "jsonrpc": "2.0", "method": "notifications/progress",
            "params": {"progressToken": 1, "progress": 1}
        }))
        .unwrap();
        assert!(!for_standalone_stream(&progress));
        let mut request: ServerJsonRpcMessage = serde_json::from_value(serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "method": "roots/list"
        }))
        .unwrap();
        assert!(for_standalone_stream(&request));
        if let JsonRpcMessage::Request(request) = &mut request {
            request
                .request
                .extensions_mut()
                .insert(OriginatingRequestId(NumberOrString::Number(4)));
        }
        assert!(!for_standalone_stream(&request));
        let response: ServerJsonRpcMessage = serde_json::from_value(serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "result": {}
        }))
        .unwrap();
        assert!(!for_standalone_stream(&response));
    }
}
