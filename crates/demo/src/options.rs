//! The options of the whole-demo run, apart from the command line that parses them
//! (`cli.rs`) so that the orchestrator (`orchestrate.rs`) which runs them needs nothing
//! from it.

use std::path::PathBuf;

use clap::ValueEnum;
use clap::builder::BoolishValueParser;

/// How the client finds the authorization server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Discovery {
    /// The original demo's topology: PRM names the static metadata server, whose RFC 8414
    /// document points at the authorization server's endpoints.
    Static,
    /// PRM names the issuer; the client uses OIDC discovery.
    Oidc,
}

fn repo_default(name: &str) -> PathBuf {
    let local = PathBuf::from(name);
    if local.exists() {
        return local;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(name)
}

/// The MCP transport the client uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    /// Streamable HTTP at /mcp.
    StreamableHttp,
    /// The legacy HTTP+SSE transport at /sse with the Bearer header.
    Sse,
    /// The legacy HTTP+SSE transport at /sse with the session cookie from POST /session.
    SseCookie,
}

/// Options of the whole-demo run. Their ids differ from the client's global options of
/// the same name, which clap would otherwise merge.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// No browser: the client follows the redirects itself and the authorization server
    /// logs the demo user in without a form (for CI).
    #[arg(long = "headless", id = "demo_headless", env = "DEMO_HEADLESS", value_parser = BoolishValueParser::new())]
    pub headless: bool,

    /// Do not open a browser: the client prints the login URL to open by hand
    /// (ignored with --headless).
    #[arg(long = "no-browser", id = "demo_no_browser", env = "DEMO_NO_BROWSER", value_parser = BoolishValueParser::new())]
    pub no_browser: bool,

    /// How the client finds the authorization server.
    #[arg(long, env = "DEMO_DISCOVERY", value_enum, default_value_t = Discovery::Static)]
    pub discovery: Discovery,

    /// Run the authorization server in MCP-ready mode (RFC 8414, registration,
    /// resource → aud, extra scopes); the resource server then uses its defaults and
    /// step-up to mcp:admin works.
    #[arg(long, env = "DEMO_MCP_READY", value_parser = BoolishValueParser::new())]
    pub mcp_ready: bool,

    /// DPoP-bound tokens end to end (with --mcp-ready): the client always binds its
    /// tokens to its key, the resource server requires DPoP, and at the end the demo
    /// replays one of the client's requests to show the proof refused.
    #[arg(
        long = "dpop",
        id = "demo_dpop",
        env = "DEMO_DPOP",
        value_parser = BoolishValueParser::new(),
        requires = "mcp_ready"
    )]
    pub dpop: bool,

    /// The authorization server issues opaque access tokens (random strings, not JWTs);
    /// the resource server cannot verify them itself and asks the authorization server
    /// about each one at its RFC 7662 introspection endpoint.
    #[arg(
        long = "opaque-tokens",
        id = "demo_opaque_tokens",
        env = "DEMO_OPAQUE_TOKENS",
        value_parser = BoolishValueParser::new(),
        conflicts_with = "demo_external_idp"
    )]
    pub opaque_tokens: bool,

    /// Enterprise-managed authorization (ID-JAG): two authorization servers. The
    /// enterprise identity provider (--idp-port, where the user signs in) exchanges the
    /// user's ID token for an ID-JAG; the MCP authorization server (--as-port), which
    /// trusts it, takes the ID-JAG as a JWT bearer grant and issues the access token for
    /// the MCP server. The demo signs the user in headlessly.
    #[arg(
        long = "enterprise",
        id = "demo_enterprise",
        env = "DEMO_ENTERPRISE",
        value_parser = BoolishValueParser::new(),
        conflicts_with_all = ["demo_external_idp", "demo_opaque_tokens"]
    )]
    pub enterprise: bool,

    /// The MCP transport.
    #[arg(long = "transport", id = "demo_transport", env = "DEMO_TRANSPORT", value_enum, default_value_t = Transport::StreamableHttp)]
    pub transport: Transport,

    /// Use the authorization server and static metadata server already running on these
    /// ports (Dex and busybox from `docker compose up`) instead of starting dev-idp and
    /// the static server.
    #[arg(long = "external-idp", id = "demo_external_idp", env = "DEMO_EXTERNAL_IDP", value_parser = BoolishValueParser::new())]
    pub external_idp: bool,

    /// Port of the authorization server (issuer `http://localhost:<port>/dex`).
    // The `--help` texts with placeholders are given apart: clap prints doc comments as
    // written, backticks included, and rustdoc would read a bare `<port>` as HTML.
    #[arg(
        long,
        env = "DEMO_IDP_PORT",
        default_value_t = 5556,
        help = "Port of the authorization server (issuer http://localhost:<port>/dex)"
    )]
    pub idp_port: u16,

    /// Port of the MCP authorization server in --enterprise runs
    /// (issuer `http://localhost:<port>/mcp-as`).
    #[arg(
        long,
        env = "DEMO_AS_PORT",
        default_value_t = 5560,
        help = "Port of the MCP authorization server in --enterprise runs \
                (issuer http://localhost:<port>/mcp-as)"
    )]
    pub as_port: u16,

    /// Port of the static metadata server.
    #[arg(long, env = "DEMO_STATIC_PORT", default_value_t = 5558)]
    pub static_port: u16,

    /// Port of the resource server (public URL `http://localhost:<port>`).
    #[arg(
        long,
        env = "DEMO_RS_PORT",
        default_value_t = 3001,
        help = "Port of the resource server (public URL http://localhost:<port>)"
    )]
    pub rs_port: u16,

    /// Resource servers to run. Past one, they share their sessions through a
    /// `redis-server` and sit behind an `nginx` balancing round-robin on --rs-port
    /// (both found on PATH: Debian packages `redis-server` and `nginx`).
    #[arg(long, env = "DEMO_INSTANCES", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub instances: u16,

    /// Dex configuration file [default: ./dex-config.yaml, else the repository's].
    #[arg(long, env = "DEMO_CONFIG", default_value_os_t = repo_default("dex-config.yaml"))]
    pub config: PathBuf,

    /// Static metadata directory [default: ./static-metadata, else the repository's].
    #[arg(long, env = "DEMO_STATIC_DIR", default_value_os_t = repo_default("static-metadata"))]
    pub static_dir: PathBuf,

    /// The browser page's directory, served by the resource server at /app/
    /// [default: ./web, else the repository's].
    #[arg(long, env = "DEMO_WEB_DIR", default_value_os_t = repo_default("web"))]
    pub web_dir: PathBuf,

    /// Where to write the Mermaid sequence diagram of every HTTP exchange the client's
    /// steps made [default: mcp-demo-flow.mmd in the temporary directory].
    #[arg(
        long = "diagram",
        id = "demo_diagram",
        env = "DEMO_DIAGRAM",
        value_name = "FILE"
    )]
    pub diagram: Option<PathBuf>,

    /// After the client's steps, keep every server running so the browser page
    /// (`http://localhost:<rs-port>/app/`) can be tried; Ctrl-C stops them. The page needs
    /// --discovery oidc or --mcp-ready: busybox-style static metadata sends no CORS headers.
    #[arg(
        long = "serve",
        id = "demo_serve",
        env = "DEMO_SERVE",
        value_parser = BoolishValueParser::new(),
        help = "After the client's steps, keep every server running so the browser page \
                (http://localhost:<rs-port>/app/) can be tried; Ctrl-C stops them. The page \
                needs --discovery oidc or --mcp-ready: busybox-style static metadata sends \
                no CORS headers"
    )]
    pub serve: bool,
}
