//! The whole flow against the mock: discovery, registration, authorization, tokens,
//! refresh (with rotation), re-authorization, step-up and its limit.

use mcp_auth_client::ClientError;
use serde_json::json;

use testkit::client_side::{Break, ClientSideConfig, ClientSideServer};

use crate::support::{assert_no_secrets, config, options, session, text};

#[tokio::test]
async fn authorizes_lists_and_calls_then_reuses_the_cache() {
    let mock = ClientSideServer::start(config()).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut s, buf) = session(options(&mock.mcp_url()), dir.path());
    s.connect().await.unwrap();
    let tools = s.list_tools().await.unwrap();
    assert_eq!(tools.len(), 2, "SSE-framed tools/list is read");
    let r = s.call_tool("echo", json!({})).await.unwrap();
    assert_eq!(r["content"][0]["text"], "called echo");
    assert_eq!(s.transport_name(), Some("streamable-http"));

    let log = mock.log();
    // One registration, one authorization with the challenge's scope + offline_access,
    // PKCE S256 and resource, one code exchange with the same resource.
    assert_eq!(mock.count("register"), 1, "{log:?}");
    // A loopback redirect: a native application (OIDC registration, MCP 2026-07-28).
    assert!(
        log.contains(&"register application_type=native".to_owned()),
        "{log:?}"
    );
    let resource = mock.mcp_url();
    assert!(
        log.contains(&format!(
            "authorize scope=mcp:tools offline_access resource={resource} method=S256"
        )),
        "{log:?}"
    );
    assert!(
        log.contains(&format!(
            "token grant=authorization_code resource={resource}"
        )),
        "{log:?}"
    );
    let trace = text(&buf);
    assert!(trace.contains("[discovery] GET"), "{trace}");
    assert!(
        trace.contains("served as application/octet-stream"),
        "{trace}"
    );
    assert!(trace.contains("iss"), "{trace}");
    assert_no_secrets(&trace);

    // A second session reuses the cached token: no new authorization.
    let (mut s2, buf2) = session(options(&mock.mcp_url()), dir.path());
    s2.connect().await.unwrap();
    s2.list_tools().await.unwrap();
    assert_eq!(mock.count("authorize"), 1);
    assert_eq!(s2.authorizations(), 0);
    assert!(text(&buf2).contains("cached tokens for"));
}

#[tokio::test]
async fn refreshes_on_401_and_keeps_the_rotated_refresh_token() {
    let mock = ClientSideServer::start(config()).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = session(options(&mock.mcp_url()), dir.path());
    s.connect().await.unwrap();
    let first_refresh = s.tokens().unwrap().refresh_token.clone().unwrap();

    mock.revoke_access_tokens();
    s.list_tools().await.unwrap();
    assert_eq!(mock.count("authorize"), 1, "refreshed, not re-authorized");
    assert_eq!(mock.count("token grant=refresh_token"), 1);
    assert!(mock.log().contains(&format!(
        "token grant=refresh_token resource={}",
        mock.mcp_url()
    )));
    let second_refresh = s.tokens().unwrap().refresh_token.clone().unwrap();
    assert_ne!(first_refresh.secret(), second_refresh.secret(), "rotated");

    // The rotated token is the one on disk: a new session can refresh with it.
    mock.revoke_access_tokens();
    let (mut s2, _) = session(options(&mock.mcp_url()), dir.path());
    s2.connect().await.unwrap();
    assert_eq!(mock.count("token grant=refresh_token"), 2);
    assert_eq!(mock.count("authorize"), 1);
}

#[tokio::test]
async fn refreshes_before_expiry() {
    let mock = ClientSideServer::start(ClientSideConfig {
        expires_in: 30,
        ..config()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (mut s, buf) = session(options(&mock.mcp_url()), dir.path());
    s.connect().await.unwrap();
    // Expires in 30 s, within the 60 s margin: the next operation refreshes first.
    s.list_tools().await.unwrap();
    assert!(
        mock.count("token grant=refresh_token") >= 1,
        "{:?}",
        mock.log()
    );
    assert!(text(&buf).contains("expires soon"));
    assert!(
        !mock
            .log()
            .iter()
            .any(|l| l.ends_with(" 401") && l.contains("tools/list"))
    );
}

#[tokio::test]
async fn authorizes_again_when_refresh_fails() {
    let mock = ClientSideServer::start(config()).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut s, buf) = session(options(&mock.mcp_url()), dir.path());
    s.connect().await.unwrap();
    mock.revoke_access_tokens();
    mock.revoke_refresh_tokens();
    s.list_tools().await.unwrap();
    assert_eq!(mock.count("authorize"), 2);
    assert!(text(&buf).contains("refresh failed"));
}

#[tokio::test]
async fn steps_up_on_insufficient_scope() {
    let mock = ClientSideServer::start(config()).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut s, buf) = session(options(&mock.mcp_url()), dir.path());
    s.connect().await.unwrap();
    let r = s.call_tool("admin", json!({})).await.unwrap();
    assert_eq!(r["content"][0]["text"], "called admin");
    let auths: Vec<String> = mock
        .log()
        .into_iter()
        .filter(|l| l.starts_with("authorize"))
        .collect();
    assert_eq!(auths.len(), 2, "{auths:?}");
    assert!(
        auths[1].starts_with("authorize scope=mcp:tools offline_access mcp:admin"),
        "{auths:?}"
    );
    assert!(text(&buf).contains("step-up"));
    assert!(
        s.tokens()
            .unwrap()
            .scope
            .as_deref()
            .unwrap()
            .contains("mcp:admin")
    );
}

#[tokio::test]
async fn gives_up_after_three_authorizations_in_the_whole_session() {
    let mock = ClientSideServer::start(config().with(Break::AdminScopeNeverGranted)).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = session(options(&mock.mcp_url()), dir.path());
    s.connect().await.unwrap();
    assert_eq!(mock.count("authorize"), 1);
    // The budget is the session's: the connect used one, the step-ups get the rest.
    let err = s.call_tool("admin", json!({})).await.unwrap_err();
    assert_eq!(mock.count("authorize"), 3, "{:?}", mock.log());
    assert_eq!(s.authorizations(), 3);
    let msg = err.to_string();
    assert!(msg.contains("gave up after 3 authorizations"), "{msg}");
    assert!(msg.contains("mcp:admin"), "{msg}");
    // A later operation finds the budget spent: no new authorization.
    let err = s.call_tool("admin", json!({})).await.unwrap_err();
    assert!(
        matches!(err, ClientError::TooManyAuthorizations { .. }),
        "{err}"
    );
    assert_eq!(mock.count("authorize"), 3);
}
