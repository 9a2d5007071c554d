//! Case 4: the docker-compose topology without Docker. dev-idp stands in for Dex, in Dex
//! mode, from the repository's `dex-config.yaml`; the busybox-like static server of the
//! demo serves the repository's `static-metadata/`; the resource server runs with the
//! flags the README gives Dex users; the project's client is the pre-registered public
//! client `mcp-client`, headless.
//!
//! The fixed ports of the compose file (5556, 5558, 3001) become ephemeral ones, and the
//! static metadata is copied with its URLs rewritten to them, as `demo` does. Host names
//! stay `localhost`, as in the compose topology.

use std::path::Path;

use anyhow::Context;
use clap::Parser;
use dev_idp::Features;
use e2e::scenario::{Outcome, Scenario};
use mcp_auth_client::TransportChoice;
use mcp_auth_client::audience::AudiencePolicy;
use resource_server::cli::Cli as RsCli;
use serde_json::json;

use crate::support::{
    ProjectClient, Running, init_tracing, loopback_listener, repo_root, start_dev_idp,
    start_resource_server, two_plus_three,
};

const CLIENT: &str = "mcp-client (this project)";
const DEX_CLIENT_ID: &str = "mcp-client";

/// How the client finds the authorization server.
#[derive(Debug, Clone, Copy)]
enum Discovery {
    /// PRM names the static metadata server (RFC 8414 document pointing at Dex).
    StaticMetadata,
    /// PRM names Dex's issuer; the client appends `/.well-known/openid-configuration`.
    OidcDiscovery,
}

/// Copies `from` to `to`, rewriting the compose topology's URLs.
fn copy_rewritten(from: &Path, to: &Path, rewrite: &dyn Fn(&str) -> String) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_rewritten(&entry.path(), &target, rewrite)?;
        } else {
            let text = std::fs::read_to_string(entry.path())
                .with_context(|| format!("reading {}", entry.path().display()))?;
            std::fs::write(&target, rewrite(&text))?;
        }
    }
    Ok(())
}

/// Serves a rewritten copy of `static-metadata/` with the demo's static server.
async fn start_static_metadata(issuer: &str, dir: &Path) -> anyhow::Result<Running> {
    let listener = loopback_listener().await?;
    let url = format!("http://localhost:{}", listener.local_addr()?.port());
    let source = repo_root().join("static-metadata");
    let (issuer_owned, url_owned) = (issuer.to_string(), url.clone());
    copy_rewritten(&source, dir, &move |text| {
        text.replace("http://localhost:5556/dex", &issuer_owned)
            .replace("http://localhost:5558", &url_owned)
    })?;
    let root = dir.to_path_buf();
    let task = tokio::spawn(async move {
        if let Err(err) = demo::static_server::serve(&root, listener, std::future::pending()).await
        {
            tracing::error!(%err, "static metadata server stopped");
        }
    });
    Ok(Running::new(url, task))
}

async fn dex_topology(discovery: Discovery) -> Outcome {
    init_tracing();
    let scenario = Scenario::new(format!(
        "docker-compose topology without Docker ({discovery:?}): dev-idp in Dex mode, static metadata, resource server, mcp-client"
    ));
    let idp = scenario
        .step(
            "dev-idp",
            "start in Dex mode from dex-config.yaml",
            start_dev_idp("localhost", "/dex", Features::default()),
        )
        .await?;
    let issuer = idp.issuer.clone();
    let static_dir = scenario
        .step("static metadata server", "temporary directory", async {
            Ok(tempfile::tempdir()?)
        })
        .await?;
    let metadata = scenario
        .step(
            "static metadata server",
            "start",
            start_static_metadata(&issuer, static_dir.path()),
        )
        .await?;

    // The resource server's command line for Dex, as the README and `demo` give it: Dex's
    // client id as the audience, scopes Dex accepts, no scope claim to require.
    let authorization_server = match discovery {
        Discovery::StaticMetadata => metadata.url.clone(),
        Discovery::OidcDiscovery => issuer.clone(),
    };
    let rs = scenario
        .step(
            "resource-server",
            "start with the Dex flags",
            start_resource_server("localhost", |public_url| {
                let jwks_uri = format!("{issuer}/keys");
                let cli = RsCli::try_parse_from([
                    "resource-server",
                    "--public-url",
                    public_url,
                    "--issuer",
                    &issuer,
                    "--authorization-server",
                    &authorization_server,
                    "--jwks-uri",
                    &jwks_uri,
                    "--audience",
                    "mcp-resource-server",
                    "--scopes-supported",
                    "openid,audience:server:client_id:mcp-resource-server",
                    "--required-scopes",
                    "",
                ])?;
                Ok(cli.to_config()?)
            }),
        )
        .await?;
    let mcp_url = format!("{}/mcp", rs.url);

    let cache = scenario
        .step(CLIENT, "temporary token cache", async {
            Ok(tempfile::tempdir()?)
        })
        .await?;
    let mut client = scenario
        .step(CLIENT, "set up (pre-registered client id)", async {
            let mut options = ProjectClient::options(&mcp_url, TransportChoice::Streamable, 60)?;
            options.authorize.client.client_id = Some(DEX_CLIENT_ID.to_string());
            // Dex's tokens name the resource server's Dex client, not its URL: allowed
            // for this server, as `--allow-audience` does.
            options.audiences =
                AudiencePolicy::new().with(format!("{}=mcp-resource-server", rs.url).parse()?);
            ProjectClient::with_options(options, cache.path())
        })
        .await?;
    scenario
        .step(
            CLIENT,
            "discover, authorize as the pre-registered public client, initialize, tools/list",
            client.connect_and_list(&["calculator", "weather", "whoami", "admin_status"]),
        )
        .await?;
    let text = scenario
        .step(
            CLIENT,
            "tools/call calculator",
            client.call_text("calculator", two_plus_three()),
        )
        .await?;
    scenario.check(CLIENT, "tools/call calculator", text.contains('5'), || {
        format!("2 + 3 gave {text:?}")
    })?;
    let whoami = scenario
        .step(
            CLIENT,
            "tools/call whoami",
            client.call_text("whoami", json!({})),
        )
        .await?;
    scenario.check(
        CLIENT,
        "tools/call whoami",
        whoami.contains("mcp-resource-server") && whoami.contains(DEX_CLIENT_ID),
        || format!("whoami should show aud mcp-resource-server and azp {DEX_CLIENT_ID}: {whoami}"),
    )?;
    scenario.check(
        CLIENT,
        "tools/call whoami explains the empty scope list",
        whoami.contains("Dex puts none in its tokens"),
        || format!("whoami should say why scopes is empty: {whoami}"),
    )?;
    let tokens = client.session.tokens();
    scenario.check(
        CLIENT,
        "token request",
        tokens.is_some_and(|t| t.issuer == expected_issuer(discovery, &issuer, &metadata.url)),
        || format!("tokens from {:?}", tokens.map(|t| &t.issuer)),
    )?;

    // Dex cannot grant mcp:admin: the step-up fails and the call is refused.
    let admin = client.session.call_tool("admin_status", json!({})).await;
    scenario.check(
        CLIENT,
        "tools/call admin_status (needs mcp:admin, which Dex cannot grant)",
        admin.is_err(),
        || format!("admin_status succeeded with a Dex token: {admin:?}"),
    )?;
    let trace = client.trace();
    scenario.check(
        CLIENT,
        "tools/call admin_status",
        trace.contains("insufficient_scope"),
        || format!("the client's trace shows no 403 insufficient_scope:\n{trace}"),
    )?;
    Ok(())
}

/// The issuer the client records: the metadata's `issuer`, which for the static document
/// is the static server itself.
fn expected_issuer(discovery: Discovery, dex_issuer: &str, static_url: &str) -> String {
    match discovery {
        Discovery::StaticMetadata => static_url.to_string(),
        Discovery::OidcDiscovery => dex_issuer.to_string(),
    }
}

#[tokio::test]
async fn dex_mode_with_static_metadata() -> Outcome {
    dex_topology(Discovery::StaticMetadata).await
}

#[tokio::test]
async fn dex_mode_with_oidc_discovery() -> Outcome {
    dex_topology(Discovery::OidcDiscovery).await
}
