//! Case 2: the official TypeScript SDK's client (Streamable HTTP, its own OAuth
//! machinery, redirects followed by hand) authorizes against the project's resource
//! server and calls a tool, once with oidc-provider and once with dev-idp in its
//! MCP-ready mode as the authorization server.

use std::time::Duration;

use dev_idp::Features;
use e2e::{
    node::{NodePeer, run_script},
    scenario::{Outcome, Scenario},
};
use serde_json::Value;

use crate::support::{init_tracing, start_dev_idp, start_resource_server};

const TS_CLIENT: &str = "ts-client (@modelcontextprotocol/sdk)";

/// Runs `ts-client.mjs` against `mcp_url` and checks its result line.
async fn run_ts_client(scenario: &Scenario, mcp_url: &str, issuer: &str) -> anyhow::Result<Value> {
    let output = scenario
        .step(
            TS_CLIENT,
            "run the client",
            run_script("ts-client.mjs", &[mcp_url], &[], Duration::from_secs(60)),
        )
        .await?;
    let result = scenario
        .step(TS_CLIENT, "read the result line", async {
            output.result_json()
        })
        .await?;
    let failed_step = result["step"].as_str().unwrap_or("?");
    scenario.check(
        TS_CLIENT,
        failed_step,
        result["ok"] == true && output.success,
        || {
            format!(
                "ts-client failed at `{failed_step}`: {}\nstderr:\n{}",
                result["error"], output.stderr
            )
        },
    )?;
    let request = &result["authorization_request"];
    scenario.check(
        TS_CLIENT,
        "authorization request",
        request["resource"] == mcp_url,
        || format!("sent resource {} instead of {mcp_url}", request["resource"]),
    )?;
    scenario.check(
        TS_CLIENT,
        "authorization request",
        request["code_challenge_method"] == "S256",
        || format!("code_challenge_method {}", request["code_challenge_method"]),
    )?;
    scenario.check(
        TS_CLIENT,
        "dynamic registration",
        result["registered_client_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        || format!("no client was registered: {result}"),
    )?;
    scenario.check(
        TS_CLIENT,
        "authorization response",
        result["callback_iss"] == issuer,
        || {
            format!(
                "callback iss {} instead of {issuer}",
                result["callback_iss"]
            )
        },
    )?;
    let tools: Vec<&str> = result["tools"]
        .as_array()
        .map(|t| t.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    scenario.check(
        TS_CLIENT,
        "tools/list",
        tools.contains(&"calculator") && tools.contains(&"whoami"),
        || format!("unexpected tool list {tools:?}"),
    )?;
    scenario.check(
        TS_CLIENT,
        "tools/call calculator",
        result["call"]["isError"] == false
            && result["call"]["text"]
                .as_str()
                .is_some_and(|t| t.contains('5')),
        || format!("2 + 3 gave {}", result["call"]),
    )?;
    Ok(result)
}

#[tokio::test]
async fn ts_client_with_oidc_provider_against_resource_server() -> Outcome {
    init_tracing();
    let mut scenario = Scenario::new("TS SDK client -> resource server, tokens from oidc-provider");
    let op = scenario
        .step(
            "oidc-provider",
            "start",
            NodePeer::start("oidc-provider", "oidc-provider.mjs", &[], &[]),
        )
        .await?;
    scenario.watch("oidc-provider", op.output());
    let issuer = op.ready().to_string();

    let rs = scenario
        .step("resource-server", "start", {
            let issuer = issuer.clone();
            start_resource_server("127.0.0.1", move |url| {
                Ok(resource_server::demo_config(url, issuer))
            })
        })
        .await?;
    let mcp_url = format!("{}/mcp", rs.url);

    run_ts_client(&scenario, &mcp_url, &issuer).await?;

    let events = op.events();
    scenario.check(
        "oidc-provider",
        "token endpoint",
        events.iter().any(|e| {
            e.starts_with("grant authorization_code ")
                && e.ends_with(&format!("resource={mcp_url}"))
        }),
        || format!("no authorization_code grant for {mcp_url}: {events:?}"),
    )?;
    Ok(())
}

#[tokio::test]
async fn ts_client_with_dev_idp_mcp_ready_against_resource_server() -> Outcome {
    init_tracing();
    let scenario =
        Scenario::new("TS SDK client -> resource server, tokens from dev-idp --mcp-ready");
    let idp = scenario
        .step(
            "dev-idp",
            "start (MCP-ready mode)",
            start_dev_idp("127.0.0.1", "/dex", Features::mcp_ready()),
        )
        .await?;
    let issuer = idp.issuer.clone();
    let rs = scenario
        .step("resource-server", "start", {
            let issuer = issuer.clone();
            start_resource_server("127.0.0.1", move |url| {
                Ok(resource_server::demo_config(url, issuer))
            })
        })
        .await?;
    let mcp_url = format!("{}/mcp", rs.url);
    run_ts_client(&scenario, &mcp_url, &issuer).await?;
    Ok(())
}
