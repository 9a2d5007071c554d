//! Signing keys for tests: five fixed keys read from `keys/` (the same key material on
//! every run) and keys generated at start with aws-lc-rs (RSA 2048, P-256, Ed25519),
//! each with its `kid`, algorithm and public JWK (RFC 7517).

use aws_lc_rs::{
    encoding::AsDer,
    rsa::{KeyPair as RsaKeyPair, KeySize},
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair},
};
use base64::{
    Engine as _,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use jsonwebtoken::{
    Algorithm, EncodingKey, Header,
    jwk::{Jwk, ThumbprintHash},
};
use serde::Serialize;
use serde_json::{Value, json};

/// The private half of [`TestKey::rsa1`].
pub const RSA1_PEM: &[u8] = include_bytes!("../keys/rsa1.pem");
/// The public half of [`TestKey::rsa1`] (what an HS256 key-confusion attack uses as secret).
pub const RSA1_PUB_PEM: &[u8] = include_bytes!("../keys/rsa1.pub.pem");
/// The private half of [`TestKey::rsa2`].
pub const RSA2_PEM: &[u8] = include_bytes!("../keys/rsa2.pem");
/// The private half of [`TestKey::attacker`].
pub const ATTACKER_PEM: &[u8] = include_bytes!("../keys/attacker.pem");
/// The private half of [`TestKey::ec`].
pub const EC_PEM: &[u8] = include_bytes!("../keys/ec256.pem");
/// The private half of [`TestKey::ed`].
pub const ED_PEM: &[u8] = include_bytes!("../keys/ed25519.pem");

/// The JOSE name of `alg`.
pub fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::EdDSA => "EdDSA",
        _ => "unknown",
    }
}

/// Unpadded base64url, as JOSE encodes every part.
pub fn b64(value: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(value)
}

/// `b64(header).b64(claims).sign(input)`: a JWS with any header at all.
pub fn raw_jws(header: &Value, claims: &Value, sign: impl FnOnce(&[u8]) -> String) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = sign(input.as_bytes());
    format!("{input}.{signature}")
}

/// A private signing key with its `kid`, algorithm and public JWK.
#[derive(Clone)]
pub struct TestKey {
    kid: String,
    alg: Algorithm,
    key: EncodingKey,
    jwk: Jwk,
}

impl std::fmt::Debug for TestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl TestKey {
    /// A key from its private PEM (PKCS#8, or PKCS#1 for RSA), published under `kid`.
    ///
    /// # Panics
    /// When the PEM does not hold a key for `alg`.
    pub fn from_pem(alg: Algorithm, pem: &[u8], kid: &str) -> Self {
        let key = match alg {
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
            _ => EncodingKey::from_rsa_pem(pem),
        }
        .expect("a test key PEM");
        Self::from_encoding_key(alg, key, kid)
    }

    fn from_encoding_key(alg: Algorithm, key: EncodingKey, kid: &str) -> Self {
        let mut jwk = Jwk::from_encoding_key(&key, alg).expect("a public JWK for the key");
        jwk.common.key_id = Some(kid.to_string());
        Self {
            kid: kid.to_string(),
            alg,
            key,
            jwk,
        }
    }

    /// The fixed RS256 key `rsa-1`.
    pub fn rsa1() -> Self {
        Self::from_pem(Algorithm::RS256, RSA1_PEM, "rsa-1")
    }

    /// The fixed RS256 key `rsa-2`.
    pub fn rsa2() -> Self {
        Self::from_pem(Algorithm::RS256, RSA2_PEM, "rsa-2")
    }

    /// A fixed RS256 key that no test authorization server publishes (`kid` `attacker`).
    pub fn attacker() -> Self {
        Self::from_pem(Algorithm::RS256, ATTACKER_PEM, "attacker")
    }

    /// The fixed ES256 key `ec-1`.
    pub fn ec() -> Self {
        Self::from_pem(Algorithm::ES256, EC_PEM, "ec-1")
    }

    /// The fixed EdDSA (Ed25519) key `ed-1`.
    pub fn ed() -> Self {
        Self::from_pem(Algorithm::EdDSA, ED_PEM, "ed-1")
    }

    /// A fresh key for `alg` (RS256, ES256 or EdDSA), published under `kid`.
    ///
    /// # Errors
    /// When `alg` is another algorithm, or key generation or encoding fails.
    pub fn generate(alg: Algorithm, kid: impl Into<String>) -> anyhow::Result<Self> {
        let key = match alg {
            Algorithm::RS256 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048)
                    .map_err(|_| anyhow::anyhow!("RSA key generation failed"))?;
                let der = pair
                    .as_der()
                    .map_err(|_| anyhow::anyhow!("RSA key encoding failed"))?;
                EncodingKey::from_rsa_pem(pem("PRIVATE KEY", der.as_ref()).as_bytes())?
            }
            Algorithm::ES256 => {
                let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| anyhow::anyhow!("P-256 key generation failed"))?;
                let der = pair
                    .to_pkcs8v1()
                    .map_err(|_| anyhow::anyhow!("P-256 key encoding failed"))?;
                EncodingKey::from_ec_der(der.as_ref())
            }
            Algorithm::EdDSA => {
                let pair = Ed25519KeyPair::generate()
                    .map_err(|_| anyhow::anyhow!("Ed25519 key generation failed"))?;
                let der = pair
                    .to_pkcs8v1()
                    .map_err(|_| anyhow::anyhow!("Ed25519 key encoding failed"))?;
                EncodingKey::from_ed_der(der.as_ref())
            }
            other => anyhow::bail!("no key generation for {}", alg_name(other)),
        };
        let kid = kid.into();
        let mut key = Self::from_encoding_key(alg, key, &kid);
        key.jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
        Ok(key)
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The private key, for signing outside these helpers.
    pub fn encoding_key(&self) -> &EncodingKey {
        &self.key
    }

    /// The public JWK, with `kid`.
    pub fn jwk(&self) -> Jwk {
        self.jwk.clone()
    }

    /// Signs `claims` as an RFC 9068 access token: `alg`, `kid` and `typ: at+jwt`.
    ///
    /// # Panics
    /// When the claims do not serialize.
    pub fn sign(&self, claims: &impl Serialize) -> String {
        self.sign_with_typ(claims, Some("at+jwt"))
    }

    /// Signs `claims` with `alg` and `kid` in the header, and `typ` when given.
    ///
    /// # Panics
    /// When the claims do not serialize.
    pub fn sign_with_typ(&self, claims: &impl Serialize, typ: Option<&str>) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        header.typ = typ.map(str::to_string);
        jsonwebtoken::encode(&header, claims, &self.key).expect("claims that serialize")
    }

    /// A JWS with an arbitrary `header` (forged `alg`, `kid`, `jku`, ...), signed with
    /// this key's own algorithm.
    pub fn sign_with_header(&self, header: Value, claims: &Value) -> String {
        raw_jws(&header, claims, |input| {
            jsonwebtoken::crypto::sign(input, &self.key, self.alg).expect("a signature")
        })
    }

    /// Signs `claims` as a DPoP proof (RFC 9449 §4.2): `typ: dpop+jwt` and the public key
    /// (without `kid`, `use` and `alg`) in `jwk`.
    ///
    /// # Panics
    /// When the claims do not serialize.
    pub fn sign_dpop_proof(&self, claims: &impl Serialize) -> String {
        let mut jwk = self.jwk.clone();
        jwk.common.key_id = None;
        jwk.common.public_key_use = None;
        jwk.common.key_algorithm = None;
        let mut header = Header::new(self.alg);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(jwk);
        jsonwebtoken::encode(&header, claims, &self.key).expect("claims that serialize")
    }

    /// The RFC 7638 thumbprint (SHA-256) of the public key: a bound token's `cnf.jkt`.
    pub fn thumbprint(&self) -> String {
        self.jwk
            .thumbprint(ThumbprintHash::SHA256)
            .expect("a thumbprint of a public JWK")
    }

    /// The public JWK as JSON.
    pub fn jwk_json(&self) -> Value {
        json!(self.jwk)
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

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    fn verifies(token: &str, key: &TestKey) -> bool {
        let decoding = DecodingKey::from_jwk(&key.jwk()).unwrap();
        let mut validation = Validation::new(key.alg());
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<Value>(token, &decoding, &validation).is_ok()
    }

    #[test]
    fn every_key_signs_what_its_jwk_verifies_and_no_other_does() {
        let claims = json!({"sub": "s", "exp": 4_000_000_000u64});
        let fixed = [TestKey::rsa1(), TestKey::ec(), TestKey::ed()];
        for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
            let key = TestKey::generate(alg, "k").unwrap();
            let token = key.sign(&claims);
            assert!(verifies(&token, &key), "{alg:?}");
            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(header.kid.as_deref(), Some("k"));
            assert_eq!(header.typ.as_deref(), Some("at+jwt"));
            let other = TestKey::generate(alg, "k").unwrap();
            assert!(
                !verifies(&token, &other),
                "{alg:?}: another key verified it"
            );
            let same_kind = fixed.iter().find(|k| k.alg() == alg).unwrap();
            assert!(verifies(&same_kind.sign(&claims), same_kind));
            assert!(!verifies(&same_kind.sign(&claims), &key));
        }
        assert!(!verifies(&TestKey::rsa1().sign(&claims), &TestKey::rsa2()));
        assert!(TestKey::generate(Algorithm::HS256, "k").is_err());
    }

    #[test]
    fn forged_headers_are_kept_as_given() {
        let key = TestKey::rsa1();
        let token = key.sign_with_header(json!({"alg": "none", "kid": "x"}), &json!({}));
        let header = token.split('.').next().unwrap();
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        assert_eq!(header, json!({"alg": "none", "kid": "x"}));
    }

    #[test]
    fn a_dpop_proof_carries_the_public_key_without_kid() {
        let key = TestKey::ec();
        let proof = key.sign_dpop_proof(&json!({"htm": "POST"}));
        let header = jsonwebtoken::decode_header(&proof).unwrap();
        assert_eq!(header.typ.as_deref(), Some("dpop+jwt"));
        let jwk = header.jwk.unwrap();
        assert_eq!(jwk.common.key_id, None);
        assert_eq!(
            jwk.thumbprint(ThumbprintHash::SHA256).unwrap(),
            key.thumbprint()
        );
    }

    #[test]
    fn debug_shows_no_key_material() {
        let shown = format!("{:?}", TestKey::rsa1());
        assert!(
            shown.contains("rsa-1") && !shown.contains("key:"),
            "{shown}"
        );
    }
}
