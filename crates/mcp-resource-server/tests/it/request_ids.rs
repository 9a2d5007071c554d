//! A request id reused while a request with it is in flight in the same session is
//! refused (400, JSON-RPC `-32600`); the first request is still answered, and the id
//! can be used again once it was.

use std::{sync::Arc, time::Duration};

use rmcp::{tool, tool_router};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::fixture::{
    TestAuthServer, TestKey, call, open_mcp_session, rpc, start_with, test_config,
};

/// A tool that waits until the test lets it finish.
#[derive(Clone)]
struct Gate {
    /// A permit per call that may finish.
    open: Arc<Semaphore>,
    /// A permit per call that started.
    started: Arc<Semaphore>,
}

#[tool_router(server_handler)]
impl Gate {
    #[tool(description = "Waits until released.")]
    async fn wait(&self) -> String {
        self.started.add_permits(1);
        self.open.acquire().await.expect("never closed").forget();
        "released".into()
    }
}

/// Far longer than any answer here takes; only a hang reaches it.
const HANG: Duration = Duration::from_secs(20);

fn text(reply: &Value) -> &str {
    reply["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test]
async fn an_id_in_flight_is_refused_until_its_reply_ends() {
    let auth = TestAuthServer::with_keys(&[TestKey::rsa1()]).await;
    let issuer = auth.issuer().to_string();
    let gate = Gate {
        open: Arc::new(Semaphore::new(0)),
        started: Arc::new(Semaphore::new(0)),
    };
    let handlers = gate.clone();
    let url = start_with(
        move |url| test_config(url, &issuer),
        move || handlers.clone(),
    )
    .await;
    let token = auth
        .token()
        .subject("alice")
        .aud(&format!("{url}/mcp"))
        .sign();
    let session = open_mcp_session(&url, &token).await;

    let first = tokio::spawn({
        let (url, token, session) = (url.clone(), token.clone(), session.clone());
        async move {
            rpc(
                &url,
                Some(&token),
                Some(&session),
                call(7, "wait", json!({})),
            )
            .await
        }
    });
    gate.started.acquire().await.unwrap().forget();

    // Same id, same session, while the first waits: refused without reaching the tool.
    // (Bounded waits: without the check the duplicate takes over the first one's reply
    // and both hang.)
    let duplicate = tokio::time::timeout(
        HANG,
        rpc(
            &url,
            Some(&token),
            Some(&session),
            call(7, "wait", json!({})),
        ),
    )
    .await
    .expect("the duplicate is answered at once");
    assert_eq!(duplicate.status, 400);
    let error = duplicate.body.unwrap();
    assert_eq!(error["error"]["code"], -32600, "{error}");
    assert_eq!(error["id"], Value::Null, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("still in flight"),
        "{error}"
    );
    // The same id as a string is another id; it is served (and waits too).
    let as_string = tokio::spawn({
        let (url, token, session) = (url.clone(), token.clone(), session.clone());
        let mut body = call(0, "wait", json!({}));
        body["id"] = json!("7");
        async move { rpc(&url, Some(&token), Some(&session), body).await }
    });
    gate.started.acquire().await.unwrap().forget();

    gate.open.add_permits(2);
    let first = tokio::time::timeout(HANG, first)
        .await
        .expect("the first request is answered")
        .unwrap();
    assert_eq!(first.status, 200);
    let reply = first.body.unwrap();
    assert_eq!(reply["id"], 7, "{reply}");
    assert_eq!(text(&reply), "released");
    let as_string = as_string.await.unwrap().body.unwrap();
    assert_eq!(as_string["id"], "7", "{as_string}");

    // Once the first reply ended, the id is free again.
    gate.open.add_permits(1);
    let again = rpc(
        &url,
        Some(&token),
        Some(&session),
        call(7, "wait", json!({})),
    )
    .await;
    assert_eq!(again.status, 200);
    assert_eq!(text(&again.body.unwrap()), "released");
}
