//! JWT verification timings (T7 in the report): the cost of verifying one access token,
//! per algorithm, as the resource server's [`Validator`] does it: *cold* (the full
//! check: header pre-checks, signature, claims; the cache of verified tokens is off)
//! and *cached* (the same token again, a cache hit), beside the bare signature check of
//! `jsonwebtoken`. The criterion benches (`benches/jwt.rs`) and the harness's own quick
//! timing share this fixture.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use jsonwebtoken::{DecodingKey, Validation, jwk::Jwk};
use mcp_resource_server::{
    auth::{JwksCache, JwksSource, Validator, ValidatorConfig},
    config::JwksConfig,
};
use serde_json::Value;

use crate::{
    authz::{AuthServer, TokenSpec},
    keys::KeyAlg,
};

const AUDIENCE: &str = "http://127.0.0.1:9/mcp";

/// A token, its key, and two validators (cache off, cache on) ready to run.
pub struct VerifyFixture {
    alg: KeyAlg,
    runtime: tokio::runtime::Runtime,
    _auth: AuthServer,
    token: String,
    cold: Arc<Validator>,
    cached: Arc<Validator>,
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for VerifyFixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyFixture")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerifyFixture {
    /// Starts an authorization server signing with `alg` on its own runtime, mints a
    /// token and warms both validators (the JWKS is fetched once here).
    ///
    /// # Errors
    /// When the server, the key or the first validation fails.
    pub fn new(alg: KeyAlg) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let auth = runtime.block_on(crate::authz::start(alg))?;
        let token = TokenSpec::for_audience(AUDIENCE).mint(&auth);
        let validator = |capacity: usize| -> anyhow::Result<Arc<Validator>> {
            let jwks = Arc::new(JwksCache::new(
                JwksSource::Uri(auth.jwks_url().parse()?),
                JwksConfig::default(),
            ));
            Ok(Arc::new(Validator::new(
                ValidatorConfig {
                    issuer: auth.issuer().to_string(),
                    audiences: vec![AUDIENCE.to_string()],
                    leeway: Duration::from_secs(30),
                    max_token_bytes: 16 * 1024,
                    cache_capacity: capacity,
                },
                jwks,
            )))
        };
        let cold = validator(0)?;
        let cached = validator(1024)?;
        runtime.block_on(async {
            cold.validate(&token).await?;
            cached.validate(&token).await?;
            Ok::<_, anyhow::Error>(())
        })?;
        let jwks: Value = runtime.block_on(async {
            let url = auth.jwks_url();
            let body = http_get(&url).await?;
            Ok::<Value, anyhow::Error>(serde_json::from_slice(&body)?)
        })?;
        let jwk: Jwk = serde_json::from_value(jwks["keys"][0].clone())?;
        let key = DecodingKey::from_jwk(&jwk)?;
        let mut validation = Validation::new(alg.algorithm());
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[auth.issuer()]);
        Ok(Self {
            alg,
            runtime,
            _auth: auth,
            token,
            cold,
            cached,
            key,
            validation,
        })
    }

    /// The algorithm.
    pub fn alg(&self) -> KeyAlg {
        self.alg
    }

    /// `jsonwebtoken::decode` alone: signature and registered claims, no pre-checks.
    pub fn verify_signature(&self) -> bool {
        jsonwebtoken::decode::<Value>(&self.token, &self.key, &self.validation).is_ok()
    }

    /// The resource server's full validation with the cache of verified tokens off.
    pub fn validate_cold(&self) -> bool {
        self.runtime
            .block_on(self.cold.validate(&self.token))
            .is_ok()
    }

    /// The resource server's validation of a token already in its cache.
    pub fn validate_cached(&self) -> bool {
        self.runtime
            .block_on(self.cached.validate(&self.token))
            .is_ok()
    }
}

/// A plain HTTP GET over the raw client (the harness has no HTTP client dependency).
async fn http_get(url: &str) -> anyhow::Result<Vec<u8>> {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = crate::raw::connect(authority.parse()?).await?;
    let response = crate::raw::exchange(
        &mut stream,
        &crate::raw::request("GET", &format!("/{path}"), authority, &[], ""),
    )
    .await?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no response head"))?;
    Ok(response[split + 4..].to_vec())
}

/// Nanoseconds per call of `f`: the median of ten batches filling `budget`.
pub fn time_per_call(budget: Duration, mut f: impl FnMut() -> bool) -> anyhow::Result<f64> {
    // Calibrate a batch size of about a tenth of the budget.
    let start = Instant::now();
    let mut calibration = 0u64;
    while start.elapsed() < budget / 20 {
        anyhow::ensure!(f(), "verification failed");
        calibration += 1;
    }
    let per_batch = (calibration * 2).max(1);
    let mut samples = Vec::with_capacity(10);
    for _ in 0..10 {
        let start = Instant::now();
        for _ in 0..per_batch {
            anyhow::ensure!(f(), "verification failed");
        }
        samples.push(start.elapsed().as_nanos() as f64 / per_batch as f64);
    }
    samples.sort_by(f64::total_cmp);
    Ok((samples[4] + samples[5]) / 2.0)
}

/// Per-algorithm timings, ns per verification.
#[derive(Debug, Clone, Copy)]
pub struct VerifyTimes {
    /// The algorithm.
    pub alg: KeyAlg,
    /// `jsonwebtoken::decode` alone.
    pub signature_ns: f64,
    /// Full validation, cache off.
    pub cold_ns: f64,
    /// Cache hit.
    pub cached_ns: f64,
}

/// Times every algorithm (on a thread of its own: each fixture owns a runtime).
///
/// # Errors
/// When a fixture cannot be built or a verification fails.
pub fn time_all(budget: Duration) -> anyhow::Result<Vec<VerifyTimes>> {
    std::thread::spawn(move || {
        KeyAlg::ALL
            .iter()
            .map(|&alg| {
                let fixture = VerifyFixture::new(alg)?;
                Ok(VerifyTimes {
                    alg,
                    signature_ns: time_per_call(budget, || fixture.verify_signature())?,
                    cold_ns: time_per_call(budget, || fixture.validate_cold())?,
                    cached_ns: time_per_call(budget, || fixture.validate_cached())?,
                })
            })
            .collect()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the timing thread panicked"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_verifies_in_every_mode() {
        for alg in KeyAlg::ALL {
            let fixture = VerifyFixture::new(alg).unwrap();
            assert!(fixture.verify_signature(), "{alg:?} signature");
            assert!(fixture.validate_cold(), "{alg:?} cold");
            assert!(fixture.validate_cached(), "{alg:?} cached");
        }
    }
}
