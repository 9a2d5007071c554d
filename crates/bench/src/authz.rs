//! The harness's own authorization server: it publishes RFC 8414 / OpenID Connect
//! metadata and a JWKS on `127.0.0.1`, mints RFC 9068 access tokens for the load, counts
//! JWKS fetches (target 5) and rotates its signing key on demand.
//!
//! It issues tokens directly (no authorization endpoint runs behind the metadata's
//! `authorization_endpoint`): the load needs valid tokens, not a login.

use std::{
    net::SocketAddr,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
    serve::ListenerExt,
};
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::JoinHandle};

use crate::keys::{KeyAlg, SigningKey};

/// How long clients may cache the JWKS (`Cache-Control: max-age`).
const JWKS_MAX_AGE_SECS: u64 = 600;

struct Keys {
    published: Vec<Arc<SigningKey>>,
    current: Arc<SigningKey>,
}

struct Shared {
    issuer: String,
    alg: KeyAlg,
    keys: RwLock<Keys>,
    jwks_fetches: AtomicU64,
    generated: AtomicU64,
}

/// What an access token says.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    /// `aud`.
    pub audience: String,
    /// `sub`.
    pub subject: String,
    /// `scope`.
    pub scope: String,
    /// Lifetime from now, in seconds.
    pub lifetime_secs: u64,
}

impl TokenSpec {
    /// A token for `audience` with scope `mcp:tools`, valid for an hour.
    pub fn for_audience(audience: impl Into<String>) -> Self {
        Self {
            audience: audience.into(),
            subject: "bench-user".into(),
            scope: "mcp:tools".into(),
            lifetime_secs: 3600,
        }
    }
}

/// A running authorization server. Stops when dropped.
pub struct AuthServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for AuthServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthServer")
            .field("issuer", &self.shared.issuer)
            .finish_non_exhaustive()
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl AuthServer {
    /// Starts on `127.0.0.1:0` with one `alg` key.
    ///
    /// # Errors
    /// When the key cannot be generated or the socket cannot be bound.
    pub async fn start(alg: KeyAlg) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let key = Arc::new(SigningKey::generate(alg, "key-1")?);
        let shared = Arc::new(Shared {
            issuer: format!("http://{addr}"),
            alg,
            keys: RwLock::new(Keys {
                published: vec![key.clone()],
                current: key,
            }),
            jwks_fetches: AtomicU64::new(0),
            generated: AtomicU64::new(1),
        });
        let app = Router::new()
            .route("/.well-known/oauth-authorization-server", get(metadata))
            .route("/.well-known/openid-configuration", get(metadata))
            .route("/jwks", get(jwks))
            .with_state(shared.clone());
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "authorization server stopped");
            }
        });
        Ok(Self { shared, addr, task })
    }

    /// The issuer (`http://127.0.0.1:<port>`, no trailing slash).
    pub fn issuer(&self) -> &str {
        &self.shared.issuer
    }

    /// The JWKS URL.
    pub fn jwks_uri(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }

    /// How many times the JWKS was served.
    pub fn jwks_fetches(&self) -> u64 {
        self.shared.jwks_fetches.load(Ordering::SeqCst)
    }

    /// The `kid` that signs new tokens.
    pub fn current_kid(&self) -> String {
        self.read().current.kid().to_string()
    }

    /// Generates a new key, publishes it beside the old ones and signs with it from now on.
    ///
    /// # Errors
    /// When key generation fails.
    pub fn rotate(&self) -> anyhow::Result<String> {
        let n = self.shared.generated.fetch_add(1, Ordering::SeqCst) + 1;
        let key = Arc::new(SigningKey::generate(self.shared.alg, format!("key-{n}"))?);
        let kid = key.kid().to_string();
        let mut keys = self
            .shared
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        keys.published.push(key.clone());
        keys.current = key;
        Ok(kid)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Keys> {
        self.shared
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Mints an access token with the current key.
    ///
    /// # Errors
    /// When signing fails.
    pub fn mint(&self, spec: &TokenSpec) -> anyhow::Result<String> {
        let now = unix_now();
        let jti = self.shared.generated.fetch_add(1, Ordering::Relaxed);
        let claims = json!({
            "iss": self.shared.issuer,
            "sub": spec.subject,
            "aud": spec.audience,
            "iat": now,
            "nbf": now.saturating_sub(1),
            "exp": now + spec.lifetime_secs,
            "scope": spec.scope,
            "client_id": "bench-client",
            "jti": format!("jti-{jti}"),
        });
        let key = self.read().current.clone();
        key.sign(&claims)
    }
}

async fn metadata(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let issuer = &shared.issuer;
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "scopes_supported": ["mcp:tools", "mcp:admin"],
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [shared.alg.name()],
    }))
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Response {
    shared.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let keys: Vec<Value> = {
        let keys = shared
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        keys.published.iter().map(|k| k.jwk().clone()).collect()
    };
    let mut response = Json(json!({ "keys": keys })).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&format!("public, max-age={JWKS_MAX_AGE_SECS}"))
            .expect("static header value"),
    );
    response
}
