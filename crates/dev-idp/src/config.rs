//! The subset of Dex's configuration file (`dex-config.yaml`) this server reads.
//!
//! The same file runs the real Dex in Docker, so field names follow Dex
//! (`staticClients`, `redirectURIs`, `trustedPeers`, `staticPasswords`, `userID`,
//! `oauth2.skipApprovalScreen`, `web.allowedOrigins`, `expiry.*`). Keys this server does
//! not use (storage, logger, connectors, ...) are accepted and ignored.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use serde::Deserialize;

/// Errors found while loading or checking a configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path that was read.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid YAML for a Dex configuration.
    #[error("invalid Dex configuration: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    /// A value is present but wrong.
    #[error("invalid setting `{setting}`: {reason}")]
    Invalid {
        /// The setting, in the file's own spelling.
        setting: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(setting: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            setting: setting.into(),
            reason: reason.into(),
        }
    }
}

/// A Dex configuration file, as far as this server understands it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DexConfig {
    /// The issuer URL; every endpoint lives under its path.
    pub issuer: String,
    /// The `web` section (listen address, CORS).
    #[serde(default)]
    pub web: WebConfig,
    /// The `oauth2` section.
    #[serde(default)]
    pub oauth2: OAuth2Config,
    /// The `expiry` section (Go duration strings such as `24h`).
    #[serde(default)]
    pub expiry: ExpiryConfig,
    /// Whether the local password database (and so `staticPasswords`) is enabled.
    #[serde(default, rename = "enablePasswordDB")]
    pub enable_password_db: bool,
    /// Clients known at start.
    #[serde(default)]
    pub static_clients: Vec<StaticClient>,
    /// Users known at start.
    #[serde(default)]
    pub static_passwords: Vec<StaticPassword>,
}

/// The `web` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebConfig {
    /// Plain HTTP listen address, e.g. `0.0.0.0:5556`.
    pub http: Option<String>,
    /// Origins allowed by CORS; `*` allows any.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Request headers CORS preflights may ask for, besides `Authorization` and the
    /// always-allowed `Accept`, `Accept-Language`, `Content-Language`, `Origin`.
    #[serde(default)]
    pub allowed_headers: Vec<String>,
}

/// The `oauth2` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OAuth2Config {
    /// Skip the "grant access" page after login.
    #[serde(default)]
    pub skip_approval_screen: bool,
    /// Response types accepted at the authorization endpoint (Dex default: `code`).
    #[serde(default)]
    pub response_types: Vec<String>,
}

/// The `expiry` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpiryConfig {
    /// Lifetime of ID tokens and (in Dex) access tokens.
    pub id_tokens: Option<String>,
    /// Signing key rotation period.
    pub signing_keys: Option<String>,
    /// Lifetime of a pending authorization request.
    pub auth_requests: Option<String>,
}

/// One entry of `staticClients`.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StaticClient {
    /// The client id.
    pub id: String,
    /// The client secret (confidential clients only).
    #[serde(default)]
    pub secret: Option<String>,
    /// Registered redirect URIs, matched exactly.
    #[serde(default, rename = "redirectURIs")]
    pub redirect_uris: Vec<String>,
    /// Clients allowed to mint tokens whose audience is this client.
    #[serde(default)]
    pub trusted_peers: Vec<String>,
    /// A public client has no secret (native apps, CLIs, browser apps).
    #[serde(default)]
    pub public: bool,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// dev-idp only (Dex has no such field and ignores it): the client's public keys as
    /// an inline JSON Web Key Set, for `private_key_jwt` authentication (RFC 7523 §2.2).
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
    /// dev-idp only: where the client publishes its JSON Web Key Set, for
    /// `private_key_jwt` authentication.
    #[serde(default, rename = "jwksURI")]
    pub jwks_uri: Option<String>,
}

impl fmt::Debug for StaticClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticClient")
            .field("id", &self.id)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("redirect_uris", &self.redirect_uris)
            .field("trusted_peers", &self.trusted_peers)
            .field("public", &self.public)
            .field("name", &self.name)
            .field("jwks", &self.jwks.as_ref().map(|_| "[inline]"))
            .field("jwks_uri", &self.jwks_uri)
            .finish()
    }
}

/// One entry of `staticPasswords`.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StaticPassword {
    /// The login name (matched case-insensitively, as Dex does).
    pub email: String,
    /// A bcrypt hash of the password.
    pub hash: String,
    /// The display name (`name` claim with the `profile` scope).
    #[serde(default)]
    pub username: String,
    /// The stable user id (encoded into `sub`).
    #[serde(rename = "userID")]
    pub user_id: String,
    /// Optional preferred username.
    #[serde(default)]
    pub preferred_username: Option<String>,
    /// Optional groups (`groups` claim with the `groups` scope).
    #[serde(default)]
    pub groups: Vec<String>,
}

impl fmt::Debug for StaticPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticPassword")
            .field("email", &self.email)
            .field("hash", &"[redacted]")
            .field("username", &self.username)
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

impl DexConfig {
    /// Parses a configuration from YAML text and checks it.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let config: Self = serde_yaml_ng::from_str(text)?;
        config.check()?;
        Ok(config)
    }

    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml(&text)
    }

    /// Finds a static client by id.
    pub fn client(&self, id: &str) -> Option<&StaticClient> {
        self.static_clients.iter().find(|c| c.id == id)
    }

    /// Finds a static user by email, case-insensitively.
    pub fn user(&self, email: &str) -> Option<&StaticPassword> {
        self.static_passwords
            .iter()
            .find(|u| u.email.eq_ignore_ascii_case(email))
    }

    fn check(&self) -> Result<(), ConfigError> {
        let issuer = url::Url::parse(&self.issuer)
            .map_err(|e| ConfigError::invalid("issuer", e.to_string()))?;
        if !matches!(issuer.scheme(), "http" | "https")
            || issuer.query().is_some()
            || issuer.fragment().is_some()
        {
            return Err(ConfigError::invalid(
                "issuer",
                "must be an http(s) URL without query or fragment",
            ));
        }
        if !self.static_passwords.is_empty() && !self.enable_password_db {
            return Err(ConfigError::invalid(
                "staticPasswords",
                "needs `enablePasswordDB: true`",
            ));
        }
        let mut ids = HashSet::new();
        for client in &self.static_clients {
            if client.id.is_empty() {
                return Err(ConfigError::invalid("staticClients[].id", "is empty"));
            }
            if !ids.insert(client.id.as_str()) {
                return Err(ConfigError::invalid(
                    "staticClients[].id",
                    format!("`{}` appears twice", client.id),
                ));
            }
            let has_secret = client.secret.as_deref().is_some_and(|s| !s.is_empty());
            let has_keys = client.jwks.is_some() || client.jwks_uri.is_some();
            if !client.public && !has_secret && !has_keys {
                return Err(ConfigError::invalid(
                    format!("staticClients[{}].secret", client.id),
                    "a confidential client needs a secret, a `jwks` or a `jwksURI` (or set `public: true`)",
                ));
            }
            check_client_keys(client)?;
        }
        let mut emails = HashSet::new();
        for user in &self.static_passwords {
            if !emails.insert(user.email.to_ascii_lowercase()) {
                return Err(ConfigError::invalid(
                    "staticPasswords[].email",
                    format!("`{}` appears twice", user.email),
                ));
            }
            if !user.hash.starts_with("$2") {
                return Err(ConfigError::invalid(
                    format!("staticPasswords[{}].hash", user.email),
                    "is not a bcrypt hash",
                ));
            }
        }
        Ok(())
    }
}

/// JWK members only private or symmetric keys have.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A client's `jwks` must be a set of public keys, its `jwksURI` an http(s) URL, and a
/// public client has neither (it cannot authenticate).
fn check_client_keys(client: &StaticClient) -> Result<(), ConfigError> {
    let setting = |name: &str| format!("staticClients[{}].{name}", client.id);
    if client.public && (client.jwks.is_some() || client.jwks_uri.is_some()) {
        return Err(ConfigError::invalid(
            setting("jwks"),
            "a public client does not authenticate, so it has no keys",
        ));
    }
    if client.jwks.is_some() && client.jwks_uri.is_some() {
        return Err(ConfigError::invalid(
            setting("jwks"),
            "give `jwks` or `jwksURI`, not both",
        ));
    }
    if let Some(jwks) = &client.jwks {
        let keys = jwks
            .get("keys")
            .and_then(serde_json::Value::as_array)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                ConfigError::invalid(setting("jwks"), "needs a non-empty `keys` array")
            })?;
        for key in keys {
            if PRIVATE_MEMBERS.iter().any(|m| key.get(*m).is_some()) {
                return Err(ConfigError::invalid(
                    setting("jwks"),
                    "holds a private or symmetric key; publish only public keys",
                ));
            }
            serde_json::from_value::<jsonwebtoken::jwk::Jwk>(key.clone()).map_err(|e| {
                ConfigError::invalid(setting("jwks"), format!("a key is not a JWK: {e}"))
            })?;
        }
    }
    if let Some(uri) = &client.jwks_uri {
        let ok = url::Url::parse(uri).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if !ok {
            return Err(ConfigError::invalid(
                setting("jwksURI"),
                "must be an http(s) URL",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
issuer: http://localhost:5556/dex
storage:
  type: memory
web:
  http: 0.0.0.0:5556
  allowedOrigins: ['http://localhost:3001']
oauth2:
  skipApprovalScreen: true
enablePasswordDB: true
staticClients:
- id: cli
  public: true
  name: CLI
- id: api
  secret: s3cret
  redirectURIs: ['http://localhost:3001/cb']
  trustedPeers: [cli]
staticPasswords:
- email: "alice@example.com"
  hash: "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W"
  username: alice
  userID: "1234"
"#;

    #[test]
    fn parses_dex_spelling() {
        let config = DexConfig::from_yaml(SAMPLE).unwrap();
        assert_eq!(config.issuer, "http://localhost:5556/dex");
        assert!(config.oauth2.skip_approval_screen);
        assert_eq!(config.web.allowed_origins, ["http://localhost:3001"]);
        let api = config.client("api").unwrap();
        assert_eq!(api.redirect_uris, ["http://localhost:3001/cb"]);
        assert_eq!(api.trusted_peers, ["cli"]);
        assert!(config.client("cli").unwrap().public);
        assert_eq!(config.user("ALICE@example.com").unwrap().user_id, "1234");
    }

    #[test]
    fn debug_hides_secrets() {
        let config = DexConfig::from_yaml(SAMPLE).unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("s3cret"));
        assert!(!debug.contains("$2a$10$"));
    }

    #[test]
    fn confidential_client_needs_secret() {
        let text = SAMPLE.replace("  secret: s3cret\n", "");
        let err = DexConfig::from_yaml(&text).unwrap_err();
        assert!(
            err.to_string().contains("staticClients[api].secret"),
            "{err}"
        );
    }

    #[test]
    fn client_keys_are_public_keys() {
        let with_keys = |keys: &str| {
            SAMPLE.replace(
                "  secret: s3cret\n",
                &format!("  jwks: {{keys: [{keys}]}}\n"),
            )
        };
        let ec = r#"{kty: EC, crv: P-256, x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;
        let config = DexConfig::from_yaml(&with_keys(ec)).unwrap();
        assert!(config.client("api").unwrap().jwks.is_some());
        let private = ec.replace('}', ", d: \"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI\"}");
        let err = DexConfig::from_yaml(&with_keys(&private)).unwrap_err();
        assert!(err.to_string().contains("private"), "{err}");
        let secret = r#"{kty: oct, k: "c2VjcmV0"}"#;
        assert!(DexConfig::from_yaml(&with_keys(secret)).is_err());
        let bad_uri = SAMPLE.replace("  secret: s3cret\n", "  jwksURI: ftp://x/keys\n");
        let err = DexConfig::from_yaml(&bad_uri).unwrap_err();
        assert!(err.to_string().contains("jwksURI"), "{err}");
    }

    #[test]
    fn passwords_need_password_db() {
        let text = SAMPLE.replace("enablePasswordDB: true", "enablePasswordDB: false");
        let err = DexConfig::from_yaml(&text).unwrap_err();
        assert!(err.to_string().contains("enablePasswordDB"), "{err}");
    }

    #[test]
    fn bad_issuer_is_named() {
        let text = SAMPLE.replace("http://localhost:5556/dex", "not a url");
        let err = DexConfig::from_yaml(&text).unwrap_err();
        assert!(err.to_string().contains("`issuer`"), "{err}");
    }
}
