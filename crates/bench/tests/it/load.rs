//! wrk against the resource server (and the TypeScript SDK server when its packages are
//! installed): every response is the expected one.

use std::{path::Path, time::Duration};

use bench::{
    harness::repo_root,
    http_load::{self, CASE_NO_TOKEN, CASE_TOOLS_CALL, Target, Wrk},
    procs::{self, ResourceServerOptions},
    raw,
    wrk::{self, WrkCpu},
};

use crate::support::{resource_server, scratch};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrk_load_on_the_resource_server_has_no_errors() {
    let (auth, server) = resource_server("load", ResourceServerOptions::default()).await;
    let target = Target {
        server: &server,
        token: Some(http_load::token_for(&auth, &server)),
        expect_text: "2 add 3 = 5",
    };
    http_load::sanity_check(&target).await.unwrap();
    let script = wrk::write_script(&scratch("load")).unwrap();
    let wrk = Wrk {
        program: Path::new("wrk"),
        script: &script,
        threads: 1,
        // Through `taskset` on a machine with two CPUs or more (`--wrk-cpu last`).
        cpu: WrkCpu::last_allowed(),
    };
    for case in [CASE_TOOLS_CALL, CASE_NO_TOKEN] {
        let row = http_load::measure(&wrk, case, &target, 4, Duration::from_secs(1))
            .await
            .expect("wrk runs (apt-get install wrk)");
        assert!(row.result.requests > 0, "{case}: no requests");
        assert_eq!(row.result.errors, 0, "{case}: errors");
        assert!(row.peak_rss_kib > 0);
    }
    // A wrong expectation is counted as errors: the script really checks the replies.
    let wrong = Target {
        expect_text: "2 add 3 = 6",
        ..target.clone()
    };
    let row = http_load::measure(&wrk, CASE_TOOLS_CALL, &wrong, 2, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(row.result.requests > 0);
    assert_eq!(row.result.errors, row.result.requests);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_peer_accepts_the_harness_tokens_and_challenges_without_one() {
    let repo = repo_root();
    let (auth, _server) = resource_server("peer", ResourceServerOptions::default()).await;
    let node = testkit::node::node_binary(&repo.join("interop")).expect("npm ci --prefix interop");
    let log = scratch("peer").join("ts-server.log");
    let ts = procs::start_ts_server(&node, &repo, auth.issuer(), &log)
        .await
        .expect("TypeScript SDK server (npm ci --prefix interop)");
    let target = Target {
        server: &ts,
        token: Some(http_load::token_for(&auth, &ts)),
        expect_text: r#""text":"5""#,
    };
    http_load::sanity_check(&target).await.unwrap();
    let script = wrk::write_script(&scratch("peer")).unwrap();
    let wrk = Wrk {
        program: Path::new("wrk"),
        script: &script,
        threads: 2,
        cpu: WrkCpu::Unpinned,
    };
    let row = http_load::measure(&wrk, CASE_NO_TOKEN, &target, 2, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(row.result.requests > 0);
    assert_eq!(row.result.errors, 0);
    ts.stop().await;
}

/// The floor of the load cases answers, byte for byte, the body the resource server
/// answers to the same request, so the two are compared on the same reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bare_http_reference_answers_what_the_resource_server_answers() {
    let (auth, server) = resource_server("bare-http", ResourceServerOptions::default()).await;
    let bare = procs::start_bare_http(
        Some(Path::new(env!("CARGO_BIN_EXE_bench"))),
        &scratch("bare-http").join("bare-http.log"),
    )
    .await
    .expect("bare HTTP server");
    let token = format!("Bearer {}", http_load::token_for(&auth, &server));
    let mut bodies = Vec::new();
    for (target, bearer) in [(&server, Some(token.as_str())), (&bare, None)] {
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
            ("MCP-Protocol-Version", wrk::PROTOCOL_VERSION),
        ];
        headers.extend(bearer.map(|b| ("Authorization", b)));
        let request = raw::request(
            "POST",
            "/mcp",
            target.authority(),
            &headers,
            wrk::TOOLS_CALL,
        );
        let mut stream = raw::connect(target.authority().parse().unwrap())
            .await
            .unwrap();
        let response = raw::exchange(&mut stream, &request).await.unwrap();
        assert_eq!(raw::status_of(&response), Some(200), "{}", target.name);
        let body_at = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        bodies.push(response[body_at..].to_vec());
    }
    assert_eq!(
        String::from_utf8_lossy(&bodies[0]),
        String::from_utf8_lossy(&bodies[1])
    );
    assert_eq!(bodies[1], bench::component::BARE_HTTP_REPLY.as_bytes());
    bare.stop().await;
    server.stop().await;
}
