//! The `mcp-client` command line: parse, wire the parts together, print results.
//!
//! The trace of what the client does goes to standard error; results (tool lists, tool
//! results, the cache state) go to standard output. The MCP server URL may come first or
//! last among a command's arguments (the conformance runner appends it), or from `--url`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Writes a line of results to standard output; a closed pipe (`| head`) is not an error.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}
use mcp_auth_proto::{ClientSecret, Scopes};
use serde_json::{Map, Value};
use url::Url;

use crate::audience::{AllowedAudience, AudiencePolicy};
use crate::audit::{AuditOptions, LoginOptions};
use crate::authorize::{AuthorizeOptions, Interaction};
use crate::cache::Cache;
use crate::client_assertion::ClientKey;
use crate::connection::{ConnectionOptions, McpConnection, TransportChoice};
use crate::dpop::{DpopAlg, DpopPolicy};
use crate::grants::{Grant, IdJagConfig};
use crate::identity::TokenAuthMethod;
use crate::mcp::sse::SseAuth;
use crate::registration::ClientConfig;
use crate::trace::{Trace, Verbosity, describe_token, jwt_claims};

/// Try OAuth for MCP against any MCP server: discover, authorize, then list and call tools.
#[derive(Debug, Parser)]
#[command(
    name = "mcp-client",
    version,
    about = "An MCP client that gets authorized (OAuth 2.1 + PKCE) and shows every step",
    after_help = "Examples:\n  mcp-client tools http://localhost:3001/mcp\n  mcp-client call http://localhost:3001/mcp calculator operation=add a=2 b=3\n  mcp-client call weather '{\"location\":\"Paris\"}' http://localhost:3001/mcp\n  mcp-client --transport sse --sse-auth cookie tools http://localhost:3001/sse\n  mcp-client status\n  mcp-client logout http://localhost:3001/mcp\n  mcp-client audit http://localhost:3001/mcp\n  mcp-client --headless audit --login --tool admin_status http://localhost:3001/mcp"
)]
pub struct Cli {
    /// Options of every command.
    #[command(flatten)]
    pub options: Options,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Connect (authorizing if needed) and list the server's tools.
    #[command(visible_alias = "list")]
    Tools {
        /// The MCP server URL.
        #[arg(value_name = "URL")]
        url: Option<String>,
    },
    /// Call a tool with a JSON object or key=value arguments (values are read as JSON when
    /// they parse, else as strings): `call <URL> <TOOL> [ARGS...]` or `call <TOOL> [ARGS...] <URL>`.
    Call {
        /// The server URL, the tool name and its arguments.
        #[arg(value_name = "URL TOOL [ARGS]", required = true, num_args = 1..)]
        words: Vec<String>,
    },
    /// Authorize, list the tools, and call every tool that needs no arguments.
    Check {
        /// The MCP server URL.
        #[arg(value_name = "URL")]
        url: Option<String>,
    },
    /// Authorize (or refresh) and initialize, without calling anything.
    Login {
        /// The MCP server URL.
        #[arg(value_name = "URL")]
        url: Option<String>,
    },
    /// Show the cached authorization state (of one server, or of all).
    Status {
        /// The MCP server URL.
        #[arg(value_name = "URL")]
        url: Option<String>,
    },
    /// Check the server's authorization setup against the MCP specification and the RFCs
    /// it builds on: one line per check (pass, fail, warn, not applicable); exit code 1 if
    /// any check fails.
    Audit(AuditArgs),
    /// Forget the cached tokens of a server (or of all with --all).
    Logout {
        /// The MCP server URL.
        #[arg(value_name = "URL")]
        url: Option<String>,
        /// Forget every cached token.
        #[arg(long, env = "MCP_CLIENT_LOGOUT_ALL")]
        all: bool,
    },
}

/// Flags of `audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The MCP server URL.
    #[arg(value_name = "URL")]
    pub url: Option<String>,
    /// After the checks without a token, log in with the client's own flow (and its
    /// options: --headless, --client-id, ...) and check the token and how the server treats it.
    #[arg(long, env = "MCP_CLIENT_AUDIT_LOGIN")]
    pub login: bool,
    /// With --login: a tool that needs more scope than the first login grants, called once
    /// (with --tool-args) to see the server's insufficient_scope challenge; if the first
    /// login's scopes suffice, the tool runs.
    #[arg(
        long,
        value_name = "TOOL",
        env = "MCP_CLIENT_AUDIT_TOOL",
        requires = "login"
    )]
    pub tool: Option<String>,
    /// The arguments of --tool, as a JSON object.
    #[arg(
        long,
        value_name = "JSON",
        env = "MCP_CLIENT_AUDIT_TOOL_ARGS",
        default_value = "{}"
    )]
    pub tool_args: String,
    /// Also write the report as markdown to this file.
    #[arg(long, value_name = "FILE", env = "MCP_CLIENT_AUDIT_REPORT")]
    pub report: Option<PathBuf>,
    /// Seconds each request of the audit may take.
    #[arg(
        long,
        value_name = "SECONDS",
        env = "MCP_CLIENT_AUDIT_TIMEOUT",
        default_value_t = 10
    )]
    pub timeout: u64,
}

/// Which transport (`--transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TransportArg {
    /// Streamable HTTP, falling back to legacy SSE if the server does not speak it.
    Auto,
    /// Streamable HTTP only.
    StreamableHttp,
    /// The legacy HTTP+SSE transport only.
    Sse,
}

/// How the legacy SSE transport authenticates (`--sse-auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SseAuthArg {
    /// The Bearer header on the stream and every POST.
    Bearer,
    /// A session cookie from `POST /session`.
    Cookie,
}

/// Token endpoint authentication (`--token-auth-method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMethodArg {
    /// From the registration or the authorization server's metadata.
    Auto,
    /// Public client.
    None,
    /// HTTP Basic.
    ClientSecretBasic,
    /// In the form body.
    ClientSecretPost,
    /// A JWT assertion signed with --client-key (RFC 7523).
    PrivateKeyJwt,
}

/// How tokens are obtained (`--grant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GrantArg {
    /// A person logs in: the authorization code flow with PKCE.
    AuthorizationCode,
    /// The client acts for itself (--client-id with --client-secret or --client-key).
    ClientCredentials,
    /// A workload's JWT as the grant (--assertion-file, RFC 7523).
    JwtBearer,
    /// Enterprise-managed authorization: the ID token from --id-token-file is exchanged at
    /// --idp-token-endpoint for an ID-JAG, then used as a JWT bearer grant.
    IdJag,
}

/// When to use DPoP (`--dpop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DpopArg {
    /// When the authorization server advertises dpop_signing_alg_values_supported and
    /// the MCP server accepts DPoP (a DPoP challenge, or its metadata says so).
    Auto,
    /// Always: refuse an authorization server that does not support DPoP.
    Always,
    /// Never: Bearer tokens only.
    Never,
}

/// The DPoP proof algorithm (`--dpop-alg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DpopAlgArg {
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// Ed25519.
    Eddsa,
}

/// How the client obtains tokens, and the credentials of the grants without a person.
#[derive(Debug, Args)]
pub struct GrantOptions {
    /// A PEM private key of the pre-registered client: it authenticates with signed JWT
    /// assertions (private_key_jwt) instead of a secret.
    #[arg(long, global = true, env = "MCP_CLIENT_KEY", value_name = "PEM_FILE")]
    pub client_key: Option<PathBuf>,
    /// The signing algorithm of --client-key (ES256, ES384, RS256, PS256, EdDSA, ...).
    #[arg(
        long,
        global = true,
        env = "MCP_CLIENT_KEY_ALG",
        value_name = "ALG",
        default_value = "ES256"
    )]
    pub client_key_alg: String,
    /// How the client obtains tokens: a person logs in (authorization-code), or a grant
    /// without a person.
    #[arg(long, global = true, env = "MCP_CLIENT_GRANT", value_enum, default_value_t = GrantArg::AuthorizationCode)]
    pub grant: GrantArg,
    /// With --grant jwt-bearer: the file holding the workload's JWT (read at each use).
    #[arg(
        long,
        global = true,
        env = "MCP_CLIENT_ASSERTION_FILE",
        value_name = "FILE"
    )]
    pub assertion_file: Option<PathBuf>,
    /// With --grant id-jag: the file holding the user's ID token from the identity provider.
    #[arg(
        long,
        global = true,
        env = "MCP_CLIENT_ID_TOKEN_FILE",
        value_name = "FILE"
    )]
    pub id_token_file: Option<PathBuf>,
    /// With --grant id-jag: the identity provider's token endpoint (token exchange).
    #[arg(
        long,
        global = true,
        env = "MCP_CLIENT_IDP_TOKEN_ENDPOINT",
        value_name = "URL"
    )]
    pub idp_token_endpoint: Option<String>,
    /// With --grant id-jag: this client's id at the identity provider.
    #[arg(long, global = true, env = "MCP_CLIENT_IDP_CLIENT_ID")]
    pub idp_client_id: Option<String>,
    /// With --grant id-jag: this client's secret at the identity provider, if any.
    #[arg(
        long,
        global = true,
        env = "MCP_CLIENT_IDP_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub idp_client_secret: Option<String>,
}

/// Options of every command; each can also be set by its environment variable.
#[derive(Debug, Args)]
pub struct Options {
    /// The MCP server URL, instead of an argument.
    #[arg(long, global = true, env = "MCP_SERVER_URL")]
    pub url: Option<String>,
    /// Follow the authorization URL over HTTP instead of opening a browser (for
    /// authorization servers that approve without a person, and CI).
    #[arg(long, global = true, env = "MCP_CLIENT_HEADLESS")]
    pub headless: bool,
    /// Print the authorization URL without opening a browser.
    #[arg(long, global = true, env = "MCP_CLIENT_NO_BROWSER")]
    pub no_browser: bool,
    /// Log in with the device flow (RFC 8628): print a URL and a code to enter on any
    /// device with a browser, and wait. For a remote host over SSH. Chosen by itself
    /// when no browser can be opened and the authorization server offers it.
    #[arg(
        long,
        global = true,
        env = "MCP_CLIENT_DEVICE",
        conflicts_with = "headless"
    )]
    pub device: bool,
    /// A pre-registered client id.
    #[arg(long, global = true, env = "MCP_CLIENT_ID")]
    pub client_id: Option<String>,
    /// The secret of the pre-registered client (confidential clients only).
    #[arg(long, global = true, env = "MCP_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// The issuer of the authorization server the pre-registered client belongs to: its
    /// id and secret go nowhere else. Without it, the first issuer they are used with is
    /// recorded in the cache and holds from then on.
    #[arg(long, global = true, env = "MCP_CLIENT_ISSUER")]
    pub client_issuer: Option<String>,
    /// A Client ID Metadata Document URL, used as client_id when the authorization server
    /// supports it.
    #[arg(long, global = true, env = "MCP_CLIENT_METADATA_URL")]
    pub client_metadata_url: Option<String>,
    /// The grants without a person and their credentials.
    #[command(flatten)]
    pub grant: Box<GrantOptions>,
    /// How to authenticate at the token endpoint.
    #[arg(long, global = true, env = "MCP_CLIENT_TOKEN_AUTH_METHOD", value_enum, default_value_t = AuthMethodArg::Auto)]
    pub token_auth_method: AuthMethodArg,
    /// The client_name sent in dynamic registration.
    #[arg(
        long,
        global = true,
        env = "MCP_CLIENT_NAME",
        default_value = "mcp-client"
    )]
    pub client_name: String,
    /// Port of the loopback redirect URI http://127.0.0.1:PORT/callback (0: any free
    /// port; set one for authorization servers that match redirect URIs exactly).
    #[arg(
        long,
        global = true,
        env = "MCP_CLIENT_REDIRECT_PORT",
        default_value_t = 0
    )]
    pub redirect_port: u16,
    /// Allow tokens for AUDIENCE to be obtained for, and sent to, the MCP server at
    /// RESOURCE (and the paths below it): RESOURCE=AUDIENCE, repeatable (comma separated
    /// in the environment). Needed with Dex, whose tokens name a client id, not the
    /// server: e.g. http://localhost:3001=mcp-resource-server.
    #[arg(
        long = "allow-audience",
        global = true,
        env = "MCP_CLIENT_ALLOW_AUDIENCE",
        value_delimiter = ',',
        value_name = "RESOURCE=AUDIENCE"
    )]
    pub allow_audiences: Vec<AllowedAudience>,
    /// Extra scopes to request (space or comma separated; repeatable).
    #[arg(long = "scope", global = true, env = "MCP_CLIENT_SCOPE")]
    pub scopes: Vec<String>,
    /// DPoP-bound tokens (RFC 9449): auto uses them when the authorization server
    /// advertises dpop_signing_alg_values_supported and the MCP server accepts them;
    /// always binds them regardless and refuses an authorization server that cannot.
    #[arg(long, global = true, env = "MCP_CLIENT_DPOP", value_enum, default_value_t = DpopArg::Auto)]
    pub dpop: DpopArg,
    /// The DPoP proof algorithm (the other one is used when the server lists only that).
    #[arg(long, global = true, env = "MCP_CLIENT_DPOP_ALG", value_enum, default_value_t = DpopAlgArg::Es256)]
    pub dpop_alg: DpopAlgArg,
    /// The MCP transport.
    #[arg(long, global = true, env = "MCP_CLIENT_TRANSPORT", value_enum, default_value_t = TransportArg::Auto)]
    pub transport: TransportArg,
    /// How the legacy SSE transport authenticates.
    #[arg(long, global = true, env = "MCP_CLIENT_SSE_AUTH", value_enum, default_value_t = SseAuthArg::Bearer)]
    pub sse_auth: SseAuthArg,
    /// Where `--sse-auth cookie` gets its cookie (default: /session on the server's origin).
    #[arg(long, global = true, env = "MCP_CLIENT_SESSION_URL")]
    pub session_url: Option<String>,
    /// The token cache directory (default: $XDG_CACHE_HOME/mcp-client or ~/.cache/mcp-client).
    #[arg(long, global = true, env = "MCP_CLIENT_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Keep tokens in memory only.
    #[arg(long, global = true, env = "MCP_CLIENT_NO_CACHE")]
    pub no_cache: bool,
    /// Seconds to wait for the authorization callback.
    #[arg(
        long,
        global = true,
        env = "MCP_CLIENT_AUTH_TIMEOUT",
        default_value_t = 300
    )]
    pub auth_timeout: u64,
    /// At most this many authorizations in one run, all steps together (a server that
    /// refuses every call cannot send you to the login page more often).
    #[arg(
        long,
        global = true,
        env = "MCP_CLIENT_MAX_AUTHORIZATIONS",
        default_value_t = 3
    )]
    pub max_authorizations: u32,
    /// Allow a plain http:// MCP server URL on a host that is not loopback (a lab
    /// network): the bearer token then crosses the network in clear text.
    #[arg(long, global = true, env = "MCP_CLIENT_ALLOW_INSECURE_HTTP")]
    pub allow_insecure_http: bool,
    /// Show details: metadata documents, responses, decoded token claims.
    #[arg(short, long, global = true, env = "MCP_CLIENT_VERBOSE")]
    pub verbose: bool,
    /// Show no trace, only results and errors.
    #[arg(
        short,
        long,
        global = true,
        env = "MCP_CLIENT_QUIET",
        conflicts_with = "verbose"
    )]
    pub quiet: bool,
    /// Print results as JSON.
    #[arg(long, global = true, env = "MCP_CLIENT_JSON")]
    pub json: bool,
    /// Write a Mermaid sequence diagram of the HTTP exchanges that really happened to
    /// FILE (written also when the command fails; tokens appear as fingerprints only).
    #[arg(long, global = true, env = "MCP_CLIENT_DIAGRAM", value_name = "FILE")]
    pub diagram: Option<PathBuf>,
}

/// Runs a command. Errors are returned for the caller to print as one sentence.
///
/// With `--diagram FILE`, every request the command sends is recorded and the diagram
/// written when it ends, whatever the outcome.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let Some(path) = cli.options.diagram.clone() else {
        return run_command(cli).await;
    };
    let quiet = cli.options.quiet;
    let recorder = crate::diagram::Recorder::new();
    let result = crate::diagram::record(recorder.clone(), run_command(cli)).await;
    if let Err(e) = std::fs::write(&path, recorder.render()) {
        anyhow::bail!("cannot write the diagram to {}: {e}", path.display());
    }
    if !quiet {
        eprintln!(
            "[diagram] {} HTTP exchange(s) drawn in {} (Mermaid sequenceDiagram)",
            recorder.len(),
            path.display()
        );
    }
    result
}

async fn run_command(cli: Cli) -> anyhow::Result<ExitCode> {
    let o = &cli.options;
    let trace = Trace::stderr(if o.quiet {
        Verbosity::Quiet
    } else if o.verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    });
    let cache = if o.no_cache {
        Cache::disabled()
    } else {
        match o.cache_dir.clone().or_else(Cache::default_dir) {
            Some(d) => Cache::new(d),
            None => Cache::disabled(),
        }
    };
    match &cli.command {
        Command::Tools { url } => {
            let url = server_url(o, url.as_deref())?;
            let mut session = McpConnection::new(connection_options(o, url)?, trace, cache)?;
            session.connect().await?;
            let tools = session.list_tools().await?;
            print_tools(o.json, &tools);
            session.close().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Call { words } => {
            let (url, tool, args) = split_call(o, words)?;
            let mut session = McpConnection::new(connection_options(o, url)?, trace, cache)?;
            session.connect().await?;
            let result = session.call_tool(&tool, args).await?;
            session.close().await;
            let code = print_result(o.json, &tool, &result);
            if code != ExitCode::SUCCESS {
                eprintln!("mcp-client: the tool {tool} reported an error (isError: true)");
            }
            Ok(code)
        }
        Command::Check { url } => {
            let url = server_url(o, url.as_deref())?;
            let mut session =
                McpConnection::new(connection_options(o, url)?, trace.clone(), cache)?;
            session.connect().await?;
            let tools = session.list_tools().await?;
            print_tools(o.json, &tools);
            let mut code = ExitCode::SUCCESS;
            for tool in &tools {
                let Some(name) = tool.get("name").and_then(Value::as_str) else {
                    continue;
                };
                if !required_args(tool).is_empty() {
                    trace.step("check", format!("skipping {name}: it needs arguments"));
                    continue;
                }
                let result = session.call_tool(name, Value::Object(Map::new())).await?;
                if print_result(o.json, name, &result) != ExitCode::SUCCESS {
                    code = ExitCode::FAILURE;
                }
            }
            session.close().await;
            Ok(code)
        }
        Command::Login { url } => {
            let url = server_url(o, url.as_deref())?;
            let mut session = McpConnection::new(connection_options(o, url)?, trace, cache)?;
            session.connect().await?;
            match session.tokens() {
                Some(t) => out!(
                    "authorized for {} by {} ({})",
                    t.server,
                    t.issuer,
                    describe_token(t.access_token.secret())
                ),
                None => out!("connected; the server did not ask for authorization"),
            }
            session.close().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(args) => {
            let url = server_url(o, args.url.as_deref())?;
            let mut options = AuditOptions::new(url.clone());
            options.timeout = Duration::from_secs(args.timeout.max(1));
            if args.login {
                let session = connection_options(o, url)?;
                let tool = match &args.tool {
                    Some(t) => Some((t.clone(), parse_arguments(&[args.tool_args.as_str()])?)),
                    None => None,
                };
                options.login = Some(LoginOptions {
                    authorize: session.authorize,
                    extra_scopes: session.extra_scopes,
                    step_up_tool: tool,
                });
            }
            crate::audit::command(&options, o.json, args.report.as_deref(), &trace, &cache).await
        }
        Command::Status { url } => {
            let server = match url.as_deref().or(o.url.as_deref()) {
                Some(u) => Some(canonical(u)?),
                None => None,
            };
            print_status(o, &cache, server.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Logout { url, all } => {
            if *all {
                let n = cache.remove_all_tokens()?;
                out!("forgot {n} cached token set(s)");
                return Ok(ExitCode::SUCCESS);
            }
            let Some(u) = url.as_deref().or(o.url.as_deref()) else {
                anyhow::bail!("logout needs the MCP server URL (or --all)");
            };
            let server = canonical(u)?;
            let n = cache.remove_tokens(&server)?;
            if n == 0 {
                out!("no cached tokens for {server}");
            } else {
                out!("forgot the cached tokens for {server} ({n} file(s))");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn canonical(u: &str) -> anyhow::Result<String> {
    let url = parse_url(u)?;
    mcp_auth_proto::wellknown::canonical_resource(&url)
        .map_err(|source| crate::ClientError::server_url(&url, source).into())
}

fn parse_url(u: &str) -> anyhow::Result<Url> {
    let url = Url::parse(u).map_err(|e| anyhow::anyhow!("{u:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        anyhow::bail!("{u} is not an http or https URL");
    }
    Ok(url)
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

fn server_url(o: &Options, arg: Option<&str>) -> anyhow::Result<Url> {
    match arg.or(o.url.as_deref()) {
        Some(u) => parse_url(u),
        None => anyhow::bail!("no MCP server URL: give it as an argument or with --url"),
    }
}

/// Splits `call`'s words into the URL (first or last, else `--url`), the tool and its
/// arguments.
fn split_call(o: &Options, words: &[String]) -> anyhow::Result<(Url, String, Value)> {
    let mut words: Vec<&str> = words.iter().map(String::as_str).collect();
    let url = if words.first().is_some_and(|w| is_url(w)) {
        words.remove(0).to_owned()
    } else if words.len() > 1 && words.last().is_some_and(|w| is_url(w)) {
        words.pop().unwrap_or_default().to_owned()
    } else if let Some(u) = &o.url {
        u.clone()
    } else {
        anyhow::bail!("no MCP server URL: give it first or last, or with --url");
    };
    let url = parse_url(&url)?;
    if words.is_empty() {
        anyhow::bail!("which tool? usage: call <URL> <TOOL> [ARGS...]");
    }
    let tool = words.remove(0).to_owned();
    Ok((url, tool, parse_arguments(&words)?))
}

/// Tool arguments from a JSON object or `key=value` words. A value is read as JSON when it
/// parses (`a=2` is a number, `flag=true` a boolean), else as a string (`city=Paris`).
pub fn parse_arguments(words: &[&str]) -> anyhow::Result<Value> {
    if let [single] = words
        && single.trim_start().starts_with('{')
    {
        let v: Value = serde_json::from_str(single)
            .map_err(|e| anyhow::anyhow!("the arguments are not a JSON object: {e}"))?;
        return Ok(v);
    }
    let mut map = Map::new();
    for w in words {
        let Some((k, v)) = w.split_once('=') else {
            anyhow::bail!("argument {w:?} is neither key=value nor a JSON object");
        };
        if k.is_empty() {
            anyhow::bail!("argument {w:?} has an empty name");
        }
        let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned()));
        map.insert(k.to_owned(), value);
    }
    Ok(Value::Object(map))
}

fn connection_options(o: &Options, server_url: Url) -> anyhow::Result<ConnectionOptions> {
    let mut extra = Scopes::default();
    for s in &o.scopes {
        for part in s.split([',', ' ']).filter(|p| !p.is_empty()) {
            extra.insert(part);
        }
    }
    let sse_auth = match o.sse_auth {
        SseAuthArg::Bearer => SseAuth::Bearer,
        SseAuthArg::Cookie => {
            let session_url = match &o.session_url {
                Some(u) => parse_url(u)?,
                None => server_url.join("/session")?,
            };
            SseAuth::Cookie { session_url }
        }
    };
    let auth_method = match o.token_auth_method {
        AuthMethodArg::Auto => None,
        AuthMethodArg::None => Some(TokenAuthMethod::None),
        AuthMethodArg::ClientSecretBasic => Some(TokenAuthMethod::ClientSecretBasic),
        AuthMethodArg::ClientSecretPost => Some(TokenAuthMethod::ClientSecretPost),
        AuthMethodArg::PrivateKeyJwt => Some(TokenAuthMethod::PrivateKeyJwt),
    };
    let client_key = match &o.grant.client_key {
        Some(path) => {
            if o.client_id.is_none() {
                anyhow::bail!(
                    "--client-key needs --client-id (it is the key of a pre-registered client)"
                );
            }
            Some(std::sync::Arc::new(ClientKey::from_pem_file(
                path,
                &o.grant.client_key_alg,
            )?))
        }
        None if auth_method == Some(TokenAuthMethod::PrivateKeyJwt) => {
            anyhow::bail!("--token-auth-method private-key-jwt needs --client-key")
        }
        None => None,
    };
    let grant = grant(o)?;
    if let Some(u) = o.client_metadata_url.as_deref().filter(|u| !u.is_empty()) {
        let ok = Url::parse(u).is_ok_and(|u| u.scheme() == "https" && u.path() != "/");
        if !ok {
            anyhow::bail!(
                "--client-metadata-url must be an https URL with a path (the client_id of a Client ID Metadata Document), not {u}"
            );
        }
    }
    if o.client_secret.is_some() && o.client_id.is_none() {
        anyhow::bail!("--client-secret needs --client-id");
    }
    if o.client_issuer.is_some() && o.client_id.is_none() {
        anyhow::bail!("--client-issuer needs --client-id (it binds a pre-registered client)");
    }
    if let Some(issuer) = o.client_issuer.as_deref().filter(|i| !i.is_empty()) {
        parse_url(issuer).map_err(|e| anyhow::anyhow!("--client-issuer: {e}"))?;
    }
    Ok(ConnectionOptions {
        server_url,
        transport: match o.transport {
            TransportArg::Auto => TransportChoice::Auto,
            TransportArg::StreamableHttp => TransportChoice::Streamable,
            TransportArg::Sse => TransportChoice::Sse,
        },
        sse_auth,
        authorize: AuthorizeOptions {
            interaction: if o.headless {
                Interaction::Headless
            } else if o.device {
                Interaction::Device
            } else {
                Interaction::Browser {
                    open_browser: !o.no_browser,
                }
            },
            redirect_port: o.redirect_port,
            timeout: Duration::from_secs(o.auth_timeout.max(1)),
            client: ClientConfig {
                client_id: o.client_id.clone().filter(|s| !s.is_empty()),
                client_secret: o
                    .client_secret
                    .clone()
                    .filter(|s| !s.is_empty())
                    .map(ClientSecret::new),
                client_issuer: o.client_issuer.clone().filter(|s| !s.is_empty()),
                client_metadata_url: o.client_metadata_url.clone().filter(|s| !s.is_empty()),
                auth_method,
                client_name: o.client_name.clone(),
                client_key,
            },
            grant,
            dpop: match o.dpop {
                DpopArg::Auto => DpopPolicy::Auto,
                DpopArg::Always => DpopPolicy::Always,
                DpopArg::Never => DpopPolicy::Never,
            },
            dpop_alg: match o.dpop_alg {
                DpopAlgArg::Es256 => DpopAlg::Es256,
                DpopAlgArg::Eddsa => DpopAlg::EdDsa,
            },
        },
        extra_scopes: extra,
        audiences: o
            .allow_audiences
            .iter()
            .cloned()
            .fold(AudiencePolicy::new(), AudiencePolicy::with),
        max_authorizations: o.max_authorizations.max(1),
        allow_insecure_http: o.allow_insecure_http,
        refresh_margin_secs: 60,
    })
}

/// The grant of `--grant` with the flags it needs.
fn grant(o: &Options) -> anyhow::Result<Grant> {
    let g = &o.grant;
    let need = |what: &str| anyhow::anyhow!("--grant {} needs {what}", grant_name(g.grant));
    if g.grant != GrantArg::AuthorizationCode && o.client_id.is_none() {
        return Err(need("--client-id (a pre-registered client)"));
    }
    Ok(match g.grant {
        GrantArg::AuthorizationCode => Grant::AuthorizationCode,
        GrantArg::ClientCredentials => {
            if o.client_secret.is_none() && g.client_key.is_none() {
                return Err(need("--client-secret or --client-key"));
            }
            Grant::ClientCredentials
        }
        GrantArg::JwtBearer => Grant::JwtBearer {
            assertion_file: g
                .assertion_file
                .clone()
                .ok_or_else(|| need("--assertion-file"))?,
        },
        GrantArg::IdJag => {
            let endpoint = g
                .idp_token_endpoint
                .as_deref()
                .ok_or_else(|| need("--idp-token-endpoint"))?;
            let endpoint =
                parse_url(endpoint).map_err(|e| anyhow::anyhow!("--idp-token-endpoint: {e}"))?;
            if !mcp_auth_proto::wellknown::is_loopback_or_https(&endpoint) {
                anyhow::bail!(
                    "--idp-token-endpoint {endpoint} is plain http off loopback: the ID token would cross the network in clear text"
                );
            }
            Grant::IdJag(IdJagConfig {
                idp_token_endpoint: endpoint,
                idp_client_id: g
                    .idp_client_id
                    .clone()
                    .ok_or_else(|| need("--idp-client-id"))?,
                idp_client_secret: g
                    .idp_client_secret
                    .clone()
                    .filter(|s| !s.is_empty())
                    .map(ClientSecret::new),
                id_token_file: g
                    .id_token_file
                    .clone()
                    .ok_or_else(|| need("--id-token-file"))?,
            })
        }
    })
}

fn grant_name(g: GrantArg) -> &'static str {
    match g {
        GrantArg::AuthorizationCode => "authorization-code",
        GrantArg::ClientCredentials => "client-credentials",
        GrantArg::JwtBearer => "jwt-bearer",
        GrantArg::IdJag => "id-jag",
    }
}

fn required_args(tool: &Value) -> Vec<String> {
    tool.pointer("/inputSchema/required")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn print_tools(json: bool, tools: &[Value]) {
    if json {
        out!(
            "{}",
            serde_json::to_string_pretty(&Value::Array(tools.to_vec())).unwrap_or_default()
        );
        return;
    }
    out!("{} tool(s):", tools.len());
    for t in tools {
        let name = t.get("name").and_then(Value::as_str).unwrap_or("?");
        let required = required_args(t);
        let args: Vec<String> = t
            .pointer("/inputSchema/properties")
            .and_then(Value::as_object)
            .map(|props| {
                props
                    .iter()
                    .map(|(k, v)| {
                        let ty = v.get("type").and_then(Value::as_str).unwrap_or("any");
                        let opt = if required.contains(k) { "" } else { "?" };
                        format!("{k}{opt}: {ty}")
                    })
                    .collect()
            })
            .unwrap_or_default();
        let desc = t
            .get("description")
            .and_then(Value::as_str)
            .and_then(|d| d.lines().next())
            .unwrap_or("");
        out!(
            "  {name}({}){}",
            args.join(", "),
            if desc.is_empty() {
                String::new()
            } else {
                format!("  {desc}")
            }
        );
    }
}

fn print_result(json: bool, tool: &str, result: &Value) -> ExitCode {
    let is_error = result.get("isError").and_then(Value::as_bool) == Some(true);
    if json {
        out!(
            "{}",
            serde_json::to_string_pretty(result).unwrap_or_default()
        );
    } else {
        out!("{tool}{}:", if is_error { " (tool error)" } else { "" });
        for item in result
            .get("content")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            match item.get("type").and_then(Value::as_str) {
                Some("text") => out!(
                    "  {}",
                    item.get("text")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .replace('\n', "\n  ")
                ),
                Some(other) => out!(
                    "  [{other} content{}]",
                    item.get("mimeType")
                        .and_then(Value::as_str)
                        .map(|m| format!(", {m}"))
                        .unwrap_or_default()
                ),
                None => out!("  {item}"),
            }
        }
        if let Some(s) = result.get("structuredContent") {
            out!("  structured: {s}");
        }
    }
    if is_error {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn print_status(o: &Options, cache: &Cache, server: Option<&str>) -> anyhow::Result<()> {
    let Some(dir) = cache.dir() else {
        out!("the token cache is disabled");
        return Ok(());
    };
    let entries: Vec<_> = cache
        .list_tokens()?
        .into_iter()
        .filter(|(_, t)| server.is_none_or(|s| t.server == s))
        .collect();
    if o.json {
        let list: Vec<Value> = entries
            .iter()
            .map(|(p, t)| {
                serde_json::json!({
                    "server": t.server, "resource": t.resource, "issuer": t.issuer,
                    "client_id": t.client.client_id, "client_source": t.client.source,
                    "token_auth_method": t.client.auth_method, "scope": t.scope,
                    "expires_in": t.expires_in(), "refresh_token": t.refresh_token.is_some(),
                    "access_token": describe_token(t.access_token.secret()),
                    "file": p.display().to_string(),
                })
            })
            .collect();
        out!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if entries.is_empty() {
        out!(
            "no cached tokens{} in {}",
            server.map(|s| format!(" for {s}")).unwrap_or_default(),
            dir.display()
        );
        return Ok(());
    }
    for (path, t) in entries {
        out!("{}", t.server);
        out!("  authorization server: {}", t.issuer);
        out!(
            "  client: {} ({}, token endpoint auth {})",
            t.client.client_id,
            t.client.source,
            t.client.auth_method.as_str()
        );
        out!("  resource: {}", t.resource);
        out!("  scope: {}", t.scope.as_deref().unwrap_or("(none)"));
        out!(
            "  access token: {}, {}",
            describe_token(t.access_token.secret()),
            match t.expires_in() {
                Some(s) if s > 0 => format!("expires in {s} s"),
                Some(s) => format!("expired {} s ago", -s),
                None => "expiry unknown".to_owned(),
            }
        );
        out!(
            "  refresh token: {}",
            if t.refresh_token.is_some() {
                "yes"
            } else {
                "no"
            }
        );
        out!("  file: {}", path.display());
        if o.verbose
            && let Some(claims) = jwt_claims(t.access_token.secret())
        {
            out!("  access token (decoded, not verified):");
            for line in claims.lines() {
                out!("    {line}");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_from_key_values_and_json() {
        assert_eq!(
            parse_arguments(&[
                "operation=add",
                "a=2",
                "b=3.5",
                "flag=true",
                "city=New York"
            ])
            .unwrap(),
            serde_json::json!({"operation":"add","a":2,"b":3.5,"flag":true,"city":"New York"})
        );
        assert_eq!(
            parse_arguments(&[r#"{"location":"Paris"}"#]).unwrap(),
            serde_json::json!({"location":"Paris"})
        );
        assert!(parse_arguments(&["novalue"]).is_err());
        assert!(parse_arguments(&["{bad json"]).is_err());
        assert_eq!(parse_arguments(&[]).unwrap(), serde_json::json!({}));
    }

    #[test]
    fn url_first_or_last() {
        let cli = Cli::parse_from(["mcp-client", "call", "calc", "a=1", "http://h/mcp"]);
        let Command::Call { words } = &cli.command else {
            panic!()
        };
        let (u, t, a) = split_call(&cli.options, words).unwrap();
        assert_eq!((u.as_str(), t.as_str()), ("http://h/mcp", "calc"));
        assert_eq!(a, serde_json::json!({"a":1}));
        let cli = Cli::parse_from(["mcp-client", "--headless", "call", "http://h/mcp", "calc"]);
        let Command::Call { words } = &cli.command else {
            panic!()
        };
        let (u, t, _) = split_call(&cli.options, words).unwrap();
        assert_eq!((u.as_str(), t.as_str()), ("http://h/mcp", "calc"));
        assert!(cli.options.headless);
        let cli = Cli::parse_from(["mcp-client", "check", "--headless", "http://h/mcp"]);
        assert!(cli.options.headless);
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
