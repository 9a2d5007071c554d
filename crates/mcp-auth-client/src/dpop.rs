//! DPoP: proof of possession for access tokens (RFC 9449, the MCP profile SEP-1932).
//!
//! When the authorization server advertises `dpop_signing_alg_values_supported` and the
//! MCP server accepts DPoP (or `--dpop always` asks for it), the client holds a key pair per (client, issuer) and
//! sends a proof, a JWT signed with the private key, with every token request and every
//! request to the MCP server:
//!
//! - header: `typ: dpop+jwt`, `alg` (ES256 by default, EdDSA too) and the public `jwk`;
//! - claims: `jti` (unique per proof), `htm` (the method), `htu` (the URL without query
//!   and fragment), `iat`, `ath` (base64url SHA-256 of the access token, on resource
//!   requests) and `nonce` when the server gave one (`DPoP-Nonce`).
//!
//! The authorization server binds the token to the key's RFC 7638 thumbprint
//! (`cnf.jkt`); a stolen token is then useless without the private key.
//!
//! A server that asks for a nonce answers `use_dpop_nonce` (400 at the token endpoint,
//! 401 with `WWW-Authenticate: DPoP error="use_dpop_nonce"` at the resource) with a
//! `DPoP-Nonce` header; the latest nonce of each origin is kept here, and the request is
//! retried once with it.
//!
//! # Security
//! The private key is stored beside the token cache (`dpop-<client+issuer>.json`, the same
//! owner-only, atomically replaced files) and is never printed: this type's `Debug` shows
//! the algorithm and the thumbprint only, and the trace shows each proof's claims, not
//! its signature.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use mcp_auth_proto::metadata::AuthorizationServerMetadata;
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

use crate::cache::{Cache, now};
use crate::error::{ClientError, Result};
use crate::trace::Trace;

const AREA: &str = "dpop";

/// The `DPoP-Nonce` response header (RFC 9449 §8, §9).
pub const NONCE_HEADER: &str = "dpop-nonce";

/// When to use DPoP (`--dpop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DpopPolicy {
    /// When the authorization server advertises `dpop_signing_alg_values_supported` and
    /// the resource accepts DPoP-bound tokens.
    #[default]
    Auto,
    /// Always; an authorization server that does not advertise DPoP is refused.
    Always,
    /// Never: Bearer tokens only.
    Never,
}

/// A proof signing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum DpopAlg {
    /// ECDSA P-256 with SHA-256.
    #[default]
    #[serde(rename = "ES256")]
    Es256,
    /// Ed25519.
    #[serde(rename = "EdDSA")]
    EdDsa,
}

impl DpopAlg {
    /// The JWS `alg` name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            DpopAlg::Es256 => "ES256",
            DpopAlg::EdDsa => "EdDSA",
        }
    }
}

/// The algorithm to use with an authorization server, or `None` for Bearer tokens.
///
/// `preferred` is taken when the server lists it, else the other one this client
/// supports; `Always` with a server that lists neither is an error naming the server.
/// `Auto` binds tokens only when the resource says it accepts them
/// (`resource_offers_dpop`): a DPoP-bound token is useless at a Bearer-only server.
pub fn choose(
    trace: &Trace,
    policy: DpopPolicy,
    preferred: DpopAlg,
    metadata: &AuthorizationServerMetadata,
    resource_offers_dpop: bool,
) -> Result<Option<DpopAlg>> {
    if policy == DpopPolicy::Never {
        return Ok(None);
    }
    let advertised: Vec<&str> = metadata
        .extra
        .get("dpop_signing_alg_values_supported")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let other = match preferred {
        DpopAlg::Es256 => DpopAlg::EdDsa,
        DpopAlg::EdDsa => DpopAlg::Es256,
    };
    let chosen = [preferred, other]
        .into_iter()
        .find(|a| advertised.contains(&a.as_str()));
    match (chosen, policy) {
        (Some(_), DpopPolicy::Auto) if !resource_offers_dpop => {
            trace.step(
                AREA,
                format!(
                    "the authorization server {} supports DPoP, but the MCP server does not say it accepts DPoP-bound tokens (no DPoP challenge, no dpop_signing_alg_values_supported in its metadata): Bearer tokens (--dpop always binds them anyway)",
                    metadata.issuer
                ),
            );
            Ok(None)
        }
        (Some(alg), _) => {
            trace.step(
                AREA,
                format!(
                    "the authorization server {} supports DPoP ({}): tokens will be bound to a key of this client, {}",
                    metadata.issuer,
                    advertised.join(", "),
                    alg.as_str()
                ),
            );
            Ok(Some(alg))
        }
        (None, DpopPolicy::Always) if advertised.is_empty() => Err(ClientError::Dpop(format!(
            "--dpop always, but the authorization server {} does not advertise dpop_signing_alg_values_supported: it cannot issue DPoP-bound tokens",
            metadata.issuer
        ))),
        (None, DpopPolicy::Always) => Err(ClientError::Dpop(format!(
            "--dpop always, but the authorization server {} supports only {} for DPoP proofs, and this client signs with ES256 or EdDSA",
            metadata.issuer,
            advertised.join(", ")
        ))),
        (None, _) if !advertised.is_empty() => {
            trace.step(
                AREA,
                format!(
                    "the authorization server {} supports DPoP only with {}, which this client does not sign with: Bearer tokens",
                    metadata.issuer,
                    advertised.join(", ")
                ),
            );
            Ok(None)
        }
        (None, _) => Ok(None),
    }
}

enum Signer {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

/// A DPoP key pair, and the nonces servers gave for it.
pub struct DpopKey {
    alg: DpopAlg,
    signer: Signer,
    pkcs8: Vec<u8>,
    jwk: Value,
    thumbprint: String,
    nonces: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopKey")
            .field("alg", &self.alg)
            .field("jkt", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

/// The file a key is kept in.
#[derive(Serialize, Deserialize)]
struct StoredKey {
    issuer: String,
    client_id: String,
    alg: DpopAlg,
    /// The PKCS#8 private key, base64url.
    private_key: String,
    created_at: u64,
}

fn key_error(what: &str) -> ClientError {
    ClientError::Dpop(format!("{what} (the DPoP key)"))
}

impl DpopKey {
    /// A new key pair.
    pub fn generate(alg: DpopAlg) -> Result<Self> {
        let pkcs8 = match alg {
            DpopAlg::Es256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .and_then(|k| k.to_pkcs8v1())
                .map_err(|_| key_error("cannot generate a P-256 key pair"))?
                .as_ref()
                .to_vec(),
            DpopAlg::EdDsa => Ed25519KeyPair::generate()
                .and_then(|k| k.to_pkcs8())
                .map_err(|_| key_error("cannot generate an Ed25519 key pair"))?
                .as_ref()
                .to_vec(),
        };
        Self::from_pkcs8(alg, pkcs8)
    }

    /// The key pair of a PKCS#8 document.
    pub fn from_pkcs8(alg: DpopAlg, pkcs8: Vec<u8>) -> Result<Self> {
        let (signer, jwk) = match alg {
            DpopAlg::Es256 => {
                let k = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8)
                    .map_err(|_| key_error("not a P-256 private key"))?;
                let point = k.public_key().as_ref();
                if point.len() != 65 || point[0] != 4 {
                    return Err(key_error("unexpected P-256 public key encoding"));
                }
                let jwk = json!({
                    "crv": "P-256",
                    "kty": "EC",
                    "x": B64.encode(&point[1..33]),
                    "y": B64.encode(&point[33..]),
                });
                (Signer::Es256(k), jwk)
            }
            DpopAlg::EdDsa => {
                let k = Ed25519KeyPair::from_pkcs8(&pkcs8)
                    .map_err(|_| key_error("not an Ed25519 private key"))?;
                let jwk = json!({
                    "crv": "Ed25519",
                    "kty": "OKP",
                    "x": B64.encode(k.public_key().as_ref()),
                });
                (Signer::EdDsa(k), jwk)
            }
        };
        let thumbprint = thumbprint(&jwk);
        Ok(Self {
            alg,
            signer,
            pkcs8,
            jwk,
            thumbprint,
            nonces: Mutex::new(HashMap::new()),
        })
    }

    /// The algorithm.
    #[must_use]
    pub fn alg(&self) -> DpopAlg {
        self.alg
    }

    /// The public key as a JWK (the proof's `jwk` header).
    #[must_use]
    pub fn public_jwk(&self) -> &Value {
        &self.jwk
    }

    /// The RFC 7638 SHA-256 thumbprint of the public key: the `cnf.jkt` a bound token carries.
    #[must_use]
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// A proof for `method` `url`; with `access_token`, bound to it by `ath`. Uses the
    /// latest nonce the URL's origin gave. Returns the proof and its claims (for the trace).
    pub fn proof(
        &self,
        method: &str,
        url: &Url,
        access_token: Option<&str>,
    ) -> Result<(String, Value)> {
        let mut htu = url.clone();
        htu.set_query(None);
        htu.set_fragment(None);
        let mut jti = [0u8; 16];
        SystemRandom::new()
            .fill(&mut jti)
            .map_err(|_| key_error("no randomness for the proof's jti"))?;
        let mut claims = json!({
            "jti": B64.encode(jti),
            "htm": method,
            "htu": htu.as_str(),
            "iat": now(),
        });
        if let Some(t) = access_token {
            claims["ath"] = Value::String(access_token_hash(t));
        }
        if let Some(n) = self.nonce_for(url) {
            claims["nonce"] = Value::String(n);
        }
        let header = json!({"typ": "dpop+jwt", "alg": self.alg.as_str(), "jwk": self.jwk});
        let signing_input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let signature = match &self.signer {
            Signer::Es256(k) => k
                .sign(&SystemRandom::new(), signing_input.as_bytes())
                .map_err(|_| key_error("cannot sign the proof"))?
                .as_ref()
                .to_vec(),
            Signer::EdDsa(k) => k.sign(signing_input.as_bytes()).as_ref().to_vec(),
        };
        Ok((format!("{signing_input}.{}", B64.encode(signature)), claims))
    }

    /// Keeps the `DPoP-Nonce` of a response from `url`'s origin, if it has one; true if it
    /// is new.
    pub fn note_nonce(&self, url: &Url, headers: &HeaderMap) -> bool {
        let Some(nonce) = headers
            .get(NONCE_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|n| !n.is_empty() && n.len() <= 512)
        else {
            return false;
        };
        let mut nonces = self.nonces.lock().unwrap_or_else(|e| e.into_inner());
        let origin = url.origin().ascii_serialization();
        if nonces.get(&origin).map(String::as_str) == Some(nonce) {
            return false;
        }
        nonces.insert(origin, nonce.to_owned());
        true
    }

    fn nonce_for(&self, url: &Url) -> Option<String> {
        self.nonces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&url.origin().ascii_serialization())
            .cloned()
    }

    /// The key of (`client_id`, `issuer`) from the cache, or a new one (saved there).
    pub fn for_client(
        trace: &Trace,
        cache: &Cache,
        issuer: &str,
        client_id: &str,
        alg: DpopAlg,
    ) -> Result<Arc<Self>> {
        if let Some(key) = Self::load(cache, issuer, client_id)?
            && key.alg == alg
        {
            trace.step(
                AREA,
                format!(
                    "using this client's DPoP key for {issuer} ({}, jkt {})",
                    alg.as_str(),
                    key.thumbprint
                ),
            );
            return Ok(Arc::new(key));
        }
        let key = Self::generate(alg)?;
        let stored = StoredKey {
            issuer: issuer.to_owned(),
            client_id: client_id.to_owned(),
            alg,
            private_key: B64.encode(&key.pkcs8),
            created_at: now(),
        };
        let saved = cache.write_private_json(&key_file(issuer, client_id), &stored)?;
        trace.step(
            AREA,
            format!(
                "new DPoP key pair for {issuer} ({}, jkt {}), {}",
                alg.as_str(),
                key.thumbprint,
                match saved {
                    Some(p) => format!("private key saved to {} (owner-only)", p.display()),
                    None => "kept in memory only (cache disabled)".to_owned(),
                }
            ),
        );
        Ok(Arc::new(key))
    }

    /// The key of (`client_id`, `issuer`) kept in the cache, if any.
    pub fn load(cache: &Cache, issuer: &str, client_id: &str) -> Result<Option<Self>> {
        let Some(stored) = cache.read_private_json::<StoredKey>(&key_file(issuer, client_id))?
        else {
            return Ok(None);
        };
        if stored.issuer != issuer || stored.client_id != client_id {
            return Ok(None);
        }
        let Ok(pkcs8) = B64.decode(stored.private_key.as_bytes()) else {
            return Ok(None);
        };
        Ok(Self::from_pkcs8(stored.alg, pkcs8).ok())
    }
}

fn key_file(issuer: &str, client_id: &str) -> String {
    format!(
        "dpop-{:016x}.json",
        crate::cache::fnv1a(&format!("{issuer}\n{client_id}"))
    )
}

/// The RFC 7638 thumbprint of a public EC or OKP JWK: SHA-256 over its required members
/// in lexicographic order, without whitespace, base64url.
#[must_use]
pub fn thumbprint(jwk: &Value) -> String {
    let s = |k: &str| jwk.get(k).and_then(Value::as_str).unwrap_or("");
    let canonical = match s("kty") {
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            s("crv"),
            s("x"),
            s("y")
        ),
        _ => format!(
            r#"{{"crv":"{}","kty":"{}","x":"{}"}}"#,
            s("crv"),
            s("kty"),
            s("x")
        ),
    };
    B64.encode(digest(&SHA256, canonical.as_bytes()))
}

/// The `ath` of an access token: base64url SHA-256 of its ASCII value (RFC 9449 §4.2).
#[must_use]
pub fn access_token_hash(token: &str) -> String {
    B64.encode(digest(&SHA256, token.as_bytes()))
}

/// Whether an OAuth error body is `use_dpop_nonce`.
#[must_use]
pub fn is_use_nonce(error: &str) -> bool {
    error == "use_dpop_nonce"
}

/// A proof's claims as one trace line: `htm htu, iat, jti, ath, nonce`.
#[must_use]
pub fn describe_proof(claims: &Value) -> String {
    let g = |k: &str| {
        claims
            .get(k)
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
    };
    let mut parts = vec![format!(
        "htm={} htu={} iat={} jti={}",
        g("htm").unwrap_or_default(),
        g("htu").unwrap_or_default(),
        g("iat").unwrap_or_default(),
        g("jti").unwrap_or_default()
    )];
    if let Some(a) = g("ath") {
        parts.push(format!("ath={a}"));
    }
    if let Some(n) = g("nonce") {
        parts.push(format!("nonce={n}"));
    }
    format!("DPoP proof {}", parts.join(" "))
}

/// Adds a proof for `method` `url` to `req` (traced with its claims).
pub(crate) fn with_proof(
    trace: &Trace,
    key: &DpopKey,
    req: reqwest::RequestBuilder,
    method: &str,
    url: &Url,
    access_token: Option<&str>,
) -> Result<reqwest::RequestBuilder> {
    let (proof, claims) = key.proof(method, url, access_token)?;
    trace.step(AREA, describe_proof(&claims));
    Ok(req.header("DPoP", proof))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(part: &str) -> Value {
        serde_json::from_slice(&B64.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn rfc7638_thumbprint_of_the_rfc_example_key() {
        // RFC 7638 §3.1 uses an RSA key; RFC 9449 §6.1's example key is this P-256 JWK
        // with thumbprint 0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I.
        let jwk = json!({
            "kty": "EC", "crv": "P-256",
            "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
            "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"
        });
        assert_eq!(
            thumbprint(&jwk),
            "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
        );
    }

    #[test]
    fn proofs_verify_and_carry_the_claims() {
        for alg in [DpopAlg::Es256, DpopAlg::EdDsa] {
            let key = DpopKey::generate(alg).unwrap();
            let url = Url::parse("https://mcp.example/mcp?x=1#frag").unwrap();
            let (proof, claims) = key.proof("POST", &url, Some("tok")).unwrap();
            let parts: Vec<&str> = proof.split('.').collect();
            assert_eq!(parts.len(), 3);
            let header = decode(parts[0]);
            assert_eq!(header["typ"], "dpop+jwt");
            assert_eq!(header["alg"], alg.as_str());
            assert!(
                header["jwk"].get("d").is_none(),
                "no private part in the jwk"
            );
            assert_eq!(decode(parts[1]), claims);
            assert_eq!(claims["htu"], "https://mcp.example/mcp");
            assert_eq!(claims["htm"], "POST");
            assert_eq!(claims["ath"], access_token_hash("tok"));
            let sig = B64.decode(parts[2]).unwrap();
            let input = format!("{}.{}", parts[0], parts[1]);
            let public = match alg {
                DpopAlg::Es256 => {
                    let mut p = vec![4u8];
                    p.extend(B64.decode(header["jwk"]["x"].as_str().unwrap()).unwrap());
                    p.extend(B64.decode(header["jwk"]["y"].as_str().unwrap()).unwrap());
                    aws_lc_rs::signature::UnparsedPublicKey::new(
                        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
                        p,
                    )
                    .verify(input.as_bytes(), &sig)
                }
                DpopAlg::EdDsa => aws_lc_rs::signature::UnparsedPublicKey::new(
                    &aws_lc_rs::signature::ED25519,
                    B64.decode(header["jwk"]["x"].as_str().unwrap()).unwrap(),
                )
                .verify(input.as_bytes(), &sig),
            };
            assert!(public.is_ok(), "{alg:?} proof signature verifies");
            let (again, _) = key.proof("POST", &url, Some("tok")).unwrap();
            assert_ne!(
                decode(again.split('.').nth(1).unwrap())["jti"],
                claims["jti"]
            );
        }
    }

    #[test]
    fn nonces_are_kept_per_origin() {
        let key = DpopKey::generate(DpopAlg::Es256).unwrap();
        let a = Url::parse("http://127.0.0.1:1/token").unwrap();
        let b = Url::parse("http://127.0.0.1:2/mcp").unwrap();
        let mut h = HeaderMap::new();
        h.insert(NONCE_HEADER, "n-1".parse().unwrap());
        assert!(key.note_nonce(&a, &h));
        assert!(!key.note_nonce(&a, &h), "the same nonce is not new");
        assert_eq!(key.proof("POST", &a, None).unwrap().1["nonce"], "n-1");
        assert!(
            key.proof("POST", &b, None)
                .unwrap()
                .1
                .get("nonce")
                .is_none()
        );
    }

    #[test]
    fn stored_keys_come_back_and_debug_hides_them() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let trace = Trace::silent();
        let k1 = DpopKey::for_client(&trace, &cache, "https://as", "c", DpopAlg::Es256).unwrap();
        let k2 = DpopKey::for_client(&trace, &cache, "https://as", "c", DpopAlg::Es256).unwrap();
        assert_eq!(k1.thumbprint(), k2.thumbprint());
        let k3 = DpopKey::for_client(&trace, &cache, "https://other", "c", DpopAlg::Es256).unwrap();
        assert_ne!(k1.thumbprint(), k3.thumbprint());
        let dbg = format!("{k1:?}");
        assert!(!dbg.contains(&B64.encode(&k1.pkcs8)));
        #[cfg(unix)]
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            use std::os::unix::fs::PermissionsExt;
            let mode = entry.unwrap().metadata().unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "owner-only key files");
        }
    }

    #[test]
    fn choice_follows_the_metadata_and_the_policy() {
        let trace = Trace::silent();
        let mut md = AuthorizationServerMetadata::new("https://as");
        let choose = |p, a, md: &AuthorizationServerMetadata| choose(&trace, p, a, md, true);
        assert_eq!(choose(DpopPolicy::Auto, DpopAlg::Es256, &md).unwrap(), None);
        assert!(choose(DpopPolicy::Always, DpopAlg::Es256, &md).is_err());
        md.extra
            .insert("dpop_signing_alg_values_supported".into(), json!(["EdDSA"]));
        assert_eq!(
            choose(DpopPolicy::Auto, DpopAlg::Es256, &md).unwrap(),
            Some(DpopAlg::EdDsa)
        );
        // A resource that does not say it accepts DPoP gets Bearer tokens, unless forced.
        assert_eq!(
            super::choose(&trace, DpopPolicy::Auto, DpopAlg::Es256, &md, false).unwrap(),
            None
        );
        assert_eq!(
            super::choose(&trace, DpopPolicy::Always, DpopAlg::Es256, &md, false).unwrap(),
            Some(DpopAlg::EdDsa)
        );
        assert_eq!(
            choose(DpopPolicy::Never, DpopAlg::Es256, &md).unwrap(),
            None
        );
        md.extra
            .insert("dpop_signing_alg_values_supported".into(), json!(["PS256"]));
        assert_eq!(choose(DpopPolicy::Auto, DpopAlg::Es256, &md).unwrap(), None);
        let err = choose(DpopPolicy::Always, DpopAlg::Es256, &md).unwrap_err();
        assert!(err.to_string().contains("PS256"));
    }
}
