//! The `custom_tools` example's handler behind [`McpResourceServer`], with real tokens:
//! the generic entry point serves a handler it knows nothing of, on both transports.

use serde_json::{Value, json};

use crate::fixture::{
    SseReader, TestAuthServer, TestKey, call, client, initialize, rpc, start_with, test_config,
};

#[path = "../../examples/custom_tools.rs"]
#[allow(dead_code)]
pub mod example;

/// Starts the library's server around the example's handler.
pub async fn start_rs(make: impl FnOnce(String) -> mcp_resource_server::Config) -> String {
    start_with(make, example::Tools::default).await
}

async fn setup() -> (TestAuthServer, String) {
    let auth = TestAuthServer::with_keys(&[TestKey::rsa1()]).await;
    let issuer = auth.issuer().to_string();
    let url = start_rs(move |url| test_config(url, &issuer)).await;
    (auth, url)
}

fn text(reply: &Value) -> &str {
    reply["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test]
async fn custom_tools_over_streamable_http() {
    let (auth, url) = setup().await;
    let refused = rpc(&url, None, None, initialize()).await;
    assert_eq!(refused.status, 401);
    assert!(
        refused
            .www_authenticate
            .contains(&format!("{url}/.well-known/oauth-protected-resource/mcp")),
        "{}",
        refused.www_authenticate
    );
    let no_scope = auth
        .token()
        .subject("bob")
        .aud(&format!("{url}/mcp"))
        .scope("")
        .sign();
    assert_eq!(
        rpc(&url, Some(&no_scope), None, initialize()).await.status,
        403
    );

    let token = auth
        .token()
        .subject("alice")
        .aud(&format!("{url}/mcp"))
        .scope("mcp:tools")
        .sign();
    let session = crate::fixture::open_mcp_session(&url, &token).await;
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let tools = rpc(&url, Some(&token), Some(&session), list)
        .await
        .body
        .unwrap();
    let mut names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["add", "whoami"]);
    let sum = rpc(
        &url,
        Some(&token),
        Some(&session),
        call(3, "add", json!({"a": 40, "b": 2})),
    );
    assert_eq!(text(&sum.await.body.unwrap()), "42");
    let whoami = rpc(
        &url,
        Some(&token),
        Some(&session),
        call(4, "whoami", json!({})),
    );
    assert_eq!(text(&whoami.await.body.unwrap()), "alice");
}

#[tokio::test]
async fn custom_tools_over_legacy_sse_with_the_cookie() {
    let (auth, url) = setup().await;
    let token = auth
        .token()
        .subject("carol")
        .aud(&format!("{url}/sse"))
        .scope("mcp:tools")
        .sign();
    let response = client()
        .post(format!("{url}/session"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();

    let stream = client()
        .get(format!("{url}/sse"))
        .header("accept", "text/event-stream")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut reader = SseReader::new(stream);
    let endpoint = reader.next().await.unwrap().data;
    let post = |body: Value| {
        client()
            .post(format!("{url}{endpoint}"))
            .header("cookie", &cookie)
            .header("origin", &url)
            .json(&body)
            .send()
    };
    assert_eq!(post(initialize()).await.unwrap().status(), 202);
    assert_eq!(reader.message().await["id"], 1);
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(post(initialized).await.unwrap().status(), 202);
    assert_eq!(
        post(call(2, "whoami", json!({}))).await.unwrap().status(),
        202
    );
    assert_eq!(text(&reader.message().await), "carol");
    // The cookie without an allowed Origin is refused before the handler.
    let response = client()
        .post(format!("{url}{endpoint}"))
        .header("cookie", &cookie)
        .json(&call(3, "whoami", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
}
