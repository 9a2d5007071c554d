//! The command line, driven through `cli::run` as the binary and the demo do.

use std::process::ExitCode;

use clap::Parser;
use mcp_auth_client::cache::Cache;
use mcp_auth_client::cli::{Cli, run};

use crate::support::{Mock, MockConfig};

async fn mcp_client(args: &[&str]) -> anyhow::Result<ExitCode> {
    let mut argv = vec!["mcp-client"];
    argv.extend_from_slice(args);
    run(Cli::try_parse_from(argv)?).await
}

#[tokio::test]
async fn tools_call_status_and_logout() {
    let mock = Mock::start(MockConfig::default()).await;
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
    let mock = Mock::start(MockConfig {
        s256: false,
        ..MockConfig::default()
    })
    .await;
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
    let mock = Mock::start(MockConfig {
        extra_tools: 20,
        reauthorize_per_tool: true,
        refresh_tokens: false,
        ..MockConfig::default()
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
    let mock = Mock::start(MockConfig {
        extra_tools: 4,
        reauthorize_per_tool: true,
        refresh_tokens: false,
        admin_scope: None,
        ..MockConfig::default()
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
