//! wrk against the resource server (and the TypeScript SDK server when its packages are
//! installed): every response is the expected one.

use std::time::Duration;

use bench::{
    harness::repo_root,
    load::{self, CASE_NO_TOKEN, CASE_TOOLS_CALL, Target},
    procs::{self, ResourceServerOptions},
    wrk,
};

use crate::support::{resource_server, scratch};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrk_load_on_the_resource_server_has_no_errors() {
    let (auth, server) = resource_server("load", ResourceServerOptions::default()).await;
    let target = Target {
        server: &server,
        token: Some(load::token_for(&auth, &server).unwrap()),
        expect_text: "2 add 3 = 5",
    };
    load::sanity_check(&target).await.unwrap();
    let script = wrk::write_script(&scratch("load")).unwrap();
    let wrk = std::path::Path::new("wrk");
    for case in [CASE_TOOLS_CALL, CASE_NO_TOKEN] {
        let row = load::measure(wrk, &script, case, &target, 4, Duration::from_secs(1))
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
    let row = load::measure(
        wrk,
        &script,
        CASE_TOOLS_CALL,
        &wrong,
        2,
        Duration::from_secs(1),
    )
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
    let node = procs::node_binary(&repo);
    let log = scratch("peer").join("ts-server.log");
    let ts = procs::start_ts_server(&node, &repo, auth.issuer(), &log)
        .await
        .expect("TypeScript SDK server (npm ci --prefix interop)");
    let target = Target {
        server: &ts,
        token: Some(load::token_for(&auth, &ts).unwrap()),
        expect_text: r#""text":"5""#,
    };
    load::sanity_check(&target).await.unwrap();
    let script = wrk::write_script(&scratch("peer")).unwrap();
    let row = load::measure(
        std::path::Path::new("wrk"),
        &script,
        CASE_NO_TOKEN,
        &target,
        2,
        Duration::from_secs(1),
    )
    .await
    .unwrap();
    assert!(row.result.requests > 0);
    assert_eq!(row.result.errors, 0);
    ts.stop().await;
}
