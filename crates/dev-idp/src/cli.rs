//! Command-line interface of the `dev-idp` binary. Every flag can also be set through the
//! environment variable shown in `--help`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use clap::builder::BoolishValueParser;

use crate::config::{ConfigError, DexConfig};
use crate::duration::parse_duration;
use crate::server::DevIdp;
use crate::settings::{Features, IdpConfig};

/// A local, Dex-compatible OAuth 2.0 / OpenID Connect authorization server.
///
/// Reads the same dex-config.yaml as Dex and by default behaves like Dex. The switches
/// turn on what Dex lacks, for experiments with MCP clients.
#[derive(Debug, Clone, Parser)]
#[command(name = "dev-idp", version)]
pub struct Cli {
    /// Dex configuration file (issuer, staticClients, staticPasswords, web.allowedOrigins).
    #[arg(long, env = "DEV_IDP_CONFIG", default_value = "dex-config.yaml")]
    pub config: PathBuf,

    /// Override the issuer URL of the configuration file.
    #[arg(long, env = "DEV_IDP_ISSUER")]
    pub issuer: Option<String>,

    /// Address to listen on [default: 127.0.0.1 and the issuer's port].
    #[arg(long, env = "DEV_IDP_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// Turn on everything an MCP client expects: RFC 8414 metadata, resource → aud,
    /// registration, S256 required, openid optional, iss in responses, and the extra
    /// scopes mcp:tools,mcp:admin.
    #[arg(long, env = "DEV_IDP_MCP_READY", value_parser = BoolishValueParser::new())]
    pub mcp_ready: bool,

    /// Serve RFC 8414 metadata at /.well-known/oauth-authorization-server{issuer path}.
    #[arg(long, env = "DEV_IDP_RFC8414", value_parser = BoolishValueParser::new())]
    pub rfc8414: bool,

    /// Let an RFC 8707 `resource` parameter set the access token's `aud`.
    #[arg(long, env = "DEV_IDP_RESOURCE_AUDIENCE", value_parser = BoolishValueParser::new())]
    pub resource_audience: bool,

    /// Open RFC 7591 dynamic client registration at {issuer}/register.
    #[arg(long, env = "DEV_IDP_REGISTRATION", value_parser = BoolishValueParser::new())]
    pub registration: bool,

    /// Refuse authorization requests without a PKCE S256 challenge.
    #[arg(long, env = "DEV_IDP_REQUIRE_S256", value_parser = BoolishValueParser::new())]
    pub require_s256: bool,

    /// Do not require the `openid` scope.
    #[arg(long, env = "DEV_IDP_OPENID_OPTIONAL", value_parser = BoolishValueParser::new())]
    pub openid_optional: bool,

    /// Add `iss` to authorization responses (RFC 9207).
    #[arg(long, env = "DEV_IDP_ISSUER_IN_RESPONSE", value_parser = BoolishValueParser::new())]
    pub issuer_in_response: bool,

    /// Scopes accepted beyond Dex's own, comma-separated; access tokens then follow
    /// RFC 9068 (typ at+jwt, scope, client_id, jti).
    #[arg(long, env = "DEV_IDP_EXTRA_SCOPES", value_delimiter = ',')]
    pub extra_scopes: Vec<String>,

    /// RFC 9449 DPoP: advertise it, check token-endpoint proofs, issue DPoP-bound access
    /// tokens and bind public clients' refresh tokens (on with --mcp-ready).
    #[arg(long, env = "DEV_IDP_DPOP", value_parser = BoolishValueParser::new())]
    pub dpop: bool,

    /// Require a server nonce in DPoP proofs (RFC 9449 §8); implies --dpop.
    #[arg(long, env = "DEV_IDP_DPOP_NONCE", value_parser = BoolishValueParser::new())]
    pub dpop_nonce: bool,

    /// Accept the client_credentials grant (RFC 6749 §4.4) from confidential clients.
    #[arg(long, env = "DEV_IDP_CLIENT_CREDENTIALS", value_parser = BoolishValueParser::new())]
    pub client_credentials: bool,

    /// Let clients registered with keys (`jwks` or `jwksURI` in staticClients, a dev-idp
    /// extension) authenticate with signed JWT assertions (private_key_jwt, RFC 7523).
    #[arg(long, env = "DEV_IDP_PRIVATE_KEY_JWT", value_parser = BoolishValueParser::new())]
    pub private_key_jwt: bool,

    /// Act as the enterprise identity provider: token exchange (RFC 8693) turns an ID
    /// token this server issued into an ID-JAG for the authorization server named by
    /// `audience` and the MCP server named by `resource`.
    #[arg(long, env = "DEV_IDP_ID_JAG", value_parser = BoolishValueParser::new())]
    pub id_jag: bool,

    /// Act as an MCP authorization server that trusts this issuer: the JWT bearer grant
    /// (RFC 7523) accepts its ID-JAGs and workload JWTs. ISSUER or ISSUER=JWKS_URI
    /// (without a JWKS URI, the one of ISSUER's OpenID discovery document); repeatable.
    #[arg(
        long,
        env = "DEV_IDP_TRUSTED_ISSUER",
        value_delimiter = ',',
        value_name = "ISSUER[=JWKS_URI]"
    )]
    pub trusted_issuer: Vec<crate::settings::TrustedIssuer>,

    /// Signing key rotation period, e.g. 6h, 10m [default: expiry.signingKeys or 6h].
    #[arg(long, env = "DEV_IDP_KEY_ROTATION", value_parser = parse_duration)]
    pub key_rotation: Option<Duration>,

    /// Lifetime of ID and access tokens, e.g. 24h, 5m [default: expiry.idTokens or 24h].
    #[arg(long, env = "DEV_IDP_TOKEN_LIFETIME", value_parser = parse_duration)]
    pub token_lifetime: Option<Duration>,

    /// Issue opaque access tokens instead of JWTs: a resource server must then ask
    /// {issuer}/token/introspect (RFC 7662) whether a token is active.
    #[arg(long, env = "DEV_IDP_OPAQUE_TOKENS", value_parser = BoolishValueParser::new())]
    pub opaque_tokens: bool,

    /// Log this static user in without showing the login form (for headless runs).
    #[arg(long, env = "DEV_IDP_AUTO_LOGIN", value_name = "EMAIL")]
    pub auto_login: Option<String>,
}

impl Cli {
    /// The server configuration these flags describe.
    pub fn idp_config(&self) -> anyhow::Result<IdpConfig> {
        let dex = DexConfig::load(&self.config)?;
        let mut config = IdpConfig::from_dex(dex)?;
        if let Some(issuer) = &self.issuer {
            config = config.with_issuer(issuer)?;
        }
        let mut features = if self.mcp_ready {
            Features::mcp_ready()
        } else {
            Features::default()
        };
        features.rfc8414_metadata |= self.rfc8414;
        features.resource_audience |= self.resource_audience;
        features.registration |= self.registration;
        features.require_s256 |= self.require_s256;
        features.openid_optional |= self.openid_optional;
        features.issuer_in_response |= self.issuer_in_response;
        features.dpop_nonce |= self.dpop_nonce;
        features.dpop |= self.dpop || self.dpop_nonce;
        features.client_credentials |= self.client_credentials;
        features.private_key_jwt |= self.private_key_jwt;
        features.id_jag |= self.id_jag;
        for trusted in &self.trusted_issuer {
            if !features.trusted_issuers.contains(trusted) {
                features.trusted_issuers.push(trusted.clone());
            }
        }
        for scope in &self.extra_scopes {
            let scope = scope.trim();
            if !scope.is_empty() && !features.extra_scopes.iter().any(|s| s == scope) {
                features.extra_scopes.push(scope.to_owned());
            }
        }
        config = config.with_features(features);
        if let Some(period) = self.key_rotation {
            config = config.with_key_rotation(period);
        }
        if let Some(lifetime) = self.token_lifetime {
            anyhow::ensure!(!lifetime.is_zero(), "--token-lifetime must be positive");
            config = config.with_token_lifetime(lifetime);
        }
        config.opaque_tokens = self.opaque_tokens;
        if let Some(email) = &self.auto_login {
            config = config.with_auto_login(email)?;
        }
        Ok(config)
    }

    /// The address to listen on.
    pub fn listen_addr(&self, config: &IdpConfig) -> SocketAddr {
        self.listen.unwrap_or_else(|| {
            let port = config.issuer.port_or_known_default().unwrap_or(5556);
            SocketAddr::from(([127, 0, 0, 1], port))
        })
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// An error and its causes as one line, each cause once: a cause whose text its
/// predecessor already contains is left out.
pub fn one_sentence(error: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Runs the server until Ctrl-C or SIGTERM.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.idp_config().map_err(|e| {
        // A read error names the file already.
        if matches!(
            e.downcast_ref::<ConfigError>(),
            Some(ConfigError::Read { .. })
        ) {
            e
        } else {
            e.context(cli.config.display().to_string())
        }
    })?;
    let addr = cli.listen_addr(&config);
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {addr} ({e}); choose another address with --listen or DEV_IDP_LISTEN"
        )
    })?;
    let idp = DevIdp::new(config)?;
    let config = idp.config();
    tracing::info!(
        issuer = %config.issuer_str(),
        listen = %addr,
        "dev-idp ready: {}/.well-known/openid-configuration; {}{}",
        config.issuer_str(),
        config.features.describe(),
        config
            .auto_login
            .as_deref()
            .map(|u| format!("; logs {u} in without a form (--auto-login)"))
            .unwrap_or_default()
    );
    idp.serve_with_shutdown(listener, shutdown_signal()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_combine_with_mcp_ready() {
        let cli = Cli::parse_from([
            "dev-idp",
            "--mcp-ready",
            "--extra-scopes",
            "mcp:tools,files:read",
            "--key-rotation",
            "10m",
        ]);
        assert!(cli.mcp_ready);
        assert_eq!(cli.extra_scopes, ["mcp:tools", "files:read"]);
        assert_eq!(cli.key_rotation, Some(Duration::from_secs(600)));
    }

    #[test]
    fn opaque_tokens_reach_the_configuration() {
        let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../../dex-config.yaml");
        let on = Cli::parse_from(["dev-idp", "--config", config, "--opaque-tokens"]);
        assert!(on.idp_config().unwrap().opaque_tokens);
        let off = Cli::parse_from(["dev-idp", "--config", config]);
        assert!(!off.idp_config().unwrap().opaque_tokens);
    }

    #[test]
    fn errors_read_as_one_sentence_with_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let error = anyhow::Error::new(ConfigError::Read {
            path: "x.yaml".into(),
            source: io,
        })
        .context("starting");
        assert_eq!(
            one_sentence(&error),
            "starting: cannot read x.yaml: no such file"
        );
    }

    #[test]
    fn enterprise_switches_reach_the_features() {
        let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../../dex-config.yaml");
        let cli = Cli::parse_from([
            "dev-idp",
            "--config",
            config,
            "--id-jag",
            "--private-key-jwt",
            "--trusted-issuer",
            "http://a.test,http://b.test=http://b.test/keys",
        ]);
        let features = cli.idp_config().unwrap().features;
        assert!(features.id_jag && features.private_key_jwt);
        assert_eq!(features.trusted_issuers.len(), 2);
        assert_eq!(
            features.trusted_issuers[1].jwks_uri.as_deref(),
            Some("http://b.test/keys")
        );
        assert!(Cli::try_parse_from(["dev-idp", "--trusted-issuer", "not-a-url"]).is_err());
    }

    #[test]
    fn bad_duration_is_a_parse_error() {
        assert!(Cli::try_parse_from(["dev-idp", "--key-rotation", "soon"]).is_err());
    }
}
