//! DPoP proofs at the token endpoint ([RFC 9449 §5](https://www.rfc-editor.org/rfc/rfc9449#section-5)).
//!
//! A `DPoP` header on a token request is checked as RFC 9449 §4.3 says: one header;
//! `typ` `dpop+jwt`; an asymmetric `alg` from [`ALGORITHMS`] that fits the key; a
//! public `jwk` (private and symmetric members refused); the signature; `htm` `POST`
//! and `htu` the token endpoint (query and fragment ignored); `iat` within five minutes
//! either way; a `jti` not seen before within that window; and, with server nonces on
//! (RFC 9449 §8), a `nonce` this server issued lately, else the answer is 400
//! `use_dpop_nonce` with a fresh `DPoP-Nonce`. The result is the key's RFC 7638
//! thumbprint, which goes into the access token as `cnf.jkt`.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_lc_rs::{digest, hmac, rand::SecureRandom};
use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, ThumbprintHash};
use serde_json::{Map, Value};
use url::Url;

use crate::error::Error;

/// Algorithms accepted for proofs, as advertised in `dpop_signing_alg_values_supported`.
pub(crate) const ALGORITHMS: &[&str] = &["ES256", "ES384", "EdDSA", "PS256", "RS256"];

/// How far `iat` may lie from now, either way (seconds).
const WINDOW: u64 = 300;
/// Largest accepted proof.
const MAX_PROOF_BYTES: usize = 8 * 1024;
/// JWK members only private or symmetric keys have.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
/// Most `jti`s remembered (older ones expire within the window anyway).
const MAX_SEEN: usize = 100_000;

/// Replay memory and the nonce key.
pub(crate) struct DpopState {
    seen: Mutex<HashMap<[u8; 32], u64>>,
    nonce_key: hmac::Key,
}

impl DpopState {
    pub(crate) fn new() -> Self {
        let mut secret = [0u8; 32];
        aws_lc_rs::rand::SystemRandom::new()
            .fill(&mut secret)
            .expect("the system random number generator failed");
        Self {
            seen: Mutex::new(HashMap::new()),
            nonce_key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
        }
    }

    /// A nonce for now: a time slot and its HMAC, accepted in this slot and the next.
    fn nonce(&self, now: u64) -> String {
        let slot = now / WINDOW;
        let mut bytes = slot.to_be_bytes().to_vec();
        bytes.extend_from_slice(&hmac::sign(&self.nonce_key, &slot.to_be_bytes()).as_ref()[..16]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn nonce_is_current(&self, nonce: &str, now: u64) -> bool {
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(nonce) else {
            return false;
        };
        if bytes.len() != 24 {
            return false;
        }
        let slot = u64::from_be_bytes(bytes[..8].try_into().unwrap_or_default());
        let current = now / WINDOW;
        if slot != current && slot.saturating_add(1) != current {
            return false;
        }
        let tag = hmac::sign(&self.nonce_key, &slot.to_be_bytes());
        aws_lc_rs::constant_time::verify_slices_are_equal(&tag.as_ref()[..16], &bytes[8..]).is_ok()
    }

    /// Checks the `DPoP` header of a token request sent to `token_endpoint`; `None`
    /// when there is none. Returns the proof key's thumbprint.
    pub(crate) fn check(
        &self,
        headers: &HeaderMap,
        token_endpoint: &str,
        require_nonce: bool,
        now: u64,
    ) -> Result<Option<String>, Error> {
        let mut values = headers.get_all("dpop").iter();
        let Some(proof) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(invalid("Exactly one DPoP header is allowed."));
        }
        let proof = proof
            .to_str()
            .map_err(|_| invalid("The DPoP proof is malformed."))?;
        if proof.len() > MAX_PROOF_BYTES {
            return Err(invalid("The DPoP proof is too large."));
        }
        let parts: Vec<&str> = proof.split('.').collect();
        let [header_b64, claims_b64, signature] = parts[..] else {
            return Err(invalid("The DPoP proof is not a compact JWS."));
        };
        let header = decode(header_b64)?;
        if !header
            .get("typ")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt"))
        {
            return Err(invalid("The DPoP proof must have typ dpop+jwt."));
        }
        let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
        let algorithm = ALGORITHMS
            .contains(&alg)
            .then(|| alg.parse::<Algorithm>().ok())
            .flatten()
            .ok_or_else(|| invalid("The DPoP proof algorithm is not allowed."))?;
        if header.contains_key("crit") {
            return Err(invalid("The DPoP proof has crit parameters."));
        }
        let jwk = header
            .get("jwk")
            .and_then(Value::as_object)
            .ok_or_else(|| invalid("The DPoP proof has no jwk."))?;
        if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
            return Err(invalid("The DPoP proof jwk must be a public key."));
        }
        let jwk: Jwk = serde_json::from_value(Value::Object(jwk.clone()))
            .map_err(|_| invalid("The DPoP proof jwk is not a usable key."))?;
        if !key_fits(&jwk, algorithm) {
            return Err(invalid("The DPoP proof jwk does not fit its alg."));
        }
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwk)
            .map_err(|_| invalid("The DPoP proof jwk is not a usable key."))?;
        let signed = &proof[..header_b64.len() + 1 + claims_b64.len()];
        if !jsonwebtoken::crypto::verify(signature, signed.as_bytes(), &key, algorithm)
            .unwrap_or(false)
        {
            return Err(invalid("The DPoP proof signature is invalid."));
        }
        let claims = decode(claims_b64)?;
        if claims.get("htm").and_then(Value::as_str) != Some("POST") {
            return Err(invalid("The DPoP proof htm must be POST."));
        }
        let htu_ok = claims
            .get("htu")
            .and_then(Value::as_str)
            .and_then(|htu| Url::parse(htu).ok())
            .zip(Url::parse(token_endpoint).ok())
            .is_some_and(|(htu, endpoint)| {
                htu.scheme() == endpoint.scheme()
                    && htu.host_str() == endpoint.host_str()
                    && htu.port_or_known_default() == endpoint.port_or_known_default()
                    && htu.path() == endpoint.path()
            });
        if !htu_ok {
            return Err(invalid("The DPoP proof htu must be the token endpoint."));
        }
        let iat = claims
            .get("iat")
            .and_then(Value::as_u64)
            .ok_or_else(|| invalid("The DPoP proof has no iat."))?;
        if iat.saturating_add(WINDOW) < now || iat > now.saturating_add(WINDOW) {
            return Err(invalid(
                "The DPoP proof iat is outside the accepted window.",
            ));
        }
        let jti = claims
            .get("jti")
            .and_then(Value::as_str)
            .filter(|j| !j.is_empty() && j.len() <= 256)
            .ok_or_else(|| invalid("The DPoP proof has no jti."))?;
        if require_nonce
            && !claims
                .get("nonce")
                .and_then(Value::as_str)
                .is_some_and(|n| self.nonce_is_current(n, now))
        {
            return Err(Error::DpopNonce {
                nonce: self.nonce(now),
            });
        }
        let jkt = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|_| invalid("The DPoP proof jwk is not a usable key."))?;
        let mut key = [0u8; 32];
        let mut context = digest::Context::new(&digest::SHA256);
        context.update(jkt.as_bytes());
        context.update(b".");
        context.update(jti.as_bytes());
        key.copy_from_slice(context.finish().as_ref());
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.retain(|_, expires| *expires >= now);
        if seen.contains_key(&key) {
            return Err(invalid("The DPoP proof was used before."));
        }
        if seen.len() >= MAX_SEEN {
            return Err(Error::token(
                "temporarily_unavailable",
                "Too many DPoP proofs to remember; retry shortly.",
            ));
        }
        seen.insert(key, iat.saturating_add(WINDOW));
        Ok(Some(jkt))
    }
}

fn invalid(description: &'static str) -> Error {
    Error::token("invalid_dpop_proof", description)
}

fn decode(part: &str) -> Result<Map<String, Value>, Error> {
    URL_SAFE_NO_PAD
        .decode(part)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| invalid("The DPoP proof is malformed."))
}

/// Whether a JWK is a key of the kind `algorithm` signs with.
pub(crate) fn key_fits(jwk: &Jwk, algorithm: Algorithm) -> bool {
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
