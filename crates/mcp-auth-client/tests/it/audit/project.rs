//! The audit of the project's own resource server, in-process on 127.0.0.1:0, with
//! dev-idp in each of its modes: MCP-ready (stateful and stateless Streamable HTTP), and
//! Dex-like, found by OIDC discovery or through the static metadata server of the
//! docker-compose topology. Logged in headlessly; `admin_status` needs `mcp:admin`.

use std::path::Path;

use dev_idp::Features;
use mcp_auth_client::audit::{CheckId, Report, Status};
use mcp_auth_client::registration::ClientConfig;

use testkit::dex::{LocalDex, repo_root};

use super::{audit, expect, expect_no_failure, login};
use crate::support::ResourceServer;

use CheckId::*;
use Status::{Fail, Pass, Warn};

/// The servers of one test; stopped on drop.
#[derive(Default)]
struct Running {
    idps: Vec<LocalDex>,
    servers: Vec<ResourceServer>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn listener() -> (tokio::net::TcpListener, u16) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

/// dev-idp from the repository's dex-config.yaml, issuer `http://127.0.0.1:<port>/dex`.
async fn idp(features: Features, running: &mut Running) -> String {
    let idp = LocalDex::auto_login(features).await;
    let issuer = idp.issuer.clone();
    running.idps.push(idp);
    issuer
}

/// The resource server; `configure` gets its public URL.
async fn resource_server(
    running: &mut Running,
    configure: impl FnOnce(&str) -> mcp_resource_server::Config,
) -> String {
    let server = ResourceServer::start(configure).await;
    let base = server.base.clone();
    running.servers.push(server);
    base
}

/// The resource server configured for Dex, as the README and `demo` give it.
fn dex_flags(base: &str, issuer: &str, authorization_server: &str) -> mcp_resource_server::Config {
    resource_server::demo_config(base, issuer)
        .with_authorization_servers([authorization_server])
        .with_jwks_uri(format!("{issuer}/keys"))
        .with_audiences(["mcp-resource-server"])
        .with_scopes_supported(["openid", "audience:server:client_id:mcp-resource-server"])
        .with_required_scopes(Vec::<String>::new())
}

/// Checks that every setup of the project passes.
const ALWAYS_PASS: &[CheckId] = &[
    TransportHttps,
    TransportOrigin,
    ChallengeStatus,
    ChallengeHeader,
    ChallengeResourceMetadata,
    ChallengeNoErrorCode,
    ChallengeEveryMethod,
    TokenInvalid,
    TokenUnsigned,
    PrmFound,
    PrmChallengeUrl,
    PrmPathInserted,
    PrmRoot,
    PrmContentType,
    PrmResource,
    PrmAuthorizationServers,
    PrmBearerMethods,
    PrmCors,
    ScopeOfflineAccess,
    AsDiscovery,
    AsIssuer,
    AsRequiredMembers,
    AsPkceS256,
    LoginFlow,
    TokenAccepted,
    TokenQuery,
    ScopeInsufficient,
];

fn expect_all(report: &Report, ids: &[CheckId], want: Status) {
    let pairs: Vec<(CheckId, Status)> = ids.iter().map(|id| (*id, want)).collect();
    expect(report, &pairs);
}

#[tokio::test]
async fn mcp_ready_stateful_and_stateless() {
    for stateless in [false, true] {
        let mut running = Running::default();
        let issuer = idp(Features::mcp_ready(), &mut running).await;
        let base = resource_server(&mut running, |base| {
            resource_server::demo_config(base, &issuer).with_stateless(stateless)
        })
        .await;
        let (report, trace) = audit(
            &format!("{base}/mcp"),
            Some(login(ClientConfig::default(), Some("admin_status"))),
        )
        .await;
        expect_no_failure(&report);
        expect_all(&report, ALWAYS_PASS, Pass);
        // Everything dev-idp --mcp-ready adds to Dex shows.
        expect_all(
            &report,
            &[
                ChallengeScope,
                AsContentType,
                AsIssParameter,
                LoginIss,
                TokenAudience,
                DpopAdvertised,
            ],
            Pass,
        );
        // What it still lacks: CIMD, CORS on its metadata (only for configured
        // origins).
        expect_all(&report, &[AsRegistration, AsCors], Warn);
        let seen = &report.check(ScopeInsufficient).unwrap().seen;
        assert!(
            seen.contains("insufficient_scope") && seen.contains("mcp:admin"),
            "{seen}"
        );
        assert!(trace.contains("dynamic client registration"), "{trace}");
    }
}

#[tokio::test]
async fn dex_like_found_by_oidc_discovery() {
    let mut running = Running::default();
    let issuer = idp(Features::default(), &mut running).await;
    let base = resource_server(&mut running, |base| dex_flags(base, &issuer, &issuer)).await;
    let client = ClientConfig {
        client_id: Some("mcp-client".into()),
        ..ClientConfig::default()
    };
    let (report, _) = audit(
        &format!("{base}/mcp"),
        Some(login(client, Some("admin_status"))),
    )
    .await;
    expect_no_failure(&report);
    expect_all(&report, ALWAYS_PASS, Pass);
    expect(&report, &[(AsContentType, Pass)]);
    // Dex's own gaps, each a warning: no scope in the challenge (none is required of Dex
    // tokens), no CIMD and no registration, no iss, no CORS for foreign origins, no DPoP,
    // and aud = client ids rather than the resource.
    expect_all(
        &report,
        &[
            ChallengeScope,
            AsRegistration,
            AsIssParameter,
            AsCors,
            DpopAdvertised,
            LoginIss,
            TokenAudience,
        ],
        Warn,
    );
    let seen = &report.check(AsDiscovery).unwrap().seen;
    assert!(
        seen.contains("/dex/.well-known/openid-configuration (OIDC path appending)"),
        "{seen}"
    );
    let aud = &report.check(TokenAudience).unwrap().seen;
    assert!(aud.contains("mcp-resource-server"), "{aud}");
}

/// Serves a copy of the repository's static-metadata/ with the issuer and URL rewritten,
/// through the demo's busybox-like static server.
async fn static_metadata(issuer: &str, dir: &Path, running: &mut Running) -> String {
    let (l, port) = listener().await;
    let url = format!("http://127.0.0.1:{port}");
    let source = repo_root().join("static-metadata/.well-known");
    let target = dir.join(".well-known");
    std::fs::create_dir_all(&target).unwrap();
    for entry in std::fs::read_dir(source).unwrap() {
        let entry = entry.unwrap();
        let text = std::fs::read_to_string(entry.path())
            .unwrap()
            .replace("http://localhost:5556/dex", issuer)
            .replace("http://localhost:5558", &url);
        std::fs::write(target.join(entry.file_name()), text).unwrap();
    }
    let root = dir.to_path_buf();
    running.tasks.push(tokio::spawn(async move {
        let _ = demo::static_server::serve(&root, l, std::future::pending()).await;
    }));
    url
}

#[tokio::test]
async fn dex_like_through_the_static_metadata_server() {
    let mut running = Running::default();
    let issuer = idp(Features::default(), &mut running).await;
    let dir = tempfile::tempdir().unwrap();
    let metadata = static_metadata(&issuer, dir.path(), &mut running).await;
    let base = resource_server(&mut running, |base| dex_flags(base, &issuer, &metadata)).await;
    let client = ClientConfig {
        client_id: Some("mcp-client".into()),
        ..ClientConfig::default()
    };
    let (report, _) = audit(
        &format!("{base}/mcp"),
        Some(login(client, Some("admin_status"))),
    )
    .await;
    expect_all(&report, ALWAYS_PASS, Pass);
    // busybox serves the extension-less well-known file as application/octet-stream, with
    // no CORS: the one failure of the original demo's topology.
    expect(&report, &[(AsContentType, Fail), (AsCors, Warn)]);
    let seen = &report.check(AsContentType).unwrap().seen;
    assert!(seen.contains("application/octet-stream"), "{seen}");
    let failed: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| c.status == Fail)
        .map(|c| c.id)
        .collect();
    assert_eq!(failed, ["as.content-type"], "{}", report.to_text());
}
