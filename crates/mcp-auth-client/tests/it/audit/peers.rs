//! The audit against third-party peers from `interop/` (installed with
//! `npm ci --prefix interop`), run as child processes as `crates/e2e` runs them:
//! oidc-provider as the authorization server, in front of the TypeScript SDK's server and
//! in front of the project's resource server.

use e2e::node::NodePeer;
use mcp_auth_client::audit::{CheckId, Status};
use mcp_auth_client::registration::ClientConfig;

use super::{audit, expect, expect_no_failure, login};

use CheckId::*;
use Status::{Fail, NotApplicable, Pass, Warn};

async fn oidc_provider() -> NodePeer {
    NodePeer::start("oidc-provider", "oidc-provider.mjs", &[], &[])
        .await
        .expect("oidc-provider starts (npm ci --prefix interop)")
}

/// What oidc-provider, as configured in interop/, shows as an MCP authorization server.
const OIDC_PROVIDER: &[(CheckId, Status)] = &[
    (AsDiscovery, Pass),
    (AsIssuer, Pass),
    (AsContentType, Pass),
    (AsRequiredMembers, Pass),
    (AsPkceS256, Pass),
    (AsIssParameter, Pass),
    (AsCors, Pass),
    (DpopAdvertised, Pass),
    // Dynamic registration, no client ID metadata documents.
    (AsRegistration, Warn),
    (LoginFlow, Pass),
    (LoginIss, Pass),
    (TokenAudience, Pass),
];

#[tokio::test]
async fn typescript_sdk_server_with_oidc_provider() {
    let op = oidc_provider().await;
    let server = NodePeer::start(
        "ts-server",
        "ts-server.mjs",
        &[],
        &[("AS_ISSUER", op.ready())],
    )
    .await
    .expect("ts-server starts");
    let (report, _) = audit(server.ready(), Some(login(ClientConfig::default(), None))).await;
    expect(&report, OIDC_PROVIDER);
    expect(
        &report,
        &[
            (ChallengeStatus, Pass),
            (ChallengeHeader, Pass),
            (ChallengeResourceMetadata, Pass),
            (ChallengeScope, Pass),
            (ChallengeEveryMethod, Pass),
            (TokenInvalid, Pass),
            (TokenUnsigned, Pass),
            (PrmFound, Pass),
            (PrmChallengeUrl, Pass),
            (PrmPathInserted, Pass),
            (PrmContentType, Pass),
            (PrmResource, Pass),
            (PrmAuthorizationServers, Pass),
            (PrmCors, Pass),
            (TokenAccepted, Pass),
            (TokenQuery, Pass),
            // requireBearerAuth says error="invalid_token" even when no token came.
            (ChallengeNoErrorCode, Warn),
            // mcpAuthMetadataRouter serves the path-inserted document only.
            (PrmRoot, NotApplicable),
            // No tool of this server needs more scope than mcp:tools.
            (ScopeInsufficient, NotApplicable),
            // The SDK's express app checks Host, not Origin: a foreign Origin with a valid
            // token is served.
            (TransportOrigin, Fail),
        ],
    );
    let failed: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| c.status == Fail)
        .map(|c| c.id)
        .collect();
    assert_eq!(failed, ["transport.origin"], "{}", report.to_text());
}

#[tokio::test]
async fn project_resource_server_with_oidc_provider() {
    let op = oidc_provider().await;
    let issuer = op.ready().to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let config = resource_server::demo_config(&base, &issuer);
    let task = tokio::spawn(async move {
        let _ = resource_server::serve(config, listener).await;
    });
    let (report, _) = audit(
        &format!("{base}/mcp"),
        Some(login(ClientConfig::default(), Some("admin_status"))),
    )
    .await;
    task.abort();
    expect_no_failure(&report);
    expect(&report, OIDC_PROVIDER);
    expect(
        &report,
        &[
            (TransportOrigin, Pass),
            (ChallengeNoErrorCode, Pass),
            (PrmRoot, Pass),
            (TokenAccepted, Pass),
            (TokenQuery, Pass),
            (ScopeInsufficient, Pass),
        ],
    );
}
