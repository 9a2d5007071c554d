//! A plain `http://` MCP server URL off loopback is refused before any request, unless
//! `--allow-insecure-http`; loopback and https are not affected.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use mcp_auth_client::cache::Cache;
use mcp_auth_client::mcp::sse::SseAuth;
use mcp_auth_client::trace::{Trace, Verbosity};
use mcp_auth_client::{ClientError, ConnectionOptions, McpConnection};
use tokio::net::TcpListener;
use url::Url;

use crate::support::{options, session, text};

/// `McpConnection::new`, which sends nothing: the URL checks happen there.
fn new_session(
    options: ConnectionOptions,
    dir: &std::path::Path,
) -> Result<McpConnection, ClientError> {
    McpConnection::new(options, Trace::capture(Verbosity::Quiet).0, Cache::new(dir))
}

/// Whether a connection arrives at `listener` within a short while.
async fn connection_arrives(listener: &TcpListener) -> bool {
    tokio::time::timeout(Duration::from_millis(500), listener.accept())
        .await
        .is_ok()
}

#[tokio::test]
async fn plain_http_off_loopback_is_refused_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let Some(ip) = testkit::http::non_loopback_ipv4() else {
        // No other interface: the refusal needs no socket to be shown.
        let err = new_session(options("http://mcp.example.test/mcp"), dir.path()).unwrap_err();
        assert!(matches!(err, ClientError::InsecureServer { .. }), "{err}");
        return;
    };
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))
        .await
        .unwrap();
    let url = format!("http://{ip}:{}/mcp", listener.local_addr().unwrap().port());

    let err = new_session(options(&url), dir.path()).unwrap_err();
    assert!(matches!(err, ClientError::InsecureServer { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&url) && msg.contains("--allow-insecure-http"),
        "{msg}"
    );
    assert!(!connection_arrives(&listener).await, "a request was sent");

    // Allowed for a lab network: the client goes ahead (and says so).
    let mut opts = options(&url);
    opts.allow_insecure_http = true;
    let (mut s, buf) = session(opts, dir.path());
    let connect = tokio::spawn(async move { s.connect().await });
    assert!(connection_arrives(&listener).await, "no request was sent");
    connect.abort();
    assert!(text(&buf).contains("clear text"), "{}", text(&buf));
}

#[tokio::test]
async fn loopback_and_https_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        "http://127.0.0.1:1/mcp",
        "http://localhost:1/mcp",
        "http://[::1]:1/mcp",
        "https://mcp.example.com/mcp",
    ] {
        assert!(new_session(options(url), dir.path()).is_ok(), "{url}");
    }
}

#[tokio::test]
async fn the_cookie_session_url_must_be_on_the_servers_origin() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options("http://127.0.0.1:1/sse");
    opts.sse_auth = SseAuth::Cookie {
        session_url: Url::parse("http://127.0.0.1:2/session").unwrap(),
    };
    let err = new_session(opts, dir.path()).unwrap_err();
    assert!(err.to_string().contains("not on the origin"), "{err}");
}
