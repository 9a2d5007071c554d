//! Command line of the `resource-server` binary: every flag also reads an environment
//! variable, and [`run`] serves until Ctrl-C.

use std::{net::SocketAddr, time::Duration};

use clap::Parser;

use mcp_auth_proto::secret::ClientSecret;
use mcp_resource_server::auth::{DpopConfig, DpopPolicy, dpop::DEFAULT_REPLAY_PER_PRINCIPAL};
use mcp_resource_server::config::{
    Config, ConfigError, CookieConfig, DEFAULT_COOKIE_SESSIONS,
    DEFAULT_COOKIE_SESSIONS_PER_PRINCIPAL, DEFAULT_IDLE_TIMEOUT_SECS, DEFAULT_ISSUER,
    DEFAULT_LISTEN, DEFAULT_MAX_MCP_SESSIONS, DEFAULT_MAX_MCP_SESSIONS_PER_PRINCIPAL,
    DEFAULT_MAX_STREAMS, DEFAULT_MAX_STREAMS_PER_PRINCIPAL, DEFAULT_MCP_SESSION_IDLE_SECS,
    IntrospectionSettings,
};

/// MCP server that is only an OAuth 2.0 resource server: it validates access tokens
/// issued by an external authorization server (Dex, or any OIDC/OAuth server).
#[derive(Debug, Clone, Parser)]
#[command(name = "resource-server", version, about, long_about = None)]
pub struct Cli {
    /// Address to listen on.
    #[arg(long, env = "MCP_RS_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Public base URL clients use to reach this server (origin only, no path); by
    /// default derived from `--listen`: `http://localhost:<port>` for a loopback or
    /// unspecified address, else `http://<address>`.
    // The `--help` text is given apart: clap prints doc comments as written, backticks
    // included, and rustdoc would read the bare placeholders as HTML tags.
    #[arg(
        long,
        env = "MCP_RS_PUBLIC_URL",
        help = "Public base URL clients use to reach this server (origin only, no path) \
                [default: derived from --listen: http://localhost:<port> for a loopback or \
                unspecified address, else http://<address>]"
    )]
    pub public_url: Option<String>,

    /// Expected `iss` of access tokens (exact match).
    #[arg(long, env = "MCP_RS_ISSUER", default_value = DEFAULT_ISSUER)]
    pub issuer: String,

    /// JWKS URI; when absent it is discovered from the issuer's OIDC or RFC 8414 metadata.
    #[arg(long, env = "MCP_RS_JWKS_URI")]
    pub jwks_uri: Option<String>,

    /// Accepted `aud` values, comma-separated [default: this server's canonical resource
    /// URIs]. With Dex, give the resource server's Dex client id.
    #[arg(long = "audience", env = "MCP_RS_AUDIENCES", value_delimiter = ',')]
    pub audiences: Vec<String>,

    /// Authorization servers advertised in the Protected Resource Metadata,
    /// comma-separated [default: the issuer].
    #[arg(
        long = "authorization-server",
        env = "MCP_RS_AUTHORIZATION_SERVERS",
        value_delimiter = ','
    )]
    pub authorization_servers: Vec<String>,

    /// Scopes advertised in the Protected Resource Metadata, comma-separated.
    #[arg(
        long,
        env = "MCP_RS_SCOPES_SUPPORTED",
        value_delimiter = ',',
        default_value = "mcp:tools,mcp:admin"
    )]
    pub scopes_supported: Vec<String>,

    /// Scopes every MCP request needs, comma-separated ("" for none, e.g. with Dex).
    #[arg(
        long,
        env = "MCP_RS_REQUIRED_SCOPES",
        value_delimiter = ',',
        default_value = "mcp:tools"
    )]
    pub required_scopes: Vec<String>,

    /// Extra scope a tool needs, as TOOL=SCOPE[+SCOPE...]; repeatable or comma-separated.
    #[arg(
        long = "tool-scope",
        env = "MCP_RS_TOOL_SCOPES",
        value_delimiter = ',',
        default_value = "admin_status=mcp:admin"
    )]
    pub tool_scopes: Vec<String>,

    /// Origins allowed to call this server, comma-separated [default: the public URL's origin].
    #[arg(
        long = "allowed-origin",
        env = "MCP_RS_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,

    /// Name of the session cookie of the legacy SSE transport (prefixed `__Host-` when
    /// the cookie is `Secure`).
    #[arg(long, env = "MCP_RS_COOKIE_NAME", default_value = "mcp_session")]
    pub cookie_name: String,

    /// Longest cookie session, in seconds (it never outlives the token either).
    #[arg(long, env = "MCP_RS_COOKIE_MAX_AGE", default_value_t = 3600)]
    pub cookie_max_age: u64,

    /// Most cookie sessions one principal holds; opening one more ends its oldest.
    #[arg(long, env = "MCP_RS_COOKIE_MAX_PER_PRINCIPAL", default_value_t = DEFAULT_COOKIE_SESSIONS_PER_PRINCIPAL)]
    pub cookie_max_per_principal: usize,

    /// Most cookie sessions held overall; past it, `POST /session` is answered 503.
    #[arg(long, env = "MCP_RS_COOKIE_MAX_SESSIONS", default_value_t = DEFAULT_COOKIE_SESSIONS)]
    pub cookie_max_sessions: usize,

    /// Force the cookie's `Secure` attribute [default: on when the public URL is https].
    #[arg(long, env = "MCP_RS_COOKIE_SECURE")]
    pub cookie_secure: Option<bool>,

    /// Serve Streamable HTTP without sessions (JSON replies).
    #[arg(long, env = "MCP_RS_STATELESS")]
    pub stateless: bool,

    /// Clock leeway for `exp` and `nbf`, in seconds.
    #[arg(long, env = "MCP_RS_LEEWAY", default_value_t = 30)]
    pub leeway: u64,

    /// Minimum seconds between two JWKS refetches caused by unknown key ids.
    #[arg(long, env = "MCP_RS_JWKS_MIN_REFETCH", default_value_t = 30)]
    pub jwks_min_refetch: u64,

    /// Directory of the browser page served under /app/ (skipped if it has no index.html).
    #[arg(long, env = "MCP_RS_WEB_DIR", default_value = "web")]
    pub web_dir: std::path::PathBuf,

    /// Most event streams (legacy `GET /sse` and standalone `GET /mcp` together) one
    /// principal (issuer and subject) may hold open; past it, opening another is
    /// answered 429.
    #[arg(long, env = "MCP_RS_MAX_STREAMS_PER_PRINCIPAL", default_value_t = DEFAULT_MAX_STREAMS_PER_PRINCIPAL)]
    pub max_streams_per_principal: usize,

    /// Most event streams open at once over all principals; past it, opening another
    /// is answered 503.
    #[arg(long, env = "MCP_RS_MAX_STREAMS", default_value_t = DEFAULT_MAX_STREAMS)]
    pub max_streams: usize,

    /// Most live Streamable HTTP sessions one principal may hold; past it, `initialize`
    /// is answered 429 with a JSON-RPC error.
    #[arg(long, env = "MCP_RS_MAX_MCP_SESSIONS_PER_PRINCIPAL", default_value_t = DEFAULT_MAX_MCP_SESSIONS_PER_PRINCIPAL)]
    pub max_mcp_sessions_per_principal: usize,

    /// Most live Streamable HTTP sessions over all principals; past it, `initialize` is
    /// answered 503.
    #[arg(long, env = "MCP_RS_MAX_MCP_SESSIONS", default_value_t = DEFAULT_MAX_MCP_SESSIONS)]
    pub max_mcp_sessions: usize,

    /// Seconds after which a Streamable HTTP session with no message is closed.
    #[arg(long, env = "MCP_RS_MCP_SESSION_IDLE_TIMEOUT", default_value_t = DEFAULT_MCP_SESSION_IDLE_SECS)]
    pub mcp_session_idle_timeout: u64,

    /// Seconds a client may take to send an HTTP/1 request head.
    #[arg(long, env = "MCP_RS_HEADER_READ_TIMEOUT", default_value_t = DEFAULT_IDLE_TIMEOUT_SECS)]
    pub header_read_timeout: u64,

    /// Seconds a connection may stay open with no request in flight, whatever it sent
    /// (nothing, a partial request, the HTTP/2 preface); open event streams count as
    /// requests in flight. Also the HTTP/2 keep-alive ping interval and timeout.
    #[arg(long, env = "MCP_RS_IDLE_TIMEOUT", default_value_t = DEFAULT_IDLE_TIMEOUT_SECS)]
    pub idle_timeout: u64,

    /// DPoP-bound tokens (RFC 9449): `off` (Bearer only), `allowed` (Bearer for
    /// unbound tokens, DPoP with a proof for bound ones) or `required` (DPoP only).
    #[arg(long, env = "MCP_RS_DPOP", default_value = "off")]
    pub dpop: DpopPolicy,

    /// JWS algorithms accepted for DPoP proofs, comma-separated.
    #[arg(
        long,
        env = "MCP_RS_DPOP_ALGS",
        value_delimiter = ',',
        default_value = "ES256,ES384,EdDSA,PS256,RS256"
    )]
    pub dpop_algs: Vec<String>,

    /// How far a DPoP proof's `iat` may lie from now, either way, in seconds.
    #[arg(long, env = "MCP_RS_DPOP_IAT_WINDOW", default_value_t = 300)]
    pub dpop_iat_window: u64,

    /// Require server-issued nonces in DPoP proofs (RFC 9449 §9).
    #[arg(long, env = "MCP_RS_DPOP_NONCE")]
    pub dpop_nonce: bool,

    /// Most DPoP proofs remembered at once to refuse replays (about 40 bytes each).
    #[arg(long, env = "MCP_RS_DPOP_REPLAY_CAPACITY", default_value_t = 1_000_000)]
    pub dpop_replay_capacity: usize,

    /// Most of those from one principal (token issuer and subject): past it, that
    /// principal's requests are answered 429 with `Retry-After`, everyone else's served.
    #[arg(long, env = "MCP_RS_DPOP_REPLAY_PER_PRINCIPAL", default_value_t = DEFAULT_REPLAY_PER_PRINCIPAL)]
    pub dpop_replay_per_principal: usize,
    /// RFC 7662 introspection endpoint: verify every bearer token (opaque or JWT) by
    /// asking the authorization server instead of checking it as a JWT.
    #[arg(long, env = "MCP_RS_INTROSPECTION_ENDPOINT")]
    pub introspection_endpoint: Option<String>,

    /// Client id this server authenticates with at the introspection endpoint (HTTP
    /// Basic); without it no client authentication is sent (Dex's endpoint takes none).
    #[arg(
        long,
        env = "MCP_RS_INTROSPECTION_CLIENT_ID",
        requires = "introspection_endpoint"
    )]
    pub introspection_client_id: Option<String>,

    /// Client secret for the introspection endpoint (prefer the environment variable:
    /// command lines are visible to other users).
    #[arg(
        long,
        env = "MCP_RS_INTROSPECTION_CLIENT_SECRET",
        hide_env_values = true,
        requires = "introspection_endpoint"
    )]
    pub introspection_client_secret: Option<String>,

    /// Longest an active introspection answer is reused, in seconds (also never past
    /// the token's `exp`); a revoked token is refused within this time.
    #[arg(long, env = "MCP_RS_INTROSPECTION_CACHE_CEILING", default_value_t = 60)]
    pub introspection_cache_ceiling: u64,

    /// Most introspection answers kept in the cache.
    #[arg(
        long,
        env = "MCP_RS_INTROSPECTION_CACHE_CAPACITY",
        default_value_t = 10_000
    )]
    pub introspection_cache_capacity: usize,

    /// Longest one introspection exchange may take, in milliseconds; past it the
    /// request is answered 503.
    #[arg(long, env = "MCP_RS_INTROSPECTION_TIMEOUT_MS", default_value_t = 3000)]
    pub introspection_timeout_ms: u64,

    /// Also serve the MCP conformance suite's fixture tools, prompts and resources
    /// (`test_simple_text`, `test://static-text`, ...) beside the demo tools.
    #[arg(long, env = "MCP_RS_CONFORMANCE_FIXTURES")]
    pub conformance_fixtures: bool,

    /// Redis shared by several instances behind a load balancer (`redis://host:port`):
    /// cookie sessions, legacy SSE routing and stream limits then hold across instances.
    /// Without it every piece of state stays in this process.
    #[arg(long, env = "MCP_RS_REDIS_URL")]
    pub redis_url: Option<String>,

    /// DANGER: turn authorization off. Only for the MCP conformance suite's server scenarios.
    #[arg(long, env = "MCP_RS_NO_AUTH")]
    pub no_auth: bool,
}

impl Cli {
    /// `--public-url`, or the one `--listen` implies (see the flag).
    #[must_use]
    pub fn public_url(&self) -> String {
        if let Some(url) = self.public_url.as_deref().filter(|u| !u.trim().is_empty()) {
            return url.to_owned();
        }
        let ip = self.listen.ip();
        if ip.is_loopback() || ip.is_unspecified() {
            format!("http://localhost:{}", self.listen.port())
        } else {
            format!("http://{}", self.listen)
        }
    }

    /// What the demo serves beside the MCP routes: `--web-dir`, `--conformance-fixtures`.
    #[must_use]
    pub fn options(&self) -> crate::DemoOptions {
        crate::DemoOptions {
            web_dir: Some(self.web_dir.clone()),
            conformance_fixtures: self.conformance_fixtures,
        }
    }

    /// The configuration these flags describe (not validated yet).
    ///
    /// # Errors
    /// A [`ConfigError`] for a malformed `--tool-scope`.
    pub fn to_config(&self) -> Result<Config, ConfigError> {
        let mut config = crate::demo_config(self.public_url(), self.issuer.clone());
        config.listen = self.listen;
        config.jwks_uri = self.jwks_uri.clone().filter(|s| !s.trim().is_empty());
        config.audiences = non_empty(&self.audiences);
        config.authorization_servers = non_empty(&self.authorization_servers);
        config.scopes_supported = non_empty(&self.scopes_supported);
        config.required_scopes = non_empty(&self.required_scopes);
        config.tool_scopes.clear();
        for entry in non_empty(&self.tool_scopes) {
            let (tool, scopes) = entry.split_once('=').ok_or_else(|| {
                ConfigError::new("tool-scope", format!("{entry:?} is not TOOL=SCOPE"))
            })?;
            let scopes: Vec<String> = scopes
                .split(['+', ' '])
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            config.tool_scopes.insert(tool.trim().to_string(), scopes);
        }
        config.allowed_origins = non_empty(&self.allowed_origins);
        config.cookie = CookieConfig {
            name: self.cookie_name.clone(),
            secure: self.cookie_secure,
            max_age: Duration::from_secs(self.cookie_max_age),
            max_per_principal: self.cookie_max_per_principal,
            max_sessions: self.cookie_max_sessions,
        };
        config.stateless = self.stateless;
        config.leeway = Duration::from_secs(self.leeway);
        config.jwks.min_refetch_interval = Duration::from_secs(self.jwks_min_refetch);
        config.no_auth = self.no_auth;
        config.introspection = self.introspection_endpoint.as_ref().map(|endpoint| {
            let mut settings = IntrospectionSettings::new(
                endpoint.clone(),
                self.introspection_client_id.clone().unwrap_or_default(),
                ClientSecret::new(self.introspection_client_secret.clone().unwrap_or_default()),
            );
            settings.cache_ceiling = Duration::from_secs(self.introspection_cache_ceiling);
            settings.cache_capacity = self.introspection_cache_capacity;
            settings.timeout = Duration::from_millis(self.introspection_timeout_ms);
            settings
        });
        config.max_streams_per_principal = self.max_streams_per_principal;
        config.max_streams = self.max_streams;
        config.max_mcp_sessions_per_principal = self.max_mcp_sessions_per_principal;
        config.max_mcp_sessions = self.max_mcp_sessions;
        config.mcp_session_idle_timeout = Duration::from_secs(self.mcp_session_idle_timeout);
        config.header_read_timeout = Duration::from_secs(self.header_read_timeout);
        config.idle_timeout = Duration::from_secs(self.idle_timeout);
        config.dpop = DpopConfig {
            policy: self.dpop,
            algorithms: non_empty(&self.dpop_algs),
            iat_window: Duration::from_secs(self.dpop_iat_window),
            nonce: self.dpop_nonce,
            replay_capacity: self.dpop_replay_capacity,
            replay_per_principal: self.dpop_replay_per_principal,
        };
        config.redis_url = self.redis_url.clone().filter(|s| !s.trim().is_empty());
        Ok(config)
    }
}

fn non_empty(values: &[String]) -> Vec<String> {
    values
        .iter()
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect()
}

/// Runs the server until Ctrl-C.
///
/// # Errors
/// A one-line error naming the wrong setting, or a socket failure.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.to_config()?;
    if cli
        .public_url
        .as_deref()
        .is_none_or(|u| u.trim().is_empty())
    {
        tracing::info!(
            "public URL {} (derived from --listen {}; set --public-url if clients reach this server under another name)",
            config.public_url,
            cli.listen
        );
    }
    // Validate before binding, so a wrong setting is reported as such.
    config.validate()?;
    if config.no_auth {
        tracing::warn!(
            "--no-auth: AUTHORIZATION IS TURNED OFF; use this only for conformance testing"
        );
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| {
            anyhow::anyhow!("cannot listen on {} (setting `listen`): {e}", config.listen)
        })?;
    crate::serve_with_shutdown(config, &cli.options(), listener, async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    })
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_url_follows_listen_unless_given() {
        let cli = |args: &[&str]| {
            Cli::parse_from(std::iter::once("resource-server").chain(args.iter().copied()))
        };
        assert_eq!(cli(&[]).public_url(), "http://localhost:3001");
        assert_eq!(
            cli(&["--listen", "127.0.0.1:7104"]).public_url(),
            "http://localhost:7104"
        );
        assert_eq!(
            cli(&["--listen", "0.0.0.0:7104"]).public_url(),
            "http://localhost:7104"
        );
        assert_eq!(
            cli(&["--listen", "10.1.2.3:80"]).public_url(),
            "http://10.1.2.3:80"
        );
        assert_eq!(
            cli(&[
                "--listen",
                "127.0.0.1:7104",
                "--public-url",
                "https://mcp.example"
            ])
            .public_url(),
            "https://mcp.example"
        );
        assert_eq!(
            cli(&["--listen", "127.0.0.1:7104"])
                .to_config()
                .unwrap()
                .public_url,
            "http://localhost:7104"
        );
    }
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn dex_flags() {
        let cli = Cli::parse_from([
            "resource-server",
            "--scopes-supported",
            "openid,audience:server:client_id:mcp-resource-server",
            "--required-scopes",
            "",
            "--audience",
            "mcp-resource-server",
            "--authorization-server",
            "http://localhost:5558",
        ]);
        let config = cli.to_config().unwrap().validate().unwrap();
        assert!(config.required_scopes.is_empty());
        assert_eq!(config.audiences, vec!["mcp-resource-server"]);
        assert_eq!(config.authorization_servers, vec!["http://localhost:5558"]);
        assert_eq!(
            config.scopes_for_tool("admin_status").to_string(),
            "mcp:admin"
        );
    }

    #[test]
    fn dpop_flags() {
        let cli = Cli::parse_from(["resource-server"]);
        assert_eq!(cli.to_config().unwrap().dpop.policy, DpopPolicy::Off);
        let cli = Cli::parse_from([
            "resource-server",
            "--dpop",
            "required",
            "--dpop-algs",
            "ES256,EdDSA",
            "--dpop-nonce",
        ]);
        let config = cli.to_config().unwrap().validate().unwrap();
        assert_eq!(config.raw.dpop.policy, DpopPolicy::Required);
        assert_eq!(config.raw.dpop.algorithms, ["ES256", "EdDSA"]);
        assert!(config.raw.dpop.nonce);
        let cli = Cli::parse_from([
            "resource-server",
            "--dpop",
            "allowed",
            "--dpop-algs",
            "HS256",
        ]);
        assert_eq!(
            cli.to_config().unwrap().validate().unwrap_err().setting,
            "dpop-algs"
        );
        assert!(Cli::try_parse_from(["resource-server", "--dpop", "sometimes"]).is_err());
    }

    #[test]
    fn introspection_flags() {
        let cli = Cli::parse_from([
            "resource-server",
            "--introspection-endpoint",
            "http://127.0.0.1:5556/dex/token/introspect",
            "--introspection-client-id",
            "mcp-resource-server",
            "--introspection-client-secret",
            "s3cret",
            "--introspection-cache-ceiling",
            "5",
        ]);
        let config = cli.to_config().unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "the secret is redacted: {shown}");
        let validated = config.validate().unwrap();
        assert_eq!(
            validated.introspection_endpoint.unwrap().path(),
            "/dex/token/introspect"
        );
        let settings = validated.raw.introspection.unwrap();
        assert_eq!(settings.cache_ceiling, Duration::from_secs(5));
        assert_eq!(settings.timeout, Duration::from_millis(3000));

        let no_secret = Cli::parse_from([
            "resource-server",
            "--introspection-endpoint",
            "http://127.0.0.1:5556/dex/token/introspect",
            "--introspection-client-id",
            "mcp-resource-server",
        ]);
        assert_eq!(
            no_secret
                .to_config()
                .unwrap()
                .validate()
                .unwrap_err()
                .setting,
            "introspection-client-secret"
        );
        assert!(
            Cli::try_parse_from(["resource-server", "--introspection-client-id", "x"]).is_err(),
            "credentials without an endpoint are refused"
        );

        // No credentials at all: no client authentication (Dex's endpoint takes none).
        let none = Cli::parse_from([
            "resource-server",
            "--introspection-endpoint",
            "http://127.0.0.1:5556/dex/token/introspect",
        ]);
        let validated = none.to_config().unwrap().validate().unwrap();
        assert!(validated.raw.introspection.unwrap().client_id.is_empty());
        let secret_only = Cli::parse_from([
            "resource-server",
            "--introspection-endpoint",
            "http://127.0.0.1:5556/dex/token/introspect",
            "--introspection-client-secret",
            "s",
        ]);
        assert_eq!(
            secret_only
                .to_config()
                .unwrap()
                .validate()
                .unwrap_err()
                .setting,
            "introspection-client-id"
        );
    }

    #[test]
    fn bad_tool_scope_names_the_setting() {
        let cli = Cli::parse_from(["resource-server", "--tool-scope", "nonsense"]);
        assert_eq!(cli.to_config().unwrap_err().setting, "tool-scope");
    }

    #[test]
    fn stream_limits() {
        let cli = Cli::parse_from(["resource-server"]);
        let config = cli.to_config().unwrap();
        assert_eq!(config.max_streams_per_principal, 16);
        assert_eq!(config.max_streams, 10_000);
        let cli = Cli::parse_from([
            "resource-server",
            "--max-streams-per-principal",
            "3",
            "--max-streams",
            "50",
        ]);
        let config = cli.to_config().unwrap().validate().unwrap();
        assert_eq!(config.raw.max_streams_per_principal, 3);
        assert_eq!(config.raw.max_streams, 50);
        let cli = Cli::parse_from(["resource-server", "--max-streams-per-principal", "0"]);
        assert_eq!(
            cli.to_config().unwrap().validate().unwrap_err().setting,
            "max-streams-per-principal"
        );
    }
}
