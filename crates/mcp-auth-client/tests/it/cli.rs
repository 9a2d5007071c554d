//! The command line, driven through `cli::run` as the binary and the demo do.

use std::process::ExitCode;

use clap::Parser;
use mcp_auth_client::cache::Cache;
use mcp_auth_client::cli::{Cli, run};

use testkit::client_side::{Break, ClientSideConfig, ClientSideServer};

use crate::support::config;

async fn mcp_client(args: &[&str]) -> anyhow::Result<ExitCode> {
    let mut argv = vec!["mcp-client"];
    argv.extend_from_slice(args);
    run(Cli::try_parse_from(argv)?).await
}

#[tokio::test]
async fn tools_call_status_and_logout() {
    let mock = ClientSideServer::start(config()).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let url = mock.mcp_url();
    let code = mcp_client(&["--headless", "-q", "--cache-dir", d, "tools", &url])
        .await
        .unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    // URL last, key=value arguments; the cached token is used (no second authorization).
    let code = mcp_client(&[
        "--headless",
        "-q",
        "--cache-dir",
        d,
        "call",
        "echo",
        "x=1",
        &url,
    ])
    .await
    .unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    assert_eq!(mock.count("authorize"), 1);
    assert!(mock.log().contains(&"mcp tools/call 200".to_owned()));
    assert_eq!(
        mcp_client(&["--cache-dir", d, "status"]).await.unwrap(),
        ExitCode::SUCCESS
    );

    assert!(Cache::new(d).load_tokens(&url).unwrap().is_some());
    assert_eq!(
        mcp_client(&["--cache-dir", d, "logout", &url])
            .await
            .unwrap(),
        ExitCode::SUCCESS
    );
    assert!(Cache::new(d).load_tokens(&url).unwrap().is_none());
}

#[tokio::test]
async fn failures_are_errors_not_panics() {
    let mock = ClientSideServer::start(config().with(Break::NoS256)).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let err = mcp_client(&[
        "--headless",
        "-q",
        "--cache-dir",
        d,
        "tools",
        &mock.mcp_url(),
    ])
    .await
    .unwrap_err();
    assert!(err.to_string().contains("does not list S256"), "{err}");
    let err = mcp_client(&["-q", "--cache-dir", d, "call", "http://127.0.0.1:1/mcp"])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("which tool"), "{err}");
    let err = mcp_client(&[
        "-q",
        "--cache-dir",
        d,
        "call",
        "t",
        "not-an-argument",
        "http://127.0.0.1:1/mcp",
    ])
    .await
    .unwrap_err();
    assert!(err.to_string().contains("neither key=value"), "{err}");
    let err = mcp_client(&[
        "-q",
        "--client-metadata-url",
        "http://plain/doc.json",
        "tools",
        "http://127.0.0.1:1/mcp",
    ])
    .await
    .unwrap_err();
    assert!(err.to_string().contains("https URL"), "{err}");
    assert!(mcp_client(&["tools"]).await.is_err() || std::env::var_os("MCP_SERVER_URL").is_some());
}

#[tokio::test]
async fn check_has_one_authorization_budget_for_all_its_steps() {
    // Every tool wants a new authorization once: without one budget per run, `check`
    // would authorize once per tool (up to 3 each), 21 times here.
    let mock = ClientSideServer::start(ClientSideConfig {
        extra_tools: 20,
        refresh_tokens: false,
        ..config().with(Break::ReauthorizePerTool)
    })
    .await;
    let err = mcp_client(&["--headless", "-q", "--no-cache", "check", &mock.mcp_url()])
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("gave up after 3 authorizations"),
        "{err}"
    );
    assert_eq!(mock.count("authorize"), 3, "{:?}", mock.log());
    // --max-authorizations sets the budget of the run.
    let mock = ClientSideServer::start(ClientSideConfig {
        extra_tools: 4,
        refresh_tokens: false,
        admin_scope: None,
        ..config().with(Break::ReauthorizePerTool)
    })
    .await;
    let code = mcp_client(&[
        "--headless",
        "-q",
        "--no-cache",
        "--max-authorizations",
        "7",
        "check",
        &mock.mcp_url(),
    ])
    .await
    .unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    // One to connect, one per tool (echo, admin and 4 more): 7.
    assert_eq!(mock.count("authorize"), 7, "{:?}", mock.log());
}

#[tokio::test]
async fn diagram_draws_what_ran_also_when_the_command_fails() {
    let mock = ClientSideServer::start(config()).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let url = mock.mcp_url();
    let file = dir.path().join("flow.mmd");
    let f = file.to_str().unwrap();
    let code = mcp_client(&[
        "--headless",
        "-q",
        "--cache-dir",
        d,
        "--diagram",
        f,
        "tools",
        &url,
    ])
    .await
    .unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    let drawn = std::fs::read_to_string(&file).unwrap();
    crate::support::assert_no_secrets(&drawn);
    assert!(drawn.starts_with("sequenceDiagram\n"), "{drawn}");
    assert!(
        drawn.contains("participant B as browser (--headless"),
        "{drawn}"
    );
    for expected in [
        "C->>RS: POST /mcp (",
        ", no token)",
        "RS-->>C: 401 (WWW-Authenticate Bearer resource_metadata",
        "code_challenge_method=S256",
        "B->>C: GET /callback (code, state",
        "(grant_type=authorization_code",
        "tools/list, Bearer ",
    ] {
        assert!(drawn.contains(expected), "{expected:?} not in\n{drawn}");
    }
    // Each exchange drawn once, in the order it happened: the 401 before the token.
    let first_401 = drawn.find("401").unwrap();
    let token = drawn.find("grant_type=authorization_code").unwrap();
    assert!(first_401 < token);
    let authorizations = drawn.matches("code_challenge_method=S256").count();
    assert_eq!(authorizations, mock.count("authorize"), "{drawn}");

    // Without --headless and with no browser, the login never comes: the command fails,
    // and the diagram of what did happen is still written, the browser's part included.
    let other = tempfile::tempdir().unwrap();
    let file = other.path().join("refused.mmd");
    let result = mcp_client(&[
        "--no-browser",
        "-q",
        "--no-cache",
        "--auth-timeout",
        "1",
        "--diagram",
        file.to_str().unwrap(),
        "tools",
        &url,
    ])
    .await;
    assert!(result.is_err(), "no login, no tools");
    let drawn = std::fs::read_to_string(&file).unwrap();
    assert!(drawn.contains("participant B as browser\n"), "{drawn}");
    assert!(drawn.contains("B->>AS: GET "), "{drawn}");
    assert!(!drawn.contains("/callback"), "no callback came: {drawn}");
}
