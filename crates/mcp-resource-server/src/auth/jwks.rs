//! A cache of the authorization server's signing keys (JWKS, RFC 7517).
//!
//! - The JWKS URI is configured, or discovered once from the issuer's metadata
//!   (RFC 8414 and OpenID Connect discovery, in the order MCP specifies); discovered
//!   metadata whose `issuer` differs from the configured one is refused.
//! - Fetched keys live as long as `Cache-Control: max-age` says, clamped to
//!   [`JwksConfig::min_ttl`]..[`JwksConfig::max_ttl`].
//! - An unknown `kid` triggers a refetch at most once per
//!   [`JwksConfig::min_refetch_interval`]; concurrent misses wait for the same fetch.
//! - Expired keys are still served while a background refresh runs, and stay in use if
//!   the authorization server is down: an outage never locks out holders of valid tokens.
//! - Only asymmetric signature keys are kept (`RSA` ≥ 2048 bits, `EC` P-256/P-384,
//!   `OKP` Ed25519); `oct` keys and `use: enc` keys are dropped, so HMAC can never be
//!   selected.

use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse},
};
use mcp_auth_proto::{metadata::AuthorizationServerMetadata, wellknown};
use tokio::time::Instant;
use url::Url;

pub use crate::error::token::JwksError;

/// Largest JWKS or metadata document accepted.
const MAX_DOCUMENT_BYTES: usize = 512 * 1024;

/// A public key from the JWKS with the algorithms it may verify.
pub struct VerificationKey {
    /// `kid`, if the JWK has one.
    pub kid: Option<String>,
    /// The key itself.
    pub key: DecodingKey,
    /// Algorithms allowed with this key (derived from `kty`, `crv` and `alg`).
    pub algorithms: Vec<Algorithm>,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// The usable keys of one fetched JWKS.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<Arc<VerificationKey>>,
    by_kid: HashMap<String, usize>,
}

impl KeySet {
    /// Builds a key set from a JWKS, keeping only usable asymmetric signature keys.
    pub fn from_jwks(set: &JwkSet) -> Self {
        let mut keys = Vec::new();
        let mut by_kid = HashMap::new();
        for jwk in &set.keys {
            let Some(key) = verification_key(jwk) else {
                continue;
            };
            if let Some(kid) = &key.kid {
                if by_kid.contains_key(kid) {
                    tracing::warn!(%kid, "JWKS has a duplicate kid; keeping the first key");
                    continue;
                }
                by_kid.insert(kid.clone(), keys.len());
            }
            keys.push(Arc::new(key));
        }
        Self { keys, by_kid }
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there is no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn find(&self, kid: Option<&str>) -> Result<Arc<VerificationKey>, JwksError> {
        match kid {
            Some(kid) => self
                .by_kid
                .get(kid)
                .map(|&i| self.keys[i].clone())
                .ok_or(JwksError::UnknownKey),
            None if self.keys.len() == 1 => Ok(self.keys[0].clone()),
            None if self.keys.is_empty() => Err(JwksError::UnknownKey),
            None => Err(JwksError::AmbiguousKey),
        }
    }
}

/// Algorithms a JWK may verify; `None` for keys that must never be used.
pub fn allowed_algorithms(jwk: &Jwk) -> Option<Vec<Algorithm>> {
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let family: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let modulus = URL_SAFE_NO_PAD.decode(rsa.n.trim_end_matches('=')).ok()?;
            let bits = modulus.iter().skip_while(|b| **b == 0).count() * 8;
            if bits < 2048 {
                return None;
            }
            vec![
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ]
        }
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
            _ => return None,
        },
        // Symmetric (`oct`) and unknown key types are never used.
        _ => return None,
    };
    match jwk.common.key_algorithm {
        None => Some(family),
        Some(declared) => {
            let declared = key_algorithm(declared)?;
            family.contains(&declared).then(|| vec![declared])
        }
    }
}

fn key_algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

fn verification_key(jwk: &Jwk) -> Option<VerificationKey> {
    let algorithms = allowed_algorithms(jwk)?;
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(VerificationKey {
        kid: jwk.common.key_id.clone(),
        key,
        algorithms,
    })
}

/// Tuning of the JWKS cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksConfig {
    /// Lifetime of fetched keys when the response has no usable `Cache-Control`.
    pub default_ttl: Duration,
    /// Lower bound applied to `Cache-Control: max-age`.
    pub min_ttl: Duration,
    /// Upper bound applied to `Cache-Control: max-age`.
    pub max_ttl: Duration,
    /// Minimum time between two refetches caused by an unknown `kid` (or a failure).
    pub min_refetch_interval: Duration,
    /// Timeout of one JWKS or metadata request.
    pub http_timeout: Duration,
}

impl Default for JwksConfig {
    fn default() -> Self {
        Self {
            default_ttl: Duration::from_secs(300),
            min_ttl: Duration::from_secs(30),
            max_ttl: Duration::from_secs(24 * 3600),
            min_refetch_interval: Duration::from_secs(30),
            http_timeout: Duration::from_secs(10),
        }
    }
}

/// Where the keys come from.
#[derive(Debug, Clone)]
pub enum JwksSource {
    /// A configured JWKS URI.
    Uri(Url),
    /// Discovered from the issuer's metadata.
    Discover {
        /// The issuer, exactly as tokens carry it.
        issuer: String,
        /// The issuer as a URL.
        issuer_url: Url,
    },
}

struct CacheState {
    keys: Arc<KeySet>,
    expires_at: Option<Instant>,
    last_attempt: Option<Instant>,
    generation: u64,
    jwks_uri: Option<Url>,
}

/// The JWKS cache. Cheap to share behind an `Arc`.
pub struct JwksCache {
    source: JwksSource,
    http: reqwest::Client,
    config: JwksConfig,
    state: RwLock<CacheState>,
    refresh: tokio::sync::Mutex<()>,
    fetches: AtomicU64,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("source", &self.source)
            .field("fetches", &self.fetch_count())
            .finish_non_exhaustive()
    }
}

impl JwksCache {
    /// A cache for `source`; nothing is fetched until a key is needed (or [`Self::prefetch`]).
    pub fn new(source: JwksSource, config: JwksConfig) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.http_timeout)
            .build()
            .expect("static reqwest configuration");
        let jwks_uri = match &source {
            JwksSource::Uri(uri) => Some(uri.clone()),
            JwksSource::Discover { .. } => None,
        };
        Self {
            source,
            http,
            config,
            state: RwLock::new(CacheState {
                keys: Arc::new(KeySet::default()),
                expires_at: None,
                last_attempt: None,
                generation: 0,
                jwks_uri,
            }),
            refresh: tokio::sync::Mutex::new(()),
            fetches: AtomicU64::new(0),
        }
    }

    /// How many JWKS fetches were attempted so far.
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Fetches the keys now (at start-up); failures are logged, not fatal.
    pub async fn prefetch(self: &Arc<Self>) {
        let generation = self.read().generation;
        self.refresh(generation).await;
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, CacheState> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, CacheState> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The key for `kid`, fetching or refetching the JWKS when needed and allowed.
    ///
    /// # Errors
    /// [`JwksError`] when no suitable key is known.
    pub async fn key(
        self: &Arc<Self>,
        kid: Option<&str>,
    ) -> Result<Arc<VerificationKey>, JwksError> {
        let (keys, generation, fresh) = {
            let state = self.read();
            let fresh = state.expires_at.is_some_and(|at| Instant::now() < at);
            (state.keys.clone(), state.generation, fresh)
        };
        match keys.find(kid) {
            Ok(key) => {
                if !fresh {
                    self.refresh_in_background();
                }
                return Ok(key);
            }
            Err(JwksError::AmbiguousKey) => return Err(JwksError::AmbiguousKey),
            Err(_) => {}
        }
        let failure = self.refresh(generation).await;
        let keys = self.read().keys.clone();
        match keys.find(kid) {
            Ok(key) => Ok(key),
            Err(JwksError::UnknownKey) if keys.is_empty() => Err(JwksError::Unavailable(
                failure.unwrap_or_else(|| "no usable keys published".into()),
            )),
            Err(e) => Err(e),
        }
    }

    fn refresh_in_background(self: &Arc<Self>) {
        let due = {
            let state = self.read();
            state
                .last_attempt
                .is_none_or(|at| at.elapsed() >= self.config.min_refetch_interval)
        };
        if !due {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let generation = this.read().generation;
            this.refresh(generation).await;
        });
    }

    /// Refetches unless another task already did since `seen_generation`, or the last
    /// attempt was too recent. Returns the failure message of this attempt, if any.
    async fn refresh(&self, seen_generation: u64) -> Option<String> {
        let _guard = self.refresh.lock().await;
        {
            let state = self.read();
            if state.generation != seen_generation {
                return None;
            }
            if let Some(at) = state.last_attempt
                && at.elapsed() < self.config.min_refetch_interval
            {
                return Some("refetch rate-limited".into());
            }
        }
        self.write().last_attempt = Some(Instant::now());
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let result = self.fetch().await;
        let mut state = self.write();
        state.generation += 1;
        match result {
            Ok((uri, keys, ttl)) => {
                tracing::debug!(jwks_uri = %uri, keys = keys.len(), ttl_secs = ttl.as_secs(), "JWKS fetched");
                state.jwks_uri = Some(uri);
                state.keys = Arc::new(keys);
                state.expires_at = Some(Instant::now() + ttl);
                None
            }
            Err(message) => {
                tracing::warn!(error = %message, cached_keys = state.keys.len(), "JWKS fetch failed");
                Some(message)
            }
        }
    }

    async fn fetch(&self) -> Result<(Url, KeySet, Duration), String> {
        let known = self.read().jwks_uri.clone();
        let uri = match (known, &self.source) {
            (Some(uri), _) => uri,
            (None, JwksSource::Discover { issuer, issuer_url }) => {
                self.discover(issuer, issuer_url).await?
            }
            (None, JwksSource::Uri(uri)) => uri.clone(),
        };
        let response = self
            .http
            .get(uri.clone())
            .header(
                reqwest::header::ACCEPT,
                "application/jwk-set+json, application/json",
            )
            .send()
            .await
            .map_err(|e| format!("GET {uri}: {}", error_chain(&e)))?;
        if !response.status().is_success() {
            return Err(format!("GET {uri}: HTTP {}", response.status()));
        }
        let ttl = self.ttl_from(response.headers());
        let body = read_capped(response)
            .await
            .map_err(|e| format!("GET {uri}: {e}"))?;
        let set: JwkSet = serde_json::from_slice(&body)
            .map_err(|e| format!("JWKS at {uri} is not valid: {e}"))?;
        let keys = KeySet::from_jwks(&set);
        if keys.is_empty() {
            return Err(format!("JWKS at {uri} has no usable signature key"));
        }
        Ok((uri, keys, ttl))
    }

    async fn discover(&self, issuer: &str, issuer_url: &Url) -> Result<Url, String> {
        let mut last_error = String::from("no metadata location");
        for url in wellknown::authorization_server_metadata_urls(issuer_url) {
            let response = match self.http.get(url.clone()).send().await {
                Ok(response) => response,
                Err(e) => {
                    last_error = format!("GET {url}: {}", error_chain(&e));
                    continue;
                }
            };
            if !response.status().is_success() {
                last_error = format!("GET {url}: HTTP {}", response.status());
                continue;
            }
            let body = match read_capped(response).await {
                Ok(body) => body,
                Err(e) => {
                    last_error = format!("GET {url}: {e}");
                    continue;
                }
            };
            let metadata: AuthorizationServerMetadata = match serde_json::from_slice(&body) {
                Ok(metadata) => metadata,
                Err(e) => {
                    last_error = format!("metadata at {url} is not valid: {e}");
                    continue;
                }
            };
            if metadata.issuer != issuer {
                last_error = format!(
                    "metadata at {url} names issuer {:?}, expected {issuer:?}",
                    metadata.issuer
                );
                continue;
            }
            let Some(jwks_uri) = metadata.jwks_uri else {
                last_error = format!("metadata at {url} has no jwks_uri");
                continue;
            };
            return Url::parse(&jwks_uri).map_err(|e| format!("jwks_uri in {url}: {e}"));
        }
        Err(last_error)
    }

    fn ttl_from(&self, headers: &reqwest::header::HeaderMap) -> Duration {
        let config = &self.config;
        let ttl = cache_control_max_age(headers).unwrap_or(config.default_ttl);
        ttl.clamp(config.min_ttl, config.max_ttl)
    }
}

/// `max-age` from `Cache-Control`; `no-store`/`no-cache` count as zero.
fn cache_control_max_age(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let mut max_age = None;
    for value in headers.get_all(reqwest::header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let directive = directive.trim();
            let (name, arg) = directive.split_once('=').unwrap_or((directive, ""));
            match name.trim().to_ascii_lowercase().as_str() {
                "no-store" | "no-cache" => return Some(Duration::ZERO),
                "max-age" => {
                    if let Ok(seconds) = arg.trim().trim_matches('"').parse::<u64>() {
                        max_age = Some(Duration::from_secs(seconds));
                    }
                }
                _ => {}
            }
        }
    }
    max_age
}

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    if response
        .content_length()
        .is_some_and(|len| len > MAX_DOCUMENT_BYTES as u64)
    {
        return Err("document too large".into());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| error_chain(&e))? {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err("document too large".into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{CACHE_CONTROL, HeaderMap, HeaderValue};

    fn headers(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn cache_control_parsing() {
        assert_eq!(
            cache_control_max_age(&headers("public, max-age=600")),
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            cache_control_max_age(&headers("no-store")),
            Some(Duration::ZERO)
        );
        assert_eq!(cache_control_max_age(&headers("max-age=abc")), None);
        assert_eq!(cache_control_max_age(&HeaderMap::new()), None);
    }

    #[test]
    fn ttl_is_clamped() {
        let cache = JwksCache::new(
            JwksSource::Uri(Url::parse("http://127.0.0.1:1/keys").unwrap()),
            JwksConfig::default(),
        );
        assert_eq!(
            cache.ttl_from(&headers("max-age=1")),
            Duration::from_secs(30)
        );
        assert_eq!(
            cache.ttl_from(&headers("max-age=99999999")),
            Duration::from_secs(24 * 3600)
        );
        assert_eq!(cache.ttl_from(&HeaderMap::new()), Duration::from_secs(300));
    }

    fn jwk(json: serde_json::Value) -> Jwk {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn symmetric_and_encryption_keys_are_dropped() {
        assert!(
            allowed_algorithms(&jwk(serde_json::json!({"kty": "oct", "k": "c2VjcmV0"}))).is_none()
        );
        let ed = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        assert_eq!(
            allowed_algorithms(&jwk(ed.clone())),
            Some(vec![Algorithm::EdDSA])
        );
        let mut enc = ed.clone();
        enc["use"] = "enc".into();
        assert!(allowed_algorithms(&jwk(enc)).is_none());
        let mut mismatched = ed;
        mismatched["alg"] = "RS256".into();
        assert!(allowed_algorithms(&jwk(mismatched)).is_none());
    }

    #[test]
    fn short_rsa_keys_are_dropped() {
        let short = URL_SAFE_NO_PAD.encode([0xffu8; 128]);
        assert!(
            allowed_algorithms(&jwk(
                serde_json::json!({"kty": "RSA", "n": short, "e": "AQAB"})
            ))
            .is_none()
        );
        let long = URL_SAFE_NO_PAD.encode([0xffu8; 256]);
        let algs = allowed_algorithms(&jwk(
            serde_json::json!({"kty": "RSA", "n": long, "e": "AQAB", "alg": "RS256"}),
        ));
        assert_eq!(algs, Some(vec![Algorithm::RS256]));
    }
}
