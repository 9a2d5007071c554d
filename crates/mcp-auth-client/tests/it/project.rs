//! The full flow against the project's own servers, in-process on 127.0.0.1:0: the
//! resource server (both transports) with tokens from dev-idp in MCP-ready mode
//! (RFC 8414, registration, `resource` → `aud`, `mcp:tools` / `mcp:admin`), which logs
//! its static user in without a form, so the headless mode applies.

use dev_idp::Features;
use mcp_auth_client::TransportChoice;
use mcp_auth_client::mcp::sse::SseAuth;
use serde_json::{Value, json};
use url::Url;

use testkit::dex::LocalDex;

use crate::support::{ResourceServer, assert_no_secrets, options, session, text};

pub(crate) struct Servers {
    pub(crate) mcp_base: String,
    issuer: String,
    _idp: LocalDex,
    _rs: ResourceServer,
}

pub(crate) async fn start() -> Servers {
    let idp = LocalDex::auto_login(Features::mcp_ready()).await;
    let issuer = idp.issuer.clone();
    let rs = ResourceServer::start(|base| resource_server::demo_config(base, &issuer)).await;
    Servers {
        mcp_base: rs.base.clone(),
        issuer,
        _idp: idp,
        _rs: rs,
    }
}

fn text_of(result: &Value) -> String {
    result["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn streamable_http_with_step_up_and_refresh() {
    let servers = start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(&format!("{}/mcp", servers.mcp_base));
    opts.transport = TransportChoice::Auto;
    let (mut s, buf) = session(opts, dir.path());
    s.connect()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", text(&buf)));
    assert_eq!(s.transport_name(), Some("streamable-http"));
    let names: Vec<String> = s
        .list_tools()
        .await
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
    for expected in ["calculator", "weather", "whoami", "admin_status"] {
        assert!(names.iter().any(|n| n == expected), "{names:?}");
    }
    let r = s
        .call_tool("calculator", json!({"operation": "add", "a": 2, "b": 3}))
        .await
        .unwrap();
    assert!(text_of(&r).contains('5'), "{r}");
    assert_eq!(s.tokens().unwrap().issuer, servers.issuer);

    // admin_status needs mcp:admin: 403 insufficient_scope, then a step-up.
    let before = s.authorizations();
    let r = s
        .call_tool("admin_status", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", text(&buf)));
    assert_ne!(r["isError"], json!(true), "{r}");
    assert_eq!(s.authorizations(), before + 1);
    assert!(
        s.tokens()
            .unwrap()
            .scope
            .as_deref()
            .unwrap_or("")
            .contains("mcp:admin")
    );

    // A refresh token was issued (offline_access): a new session with an expiring token
    // refreshes it instead of authorizing.
    assert!(
        s.tokens().unwrap().refresh_token.is_some(),
        "{}",
        text(&buf)
    );
    let mut opts = options(&format!("{}/mcp", servers.mcp_base));
    opts.refresh_margin_secs = i64::MAX / 2;
    let (mut s2, buf2) = session(opts, dir.path());
    s2.connect()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", text(&buf2)));
    s2.call_tool("whoami", json!({})).await.unwrap();
    assert_eq!(s2.authorizations(), 0, "{}", text(&buf2));
    assert!(text(&buf2).contains("refreshed"), "{}", text(&buf2));
    assert_no_secrets(&text(&buf));
    for t in [s.tokens().unwrap(), s2.tokens().unwrap()] {
        assert!(!text(&buf).contains(t.access_token.secret()));
        assert!(!text(&buf2).contains(t.access_token.secret()));
    }
}

#[tokio::test]
async fn legacy_sse_with_bearer_and_with_cookie() {
    let servers = start().await;
    for (auth, label) in [
        (SseAuth::Bearer, "bearer"),
        (
            SseAuth::Cookie {
                session_url: Url::parse(&format!("{}/session", servers.mcp_base)).unwrap(),
            },
            "cookie",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = options(&format!("{}/sse", servers.mcp_base));
        opts.sse_auth = auth;
        let (mut s, buf) = session(opts, dir.path());
        s.connect()
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}\n{}", text(&buf)));
        assert_eq!(s.transport_name(), Some("sse"), "{label}");
        assert!(!s.list_tools().await.unwrap().is_empty());
        let r = s
            .call_tool(
                "calculator",
                json!({"operation": "multiply", "a": 6, "b": 7}),
            )
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}\n{}", text(&buf)));
        assert!(text_of(&r).contains("42"), "{label}: {r}");
        let trace = text(&buf);
        assert!(trace.contains("endpoint event"), "{trace}");
        if label == "cookie" {
            assert!(trace.contains("session cookie set"), "{trace}");
        }
        let token = s.tokens().unwrap().access_token.secret().to_owned();
        assert!(!trace.contains(&token));
    }
}
