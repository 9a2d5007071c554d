//! DPoP proofs at the resource ([RFC 9449](https://www.rfc-editor.org/rfc/rfc9449)).
//!
//! With `Authorization: DPoP <token>` a client sends a `DPoP` header holding a JWT it
//! signed with the key the token is bound to. [`DpopVerifier::verify`] makes every check
//! of RFC 9449 §4.3 and §7.1 that needs no token claims:
//!
//! 1. exactly one `DPoP` header, a compact JWS of bounded size;
//! 2. `typ` is `dpop+jwt`, no `crit`;
//! 3. `alg` is in the configured asymmetric allow-list (`none` and HMAC never are) and
//!    fits the key;
//! 4. `jwk` is a public key: private members (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`)
//!    and symmetric keys (`k`) are refused;
//! 5. the signature verifies with that key;
//! 6. `htm` is the request method, `htu` the request URL under the server's public
//!    URL (query and fragment ignored, RFC 3986 §6.2.2/§6.2.3 normalisation);
//! 7. `iat` lies within the window around now (±5 minutes by default);
//! 8. `ath` is base64url(SHA-256(access token));
//! 9. `nonce`, when server nonces are on (RFC 9449 §9), is one this server issued and
//!    still current; otherwise the answer is `use_dpop_nonce` with a fresh `DPoP-Nonce`.
//!
//! The layer then checks that the token's `cnf.jkt` is the RFC 7638 thumbprint of the
//! proof key and, last, records the proof's `jti` in the [`ReplayCache`] with
//! [`DpopVerifier::commit`]: a proof is accepted once.
//!
//! Server nonces are stateless: the nonce is a time slot and an HMAC of it under a key
//! drawn at start-up; the current and the previous slot are accepted.
//!
//! # Security
//! Proofs, keys and tokens never appear in errors or logs; the thumbprint (a hash of a
//! public key) may.

use std::{
    str::FromStr,
    sync::{Arc, OnceLock},
    time::Duration,
};

use aws_lc_rs::{digest, hmac, rand::SecureRandom};
use axum::http::{HeaderMap, HeaderName, Method, Uri};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, ThumbprintHash},
};
use serde::Deserialize;
use serde_json::{Map, Value};
use url::Url;

use super::replay::{ReplayCache, ReplayError, SharedReplay};
pub use crate::error::token::{DPOP_NONCE, DpopError};

/// The `DPoP` request header.
pub static DPOP: HeaderName = HeaderName::from_static("dpop");

/// Largest accepted proof, in bytes (an RSA-4096 `jwk` and a signature fit easily).
const MAX_PROOF_BYTES: usize = 8 * 1024;
/// Longest accepted `jti`.
const MAX_JTI_BYTES: usize = 256;

/// Whether the resource server takes DPoP-bound tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DpopPolicy {
    /// Only `Bearer`; the `DPoP` scheme is not understood (as before DPoP existed).
    #[default]
    Off,
    /// `Bearer` for unbound tokens, `DPoP` with a proof for bound ones.
    Allowed,
    /// Only `DPoP` with a proof; every token must be bound.
    Required,
}

impl FromStr for DpopPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "off" => Ok(Self::Off),
            "allowed" => Ok(Self::Allowed),
            "required" => Ok(Self::Required),
            _ => Err(format!("expected off, allowed or required, got {s:?}")),
        }
    }
}

/// Default proof algorithms.
pub const DEFAULT_ALGORITHMS: &[&str] = &["ES256", "ES384", "EdDSA", "PS256", "RS256"];

/// Default share of the replay cache one principal may fill: 10,000 proofs within the
/// window, 33 requests a second sustained over the default ±5 minutes, and room for a
/// hundred principals at their limit in the default cache.
pub const DEFAULT_REPLAY_PER_PRINCIPAL: usize = 10_000;

/// DPoP settings of the resource server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopConfig {
    /// Off, allowed or required.
    pub policy: DpopPolicy,
    /// JWS algorithms accepted for proofs (asymmetric only).
    pub algorithms: Vec<String>,
    /// How far `iat` may lie from now, either way.
    pub iat_window: Duration,
    /// Require server-issued nonces in proofs (RFC 9449 §9).
    pub nonce: bool,
    /// Most proofs remembered at once for replay detection.
    pub replay_capacity: usize,
    /// Most of those from one principal (issuer and subject of the token): past it that
    /// principal is answered 429 while everyone else is served.
    pub replay_per_principal: usize,
}

impl Default for DpopConfig {
    fn default() -> Self {
        Self {
            policy: DpopPolicy::Off,
            algorithms: DEFAULT_ALGORITHMS
                .iter()
                .map(|a| (*a).to_string())
                .collect(),
            iat_window: Duration::from_secs(300),
            nonce: false,
            replay_capacity: 1_000_000,
            replay_per_principal: DEFAULT_REPLAY_PER_PRINCIPAL,
        }
    }
}

/// Maps an `alg` name to an asymmetric algorithm usable for proofs.
pub fn proof_algorithm(alg: &str) -> Option<Algorithm> {
    Some(match alg {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

/// A proof that passed [`DpopVerifier::verify`], not yet recorded as used.
#[derive(Debug, Clone)]
pub struct VerifiedProof {
    /// RFC 7638 thumbprint (SHA-256, base64url) of the proof key.
    pub jkt: String,
    replay_key: u128,
    expires_at: u64,
}

#[derive(Deserialize)]
struct ProofHeader {
    typ: Option<Value>,
    alg: Option<Value>,
    jwk: Option<Map<String, Value>>,
    crit: Option<Value>,
}

#[derive(Deserialize)]
struct ProofClaims {
    jti: Option<Value>,
    htm: Option<Value>,
    htu: Option<Value>,
    iat: Option<Value>,
    ath: Option<Value>,
    nonce: Option<Value>,
}

/// JWK members that only private or symmetric keys have.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Checks DPoP proofs for one server. See the module documentation.
pub struct DpopVerifier {
    required: bool,
    algorithms: Vec<Algorithm>,
    algs_text: String,
    window: u64,
    origin: Url,
    replay: ReplayCache,
    /// The instances' shared record of proofs, with `--redis-url`.
    shared: OnceLock<Arc<dyn SharedReplay>>,
    nonces: Option<NonceKey>,
}

impl std::fmt::Debug for DpopVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopVerifier")
            .field("required", &self.required)
            .field("algs", &self.algs_text)
            .field("window", &self.window)
            .field("origin", &self.origin.as_str())
            .field("nonces", &self.nonces.is_some())
            .field("shared", &self.shared.get().is_some())
            .finish_non_exhaustive()
    }
}

impl DpopVerifier {
    /// A verifier for a server reachable at `public_url` (an origin), or `None` when
    /// the policy is off.
    ///
    /// # Errors
    /// An algorithm that is not an asymmetric JWS algorithm, or a bad public URL.
    pub fn new(config: &DpopConfig, public_url: &Url) -> Result<Option<Self>, String> {
        if config.policy == DpopPolicy::Off {
            return Ok(None);
        }
        let algorithms = config
            .algorithms
            .iter()
            .map(|a| {
                proof_algorithm(a)
                    .ok_or_else(|| format!("{a:?} is not an asymmetric JWS algorithm"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if algorithms.is_empty() {
            return Err("no proof algorithm".into());
        }
        if public_url.cannot_be_a_base() || public_url.host_str().is_none() {
            return Err("public URL has no host".into());
        }
        let nonces = if config.nonce {
            Some(NonceKey::generate(config.iat_window.as_secs().max(60))?)
        } else {
            None
        };
        Ok(Some(Self {
            required: config.policy == DpopPolicy::Required,
            algorithms,
            algs_text: config.algorithms.join(" "),
            window: config.iat_window.as_secs(),
            origin: public_url.clone(),
            replay: ReplayCache::new(
                config.iat_window.as_secs(),
                config.replay_capacity,
                config.replay_per_principal,
            ),
            shared: OnceLock::new(),
            nonces,
        }))
    }

    /// Whether only DPoP-bound tokens are accepted.
    pub fn required(&self) -> bool {
        self.required
    }

    /// The accepted algorithms, space-separated (the challenge's `algs`).
    pub fn algs(&self) -> &str {
        &self.algs_text
    }

    /// The accepted algorithms, as the PRM lists them.
    pub fn algorithm_names(&self) -> Vec<String> {
        self.algs_text.split(' ').map(str::to_string).collect()
    }

    /// Checks the `DPoP` header of a request carrying `token` (see the module
    /// documentation); `now` is in seconds since the epoch.
    ///
    /// # Errors
    /// The first check that failed.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        method: &Method,
        uri: &Uri,
        token: &str,
        now: u64,
    ) -> Result<VerifiedProof, DpopError> {
        let mut values = headers.get_all(&DPOP).iter();
        let proof = values.next().ok_or(DpopError::MissingProof)?;
        if values.next().is_some() {
            return Err(DpopError::MultipleProofs);
        }
        let proof = proof
            .to_str()
            .map_err(|_| DpopError::Malformed("not ASCII"))?;
        if proof.len() > MAX_PROOF_BYTES {
            return Err(DpopError::Malformed("too large"));
        }
        let mut parts = proof.split('.');
        let (Some(header_b64), Some(claims_b64), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(DpopError::Malformed("expected three parts"));
        };
        if header_b64.is_empty() || claims_b64.is_empty() || signature.is_empty() {
            return Err(DpopError::Malformed("empty part"));
        }
        let header: ProofHeader = decode_part(header_b64)?;
        match header.typ {
            Some(Value::String(typ)) if typ.eq_ignore_ascii_case("dpop+jwt") => {}
            _ => return Err(DpopError::WrongType),
        }
        let alg = match header.alg {
            Some(Value::String(alg)) => alg,
            _ => return Err(DpopError::Malformed("header has no alg")),
        };
        let algorithm = proof_algorithm(&alg)
            .filter(|a| self.algorithms.contains(a))
            .ok_or_else(|| DpopError::AlgorithmNotAllowed(alg.chars().take(16).collect()))?;
        if header.crit.is_some() {
            return Err(DpopError::Malformed("crit is not supported"));
        }
        let jwk = header.jwk.ok_or(DpopError::MissingClaim("jwk"))?;
        if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
            return Err(DpopError::PrivateKey);
        }
        let jwk: Jwk = serde_json::from_value(Value::Object(jwk)).map_err(|_| DpopError::BadKey)?;
        if !key_fits(&jwk, algorithm) {
            return Err(DpopError::BadKey);
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| DpopError::BadKey)?;
        let signed = &proof[..header_b64.len() + 1 + claims_b64.len()];
        match jsonwebtoken::crypto::verify(signature, signed.as_bytes(), &key, algorithm) {
            Ok(true) => {}
            Ok(false) => return Err(DpopError::InvalidSignature),
            Err(_) => return Err(DpopError::BadKey),
        }

        let claims: ProofClaims = decode_part(claims_b64)?;
        let jti = match claims.jti {
            Some(Value::String(jti)) if !jti.is_empty() && jti.len() <= MAX_JTI_BYTES => jti,
            Some(_) => return Err(DpopError::Malformed("jti")),
            None => return Err(DpopError::MissingClaim("jti")),
        };
        match claims.htm {
            Some(Value::String(htm)) if htm == method.as_str() => {}
            Some(Value::String(_)) => return Err(DpopError::WrongMethod),
            _ => return Err(DpopError::MissingClaim("htm")),
        }
        match claims.htu {
            Some(Value::String(htu)) => {
                if !self.htu_matches(&htu, uri) {
                    return Err(DpopError::WrongUrl);
                }
            }
            _ => return Err(DpopError::MissingClaim("htu")),
        }
        let iat = match claims.iat {
            Some(Value::Number(n)) => n
                .as_u64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.is_finite() && *f >= 0.0)
                        // Whole seconds are what the window is measured in.
                        .map(|f| {
                            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                            let whole = f as u64;
                            whole
                        })
                })
                .ok_or(DpopError::Malformed("iat"))?,
            Some(_) => return Err(DpopError::Malformed("iat")),
            None => return Err(DpopError::MissingClaim("iat")),
        };
        if iat.saturating_add(self.window) < now {
            return Err(DpopError::Stale);
        }
        if iat > now.saturating_add(self.window) {
            return Err(DpopError::Future);
        }
        match claims.ath {
            Some(Value::String(ath)) if ath == access_token_hash(token) => {}
            Some(Value::String(_)) => return Err(DpopError::WrongAth),
            _ => return Err(DpopError::MissingClaim("ath")),
        }
        if let Some(nonces) = &self.nonces {
            let current = match &claims.nonce {
                Some(Value::String(nonce)) => nonces.is_current(nonce, now),
                _ => false,
            };
            if !current {
                return Err(DpopError::UseNonce(nonces.issue(now)));
            }
        }
        let jkt = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|_| DpopError::BadKey)?;
        Ok(VerifiedProof {
            replay_key: replay_key(&jkt, &jti),
            expires_at: iat.saturating_add(self.window),
            jkt,
        })
    }

    /// Records a verified proof as used by the principal `issuer`/`subject` (the
    /// token's): the last step, after the token's binding has been checked.
    ///
    /// # Errors
    /// [`DpopError::Replayed`] if the proof was used before, [`DpopError::OverQuota`]
    /// if the principal has its share of the cache, [`DpopError::ReplayCacheFull`] if
    /// it cannot be remembered.
    pub fn commit(
        &self,
        proof: &VerifiedProof,
        issuer: &str,
        subject: &str,
        now: u64,
    ) -> Result<(), DpopError> {
        self.replay
            .insert(
                proof.replay_key,
                holder_key(issuer, subject),
                proof.expires_at,
                now,
            )
            .map_err(|e| match e {
                ReplayError::Replayed => DpopError::Replayed,
                ReplayError::Full => DpopError::ReplayCacheFull,
                ReplayError::OverQuota { retry_after } => DpopError::OverQuota { retry_after },
            })
    }

    /// Also records every proof in the state shared by the instances behind a load
    /// balancer, so that a proof used on one is refused on all (see
    /// [`crate::cluster::replay`]); this instance's cache stays the first filter.
    pub(crate) fn share_replay(&self, shared: Arc<dyn SharedReplay>) {
        let _ = self.shared.set(shared);
    }

    /// Whether proofs are also recorded in the shared state.
    pub fn is_shared(&self) -> bool {
        self.shared.get().is_some()
    }

    /// After [`DpopVerifier::commit`]: records the proof in the state shared by the
    /// instances, if there is one.
    ///
    /// # Errors
    /// [`DpopError::Replayed`] if another instance accepted the proof before,
    /// [`DpopError::SharedReplayUnavailable`] if the shared state cannot be reached.
    pub async fn commit_shared(&self, proof: &VerifiedProof, now: u64) -> Result<(), DpopError> {
        let Some(shared) = self.shared.get() else {
            return Ok(());
        };
        match shared
            .record_proof(proof.replay_key, proof.expires_at, now)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(DpopError::Replayed),
            Err(error) => {
                tracing::warn!(%error, "DPoP proof refused: the shared replay record is unavailable");
                Err(DpopError::SharedReplayUnavailable)
            }
        }
    }

    /// Whether `htu` names the request URL: scheme, host and port of the public URL,
    /// the request's path; query and fragment of `htu` are ignored (RFC 9449 §4.3).
    fn htu_matches(&self, htu: &str, uri: &Uri) -> bool {
        let Ok(htu) = Url::parse(htu) else {
            return false;
        };
        let origin = &self.origin;
        htu.scheme() == origin.scheme()
            && htu.host_str() == origin.host_str()
            && htu.port_or_known_default() == origin.port_or_known_default()
            && htu.username().is_empty()
            && htu.password().is_none()
            && htu.path() == normalised_path(uri.path())
    }
}

/// A request path as `Url` would write it (percent-encoding and dot segments).
fn normalised_path(path: &str) -> String {
    Url::parse("http://h")
        .and_then(|base| base.join(path))
        .map_or_else(|_| path.to_string(), |url| url.path().to_string())
}

/// Whether `algorithm` can be used with `jwk`'s key type and curve.
fn key_fits(jwk: &Jwk, algorithm: Algorithm) -> bool {
    match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(ec) => matches!(
            (&ec.curve, algorithm),
            (EllipticCurve::P256, Algorithm::ES256) | (EllipticCurve::P384, Algorithm::ES384)
        ),
        AlgorithmParameters::OctetKeyPair(okp) => {
            okp.curve == EllipticCurve::Ed25519 && algorithm == Algorithm::EdDSA
        }
        AlgorithmParameters::RSA(_) => matches!(
            algorithm,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        ),
        _ => false,
    }
}

fn decode_part<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, DpopError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| DpopError::Malformed("not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| DpopError::Malformed("not a JSON object"))
}

/// `ath`: base64url(SHA-256(ASCII access token)) (RFC 9449 §4.2).
pub fn access_token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, token.as_bytes()))
}

/// The replay cache key of a proof: 128 bits of SHA-256 over its key and `jti`, so
/// that one client cannot spend another's `jti`s.
fn replay_key(jkt: &str, jti: &str) -> u128 {
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(jkt.as_bytes());
    context.update(b".");
    context.update(jti.as_bytes());
    let hash = context.finish();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash.as_ref()[..16]);
    u128::from_be_bytes(bytes)
}

/// The replay cache's name for a principal: 64 bits of SHA-256 over issuer and subject.
fn holder_key(issuer: &str, subject: &str) -> u64 {
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(issuer.as_bytes());
    context.update(b"\n");
    context.update(subject.as_bytes());
    let hash = context.finish();
    u64::from_be_bytes(hash.as_ref()[..8].try_into().expect("eight bytes"))
}

/// Stateless server nonces: a time slot and its HMAC.
struct NonceKey {
    key: hmac::Key,
    slot_secs: u64,
}

impl NonceKey {
    fn generate(slot_secs: u64) -> Result<Self, String> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let mut secret = [0u8; 32];
        rng.fill(&mut secret)
            .map_err(|_| "no randomness for the nonce key".to_string())?;
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            slot_secs,
        })
    }

    fn tag(&self, slot: u64) -> hmac::Tag {
        hmac::sign(&self.key, &slot.to_be_bytes())
    }

    fn issue(&self, now: u64) -> String {
        let slot = now / self.slot_secs;
        let mut bytes = slot.to_be_bytes().to_vec();
        bytes.extend_from_slice(&self.tag(slot).as_ref()[..16]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn is_current(&self, nonce: &str, now: u64) -> bool {
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(nonce) else {
            return false;
        };
        if bytes.len() != 24 {
            return false;
        }
        let slot = u64::from_be_bytes(bytes[..8].try_into().expect("eight bytes"));
        let current = now / self.slot_secs;
        if slot != current && slot.saturating_add(1) != current {
            return false;
        }
        // Constant-time comparison of the truncated tag.
        let expected = self.tag(slot);
        aws_lc_rs::constant_time::verify_slices_are_equal(&expected.as_ref()[..16], &bytes[8..])
            .is_ok()
    }
}

#[cfg(test)]
mod tests;
