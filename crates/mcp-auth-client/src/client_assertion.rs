//! JWT client assertions (`private_key_jwt`, RFC 7523 §2.2 and §3, OpenID Connect Core
//! §9): the client proves who it is with a short-lived JWT signed by its own key instead
//! of a shared secret. Claims: `iss` = `sub` = the client id, `aud` = the authorization
//! server's issuer, `iat`, `exp` (60 s later) and a unique `jti`.
//!
//! # Security
//! The key is read from a PEM file (`--client-key`) and kept in memory; its `Debug` shows
//! the algorithm and the file, never the key.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::cache::now;
use crate::error::{ClientError, Result};

/// The `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A client's private key for `private_key_jwt`.
pub struct ClientKey {
    alg: Algorithm,
    key: EncodingKey,
    path: PathBuf,
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKey")
            .field("alg", &self.alg)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ClientKey {
    /// Reads a PEM private key (PKCS#8, or SEC1/PKCS#1 for EC/RSA) for `alg` (ES256,
    /// ES384, RS256, RS384, RS512, PS256, PS384, PS512 or EdDSA).
    pub fn from_pem_file(path: &Path, alg: &str) -> Result<Self> {
        let bad =
            |why: String| ClientError::Config(format!("--client-key {}: {why}", path.display()));
        let alg = Algorithm::from_str(alg)
            .ok()
            .filter(|a| !matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
            .ok_or_else(|| {
                bad(format!(
                    "{alg} is not an asymmetric JWS algorithm this client signs with"
                ))
            })?;
        let pem = std::fs::read(path).map_err(|e| ClientError::file("--client-key", path, e))?;
        let key = match alg {
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
            _ => EncodingKey::from_rsa_pem(&pem),
        }
        .map_err(|_| bad(format!("not a PEM private key for {alg:?}")))?;
        Ok(Self {
            alg,
            key,
            path: path.to_owned(),
        })
    }

    /// A fresh assertion for `client_id` at the authorization server `issuer`.
    pub fn assertion(&self, client_id: &str, issuer: &str) -> Result<String> {
        let mut jti = [0u8; 16];
        SystemRandom::new()
            .fill(&mut jti)
            .map_err(|_| ClientError::Config("no randomness for a client assertion".to_owned()))?;
        let iat = now();
        let claims = json!({
            "iss": client_id,
            "sub": client_id,
            "aud": issuer,
            "iat": iat,
            "exp": iat + 60,
            "jti": B64.encode(jti),
        });
        jsonwebtoken::encode(&Header::new(self.alg), &claims, &self.key).map_err(|e| {
            ClientError::Config(format!(
                "cannot sign a client assertion with {}: {e}",
                self.path.display()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assertions_carry_the_rfc7523_claims_and_verify() {
        let pair = aws_lc_rs::signature::EcdsaKeyPair::generate(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        )
        .unwrap();
        let der = pair.to_pkcs8v1().unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(der.as_ref())
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        std::fs::write(&path, pem).unwrap();
        let key = ClientKey::from_pem_file(&path, "ES256").unwrap();
        assert!(!format!("{key:?}").contains("PRIVATE"));
        let jwt = key.assertion("client-1", "https://as.example").unwrap();
        let (header, claims) = crate::trace::decode_jwt(&jwt).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(claims["iss"], "client-1");
        assert_eq!(claims["sub"], "client-1");
        assert_eq!(claims["aud"], "https://as.example");
        assert!(claims["exp"].as_u64().unwrap() > claims["iat"].as_u64().unwrap());
        let other = key.assertion("client-1", "https://as.example").unwrap();
        assert_ne!(
            crate::trace::decode_jwt(&other).unwrap().1["jti"],
            claims["jti"]
        );
        assert!(ClientKey::from_pem_file(&path, "HS256").is_err());
        assert!(ClientKey::from_pem_file(&path, "RS256").is_err());
    }
}
