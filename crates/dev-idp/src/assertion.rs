//! Checks shared by every JWT another party signs and this server accepts: client
//! assertions (`private_key_jwt`, [RFC 7523 §2.2](https://www.rfc-editor.org/rfc/rfc7523#section-2.2)
//! and §3) and authorization grants (the JWT bearer grant, [RFC 7523 §2.1](https://www.rfc-editor.org/rfc/rfc7523#section-2.1):
//! ID-JAGs and workload tokens).
//!
//! [`verify`] checks, in this order: a compact JWS; an asymmetric `alg` from
//! [`ALGORITHMS`] (so `none` and the HMAC algorithms, whose "key" would be public, are
//! refused before any key is looked at); a key of the given set that fits the `alg`
//! (by `kid` when the header names one); the signature; `exp` present and not past;
//! `exp` not further than the caller's limit; `iat` and `nbf` not in the future; `aud`
//! naming one of the accepted audiences. [`JtiCache`] then refuses a `jti` seen before
//! from the same issuer while it could still be valid.
//!
//! # Security
//! Nothing here reads the algorithm from the token to choose how to verify beyond the
//! allow-list, and the claims are read only after the signature checks out. Refusal
//! messages name the failed check, never the token.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::JwkSet;
use serde_json::{Map, Value};

/// Asymmetric algorithms accepted for signed assertions (advertised as
/// `token_endpoint_auth_signing_alg_values_supported`).
pub(crate) const ALGORITHMS: &[&str] = &[
    "ES256", "ES384", "EdDSA", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
];

/// Clock skew tolerated on `exp`, `iat` and `nbf` (seconds).
pub(crate) const LEEWAY: u64 = 30;
/// Largest accepted assertion.
const MAX_BYTES: usize = 16 * 1024;
/// Most `jti`s remembered at once.
const MAX_SEEN: usize = 100_000;

/// Why an assertion was refused. The text is safe to send back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum Refusal {
    #[error("The {0} is not a signed JWT.")]
    Malformed(&'static str),
    #[error("The {0} is signed with an algorithm that is not allowed (asymmetric only: {allowed}).", allowed = ALGORITHMS.join(", "))]
    Algorithm(&'static str),
    #[error("No published key of the {0} signer fits its kid and alg.")]
    NoKey(&'static str),
    #[error("The {0} signature is invalid.")]
    Signature(&'static str),
    #[error("The {0} has no exp.")]
    NoExpiry(&'static str),
    #[error("The {0} has expired.")]
    Expired(&'static str),
    #[error("The {0} expires too far in the future (at most {1} s ahead).")]
    TooLong(&'static str, u64),
    #[error("The {0} has an iat or nbf in the future.")]
    NotYetValid(&'static str),
    #[error("The {0} aud does not name this server.")]
    Audience(&'static str),
    #[error("The {0} has no jti.")]
    NoJti(&'static str),
    #[error("The {0} was used before (same jti).")]
    Replayed(&'static str),
    #[error("Too many assertions to remember; retry shortly.")]
    Full,
}

/// What a caller expects of an assertion.
pub(crate) struct Expect<'a> {
    /// What the assertion is, for messages ("client assertion", "ID-JAG", ...).
    pub(crate) what: &'static str,
    /// `aud` must contain one of these.
    pub(crate) audiences: &'a [String],
    /// `exp` may lie at most this many seconds ahead.
    pub(crate) max_lifetime: u64,
}

/// A JWT whose signature and time claims checked out.
#[derive(Debug)]
pub(crate) struct Verified {
    /// The JOSE header's `typ`, if any.
    pub(crate) typ: Option<String>,
    /// The claims.
    pub(crate) claims: Map<String, Value>,
}

impl Verified {
    /// A string claim.
    pub(crate) fn str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    fn exp(&self) -> u64 {
        self.claims.get("exp").and_then(Value::as_u64).unwrap_or(0)
    }
}

/// The claims of a JWT, read WITHOUT checking its signature: only to find out who
/// claims to have signed it (`iss`, `sub`), so that the right keys can be fetched.
pub(crate) fn unverified_claims(token: &str) -> Option<Map<String, Value>> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Checks `token` against `keys` and `expect` at time `now` (seconds since the epoch).
pub(crate) fn verify(
    token: &str,
    keys: &JwkSet,
    expect: &Expect<'_>,
    now: u64,
) -> Result<Verified, Refusal> {
    let what = expect.what;
    if token.len() > MAX_BYTES {
        return Err(Refusal::Malformed(what));
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [header_b64, claims_b64, signature] = parts[..] else {
        return Err(Refusal::Malformed(what));
    };
    let header: Map<String, Value> = URL_SAFE_NO_PAD
        .decode(header_b64)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(Refusal::Malformed(what))?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let algorithm = ALGORITHMS
        .contains(&alg)
        .then(|| alg.parse::<Algorithm>().ok())
        .flatten()
        .ok_or(Refusal::Algorithm(what))?;
    if header.contains_key("crit") {
        return Err(Refusal::Malformed(what));
    }
    let kid = header.get("kid").and_then(Value::as_str);
    let signed = &token[..header_b64.len() + 1 + claims_b64.len()];
    let candidates: Vec<_> = keys
        .keys
        .iter()
        .filter(|k| kid.is_none() || k.common.key_id.as_deref() == kid)
        .filter(|k| crate::dpop::key_fits(k, algorithm))
        .filter_map(|k| jsonwebtoken::DecodingKey::from_jwk(k).ok())
        .collect();
    if candidates.is_empty() {
        return Err(Refusal::NoKey(what));
    }
    let valid = candidates.iter().any(|key| {
        jsonwebtoken::crypto::verify(signature, signed.as_bytes(), key, algorithm).unwrap_or(false)
    });
    if !valid {
        return Err(Refusal::Signature(what));
    }
    let claims: Map<String, Value> = URL_SAFE_NO_PAD
        .decode(claims_b64)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(Refusal::Malformed(what))?;
    let exp = claims
        .get("exp")
        .and_then(Value::as_u64)
        .ok_or(Refusal::NoExpiry(what))?;
    if exp.saturating_add(LEEWAY) <= now {
        return Err(Refusal::Expired(what));
    }
    if exp > now.saturating_add(expect.max_lifetime + LEEWAY) {
        return Err(Refusal::TooLong(what, expect.max_lifetime));
    }
    for name in ["iat", "nbf"] {
        match claims.get(name) {
            None => {}
            Some(v) => match v.as_u64() {
                Some(t) if t <= now.saturating_add(LEEWAY) => {}
                _ => return Err(Refusal::NotYetValid(what)),
            },
        }
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => expect.audiences.iter().any(|x| x == a),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|a| expect.audiences.iter().any(|x| x == a)),
        _ => false,
    };
    if !aud_ok {
        return Err(Refusal::Audience(what));
    }
    Ok(Verified {
        typ: header.get("typ").and_then(Value::as_str).map(str::to_owned),
        claims,
    })
}

/// The `jti`s of accepted assertions, each kept until its assertion expires, so that
/// none is accepted twice. Bounded: when full of unexpired entries, new assertions are
/// refused (`temporarily_unavailable`) rather than old ones forgotten.
#[derive(Default)]
pub(crate) struct JtiCache {
    seen: Mutex<HashMap<String, u64>>,
}

impl JtiCache {
    /// Records the `jti` of `verified` from `issuer`; refuses one seen before.
    pub(crate) fn remember(
        &self,
        issuer: &str,
        verified: &Verified,
        what: &'static str,
        now: u64,
    ) -> Result<(), Refusal> {
        let jti = verified
            .str("jti")
            .filter(|j| !j.is_empty() && j.len() <= 256)
            .ok_or(Refusal::NoJti(what))?;
        let key = format!("{issuer}\u{0}{jti}");
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.contains_key(&key) {
            return Err(Refusal::Replayed(what));
        }
        if seen.len() >= MAX_SEEN {
            seen.retain(|_, exp| exp.saturating_add(LEEWAY) > now);
            if seen.len() >= MAX_SEEN {
                return Err(Refusal::Full);
            }
        }
        seen.insert(key, verified.exp());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_and_hmac_are_refused_before_any_key() {
        let claims = URL_SAFE_NO_PAD.encode(br#"{"exp":9999999999,"aud":"a"}"#);
        let keys = JwkSet { keys: vec![] };
        let expect = Expect {
            what: "assertion",
            audiences: &["a".to_owned()],
            max_lifetime: 60,
        };
        for alg in ["none", "HS256", "HS512", ""] {
            let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}"}}"#));
            let token = format!("{header}.{claims}.");
            assert_eq!(
                verify(&token, &keys, &expect, 1).unwrap_err(),
                Refusal::Algorithm("assertion")
            );
        }
        assert_eq!(
            verify("a.b", &keys, &expect, 1).unwrap_err(),
            Refusal::Malformed("assertion")
        );
    }

    #[test]
    fn jti_cache_refuses_a_second_use() {
        let cache = JtiCache::default();
        let mut claims = Map::new();
        claims.insert("jti".into(), "j1".into());
        claims.insert("exp".into(), 100.into());
        let v = Verified { typ: None, claims };
        cache.remember("iss", &v, "x", 50).unwrap();
        assert_eq!(
            cache.remember("iss", &v, "x", 60).unwrap_err(),
            Refusal::Replayed("x")
        );
        // The same jti from another issuer is another assertion.
        cache.remember("other", &v, "x", 60).unwrap();
        let none = Verified {
            typ: None,
            claims: Map::new(),
        };
        assert_eq!(
            cache.remember("iss", &none, "x", 60).unwrap_err(),
            Refusal::NoJti("x")
        );
    }
}
