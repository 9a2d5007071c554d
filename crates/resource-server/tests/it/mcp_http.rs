//! MCP over Streamable HTTP: a full session, scopes and step-up, session ownership,
//! stateless mode, and Host/Origin validation.

use serde_json::json;

use crate::fixture::{
    TestAuthServer, TestKey, call, client, initialize, open_mcp_session, rpc, rpc_with,
    standalone_stream, start_demo, start_rs, test_config,
};

async fn setup() -> (TestAuthServer, String) {
    let auth = TestAuthServer::with_keys(&[TestKey::rsa1()]).await;
    let issuer = auth.issuer().to_string();
    let url = start_rs(move |url| test_config(url, &issuer)).await;
    (auth, url)
}

#[tokio::test]
async fn full_session_with_tools_scopes_and_step_up() {
    let (auth, url) = setup().await;
    let aud = format!("{url}/mcp");
    let token =
        TestKey::rsa1().sign_with_typ(&auth.claims("alice", &aud, "mcp:tools"), Some("at+jwt"));
    let session = open_mcp_session(&url, &token).await;

    let list = rpc(
        &url,
        Some(&token),
        Some(&session),
        json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}),
    )
    .await;
    let tools: Vec<String> = list.body.unwrap()["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        tools,
        [
            "calculator",
            "weather",
            "whoami",
            "admin_status",
            "notify",
            "ask_roots"
        ]
    );

    let sum = rpc(
        &url,
        Some(&token),
        Some(&session),
        call(3, "calculator", json!({"operation":"add","a":2,"b":40})),
    )
    .await;
    let result = &sum.body.unwrap()["result"];
    assert_eq!(result["structuredContent"]["result"], 42.0);
    assert_ne!(result["isError"], true);

    let div = rpc(
        &url,
        Some(&token),
        Some(&session),
        call(4, "calculator", json!({"operation":"divide","a":1,"b":0})),
    )
    .await;
    let result = &div.body.unwrap()["result"];
    assert_eq!(result["isError"], true);
    assert!(
        result["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Division by zero")
    );

    let weather = rpc(
        &url,
        Some(&token),
        Some(&session),
        call(5, "weather", json!({"location":"Lyon"})),
    )
    .await;
    let text = weather.body.unwrap()["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.contains("FAKE"), "{text}");

    let whoami = rpc(
        &url,
        Some(&token),
        Some(&session),
        call(6, "whoami", json!({})),
    )
    .await;
    let body = whoami.body.unwrap();
    assert_eq!(body["result"]["structuredContent"]["subject"], "alice");
    assert_eq!(body["result"]["structuredContent"]["token_kind"], "rfc9068");
    assert!(
        body["result"]["structuredContent"]
            .get("scopes_note")
            .is_none(),
        "a token with scopes needs no note: {body}"
    );
    assert!(!body.to_string().contains(&token));

    // admin_status needs mcp:admin: an HTTP 403 with the full scope set, before rmcp.
    let admin = rpc(
        &url,
        Some(&token),
        Some(&session),
        call(7, "admin_status", json!({})),
    )
    .await;
    assert_eq!(admin.status, 403);
    assert_eq!(
        admin.www_authenticate,
        format!(
            r#"Bearer error="insufficient_scope", error_description="The access token lacks the scopes this request needs", scope="mcp:tools mcp:admin", resource_metadata="{url}/.well-known/oauth-protected-resource/mcp""#
        )
    );
    // Step-up: a new token with the extra scope, same principal, same session.
    let stronger = TestKey::rsa1().sign_with_typ(
        &auth.claims("alice", &aud, "mcp:tools mcp:admin"),
        Some("at+jwt"),
    );
    let admin = rpc(
        &url,
        Some(&stronger),
        Some(&session),
        call(8, "admin_status", json!({})),
    )
    .await;
    assert_eq!(admin.status, 200);
    assert_eq!(
        admin.body.unwrap()["result"]["structuredContent"]["status"],
        "ok"
    );

    // Without the required scope at all: 403 on any request.
    let none = TestKey::rsa1().sign_with_typ(&auth.claims("alice", &aud, "profile"), None);
    let refused = rpc(&url, Some(&none), None, initialize()).await;
    assert_eq!(refused.status, 403);
    assert!(refused.www_authenticate.contains(r#"scope="mcp:tools""#));
}

#[tokio::test]
async fn another_principal_cannot_use_a_session() {
    let (auth, url) = setup().await;
    let aud = format!("{url}/mcp");
    let alice = TestKey::rsa1().sign_with_typ(&auth.claims("alice", &aud, "mcp:tools"), None);
    let mallory = TestKey::rsa1().sign_with_typ(&auth.claims("mallory", &aud, "mcp:tools"), None);
    let session = open_mcp_session(&url, &alice).await;
    let stolen = rpc(
        &url,
        Some(&mallory),
        Some(&session),
        call(2, "whoami", json!({})),
    )
    .await;
    assert_eq!(stolen.status, 404);
    let unknown = rpc(
        &url,
        Some(&alice),
        Some("made-up"),
        call(2, "whoami", json!({})),
    )
    .await;
    assert_eq!(unknown.status, 404);
    let own = rpc(
        &url,
        Some(&alice),
        Some(&session),
        call(3, "whoami", json!({})),
    )
    .await;
    assert_eq!(own.status, 200);
}

#[tokio::test]
async fn stateless_mode_answers_json_without_sessions() {
    let auth = TestAuthServer::with_keys(&[TestKey::rsa1()]).await;
    let issuer = auth.issuer().to_string();
    let url = start_rs(move |url| test_config(url, &issuer).with_stateless(true)).await;
    let aud = format!("{url}/mcp");
    let token = TestKey::rsa1().sign_with_typ(&auth.claims("alice", &aud, "mcp:tools"), None);
    let init = rpc(&url, Some(&token), None, initialize()).await;
    assert_eq!(init.status, 200);
    assert!(init.session.is_none());
    let sum = rpc(
        &url,
        Some(&token),
        None,
        call(2, "calculator", json!({"operation":"multiply","a":6,"b":7})),
    )
    .await;
    assert_eq!(
        sum.body.unwrap()["result"]["structuredContent"]["result"],
        42.0
    );
    let admin = rpc(&url, Some(&token), None, call(3, "admin_status", json!({}))).await;
    assert_eq!(admin.status, 403);
    // A token holding every tool's scope (the case where the tool-scope layer leaves
    // the body unread) reaches the tool.
    let admin_token =
        TestKey::rsa1().sign_with_typ(&auth.claims("alice", &aud, "mcp:tools mcp:admin"), None);
    let admin = rpc(
        &url,
        Some(&admin_token),
        None,
        call(4, "admin_status", json!({})),
    )
    .await;
    assert_eq!(admin.status, 200);
    assert_eq!(admin.body.unwrap()["result"]["isError"], false);

    // No standalone stream and no session to end: GET and DELETE are 405 once authorized,
    // and still 401 without a token.
    let client = client();
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let authorized = client
            .request(method.clone(), format!("{url}/mcp"))
            .bearer_auth(&token)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(authorized.status(), 405, "{method}");
        let anonymous = client
            .request(method.clone(), format!("{url}/mcp"))
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), 401, "{method}");
    }
}

#[tokio::test]
async fn host_and_origin_are_validated() {
    let (auth, url) = setup().await;
    let token = TestKey::rsa1().sign_with_typ(
        &auth.claims("alice", &format!("{url}/mcp"), "mcp:tools"),
        None,
    );
    let evil_host = rpc_with(
        &url,
        Some(&token),
        None,
        initialize(),
        &[("host", "evil.example.com")],
    )
    .await;
    assert_eq!(evil_host.status, 403);
    let evil_origin = rpc_with(
        &url,
        Some(&token),
        None,
        initialize(),
        &[("origin", "http://evil.example.com")],
    )
    .await;
    assert_eq!(evil_origin.status, 403);
    let own_origin = rpc_with(
        &url,
        Some(&token),
        None,
        initialize(),
        &[("origin", url.as_str())],
    )
    .await;
    assert_eq!(own_origin.status, 200);
}

#[tokio::test]
async fn no_auth_mode_serves_without_tokens() {
    let auth = TestAuthServer::with_keys(&[TestKey::rsa1()]).await;
    let issuer = auth.issuer().to_string();
    let url = start_rs(move |url| test_config(url, &issuer).with_no_auth(true)).await;
    let init = rpc(&url, None, None, initialize()).await;
    assert_eq!(init.status, 200);
    let session = init.session.unwrap();
    let admin = rpc(
        &url,
        None,
        Some(&session),
        call(2, "admin_status", json!({})),
    )
    .await;
    assert_eq!(admin.status, 200);
    let evil_host = rpc_with(
        &url,
        None,
        None,
        initialize(),
        &[("host", "evil.example.com")],
    )
    .await;
    assert_eq!(evil_host.status, 403);
}

#[tokio::test]
async fn the_standalone_stream_closes_when_its_token_expires() {
    let auth = TestAuthServer::with_keys(&[TestKey::rsa1()]).await;
    let issuer = auth.issuer().to_string();
    // The stream ends when the token is refused: exp + leeway.
    let url = start_rs(move |url| {
        test_config(url, &issuer).with_leeway(std::time::Duration::from_secs(1))
    })
    .await;
    let aud = format!("{url}/mcp");
    let mut claims = auth.claims("alice", &aud, "mcp:tools");
    claims["exp"] = json!(crate::fixture::now() + 2);
    let token = TestKey::rsa1().sign_with_typ(&claims, None);
    let session = open_mcp_session(&url, &token).await;
    let response = standalone_stream(&url, &token, &session).await;
    assert_eq!(response.status(), 200);
    let mut reader = crate::fixture::SseReader::new(response);
    let end = tokio::time::timeout(std::time::Duration::from_secs(8), async {
        while reader.next().await.is_some() {}
    })
    .await;
    assert!(end.is_ok(), "the GET stream ended at token expiry");
}

/// A token inside the clock leeway is accepted, so the call it carries runs: its
/// SSE-framed reply must arrive whole, not be cut at `exp`.
#[tokio::test]
async fn a_reply_to_a_request_accepted_in_the_leeway_arrives() {
    let (auth, url) = setup().await;
    let aud = format!("{url}/mcp");
    let fresh = TestKey::rsa1().sign_with_typ(&auth.claims("alice", &aud, "mcp:tools"), None);
    let session = open_mcp_session(&url, &fresh).await;
    let mut claims = auth.claims("alice", &aud, "mcp:tools");
    claims["exp"] = json!(crate::fixture::now() - 5);
    let in_leeway = TestKey::rsa1().sign_with_typ(&claims, None);
    // Many at once, so that replies take longer than a timer tick.
    let calls = (2..66).map(|id| {
        let (url, token, session) = (url.clone(), in_leeway.clone(), session.clone());
        async move {
            let body = call(id, "weather", json!({"location": "Paris"}));
            (id, rpc(&url, Some(&token), Some(&session), body).await)
        }
    });
    for (id, reply) in futures::future::join_all(calls).await {
        assert_eq!(reply.status, 200);
        let body = reply
            .body
            .unwrap_or_else(|| panic!("call {id} was accepted but its reply was cut"));
        assert_eq!(body["id"], id);
        assert!(body.get("result").is_some(), "{body}");
    }
}

/// The standalone stream lives until the validator would refuse its token
/// (`exp` + leeway), not merely until `exp`.
#[tokio::test]
async fn the_standalone_stream_lives_through_the_leeway() {
    let auth = TestAuthServer::with_keys(&[TestKey::rsa1()]).await;
    let issuer = auth.issuer().to_string();
    let url = start_rs(move |url| {
        test_config(url, &issuer).with_leeway(std::time::Duration::from_secs(3))
    })
    .await;
    let aud = format!("{url}/mcp");
    let mut claims = auth.claims("alice", &aud, "mcp:tools");
    claims["exp"] = json!(crate::fixture::now() + 1);
    let token = TestKey::rsa1().sign_with_typ(&claims, None);
    let session = open_mcp_session(&url, &token).await;
    let started = std::time::Instant::now();
    let response = standalone_stream(&url, &token, &session).await;
    assert_eq!(response.status(), 200);
    let mut reader = crate::fixture::SseReader::new(response);
    let end = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while reader.next().await.is_some() {}
    })
    .await;
    assert!(end.is_ok(), "the GET stream ended after the leeway");
    // exp is within 1 s of the start; the token is accepted until exp + 3 s + the rest
    // of that second, so the stream lasts at least 3 s.
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(2900),
        "the stream was cut before exp + leeway ({:?})",
        started.elapsed()
    );
}

/// A 2026-07-28 request (standard headers, request metadata) to `/mcp`, with the given
/// `Mcp-Method` header.
async fn post_2026(
    url: &str,
    token: Option<&str>,
    mcp_method: &str,
    body: serde_json::Value,
) -> (u16, String, serde_json::Value) {
    let mut request = client()
        .post(format!("{url}/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", mcp_method)
        .json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = crate::fixture::www_authenticate(&response);
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, challenge, body)
}

fn list_tools_2026() -> serde_json::Value {
    json!({
        "jsonrpc": "2.0", "id": 7, "method": "tools/list",
        "params": {"_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}
        }}
    })
}

/// Standard headers (SEP-2243) are checked after authorization: without a token a
/// request whose `Mcp-Method` contradicts its body still gets the 401 challenge; with
/// one, the mismatch is a 400 `-32020` (header mismatch), and matching headers pass.
#[tokio::test]
async fn standard_headers_are_validated_after_authorization() {
    let auth = TestAuthServer::with_keys(&[TestKey::rsa1()]).await;
    let issuer = auth.issuer().to_string();
    let url = start_rs(move |url| test_config(url, &issuer).with_stateless(true)).await;
    let token = TestKey::rsa1().sign_with_typ(
        &auth.claims("alice", &format!("{url}/mcp"), "mcp:tools"),
        None,
    );

    let (status, challenge, _) = post_2026(&url, None, "tools/call", list_tools_2026()).await;
    assert_eq!(status, 401, "the challenge comes first");
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(challenge.contains("resource_metadata="), "{challenge}");

    let (status, _, body) = post_2026(&url, Some(&token), "tools/call", list_tools_2026()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], -32020, "{body}");

    let (status, _, body) = post_2026(&url, Some(&token), "tools/list", list_tools_2026()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["tools"][0]["name"], "calculator", "{body}");
}

/// `--conformance-fixtures` adds the suite's fixtures beside the demo tools, and a
/// multi round-trip tool refuses a `requestState` that was altered.
#[tokio::test]
async fn conformance_fixtures_are_served_only_when_switched_on() {
    let auth = TestAuthServer::with_keys(&[TestKey::rsa1()]).await;
    let issuer = auth.issuer().to_string();
    let options = resource_server::DemoOptions {
        conformance_fixtures: true,
        ..resource_server::DemoOptions::default()
    };
    let url = start_demo(
        move |url| {
            test_config(url, &issuer)
                .with_stateless(true)
                .with_no_auth(true)
        },
        options,
    )
    .await;
    let (status, _, body) = post_2026(&url, None, "tools/list", list_tools_2026()).await;
    assert_eq!(status, 200, "{body}");
    let names: Vec<&str> = body["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        &names[..4],
        ["calculator", "weather", "whoami", "admin_status"]
    );
    assert!(names.contains(&"test_input_required_result_tampered_state"));

    let meta = list_tools_2026()["params"]["_meta"].clone();
    let call = |state: Option<&str>| {
        let mut params = json!({"name": "test_input_required_result_tampered_state", "arguments": {}, "_meta": meta});
        if let Some(state) = state {
            params["requestState"] = json!(state);
            params["inputResponses"] =
                json!({"confirm": {"action": "accept", "content": {"ok": true}}});
        }
        json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": params})
    };
    let post = |body| {
        let url = url.clone();
        async move {
            client()
                .post(format!("{url}/mcp"))
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", "2026-07-28")
                .header("mcp-method", "tools/call")
                .header("mcp-name", "test_input_required_result_tampered_state")
                .json(&body)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let first = post(call(None)).await;
    assert_eq!(first["result"]["resultType"], "input_required", "{first}");
    let state = first["result"]["requestState"]
        .as_str()
        .unwrap()
        .to_string();
    let done = post(call(Some(&state))).await;
    assert!(
        done["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("state-ok"),
        "{done}"
    );
    // Alter the first character of the tag (every bit of it counts).
    let mut tampered = state.clone();
    let at = tampered.find('.').unwrap() + 1;
    let swap = if tampered[at..].starts_with('A') {
        "B"
    } else {
        "A"
    };
    tampered.replace_range(at..=at, swap);
    let refused = post(call(Some(&tampered))).await;
    assert_eq!(refused["error"]["code"], -32602, "{refused}");

    // Without the switch, none of them.
    let issuer = auth.issuer().to_string();
    let plain = start_rs(move |url| {
        test_config(url, &issuer)
            .with_stateless(true)
            .with_no_auth(true)
    })
    .await;
    let (_, _, body) = post_2026(&plain, None, "tools/list", list_tools_2026()).await;
    assert_eq!(
        body["result"]["tools"].as_array().unwrap().len(),
        6,
        "{body}"
    );
}

/// Without Redis, `notify`'s messages take rmcp's own way to the standalone stream, in
/// order; bad arguments are a tool error.
#[tokio::test]
async fn notify_sends_on_the_standalone_stream() {
    let (auth, url) = setup().await;
    let token = TestKey::rsa1().sign_with_typ(
        &auth.claims("alice", &format!("{url}/mcp"), "mcp:tools"),
        Some("at+jwt"),
    );
    let session = open_mcp_session(&url, &token).await;
    let response = standalone_stream(&url, &token, &session).await;
    assert_eq!(response.status(), 200);
    let mut stream = crate::fixture::SseReader::new(response);
    let reply = rpc(
        &url,
        Some(&token),
        Some(&session),
        call(2, "notify", json!({"text": "hello", "count": 3})),
    )
    .await;
    assert_eq!(reply.status, 200);
    let mut seq = 0;
    while seq < 3 {
        let event = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
            .await
            .expect("a notification in time")
            .expect("the stream stays open");
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&event.data) else {
            continue;
        };
        seq += 1;
        assert_eq!(message["method"], "notifications/message");
        assert_eq!(
            message["params"]["data"],
            json!({"text": "hello", "seq": seq})
        );
    }
    for arguments in [
        json!({"text": "x", "count": 0}),
        json!({"text": "x", "count": 1001}),
        json!({"text": "x", "interval_ms": -1}),
        json!({"count": 1}),
    ] {
        let reply = rpc(
            &url,
            Some(&token),
            Some(&session),
            call(3, "notify", arguments.clone()),
        )
        .await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.body.unwrap()["result"]["isError"],
            true,
            "{arguments}"
        );
    }
}
