//! A key pair that signs JWTs as a client, an identity provider or a workload platform
//! would, and a JWKS server on 127.0.0.1:0 publishing its public key.

use aws_lc_rs::{rand::SystemRandom, signature};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

pub struct Signer {
    key: EncodingKey,
    pub kid: String,
    /// The public JWK, with `kid`.
    pub jwk: Value,
}

impl Signer {
    /// A fresh P-256 key named `kid`.
    pub fn new(kid: &str) -> Self {
        let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &SystemRandom::new(),
        )
        .unwrap();
        let key = EncodingKey::from_ec_der(pkcs8.as_ref());
        let jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap();
        let mut jwk = serde_json::to_value(jwk).unwrap();
        jwk["kid"] = json!(kid);
        Self {
            key,
            kid: kid.to_owned(),
            jwk,
        }
    }

    /// The public key set.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk] })
    }

    /// Signs `claims` with ES256 under `header` (whose `alg` is what it says, so tests
    /// can lie about it).
    pub fn sign_with(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature =
            jsonwebtoken::crypto::sign(input.as_bytes(), &self.key, Algorithm::ES256).unwrap();
        format!("{input}.{signature}")
    }

    /// Signs `claims` with ES256, this key's `kid` and the given `typ`.
    pub fn sign(&self, typ: Option<&str>, claims: &Value) -> String {
        let mut header = json!({"alg": "ES256", "kid": self.kid});
        if let Some(typ) = typ {
            header["typ"] = json!(typ);
        }
        self.sign_with(&header, claims)
    }
}

/// An unsigned token (`alg: none`) and one "signed" with HMAC under a public value.
pub fn unsigned_and_hmac(claims: &Value) -> [String; 2] {
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let none = format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none"}).to_string())
    );
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "kid": "k1"}).to_string());
    let input = format!("{header}.{payload}");
    let key = EncodingKey::from_secret(b"the public JWK as a shared secret");
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::HS256).unwrap();
    [none, format!("{input}.{signature}")]
}

/// Serves `jwks` at `http://127.0.0.1:<port>/jwks.json`; returns that URL.
pub async fn serve_jwks(jwks: Value) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let jwks = jwks.clone();
            async move { axum::Json(jwks) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A unique `jti`.
pub fn jti() -> String {
    let mut bytes = [0u8; 12];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    URL_SAFE_NO_PAD.encode(bytes)
}
