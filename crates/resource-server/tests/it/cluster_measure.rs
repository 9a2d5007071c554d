//! Scale-out figures (ignored by default; run in release mode):
//!
//! ```sh
//! cargo test --release -p mcp-resource-server --test it cluster_measure -- --ignored --nocapture --test-threads 1
//! ```
//!
//! - legacy SSE: a message posted to another instance vs the same instance, time until
//!   its reply arrives on the stream, 32 streams at once;
//! - authenticated `tools/call` through nginx to three instances: stateful with Redis
//!   vs stateless without, with wrk, and the Redis commands each stateful request costs;
//! - Redis memory per cookie session and per live Streamable HTTP session, at 10,000
//!   of each (`INFO memory` before and after).

use std::{process::Command, time::Instant};

use futures::future::join_all;
use serde_json::json;

use crate::{
    cluster::{Cluster, Nginx, redis_cli, start_instance_public},
    fixture::{SseReader, call, client, initialize, rpc},
};

const CONNECTIONS: usize = 32;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn sse_round_trips(cluster: &Cluster, cross: bool, calls: usize) -> Vec<f64> {
    // One principal per stream: the per-principal stream limit is 16.
    let tasks = (0..CONNECTIONS).map(|i| {
        let a = cluster.instance_url(0);
        let post_to = if cross {
            cluster.instance_url(1)
        } else {
            a.clone()
        };
        let auth = format!("Bearer {}", cluster.token(&format!("user{i}"), "/sse"));
        async move {
            let response = client()
                .get(format!("{a}/sse"))
                .header("authorization", &auth)
                .send()
                .await
                .unwrap();
            let mut reader = SseReader::new(response);
            let endpoint = reader.next().await.unwrap().data;
            let post = |body: serde_json::Value| {
                client()
                    .post(format!("{post_to}{endpoint}"))
                    .header("authorization", &auth)
                    .json(&body)
                    .send()
            };
            assert_eq!(post(initialize()).await.unwrap().status(), 202);
            reader.message().await;
            let mut times = Vec::with_capacity(calls);
            for id in 0..calls as u64 {
                let started = Instant::now();
                let status = post(call(id + 2, "whoami", json!({})))
                    .await
                    .unwrap()
                    .status();
                assert_eq!(status, 202);
                reader.message().await;
                times.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            times
        }
    });
    let mut all: Vec<f64> = join_all(tasks).await.into_iter().flatten().collect();
    all.sort_by(f64::total_cmp);
    all
}

/// wrk at `url`; with `sessions`, each request names the next of them in turn (rmcp
/// handles one session's requests one at a time, so one session for every connection
/// would measure that queue rather than the servers).
fn wrk(
    url: &str,
    headers: &[(&str, String)],
    sessions: &[String],
    body: &str,
    seconds: u64,
) -> (f64, String) {
    let dir = std::env::temp_dir().join(format!("mcp-rs-wrk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("post.lua");
    let mut lua = String::from("wrk.method = \"POST\"\n");
    lua.push_str(&format!("wrk.body = {body:?}\n"));
    for (name, value) in headers {
        lua.push_str(&format!("wrk.headers[{name:?}] = {value:?}\n"));
    }
    if !sessions.is_empty() {
        let list: Vec<String> = sessions.iter().map(|s| format!("{s:?}")).collect();
        lua.push_str(&format!(
            "sessions = {{{}}}\nnext_session = 0\nrequest = function()\n  next_session = next_session % #sessions + 1\n  wrk.headers[\"Mcp-Session-Id\"] = sessions[next_session]\n  return wrk.format()\nend\n",
            list.join(", ")
        ));
    }
    lua.push_str(
        "done = function(summary, latency, requests)\n  io.write(string.format(\"ERRORS %d %d\\n\", summary.errors.status, summary.requests))\nend\n",
    );
    std::fs::write(&script, lua).unwrap();
    let output = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{CONNECTIONS}"),
            &format!("-d{seconds}s"),
            "--latency",
            "-s",
        ])
        .arg(&script)
        .arg(url)
        .output()
        .expect("wrk is installed");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .map(|v| v.trim().parse::<f64>().unwrap())
        .unwrap_or(0.0);
    let errors = text
        .lines()
        .find_map(|l| l.strip_prefix("ERRORS "))
        .unwrap_or("? ?")
        .to_string();
    assert!(errors.starts_with("0 "), "wrk saw non-2xx replies: {text}");
    (rps, text)
}

fn redis_calls(port: u16) -> u64 {
    redis_cli(port, &["INFO", "commandstats"])
        .lines()
        .filter_map(|l| l.split("calls=").nth(1))
        .filter_map(|rest| rest.split(',').next()?.parse::<u64>().ok())
        .sum()
}

fn used_memory(port: u16) -> i64 {
    redis_cli(port, &["INFO", "memory"])
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: run in release mode with --ignored --nocapture"]
async fn scale_out_figures() {
    let Some(cluster) = Cluster::start().await else {
        return;
    };
    let seconds = std::env::var("MEASURE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);

    // Legacy SSE, same instance vs another one (warm-up first).
    sse_round_trips(&cluster, true, 5).await;
    let same = sse_round_trips(&cluster, false, 50).await;
    let cross = sse_round_trips(&cluster, true, 50).await;
    let (same_p50, same_p99) = (percentile(&same, 50.0), percentile(&same, 99.0));
    let (cross_p50, cross_p99) = (percentile(&cross, 50.0), percentile(&cross, 99.0));
    println!(
        "SSE post -> reply on the stream, {CONNECTIONS} streams x 50 calls: same instance p50 {same_p50:.2} ms p99 {same_p99:.2} ms; other instance p50 {cross_p50:.2} ms p99 {cross_p99:.2} ms; p99 difference {:.2} ms",
        cross_p99 - same_p99
    );

    // Stateful tools/call through nginx, with Redis.
    let lb = cluster.url();
    let token = cluster.token("alice", "/mcp");
    let mut sessions = Vec::new();
    for _ in 0..CONNECTIONS {
        let init = rpc(&lb, Some(&token), None, initialize()).await;
        let session = init.session.unwrap();
        rpc(
            &lb,
            Some(&token),
            Some(&session),
            json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        )
        .await;
        sessions.push(session);
    }
    let body = call(7, "calculator", json!({"operation":"add","a":2,"b":3})).to_string();
    let common = vec![
        ("Authorization", format!("Bearer {token}")),
        ("Content-Type", "application/json".to_string()),
        ("Accept", "application/json, text/event-stream".to_string()),
        ("Mcp-Protocol-Version", "2025-06-18".to_string()),
    ];
    let stateful_headers = common.clone();
    let calls_before = redis_calls(cluster.redis.port);
    let (stateful_rps, stateful_text) = wrk(
        &format!("{lb}/mcp"),
        &stateful_headers,
        &sessions,
        &body,
        seconds,
    );
    let calls_after = redis_calls(cluster.redis.port);
    let requests: f64 = stateful_text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .map(|(n, _)| n.trim().parse().unwrap())
        .unwrap();

    // Stateless tools/call through nginx to three instances without Redis.
    let ports: Vec<u16> = (0..3).map(|_| crate::cluster::free_port()).collect();
    let nginx = Nginx::start(&demo::scale::find_program("nginx").unwrap(), &ports);
    let stateless: Vec<_> = ports
        .iter()
        .map(|&port| {
            start_instance_public(port, &nginx.url(), &cluster.auth, None, &["--stateless"])
        })
        .collect();
    let stateless_token = crate::fixture::TestKey::rsa1().sign_with_typ(
        &cluster
            .auth
            .claims("alice", &format!("{}/mcp", nginx.url()), "mcp:tools"),
        None,
    );
    let mut stateless_headers = common.clone();
    stateless_headers[0] = ("Authorization", format!("Bearer {stateless_token}"));
    let warm = rpc(
        &nginx.url(),
        Some(&stateless_token),
        None,
        call(1, "whoami", json!({})),
    )
    .await;
    assert_eq!(warm.status, 200);
    let (stateless_rps, stateless_text) = wrk(
        &format!("{}/mcp", nginx.url()),
        &stateless_headers,
        &[],
        &body,
        seconds,
    );
    drop(stateless);
    let latency = |text: &str, p: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(p).map(|v| v.trim().to_string()))
            .unwrap_or_default()
    };
    println!(
        "tools/call via nginx -> 3 instances, {CONNECTIONS} connections, {seconds} s: stateful with Redis {stateful_rps:.0} req/s (p50 {}, p99 {}), stateless without Redis {stateless_rps:.0} req/s (p50 {}, p99 {}); ratio {:.2}; Redis commands per stateful request {:.2}",
        latency(&stateful_text, "50%"),
        latency(&stateful_text, "99%"),
        latency(&stateless_text, "50%"),
        latency(&stateless_text, "99%"),
        stateful_rps / stateless_rps,
        (calls_after - calls_before) as f64 / requests,
    );

    // Redis memory per cookie session and per live Streamable HTTP session (fresh
    // tokens: the ones above may be near their end).
    let sse_token = cluster.token("alice", "/sse");
    let token = cluster.token("alice", "/mcp");
    let port = cluster.redis.port;
    let n = 10_000usize;
    let before = used_memory(port);
    for chunk in 0..n / 100 {
        let batch = (0..100).map(|_| {
            client()
                .post(format!("{}/session", cluster.instance_url(chunk % 3)))
                .bearer_auth(&sse_token)
                .send()
        });
        for response in join_all(batch).await {
            assert_eq!(response.unwrap().status(), 204);
        }
    }
    let after_cookies = used_memory(port);
    for chunk in 0..n / 100 {
        let base = cluster.instance_url(chunk % 3);
        let batch = (0..100).map(|_| rpc(&base, Some(&token), None, initialize()));
        for reply in join_all(batch).await {
            assert_eq!(reply.status, 200);
        }
    }
    let after_sessions = used_memory(port);
    println!(
        "Redis used_memory: {before} B at start; +{} B for {n} cookie sessions ({:.0} B each); +{} B for {n} Streamable HTTP sessions ({:.0} B each)",
        after_cookies - before,
        (after_cookies - before) as f64 / n as f64,
        after_sessions - after_cookies,
        (after_sessions - after_cookies) as f64 / n as f64,
    );
}
