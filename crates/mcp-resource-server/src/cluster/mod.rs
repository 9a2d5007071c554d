//! State shared by several instances behind a load balancer, through Redis
//! (`--redis-url`).
//!
//! Without a Redis URL none of this exists and every piece of state stays in the
//! process, as before. With one:
//!
//! | state | where | how |
//! |---|---|---|
//! | cookie sessions (`POST /session`) | `mcp:cookie:<SHA-256 of the cookie>` | JSON claims, the session's end as the key's expiry ([`cookies`]) |
//! | cookie-session caps | `mcp:cookies-of:<SHA-256 of the principal>`, `mcp:cookies` | sorted sets of session hashes: a principal's by opening time (its oldest ends past `--cookie-max-per-principal`), all by end (`503` past `--cookie-max-sessions`) ([`cookies`]) |
//! | ended cookie sessions | channel `mcp:cookie-ended` | every instance ends the event streams opened with the cookie |
//! | Streamable HTTP sessions | `mcp:session:<id>`, `mcp:session-owner:<id>` | the `initialize` parameters and the owner, expiring after the idle timeout (renewed in batches); re-created on any instance ([`mcp_sessions`]) |
//! | Streamable HTTP session caps | `mcp:sessions-of:<SHA-256 of the principal>` | a sorted set of session ids scored by expiry (429 past `--max-mcp-sessions-per-principal`, counted over all instances) ([`mcp_sessions`]) |
//! | ended Streamable HTTP sessions | channel `mcp:session-ended` | every instance drops its copy |
//! | stream limits per principal | `mcp:streams:<SHA-256 of the principal>` | a sorted set of leases scored by expiry ([`leases`]) |
//! | standalone `GET /mcp` streams | `mcp:get-stream:<id>`, `mcp:get-backlog:<id>` | the instance holding the session's stream (renewed while it is open); messages a handler sends outside a request go over that instance's channel `mcp:instance:<id>:messages`, or wait in the backlog for the next stream ([`session_messages`]) |
//! | legacy SSE sessions | `mcp:sse:<session id>` | owner instance and principal; messages go over the owner's channel `mcp:instance:<id>` ([`relay`]) |
//! | DPoP proofs seen | `mcp:dpop:<replay key>` | `SET NX PX` until the proof leaves its window: a proof replayed to another instance is refused ([`replay`]) |
//!
//! The JWKS and the cache of verified tokens stay per instance: they are derived from
//! public data (the authorization server's keys) and rebuilt on demand, so sharing
//! them would only add a network hop to every request.
//!
//! # Client
//! The [`redis`] crate (the most used Rust client, maintained by the Redis project)
//! with its tokio [`ConnectionManager`], which multiplexes one connection and
//! reconnects by itself. A task PINGs Redis twice a second; while Redis is away, every
//! request needing shared state is answered `503` with `Retry-After` at once instead of
//! waiting for a timeout, and the instance goes on serving everything else.
//!
//! # What can be lost
//! A message answered `202 Accepted` was published to, and received by, the instance
//! holding its stream. It is lost only if that instance dies before its handler reads
//! it, or if that session's queue is full; both end the stream, so the client sees
//! that its session is gone and reconnects. A POST is never answered 202 when no
//! instance received its message. What a Streamable HTTP handler sends outside a
//! request can be lost as [`session_messages`] says.

pub(crate) mod cookies;
pub(crate) mod leases;
pub(crate) mod mcp_sessions;
pub(crate) mod relay;
pub(crate) mod replay;
pub(crate) mod session_messages;

use std::{
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use futures::StreamExt;
use redis::{
    Client,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use tokio_util::sync::CancellationToken;

use self::{mcp_sessions::LocalMcpSessions, relay::HeldStreams};
use crate::error::Error;

/// Channel on which ended cookie sessions are announced (payload: the key hash).
const COOKIE_ENDED: &str = "mcp:cookie-ended";
/// How often Redis is PINGed.
const PING_INTERVAL: Duration = Duration::from_millis(500);
/// Longest wait for one Redis reply or connection.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// A connection to the Redis shared by the instances, and this instance's identity.
pub(crate) struct Cluster {
    client: Client,
    conn: ConnectionManager,
    instance: String,
    up: Arc<AtomicBool>,
    /// Which subscription to the instance channels is live: a new number on every
    /// (re)subscription, 0 while there is none. What was read from Redis while a
    /// subscription lived stays true until it ends, as every change to it is announced
    /// on those channels ([`mcp_sessions`]).
    subscription: AtomicU64,
    /// This instance's Streamable HTTP sessions, closed when another instance ends one.
    mcp_sessions: OnceLock<Arc<dyn LocalMcpSessions>>,
    /// Stream leases this instance holds (renewed by the watcher).
    leases: leases::HeldLeases,
    /// Streamable HTTP sessions served here since their last renewal.
    mcp_activity: mcp_sessions::Activity,
    /// Legacy SSE stream records read here.
    sse_owners: relay::Owners,
    /// Streamable HTTP standalone streams and session copies here, for the messages
    /// handlers send outside a request.
    session_routes: session_messages::Routes,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: it is not printed.
        f.debug_struct("Cluster")
            .field("instance", &self.instance)
            .field("up", &self.up.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Hex SHA-256 of `value`: how a cookie is named in Redis (never the raw value).
pub(crate) fn sha256_hex(value: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, value.as_bytes());
    digest.as_ref().iter().fold(String::new(), |mut out, b| {
        use std::fmt::Write;
        let _ = write!(out, "{b:02x}");
        out
    })
}

impl Cluster {
    /// A client for `url`; connects lazily (the instance starts while Redis is away).
    ///
    /// # Errors
    /// [`Error::Internal`] for a URL the client does not accept.
    pub(crate) fn new(url: &str) -> Result<Self, Error> {
        let client = Client::open(url)
            .map_err(|e| Error::Internal(format!("redis URL refused: {:?}", e.kind())))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| Error::Internal(format!("redis client: {:?}", e.kind())))?;
        Ok(Self {
            client,
            conn,
            instance: URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>()),
            up: Arc::new(AtomicBool::new(true)),
            subscription: AtomicU64::new(0),
            mcp_sessions: OnceLock::new(),
            leases: leases::HeldLeases::default(),
            mcp_activity: mcp_sessions::Activity::default(),
            sse_owners: relay::Owners::default(),
            session_routes: session_messages::Routes::default(),
        })
    }

    /// This instance's id (random per process).
    pub(crate) fn instance(&self) -> &str {
        &self.instance
    }

    /// Makes `sessions` (this instance's Streamable HTTP sessions) follow the ends
    /// announced by other instances.
    /// Their keys in Redis live as long as their idle timeout.
    pub(crate) fn follow_mcp_sessions(&self, sessions: Arc<dyn LocalMcpSessions>) {
        self.set_session_idle_timeout(sessions.idle_timeout());
        let _ = self.mcp_sessions.set(sessions);
    }

    /// Whether the last PING was answered.
    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// The live subscription's number, if there is one and Redis answers PINGs.
    pub(crate) fn subscription(&self) -> Option<u64> {
        match self.subscription.load(Ordering::Acquire) {
            0 => None,
            _ if !self.is_up() => None,
            live => Some(live),
        }
    }

    /// A connection for one operation, or 503 while Redis is known to be away.
    fn conn(&self) -> Result<ConnectionManager, Error> {
        if self.is_up() {
            Ok(self.conn.clone())
        } else {
            Err(Error::StoreUnavailable("redis is not answering".into()))
        }
    }

    /// Starts the PING task and the subscriber delivering other instances' messages to
    /// `sse` (forwarded posts, ended cookie sessions); both stop with `shutdown`.
    pub(crate) fn spawn_tasks(
        self: &Arc<Self>,
        sse: Arc<dyn HeldStreams>,
        shutdown: CancellationToken,
    ) {
        let this = self.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move { this.watch(stop).await });
        let this = self.clone();
        tokio::spawn(async move { this.subscribe(sse, shutdown).await });
    }

    async fn watch(&self, shutdown: CancellationToken) {
        let mut conn = self.conn.clone();
        let mut renewed = tokio::time::Instant::now();
        loop {
            let ping = tokio::time::timeout(
                REDIS_TIMEOUT,
                redis::cmd("PING").query_async::<String>(&mut conn),
            )
            .await;
            let up = matches!(ping, Ok(Ok(_)));
            if self.up.swap(up, Ordering::Relaxed) != up {
                if up {
                    tracing::info!("redis is back: shared state available again");
                } else {
                    tracing::warn!("redis is not answering: requests needing shared state get 503");
                }
            }
            if up && renewed.elapsed() >= leases::RENEW_EVERY {
                self.renew_leases().await;
                self.renew_streams().await;
                self.renew_sessions().await;
                renewed = tokio::time::Instant::now();
            }
            tokio::select! {
                () = tokio::time::sleep(PING_INTERVAL) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// Subscribes to this instance's channel and to the ended cookie sessions,
    /// resubscribing whenever the connection drops.
    async fn subscribe(&self, sse: Arc<dyn HeldStreams>, shutdown: CancellationToken) {
        let own = relay::instance_channel(&self.instance);
        let relayed = session_messages::channel(&self.instance);
        let mut generation = 0;
        loop {
            let connected = async {
                let mut pubsub = self.client.get_async_pubsub().await?;
                pubsub
                    .subscribe(&[
                        own.as_str(),
                        relayed.as_str(),
                        COOKIE_ENDED,
                        mcp_sessions::SESSION_ENDED,
                    ])
                    .await?;
                Ok::<_, redis::RedisError>(pubsub)
            };
            match tokio::time::timeout(REDIS_TIMEOUT * 2, connected).await {
                Ok(Ok(pubsub)) => {
                    tracing::debug!("subscribed to the instance channels");
                    let mut messages = pubsub.into_on_message();
                    generation += 1;
                    self.subscription.store(generation, Ordering::Release);
                    loop {
                        let message = tokio::select! {
                            message = messages.next() => message,
                            () = shutdown.cancelled() => return,
                        };
                        let Some(message) = message else {
                            self.subscription.store(0, Ordering::Release);
                            break;
                        };
                        let payload = message.get_payload_bytes();
                        let channel = message.get_channel_name();
                        if channel == relayed {
                            self.session_routes.deliver(payload);
                        } else if channel == mcp_sessions::SESSION_ENDED {
                            let id = String::from_utf8_lossy(payload).into_owned();
                            if let Some(sessions) = self.mcp_sessions.get() {
                                let sessions = sessions.clone();
                                tokio::spawn(async move {
                                    sessions.close(id.into()).await;
                                });
                            }
                        } else if channel == COOKIE_ENDED {
                            let hash = String::from_utf8_lossy(payload);
                            let ended = sse.end_cookie_streams_hashed(&hash);
                            if ended > 0 {
                                tracing::info!(
                                    streams = ended,
                                    "event streams of a cookie session ended elsewhere closed"
                                );
                            }
                        } else {
                            relay::deliver(&*sse, payload);
                        }
                    }
                    tracing::warn!("redis subscription lost; resubscribing");
                }
                Ok(Err(error)) => {
                    tracing::debug!(kind = ?error.kind(), "cannot subscribe to redis yet");
                }
                Err(_) => tracing::debug!("redis subscription timed out"),
            }
            tokio::select! {
                () = tokio::time::sleep(PING_INTERVAL) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// Announces that the cookie session whose key hash is `hash` ended.
    ///
    /// # Errors
    /// [`Error::StoreUnavailable`] when Redis cannot be reached.
    pub(crate) async fn announce_cookie_ended(&self, hash: &str) -> Result<(), Error> {
        let mut conn = self.conn()?;
        redis::cmd("PUBLISH")
            .arg(COOKIE_ENDED)
            .arg(hash)
            .query_async::<usize>(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

/// A Redis failure, as the 503 it is answered with.
pub(crate) fn unavailable(error: redis::RedisError) -> Error {
    Error::StoreUnavailable(format!("redis: {:?}", error.kind()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_hex_of_the_digest() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn debug_hides_the_url() {
        // Building the lazy client needs no server, but it needs a runtime.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = runtime.enter();
        let cluster = Cluster::new("redis://:hunter2@127.0.0.1:1/0").unwrap();
        let text = format!("{cluster:?}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
