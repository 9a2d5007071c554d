//! Validation of JWT access tokens (RFC 7519, RFC 9068, RFC 8725).
//!
//! Before any cryptography the token is checked cheaply: size cap, three non-empty
//! base64url parts (five parts, a JWE, is refused), a JSON header whose `alg` is in the
//! asymmetric allow-list (`none` and HMAC never are), no `crit`, and a `typ` that is
//! absent, `JWT` or `at+jwt`. `jku`, `x5u` and `jwk` header parameters are ignored:
//! keys come only from the configured JWKS. The algorithm must also be one the selected
//! key allows (see [`super::jwks::allowed_algorithms`]). Then the signature, exact
//! `iss`, `aud` within the accepted audiences, `exp` (required) and `nbf` are checked
//! with a small leeway.
//!
//! Both Dex-shaped tokens (`aud` = a client id, no `scope`) and RFC 9068 tokens
//! (`typ: at+jwt`, `scope`, `client_id`) are accepted.
//!
//! # Security
//! The token never appears in errors or logs; [`VerifiedClaims::token_fingerprint`]
//! is a non-reversible tag that may be logged instead.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, Validation, errors::ErrorKind};
use mcp_auth_proto::{scope::Scopes, secret};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{
    claims::{TokenKind, VerifiedClaims},
    jwks::JwksCache,
};
pub use crate::error::token::ValidationError;

/// Settings of a [`Validator`].
#[derive(Debug, Clone)]
pub struct ValidatorConfig {
    /// Exact expected `iss`.
    pub issuer: String,
    /// Accepted `aud` values (one match suffices).
    pub audiences: Vec<String>,
    /// Clock leeway for `exp` and `nbf`.
    pub leeway: Duration,
    /// Largest accepted token, in bytes.
    pub max_token_bytes: usize,
    /// Capacity of the cache of verified tokens (0 turns it off).
    pub cache_capacity: usize,
}

/// Validates bearer tokens against a JWKS.
pub struct Validator {
    config: ValidatorConfig,
    jwks: Arc<JwksCache>,
    cache: Option<TokenCache>,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validator")
            .field("config", &self.config)
            .field("jwks", &self.jwks)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<Value>,
    typ: Option<Value>,
    kid: Option<Value>,
    crit: Option<Value>,
}

#[derive(Deserialize)]
struct RawClaims {
    iss: Option<Value>,
    sub: Option<Value>,
    aud: Option<Value>,
    exp: Option<Value>,
    iat: Option<Value>,
    scope: Option<Value>,
    scp: Option<Value>,
    client_id: Option<Value>,
    azp: Option<Value>,
    cnf: Option<Value>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

const PROFILE_CLAIMS: &[&str] = &[
    "email",
    "email_verified",
    "name",
    "preferred_username",
    "groups",
];

/// Maps an `alg` header value to an allowed algorithm: asymmetric signatures only.
pub fn allowed_algorithm(alg: &str) -> Option<Algorithm> {
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

/// Parsed header after the pre-checks.
#[derive(Debug)]
struct Prechecked {
    alg: Algorithm,
    kid: Option<String>,
    kind: TokenKind,
}

fn precheck(token: &str, max_bytes: usize) -> Result<Prechecked, ValidationError> {
    if token.len() > max_bytes {
        return Err(ValidationError::TooLarge);
    }
    if !token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(ValidationError::Malformed("not base64url"));
    }
    let parts: Vec<&str> = token.split('.').collect();
    match parts.len() {
        3 => {}
        5 => return Err(ValidationError::Encrypted),
        _ => return Err(ValidationError::Malformed("expected three parts")),
    }
    if parts.iter().any(|p| p.is_empty()) {
        return Err(ValidationError::Malformed("empty part"));
    }
    let header_bytes = URL_SAFE_NO_PAD
        .decode(parts[0])
        .map_err(|_| ValidationError::Malformed("header is not base64url"))?;
    let header: RawHeader = serde_json::from_slice(&header_bytes)
        .map_err(|_| ValidationError::Malformed("header is not a JSON object"))?;
    let alg = match header.alg {
        Some(Value::String(alg)) => alg,
        _ => return Err(ValidationError::Malformed("header has no alg")),
    };
    let alg = allowed_algorithm(&alg)
        .ok_or_else(|| ValidationError::AlgorithmNotAllowed(truncate(&alg)))?;
    if header.crit.is_some() {
        return Err(ValidationError::CriticalHeader);
    }
    let kind = match header.typ {
        None => TokenKind::Jwt,
        Some(Value::String(typ)) => {
            let lower = typ.to_ascii_lowercase();
            match lower.strip_prefix("application/").unwrap_or(&lower) {
                "jwt" => TokenKind::Jwt,
                "at+jwt" => TokenKind::Rfc9068,
                _ => return Err(ValidationError::WrongType(truncate(&typ))),
            }
        }
        Some(_) => return Err(ValidationError::Malformed("typ is not a string")),
    };
    let kid = match header.kid {
        None => None,
        Some(Value::String(kid)) => Some(kid),
        Some(_) => return Err(ValidationError::Malformed("kid is not a string")),
    };
    Ok(Prechecked { alg, kid, kind })
}

fn truncate(value: &str) -> String {
    value.chars().take(32).filter(|c| !c.is_control()).collect()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The first instant at which a token whose `exp` is `expires_at` is refused.
///
/// Both the JWT check and the cache compare the current time in whole seconds:
/// `floor(now) <= exp + leeway` passes. A token is therefore accepted up to, but not
/// including, the start of the second after `exp + leeway`.
pub fn accepted_until(expires_at: u64, leeway: Duration) -> SystemTime {
    let seconds = expires_at
        .saturating_add(leeway.as_secs())
        .saturating_add(1);
    UNIX_EPOCH
        .checked_add(Duration::from_secs(seconds))
        .unwrap_or_else(|| UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX)))
}

impl Validator {
    /// A validator using `jwks` for keys.
    pub fn new(config: ValidatorConfig, jwks: Arc<JwksCache>) -> Self {
        let cache = (config.cache_capacity > 0).then(|| TokenCache::new(config.cache_capacity));
        Self {
            config,
            jwks,
            cache,
        }
    }

    /// The key cache in use.
    pub fn jwks(&self) -> &Arc<JwksCache> {
        &self.jwks
    }

    /// The settings in use.
    pub fn config(&self) -> &ValidatorConfig {
        &self.config
    }

    /// The first instant at which this validator refuses the token behind `claims`
    /// (its `exp` plus the leeway; see [`accepted_until`]).
    pub fn accepted_until(&self, claims: &VerifiedClaims) -> SystemTime {
        accepted_until(claims.expires_at, self.config.leeway)
    }

    /// The claims of `token` if it was verified before and is still accepted (a hit in
    /// the cache of verified tokens: same whole token, `exp` still enforced). `None`
    /// says nothing about the token: [`Validator::validate`] decides.
    pub fn cached(&self, token: &str) -> Option<Arc<VerifiedClaims>> {
        self.cache
            .as_ref()?
            .get(token, now(), self.config.leeway.as_secs())
    }

    /// Validates `token` and returns its claims.
    ///
    /// # Errors
    /// [`ValidationError`] naming the failed check.
    pub async fn validate(&self, token: &str) -> Result<Arc<VerifiedClaims>, ValidationError> {
        if let Some(claims) = self.cached(token) {
            return Ok(claims);
        }
        let leeway = self.config.leeway.as_secs();
        let header = precheck(token, self.config.max_token_bytes)?;
        let key = self.jwks.key(header.kid.as_deref()).await?;
        if !key.algorithms.contains(&header.alg) {
            return Err(ValidationError::AlgorithmKeyMismatch);
        }
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.leeway = leeway;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[self.config.issuer.as_str()]);
        validation.set_audience(&self.config.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data =
            jsonwebtoken::decode::<RawClaims>(token, &key.key, &validation).map_err(|e| match e
                .kind()
            {
                ErrorKind::InvalidSignature => ValidationError::InvalidSignature,
                ErrorKind::ExpiredSignature => ValidationError::Expired,
                ErrorKind::ImmatureSignature => ValidationError::NotYetValid,
                ErrorKind::InvalidIssuer => ValidationError::WrongIssuer,
                ErrorKind::InvalidAudience => ValidationError::WrongAudience,
                ErrorKind::MissingRequiredClaim(claim) => {
                    ValidationError::MissingClaim(match claim.as_str() {
                        "exp" => "exp",
                        "iss" => "iss",
                        "aud" => "aud",
                        _ => "sub",
                    })
                }
                ErrorKind::InvalidAlgorithm => ValidationError::AlgorithmKeyMismatch,
                ErrorKind::Json(_) => ValidationError::Malformed("claims are not a JSON object"),
                _ => ValidationError::Malformed("undecodable token"),
            })?;
        let claims = build_claims(data.claims, header.kind, token)?;
        let claims = Arc::new(claims);
        if let Some(cache) = &self.cache {
            cache.insert(token, claims.clone(), now());
        }
        Ok(claims)
    }
}

fn string_claim(
    value: Option<Value>,
    name: &'static str,
) -> Result<Option<String>, ValidationError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ValidationError::InvalidClaim(name)),
    }
}

fn number_claim(value: Option<Value>, name: &'static str) -> Result<Option<u64>, ValidationError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .map(Some)
            .ok_or(ValidationError::InvalidClaim(name)),
        Some(_) => Err(ValidationError::InvalidClaim(name)),
    }
}

fn build_claims(
    raw: RawClaims,
    kind: TokenKind,
    token: &str,
) -> Result<VerifiedClaims, ValidationError> {
    let issuer = string_claim(raw.iss, "iss")?.ok_or(ValidationError::MissingClaim("iss"))?;
    let subject = string_claim(raw.sub, "sub")?.ok_or(ValidationError::MissingClaim("sub"))?;
    if subject.is_empty() {
        return Err(ValidationError::InvalidClaim("sub"));
    }
    let audience = match raw.aud {
        Some(Value::String(aud)) => vec![aud],
        Some(Value::Array(values)) => values
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(ValidationError::InvalidClaim("aud")),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(ValidationError::InvalidClaim("aud")),
    };
    let expires_at = number_claim(raw.exp, "exp")?.ok_or(ValidationError::MissingClaim("exp"))?;
    let issued_at = number_claim(raw.iat, "iat")?;
    let scopes = match (raw.scope, raw.scp) {
        (Some(Value::String(scope)), _) => Scopes::parse(&scope),
        (Some(Value::Null) | None, Some(Value::String(scp))) => Scopes::parse(&scp),
        (Some(Value::Null) | None, Some(Value::Array(items))) => {
            let joined: Vec<String> = items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(ValidationError::InvalidClaim("scp")),
                })
                .collect::<Result<_, _>>()?;
            Scopes::parse(&joined.join(" "))
        }
        (Some(Value::Null) | None, None | Some(Value::Null)) => Scopes::parse(""),
        (Some(_), _) => return Err(ValidationError::InvalidClaim("scope")),
        (_, Some(_)) => return Err(ValidationError::InvalidClaim("scp")),
    };
    let client_id = match string_claim(raw.client_id, "client_id")? {
        Some(id) => Some(id),
        None => string_claim(raw.azp, "azp")?,
    };
    if kind == TokenKind::Rfc9068 && client_id.is_none() {
        return Err(ValidationError::MissingClaim("client_id"));
    }
    let dpop_jkt = match raw.cnf {
        None | Some(Value::Null) => None,
        Some(Value::Object(mut cnf)) => match cnf.remove("jkt") {
            None => None,
            Some(Value::String(jkt)) if !jkt.is_empty() => Some(jkt),
            Some(_) => return Err(ValidationError::InvalidClaim("cnf")),
        },
        Some(_) => return Err(ValidationError::InvalidClaim("cnf")),
    };
    let profile = raw
        .rest
        .into_iter()
        .filter(|(name, _)| PROFILE_CLAIMS.contains(&name.as_str()))
        .collect();
    Ok(VerifiedClaims {
        issuer,
        subject,
        audience,
        expires_at,
        issued_at,
        scopes,
        client_id,
        kind,
        profile,
        token_fingerprint: secret::fingerprint(token),
        dpop_jkt,
    })
}

/// Cache entries live at most this long, so a key removed from the JWKS stops
/// validating cached tokens soon after.
const CACHE_ENTRY_TTL: u64 = 60;

struct CacheEntry {
    claims: Arc<VerifiedClaims>,
    valid_until: u64,
}

/// How many bytes at the end of a token [`TailHash`] hashes.
const HASHED_TAIL: usize = 32;

/// The cache's hasher: std's seeded SipHash over the last [`HASHED_TAIL`] bytes of a
/// token, instead of all of its several hundred (every authorized request pays one
/// lookup). Equality still compares whole tokens. The cache holds only tokens whose
/// signature was verified, and a JWT ends with its signature: distinct tokens end
/// differently, and a sender cannot make a forged token land among them, since it is
/// never inserted.
#[derive(Debug, Clone, Default)]
struct TailHash(std::hash::RandomState);

impl std::hash::BuildHasher for TailHash {
    type Hasher = TailHasher;

    fn build_hasher(&self) -> TailHasher {
        TailHasher(self.0.build_hasher())
    }
}

/// The hasher of [`TailHash`].
struct TailHasher(std::hash::DefaultHasher);

impl std::hash::Hasher for TailHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0
            .write(&bytes[bytes.len().saturating_sub(HASHED_TAIL)..]);
    }

    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

/// A bounded map from whole tokens to their verified claims.
///
/// Entries expire with the token (`exp` + leeway) and after [`CACHE_ENTRY_TTL`]; when
/// full, expired entries are dropped, then everything if still full.
struct TokenCache {
    capacity: usize,
    entries: Mutex<HashMap<String, CacheEntry, TailHash>>,
}

impl TokenCache {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::new(HashMap::default()),
        }
    }

    fn get(&self, token: &str, now: u64, leeway: u64) -> Option<Arc<VerifiedClaims>> {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = entries.get(token)?;
        if now < entry.valid_until && now <= entry.claims.expires_at.saturating_add(leeway) {
            Some(entry.claims.clone())
        } else {
            entries.remove(token);
            None
        }
    }

    fn insert(&self, token: &str, claims: Arc<VerifiedClaims>, now: u64) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= self.capacity {
            entries.retain(|_, e| now < e.valid_until && now <= e.claims.expires_at);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(
            token.to_string(),
            CacheEntry {
                claims,
                valid_until: now + CACHE_ENTRY_TTL,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(value: &str) -> String {
        URL_SAFE_NO_PAD.encode(value)
    }

    fn token(header: &str) -> String {
        format!("{}.{}.{}", b64(header), b64("{}"), b64("sig"))
    }

    #[test]
    fn prechecks_refuse_before_crypto() {
        assert!(matches!(
            precheck(&"a".repeat(100), 10),
            Err(ValidationError::TooLarge)
        ));
        assert!(matches!(
            precheck("a.b", 100),
            Err(ValidationError::Malformed(_))
        ));
        assert!(matches!(
            precheck("a..c", 100),
            Err(ValidationError::Malformed(_))
        ));
        assert!(matches!(
            precheck("a.b.c.d.e", 100),
            Err(ValidationError::Encrypted)
        ));
        assert!(matches!(
            precheck("a b.c.d", 100),
            Err(ValidationError::Malformed(_))
        ));
        assert!(matches!(
            precheck(&token(r#"{"alg":"none"}"#), 1000),
            Err(ValidationError::AlgorithmNotAllowed(_))
        ));
        assert!(matches!(
            precheck(&token(r#"{"alg":"HS256"}"#), 1000),
            Err(ValidationError::AlgorithmNotAllowed(_))
        ));
        assert!(matches!(
            precheck(&token(r#"{"alg":"RS256","crit":["exp"]}"#), 1000),
            Err(ValidationError::CriticalHeader)
        ));
        assert!(matches!(
            precheck(&token(r#"{"alg":"RS256","typ":"dpop+jwt"}"#), 1000),
            Err(ValidationError::WrongType(_))
        ));
        assert!(matches!(
            precheck(&token("[1]"), 1000),
            Err(ValidationError::Malformed(_))
        ));
        let ok = precheck(
            &token(r#"{"alg":"ES256","typ":"at+JWT","kid":"k1","jku":"http://evil"}"#),
            1000,
        )
        .unwrap();
        assert_eq!(ok.alg, Algorithm::ES256);
        assert_eq!(ok.kid.as_deref(), Some("k1"));
        assert_eq!(ok.kind, TokenKind::Rfc9068);
    }

    #[test]
    fn claims_of_both_shapes() {
        let dex: RawClaims = serde_json::from_value(serde_json::json!({
            "iss": "http://i", "sub": "u", "aud": ["rs", "cli"], "exp": 10, "azp": "cli",
            "email": "a@example.com", "at_hash": "x"
        }))
        .unwrap();
        let claims = build_claims(dex, TokenKind::Jwt, "t").unwrap();
        assert_eq!(claims.audience, vec!["rs", "cli"]);
        assert!(claims.scopes.is_empty());
        assert_eq!(claims.client_id.as_deref(), Some("cli"));
        assert!(claims.profile.contains_key("email"));
        assert!(!claims.profile.contains_key("at_hash"));

        let at: RawClaims = serde_json::from_value(serde_json::json!({
            "iss": "http://i", "sub": "u", "aud": "http://rs/mcp", "exp": 10,
            "scope": "mcp:tools mcp:admin", "client_id": "c"
        }))
        .unwrap();
        let claims = build_claims(at, TokenKind::Rfc9068, "t").unwrap();
        assert!(claims.scopes.contains("mcp:admin"));

        let missing: RawClaims = serde_json::from_value(serde_json::json!({
            "iss": "http://i", "sub": "u", "aud": "x", "exp": 10
        }))
        .unwrap();
        assert!(matches!(
            build_claims(missing, TokenKind::Rfc9068, "t"),
            Err(ValidationError::MissingClaim("client_id"))
        ));
    }

    #[test]
    fn accepted_until_is_the_first_refused_second() {
        let raw: RawClaims = serde_json::from_value(serde_json::json!({
            "iss": "http://i", "sub": "u", "aud": "x", "exp": 1000
        }))
        .unwrap();
        let claims = Arc::new(build_claims(raw, TokenKind::Jwt, "t").unwrap());
        let leeway = Duration::from_secs(30);
        let until = accepted_until(claims.expires_at, leeway);
        assert_eq!(until, UNIX_EPOCH + Duration::from_secs(1031));
        // The cache agrees: the last accepted whole second is 1030, and 1031 is refused.
        let cache = TokenCache::new(4);
        cache.insert("t", claims.clone(), 1000);
        assert!(cache.get("t", 1030, leeway.as_secs()).is_some());
        assert!(cache.get("t", 1031, leeway.as_secs()).is_none());
        // A far-future `exp` does not overflow.
        assert!(accepted_until(u64::MAX, leeway) > UNIX_EPOCH);
    }
}
