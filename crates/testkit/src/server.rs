//! The test authorization server: OpenID Connect and RFC 8414 metadata and a JWKS on a
//! real `127.0.0.1` socket, tokens minted with chosen claims, algorithm and `kid`, a JWKS
//! fetch counter, key rotation, switchable faults and restarts on the same port.
//!
//! It issues tokens directly (no login runs behind the metadata's
//! `authorization_endpoint`): the tests and the load need valid tokens, not a login.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
    serve::ListenerExt,
};
use jsonwebtoken::jwk::JwkSet;
use serde_json::{Map, Value, json};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use crate::keys::{TestKey, alg_name};

/// How long the JWKS endpoint takes in [`JwksMode::Slow`].
pub const SLOW_JWKS: Duration = Duration::from_secs(8);

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What the JWKS endpoint does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum JwksMode {
    /// Serves the published keys.
    Ok = 0,
    /// 503 to every request.
    Down = 1,
    /// Answers after [`SLOW_JWKS`], past a resource server's fetch timeout in tests.
    Slow = 2,
    /// 200 with a body that is not a JWKS.
    Garbage = 3,
}

struct Keys {
    published: Vec<TestKey>,
    signing: TestKey,
}

struct Shared {
    issuer: String,
    keys: Mutex<Keys>,
    fetches: AtomicUsize,
    mode: AtomicU8,
    down: AtomicBool,
    max_age: u64,
    client_id: String,
    scopes_supported: Option<Vec<String>>,
    generated: AtomicU64,
}

impl Shared {
    fn keys(&self) -> MutexGuard<'_, Keys> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How to start a [`TestAuthServer`].
#[derive(Debug, Clone)]
pub struct TestAuthServerBuilder {
    keys: Vec<TestKey>,
    issuer_path: String,
    max_age: u64,
    client_id: String,
    scopes_supported: Option<Vec<String>>,
    addr: Option<SocketAddr>,
}

impl Default for TestAuthServerBuilder {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            issuer_path: "/dex".into(),
            max_age: 600,
            client_id: "mcp-client".into(),
            scopes_supported: None,
            addr: None,
        }
    }
}

impl TestAuthServerBuilder {
    /// The keys the JWKS publishes; the first signs minted tokens (default: [`TestKey::rsa1`]).
    pub fn keys(mut self, keys: &[TestKey]) -> Self {
        self.keys = keys.to_vec();
        self
    }

    /// The issuer's path after `http://127.0.0.1:<port>` (default `/dex`, as Dex's issuer
    /// has; `""` for an issuer at the root). The JWKS is at `<issuer>/keys`.
    pub fn issuer_path(mut self, path: &str) -> Self {
        self.issuer_path = path.trim_end_matches('/').to_string();
        self
    }

    /// `Cache-Control: max-age` on the JWKS, in seconds (default 600).
    pub fn jwks_max_age(mut self, seconds: u64) -> Self {
        self.max_age = seconds;
        self
    }

    /// The `client_id` claim of minted tokens (default `mcp-client`).
    pub fn client_id(mut self, client_id: &str) -> Self {
        self.client_id = client_id.to_string();
        self
    }

    /// `scopes_supported` in the metadata (absent unless set).
    pub fn scopes_supported(mut self, scopes: &[&str]) -> Self {
        self.scopes_supported = Some(scopes.iter().map(|s| s.to_string()).collect());
        self
    }

    /// Listens on `addr` (a port a stopped server freed) instead of `127.0.0.1:0`.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.addr = Some(addr);
        self
    }

    /// Starts serving.
    ///
    /// # Panics
    /// When the socket cannot be bound.
    pub async fn start(self) -> TestAuthServer {
        self.try_start()
            .await
            .expect("the test authorization server starts")
    }

    /// Starts serving.
    ///
    /// # Errors
    /// When the socket cannot be bound.
    pub async fn try_start(self) -> anyhow::Result<TestAuthServer> {
        let addr = self
            .addr
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let issuer = format!("http://{addr}{}", self.issuer_path);
        let mut keys = self.keys;
        if keys.is_empty() {
            keys.push(TestKey::rsa1());
        }
        let shared = Arc::new(Shared {
            issuer: issuer.clone(),
            keys: Mutex::new(Keys {
                signing: keys[0].clone(),
                published: keys,
            }),
            fetches: AtomicUsize::new(0),
            mode: AtomicU8::new(JwksMode::Ok as u8),
            down: AtomicBool::new(false),
            max_age: self.max_age,
            client_id: self.client_id,
            scopes_supported: self.scopes_supported,
            generated: AtomicU64::new(0),
        });
        let path = &self.issuer_path;
        let app = Router::new()
            .route(
                &format!("{path}/.well-known/openid-configuration"),
                get(metadata),
            )
            .route(
                &format!("/.well-known/oauth-authorization-server{path}"),
                get(metadata),
            )
            .route(&format!("{path}/keys"), get(jwks))
            .with_state(shared.clone());
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "test authorization server stopped");
            }
        });
        Ok(TestAuthServer {
            addr,
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }
}

/// A running test authorization server; stops when dropped.
pub struct TestAuthServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TestAuthServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestAuthServer")
            .field("issuer", &self.shared.issuer)
            .finish_non_exhaustive()
    }
}

impl Drop for TestAuthServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl TestAuthServer {
    /// How to start one with other keys, issuer path, cache lifetime or address.
    pub fn builder() -> TestAuthServerBuilder {
        TestAuthServerBuilder::default()
    }

    /// Starts on `127.0.0.1:0` with the defaults of [`TestAuthServerBuilder`].
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// Starts on `127.0.0.1:0` publishing `keys` (the first one signs minted tokens).
    pub async fn with_keys(keys: &[TestKey]) -> Self {
        Self::builder().keys(keys).start().await
    }

    /// The socket address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The issuer (`http://127.0.0.1:<port><path>`, no trailing slash).
    pub fn issuer(&self) -> &str {
        &self.shared.issuer
    }

    /// The JWKS URL, `<issuer>/keys`.
    pub fn jwks_url(&self) -> String {
        format!("{}/keys", self.shared.issuer)
    }

    /// How many times the JWKS endpoint was asked (in every mode).
    pub fn fetches(&self) -> usize {
        self.shared.fetches.load(Ordering::SeqCst)
    }

    /// Publishes `keys` instead of the current ones; the first signs minted tokens.
    ///
    /// # Panics
    /// When `keys` is empty.
    pub fn set_keys(&self, keys: &[TestKey]) {
        let mut current = self.shared.keys();
        current.signing = keys.first().expect("at least one key").clone();
        current.published = keys.to_vec();
    }

    /// The `kid` that signs minted tokens.
    pub fn current_kid(&self) -> String {
        self.shared.keys().signing.kid().to_string()
    }

    /// Generates a key of the signing key's algorithm, publishes it beside the others and
    /// signs with it from now on; returns its `kid`.
    ///
    /// # Errors
    /// When key generation fails.
    pub fn rotate(&self) -> anyhow::Result<String> {
        let alg = self.shared.keys().signing.alg();
        let n = self.shared.generated.fetch_add(1, Ordering::SeqCst) + 2;
        let key = TestKey::generate(alg, format!("key-{n}"))?;
        let kid = key.kid().to_string();
        let mut keys = self.shared.keys();
        keys.published.push(key.clone());
        keys.signing = key;
        Ok(kid)
    }

    /// What the JWKS endpoint does from now on.
    pub fn set_jwks_mode(&self, mode: JwksMode) {
        self.shared.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Whether the metadata and the JWKS both answer 503.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    /// Stops serving; the port is free afterwards (start again with
    /// [`TestAuthServerBuilder::bind`]).
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// RFC 9068-shaped claims for `aud` with `scope`, valid for 5 minutes.
    pub fn claims(&self, sub: &str, aud: &str, scope: &str) -> Value {
        self.token().subject(sub).aud(aud).scope(scope).claims()
    }

    /// A token to mint, signed with the current key unless told otherwise.
    pub fn token(&self) -> TokenBuilder<'_> {
        TokenBuilder {
            server: self,
            sub: "alice".into(),
            aud: None,
            scope: Some("mcp:tools".into()),
            lifetime: 300,
            extra: Map::new(),
            removed: Vec::new(),
            key: None,
            typ: Some("at+jwt".into()),
        }
    }
}

/// An access token being put together: RFC 9068 claims (`iss`, `sub`, `aud`, `exp`,
/// `iat`, `scope`, `client_id`, `jti`) that each method changes.
#[derive(Debug)]
pub struct TokenBuilder<'a> {
    server: &'a TestAuthServer,
    sub: String,
    aud: Option<Value>,
    scope: Option<String>,
    lifetime: i64,
    extra: Map<String, Value>,
    removed: Vec<String>,
    key: Option<TestKey>,
    typ: Option<String>,
}

impl TokenBuilder<'_> {
    /// `sub` (default `alice`).
    pub fn subject(mut self, sub: &str) -> Self {
        self.sub = sub.into();
        self
    }

    /// `aud` (absent unless set).
    pub fn aud(mut self, aud: &str) -> Self {
        self.aud = Some(json!(aud));
        self
    }

    /// `aud` as a list.
    pub fn audiences(mut self, aud: &[&str]) -> Self {
        self.aud = Some(json!(aud));
        self
    }

    /// `scope` (default `mcp:tools`).
    pub fn scope(mut self, scope: &str) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// `exp` this long after now (default 5 minutes).
    pub fn expires_in(mut self, lifetime: Duration) -> Self {
        self.lifetime = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
        self
    }

    /// `exp` this many seconds before now.
    pub fn expired_since(mut self, ago: Duration) -> Self {
        self.lifetime = -i64::try_from(ago.as_secs()).unwrap_or(i64::MAX);
        self
    }

    /// Any other claim, or another value for one of the defaults.
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.removed.retain(|n| n != name);
        self.extra.insert(name.into(), value.into());
        self
    }

    /// Leaves `name` out of the claims.
    pub fn without(mut self, name: &str) -> Self {
        self.extra.remove(name);
        self.removed.push(name.into());
        self
    }

    /// Signs with `key` (published or not) instead of the server's current key.
    pub fn key(mut self, key: &TestKey) -> Self {
        self.key = Some(key.clone());
        self
    }

    /// The header's `typ` (default `at+jwt`; `None` leaves it out).
    pub fn typ(mut self, typ: Option<&str>) -> Self {
        self.typ = typ.map(str::to_string);
        self
    }

    /// The claims as they would be signed.
    pub fn claims(&self) -> Value {
        let now = now();
        let shared = &self.server.shared;
        let exp = now.saturating_add_signed(self.lifetime);
        let mut claims = json!({
            "iss": shared.issuer,
            "sub": self.sub,
            "exp": exp,
            "iat": now,
            "client_id": shared.client_id,
            "jti": format!("{}-{:016x}", self.sub, rand::random::<u64>()),
        });
        let object = claims.as_object_mut().expect("an object");
        if let Some(aud) = &self.aud {
            object.insert("aud".into(), aud.clone());
        }
        if let Some(scope) = &self.scope {
            object.insert("scope".into(), json!(scope));
        }
        for (name, value) in &self.extra {
            object.insert(name.clone(), value.clone());
        }
        for name in &self.removed {
            object.remove(name);
        }
        claims
    }

    /// The signed token.
    pub fn sign(self) -> String {
        let claims = self.claims();
        let key = match self.key {
            Some(key) => key,
            None => self.server.shared.keys().signing.clone(),
        };
        key.sign_with_typ(&claims, self.typ.as_deref())
    }
}

async fn metadata(State(shared): State<Arc<Shared>>) -> Response {
    if shared.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let issuer = &shared.issuer;
    let alg = alg_name(shared.keys().signing.alg());
    let mut body = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/auth"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/keys"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [alg],
    });
    if let Some(scopes) = &shared.scopes_supported {
        body["scopes_supported"] = json!(scopes);
    }
    Json(body).into_response()
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Response {
    shared.fetches.fetch_add(1, Ordering::SeqCst);
    if shared.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match shared.mode.load(Ordering::SeqCst) {
        m if m == JwksMode::Down as u8 => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
        m if m == JwksMode::Slow as u8 => tokio::time::sleep(SLOW_JWKS).await,
        m if m == JwksMode::Garbage as u8 => {
            return (
                [(header::CONTENT_TYPE, "application/json")],
                "<html>502 upstream</html>",
            )
                .into_response();
        }
        _ => {}
    }
    let set = JwkSet {
        keys: shared.keys().published.iter().map(TestKey::jwk).collect(),
    };
    (
        [(
            header::CACHE_CONTROL,
            format!("public, max-age={}", shared.max_age),
        )],
        Json(set),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation, decode};

    async fn get(url: &str) -> reqwest::Response {
        reqwest::get(url).await.unwrap()
    }

    async fn verify(server: &TestAuthServer, token: &str) -> jsonwebtoken::TokenData<Value> {
        let set: JwkSet = get(&server.jwks_url()).await.json().await.unwrap();
        let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
        let jwk = set.find(&kid).expect("the signing key is published");
        let mut validation = Validation::new(
            jwk.common
                .key_algorithm
                .unwrap()
                .to_string()
                .parse()
                .unwrap(),
        );
        validation.set_audience(&["https://rs.example/mcp"]);
        validation.set_issuer(&[server.issuer()]);
        decode(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation).unwrap()
    }

    #[tokio::test]
    async fn serves_metadata_and_keys_that_verify_what_it_mints() {
        let server = TestAuthServer::start().await;
        assert!(server.issuer().ends_with("/dex"));
        for url in [
            format!("{}/.well-known/openid-configuration", server.issuer()),
            format!(
                "http://{}/.well-known/oauth-authorization-server/dex",
                server.addr()
            ),
        ] {
            let metadata: Value = get(&url).await.json().await.unwrap();
            assert_eq!(metadata["issuer"], server.issuer());
            assert_eq!(metadata["jwks_uri"], server.jwks_url());
        }
        let token = server
            .token()
            .subject("bob")
            .aud("https://rs.example/mcp")
            .scope("mcp:tools mcp:admin")
            .expires_in(Duration::from_secs(60))
            .claim("extra", 7)
            .sign();
        let data = verify(&server, &token).await;
        assert_eq!(data.header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(data.claims["sub"], "bob");
        assert_eq!(data.claims["scope"], "mcp:tools mcp:admin");
        assert_eq!(data.claims["extra"], 7);
        let exp = data.claims["exp"].as_u64().unwrap();
        assert!((now() + 55..=now() + 60).contains(&exp), "exp {exp}");
        assert_eq!(server.fetches(), 1);
    }

    #[tokio::test]
    async fn rotation_publishes_a_new_key_beside_the_old() {
        let server = TestAuthServer::builder()
            .issuer_path("")
            .keys(&[TestKey::ec()])
            .start()
            .await;
        let before = server.token().aud("https://rs.example/mcp").sign();
        let kid = server.rotate().unwrap();
        assert_eq!(server.current_kid(), kid);
        let after = server.token().aud("https://rs.example/mcp").sign();
        verify(&server, &before).await;
        let data = verify(&server, &after).await;
        assert_eq!(data.header.kid.as_deref(), Some(kid.as_str()));
        assert_eq!(data.header.alg, jsonwebtoken::Algorithm::ES256);
    }

    #[tokio::test]
    async fn faults_and_restarts() {
        let mut server = TestAuthServer::start().await;
        server.set_jwks_mode(JwksMode::Down);
        assert_eq!(get(&server.jwks_url()).await.status(), 503);
        server.set_jwks_mode(JwksMode::Garbage);
        let garbage = get(&server.jwks_url()).await;
        assert_eq!(garbage.status(), 200);
        assert!(garbage.json::<JwkSet>().await.is_err());
        server.set_jwks_mode(JwksMode::Ok);
        server.set_down(true);
        let metadata = format!("{}/.well-known/openid-configuration", server.issuer());
        assert_eq!(get(&metadata).await.status(), 503);
        assert_eq!(server.fetches(), 2, "the JWKS was asked twice");

        let addr = server.addr();
        server.stop().await;
        assert!(reqwest::get(&metadata).await.is_err(), "stopped");
        let again = TestAuthServer::builder().bind(addr).start().await;
        assert_eq!(again.issuer(), server.issuer());
        assert_eq!(get(&metadata).await.status(), 200);
    }

    #[test]
    fn claims_can_be_left_out_or_expired() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let server = TestAuthServer::start().await;
            let claims = server.token().without("exp").without("scope").claims();
            assert!(claims.get("exp").is_none() && claims.get("scope").is_none());
            assert!(claims.get("aud").is_none());
            let expired = server
                .token()
                .expired_since(Duration::from_secs(30))
                .claims();
            assert!(expired["exp"].as_u64().unwrap() < now());
            let a = server.claims("a", "x", "s");
            let b = server.claims("a", "x", "s");
            assert_ne!(a["jti"], b["jti"], "every token has its own jti");
        });
    }
}
