//! Signing keys for the harness's own authorization server and for the JWT
//! microbenchmarks: RSA 2048 (RS256), P-256 (ES256) and Ed25519 (EdDSA), generated at
//! start with aws-lc-rs, each with its public JWK (RFC 7517) and a `kid`.

use aws_lc_rs::{
    encoding::AsDer,
    rsa::{KeyPair as RsaKeyPair, KeySize},
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _},
};
use base64::{
    Engine as _,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use serde_json::{Value, json};

/// The signature algorithms the harness signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 over a 2048-bit key.
    Rs256,
    /// ECDSA over P-256 with SHA-256.
    Es256,
    /// Ed25519.
    EdDsa,
}

impl KeyAlg {
    /// Every algorithm, in the order reports list them.
    pub const ALL: [Self; 3] = [Self::Rs256, Self::Es256, Self::EdDsa];

    /// The JOSE name (`alg`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }

    fn algorithm(self) -> Algorithm {
        match self {
            Self::Rs256 => Algorithm::RS256,
            Self::Es256 => Algorithm::ES256,
            Self::EdDsa => Algorithm::EdDSA,
        }
    }
}

/// A private signing key with its public JWK.
pub struct SigningKey {
    kid: String,
    alg: KeyAlg,
    encoding: EncodingKey,
    jwk: Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

impl SigningKey {
    /// A fresh key for `alg`, published under `kid`.
    ///
    /// # Errors
    /// When key generation or encoding fails.
    pub fn generate(alg: KeyAlg, kid: impl Into<String>) -> anyhow::Result<Self> {
        let kid = kid.into();
        let (encoding, jwk) = match alg {
            KeyAlg::Rs256 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048)
                    .map_err(|_| anyhow::anyhow!("RSA key generation failed"))?;
                let der = pair
                    .as_der()
                    .map_err(|_| anyhow::anyhow!("RSA key encoding failed"))?;
                let encoding =
                    EncodingKey::from_rsa_pem(pem("PRIVATE KEY", der.as_ref()).as_bytes())?;
                let public = pair.public_key();
                let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
                let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
                (encoding, json!({"kty": "RSA", "n": n, "e": e}))
            }
            KeyAlg::Es256 => {
                let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| anyhow::anyhow!("P-256 key generation failed"))?;
                let der = pair
                    .to_pkcs8v1()
                    .map_err(|_| anyhow::anyhow!("P-256 key encoding failed"))?;
                let point = pair.public_key().as_ref();
                anyhow::ensure!(
                    point.len() == 65 && point[0] == 4,
                    "unexpected P-256 point encoding"
                );
                let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
                let y = URL_SAFE_NO_PAD.encode(&point[33..65]);
                (
                    EncodingKey::from_ec_der(der.as_ref()),
                    json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}),
                )
            }
            KeyAlg::EdDsa => {
                let pair = Ed25519KeyPair::generate()
                    .map_err(|_| anyhow::anyhow!("Ed25519 key generation failed"))?;
                let der = pair
                    .to_pkcs8()
                    .map_err(|_| anyhow::anyhow!("Ed25519 key encoding failed"))?;
                let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
                (
                    EncodingKey::from_ed_der(der.as_ref()),
                    json!({"kty": "OKP", "crv": "Ed25519", "x": x}),
                )
            }
        };
        let mut jwk = jwk;
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        jwk["alg"] = json!(alg.name());
        Ok(Self {
            kid,
            alg,
            encoding,
            jwk,
        })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm.
    pub fn alg(&self) -> KeyAlg {
        self.alg
    }

    /// The public JWK.
    pub fn jwk(&self) -> &Value {
        &self.jwk
    }

    /// Signs `claims` as a JWT access token (`typ: at+jwt`, RFC 9068) with this key.
    ///
    /// # Errors
    /// When the JWT library refuses the claims.
    pub fn sign(&self, claims: &impl Serialize) -> anyhow::Result<String> {
        let mut header = Header::new(self.alg.algorithm());
        header.typ = Some("at+jwt".into());
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
    }

    /// Signs `claims` as a DPoP proof (RFC 9449 §4.2): `typ: dpop+jwt` and the public
    /// key in `jwk`.
    ///
    /// # Errors
    /// When the JWT library refuses the claims.
    pub fn sign_dpop_proof(&self, claims: &impl Serialize) -> anyhow::Result<String> {
        let mut jwk = self.jwk.clone();
        if let Some(object) = jwk.as_object_mut() {
            object.remove("kid");
            object.remove("use");
        }
        let mut header = Header::new(self.alg.algorithm());
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(serde_json::from_value(jwk)?);
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
    }

    /// The RFC 7638 thumbprint (SHA-256) of the public key: a bound token's `cnf.jkt`.
    ///
    /// # Errors
    /// When the JWK cannot be read back.
    pub fn thumbprint(&self) -> anyhow::Result<String> {
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(self.jwk.clone())?;
        Ok(jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation, jwk::Jwk};

    #[test]
    fn every_key_signs_what_its_jwk_verifies() {
        for alg in KeyAlg::ALL {
            let key = SigningKey::generate(alg, "k").unwrap();
            let token = key
                .sign(&json!({"sub": "s", "exp": 4_000_000_000u64}))
                .unwrap();
            let jwk: Jwk = serde_json::from_value(key.jwk().clone()).unwrap();
            let decoding = DecodingKey::from_jwk(&jwk).unwrap();
            let mut validation = Validation::new(alg.algorithm());
            validation.required_spec_claims.clear();
            let data = jsonwebtoken::decode::<Value>(&token, &decoding, &validation).unwrap();
            assert_eq!(data.claims["sub"], "s");
            assert_eq!(data.header.kid.as_deref(), Some("k"));
            // A different key of the same kind must not verify it.
            let other = SigningKey::generate(alg, "k").unwrap();
            let jwk: Jwk = serde_json::from_value(other.jwk().clone()).unwrap();
            let decoding = DecodingKey::from_jwk(&jwk).unwrap();
            assert!(jsonwebtoken::decode::<Value>(&token, &decoding, &validation).is_err());
        }
    }
}
