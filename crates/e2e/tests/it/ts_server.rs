//! Case 3: the project's client against the official TypeScript SDK's server
//! (`requireBearerAuth` + `mcpAuthMetadataRouter`, JWTs from oidc-provider verified with
//! `jose`): it discovers, registers, authorizes headlessly and calls a tool.

use e2e::{
    node::NodePeer,
    scenario::{Outcome, Scenario},
};
use mcp_auth_client::TransportChoice;

use crate::support::{ProjectClient, init_tracing, two_plus_three};

const CLIENT: &str = "mcp-client (this project)";

#[tokio::test]
async fn project_client_against_ts_sdk_server() -> Outcome {
    init_tracing();
    let mut scenario = Scenario::new("mcp-client -> TS SDK server, tokens from oidc-provider");
    let op = scenario
        .step(
            "oidc-provider",
            "start",
            NodePeer::start("oidc-provider", "oidc-provider.mjs", &[], &[]),
        )
        .await?;
    scenario.watch("oidc-provider", op.output());
    let issuer = op.ready().to_string();

    let server = scenario
        .step(
            "ts-server (@modelcontextprotocol/sdk)",
            "start",
            NodePeer::start(
                "ts-server",
                "ts-server.mjs",
                &[],
                &[("AS_ISSUER", issuer.as_str())],
            ),
        )
        .await?;
    scenario.watch("ts-server", server.output());
    let mcp_url = server.ready().to_string();

    let cache = scenario
        .step(CLIENT, "temporary token cache", async {
            Ok(tempfile::tempdir()?)
        })
        .await?;
    let mut client = scenario
        .step(CLIENT, "set up", async {
            ProjectClient::new(&mcp_url, TransportChoice::Streamable, cache.path(), 60)
        })
        .await?;
    scenario
        .step(
            CLIENT,
            "discover, register, authorize, initialize, tools/list",
            client.connect_and_list(&["calculator", "echo"]),
        )
        .await?;
    let text = scenario
        .step(
            CLIENT,
            "tools/call calculator",
            client.call_text("calculator", two_plus_three()),
        )
        .await?;
    scenario.check(CLIENT, "tools/call calculator", text.trim() == "5", || {
        format!("2 + 3 gave {text:?}")
    })?;

    let tokens = client.session.tokens();
    scenario.check(
        CLIENT,
        "token request",
        tokens.is_some_and(|t| t.resource == mcp_url && t.issuer == issuer),
        || {
            format!(
                "tokens not bound to resource {mcp_url} from {issuer}: {:?}",
                tokens.map(|t| (&t.resource, &t.issuer))
            )
        },
    )?;
    let events = op.events();
    scenario.check(
        "oidc-provider",
        "dynamic registration",
        events.iter().any(|e| e.starts_with("registration ")),
        || format!("the client did not register: {events:?}"),
    )?;
    scenario.check(
        "oidc-provider",
        "token endpoint",
        events.iter().any(|e| {
            e.starts_with("grant authorization_code ")
                && e.ends_with(&format!("resource={mcp_url}"))
        }),
        || format!("no authorization_code grant for resource {mcp_url}: {events:?}"),
    )?;
    Ok(())
}
