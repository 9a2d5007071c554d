//! Case 1: oidc-provider as an MCP-ready authorization server (open dynamic registration,
//! PKCE, resource indicators issuing JWT access tokens with `aud` = the resource, refresh
//! tokens), with the project's client (headless) and resource server.
//!
//! The client registers, authorizes and calls a tool over Streamable HTTP; then over the
//! legacy SSE transport (a second resource, `/sse`, hence a second authorization with the
//! same registration); then, once the first access token has expired, calls again over
//! Streamable HTTP: the resource server refuses the expired token, the client refreshes
//! (oidc-provider's token endpoint sees `grant_type=refresh_token` with the resource) and
//! the retried call succeeds.

use std::time::Duration;

use anyhow::Context;

use e2e::{
    node::NodePeer,
    scenario::{Outcome, Scenario},
};
use mcp_auth_client::{TransportChoice, cache::TokenSet};
use mcp_auth_proto::{BearerChallenge, BearerError};

use crate::support::{
    ProjectClient, init_tracing, jwt_header_and_claims, start_resource_server, two_plus_three,
};

const CLIENT: &str = "mcp-client (this project)";
const OP: &str = "oidc-provider";
/// Lifetime of oidc-provider's access tokens in this scenario: long enough for the
/// first steps (and the SSE stream, which closes when its token expires), short enough
/// to wait for.
const ACCESS_TOKEN_TTL: u64 = 8;
/// A refresh margin that never refreshes ahead of time, so that the refresh in this
/// scenario can only come from the resource server refusing the expired token.
const NO_EARLY_REFRESH: i64 = -3600;

#[tokio::test]
async fn project_client_and_resource_server_with_oidc_provider() -> Outcome {
    init_tracing();
    let mut scenario =
        Scenario::new("mcp-client -> resource server, oidc-provider as the authorization server");
    let ttl = ACCESS_TOKEN_TTL.to_string();
    let op = scenario
        .step(
            OP,
            "start",
            NodePeer::start(
                OP,
                "oidc-provider.mjs",
                &[],
                &[("OP_ACCESS_TOKEN_TTL", ttl.as_str())],
            ),
        )
        .await?;
    scenario.watch(OP, op.output());
    let issuer = op.ready().to_string();

    // No clock leeway, so that the short-lived token really is refused once expired.
    let rs = scenario
        .step("resource-server", "start", {
            let issuer = issuer.clone();
            start_resource_server("127.0.0.1", move |url| {
                Ok(resource_server::demo_config(url, issuer).with_leeway(Duration::ZERO))
            })
        })
        .await?;
    let mcp_url = format!("{}/mcp", rs.url);
    let sse_url = format!("{}/sse", rs.url);
    let cache = scenario
        .step(CLIENT, "temporary token cache", async {
            Ok(tempfile::tempdir()?)
        })
        .await?;

    // 1. Streamable HTTP: registration, authorization, tool call.
    let mut streamable = scenario
        .step(CLIENT, "set up (Streamable HTTP)", async {
            ProjectClient::new(
                &mcp_url,
                TransportChoice::Streamable,
                cache.path(),
                NO_EARLY_REFRESH,
            )
        })
        .await?;
    scenario
        .step(
            CLIENT,
            "Streamable HTTP: register, authorize, initialize, tools/list",
            streamable.connect_and_list(&["calculator", "weather", "whoami"]),
        )
        .await?;
    let text = scenario
        .step(
            CLIENT,
            "Streamable HTTP: tools/call calculator",
            streamable.call_text("calculator", two_plus_three()),
        )
        .await?;
    scenario.check(
        CLIENT,
        "Streamable HTTP: tools/call calculator",
        text.contains('5'),
        || format!("2 + 3 gave {text:?}"),
    )?;
    let first = streamable.session.tokens().cloned();
    scenario.check(
        CLIENT,
        "Streamable HTTP: token response",
        first.as_ref().is_some_and(|t| {
            t.resource == mcp_url && t.issuer == issuer && t.refresh_token.is_some()
        }),
        || {
            format!(
                "expected tokens for {mcp_url} from {issuer} with a refresh token, got {:?}",
                first
                    .as_ref()
                    .map(|t| (&t.resource, &t.issuer, t.refresh_token.is_some()))
            )
        },
    )?;
    let (header, claims) = scenario
        .step(OP, "JWT access token (RFC 9068)", async {
            let token = first.as_ref().context("no tokens")?;
            jwt_header_and_claims(token.access_token.secret())
        })
        .await?;
    let client_id = first
        .as_ref()
        .map(|t| t.client.client_id.clone())
        .unwrap_or_default();
    scenario.check(
        OP,
        "JWT access token (RFC 9068)",
        header["typ"] == "at+jwt"
            && claims["aud"] == mcp_url.as_str()
            && claims["iss"] == issuer.as_str()
            && claims["client_id"] == client_id.as_str()
            && claims["scope"].as_str().is_some_and(|s| s.split(' ').any(|s| s == "mcp:tools")),
        || {
            format!(
                "expected typ at+jwt, aud {mcp_url}, iss {issuer}, client_id {client_id}, scope with mcp:tools; got header {header} claims {claims}"
            )
        },
    )?;
    let events = op.events();
    scenario.check(
        OP,
        "dynamic registration",
        events
            .iter()
            .filter(|e| e.starts_with("registration "))
            .count()
            == 1,
        || format!("expected exactly one registration: {events:?}"),
    )?;
    scenario.check(
        OP,
        "authorization code grant",
        events.iter().any(|e| {
            e.starts_with("grant authorization_code ")
                && e.ends_with(&format!("resource={mcp_url}"))
        }),
        || format!("no authorization_code grant for {mcp_url}: {events:?}"),
    )?;

    // 2. Legacy SSE: its own resource, the same registration.
    let mut sse = scenario
        .step(CLIENT, "set up (legacy SSE)", async {
            ProjectClient::new(
                &sse_url,
                TransportChoice::Sse,
                cache.path(),
                NO_EARLY_REFRESH,
            )
        })
        .await?;
    scenario
        .step(
            CLIENT,
            "legacy SSE: authorize, open the stream, initialize, tools/list",
            sse.connect_and_list(&["calculator", "whoami"]),
        )
        .await?;
    scenario.check(
        CLIENT,
        "legacy SSE: transport",
        sse.session.transport_name() == Some("sse"),
        || format!("transport in use: {:?}", sse.session.transport_name()),
    )?;
    let text = scenario
        .step(
            CLIENT,
            "legacy SSE: tools/call calculator",
            sse.call_text("calculator", two_plus_three()),
        )
        .await?;
    scenario.check(
        CLIENT,
        "legacy SSE: tools/call calculator",
        text.contains('5'),
        || format!("2 + 3 gave {text:?}"),
    )?;
    let events = op.events();
    scenario.check(
        OP,
        "legacy SSE: registration reused",
        events
            .iter()
            .filter(|e| e.starts_with("registration "))
            .count()
            == 1,
        || format!("the client registered again: {events:?}"),
    )?;
    scenario.check(
        OP,
        "legacy SSE: authorization code grant",
        events.iter().any(|e| {
            e.starts_with("grant authorization_code ")
                && e.ends_with(&format!("resource={sse_url}"))
        }),
        || format!("no authorization_code grant for {sse_url}: {events:?}"),
    )?;

    // 3. The first access token expires; the next call is refused, refreshed, retried.
    let expires_at = first.as_ref().and_then(|t| t.expires_at).unwrap_or(0);
    scenario
        .step(CLIENT, "wait for the access token to expire", async {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs();
            anyhow::ensure!(
                expires_at > 0 && expires_at <= now + ACCESS_TOKEN_TTL + 1,
                "the access token should live {ACCESS_TOKEN_TTL} s, expires_at = {expires_at}, now = {now}"
            );
            tokio::time::sleep(Duration::from_secs((expires_at + 1).saturating_sub(now))).await;
            Ok(())
        })
        .await?;
    scenario
        .step(
            "resource-server",
            "refuse the expired access token",
            expect_expired_token_refused(&mcp_url, first.as_ref()),
        )
        .await?;
    let text = scenario
        .step(
            CLIENT,
            "Streamable HTTP after expiry: refresh, retry tools/call calculator",
            streamable.call_text("calculator", two_plus_three()),
        )
        .await?;
    scenario.check(
        CLIENT,
        "Streamable HTTP after expiry: tools/call calculator",
        text.contains('5'),
        || format!("2 + 3 gave {text:?}"),
    )?;
    let refreshed = streamable.session.tokens().cloned();
    scenario.check(
        CLIENT,
        "refresh",
        refreshed
            .as_ref()
            .zip(first.as_ref())
            .is_some_and(|(new, old)| new.access_token.secret() != old.access_token.secret()),
        || "the client still holds the expired access token".to_string(),
    )?;
    let events = op.events();
    scenario.check(
        OP,
        "refresh token grant",
        events.iter().any(|e| {
            e.starts_with("grant refresh_token ") && e.ends_with(&format!("resource={mcp_url}"))
        }),
        || format!("oidc-provider saw no refresh_token grant for {mcp_url}: {events:?}"),
    )?;
    scenario.check(
        OP,
        "refresh instead of a new authorization",
        events
            .iter()
            .filter(|e| e.starts_with("authorization "))
            .count()
            == 2,
        || format!("expected two authorizations (/mcp and /sse) and no third: {events:?}"),
    )?;
    Ok(())
}

/// Sends the expired access token to the resource server: 401 with an `invalid_token`
/// challenge that points at the Protected Resource Metadata.
async fn expect_expired_token_refused(
    mcp_url: &str,
    tokens: Option<&TokenSet>,
) -> anyhow::Result<()> {
    let token = tokens.context("no tokens")?.access_token.secret();
    let response = reqwest::Client::new()
        .post(mcp_url)
        .bearer_auth(token)
        .header("Accept", "application/json, text/event-stream")
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await?;
    let status = response.status();
    let challenge = BearerChallenge::find(
        response
            .headers()
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    anyhow::ensure!(
        status == 401
            && challenge.as_ref().is_some_and(|c| {
                c.error == Some(BearerError::InvalidToken) && c.resource_metadata.is_some()
            }),
        "expected 401 with an invalid_token challenge, got {status} {challenge:?}"
    );
    Ok(())
}
