//! Public keys of other parties, fetched over HTTP: a client's `jwksURI` and the JWKS of
//! a trusted issuer (found through its OpenID discovery document unless configured).
//!
//! A fetched key set is kept for [`TTL`]; when a JWT names a `kid` the cached set lacks,
//! the set is fetched again (at most once per [`REFETCH_GAP`]), which is how a signer's
//! key rotation is picked up. Redirects are not followed and every fetch has a timeout.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;

use crate::clients::KeySource;

/// How long a fetched key set is used without asking again.
const TTL: Duration = Duration::from_secs(300);
/// Least time between two fetches of the same set.
const REFETCH_GAP: Duration = Duration::from_secs(10);
/// Time limit of one fetch.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Largest accepted document.
const MAX_BYTES: usize = 256 * 1024;

/// A key set could not be obtained. The text names the URL, which is configuration,
/// never a secret.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot fetch {url}: {reason}")]
pub(crate) struct FetchError {
    url: String,
    reason: String,
}

/// Fetched key sets and discovered `jwks_uri`s.
pub(crate) struct RemoteKeys {
    http: reqwest::Client,
    sets: Mutex<HashMap<String, (JwkSet, Instant)>>,
    jwks_uris: Mutex<HashMap<String, String>>,
}

impl RemoteKeys {
    pub(crate) fn new() -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .build()
            .unwrap_or_default();
        Self {
            http,
            sets: Mutex::new(HashMap::new()),
            jwks_uris: Mutex::new(HashMap::new()),
        }
    }

    async fn get_json(&self, url: &str) -> Result<serde_json::Value, FetchError> {
        let fail = |reason: String| FetchError {
            url: url.to_owned(),
            reason,
        };
        let response = self
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !response.status().is_success() {
            return Err(fail(format!("HTTP {}", response.status())));
        }
        let bytes = response.bytes().await.map_err(|e| fail(e.to_string()))?;
        if bytes.len() > MAX_BYTES {
            return Err(fail("document too large".into()));
        }
        serde_json::from_slice(&bytes).map_err(|e| fail(format!("not JSON: {e}")))
    }

    /// The key set at `url`; fetched again when `kid` is not in the cached one.
    pub(crate) async fn set(&self, url: &str, kid: Option<&str>) -> Result<JwkSet, FetchError> {
        let cached = {
            let sets = self
                .sets
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            sets.get(url).cloned()
        };
        if let Some((set, fetched)) = &cached {
            let fresh = fetched.elapsed() < TTL;
            let has_kid = kid.is_none_or(|k| set.find(k).is_some());
            if (fresh && has_kid) || fetched.elapsed() < REFETCH_GAP {
                return Ok(set.clone());
            }
        }
        let doc = self.get_json(url).await?;
        let set: JwkSet = serde_json::from_value(doc).map_err(|e| FetchError {
            url: url.to_owned(),
            reason: format!("not a JWK set: {e}"),
        })?;
        self.sets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(url.to_owned(), (set.clone(), Instant::now()));
        Ok(set)
    }

    /// The key set of a client or issuer.
    pub(crate) async fn keys(
        &self,
        source: &KeySource,
        kid: Option<&str>,
    ) -> Result<JwkSet, FetchError> {
        match source {
            KeySource::Inline(set) => Ok(set.clone()),
            KeySource::Uri(url) => self.set(url, kid).await,
        }
    }

    /// The `jwks_uri` of `issuer`, from its OpenID discovery document, whose `issuer`
    /// must be exactly the one asked for.
    pub(crate) async fn discover(&self, issuer: &str) -> Result<String, FetchError> {
        if let Some(uri) = self
            .jwks_uris
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(issuer)
        {
            return Ok(uri.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let doc = self.get_json(&url).await?;
        let fail = |reason: &str| FetchError {
            url: url.clone(),
            reason: reason.to_owned(),
        };
        if doc.get("issuer").and_then(serde_json::Value::as_str) != Some(issuer) {
            return Err(fail("its issuer is not the one configured"));
        }
        let uri = doc
            .get("jwks_uri")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| fail("no jwks_uri"))?
            .to_owned();
        self.jwks_uris
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(issuer.to_owned(), uri.clone());
        Ok(uri)
    }
}
