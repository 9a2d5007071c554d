//! One principal cannot fill the server's session stores: Streamable HTTP sessions and
//! cookie sessions are capped per principal and overall, expire, and another principal
//! is served throughout.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{
    Reply, TestAuthServer, TestKey, client, logs, mcp_with_token, rs_config, start_rs,
};

fn session_id(reply: &Reply) -> Option<String> {
    reply
        .headers
        .split("\"mcp-session-id\": \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(str::to_string)
}

/// A JSON-RPC request in session `session`; returns the status.
async fn in_session(url: &str, token: &str, session: &str, body: &Value) -> u16 {
    client()
        .post(format!("{url}/mcp"))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-06-18")
        .header("mcp-session-id", session)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn open_session(url: &str, token: &str) -> Result<String, Reply> {
    let reply = mcp_with_token(url, token).await;
    match (reply.status, session_id(&reply)) {
        (200, Some(id)) => {
            let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
            assert_eq!(in_session(url, token, &id, &initialized).await, 202);
            Ok(id)
        }
        _ => Err(reply),
    }
}

fn list_tools() -> Value {
    json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
}

struct Setup {
    url: String,
    auth_server: TestAuthServer,
    key: TestKey,
}

impl Setup {
    async fn start(per_principal: usize, total: usize, idle: Duration) -> Self {
        logs();
        let key = TestKey::rsa1();
        let auth_server = TestAuthServer::with_keys(std::slice::from_ref(&key)).await;
        let issuer = auth_server.issuer().to_string();
        let url = start_rs(|url| {
            rs_config(url, &issuer)
                .with_max_mcp_sessions_per_principal(per_principal)
                .with_max_mcp_sessions(total)
                .with_mcp_session_idle_timeout(idle)
        })
        .await;
        Self {
            url,
            auth_server,
            key,
        }
    }

    fn token(&self, subject: &str) -> String {
        self.key.sign(
            &self
                .auth_server
                .claims(subject, &format!("{}/mcp", self.url), "mcp:tools"),
        )
    }
}

/// Past the per-principal limit `initialize` is answered 429 with a JSON-RPC error
/// naming the limit; another principal still opens sessions and its sessions keep
/// answering; past the overall limit, 503; ending a session frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_sessions_are_capped_per_principal_and_overall() {
    let setup = Setup::start(3, 5, Duration::from_secs(300)).await;
    let url = &setup.url;
    let (alice, bob, carol) = (
        setup.token("alice"),
        setup.token("bob"),
        setup.token("carol"),
    );
    let bob_first = open_session(url, &bob).await.unwrap();
    let mut alices = Vec::new();
    for _ in 0..3 {
        alices.push(open_session(url, &alice).await.unwrap());
    }
    // Alice floods: every further attempt is refused, concurrently or not.
    let floods = futures::future::join_all((0..20).map(|_| mcp_with_token(url, &alice))).await;
    for refused in &floods {
        assert_eq!(refused.status, 429, "{refused:?}");
        let body: Value = serde_json::from_str(&refused.body).unwrap();
        assert_eq!(body["jsonrpc"], "2.0");
        assert_eq!(body["error"]["data"]["error"], "too_many_sessions");
        assert_eq!(body["error"]["data"]["limit"], 3);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Too many MCP sessions"),
            "{body}"
        );
        assert!(refused.headers.contains("retry-after"), "{refused:?}");
    }
    // Bob's session still answers, and Bob opens another.
    assert_eq!(in_session(url, &bob, &bob_first, &list_tools()).await, 200);
    let _bob_second = open_session(url, &bob).await.unwrap();
    // Five sessions live: the server is full for everyone.
    let full = open_session(url, &carol).await.unwrap_err();
    assert_eq!(full.status, 503, "{full:?}");
    assert!(full.body.contains("\"jsonrpc\":\"2.0\""), "{full:?}");
    // Alice ends one of hers (DELETE): Carol gets its place.
    let deleted = client()
        .delete(format!("{url}/mcp"))
        .bearer_auth(&alice)
        .header("mcp-session-id", &alices[0])
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{deleted:?}");
    assert_eq!(
        in_session(url, &alice, &alices[0], &list_tools()).await,
        404
    );
    open_session(url, &carol).await.unwrap();
    // Sessions are still bound to their owners.
    assert_eq!(in_session(url, &bob, &alices[1], &list_tools()).await, 404);
    assert_eq!(
        in_session(url, &alice, &alices[1], &list_tools()).await,
        200
    );
}

/// A session with no message for the idle timeout is closed, and its place is freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_mcp_sessions_expire_and_free_their_place() {
    let setup = Setup::start(1, 10, Duration::from_secs(1)).await;
    let url = &setup.url;
    let alice = setup.token("alice");
    let first = open_session(url, &alice).await.unwrap();
    assert_eq!(mcp_with_token(url, &alice).await.status, 429);
    // Kept alive by messages...
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(in_session(url, &alice, &first, &list_tools()).await, 200);
    }
    // ...and closed once idle.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(in_session(url, &alice, &first, &list_tools()).await, 404);
    open_session(url, &alice).await.unwrap();
}
