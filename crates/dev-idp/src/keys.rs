//! Signing keys: RSA 2048 generated at start, RS256, a `kid` per key, rotation.
//!
//! Like Dex, the current key signs and retired keys stay in the JWKS (for verification
//! only) until every token they signed has expired. Rotation happens when the period has
//! passed (checked whenever a key is used) or on demand ([`KeyRing::rotate`]).

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Key generation or signing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The RSA key could not be generated or encoded.
    #[error("RSA key generation failed")]
    Generate,
    /// The JWT library refused the key or the claims.
    #[error("JWT signing failed: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
}

struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    n: String,
    e: String,
}

impl SigningKey {
    fn generate() -> Result<Self, KeyError> {
        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
        let der = pair.as_der().map_err(|_| KeyError::Generate)?;
        let body = STANDARD.encode(der.as_ref());
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).map_err(|_| KeyError::Generate)?);
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes())?;
        let public = pair.public_key();
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        let decoding = DecodingKey::from_rsa_components(&n, &e)?;
        // Dex names a key by 20 random bytes in hex (40 characters).
        let mut id = [0u8; 20];
        aws_lc_rs::rand::fill(&mut id).map_err(|_| KeyError::Generate)?;
        let kid = id.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self {
            kid,
            encoding,
            decoding,
            n,
            e,
        })
    }

    fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "use": "sig",
            "kty": "RSA",
            "kid": self.kid,
            "alg": "RS256",
            "n": self.n,
            "e": self.e,
        })
    }
}

struct Ring {
    current: Arc<SigningKey>,
    /// Retired keys with the instant after which no token they signed is valid.
    retired: Vec<(Arc<SigningKey>, Instant)>,
    next_rotation: Instant,
}

/// The set of signing and verification keys.
pub struct KeyRing {
    ring: RwLock<Ring>,
    period: Duration,
    token_lifetime: Duration,
}

impl KeyRing {
    /// Generates a first key. `period` is the rotation interval; retired keys are kept
    /// for `token_lifetime`.
    pub fn new(period: Duration, token_lifetime: Duration) -> Result<Self, KeyError> {
        let now = Instant::now();
        Ok(Self {
            ring: RwLock::new(Ring {
                current: Arc::new(SigningKey::generate()?),
                retired: Vec::new(),
                next_rotation: now + period,
            }),
            period,
            token_lifetime,
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Ring> {
        self.ring
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Ring> {
        self.ring
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replaces the signing key now; the old one stays published for verification.
    /// Returns the new `kid`.
    pub fn rotate(&self) -> Result<String, KeyError> {
        let fresh = Arc::new(SigningKey::generate()?);
        let kid = fresh.kid.clone();
        let now = Instant::now();
        let mut ring = self.write();
        let old = std::mem::replace(&mut ring.current, fresh);
        ring.retired.push((old, now + self.token_lifetime));
        ring.retired.retain(|(_, until)| *until > now);
        ring.next_rotation = now + self.period;
        tracing::info!(kid = %kid, "signing key rotated");
        Ok(kid)
    }

    fn rotate_if_due(&self) -> Result<(), KeyError> {
        let due = self.read().next_rotation <= Instant::now();
        if due && !self.period.is_zero() {
            self.rotate()?;
        }
        Ok(())
    }

    /// The `kid` of the current signing key.
    pub fn current_kid(&self) -> String {
        self.read().current.kid.clone()
    }

    /// Time until the next scheduled rotation.
    pub fn until_rotation(&self) -> Duration {
        self.read()
            .next_rotation
            .saturating_duration_since(Instant::now())
    }

    /// Signs claims with the current key (RS256). `typ` is the JOSE `typ` header; Dex
    /// sends none.
    pub fn sign<T: Serialize>(&self, typ: Option<&str>, claims: &T) -> Result<String, KeyError> {
        self.rotate_if_due()?;
        let key = Arc::clone(&self.read().current);
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(key.kid.clone());
        header.typ = typ.map(str::to_owned);
        Ok(jsonwebtoken::encode(&header, claims, &key.encoding)?)
    }

    /// Verifies a token this server signed (any published key), checking `iss` and `exp`.
    pub fn verify<T: DeserializeOwned>(&self, token: &str, issuer: &str) -> Option<T> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.alg != Algorithm::RS256 {
            return None;
        }
        let kid = header.kid?;
        let key = {
            let ring = self.read();
            if ring.current.kid == kid {
                Arc::clone(&ring.current)
            } else {
                let now = Instant::now();
                ring.retired
                    .iter()
                    .find(|(k, until)| k.kid == kid && *until > now)
                    .map(|(k, _)| Arc::clone(k))?
            }
        };
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[issuer]);
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        jsonwebtoken::decode::<T>(token, &key.decoding, &validation)
            .ok()
            .map(|data| data.claims)
    }

    /// The JSON Web Key Set: the current key first, then unexpired retired keys.
    pub fn jwks(&self) -> Result<serde_json::Value, KeyError> {
        self.rotate_if_due()?;
        let now = Instant::now();
        let ring = self.read();
        let mut keys = vec![ring.current.jwk()];
        keys.extend(
            ring.retired
                .iter()
                .filter(|(_, until)| *until > now)
                .map(|(k, _)| k.jwk()),
        );
        Ok(serde_json::json!({ "keys": keys }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_verifiable_tokens_and_rotates() {
        let ring = KeyRing::new(Duration::from_secs(3600), Duration::from_secs(60)).unwrap();
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 60;
        let claims = serde_json::json!({"iss": "http://i", "sub": "s", "exp": exp});
        let old = ring.sign(None, &claims).unwrap();
        let old_kid = ring.current_kid();
        assert_eq!(
            jsonwebtoken::decode_header(&old).unwrap().kid.as_deref(),
            Some(old_kid.as_str())
        );
        let new_kid = ring.rotate().unwrap();
        assert_ne!(old_kid, new_kid);
        // The old key still verifies and is still published.
        assert!(ring.verify::<serde_json::Value>(&old, "http://i").is_some());
        assert!(
            ring.verify::<serde_json::Value>(&old, "http://other")
                .is_none()
        );
        let jwks = ring.jwks().unwrap();
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids, [new_kid.as_str(), old_kid.as_str()]);
        // A token checked against the published JWK verifies with jsonwebtoken.
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwks["keys"][1].clone()).unwrap();
        let key = DecodingKey::from_jwk(&jwk).unwrap();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_aud = false;
        jsonwebtoken::decode::<serde_json::Value>(&old, &key, &validation).unwrap();
    }

    #[test]
    fn tampered_tokens_fail() {
        let ring = KeyRing::new(Duration::from_secs(3600), Duration::from_secs(60)).unwrap();
        let claims = serde_json::json!({"iss": "http://i", "sub": "s", "exp": u64::MAX / 2});
        let token = ring.sign(None, &claims).unwrap();
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] =
            URL_SAFE_NO_PAD.encode(br#"{"iss":"http://i","sub":"mallory","exp":9999999999}"#);
        assert!(
            ring.verify::<serde_json::Value>(&parts.join("."), "http://i")
                .is_none()
        );
    }
}
