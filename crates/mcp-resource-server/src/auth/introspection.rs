//! Token introspection ([RFC 7662](https://www.rfc-editor.org/rfc/rfc7662)): the
//! authorization server says whether a token is active, for servers that issue opaque
//! tokens or when a revoked token must be refused at once.
//!
//! With an introspection endpoint configured, every bearer token (opaque or JWT) is
//! sent there: `POST token=…&token_type_hint=access_token` with the resource server's
//! client credentials (HTTP Basic, [RFC 6749 §2.3.1]). The answer is checked as
//! strictly as a JWT would be: `active` must be `true`; `aud` must name one of the
//! accepted audiences (a missing `aud` is refused too); `iss`, when present, must be
//! the configured issuer; `exp` and `nbf` are enforced with the leeway; `sub` is
//! required; a `token_use` other than `access_token` (Dex also introspects refresh
//! tokens, as active) is refused.
//!
//! Active answers are cached by a SHA-256 digest of the token (never the token itself)
//! until the earlier of `exp` and the configured ceiling, so a revocation is seen
//! within the ceiling; the cache holds a bounded number of entries. Refusals are not
//! cached.
//!
//! The endpoint unreachable, too slow (a whole-exchange timeout), answering a non-200
//! status or an unreadable body all mean "cannot tell": 503, never 401, and never a
//! hang.
//!
//! [RFC 6749 §2.3.1]: https://www.rfc-editor.org/rfc/rfc6749#section-2.3.1
//!
//! # Security
//! The token and the client secret never appear in logs, errors or `Debug` output.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use aws_lc_rs::digest;
use mcp_auth_proto::{scope::Scopes, secret::ClientSecret};
use serde::Deserialize;
use serde_json::{Map, Value};
use url::Url;

use super::{
    claims::{TokenKind, VerifiedClaims},
    validator::{ValidationError, accepted_until},
    verify::{Verification, VerifyToken},
};

/// Default of [`IntrospectionConfig::cache_ceiling`].
pub const DEFAULT_CACHE_CEILING: Duration = Duration::from_secs(60);
/// Default of [`IntrospectionConfig::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default of [`IntrospectionConfig::cache_capacity`].
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;
/// Largest introspection response read, in bytes.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Settings of an [`Introspector`].
#[derive(Debug, Clone)]
pub struct IntrospectionConfig {
    /// The introspection endpoint.
    pub endpoint: Url,
    /// The resource server's client id at the authorization server.
    pub client_id: String,
    /// Its client secret.
    pub client_secret: ClientSecret,
    /// The expected `iss` (checked when the answer has one).
    pub issuer: String,
    /// Accepted `aud` values (one match suffices).
    pub audiences: Vec<String>,
    /// Clock leeway for `exp` and `nbf`.
    pub leeway: Duration,
    /// Longest an active answer is reused (also bounded by the token's `exp`).
    pub cache_ceiling: Duration,
    /// Most cached answers.
    pub cache_capacity: usize,
    /// Longest one introspection exchange may take, connection included.
    pub timeout: Duration,
    /// Largest accepted token, in bytes.
    pub max_token_bytes: usize,
}

/// Verifies tokens by asking the authorization server. See the module documentation.
pub struct Introspector {
    config: IntrospectionConfig,
    http: reqwest::Client,
    cache: Mutex<HashMap<[u8; 32], Cached>>,
}

struct Cached {
    claims: Arc<VerifiedClaims>,
    fresh_until: Instant,
}

impl std::fmt::Debug for Introspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Introspector")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The parts of an introspection response this server reads (RFC 7662 §2.2).
#[derive(Deserialize)]
struct Answer {
    active: bool,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    aud: Option<Value>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    exp: Option<u64>,
    #[serde(default)]
    nbf: Option<u64>,
    #[serde(default)]
    iat: Option<u64>,
    #[serde(default)]
    token_use: Option<String>,
    /// `cnf.jkt` of a DPoP-bound token (RFC 9449 §6.2).
    #[serde(default)]
    cnf: Option<Value>,
    #[serde(default)]
    username: Option<String>,
    /// Dex puts the profile claims here.
    #[serde(default)]
    ext: Option<Map<String, Value>>,
}

const PROFILE_CLAIMS: &[&str] = &[
    "email",
    "email_verified",
    "name",
    "preferred_username",
    "groups",
];

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn digest_of(token: &str) -> [u8; 32] {
    let mut key = [0u8; 32];
    key.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
    key
}

impl Introspector {
    /// An introspector with its own HTTP client (no redirects followed, the configured
    /// timeout on every exchange).
    pub fn new(config: IntrospectionConfig) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()
            .expect("static reqwest configuration");
        Self {
            config,
            http,
            cache: Mutex::default(),
        }
    }

    /// The settings in use.
    pub fn config(&self) -> &IntrospectionConfig {
        &self.config
    }

    /// Asks the endpoint about `token` and checks the answer.
    async fn introspect(&self, token: &str) -> Result<VerifiedClaims, ValidationError> {
        if token.len() > self.config.max_token_bytes {
            return Err(ValidationError::TooLarge);
        }
        let encode =
            |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let mut request = self.http.post(self.config.endpoint.clone());
        // No client id configured: no client authentication, for endpoints that take
        // none (Dex's `/token/introspect`).
        if !self.config.client_id.is_empty() {
            request = request.basic_auth(
                encode(&self.config.client_id),
                Some(encode(self.config.client_secret.secret())),
            );
        }
        let response = request
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .map_err(|e| {
                ValidationError::Unavailable(if e.is_timeout() {
                    "the introspection endpoint did not answer in time"
                } else {
                    "the introspection endpoint is unreachable"
                })
            })?;
        if response.status() != reqwest::StatusCode::OK {
            tracing::warn!(status = %response.status(), "introspection endpoint refused the request");
            return Err(ValidationError::Unavailable(
                "the introspection endpoint answered with an error status",
            ));
        }
        let body = read_limited(response).await?;
        let answer: Answer = serde_json::from_slice(&body).map_err(|_| {
            ValidationError::Unavailable("the introspection response is not RFC 7662 JSON")
        })?;
        self.check(answer, token)
    }

    fn check(&self, answer: Answer, token: &str) -> Result<VerifiedClaims, ValidationError> {
        if !answer.active {
            return Err(ValidationError::Inactive);
        }
        if let Some(token_use) = &answer.token_use
            && token_use != "access_token"
        {
            return Err(ValidationError::WrongType(
                token_use.chars().take(32).collect(),
            ));
        }
        let issuer = match answer.iss {
            Some(iss) if iss != self.config.issuer => return Err(ValidationError::WrongIssuer),
            Some(iss) => iss,
            None => self.config.issuer.clone(),
        };
        let audience = match answer.aud {
            Some(Value::String(aud)) => vec![aud],
            Some(Value::Array(values)) => values
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(ValidationError::InvalidClaim("aud")),
                })
                .collect::<Result<_, _>>()?,
            None | Some(Value::Null) => return Err(ValidationError::MissingClaim("aud")),
            Some(_) => return Err(ValidationError::InvalidClaim("aud")),
        };
        if !audience.iter().any(|a| self.config.audiences.contains(a)) {
            return Err(ValidationError::WrongAudience);
        }
        let now = unix_now();
        let leeway = self.config.leeway.as_secs();
        let expires_at = match answer.exp {
            Some(exp) if now > exp.saturating_add(leeway) => return Err(ValidationError::Expired),
            Some(exp) => exp,
            // No `exp`: good for as long as the answer may be reused.
            None => now.saturating_add(self.config.cache_ceiling.as_secs()),
        };
        if let Some(nbf) = answer.nbf
            && nbf > now.saturating_add(leeway)
        {
            return Err(ValidationError::NotYetValid);
        }
        let subject = answer
            .sub
            .filter(|s| !s.is_empty())
            .ok_or(ValidationError::MissingClaim("sub"))?;
        let dpop_jkt = match answer.cnf {
            None | Some(Value::Null) => None,
            Some(Value::Object(mut cnf)) => match cnf.remove("jkt") {
                None => None,
                Some(Value::String(jkt)) if !jkt.is_empty() => Some(jkt),
                Some(_) => return Err(ValidationError::InvalidClaim("cnf")),
            },
            Some(_) => return Err(ValidationError::InvalidClaim("cnf")),
        };
        let mut profile: Map<String, Value> = answer
            .ext
            .unwrap_or_default()
            .into_iter()
            .filter(|(name, _)| PROFILE_CLAIMS.contains(&name.as_str()))
            .collect();
        if let Some(username) = answer.username {
            profile
                .entry("preferred_username")
                .or_insert(Value::String(username));
        }
        Ok(VerifiedClaims {
            issuer,
            subject,
            audience,
            expires_at,
            issued_at: answer.iat,
            scopes: Scopes::parse(answer.scope.as_deref().unwrap_or("")),
            client_id: answer.client_id,
            kind: TokenKind::Introspected,
            profile,
            token_fingerprint: mcp_auth_proto::secret::fingerprint(token),
            dpop_jkt,
        })
    }

    fn remember(&self, token: &str, claims: Arc<VerifiedClaims>) {
        if self.config.cache_capacity == 0 {
            return;
        }
        let now = Instant::now();
        let until_exp = accepted_until(claims.expires_at, self.config.leeway)
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        let fresh_until = now + until_exp.min(self.config.cache_ceiling);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= self.config.cache_capacity {
            cache.retain(|_, entry| entry.fresh_until > now);
        }
        if cache.len() >= self.config.cache_capacity
            && let Some(oldest) = cache
                .iter()
                .min_by_key(|(_, entry)| entry.fresh_until)
                .map(|(key, _)| *key)
        {
            cache.remove(&oldest);
        }
        cache.insert(
            digest_of(token),
            Cached {
                claims,
                fresh_until,
            },
        );
    }

    /// How many answers are cached (for tests and metrics).
    pub fn cached_len(&self) -> usize {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, ValidationError> {
    let too_large = || ValidationError::Unavailable("the introspection response is too large");
    if response
        .content_length()
        .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        ValidationError::Unavailable(if e.is_timeout() {
            "the introspection endpoint did not answer in time"
        } else {
            "the introspection response could not be read"
        })
    })? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

impl VerifyToken for Introspector {
    fn cached(&self, token: &str) -> Option<Arc<VerifiedClaims>> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let entry = cache.get(&digest_of(token))?;
        (entry.fresh_until > Instant::now()
            && SystemTime::now() < accepted_until(entry.claims.expires_at, self.config.leeway))
        .then(|| entry.claims.clone())
    }

    fn verify<'a>(&'a self, token: &'a str) -> Verification<'a> {
        Box::pin(async move {
            if let Some(claims) = self.cached(token) {
                return Ok(claims);
            }
            let claims = Arc::new(self.introspect(token).await?);
            tracing::info!(
                endpoint = %self.config.endpoint,
                subject = %claims.subject,
                client_id = claims.client_id.as_deref().unwrap_or("-"),
                dpop_bound = claims.dpop_jkt.is_some(),
                expires_in_s = claims.expires_at.saturating_sub(unix_now()),
                "token introspected: active (RFC 7662); the answer is reused for up to {} s",
                self.config.cache_ceiling.as_secs()
            );
            self.remember(token, claims.clone());
            Ok(claims)
        })
    }

    fn accepted_until(&self, claims: &VerifiedClaims) -> SystemTime {
        accepted_until(claims.expires_at, self.config.leeway)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn introspector(capacity: usize) -> Introspector {
        Introspector::new(IntrospectionConfig {
            endpoint: Url::parse("http://127.0.0.1:9/introspect").unwrap(),
            client_id: "rs".into(),
            client_secret: ClientSecret::new("s3cret-value"),
            issuer: "https://as.example".into(),
            audiences: vec!["https://rs.example/mcp".into()],
            leeway: Duration::from_secs(30),
            cache_ceiling: Duration::from_secs(60),
            cache_capacity: capacity,
            timeout: Duration::from_secs(1),
            max_token_bytes: 4096,
        })
    }

    fn answer(value: Value) -> Answer {
        serde_json::from_value(value).unwrap()
    }

    fn active() -> Value {
        json!({
            "active": true, "sub": "alice", "aud": "https://rs.example/mcp",
            "iss": "https://as.example", "exp": unix_now() + 300, "scope": "mcp:tools",
            "client_id": "c1", "token_use": "access_token",
            "ext": {"email": "alice@example.com", "other": 1}
        })
    }

    #[test]
    fn an_active_answer_becomes_claims() {
        let claims = introspector(8).check(answer(active()), "tok").unwrap();
        assert_eq!(claims.subject, "alice");
        assert!(claims.scopes.contains_all(&Scopes::parse("mcp:tools")));
        assert_eq!(
            claims.profile.get("email"),
            Some(&json!("alice@example.com"))
        );
        assert!(claims.profile.get("other").is_none());
        assert_eq!(claims.kind, TokenKind::Introspected);
    }

    #[test]
    fn refusals_name_the_failed_check() {
        let i = introspector(8);
        let with = |key: &str, value: Value| {
            let mut a = active();
            a[key] = value;
            i.check(answer(a), "tok").unwrap_err()
        };
        assert!(matches!(
            i.check(answer(json!({"active": false})), "tok")
                .unwrap_err(),
            ValidationError::Inactive
        ));
        assert!(matches!(
            with("aud", json!("https://other.example")),
            ValidationError::WrongAudience
        ));
        assert!(matches!(
            with("aud", json!(["x", "y"])),
            ValidationError::WrongAudience
        ));
        assert!(matches!(
            with("aud", Value::Null),
            ValidationError::MissingClaim("aud")
        ));
        assert!(matches!(
            with("iss", json!("https://evil.example")),
            ValidationError::WrongIssuer
        ));
        assert!(matches!(
            with("exp", json!(unix_now() - 3600)),
            ValidationError::Expired
        ));
        assert!(matches!(
            with("nbf", json!(unix_now() + 3600)),
            ValidationError::NotYetValid
        ));
        assert!(matches!(
            with("token_use", json!("refresh_token")),
            ValidationError::WrongType(_)
        ));
        assert!(matches!(
            with("sub", json!("")),
            ValidationError::MissingClaim("sub")
        ));
    }

    #[test]
    fn the_cache_is_bounded_and_keyed_by_digest() {
        let i = introspector(2);
        for token in ["a", "b", "c"] {
            let claims = Arc::new(i.check(answer(active()), token).unwrap());
            i.remember(token, claims);
        }
        assert_eq!(i.cached_len(), 2);
        assert!(i.cached("c").is_some(), "the newest entry stays");
        assert!(i.cached("zzz").is_none());
        let off = introspector(0);
        let claims = Arc::new(off.check(answer(active()), "a").unwrap());
        off.remember("a", claims);
        assert!(off.cached("a").is_none());
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let shown = format!("{:?}", introspector(1));
        assert!(!shown.contains("s3cret-value"), "{shown}");
    }
}
