//! Typed configuration of the resource server, with safe defaults and validation.
//!
//! [`Config`] is what [`crate::McpResourceServer`] runs from. Build one with
//! [`Config::new`] and the `with_*` setters (a command line, the `resource-server`
//! binary's say, fills its fields). [`Config::validate`] turns it into a [`ValidatedConfig`], resolving
//! the defaults that depend on other settings (audiences, authorization servers, allowed
//! origins) and refusing anything inconsistent with an error that names the setting.

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use mcp_auth_proto::{scope::Scopes, secret::ClientSecret, wellknown};
use url::Url;

pub use crate::auth::jwks::JwksConfig;
use crate::auth::{DpopConfig, DpopPolicy, dpop::proof_algorithm};

/// Default of [`Config::listen`].
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3001";
/// Default public base URL.
pub const DEFAULT_PUBLIC_URL: &str = "http://localhost:3001";
/// Default issuer (Dex in the docker-compose topology).
pub const DEFAULT_ISSUER: &str = "http://localhost:5556/dex";

/// A setting that is wrong or missing. Its `Display` is one line naming the setting.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting `{setting}`: {reason}")]
pub struct ConfigError {
    /// The setting's flag name, without dashes.
    pub setting: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    /// An error about `setting` (a flag name without dashes), for code that builds a
    /// [`Config`] from its own input, a command line say.
    pub fn new(setting: &'static str, reason: impl Into<String>) -> Self {
        Self {
            setting,
            reason: reason.into(),
        }
    }
}

/// Settings of the session cookie issued by `POST /session` for the legacy SSE transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieConfig {
    /// Cookie name.
    pub name: String,
    /// Force the `Secure` attribute on or off; `None` means "on when the public URL is https".
    pub secure: Option<bool>,
    /// Upper bound of a cookie session's lifetime (it never outlives the token either).
    pub max_age: Duration,
    /// Most cookie sessions one principal holds; opening one more ends its oldest.
    pub max_per_principal: usize,
    /// Most cookie sessions held overall; past it, `POST /session` is answered 503.
    pub max_sessions: usize,
}

/// Default of [`CookieConfig::max_per_principal`].
pub const DEFAULT_COOKIE_SESSIONS_PER_PRINCIPAL: usize = 16;
/// Default of [`CookieConfig::max_sessions`].
pub const DEFAULT_COOKIE_SESSIONS: usize = 100_000;

impl Default for CookieConfig {
    fn default() -> Self {
        Self {
            name: "mcp_session".into(),
            secure: None,
            max_age: Duration::from_secs(3600),
            max_per_principal: DEFAULT_COOKIE_SESSIONS_PER_PRINCIPAL,
            max_sessions: DEFAULT_COOKIE_SESSIONS,
        }
    }
}

/// Configuration of the resource server, as given (before defaults are resolved).
#[derive(Debug, Clone)]
pub struct Config {
    /// Address a binary listens on ([`crate::McpResourceServer::serve`] takes a bound
    /// listener instead); with [`Config::no_auth`] it must be a loopback address.
    pub listen: SocketAddr,
    /// Public base URL under which clients reach this server (no path).
    pub public_url: String,
    /// Expected `iss` of access tokens.
    pub issuer: String,
    /// JWKS location; discovered from the issuer's metadata when `None`.
    pub jwks_uri: Option<String>,
    /// Accepted `aud` values; empty means this server's canonical resource URIs.
    pub audiences: Vec<String>,
    /// Authorization servers advertised in the PRM; empty means `[issuer]`.
    pub authorization_servers: Vec<String>,
    /// Scopes advertised in the PRM and in challenges.
    pub scopes_supported: Vec<String>,
    /// Scopes every MCP request needs.
    pub required_scopes: Vec<String>,
    /// Extra scopes needed per tool name.
    pub tool_scopes: BTreeMap<String, Vec<String>>,
    /// Origins allowed to send requests; empty means the public URL's origin only.
    pub allowed_origins: Vec<String>,
    /// Session cookie settings.
    pub cookie: CookieConfig,
    /// Serve Streamable HTTP without sessions.
    pub stateless: bool,
    /// Turn authorization off entirely (conformance testing only).
    pub no_auth: bool,
    /// Verify tokens by RFC 7662 introspection instead of as JWTs (see
    /// [`crate::auth::introspection`]).
    pub introspection: Option<IntrospectionSettings>,
    /// Human-readable name in the PRM.
    pub resource_name: String,
    /// Clock leeway for `exp` and `nbf`.
    pub leeway: Duration,
    /// Largest accepted token, in bytes.
    pub max_token_bytes: usize,
    /// Largest accepted JSON-RPC request body, in bytes.
    pub max_body_bytes: usize,
    /// JWKS cache tuning.
    pub jwks: JwksConfig,
    /// Capacity of the cache of verified tokens (0 turns it off).
    pub token_cache_capacity: usize,
    /// How long a client may take to send a request head; idle connections close after it.
    pub header_read_timeout: Duration,
    /// How long a connection may stay open with no request in flight, whatever it sent
    /// (nothing, part of a request head, the HTTP/2 preface): from its acceptance and
    /// from the end of its last response. An open event stream is a request in flight.
    pub idle_timeout: Duration,
    /// Most event streams (legacy `GET /sse` and standalone `GET /mcp` together) one
    /// principal (`iss`, `sub`) may hold open; past it, opening another is answered 429.
    pub max_streams_per_principal: usize,
    /// Most event streams open at once over all principals; past it, 503.
    pub max_streams: usize,
    /// Most live Streamable HTTP sessions one principal may hold; past it, `initialize`
    /// is answered 429.
    pub max_mcp_sessions_per_principal: usize,
    /// Most live Streamable HTTP sessions over all principals; past it, 503.
    pub max_mcp_sessions: usize,
    /// A Streamable HTTP session with no message for this long is closed.
    pub mcp_session_idle_timeout: Duration,
    /// DPoP-bound tokens (RFC 9449).
    pub dpop: DpopConfig,
    /// Redis shared by every instance behind a load balancer (`redis://host:port[/db]`);
    /// `None` keeps every piece of state in this process.
    pub redis_url: Option<String>,
}

/// Default of [`Config::idle_timeout`] and [`Config::header_read_timeout`], in seconds.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 20;
/// Default of [`Config::max_streams_per_principal`].
pub const DEFAULT_MAX_STREAMS_PER_PRINCIPAL: usize = 16;
/// Default of [`Config::max_streams`].
pub const DEFAULT_MAX_STREAMS: usize = 10_000;
/// Default of [`Config::max_mcp_sessions_per_principal`].
pub const DEFAULT_MAX_MCP_SESSIONS_PER_PRINCIPAL: usize = 32;
/// Default of [`Config::max_mcp_sessions`].
pub const DEFAULT_MAX_MCP_SESSIONS: usize = 4096;
/// Default of [`Config::mcp_session_idle_timeout`], in seconds.
pub const DEFAULT_MCP_SESSION_IDLE_SECS: u64 = 300;

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().expect("constant address"),
            public_url: DEFAULT_PUBLIC_URL.into(),
            issuer: DEFAULT_ISSUER.into(),
            jwks_uri: None,
            audiences: Vec::new(),
            authorization_servers: Vec::new(),
            scopes_supported: vec!["mcp:tools".into()],
            required_scopes: vec!["mcp:tools".into()],
            tool_scopes: BTreeMap::new(),
            allowed_origins: Vec::new(),
            cookie: CookieConfig::default(),
            stateless: false,
            no_auth: false,
            introspection: None,
            resource_name: "MCP server".into(),
            leeway: Duration::from_secs(30),
            max_token_bytes: 16 * 1024,
            max_body_bytes: 1024 * 1024,
            jwks: JwksConfig::default(),
            token_cache_capacity: 10_000,
            header_read_timeout: Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECS),
            idle_timeout: Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECS),
            max_streams_per_principal: DEFAULT_MAX_STREAMS_PER_PRINCIPAL,
            max_streams: DEFAULT_MAX_STREAMS,
            max_mcp_sessions_per_principal: DEFAULT_MAX_MCP_SESSIONS_PER_PRINCIPAL,
            max_mcp_sessions: DEFAULT_MAX_MCP_SESSIONS,
            mcp_session_idle_timeout: Duration::from_secs(DEFAULT_MCP_SESSION_IDLE_SECS),
            dpop: DpopConfig::default(),
            redis_url: None,
        }
    }
}

impl Config {
    /// A configuration with every default except the public URL and issuer.
    pub fn new(public_url: impl Into<String>, issuer: impl Into<String>) -> Self {
        Self {
            public_url: public_url.into(),
            issuer: issuer.into(),
            ..Self::default()
        }
    }

    /// Sets the JWKS URI (skips discovery).
    #[must_use]
    pub fn with_jwks_uri(mut self, uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(uri.into());
        self
    }

    /// Sets the accepted audiences.
    #[must_use]
    pub fn with_audiences(
        mut self,
        audiences: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.audiences = audiences.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the advertised authorization servers.
    #[must_use]
    pub fn with_authorization_servers(
        mut self,
        servers: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.authorization_servers = servers.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the advertised scopes.
    #[must_use]
    pub fn with_scopes_supported(
        mut self,
        scopes: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.scopes_supported = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the scopes every MCP request needs.
    #[must_use]
    pub fn with_required_scopes(
        mut self,
        scopes: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.required_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the extra scopes a tool needs (replaces that tool's entry).
    #[must_use]
    pub fn with_tool_scope(
        mut self,
        tool: impl Into<String>,
        scopes: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.tool_scopes
            .insert(tool.into(), scopes.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the allowed origins.
    #[must_use]
    pub fn with_allowed_origins(
        mut self,
        origins: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.allowed_origins = origins.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the session cookie settings.
    #[must_use]
    pub fn with_cookie(mut self, cookie: CookieConfig) -> Self {
        self.cookie = cookie;
        self
    }

    /// Chooses stateless Streamable HTTP.
    #[must_use]
    pub fn with_stateless(mut self, stateless: bool) -> Self {
        self.stateless = stateless;
        self
    }

    /// Turns authorization off (conformance testing only).
    #[must_use]
    pub fn with_no_auth(mut self, no_auth: bool) -> Self {
        self.no_auth = no_auth;
        self
    }

    /// Verifies tokens by introspection at `settings.endpoint`.
    #[must_use]
    pub fn with_introspection(mut self, settings: IntrospectionSettings) -> Self {
        self.introspection = Some(settings);
        self
    }

    /// Sets the clock leeway.
    #[must_use]
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Sets the JWKS cache tuning.
    #[must_use]
    pub fn with_jwks_config(mut self, jwks: JwksConfig) -> Self {
        self.jwks = jwks;
        self
    }

    /// Sets the capacity of the verified-token cache (0 turns it off).
    #[must_use]
    pub fn with_token_cache_capacity(mut self, capacity: usize) -> Self {
        self.token_cache_capacity = capacity;
        self
    }

    /// Sets how long a client may take to send a request head.
    #[must_use]
    pub fn with_header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// Sets how long a connection may stay open with no request in flight.
    #[must_use]
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sets how many event streams one principal may hold open.
    #[must_use]
    pub fn with_max_streams_per_principal(mut self, limit: usize) -> Self {
        self.max_streams_per_principal = limit;
        self
    }

    /// Sets how many event streams may be open at once over all principals.
    #[must_use]
    pub fn with_max_streams(mut self, limit: usize) -> Self {
        self.max_streams = limit;
        self
    }

    /// Sets how many Streamable HTTP sessions one principal may hold.
    #[must_use]
    pub fn with_max_mcp_sessions_per_principal(mut self, limit: usize) -> Self {
        self.max_mcp_sessions_per_principal = limit;
        self
    }

    /// Sets how many Streamable HTTP sessions may be live over all principals.
    #[must_use]
    pub fn with_max_mcp_sessions(mut self, limit: usize) -> Self {
        self.max_mcp_sessions = limit;
        self
    }

    /// Sets how long a Streamable HTTP session may go without a message.
    #[must_use]
    pub fn with_mcp_session_idle_timeout(mut self, timeout: Duration) -> Self {
        self.mcp_session_idle_timeout = timeout;
        self
    }

    /// Sets the DPoP settings.
    #[must_use]
    pub fn with_dpop(mut self, dpop: DpopConfig) -> Self {
        self.dpop = dpop;
        self
    }

    /// Checks every setting and resolves the defaults that depend on others.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first wrong setting.
    pub fn validate(&self) -> Result<ValidatedConfig, ConfigError> {
        let public_url = parse_http_url("public-url", &self.public_url)?;
        if public_url.path() != "/"
            || public_url.query().is_some()
            || public_url.fragment().is_some()
        {
            return Err(ConfigError::new(
                "public-url",
                "must be an origin without path, query or fragment (e.g. http://localhost:3001)",
            ));
        }
        let issuer = parse_http_url("issuer", &self.issuer)?;
        if issuer.query().is_some() || issuer.fragment().is_some() {
            return Err(ConfigError::new(
                "issuer",
                "must not have a query or fragment",
            ));
        }
        let jwks_uri = self
            .jwks_uri
            .as_deref()
            .map(|uri| parse_http_url("jwks-uri", uri))
            .transpose()?;
        for server in &self.authorization_servers {
            parse_http_url("authorization-server", server)?;
        }
        let introspection_endpoint = match &self.introspection {
            None => None,
            Some(settings) => Some(settings.check()?),
        };
        check_tokens("scopes-supported", &self.scopes_supported)?;
        check_tokens("required-scopes", &self.required_scopes)?;
        for (tool, scopes) in &self.tool_scopes {
            if tool.is_empty() || scopes.is_empty() {
                return Err(ConfigError::new(
                    "tool-scope",
                    "expected TOOL=SCOPE[ SCOPE...]",
                ));
            }
            check_tokens("tool-scope", scopes)?;
        }
        for audience in &self.audiences {
            if audience.trim().is_empty() {
                return Err(ConfigError::new("audience", "empty audience"));
            }
        }
        if self.cookie.name.is_empty()
            || !self
                .cookie
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(ConfigError::new(
                "cookie-name",
                "must be non-empty and use only letters, digits, '_' and '-'",
            ));
        }
        if self.no_auth && !self.listen.ip().is_loopback() {
            return Err(ConfigError::new(
                "no-auth",
                format!(
                    "refused with the non-loopback listen address {}: without authorization \
                     anyone who can reach the port can call every tool; listen on 127.0.0.1 or [::1]",
                    self.listen
                ),
            ));
        }
        if self.header_read_timeout.is_zero() {
            return Err(ConfigError::new("header-read-timeout", "must be positive"));
        }
        if self.idle_timeout.is_zero() {
            return Err(ConfigError::new("idle-timeout", "must be positive"));
        }
        if self.cookie.max_per_principal == 0 {
            return Err(ConfigError::new(
                "cookie-max-per-principal",
                "must be at least 1",
            ));
        }
        if self.cookie.max_sessions == 0 {
            return Err(ConfigError::new(
                "cookie-max-sessions",
                "must be at least 1",
            ));
        }
        if self.cookie.max_age.is_zero() {
            return Err(ConfigError::new("cookie-max-age", "must be positive"));
        }
        if self.leeway > Duration::from_secs(300) {
            return Err(ConfigError::new("leeway", "at most 300 seconds"));
        }
        if self.max_streams_per_principal == 0 {
            return Err(ConfigError::new(
                "max-streams-per-principal",
                "must be at least 1",
            ));
        }
        if self.max_streams == 0 {
            return Err(ConfigError::new("max-streams", "must be at least 1"));
        }
        if self.max_mcp_sessions_per_principal == 0 {
            return Err(ConfigError::new(
                "max-mcp-sessions-per-principal",
                "must be at least 1",
            ));
        }
        if self.max_mcp_sessions == 0 {
            return Err(ConfigError::new("max-mcp-sessions", "must be at least 1"));
        }
        if self.mcp_session_idle_timeout.is_zero() {
            return Err(ConfigError::new(
                "mcp-session-idle-timeout",
                "must be positive",
            ));
        }
        if self.max_token_bytes < 64 {
            return Err(ConfigError::new("max-token-bytes", "at least 64"));
        }
        for alg in &self.dpop.algorithms {
            if proof_algorithm(alg).is_none() {
                return Err(ConfigError::new(
                    "dpop-algs",
                    format!("{alg:?} is not an asymmetric JWS algorithm"),
                ));
            }
        }
        if self.dpop.policy != DpopPolicy::Off && self.dpop.algorithms.is_empty() {
            return Err(ConfigError::new("dpop-algs", "at least one algorithm"));
        }
        if self.dpop.iat_window.is_zero() || self.dpop.iat_window > Duration::from_secs(3600) {
            return Err(ConfigError::new(
                "dpop-iat-window",
                "between 1 and 3600 seconds",
            ));
        }
        if self.dpop.replay_capacity == 0 {
            return Err(ConfigError::new(
                "dpop-replay-capacity",
                "must be at least 1",
            ));
        }
        if self.dpop.replay_per_principal == 0 {
            return Err(ConfigError::new(
                "dpop-replay-per-principal",
                "must be at least 1",
            ));
        }
        let jwks = &self.jwks;
        if jwks.min_ttl > jwks.max_ttl {
            return Err(ConfigError::new("jwks-min-ttl", "greater than the maximum"));
        }

        let mcp_url = public_url.join("mcp").expect("relative path");
        let sse_url = public_url.join("sse").expect("relative path");
        let canonical = |url: &Url, setting: &'static str| {
            wellknown::canonical_resource(url).map_err(|e| ConfigError::new(setting, e.to_string()))
        };
        let resource_mcp = canonical(&mcp_url, "public-url")?;
        let resource_sse = canonical(&sse_url, "public-url")?;
        let resource_root = canonical(&public_url, "public-url")?;

        let audiences = if self.audiences.is_empty() {
            vec![
                resource_mcp.clone(),
                resource_sse.clone(),
                resource_root.clone(),
            ]
        } else {
            self.audiences
                .iter()
                .map(|a| a.trim().to_string())
                .collect()
        };
        let authorization_servers = if self.authorization_servers.is_empty() {
            vec![self.issuer.clone()]
        } else {
            self.authorization_servers.clone()
        };
        let public_origin = public_url.origin().ascii_serialization();
        let allowed_origins = if self.allowed_origins.is_empty() {
            vec![public_origin.clone()]
        } else {
            let mut origins = Vec::new();
            for origin in &self.allowed_origins {
                origins.push(normalize_origin(origin)?);
            }
            origins
        };
        let host = public_url
            .host_str()
            .ok_or_else(|| ConfigError::new("public-url", "has no host"))?
            .to_ascii_lowercase();
        let port = public_url.port_or_known_default().unwrap_or(80);
        let mut allowed_hosts = vec![format!("{host}:{port}")];
        if public_url.port().is_none() {
            allowed_hosts.push(host.clone());
        }
        if let Some(redis_url) = &self.redis_url {
            let url = Url::parse(redis_url)
                .map_err(|e| ConfigError::new("redis-url", format!("not a URL: {e}")))?;
            if !matches!(url.scheme(), "redis" | "rediss") {
                return Err(ConfigError::new(
                    "redis-url",
                    "must be redis://host:port[/db] or rediss://…",
                ));
            }
            redis::Client::open(redis_url.as_str())
                .map_err(|e| ConfigError::new("redis-url", format!("refused: {:?}", e.kind())))?;
        }
        let tool_scopes = self
            .tool_scopes
            .iter()
            .map(|(tool, scopes)| (tool.clone(), Scopes::parse(&scopes.join(" "))))
            .collect();

        let secure_cookie = self.cookie.secure.unwrap_or(public_url.scheme() == "https");
        Ok(ValidatedConfig {
            secure_cookie,
            // `__Host-` (RFC 6265bis §4.1.3.2) needs `Secure`, `Path=/` and no `Domain`:
            // the cookie then cannot be set or overwritten by another host or port
            // without TLS. Without `Secure` (plain http) no prefix applies.
            cookie_name: if secure_cookie {
                format!("__Host-{}", self.cookie.name)
            } else {
                self.cookie.name.clone()
            },
            public_url,
            issuer: self.issuer.clone(),
            issuer_url: issuer,
            jwks_uri,
            introspection_endpoint,
            audiences,
            authorization_servers,
            scopes_supported: Scopes::parse(&self.scopes_supported.join(" ")),
            required_scopes: Scopes::parse(&self.required_scopes.join(" ")),
            tool_scopes,
            allowed_origins,
            allowed_hosts,
            resource_mcp,
            resource_sse,
            resource_root,
            raw: self.clone(),
        })
    }
}

/// Token introspection settings ([RFC 7662](https://www.rfc-editor.org/rfc/rfc7662)).
#[derive(Debug, Clone)]
pub struct IntrospectionSettings {
    /// The authorization server's introspection endpoint.
    pub endpoint: String,
    /// This resource server's client id there (empty: no client authentication).
    pub client_id: String,
    /// Its client secret (`Debug` shows `[redacted]`).
    pub client_secret: ClientSecret,
    /// Longest an active answer is reused; a revocation is seen within it.
    pub cache_ceiling: Duration,
    /// Most cached answers.
    pub cache_capacity: usize,
    /// Longest one introspection exchange may take; past it the request gets 503.
    pub timeout: Duration,
}

impl IntrospectionSettings {
    /// Settings for `endpoint` with client credentials and the default cache and
    /// timeout.
    pub fn new(
        endpoint: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: ClientSecret,
    ) -> Self {
        Self {
            endpoint: endpoint.into(),
            client_id: client_id.into(),
            client_secret,
            cache_ceiling: crate::auth::introspection::DEFAULT_CACHE_CEILING,
            cache_capacity: crate::auth::introspection::DEFAULT_CACHE_CAPACITY,
            timeout: crate::auth::introspection::DEFAULT_TIMEOUT,
        }
    }

    fn check(&self) -> Result<Url, ConfigError> {
        let endpoint = parse_http_url("introspection-endpoint", &self.endpoint)?;
        // No client id: no client authentication, for endpoints that take none (Dex's).
        // A client id needs its secret, and a secret without a client id is a mistake.
        let no_id = self.client_id.trim().is_empty();
        let no_secret = self.client_secret.secret().is_empty();
        if no_id && !no_secret {
            return Err(ConfigError::new(
                "introspection-client-id",
                "needed with --introspection-client-secret",
            ));
        }
        if !no_id && no_secret {
            return Err(ConfigError::new(
                "introspection-client-secret",
                "needed with --introspection-client-id",
            ));
        }
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(60) {
            return Err(ConfigError::new(
                "introspection-timeout-ms",
                "between 1 ms and 60 s",
            ));
        }
        if self.cache_ceiling > Duration::from_secs(3600) {
            return Err(ConfigError::new(
                "introspection-cache-ceiling",
                "at most 3600 seconds",
            ));
        }
        Ok(endpoint)
    }
}

/// A configuration whose settings were checked and whose defaults were resolved.
#[derive(Debug, Clone)]
pub struct ValidatedConfig {
    /// The public base URL.
    pub public_url: Url,
    /// Expected `iss`, exactly as configured.
    pub issuer: String,
    /// The issuer as a URL (for discovery).
    pub issuer_url: Url,
    /// Configured JWKS URI, if any.
    pub jwks_uri: Option<Url>,
    /// The introspection endpoint, when tokens are introspected.
    pub introspection_endpoint: Option<Url>,
    /// Accepted audiences.
    pub audiences: Vec<String>,
    /// Advertised authorization servers.
    pub authorization_servers: Vec<String>,
    /// Advertised scopes.
    pub scopes_supported: Scopes,
    /// Scopes every MCP request needs.
    pub required_scopes: Scopes,
    /// Extra scopes per tool.
    pub tool_scopes: BTreeMap<String, Scopes>,
    /// Allowed origins, serialised (`scheme://host[:port]`).
    pub allowed_origins: Vec<String>,
    /// Allowed `Host` header values (lower case).
    pub allowed_hosts: Vec<String>,
    /// Canonical resource URI of `/mcp`.
    pub resource_mcp: String,
    /// Canonical resource URI of `/sse`.
    pub resource_sse: String,
    /// Canonical resource URI of the root.
    pub resource_root: String,
    /// The session cookie's name: the configured one, with the `__Host-` prefix when
    /// the cookie is `Secure`.
    pub cookie_name: String,
    /// Whether cookies carry `Secure`.
    pub secure_cookie: bool,
    /// The settings as given.
    pub raw: Config,
}

impl ValidatedConfig {
    /// All scopes needed to call `tool`: the required scopes plus the tool's own.
    pub fn scopes_for_tool(&self, tool: &str) -> Scopes {
        match self.tool_scopes.get(tool) {
            Some(extra) => self.required_scopes.union(extra),
            None => self.required_scopes.clone(),
        }
    }

    /// The PRM URL describing the resource served under `path` (`""` for the root).
    pub fn prm_url(&self, path: &str) -> String {
        let base = self.public_url.origin().ascii_serialization();
        if path.is_empty() {
            format!("{base}/.well-known/oauth-protected-resource")
        } else {
            format!("{base}/.well-known/oauth-protected-resource/{path}")
        }
    }
}

fn parse_http_url(setting: &'static str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value.trim())
        .map_err(|e| ConfigError::new(setting, format!("not a URL ({e})")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(ConfigError::new(setting, "must be an http or https URL"));
    }
    if url.host_str().is_none() {
        return Err(ConfigError::new(setting, "has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::new(setting, "must not contain credentials"));
    }
    Ok(url)
}

fn check_tokens(setting: &'static str, scopes: &[String]) -> Result<(), ConfigError> {
    for scope in scopes {
        // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
        let valid = !scope.is_empty()
            && scope
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
        if !valid {
            return Err(ConfigError::new(
                setting,
                format!("invalid scope token {scope:?}"),
            ));
        }
    }
    Ok(())
}

fn normalize_origin(origin: &str) -> Result<String, ConfigError> {
    let trimmed = origin.trim().trim_end_matches('/');
    if trimmed == "null" {
        return Err(ConfigError::new(
            "allowed-origin",
            "the opaque origin `null` cannot be allowed",
        ));
    }
    let url = parse_http_url("allowed-origin", trimmed)?;
    if url.path() != "/" || url.query().is_some() {
        return Err(ConfigError::new(
            "allowed-origin",
            format!("{origin:?} is not an origin"),
        ));
    }
    Ok(url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_resolve() {
        let config = Config::default()
            .with_tool_scope("admin_status", ["mcp:admin"])
            .validate()
            .unwrap();
        assert_eq!(
            config.audiences,
            vec![
                "http://localhost:3001/mcp",
                "http://localhost:3001/sse",
                "http://localhost:3001"
            ]
        );
        assert_eq!(config.authorization_servers, vec![DEFAULT_ISSUER]);
        assert_eq!(config.allowed_origins, vec!["http://localhost:3001"]);
        assert_eq!(config.allowed_hosts, vec!["localhost:3001"]);
        assert!(!config.secure_cookie);
        assert_eq!(config.cookie_name, "mcp_session");
        assert_eq!(
            config.scopes_for_tool("admin_status").to_string(),
            "mcp:tools mcp:admin"
        );
        assert_eq!(
            config.scopes_for_tool("calculator").to_string(),
            "mcp:tools"
        );
        assert_eq!(
            config.prm_url("mcp"),
            "http://localhost:3001/.well-known/oauth-protected-resource/mcp"
        );
    }

    #[test]
    fn errors_name_the_setting() {
        let err = Config::new("not a url", DEFAULT_ISSUER)
            .validate()
            .unwrap_err();
        assert_eq!(err.setting, "public-url");
        assert!(err.to_string().starts_with("invalid setting `public-url`"));
        let err = Config::new("http://h/path", DEFAULT_ISSUER)
            .validate()
            .unwrap_err();
        assert_eq!(err.setting, "public-url");
        let err = Config::new(DEFAULT_PUBLIC_URL, "ftp://x")
            .validate()
            .unwrap_err();
        assert_eq!(err.setting, "issuer");
        let err = Config::default()
            .with_required_scopes(["bad\"scope"])
            .validate()
            .unwrap_err();
        assert_eq!(err.setting, "required-scopes");
        let err = Config::default()
            .with_allowed_origins(["http://a/b"])
            .validate()
            .unwrap_err();
        assert_eq!(err.setting, "allowed-origin");
        let err = Config::default()
            .with_jwks_uri("nope")
            .validate()
            .unwrap_err();
        assert_eq!(err.setting, "jwks-uri");
    }

    #[test]
    fn no_auth_only_on_loopback() {
        let mut config = Config {
            no_auth: true,
            ..Config::default()
        };
        assert!(config.validate().is_ok());
        config.listen = "[::1]:3001".parse().unwrap();
        assert!(config.validate().is_ok());
        config.listen = "0.0.0.0:3001".parse().unwrap();
        let err = config.validate().unwrap_err();
        assert_eq!(err.setting, "no-auth");
        assert!(err.to_string().contains("0.0.0.0:3001"), "{err}");
    }

    #[test]
    fn https_public_url_means_secure_cookie_and_default_port_host() {
        let config = Config::new("https://mcp.example.com", DEFAULT_ISSUER)
            .validate()
            .unwrap();
        assert!(config.secure_cookie);
        assert_eq!(config.cookie_name, "__Host-mcp_session");
        assert_eq!(
            config.allowed_hosts,
            vec!["mcp.example.com:443", "mcp.example.com"]
        );
        assert_eq!(config.resource_mcp, "https://mcp.example.com/mcp");
    }
}
