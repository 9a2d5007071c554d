//! The legacy HTTP+SSE transport (MCP 2024-11-05), which rmcp no longer ships.
//!
//! `GET /sse` opens an event stream whose first event is `endpoint` with data
//! `/messages?sessionId=<id>`; the same rmcp handler as `/mcp` then runs over a pair
//! of channels ([`ChannelTransport`]), from the session's first message on, and its
//! messages arrive as `event: message`.
//! `POST /messages?sessionId=<id>` delivers one JSON-RPC message and answers 202.
//!
//! # Security
//! - A session id is never a credential: every POST is authorized on its own (bearer
//!   header or session cookie) and must come from the principal (`iss`, `sub`) that
//!   opened the stream; otherwise it is answered as an unknown session.
//! - The stream closes when the token that opened it stops being accepted, and when
//!   the cookie session that opened it ends (`DELETE /session`).
//! - One principal holds at most a configured number of streams
//!   ([`crate::stream_limit`]); past it, 429.

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Extension,
    body::Body,
    extract::{Query, Request, State},
    http::{HeaderMap, StatusCode, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use futures::future::BoxFuture;
use futures::{Stream, StreamExt, stream};
use rmcp::{
    RoleServer, ServerHandler, ServiceExt,
    model::{ClientJsonRpcMessage, GetExtensions, ServerJsonRpcMessage},
    transport::Transport,
};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::{
    auth::{
        AuthMethod, AuthorizedUntil, ToolScopePolicy,
        claims::{Principal, VerifiedClaims},
    },
    cluster::{
        Cluster,
        relay::{HeldStreams, StreamOwner},
    },
    config::ValidatedConfig,
    cookie_session::cookie_value,
    error::{ChallengeContext, Error},
    origin::cookie_stream_allowed,
    stream_limit::{StreamSlot, StreamSlots},
};

/// Queue depth between the HTTP side and the MCP handler, each way.
const CHANNEL_DEPTH: usize = 64;
/// How long a POST waits for room in a session's queue.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// The transport was closed (the stream ended or the handler stopped).
#[derive(Debug, thiserror::Error)]
#[error("SSE session closed")]
pub(crate) struct SessionClosed;

/// An rmcp [`Transport`] over two tokio channels: client messages in, server messages out.
///
/// Messages travel boxed: a bounded channel reserves room for its whole depth up front,
/// and the message enums are several hundred bytes each, which idle streams would pay for.
#[derive(Debug)]
pub(crate) struct ChannelTransport {
    inbound: mpsc::Receiver<Box<ClientJsonRpcMessage>>,
    outbound: mpsc::Sender<Box<ServerJsonRpcMessage>>,
}

impl ChannelTransport {
    /// A transport and its two ends: where to push client messages, where server ones come out.
    pub(crate) fn new(
        depth: usize,
    ) -> (
        Self,
        mpsc::Sender<Box<ClientJsonRpcMessage>>,
        mpsc::Receiver<Box<ServerJsonRpcMessage>>,
    ) {
        let (in_tx, in_rx) = mpsc::channel(depth);
        let (out_tx, out_rx) = mpsc::channel(depth);
        (
            Self {
                inbound: in_rx,
                outbound: out_tx,
            },
            in_tx,
            out_rx,
        )
    }
}

impl Transport<RoleServer> for ChannelTransport {
    type Error = SessionClosed;

    fn send(
        &mut self,
        item: ServerJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let outbound = self.outbound.clone();
        async move {
            outbound
                .send(Box::new(item))
                .await
                .map_err(|_| SessionClosed)
        }
    }

    async fn receive(&mut self) -> Option<ClientJsonRpcMessage> {
        self.inbound.recv().await.map(|m| *m)
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.inbound.close();
        Ok(())
    }
}

/// Makes a legacy SSE session's MCP handler and runs it on the session's transport
/// until the token is cancelled. Type-erased, so the routes need no handler type.
pub(crate) type HandlerStarter =
    Arc<dyn Fn(ChannelTransport, CancellationToken) -> BoxFuture<'static, ()> + Send + Sync>;

/// The [`HandlerStarter`] of the handlers `factory` makes.
pub(crate) fn handler_starter<H, F>(factory: F) -> HandlerStarter
where
    H: ServerHandler,
    F: Fn() -> H + Send + Sync + 'static,
{
    Arc::new(move |transport, cancel| {
        let handler = factory();
        Box::pin(async move {
            match handler.serve_with_ct(transport, cancel).await {
                Ok(running) => {
                    let _ = running.waiting().await;
                }
                Err(error) => {
                    tracing::debug!(%error, "legacy SSE session ended before initialization");
                }
            }
        })
    })
}

struct Session {
    owner: Principal,
    /// The cookie session the stream was opened with, if any.
    cookie: Option<String>,
    /// Ends the stream and stops its handler.
    cancel: CancellationToken,
    handler: Handler,
}

/// The session's MCP handler. It starts with the session's first message, so a stream
/// that never posts (most of them, when many are held open) costs neither a handler
/// task nor its queues.
enum Handler {
    /// Not started: how to make and run the handler, and how to hand the event stream
    /// its messages.
    Idle {
        start: HandlerStarter,
        started: oneshot::Sender<mpsc::Receiver<Box<ServerJsonRpcMessage>>>,
    },
    /// Running: where client messages go.
    Running {
        inbound: mpsc::Sender<Box<ClientJsonRpcMessage>>,
    },
    /// Being started (only while the sessions are locked).
    Starting,
}

impl Session {
    /// Where client messages go, starting the handler on the first one.
    fn inbound(&mut self) -> Option<mpsc::Sender<Box<ClientJsonRpcMessage>>> {
        if let Handler::Running { inbound } = &self.handler {
            return Some(inbound.clone());
        }
        let Handler::Idle { start, started } =
            std::mem::replace(&mut self.handler, Handler::Starting)
        else {
            return None;
        };
        let (transport, inbound, outbound) = ChannelTransport::new(CHANNEL_DEPTH);
        // The stream is gone if this fails; the session ends with it.
        let _ = started.send(outbound);
        tokio::spawn(start(transport, self.cancel.clone()));
        self.handler = Handler::Running {
            inbound: inbound.clone(),
        };
        Some(inbound)
    }
}

/// Open legacy SSE sessions.
#[derive(Default)]
pub(crate) struct LegacySseSessions {
    sessions: Mutex<HashMap<String, Session>>,
}

impl std::fmt::Debug for LegacySseSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacySseSessions")
            .field("open", &self.len())
            .finish()
    }
}

impl LegacySseSessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Number of open streams.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Ends the streams opened with the cookie session `cookie`; returns how many.
    pub(crate) fn end_cookie_streams(&self, cookie: &str) -> usize {
        let sessions = self.lock();
        let mut ended = 0;
        for session in sessions.values() {
            if session.cookie.as_deref() == Some(cookie) {
                session.cancel.cancel();
                ended += 1;
            }
        }
        ended
    }

    fn sender_for(
        &self,
        id: &str,
        principal: &Principal,
    ) -> Option<mpsc::Sender<Box<ClientJsonRpcMessage>>> {
        let mut sessions = self.lock();
        let session = sessions.get_mut(id)?;
        if session.owner != *principal {
            return None;
        }
        session.inbound()
    }
}

impl HeldStreams for LegacySseSessions {
    fn end_cookie_streams_hashed(&self, hash: &str) -> usize {
        let sessions = self.lock();
        let mut ended = 0;
        for session in sessions.values() {
            if session
                .cookie
                .as_deref()
                .is_some_and(|cookie| crate::cluster::sha256_hex(cookie) == hash)
            {
                session.cancel.cancel();
                ended += 1;
            }
        }
        ended
    }

    fn deliver_forwarded(
        &self,
        id: &str,
        claims: Option<Arc<VerifiedClaims>>,
        mut message: ClientJsonRpcMessage,
    ) -> bool {
        // A session whose queue is full is ended rather than made to drop the message
        // silently.
        let principal = principal_of(claims.as_ref());
        let Some(sender) = self.sender_for(id, &principal) else {
            return false;
        };
        let (mut parts, ()) = axum::http::Request::post("/messages")
            .body(())
            .expect("static request parts")
            .into_parts();
        if let Some(claims) = claims {
            parts.extensions.insert(claims);
        }
        attach_parts(&mut message, parts);
        match sender.try_send(Box::new(message)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!("forwarded message for a full session; the session is ended");
                if let Some(session) = self.lock().get(id) {
                    session.cancel.cancel();
                }
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// What the legacy SSE routes (`GET /sse`, `POST /messages`) work with.
#[derive(Clone)]
pub(crate) struct LegacySseState {
    /// The configuration.
    pub(crate) config: Arc<ValidatedConfig>,
    /// State shared with other instances (`--redis-url`), if any.
    pub(crate) cluster: Option<Arc<Cluster>>,
    /// The open sessions.
    pub(crate) sse_sessions: Arc<LegacySseSessions>,
    /// Open event streams, overall and per principal.
    pub(crate) stream_slots: Arc<StreamSlots>,
    /// Reads the bodies of `POST /messages`.
    pub(crate) tool_policy: Arc<ToolScopePolicy>,
    /// Tool scopes for `/messages` (challenges point at the `/sse` PRM).
    pub(crate) sse_tool_policy: Arc<ToolScopePolicy>,
    /// Challenge details for the SSE routes.
    pub(crate) sse_challenge: ChallengeContext,
    /// Ends the streams at shutdown.
    pub(crate) shutdown: CancellationToken,
    /// Makes and runs each session's MCP handler.
    pub(crate) sse_handlers: HandlerStarter,
}

/// Removes the session, stops its handler and frees its stream slot when the stream
/// is dropped.
struct SessionGuard {
    sessions: Arc<LegacySseSessions>,
    /// The shared state holding the stream's record, if any.
    cluster: Option<Arc<Cluster>>,
    id: String,
    cancel: CancellationToken,
    _slot: StreamSlot,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.sessions.lock().remove(&self.id);
        self.cancel.cancel();
        if let Some(cluster) = self.cluster.take() {
            let id = std::mem::take(&mut self.id);
            tokio::spawn(async move { cluster.forget_stream(&id).await });
        }
        tracing::debug!("legacy SSE session closed");
    }
}

/// `GET /sse`: opens a session and its event stream.
pub(crate) async fn open_stream(
    State(state): State<LegacySseState>,
    claims: Option<Extension<Arc<VerifiedClaims>>>,
    until: Option<Extension<AuthorizedUntil>>,
    method: Option<Extension<AuthMethod>>,
    headers: HeaderMap,
) -> Response {
    let claims = claims.map(|Extension(c)| c);
    if matches!(method, Some(Extension(AuthMethod::Cookie { .. })))
        && !cookie_stream_allowed(&headers)
    {
        tracing::info!(
            "refused a cookie-authenticated event stream that is not a same-origin fetch"
        );
        return Error::OriginNotAllowed.into_response_with(Some(&state.sse_challenge));
    }
    let slot = match state
        .stream_slots
        .acquire_anywhere(claims.as_ref().map(|c| c.principal()))
        .await
    {
        Ok(slot) => slot,
        Err(error) => return error.into_response_with(Some(&state.sse_challenge)),
    };
    let cookie = match method {
        Some(Extension(AuthMethod::Cookie { .. })) => {
            cookie_value(&headers, &state.config.cookie_name).map(str::to_string)
        }
        _ => None,
    };
    let owner = principal_of(claims.as_ref());
    let id = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>());
    // The stream ends with the token (or the cookie session, if earlier). With
    // authorization off there is no token to expire; the stream lives until closed.
    let lifetime = until.map_or(Duration::from_secs(u64::from(u32::MAX)), |Extension(u)| {
        u.remaining()
    });
    // With shared state, other instances learn where the stream is before its id is
    // handed out.
    if let Some(cluster) = &state.cluster
        && let Err(error) = cluster.register_stream(&id, &owner, lifetime).await
    {
        return error.into_response_with(Some(&state.sse_challenge));
    }
    let (started, outbound) = oneshot::channel();
    // Ends with the session, and with the server.
    let cancel = state.shutdown.child_token();
    state.sse_sessions.lock().insert(
        id.clone(),
        Session {
            owner,
            cookie,
            cancel: cancel.clone(),
            handler: Handler::Idle {
                start: state.sse_handlers.clone(),
                started,
            },
        },
    );
    let guard = SessionGuard {
        sessions: state.sse_sessions.clone(),
        cluster: state.cluster.clone(),
        id: id.clone(),
        cancel: cancel.clone(),
        _slot: slot,
    };
    if let Some(claims) = &claims {
        tracing::info!(subject = %claims.subject, token = %claims.token_fingerprint, lifetime_secs = lifetime.as_secs(), "legacy SSE session opened");
    }
    let stream = event_stream(id, outbound, lifetime, cancel, guard);
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

fn event_stream(
    id: String,
    outbound: oneshot::Receiver<mpsc::Receiver<Box<ServerJsonRpcMessage>>>,
    lifetime: Duration,
    ended: CancellationToken,
    guard: SessionGuard,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    let endpoint = Event::default()
        .event("endpoint")
        .data(format!("/messages?sessionId={id}"));
    // The handler's messages, once its first message has started it.
    let messages = stream::once(outbound)
        .filter_map(|started| async move { started.ok() })
        .flat_map(|outbound| {
            stream::unfold(outbound, |mut rx| async move {
                rx.recv().await.map(|m| (*m, rx))
            })
        })
        .filter_map(|message| async move {
            match serde_json::to_string(&message) {
                Ok(json) => Some(Event::default().event("message").data(json)),
                Err(error) => {
                    tracing::warn!(%error, "could not serialise an MCP message");
                    None
                }
            }
        });
    stream::once(async move { endpoint })
        .chain(messages)
        .take_until(async move {
            tokio::select! {
                () = tokio::time::sleep(lifetime) => tracing::debug!("legacy SSE stream closed at token expiry"),
                () = ended.cancelled_owned() => tracing::debug!("legacy SSE stream closed with its session or the server"),
            }
        })
        .map(move |event| {
            let _ = &guard;
            Ok(event)
        })
}

/// Query of `POST /messages`.
#[derive(Debug, Deserialize)]
pub(crate) struct MessageQuery {
    /// The session id from the `endpoint` event.
    #[serde(rename = "sessionId")]
    session_id: String,
}

fn is_json(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// `POST /messages?sessionId=<id>`: delivers one JSON-RPC message to the session.
pub(crate) async fn post_message(
    State(state): State<LegacySseState>,
    query: Result<Query<MessageQuery>, axum::extract::rejection::QueryRejection>,
    request: Request,
) -> Response {
    let challenge = state.sse_challenge.clone();
    let fail = |error: Error| error.into_response_with(Some(&challenge));
    let Ok(Query(query)) = query else {
        return fail(Error::BadRequest("missing sessionId"));
    };
    if !is_json(&request) {
        return fail(Error::UnsupportedMediaType);
    }
    let claims = request.extensions().get::<Arc<VerifiedClaims>>().cloned();
    let principal = principal_of(claims.as_ref());
    let route = match state.sse_sessions.sender_for(&query.session_id, &principal) {
        Some(sender) => Route::Here(sender),
        None => match &state.cluster {
            Some(cluster) => match cluster.stream_owner(&query.session_id).await {
                Ok(Some(owner)) if owner.principal == principal => {
                    Route::Elsewhere(cluster.clone(), owner)
                }
                Ok(_) => Route::Unknown,
                Err(error) => return fail(error),
            },
            None => Route::Unknown,
        },
    };
    if matches!(route, Route::Unknown) {
        if let Some(claims) = &claims {
            tracing::info!(subject = %claims.subject, "POST to an unknown session or one opened by another principal");
        }
        return fail(Error::SessionNotFound);
    }
    let (parts, body) = request.into_parts();
    let bytes = match state.tool_policy.read_body(body).await {
        Ok(bytes) => bytes,
        Err(error) => return fail(error),
    };
    if let Some(claims) = &claims
        && let Err(error) = state.sse_tool_policy.check(&bytes, claims)
    {
        return fail(error);
    }
    let mut message: ClientJsonRpcMessage = match serde_json::from_slice(&bytes) {
        Ok(message) => message,
        Err(_) => return fail(Error::BadRequest("body is not a JSON-RPC message")),
    };
    let sender = match route {
        Route::Here(sender) => sender,
        Route::Elsewhere(cluster, owner) => {
            let Ok(json) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                return fail(Error::BadRequest("body is not a JSON-RPC message"));
            };
            return match cluster
                .forward(&owner, &query.session_id, claims.as_deref(), json)
                .await
            {
                Ok(true) => accepted(),
                Ok(false) => fail(Error::SessionNotFound),
                Err(error) => fail(error),
            };
        }
        Route::Unknown => return fail(Error::SessionNotFound),
    };
    attach_parts(&mut message, parts);
    // A client that does not read its stream fills both queues; it gets 503, and the
    // server holds no more than the queues' depth for it.
    match tokio::time::timeout(SEND_TIMEOUT, sender.send(Box::new(message))).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return fail(Error::SessionNotFound),
        Err(_) => return fail(Error::Busy),
    }
    accepted()
}

/// Where a posted message goes.
enum Route {
    /// A session of this instance.
    Here(mpsc::Sender<Box<ClientJsonRpcMessage>>),
    /// A session another instance holds.
    Elsewhere(Arc<Cluster>, StreamOwner),
    /// No session of the poster's.
    Unknown,
}

fn accepted() -> Response {
    let mut response = StatusCode::ACCEPTED.into_response();
    *response.body_mut() = Body::from("Accepted");
    response
}

/// The principal of `claims`, or the anonymous one with authorization off.
fn principal_of(claims: Option<&Arc<VerifiedClaims>>) -> Principal {
    claims.map_or_else(
        || Principal {
            issuer: String::new(),
            subject: "anonymous".into(),
        },
        |c| c.principal(),
    )
}

/// Gives the handler the request head (and the verified claims in it).
fn attach_parts(message: &mut ClientJsonRpcMessage, parts: axum::http::request::Parts) {
    match message {
        ClientJsonRpcMessage::Request(request) => {
            request.request.extensions_mut().insert(parts);
        }
        ClientJsonRpcMessage::Notification(notification) => {
            notification.notification.extensions_mut().insert(parts);
        }
        _ => {}
    }
}
