//! Typed server configuration: the Dex file plus the switches for what Dex lacks.
//!
//! [`IdpConfig::from_dex`] gives Dex's behaviour; each `with_*` setter turns on one
//! experiment, and [`Features::mcp_ready`] turns on everything an MCP client following
//! the 2025-11-25 specification expects from an authorization server.

use std::time::Duration;

use url::Url;

use crate::config::{ConfigError, DexConfig};
use crate::duration::parse_duration;

/// Scopes Dex itself understands (besides `audience:server:client_id:<id>`).
pub const DEX_SCOPES: [&str; 6] = [
    "openid",
    "email",
    "groups",
    "profile",
    "offline_access",
    "federated:id",
];

/// Behaviours beyond Dex, each off by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Features {
    /// Serve RFC 8414 metadata at `/.well-known/oauth-authorization-server{issuer path}`.
    pub rfc8414_metadata: bool,
    /// RFC 8707: a `resource` parameter becomes the access token's `aud`.
    pub resource_audience: bool,
    /// RFC 7591 open dynamic client registration at `{issuer}/register`.
    pub registration: bool,
    /// Refuse authorization requests without a PKCE S256 challenge.
    pub require_s256: bool,
    /// Do not insist on the `openid` scope (plain OAuth 2.1 clients never send it).
    pub openid_optional: bool,
    /// RFC 9207: add `iss` to authorization responses.
    pub issuer_in_response: bool,
    /// Scopes accepted beyond Dex's own; when non-empty, access tokens follow RFC 9068
    /// (`typ: at+jwt`, `scope`, `client_id`, `jti`).
    pub extra_scopes: Vec<String>,
    /// RFC 9449: advertise DPoP, check proofs at the token endpoint, issue DPoP-bound
    /// access tokens (`cnf.jkt`, `token_type: DPoP`) and bind public clients' refresh
    /// tokens to the proof key.
    pub dpop: bool,
    /// RFC 9449 §8: require a server nonce in token-endpoint proofs.
    pub dpop_nonce: bool,
    /// RFC 6749 §4.4: the `client_credentials` grant for confidential clients.
    pub client_credentials: bool,
    /// RFC 7523 §2.2: clients with keys (`jwks` / `jwksURI`) authenticate with signed
    /// JWT assertions (`private_key_jwt`).
    pub private_key_jwt: bool,
    /// Play the enterprise identity provider of enterprise-managed authorization: the
    /// token exchange grant (RFC 8693) turns an ID token this server issued into an
    /// ID-JAG for another authorization server.
    pub id_jag: bool,
    /// Play the MCP authorization server of enterprise-managed authorization and of
    /// workload identity: the JWT bearer grant (RFC 7523 §2.1) accepts ID-JAGs and
    /// workload JWTs signed by these issuers.
    pub trusted_issuers: Vec<TrustedIssuer>,
}

/// An issuer whose JWTs the JWT bearer grant accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedIssuer {
    /// Its `iss`, exactly.
    pub issuer: String,
    /// Where its keys are; without it, the `jwks_uri` of its OpenID discovery document.
    pub jwks_uri: Option<String>,
}

impl std::str::FromStr for TrustedIssuer {
    type Err = String;

    /// `ISSUER` or `ISSUER=JWKS_URI`.
    fn from_str(text: &str) -> Result<Self, String> {
        let (issuer, jwks_uri) = match text.split_once('=') {
            Some((i, j)) => (i.trim(), Some(j.trim())),
            None => (text.trim(), None),
        };
        let http = |u: &str| Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if !http(issuer) {
            return Err(format!("issuer {issuer:?} is not an http(s) URL"));
        }
        if let Some(j) = jwks_uri
            && !http(j)
        {
            return Err(format!("JWKS URI {j:?} is not an http(s) URL"));
        }
        Ok(Self {
            issuer: issuer.to_owned(),
            jwks_uri: jwks_uri.map(str::to_owned),
        })
    }
}

impl Features {
    /// Everything an MCP client expects: RFC 8414, `resource` → `aud`, registration,
    /// S256 required, `openid` optional, `iss` in responses, scopes `mcp:tools mcp:admin`,
    /// DPoP.
    pub fn mcp_ready() -> Self {
        Self {
            rfc8414_metadata: true,
            resource_audience: true,
            registration: true,
            require_s256: true,
            openid_optional: true,
            issuer_in_response: true,
            extra_scopes: vec!["mcp:tools".into(), "mcp:admin".into()],
            dpop: true,
            dpop_nonce: false,
            client_credentials: false,
            private_key_jwt: false,
            id_jag: false,
            trusted_issuers: Vec::new(),
        }
    }

    /// One line for people: Dex's behaviour, and what is switched on beyond it.
    pub fn describe(&self) -> String {
        let on: Vec<&str> = [
            (self.rfc8414_metadata, "RFC 8414 metadata"),
            (self.resource_audience, "resource becomes aud (RFC 8707)"),
            (self.registration, "dynamic registration"),
            (self.require_s256, "PKCE S256 required"),
            (self.openid_optional, "openid scope optional"),
            (
                self.issuer_in_response,
                "iss in authorization responses (RFC 9207)",
            ),
            (self.dpop, "DPoP (RFC 9449)"),
            (self.client_credentials, "client credentials grant"),
            (
                self.private_key_jwt,
                "private_key_jwt client authentication",
            ),
            (self.id_jag, "ID-JAGs by token exchange (enterprise IdP)"),
            (
                !self.trusted_issuers.is_empty(),
                "JWT bearer grant from trusted issuers (MCP authorization server)",
            ),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect();
        let scopes = if self.extra_scopes.is_empty() {
            String::new()
        } else {
            format!(", extra scopes {}", self.extra_scopes.join(" "))
        };
        if on.is_empty() && scopes.is_empty() {
            "behaves like Dex (OpenID discovery only, no registration, resource ignored)".to_owned()
        } else {
            format!("behaves like Dex plus: {}{scopes}", on.join(", "))
        }
    }

    /// Whether access tokens are RFC 9068 JWTs rather than Dex's ID-token look-alikes.
    pub fn rfc9068_access_tokens(&self) -> bool {
        !self.extra_scopes.is_empty()
    }
}

/// Everything the server needs to run.
#[derive(Debug, Clone)]
pub struct IdpConfig {
    /// The Dex configuration (clients, users, CORS, approval screen).
    pub dex: DexConfig,
    /// The issuer; defaults to the file's `issuer`.
    pub issuer: Url,
    /// Switches beyond Dex.
    pub features: Features,
    /// How often signing keys rotate (Dex: `expiry.signingKeys`, default 6h).
    pub key_rotation: Duration,
    /// Lifetime of ID and access tokens (Dex: `expiry.idTokens`, default 24h).
    pub token_lifetime: Duration,
    /// Lifetime of refresh tokens since the login that started them.
    pub refresh_lifetime: Duration,
    /// Lifetime of a pending authorization request (Dex: `expiry.authRequests`, default 24h).
    pub auth_request_lifetime: Duration,
    /// Lifetime of an authorization code (Dex: 30 minutes).
    pub code_lifetime: Duration,
    /// How long the previous secret of a rotated refresh token still works (Dex's
    /// `expiry.refreshTokens.reuseInterval`, default 3s).
    pub refresh_reuse_interval: Duration,
    /// Lifetime of a device authorization request (Dex's `expiry.deviceRequests`, 5m).
    pub device_lifetime: Duration,
    /// Issue opaque access tokens that a resource server must introspect.
    pub opaque_tokens: bool,
    /// Log this user in without showing the form (headless runs).
    pub auto_login: Option<String>,
}

fn expiry(
    value: Option<&String>,
    setting: &str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(text) => {
            parse_duration(text).map_err(|e| ConfigError::invalid(setting, e.to_string()))
        }
    }
}

impl IdpConfig {
    /// Dex's behaviour for this configuration file.
    pub fn from_dex(dex: DexConfig) -> Result<Self, ConfigError> {
        let issuer = parse_issuer(&dex.issuer)?;
        let key_rotation = expiry(
            dex.expiry.signing_keys.as_ref(),
            "expiry.signingKeys",
            Duration::from_secs(6 * 3600),
        )?;
        let token_lifetime = expiry(
            dex.expiry.id_tokens.as_ref(),
            "expiry.idTokens",
            Duration::from_secs(24 * 3600),
        )?;
        let auth_request_lifetime = expiry(
            dex.expiry.auth_requests.as_ref(),
            "expiry.authRequests",
            Duration::from_secs(24 * 3600),
        )?;
        Ok(Self {
            dex,
            issuer,
            features: Features::default(),
            key_rotation,
            token_lifetime,
            refresh_lifetime: Duration::from_secs(30 * 24 * 3600),
            auth_request_lifetime,
            code_lifetime: Duration::from_secs(30 * 60),
            refresh_reuse_interval: Duration::from_secs(3),
            device_lifetime: Duration::from_secs(5 * 60),
            opaque_tokens: false,
            auto_login: None,
        })
    }

    /// Replaces the issuer (and so every endpoint URL).
    pub fn with_issuer(mut self, issuer: &str) -> Result<Self, ConfigError> {
        self.issuer = parse_issuer(issuer)?;
        Ok(self)
    }

    /// Replaces the feature switches.
    #[must_use]
    pub fn with_features(mut self, features: Features) -> Self {
        self.features = features;
        self
    }

    /// Sets the key rotation period.
    #[must_use]
    pub fn with_key_rotation(mut self, period: Duration) -> Self {
        self.key_rotation = period;
        self
    }

    /// Sets the ID/access token lifetime.
    #[must_use]
    pub fn with_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// Logs `email` in without a form; the user must exist in `staticPasswords`.
    pub fn with_auto_login(mut self, email: &str) -> Result<Self, ConfigError> {
        let user = self.dex.user(email).ok_or_else(|| {
            ConfigError::invalid(
                "auto-login",
                format!("no user `{email}` in staticPasswords"),
            )
        })?;
        self.auto_login = Some(user.email.clone());
        Ok(self)
    }

    /// The issuer as a string without a trailing slash (the `iss` claim).
    pub fn issuer_str(&self) -> String {
        self.issuer.as_str().trim_end_matches('/').to_owned()
    }

    /// The issuer's path without a trailing slash (`/dex`, or empty).
    pub fn issuer_path(&self) -> String {
        self.issuer.path().trim_end_matches('/').to_owned()
    }

    /// The URL of an endpoint under the issuer, e.g. `endpoint("/token")`.
    pub fn endpoint(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.issuer_str())
    }

    /// Whether a scope is one this server accepts (apart from cross-client scopes).
    pub fn is_known_scope(&self, scope: &str) -> bool {
        DEX_SCOPES.contains(&scope) || self.features.extra_scopes.iter().any(|s| s == scope)
    }

    /// Every scope to advertise in metadata.
    pub fn scopes_supported(&self) -> Vec<String> {
        let mut scopes: Vec<String> = DEX_SCOPES
            .iter()
            .filter(|s| **s != "federated:id")
            .map(|s| (*s).to_owned())
            .collect();
        scopes.extend(self.features.extra_scopes.iter().cloned());
        scopes
    }
}

fn parse_issuer(text: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(text).map_err(|e| ConfigError::invalid("issuer", e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https")
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(ConfigError::invalid(
            "issuer",
            "must be an http(s) URL without query or fragment",
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {

    #[test]
    fn features_read_as_a_sentence() {
        let dex = Features::default().describe();
        assert!(dex.starts_with("behaves like Dex ("), "{dex}");
        let ready = Features::mcp_ready().describe();
        assert!(ready.contains("RFC 8414 metadata"), "{ready}");
        assert!(
            ready.contains("extra scopes mcp:tools mcp:admin"),
            "{ready}"
        );
        assert!(!ready.contains('{') && !ready.contains("true"), "{ready}");
    }
    use super::*;

    fn dex() -> DexConfig {
        DexConfig::from_yaml(
            "issuer: http://localhost:5556/dex\nexpiry:\n  idTokens: 1h\n  signingKeys: 30m\n",
        )
        .unwrap()
    }

    #[test]
    fn trusted_issuers_parse() {
        let t: TrustedIssuer = "http://idp.test/dex".parse().unwrap();
        assert_eq!(t.jwks_uri, None);
        let t: TrustedIssuer = "http://idp.test=http://idp.test/keys".parse().unwrap();
        assert_eq!(t.issuer, "http://idp.test");
        assert_eq!(t.jwks_uri.as_deref(), Some("http://idp.test/keys"));
        assert!("idp".parse::<TrustedIssuer>().is_err());
        assert!("http://i=file:///k".parse::<TrustedIssuer>().is_err());
    }

    #[test]
    fn reads_expiry_from_the_file() {
        let config = IdpConfig::from_dex(dex()).unwrap();
        assert_eq!(config.token_lifetime, Duration::from_secs(3600));
        assert_eq!(config.key_rotation, Duration::from_secs(1800));
        assert_eq!(config.endpoint("/token"), "http://localhost:5556/dex/token");
        assert_eq!(config.issuer_path(), "/dex");
    }

    #[test]
    fn bad_expiry_names_the_setting() {
        let mut d = dex();
        d.expiry.id_tokens = Some("soon".into());
        let err = IdpConfig::from_dex(d).unwrap_err();
        assert!(err.to_string().contains("expiry.idTokens"), "{err}");
    }

    #[test]
    fn auto_login_needs_a_known_user() {
        let err = IdpConfig::from_dex(dex())
            .unwrap()
            .with_auto_login("bob@example.com")
            .unwrap_err();
        assert!(err.to_string().contains("bob@example.com"), "{err}");
    }

    #[test]
    fn extra_scopes_are_known() {
        let config = IdpConfig::from_dex(dex())
            .unwrap()
            .with_features(Features::mcp_ready());
        assert!(config.is_known_scope("mcp:admin"));
        assert!(config.is_known_scope("openid"));
        assert!(!config.is_known_scope("admin"));
        assert!(config.scopes_supported().contains(&"mcp:tools".to_owned()));
    }
}
