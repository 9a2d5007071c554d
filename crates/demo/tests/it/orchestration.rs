//! Port checks and the arguments the orchestrator gives each component.

use clap::Parser as _;
use demo::cli::{Cli, Discovery, RunArgs};
use demo::orchestrate::{Topology, check_ports, client_steps, idp_args, rs_args};

fn run_args(extra: &[&str]) -> RunArgs {
    let mut argv = vec!["demo"];
    argv.extend_from_slice(extra);
    let cli = Cli::parse_from(argv);
    assert!(cli.command.is_none());
    cli.run
}

#[test]
fn a_busy_port_names_the_port_and_the_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let free = |_: ()| {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    let (a, b) = (free(()), free(()));
    let args = run_args(&["--rs-port", &port, "--idp-port", &a, "--static-port", &b]);
    let err = check_ports(&args).unwrap_err().to_string();
    assert!(err.contains(&port) && err.contains("--rs-port"), "{err}");

    let args = run_args(&["--rs-port", &a, "--idp-port", &a, "--static-port", &b]);
    let err = check_ports(&args).unwrap_err().to_string();
    assert!(err.contains("two servers"), "{err}");
}

#[test]
fn component_subcommands_parse_their_own_flags() {
    let cli = Cli::parse_from([
        "demo",
        "idp",
        "--mcp-ready",
        "--auto-login",
        "alice@example.com",
    ]);
    assert!(matches!(cli.command, Some(demo::cli::Command::Idp(ref c)) if c.mcp_ready));
    let cli = Cli::parse_from(["demo", "static-server", "--listen", "127.0.0.1:1234"]);
    assert!(matches!(
        cli.command,
        Some(demo::cli::Command::StaticServer(_))
    ));
    let cli = Cli::parse_from(["demo", "resource-server", "--listen", "127.0.0.1:1235"]);
    assert!(matches!(
        cli.command,
        Some(demo::cli::Command::ResourceServer(_))
    ));
}

#[test]
fn dex_topology_arguments() {
    let args = run_args(&["--headless"]);
    assert_eq!(args.discovery, Discovery::Static);
    let topology = Topology::new(&args);
    assert_eq!(topology.issuer, "http://localhost:5556/dex");
    let idp = idp_args(&args, &topology);
    assert!(
        idp.windows(2)
            .any(|w| w == ["--auto-login", "alice@example.com"])
    );
    assert!(!idp.contains(&"--mcp-ready".to_owned()));

    // The resource server's own parser accepts what the orchestrator passes.
    let rs = rs_args(&args, &topology);
    let cli = resource_server::cli::Cli::parse_from(
        std::iter::once("resource-server".to_owned()).chain(rs.into_iter().skip(1)),
    );
    assert_eq!(cli.authorization_servers, ["http://localhost:5558"]);
    assert_eq!(cli.audiences, ["mcp-resource-server"]);
    assert_eq!(
        cli.jwks_uri.as_deref(),
        Some("http://localhost:5556/dex/keys")
    );
    cli.to_config()
        .expect("a valid resource server configuration");

    // The client is the pre-registered public client, bound to the authorization server
    // the resource server names, and allowed Dex's audience for this server only; its
    // own parser accepts what the orchestrator passes.
    let client = |args: &RunArgs| {
        let steps = client_steps(args, &Topology::new(args), std::path::Path::new("/tmp/c"));
        let step = steps.into_iter().next().unwrap();
        mcp_auth_client::cli::Cli::try_parse_from(
            std::iter::once("mcp-client".to_owned()).chain(step.args),
        )
        .expect("the client accepts the demo's arguments")
    };
    let cli = client(&args);
    assert_eq!(cli.options.client_id.as_deref(), Some("mcp-client"));
    assert_eq!(
        cli.options.client_issuer.as_deref(),
        Some("http://localhost:5558")
    );
    assert_eq!(cli.options.allow_audiences.len(), 1);
    assert_eq!(
        cli.options.allow_audiences[0].resource,
        "http://localhost:3001"
    );
    assert_eq!(
        cli.options.allow_audiences[0].audience,
        "mcp-resource-server"
    );
    let cli = client(&run_args(&["--discovery", "oidc"]));
    assert_eq!(
        cli.options.client_issuer.as_deref(),
        Some("http://localhost:5556/dex")
    );
    let cli = client(&run_args(&["--mcp-ready"]));
    assert!(cli.options.client_id.is_none() && cli.options.allow_audiences.is_empty());

    let oidc = run_args(&["--discovery", "oidc"]);
    let rs = rs_args(&oidc, &Topology::new(&oidc));
    let cli = resource_server::cli::Cli::parse_from(
        std::iter::once("resource-server".to_owned()).chain(rs.into_iter().skip(1)),
    );
    assert_eq!(cli.authorization_servers, ["http://localhost:5556/dex"]);
}

#[test]
fn mcp_ready_leaves_the_resource_server_on_its_defaults() {
    let args = run_args(&["--mcp-ready", "--idp-port", "6000", "--rs-port", "6001"]);
    let topology = Topology::new(&args);
    assert_eq!(topology.issuer, "http://localhost:6000/dex");
    assert!(idp_args(&args, &topology).contains(&"--mcp-ready".to_owned()));
    let rs = rs_args(&args, &topology);
    let cli = resource_server::cli::Cli::parse_from(
        std::iter::once("resource-server".to_owned()).chain(rs.into_iter().skip(1)),
    );
    assert!(
        cli.audiences.is_empty(),
        "canonical resource URIs by default"
    );
    assert_eq!(cli.scopes_supported, ["mcp:tools", "mcp:admin"]);
    assert_eq!(cli.public_url.as_deref(), Some("http://localhost:6001"));
    assert_eq!(
        cli.dpop,
        mcp_resource_server::auth::DpopPolicy::Allowed,
        "dev-idp advertises DPoP with --mcp-ready, so bound tokens are accepted"
    );
    // The page directory is passed as an absolute path, so the child finds it from any
    // working directory.
    assert!(cli.web_dir.is_absolute(), "{}", cli.web_dir.display());
    assert!(cli.web_dir.join("index.html").is_file());
}

#[test]
fn opaque_tokens_make_the_resource_server_introspect_without_credentials() {
    for extra in [&[][..], &["--mcp-ready"][..]] {
        let mut flags = vec!["--opaque-tokens", "--idp-port", "6000"];
        flags.extend_from_slice(extra);
        let args = run_args(&flags);
        let topology = Topology::new(&args);
        assert!(idp_args(&args, &topology).contains(&"--opaque-tokens".to_owned()));
        let rs = rs_args(&args, &topology);
        let cli = resource_server::cli::Cli::parse_from(
            std::iter::once("resource-server".to_owned()).chain(rs.into_iter().skip(1)),
        );
        assert_eq!(
            cli.introspection_endpoint.as_deref(),
            Some("http://localhost:6000/dex/token/introspect"),
            "{extra:?}"
        );
        // dev-idp's endpoint, like Dex's, takes no client authentication.
        assert!(cli.introspection_client_id.is_none());
        assert!(cli.introspection_client_secret.is_none());
        let validated = cli.to_config().unwrap().validate().unwrap();
        assert!(validated.raw.introspection.is_some());
    }

    let plain = run_args(&[]);
    let topology = Topology::new(&plain);
    assert!(!idp_args(&plain, &topology).contains(&"--opaque-tokens".to_owned()));
    assert!(!rs_args(&plain, &topology).contains(&"--introspection-endpoint".to_owned()));

    // Dex started by hand cannot be told to issue opaque tokens.
    assert!(Cli::try_parse_from(["demo", "--opaque-tokens", "--external-idp"]).is_err());
}

#[test]
fn dpop_requires_dpop_everywhere_and_needs_mcp_ready() {
    let args = run_args(&["--mcp-ready", "--dpop"]);
    let topology = Topology::new(&args);
    let rs = rs_args(&args, &topology);
    let cli = resource_server::cli::Cli::parse_from(
        std::iter::once("resource-server".to_owned()).chain(rs.into_iter().skip(1)),
    );
    assert_eq!(cli.dpop, mcp_resource_server::auth::DpopPolicy::Required);
    let cache = std::path::Path::new("/tmp/cache");
    for step in client_steps(&args, &topology, cache) {
        let position = step.args.iter().position(|a| a == "--dpop");
        assert_eq!(
            position.map(|i| step.args[i + 1].as_str()),
            Some("always"),
            "{}",
            step.title
        );
    }
    let without = run_args(&["--mcp-ready"]);
    for step in client_steps(&without, &Topology::new(&without), cache) {
        assert!(!step.args.contains(&"--dpop".to_owned()));
    }
    assert!(
        Cli::try_parse_from(["demo", "--dpop"]).is_err(),
        "Dex (and dev-idp without --mcp-ready) has no DPoP"
    );
}
