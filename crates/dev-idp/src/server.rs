//! Router assembly and serving. [`DevIdp`] is the handle tests and other crates use to
//! start the server in-process (on `127.0.0.1:0`) and to rotate its keys on demand.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::clients::{Client, DEVICE_CALLBACK};
use crate::cors::Cors;
use crate::endpoints::{
    authorize, device, discovery, health, introspect, jwks, login, register, token, userinfo,
};
use crate::keys::{KeyError, KeyRing};
use crate::settings::IdpConfig;
use crate::state::Idp;
use crate::store::Store;

const BODY_LIMIT: usize = 64 * 1024;

/// Starting or running the server failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Keys could not be generated.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// The listener failed.
    #[error("server I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// A running-ready authorization server: state plus router.
#[derive(Clone)]
pub struct DevIdp {
    idp: Arc<Idp>,
}

impl DevIdp {
    /// Generates keys and prepares the state.
    pub fn new(config: IdpConfig) -> Result<Self, ServerError> {
        let keys = KeyRing::new(config.key_rotation, config.token_lifetime)?;
        let static_clients: HashMap<String, Client> = config
            .dex
            .static_clients
            .iter()
            .map(|c| (c.id.clone(), Client::from_static(c)))
            .collect();
        Ok(Self {
            idp: Arc::new(Idp {
                config,
                keys,
                store: Store::default(),
                static_clients,
                dummy_hash: std::sync::OnceLock::new(),
                dpop: crate::dpop::DpopState::new(),
                remote_keys: crate::remote_keys::RemoteKeys::new(),
                jtis: crate::assertion::JtiCache::default(),
            }),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &IdpConfig {
        &self.idp.config
    }

    /// Rotates the signing key now and returns the new `kid`; the previous key stays in
    /// the JWKS until the tokens it signed have expired.
    pub fn rotate_keys(&self) -> Result<String, KeyError> {
        self.idp.keys.rotate()
    }

    /// The `kid` of the key signing new tokens.
    pub fn current_kid(&self) -> String {
        self.idp.keys.current_kid()
    }

    /// The axum router with every endpoint under the issuer's path.
    pub fn router(&self) -> Router {
        let idp = &self.idp;
        let features = &idp.config.features;
        // Dex applies CORS to these routes only.
        let mut cors_routes = Router::new()
            .route(
                &idp.path("/.well-known/openid-configuration"),
                get(discovery::get),
            )
            .route(&idp.path("/token"), post(token::token))
            .route(&idp.path("/keys"), get(jwks::get))
            .route(
                &idp.path("/userinfo"),
                get(userinfo::get).post(userinfo::get),
            )
            .route(
                &idp.path("/token/introspect"),
                get(introspect::wrong_method).post(introspect::post),
            );
        let dex = &idp.config.dex.web;
        if let Some(cors) = Cors::new(&dex.allowed_origins, &dex.allowed_headers) {
            cors_routes = cors_routes.layer(from_fn_with_state(cors, crate::cors::layer));
        }
        let mut router = Router::new()
            .route(
                &idp.path("/auth"),
                get(authorize::get).post(authorize::post),
            )
            .route(&idp.path("/auth/{connector}"), get(authorize::connector))
            .route(
                &idp.path("/auth/{connector}/login"),
                get(login::form).post(login::submit),
            )
            .route(
                &idp.path("/approval"),
                get(login::approval_form).post(login::approval_submit),
            )
            .route(&idp.path("/device"), get(device::page))
            .route(&idp.path("/device/code"), post(device::code))
            .route(&idp.path("/device/auth/verify_code"), post(device::verify))
            .route(&idp.path("/device/token"), post(device::deprecated_token))
            .route(&idp.path(DEVICE_CALLBACK), get(device::callback))
            .route(&idp.path("/healthz"), get(health::get))
            .merge(cors_routes);
        if features.rfc8414_metadata {
            router = router.route(
                &format!(
                    "/.well-known/oauth-authorization-server{}",
                    idp.config.issuer_path()
                ),
                get(discovery::get),
            );
        }
        if features.registration {
            router = router.route(&idp.path("/register"), post(register::register));
        }
        router
            .layer(DefaultBodyLimit::max(BODY_LIMIT))
            .layer(
                // Paths only: query strings carry state and request ids.
                TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                    tracing::info_span!("http", method = %request.method(), path = %request.uri().path())
                }),
            )
            .with_state(Arc::clone(idp))
    }

    /// Serves on `listener` until the process ends.
    pub async fn serve(self, listener: TcpListener) -> Result<(), ServerError> {
        self.serve_with_shutdown(listener, std::future::pending())
            .await
    }

    /// Serves on `listener` until `shutdown` completes.
    pub async fn serve_with_shutdown(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let app = self.router();
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(())
    }
}

/// Builds the server for `config` and serves it on `listener`.
pub async fn serve(config: IdpConfig, listener: TcpListener) -> Result<(), ServerError> {
    DevIdp::new(config)?.serve(listener).await
}
