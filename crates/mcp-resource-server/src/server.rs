//! Router assembly and serving.
//!
//! | route | what | authorization |
//! |---|---|---|
//! | `GET /.well-known/oauth-protected-resource[/mcp\|/sse]` | PRM (RFC 9728) | public, CORS `*` |
//! | `/mcp` | MCP Streamable HTTP (rmcp); standalone event streams end when the token does and count against the per-principal stream limit | Bearer |
//! | `GET /sse`, `POST /messages?sessionId=` | legacy HTTP+SSE | Bearer or session cookie |
//! | `POST /session` | issue the session cookie | Bearer |
//! | `DELETE /session` | end the session cookie and its event streams | none |
//! | routes added with [`McpResourceServer::with_routes`] | the embedder's | the embedder's |
//!
//! Every route checks `Host`; every route but the PRM (and the added ones) checks
//! `Origin`.

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    Router,
    body::HttpBody,
    http::{HeaderName, Method, header},
    middleware,
    routing::{get, post},
};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use mcp_auth_proto::origin::origin_allowed;
use rmcp::{
    ServerHandler,
    transport::{
        StreamableHttpServerConfig, StreamableHttpService,
        streamable_http_server::session::{
            SessionManager, local::LocalSessionManager, never::NeverSessionManager,
        },
    },
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::{Service, ServiceBuilder, util::Either};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::{
    auth::{
        AuthLayer, DpopVerifier, IntrospectionConfig, Introspector, JwksCache, JwksSource,
        ToolScopePolicy, Validator, ValidatorConfig, VerifyToken, layer::CookieAuth,
        stream_expiry::end_streams_at_expiry, tool_scope::ToolScopeLayer,
    },
    cluster::{Cluster, mcp_sessions::RedisSessionStore, session_messages::RelayedSessions},
    config::{Config, ConfigError, ValidatedConfig},
    connection::{AcceptBackoff, Activity, Tracked, idle_watch},
    cookie_session::CookieSessions,
    cookie_store::{
        CookieRouteState, CookieStore, NamedCookieStore, create_session, delete_session,
    },
    error::{ChallengeContext, DpopAdvert},
    host::{HostCheck, HostLayer, HostService},
    in_flight_ids::{InFlightIds, refuse_duplicate_ids},
    legacy_sse::{HandlerStarter, handler_starter},
    legacy_sse::{LegacySseSessions, LegacySseState, open_stream, post_message},
    mcp_session_owners::{McpSessionOwners, OwnedSessionManager, SessionBinding, bind_sessions},
    origin::{OriginCheck, OriginLayer, OriginPolicy},
    request_span::{RequestSpan, RequestSpanLayer},
    stream_limit::{StreamSlots, limit_streams},
};

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A wrong setting.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A socket failure.
    #[error("server I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Shared state of all routes.
#[derive(Clone)]
pub(crate) struct AppState {
    /// The configuration.
    pub config: Arc<ValidatedConfig>,
    /// The JWT validator (`None` with authorization off or with introspection).
    pub validator: Option<Arc<Validator>>,
    /// DPoP proof checks and their replay cache (`None` when DPoP is off).
    pub dpop: Option<Arc<DpopVerifier>>,
    /// What the authorization layers verify tokens with: the JWT validator, or the
    /// introspection client (`None` with authorization off).
    pub verifier: Option<Arc<dyn VerifyToken>>,
    /// Cookie sessions.
    pub cookie_sessions: Arc<CookieStore>,
    /// State shared with other instances (`--redis-url`), if any.
    pub cluster: Option<Arc<Cluster>>,
    /// Legacy SSE sessions.
    pub sse_sessions: Arc<LegacySseSessions>,
    /// Open event streams, overall and per principal.
    pub stream_slots: Arc<StreamSlots>,
    /// Live Streamable HTTP sessions and their owners.
    pub mcp_sessions: Arc<McpSessionOwners>,
    /// Tool scopes for `/mcp`.
    pub tool_policy: Arc<ToolScopePolicy>,
    /// Tool scopes for `/messages` (challenges point at the `/sse` PRM).
    pub sse_tool_policy: Arc<ToolScopePolicy>,
    /// Challenge details for the SSE routes.
    pub sse_challenge: ChallengeContext,
    /// Stops streams and sessions at shutdown.
    pub shutdown: CancellationToken,
    /// Makes and runs the MCP handler of a legacy SSE session.
    pub sse_handlers: HandlerStarter,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .field("cluster", &self.cluster)
            .field("sse_sessions", &self.sse_sessions)
            .field("stream_slots", &self.stream_slots)
            .field("mcp_sessions", &self.mcp_sessions)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State for `config`, whose legacy SSE sessions run the handlers `sse_handlers`
    /// starts; `listen` (if loopback) is added to the allowed hosts.
    pub(crate) fn new(
        mut config: ValidatedConfig,
        listen: Option<SocketAddr>,
        sse_handlers: HandlerStarter,
    ) -> Self {
        if let Some(addr) = listen
            && addr.ip().is_loopback()
        {
            let literal = match addr {
                SocketAddr::V4(v4) => format!("{}:{}", v4.ip(), v4.port()),
                SocketAddr::V6(v6) => format!("[{}]:{}", v6.ip(), v6.port()),
            };
            if !config.allowed_hosts.contains(&literal) {
                config.allowed_hosts.push(literal);
            }
        }
        let introspector = match (&config.raw.introspection, &config.introspection_endpoint) {
            (Some(settings), Some(endpoint)) if !config.raw.no_auth => {
                Some(Arc::new(Introspector::new(IntrospectionConfig {
                    endpoint: endpoint.clone(),
                    client_id: settings.client_id.clone(),
                    client_secret: settings.client_secret.clone(),
                    issuer: config.issuer.clone(),
                    audiences: config.audiences.clone(),
                    leeway: config.raw.leeway,
                    cache_ceiling: settings.cache_ceiling,
                    cache_capacity: settings.cache_capacity,
                    timeout: settings.timeout,
                    max_token_bytes: config.raw.max_token_bytes,
                })))
            }
            _ => None,
        };
        let validator = (!config.raw.no_auth && introspector.is_none()).then(|| {
            let source = match &config.jwks_uri {
                Some(uri) => JwksSource::Uri(uri.clone()),
                None => JwksSource::Discover {
                    issuer: config.issuer.clone(),
                    issuer_url: config.issuer_url.clone(),
                },
            };
            let jwks = Arc::new(JwksCache::new(source, config.raw.jwks.clone()));
            Arc::new(Validator::new(
                ValidatorConfig {
                    issuer: config.issuer.clone(),
                    audiences: config.audiences.clone(),
                    leeway: config.raw.leeway,
                    max_token_bytes: config.raw.max_token_bytes,
                    cache_capacity: config.raw.token_cache_capacity,
                },
                jwks,
            ))
        });
        let dpop = if config.raw.no_auth {
            None
        } else {
            DpopVerifier::new(&config.raw.dpop, &config.public_url)
                .expect("DPoP settings are checked by Config::validate")
                .map(Arc::new)
        };
        let dpop_advert = dpop.as_ref().map(|d| DpopAdvert {
            algs: d.algs().to_string(),
            required: d.required(),
        });
        let verifier: Option<Arc<dyn VerifyToken>> = match (&introspector, &validator) {
            (Some(introspector), _) => Some(introspector.clone()),
            (None, Some(validator)) => Some(validator.clone()),
            (None, None) => None,
        };
        let mcp_challenge = ChallengeContext {
            resource_metadata: Some(config.prm_url("mcp")),
            scope: config.required_scopes.clone(),
            dpop: dpop_advert.clone(),
        };
        let sse_challenge = ChallengeContext {
            resource_metadata: Some(config.prm_url("sse")),
            scope: config.required_scopes.clone(),
            dpop: dpop_advert,
        };
        let policy = |challenge: &ChallengeContext| {
            Arc::new(ToolScopePolicy {
                required: config.required_scopes.clone(),
                per_tool: config.tool_scopes.clone(),
                max_body_bytes: config.raw.max_body_bytes,
                challenge: challenge.clone(),
            })
        };
        let tool_policy = policy(&mcp_challenge);
        let sse_tool_policy = policy(&sse_challenge);
        let stream_slots = Arc::new(StreamSlots::new(
            config.raw.max_streams_per_principal,
            config.raw.max_streams,
        ));
        let mcp_sessions = Arc::new(McpSessionOwners::new(
            config.raw.max_mcp_sessions_per_principal,
            config.raw.max_mcp_sessions,
        ));
        let cookie_sessions = Arc::new(CookieStore::Local(CookieSessions::new(
            config.raw.cookie.max_per_principal,
            config.raw.cookie.max_sessions,
        )));
        Self {
            config: Arc::new(config),
            validator,
            dpop,
            verifier,
            cookie_sessions,
            cluster: None,
            sse_sessions: Arc::default(),
            stream_slots,
            mcp_sessions,
            tool_policy,
            sse_tool_policy,
            sse_challenge,
            shutdown: CancellationToken::new(),
            sse_handlers,
        }
    }

    /// Keeps the session state in Redis at `url`, shared with the other instances
    /// (connecting lazily: Redis may come later), and starts the tasks that watch Redis
    /// and receive the other instances' messages. Call it before serving.
    ///
    /// # Errors
    /// [`ConfigError`] for a URL the Redis client refuses.
    pub(crate) fn share_state(&mut self, url: &str) -> Result<(), ConfigError> {
        let cluster =
            Arc::new(Cluster::new(url).map_err(|e| ConfigError::new("redis-url", e.to_string()))?);
        cluster.spawn_tasks(self.sse_sessions.clone(), self.shutdown.clone());
        let cookie = &self.config.raw.cookie;
        self.cookie_sessions = Arc::new(CookieStore::Shared {
            cluster: cluster.clone(),
            per_principal: cookie.max_per_principal.max(1),
            capacity: cookie.max_sessions.max(1),
        });
        self.stream_slots = Arc::new(
            StreamSlots::new(
                self.config.raw.max_streams_per_principal,
                self.config.raw.max_streams,
            )
            .shared(cluster.clone()),
        );
        if let Some(dpop) = &self.dpop {
            dpop.share_replay(cluster.clone());
        }
        self.cluster = Some(cluster);
        Ok(())
    }
}

/// The rmcp Streamable HTTP service behind an `Arc`: cloning it (which tower does for
/// every request, once per layer above it) is a reference-count increment instead of a
/// copy of rmcp's settings.
struct McpEndpoint<H, M>(Arc<StreamableHttpService<H, M>>);

impl<H, M> Clone for McpEndpoint<H, M> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<H, M, B> Service<axum::http::Request<B>> for McpEndpoint<H, M>
where
    H: ServerHandler,
    M: SessionManager,
    B: HttpBody + Send + 'static,
    B::Error: std::fmt::Display,
    B::Data: Send + 'static,
{
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        let service = self.0.clone();
        // A request's reply leaves with the head of its event stream (crate::sse_reply).
        let gather = request.method() == Method::POST;
        Box::pin(async move {
            let response = service.handle(request).await;
            Ok(if gather {
                crate::sse_reply::gather(response, crate::sse_reply::GRACE).await
            } else {
                response.map(axum::body::Body::new)
            })
        })
    }
}

/// The CORS policy of the protected routes: the allowed origins may send credentials and
/// the MCP headers, and read the challenge and the session id.
fn cors(config: &ValidatedConfig) -> CorsLayer {
    // A predicate rather than a list: the layer is cloned for every request, and a list
    // would be copied each time. It is the rule of the `Origin` check and the cookie
    // check, so a browser is never told yes by CORS and then refused by those, or the
    // other way round.
    let allowed_origins: Arc<[String]> = config.allowed_origins.clone().into();
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            origin
                .to_str()
                .is_ok_and(|origin| origin_allowed(&allowed_origins, origin))
        }))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            HeaderName::from_static("dpop"),
            HeaderName::from_static("last-event-id"),
            HeaderName::from_static("mcp-session-id"),
            HeaderName::from_static("mcp-protocol-version"),
        ])
        .expose_headers([
            header::WWW_AUTHENTICATE,
            HeaderName::from_static("dpop-nonce"),
            HeaderName::from_static("mcp-session-id"),
        ])
}

/// What every protected route has in front of it: CORS for the allowed origins, and the
/// `Origin` check.
struct RouteGuard {
    cors: CorsLayer,
    origin: OriginLayer,
}

/// `/mcp`: rmcp's Streamable HTTP service behind CORS, the `Origin` check and the
/// authorization layers, composed once with [`ServiceBuilder`] into the route's one
/// service (each `Router::layer` would box the stack below it again, and every level
/// is cloned and moved on every request).
///
/// Stateless mode has neither sessions nor standalone event streams (rmcp answers
/// `GET` and `DELETE` with 405), so only authorization and the tool scopes apply there.
fn streamable_http<H, F>(state: &AppState, guard: &RouteGuard, factory: &Arc<F>) -> Router
where
    H: ServerHandler,
    F: Fn() -> H + Send + Sync + 'static,
{
    let config = &state.config;
    let rmcp_config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(config.allowed_hosts.clone())
        .with_cancellation_token(state.shutdown.child_token())
        .with_max_request_body_bytes(config.raw.max_body_bytes);
    let factory = {
        let factory = factory.clone();
        move || Ok(factory())
    };
    let stateless = || {
        McpEndpoint(Arc::new(StreamableHttpService::new(
            factory.clone(),
            Arc::new(NeverSessionManager::default()),
            rmcp_config
                .clone()
                .with_legacy_session_mode(false)
                .with_json_response(true),
        )))
    };
    let binding = SessionBinding {
        sessions: state.mcp_sessions.clone(),
        cluster: state.cluster.clone(),
        challenge: ChallengeContext {
            resource_metadata: Some(config.prm_url("mcp")),
            scope: config.required_scopes.clone(),
            dpop: state.dpop.as_ref().map(|d| DpopAdvert {
                algs: d.algs().to_string(),
                required: d.required(),
            }),
        },
    };
    let in_flight = Arc::new(InFlightIds::new(config.raw.max_body_bytes));
    let stateful = || {
        let mut local = LocalSessionManager::default();
        local.session_config.keep_alive = Some(config.raw.mcp_session_idle_timeout);
        let sessions = Arc::new(OwnedSessionManager::new(local, state.mcp_sessions.clone()));
        let mut rmcp_config = rmcp_config.clone();
        // With shared state, a session is re-created on whichever instance a request
        // for it lands (crate::cluster::mcp_sessions), and what its handler sends
        // outside a request reaches the standalone stream wherever that is open
        // (crate::cluster::session_messages).
        let Some(cluster) = &state.cluster else {
            return Either::Left(McpEndpoint(Arc::new(StreamableHttpService::new(
                factory.clone(),
                sessions,
                rmcp_config,
            ))));
        };
        cluster.follow_mcp_sessions(sessions.clone());
        rmcp_config.session_store = Some(Arc::new(RedisSessionStore(cluster.clone())));
        let relayed = RelayedSessions::new(sessions, cluster.clone(), state.mcp_sessions.clone());
        Either::Right(McpEndpoint(Arc::new(StreamableHttpService::new(
            factory.clone(),
            Arc::new(relayed),
            rmcp_config,
        ))))
    };
    let guarded = ServiceBuilder::new()
        .layer(guard.cors.clone())
        .layer(guard.origin.clone());
    let Some(validator) = &state.verifier else {
        return if config.raw.stateless {
            Router::new().route_service("/mcp", guarded.service(stateless()))
        } else {
            let stack = guarded
                .layer(middleware::from_fn_with_state(binding, bind_sessions))
                .layer(middleware::from_fn_with_state(
                    in_flight.clone(),
                    refuse_duplicate_ids,
                ))
                .service(stateful());
            Router::new().route_service("/mcp", stack)
        };
    };
    let mut auth = AuthLayer::with_verifier(validator.clone())
        .with_resource_metadata(config.prm_url("mcp"))
        .with_required_scopes(config.required_scopes.clone());
    if let Some(dpop) = &state.dpop {
        auth = auth.with_dpop(dpop.clone());
    }
    let tool_scopes = ToolScopeLayer::new(state.tool_policy.clone());
    if config.raw.stateless {
        let stack = guarded.layer(auth).layer(tool_scopes).service(stateless());
        Router::new().route_service("/mcp", stack)
    } else {
        let stack = guarded
            .layer(auth)
            .layer(middleware::from_fn_with_state(binding, bind_sessions))
            .layer(middleware::from_fn_with_state(
                state.stream_slots.clone(),
                limit_streams,
            ))
            .layer(middleware::from_fn(end_streams_at_expiry))
            .layer(tool_scopes)
            .layer(middleware::from_fn_with_state(
                in_flight,
                refuse_duplicate_ids,
            ))
            .service(stateful());
        Router::new().route_service("/mcp", stack)
    }
}

/// The legacy HTTP+SSE transport and the session cookie routes, behind their guard and
/// authorization.
fn legacy_sse(state: &AppState, guard: &RouteGuard) -> Router {
    let config = &state.config;
    let mut legacy = Router::new()
        .route("/sse", get(open_stream))
        .route("/messages", post(post_message));
    let mut session = Router::<CookieRouteState>::new();
    if let Some(validator) = &state.verifier {
        let cookie_auth = CookieAuth {
            sessions: Arc::new(NamedCookieStore {
                store: state.cookie_sessions.clone(),
                cookie_name: config.cookie_name.clone(),
            }),
            allowed_origins: config.allowed_origins.clone().into(),
        };
        let mut sse_auth = AuthLayer::with_verifier(validator.clone())
            .with_resource_metadata(config.prm_url("sse"))
            .with_required_scopes(config.required_scopes.clone());
        if let Some(dpop) = &state.dpop {
            sse_auth = sse_auth.with_dpop(dpop.clone());
        }
        legacy = legacy.layer(sse_auth.clone().with_cookie_sessions(cookie_auth));
        session = Router::new()
            .route("/session", post(create_session).layer(sse_auth))
            .route("/session", axum::routing::delete(delete_session));
    }
    let legacy = legacy.with_state(LegacySseState {
        config: state.config.clone(),
        cluster: state.cluster.clone(),
        sse_sessions: state.sse_sessions.clone(),
        stream_slots: state.stream_slots.clone(),
        tool_policy: state.tool_policy.clone(),
        sse_tool_policy: state.sse_tool_policy.clone(),
        sse_challenge: state.sse_challenge.clone(),
        shutdown: state.shutdown.clone(),
        sse_handlers: state.sse_handlers.clone(),
    });
    let session = session.with_state(CookieRouteState {
        config: state.config.clone(),
        cookie_sessions: state.cookie_sessions.clone(),
        sse_sessions: state.sse_sessions.clone(),
    });
    legacy.merge(session).layer(
        ServiceBuilder::new()
            .layer(guard.cors.clone())
            .layer(guard.origin.clone()),
    )
}

/// The whole application: every route behind the request span and the `Host` check.
pub type App = RequestSpan<HostService<Router>>;

/// The whole application, ready to serve (its requests carry [`axum::body::Body`];
/// the accept loop maps hyper's bodies to it).
///
/// The layers every route shares wrap the router once, outside it, rather than each
/// route through `Router::layer`.
fn app<H, F>(state: AppState, factory: &Arc<F>, extra: Option<Router>) -> App
where
    H: ServerHandler,
    F: Fn() -> H + Send + Sync + 'static,
{
    let config = state.config.clone();
    let origin_policy = Arc::new(OriginPolicy {
        hosts: config.allowed_hosts.clone(),
        origins: config.allowed_origins.clone(),
    });
    if state.verifier.is_none() {
        tracing::warn!("AUTHORIZATION IS OFF (no_auth): every request is served without a token");
    }
    let guard = RouteGuard {
        cors: cors(&config),
        origin: OriginLayer::new(OriginCheck(origin_policy.clone())),
    };
    let mut routes = Router::new()
        .merge(crate::prm::router(&config))
        .merge(streamable_http(&state, &guard, factory))
        .merge(legacy_sse(&state, &guard));
    if let Some(extra) = extra {
        routes = routes.merge(extra);
    }
    ServiceBuilder::new()
        .layer(RequestSpanLayer)
        .layer(HostLayer::new(HostCheck(origin_policy)))
        .service(routes)
}

/// An MCP server protected as an OAuth 2.0 resource server: the entry point of this
/// crate.
///
/// It serves the MCP handlers `factory` makes (any rmcp [`ServerHandler`], one per
/// session) over Streamable HTTP (`/mcp`) and the legacy HTTP+SSE transport (`/sse`,
/// `/messages`, with the `POST /session` cookie for browsers), and publishes the
/// Protected Resource Metadata. Every request is checked as [`Config`] says: `Host` and
/// `Origin`, bearer or DPoP tokens (JWTs against the issuer's JWKS, or introspection),
/// scopes (per tool too), and the limits on event streams and sessions. With
/// [`Config::redis_url`], the session state is shared by every instance behind a load
/// balancer.
///
/// ```no_run
/// # use mcp_resource_server::{Config, McpResourceServer};
/// # #[derive(Clone, Default)] struct MyHandler;
/// # impl rmcp::ServerHandler for MyHandler {}
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let config = Config::new("https://mcp.example.com", "https://idp.example.com");
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
/// McpResourceServer::new(config, MyHandler::default).serve(listener).await?;
/// # Ok(()) }
/// ```
pub struct McpResourceServer<F> {
    config: Config,
    factory: Arc<F>,
    routes: Option<Router>,
}

impl<F> std::fmt::Debug for McpResourceServer<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpResourceServer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<H, F> McpResourceServer<F>
where
    H: ServerHandler,
    F: Fn() -> H + Send + Sync + 'static,
{
    /// A server for `config` whose MCP sessions are served by handlers `factory` makes.
    pub fn new(config: Config, factory: F) -> Self {
        Self {
            config,
            factory: Arc::new(factory),
            routes: None,
        }
    }

    /// Also serves `routes` (a static page, say), behind the `Host` check but without
    /// authorization or the `Origin` check: protect them yourself (with
    /// [`crate::auth::AuthLayer`], for example).
    #[must_use]
    pub fn with_routes(mut self, routes: Router) -> Self {
        self.routes = Some(match self.routes.take() {
            Some(previous) => previous.merge(routes),
            None => routes,
        });
        self
    }

    /// The configuration this server runs from.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The whole application as one tower service, to serve with your own accept
    /// loop (`axum::serve`, say). Unlike [`McpResourceServer::serve`], it starts no
    /// background task: the JWKS is fetched on the first request, expired cookie
    /// sessions are removed when looked up, and [`Config::redis_url`] is refused
    /// (sharing state needs tasks that watch Redis).
    ///
    /// # Errors
    /// [`ServeError::Config`] for a wrong setting.
    pub fn router(self) -> Result<App, ServeError> {
        let validated = self.config.validate()?;
        if validated.raw.redis_url.is_some() {
            return Err(ConfigError::new(
                "redis-url",
                "shared state needs McpResourceServer::serve, which runs the tasks that watch Redis",
            )
            .into());
        }
        let state = AppState::new(
            validated,
            None,
            handler_starter(clone_factory(&self.factory)),
        );
        Ok(app(state, &self.factory, self.routes))
    }

    /// Serves on `listener` until the process ends.
    ///
    /// # Errors
    /// [`ServeError`] on a wrong setting or a socket failure.
    pub async fn serve(self, listener: TcpListener) -> Result<(), ServeError> {
        self.serve_with_shutdown(listener, std::future::pending())
            .await
    }

    /// Serves on `listener` until `shutdown` completes.
    ///
    /// Each connection gets `TCP_NODELAY`, a request-head read timeout (HTTP/1),
    /// keep-alive pings (HTTP/2), and is closed once it has had no request in flight
    /// for the idle timeout, whatever it sent; accept failures back off. At shutdown,
    /// streams are ended and connections get a short grace period.
    ///
    /// # Errors
    /// [`ServeError`] on a wrong setting or a socket failure.
    pub async fn serve_with_shutdown(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let validated = self.config.validate()?;
        let local = listener.local_addr()?;
        if validated.raw.no_auth && !local.ip().is_loopback() {
            return Err(ConfigError::new(
                "no-auth",
                format!(
                    "refused with the non-loopback listen address {local}: without authorization \
                     anyone who can reach the port can call every tool; listen on 127.0.0.1 or [::1]"
                ),
            )
            .into());
        }
        let mut state = AppState::new(
            validated,
            Some(local),
            handler_starter(clone_factory(&self.factory)),
        );
        if let Some(url) = state.config.raw.redis_url.clone() {
            state.share_state(&url)?;
        }
        let app = app(state.clone(), &self.factory, self.routes);
        accept_loop(state, app, listener, local, shutdown).await
    }
}

/// `factory` behind a closure of its own, for the legacy SSE routes.
fn clone_factory<H, F>(factory: &Arc<F>) -> impl Fn() -> H + Send + Sync + 'static
where
    F: Fn() -> H + Send + Sync + 'static,
{
    let factory = factory.clone();
    move || factory()
}

/// How long shutdown waits for open connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` completes, running the background
/// tasks of `state` meanwhile.
async fn accept_loop(
    state: AppState,
    app: App,
    listener: TcpListener,
    local: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    if let Some(validator) = &state.validator {
        let jwks = validator.jwks().clone();
        tokio::spawn(async move { jwks.prefetch().await });
    }
    let cancel = state.shutdown.clone();
    // Cookie sessions are removed at their end (whole seconds), not only when looked up.
    let cookie_sessions = state.cookie_sessions.clone();
    let stop_purging = cancel.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let purged = cookie_sessions.purge_expired();
                    if purged > 0 {
                        tracing::debug!(purged, "expired cookie sessions removed");
                    }
                }
                () = stop_purging.cancelled() => break,
            }
        }
    });
    let header_read_timeout = state.config.raw.header_read_timeout;
    let idle_timeout = state.config.raw.idle_timeout;
    tracing::info!(
        listen = %local,
        public_url = %state.config.public_url,
        issuer = %state.config.issuer,
        audiences = ?state.config.audiences,
        stateless = state.config.raw.stateless,
        instance = state.cluster.as_ref().map(|c| c.instance()),
        "resource server listening"
    );
    drop(state);
    let app = ServiceBuilder::new()
        .map_request(|request: axum::http::Request<Incoming>| request.map(axum::body::Body::new))
        .service(app);

    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Replies here are small (JSON-RPC results, challenges, SSE events): copying the
    // body next to the head and sending both with one write costs less than a vectored
    // write of the two (about 5 % more 401s per second over loopback).
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .writev(false);
    // Pings find a peer that vanished under an open event stream; a connection with
    // no stream open is ended by the idle watch below.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(idle_timeout)
        .keep_alive_timeout(idle_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut backoff = AcceptBackoff::default();
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    let pause = backoff.failed(&error);
                    tokio::select! {
                        () = tokio::time::sleep(pause) => continue,
                        () = &mut shutdown => break,
                    }
                }
            },
            () = &mut shutdown => break,
        };
        backoff.succeeded();
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        let activity = Activity::new();
        let service = TowerToHyperService::new(Tracked::new(app.clone(), activity.clone()));
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            tokio::select! {
                result = connection => if let Err(error) = result {
                    tracing::trace!(%error, "connection ended with an error");
                },
                () = idle_watch(activity, idle_timeout) => {
                    tracing::trace!("idle connection closed");
                }
            }
        });
    }
    drop(listener);
    cancel.cancel();
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("connections still open after the grace period; closing");
    }
    Ok(())
}
