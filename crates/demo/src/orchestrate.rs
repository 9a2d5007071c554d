//! The default `demo` run: check the ports, start the authorization server, the static
//! metadata server and the resource server as separate processes, wait until they listen,
//! run the client through the flow, then stop everything.
//!
//! Topologies (`--discovery`):
//! - `static` (the original demo's): the resource server advertises the static metadata
//!   server as its authorization server; that server's RFC 8414 document points at the
//!   Dex-compatible endpoints. Tokens carry Dex's `iss` and
//!   `aud: ["mcp-resource-server", "mcp-client"]` through Dex's cross-client scope.
//! - `oidc`: the resource server advertises the issuer itself; clients find
//!   `{issuer}/.well-known/openid-configuration` by OIDC path appending.
//!
//! With `--mcp-ready`, the authorization server runs with every MCP-friendly switch and
//! the resource server with its own defaults (audience = its URL, scopes `mcp:tools`
//! and `mcp:admin`), so step-up to `mcp:admin` succeeds.
//!
//! With `--dpop` (and `--mcp-ready`), the client always uses DPoP-bound tokens, the
//! resource server requires them, and a last step replays one request to show the proof
//! refused (see `replay.rs`).
//!
//! With `--enterprise` (enterprise-managed authorization, SEP-990), two dev-idp processes
//! play two parts, each with its own issuer and keys, so the trust between them is one
//! visible setting: the enterprise identity provider (`--id-jag`, on `--idp-port`), where
//! the user signs in and which issues ID-JAGs by token exchange, and the MCP
//! authorization server (`--mcp-ready --trusted-issuer <identity provider>`, on
//! `--as-port`), which the resource server names and which accepts those ID-JAGs as JWT
//! bearer grants. One process could hold both parts, but then the ID-JAG would go from a
//! server to itself and the trust it carries would be invisible. The demo signs the user
//! in at the identity provider (`sign_in.rs`) and hands the ID token to the client
//! (`--grant id-jag`).
//!
//! With `--opaque-tokens`, the authorization server issues opaque access tokens and the
//! resource server verifies each by introspection (RFC 7662) at
//! `{issuer}/token/introspect`, with no client credentials: that endpoint, like Dex's,
//! takes none.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::children::{Children, run_foreground};
use crate::options::{Discovery, RunArgs, Transport};

/// The demo user, from dex-config.yaml.
pub const DEMO_USER: &str = "alice@example.com";
const DEMO_PASSWORD: &str = "password";
/// The resource server's own Dex client id: the audience of the tokens it accepts in the
/// Dex topologies (dex-config.yaml).
const DEX_AUDIENCE: &str = "mcp-resource-server";
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const EXTERNAL_TIMEOUT: Duration = Duration::from_secs(3);

/// The ports and URLs of one run.
#[derive(Debug, Clone)]
pub struct Topology {
    /// The issuer of the authorization server the resource server names.
    pub issuer: String,
    /// With `--enterprise`, the enterprise identity provider's issuer (else `issuer`).
    pub idp_issuer: String,
    /// The static metadata server's URL (its metadata `issuer`).
    pub static_url: String,
    /// The resource server's public URL.
    pub rs_url: String,
    /// The MCP endpoint of the chosen transport.
    pub mcp_url: String,
}

impl Topology {
    /// URLs for the given ports, all on `localhost` as in dex-config.yaml.
    pub fn new(args: &RunArgs) -> Self {
        let rs_url = format!("http://localhost:{}", args.rs_port);
        let idp_issuer = format!("http://localhost:{}/dex", args.idp_port);
        Self {
            issuer: if args.enterprise {
                format!("http://localhost:{}/mcp-as", args.as_port)
            } else {
                idp_issuer.clone()
            },
            idp_issuer,
            static_url: format!("http://localhost:{}", args.static_port),
            mcp_url: match args.transport {
                Transport::StreamableHttp => format!("{rs_url}/mcp"),
                Transport::Sse | Transport::SseCookie => format!("{rs_url}/sse"),
            },
            rs_url,
        }
    }
}

fn uses_static_server(args: &RunArgs) -> bool {
    !args.mcp_ready && args.discovery == Discovery::Static
}

/// Fails with a clear sentence when a port is taken.
pub fn check_ports(args: &RunArgs) -> anyhow::Result<()> {
    let mut ports = vec![
        (args.idp_port, "authorization server", "--idp-port"),
        (args.rs_port, "resource server", "--rs-port"),
    ];
    if uses_static_server(args) {
        ports.push((args.static_port, "static metadata server", "--static-port"));
    }
    if args.enterprise {
        ports.push((args.as_port, "MCP authorization server", "--as-port"));
    }
    for (i, (port, name, flag)) in ports.iter().enumerate() {
        if ports[..i].iter().any(|(p, _, _)| p == port) {
            bail!("port {port} is given to two servers; change {flag}");
        }
        let external = args.external_idp && *flag != "--rs-port";
        if external {
            continue;
        }
        if let Err(e) = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], *port))) {
            bail!(
                "port {port} for the {name} is not available on 127.0.0.1 ({e}); \
                 stop what uses it or choose another port with {flag}"
            );
        }
    }
    Ok(())
}

/// Arguments of `demo idp`.
pub fn idp_args(args: &RunArgs, topology: &Topology) -> Vec<String> {
    let mut out = vec![
        "idp".into(),
        "--config".into(),
        args.config.display().to_string(),
        "--issuer".into(),
        topology.issuer.clone(),
        "--listen".into(),
        format!("127.0.0.1:{}", args.idp_port),
    ];
    if args.mcp_ready {
        out.push("--mcp-ready".into());
    }
    if args.opaque_tokens {
        out.push("--opaque-tokens".into());
    }
    if args.headless {
        out.extend(["--auto-login".into(), DEMO_USER.into()]);
    }
    out
}

/// With `--enterprise`, arguments of the enterprise identity provider (`demo idp`): it
/// issues ID-JAGs and logs the demo user in without a form.
pub fn enterprise_idp_args(args: &RunArgs, topology: &Topology) -> Vec<String> {
    vec![
        "idp".into(),
        "--config".into(),
        args.config.display().to_string(),
        "--issuer".into(),
        topology.idp_issuer.clone(),
        "--listen".into(),
        format!("127.0.0.1:{}", args.idp_port),
        "--id-jag".into(),
        "--auto-login".into(),
        DEMO_USER.into(),
    ]
}

/// With `--enterprise`, arguments of the MCP authorization server (`demo idp`): MCP-ready,
/// and trusting the identity provider's ID-JAGs (its keys found through its discovery
/// document).
pub fn enterprise_as_args(args: &RunArgs, topology: &Topology) -> Vec<String> {
    vec![
        "idp".into(),
        "--config".into(),
        args.config.display().to_string(),
        "--issuer".into(),
        topology.issuer.clone(),
        "--listen".into(),
        format!("127.0.0.1:{}", args.as_port),
        "--mcp-ready".into(),
        "--trusted-issuer".into(),
        topology.idp_issuer.clone(),
    ]
}

/// Where the `--enterprise` run keeps the user's ID token.
pub fn id_token_path(work: &Path) -> PathBuf {
    work.join("id-token.jwt")
}

/// Arguments of `demo static-server`.
pub fn static_args(args: &RunArgs, dir: &Path) -> Vec<String> {
    vec![
        "static-server".into(),
        "--dir".into(),
        dir.display().to_string(),
        "--listen".into(),
        format!("127.0.0.1:{}", args.static_port),
    ]
}

/// Arguments of `demo resource-server`.
pub fn rs_args(args: &RunArgs, topology: &Topology) -> Vec<String> {
    let mut out = vec![
        "resource-server".into(),
        "--listen".into(),
        format!("127.0.0.1:{}", args.rs_port),
        "--public-url".into(),
        topology.rs_url.clone(),
        "--issuer".into(),
        topology.issuer.clone(),
        "--web-dir".into(),
        absolute(&args.web_dir).display().to_string(),
    ];
    if args.opaque_tokens {
        // dev-idp's introspection endpoint, like Dex's, takes no client authentication,
        // so no client id or secret is passed.
        out.extend([
            "--introspection-endpoint".into(),
            introspection_endpoint(topology),
        ]);
    }
    if args.mcp_ready {
        // dev-idp advertises DPoP with --mcp-ready, so clients that follow it send
        // DPoP-bound tokens; bearer tokens stay accepted unless --dpop asks for DPoP only.
        let policy = if args.dpop { "required" } else { "allowed" };
        out.extend(["--dpop".into(), policy.into()]);
        return out;
    }
    // Dex: its client id as audience, scopes it accepts, no scope claim to require.
    let authorization_server = match args.discovery {
        Discovery::Static => topology.static_url.clone(),
        Discovery::Oidc => topology.issuer.clone(),
    };
    out.extend([
        "--authorization-server".into(),
        authorization_server,
        "--jwks-uri".into(),
        format!("{}/keys", topology.issuer),
        "--audience".into(),
        DEX_AUDIENCE.into(),
        "--scopes-supported".into(),
        format!("openid,audience:server:client_id:{DEX_AUDIENCE}"),
        "--required-scopes".into(),
        String::new(),
    ]);
    out
}

/// The authorization server's RFC 7662 endpoint (Dex's path).
pub fn introspection_endpoint(topology: &Topology) -> String {
    format!("{}/token/introspect", topology.issuer)
}

/// `path` made absolute against the current directory, so a child started elsewhere
/// finds it.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The static metadata to serve: the directory itself with the default ports, else a
/// copy with the URLs rewritten to the chosen ports.
pub fn static_dir(args: &RunArgs, topology: &Topology, work: &Path) -> anyhow::Result<PathBuf> {
    if args.idp_port == 5556 && args.static_port == 5558 {
        return Ok(args.static_dir.clone());
    }
    let target = work.join("static-metadata");
    copy_rewritten(&args.static_dir, &target, &|text: &str| {
        text.replace("http://localhost:5556/dex", &topology.issuer)
            .replace("http://localhost:5558", &topology.static_url)
    })?;
    Ok(target)
}

fn copy_rewritten(from: &Path, to: &Path, rewrite: &dyn Fn(&str) -> String) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_rewritten(&entry.path(), &target, rewrite)?;
        } else {
            let bytes = std::fs::read(entry.path())?;
            match String::from_utf8(bytes) {
                Ok(text) => std::fs::write(&target, rewrite(&text))?,
                Err(e) => std::fs::write(&target, e.into_bytes())?,
            }
        }
    }
    Ok(())
}

/// One client invocation of the scripted flow.
pub struct Step {
    /// What the step shows.
    pub title: String,
    /// Arguments after `demo client`.
    pub args: Vec<String>,
    /// Why the client is expected to exit non-zero, if it is: a tool error result, or
    /// the refusal of `admin_status` with Dex.
    pub expected_failure: Option<&'static str>,
}

/// The client invocations: list tools, call each tool.
pub fn client_steps(args: &RunArgs, topology: &Topology, cache_dir: &Path) -> Vec<Step> {
    let mut common = vec!["--cache-dir".to_owned(), cache_dir.display().to_string()];
    if args.headless {
        common.push("--headless".into());
    }
    match args.transport {
        Transport::StreamableHttp => {}
        Transport::Sse => common.extend(["--transport".into(), "sse".into()]),
        Transport::SseCookie => common.extend([
            "--transport".into(),
            "sse".into(),
            "--sse-auth".into(),
            "cookie".into(),
        ]),
    }
    if args.no_browser && !args.headless {
        common.push("--no-browser".into());
    }
    if args.dpop {
        common.extend(["--dpop".into(), "always".into()]);
    }
    if args.enterprise {
        // The pre-registered public client, known under the same id to both servers
        // (both read dex-config.yaml).
        let work = cache_dir.parent().unwrap_or(cache_dir);
        common.extend([
            "--grant".into(),
            "id-jag".into(),
            "--client-id".into(),
            crate::sign_in::CLIENT_ID.into(),
            "--id-token-file".into(),
            id_token_path(work).display().to_string(),
            "--idp-token-endpoint".into(),
            format!("{}/token", topology.idp_issuer),
            "--idp-client-id".into(),
            crate::sign_in::CLIENT_ID.into(),
        ]);
    }
    if !args.mcp_ready {
        // Dex: the pre-registered public client, bound to the authorization server the
        // resource server names (the static metadata server, or Dex itself), and allowed
        // to get tokens for Dex's client `mcp-resource-server`, the resource server's
        // audience, for this resource server only.
        let client_issuer = match args.discovery {
            Discovery::Static => topology.static_url.clone(),
            Discovery::Oidc => topology.issuer.clone(),
        };
        common.extend([
            "--client-id".into(),
            "mcp-client".into(),
            "--client-issuer".into(),
            client_issuer,
            "--allow-audience".into(),
            format!("{}={DEX_AUDIENCE}", topology.rs_url),
        ]);
    }
    let step = |title: &str, command: &[&str], expected_failure: Option<&'static str>| {
        let mut a = common.clone();
        a.extend(command.iter().map(|s| (*s).to_owned()));
        a.push(topology.mcp_url.clone());
        Step {
            title: title.into(),
            args: a,
            expected_failure,
        }
    };
    let admin_title = if args.mcp_ready {
        "admin_status needs mcp:admin: 403 insufficient_scope, then step-up"
    } else {
        "admin_status needs mcp:admin, which Dex cannot grant: 403 insufficient_scope"
    };
    let refused = (!args.mcp_ready).then_some("refused, as expected: Dex has no mcp:admin scope");
    let first = if args.enterprise {
        "ID token -> ID-JAG -> access token (the client's trace in detail, the ID-JAG's claims included), then list the tools"
    } else {
        "authorize, then list the tools"
    };
    let mut steps = vec![
        step(first, &["tools"], None),
        step(
            "calculator: 6 * 7",
            &["call", "calculator", "operation=multiply", "a=6", "b=7"],
            None,
        ),
        step(
            "calculator: divide by zero (a tool error result, not a protocol error)",
            &["call", "calculator", "operation=divide", "a=1", "b=0"],
            Some("a tool error result, as expected"),
        ),
        step(
            "weather (fake data)",
            &["call", "weather", "location=Paris"],
            None,
        ),
        step("whoami: the verified claims", &["call", "whoami"], None),
        step(admin_title, &["call", "admin_status"], refused),
    ];
    if args.enterprise {
        steps[0].args.insert(0, "--verbose".into());
    }
    steps
}

async fn flow(args: &RunArgs, children: &mut Children, work: &Path) -> anyhow::Result<bool> {
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let topology = Topology::new(args);
    let loopback = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));

    if args.external_idp {
        let mut external = vec![("authorization server", args.idp_port, "--idp-port")];
        if uses_static_server(args) {
            external.push(("static metadata server", args.static_port, "--static-port"));
        }
        for (name, port, flag) in external {
            children
                .wait_ready(name, loopback(port), EXTERNAL_TIMEOUT)
                .await
                .with_context(|| {
                    format!(
                        "--external-idp: start Dex and the static metadata server first \
                         (docker compose up), or set {flag}"
                    )
                })?;
        }
    } else if args.enterprise {
        children.spawn("idp", &exe, &enterprise_idp_args(args, &topology))?;
        children.spawn("as", &exe, &enterprise_as_args(args, &topology))?;
        children
            .wait_ready(
                "enterprise identity provider",
                loopback(args.idp_port),
                READY_TIMEOUT,
            )
            .await?;
        children
            .wait_ready(
                "MCP authorization server",
                loopback(args.as_port),
                READY_TIMEOUT,
            )
            .await?;
    } else {
        children.spawn("idp", &exe, &idp_args(args, &topology))?;
        if uses_static_server(args) {
            let dir = static_dir(args, &topology, work)?;
            children.spawn("static", &exe, &static_args(args, &dir))?;
            children
                .wait_ready(
                    "static metadata server",
                    loopback(args.static_port),
                    READY_TIMEOUT,
                )
                .await?;
        }
        children
            .wait_ready(
                "authorization server",
                loopback(args.idp_port),
                READY_TIMEOUT,
            )
            .await?;
    }
    if args.instances > 1 {
        crate::scale::start(
            children,
            &exe,
            &rs_args(args, &topology),
            args.instances,
            args.rs_port,
            work,
        )
        .await?;
    } else {
        children.spawn("rs", &exe, &rs_args(args, &topology))?;
        children
            .wait_ready("resource server", loopback(args.rs_port), READY_TIMEOUT)
            .await?;
    }
    children.settle().await;

    eprintln!();
    if args.enterprise {
        eprintln!("== Enterprise identity provider: {}", topology.idp_issuer);
    }
    eprintln!("== Authorization server: {}", topology.issuer);
    if uses_static_server(args) {
        eprintln!(
            "== Static metadata:      {}/.well-known/oauth-authorization-server",
            topology.static_url
        );
    }
    eprintln!("== MCP server:           {}", topology.mcp_url);
    if args.enterprise {
        eprintln!(
            "== Enterprise-managed authorization: the user signs in once, at the identity \
             provider; the MCP client then gets its token without a login page at the MCP \
             authorization server, which trusts that identity provider."
        );
    } else if args.headless && args.external_idp {
        eprintln!("== Headless: the authorization server must approve without a login form.");
    } else if args.headless {
        eprintln!("== Headless: the authorization server logs {DEMO_USER} in without a form.");
    } else {
        eprintln!(
            "== The browser opens at the login page (the client prints its URL too). \
             Log in as {DEMO_USER} / {DEMO_PASSWORD}."
        );
        if !mcp_auth_client::authorize::has_display() {
            eprintln!(
                "== No display here (DISPLAY, WAYLAND_DISPLAY and BROWSER are unset): open the URL on a machine that can reach this one's loopback address, or stop (Ctrl-C) and run `cargo run -p demo -- --headless`, the same flow without a browser."
            );
        }
    }

    if args.dpop {
        eprintln!(
            "== DPoP: the client binds its tokens to a key pair of its own (RFC 9449); every \
             request carries a fresh signed proof, and the resource server accepts DPoP only. \
             The [dpop] lines show each proof's claims."
        );
    }
    if args.opaque_tokens {
        eprintln!(
            "== Opaque tokens: the authorization server issues access tokens that are random \
             strings, not JWTs. The resource server cannot check a signature or read claims \
             in them, so it asks the authorization server about each new token at {} \
             (RFC 7662 token introspection) and caches the answer until the token's exp or \
             60 s, whichever comes first. Look for \"token introspected\" in its log.",
            introspection_endpoint(&topology)
        );
    }

    if args.enterprise {
        enterprise_sign_in(&topology, work).await?;
    }

    let cache_dir = work.join("client-cache");
    let mut ok = true;
    let mut sections = Vec::new();
    for (i, step) in client_steps(args, &topology, &cache_dir)
        .into_iter()
        .enumerate()
    {
        children.check_alive()?;
        eprintln!();
        eprintln!("== {}", step.title);
        if i == 1 {
            eprintln!(
                "== (each step is a new mcp-client run, which opens the MCP exchange again (server/discover, or initialize with an older server), with the token from the cache)"
            );
        }
        let step_diagram = work.join(format!("step-{i}.mmd"));
        let mut client_args = vec![
            "client".to_owned(),
            "--diagram".to_owned(),
            step_diagram.display().to_string(),
        ];
        client_args.extend(step.args);
        let status = run_foreground(&exe, &client_args).await?;
        if let Ok(text) = std::fs::read_to_string(&step_diagram) {
            sections.push((step.title.clone(), text));
        }
        match (status.success(), step.expected_failure) {
            (true, None) => {}
            (false, Some(why)) => eprintln!("== ({why})"),
            (true, Some(why)) => {
                eprintln!("== the call succeeded, but expected: {why}");
                ok = false;
            }
            (false, None) => {
                eprintln!("== step failed ({status})");
                ok = false;
                break;
            }
        }
    }
    if ok && args.dpop {
        children.check_alive()?;
        eprintln!();
        eprintln!("== DPoP: a captured request replayed (RFC 9449 §11.1)");
        match crate::replay::show(&topology.mcp_url, &cache_dir).await {
            Ok(true) => {}
            Ok(false) => {
                eprintln!("== the replayed proof was not refused as expected");
                ok = false;
            }
            Err(e) => {
                eprintln!("== replay step failed: {e:#}");
                ok = false;
            }
        }
    }
    write_diagram(args, &sections)?;
    Ok(ok)
}

/// Hop 0 of the enterprise flow, explained: the user signs in at the identity provider.
async fn enterprise_sign_in(topology: &Topology, work: &Path) -> anyhow::Result<()> {
    let path = id_token_path(work);
    eprintln!();
    eprintln!(
        "== Hop 0: {DEMO_USER} signs in at the enterprise identity provider {} \
         (authorization code flow with PKCE as client {}; the identity provider logs the \
         demo user in without a form). In a company this is the single sign-on of the \
         morning.",
        topology.idp_issuer,
        crate::sign_in::CLIENT_ID
    );
    let decoded = crate::sign_in::id_token(&topology.idp_issuer, &path)
        .await
        .context("signing in at the enterprise identity provider")?;
    eprintln!(
        "== The identity provider issued an ID token (kept in {}, readable by its owner \
         only; decoded here, the token itself is not shown):\n{decoded}",
        path.display()
    );
    eprintln!(
        "== Next, in the client's trace: hop 1 exchanges this ID token at {}/token \
         (RFC 8693 token exchange) for an ID-JAG whose aud is {} and whose resource is \
         the MCP server; hop 2 presents the ID-JAG to {}/token (RFC 7523 JWT bearer grant), \
         which checks its signature against the identity provider's published keys, its \
         aud, client_id, resource, expiry and jti, and issues the access token. No login \
         page appears at the MCP authorization server.",
        topology.idp_issuer, topology.issuer, topology.issuer
    );
    Ok(())
}

/// The default `--diagram` file.
pub fn default_diagram_path() -> PathBuf {
    std::env::temp_dir().join("mcp-demo-flow.mmd")
}

/// Writes the steps' diagrams as one and says where.
fn write_diagram(args: &RunArgs, sections: &[(String, String)]) -> anyhow::Result<()> {
    let path = args.diagram.clone().unwrap_or_else(default_diagram_path);
    let diagram = mcp_auth_client::diagram::combine(sections);
    std::fs::write(&path, diagram)
        .with_context(|| format!("cannot write the flow diagram to {}", path.display()))?;
    eprintln!();
    eprintln!(
        "== The flow as it ran, every HTTP exchange: {} (a Mermaid sequenceDiagram: put it in a ```mermaid block of a markdown file, or paste it into a Mermaid viewer)",
        path.display()
    );
    Ok(())
}

/// `--serve`: the servers stay up for the browser page until Ctrl-C or a child exits.
async fn serve_until_interrupted(args: &RunArgs, children: &mut Children) {
    let topology = Topology::new(args);
    eprintln!();
    eprintln!("== Browser page: {}/app/", topology.rs_url);
    if uses_static_server(args) {
        eprintln!(
            "== (in this topology the page stops at discovery: the static metadata server \
             sends no CORS headers; run with --discovery oidc or --mcp-ready)"
        );
    }
    eprintln!("== Log in as {DEMO_USER} / {DEMO_PASSWORD}. Ctrl-C stops every server.");
    let shutdown = crate::signals::shutdown();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {
                if let Err(e) = children.check_alive() {
                    eprintln!("== {e:#}");
                    return;
                }
            }
        }
    }
}

/// The default `demo` run.
pub async fn run(mut args: RunArgs) -> anyhow::Result<ExitCode> {
    // The MCP authorization server of the enterprise flow is an MCP-ready dev-idp, and
    // the resource server runs with the matching defaults.
    args.mcp_ready |= args.enterprise;
    check_ports(&args)?;
    if args.instances > 1 {
        crate::scale::find_tools()?;
    }
    anyhow::ensure!(
        args.config.is_file() || args.external_idp,
        "configuration {} not found (set --config)",
        args.config.display()
    );
    anyhow::ensure!(
        args.static_dir.is_dir() || !uses_static_server(&args) || args.external_idp,
        "static metadata directory {} not found (set --static-dir)",
        args.static_dir.display()
    );
    let work = std::env::temp_dir().join(format!("mcp-demo-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let mut children = Children::default();
    let outcome = tokio::select! {
        result = flow(&args, &mut children, &work) => Some(result),
        () = crate::signals::shutdown() => None,
    };
    if args.serve && matches!(outcome, Some(Ok(true))) {
        serve_until_interrupted(&args, &mut children).await;
    }
    children.stop_all().await;
    let _ = std::fs::remove_dir_all(&work);
    let Some(outcome) = outcome else {
        eprintln!("\n== interrupted: every process stopped");
        return Ok(ExitCode::from(130));
    };
    match outcome {
        Ok(true) => {
            eprintln!("\n== demo finished: every step behaved as expected");
            Ok(ExitCode::SUCCESS)
        }
        Ok(false) => {
            eprintln!("\n== demo failed: see the steps above");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e),
    }
}
