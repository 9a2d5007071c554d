//! DPoP at the resource server: the memory of the `jti` replay cache holding one
//! million proofs, and the time to check one proof (signature, claims, `ath`,
//! thumbprint, replay-cache insertion) per algorithm.
//!
//! `cargo bench -p bench --bench dpop`
//!
//! Memory is the growth of this process's resident set (`VmRSS`, Linux) while the cache
//! fills, so the bucket tables and the allocator's own overhead count, as they would in
//! the server. Exits non-zero if one million entries take more than 64 MiB.

use std::{
    process::ExitCode,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use aws_lc_rs::digest;
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use bench::keys::KeyAlg;
use mcp_resource_server::auth::{
    DpopConfig, DpopPolicy, DpopVerifier,
    dpop::{DPOP, access_token_hash},
    replay::ReplayCache,
};
use serde_json::json;
use testkit::TestKey;

/// Resident memory of this process, in bytes (`VmRSS` of `/proc/self/status`).
fn rss() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

const ENTRIES: usize = 1_000_000;
const LIMIT: usize = 64 * 1024 * 1024;
const WINDOW: u64 = 300;
/// Principals the entries are spread over (each counted against its share).
const HOLDERS: usize = 10_000;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A principal's digest, spread over 64 bits as the server's are.
fn holder(n: usize) -> u64 {
    (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// One million distinct keys (digests, as the server makes them) with `iat` spread over
/// the whole ±5 minute window, all held at once.
fn replay_cache_memory() -> usize {
    let now = now();
    let before = rss();
    let cache = ReplayCache::new(WINDOW, ENTRIES, ENTRIES);
    let started = Instant::now();
    for i in 0..ENTRIES {
        let hash = digest::digest(&digest::SHA256, &i.to_le_bytes());
        let key = u128::from_be_bytes(hash.as_ref()[..16].try_into().expect("16 bytes"));
        let iat = now - WINDOW + (i as u64 % (2 * WINDOW));
        cache
            .insert(key, holder(i % HOLDERS), iat + WINDOW, now)
            .expect("room for one million entries");
    }
    let elapsed = started.elapsed();
    let bytes = rss().saturating_sub(before);
    assert_eq!(cache.len(), ENTRIES);
    println!(
        "replay cache: {ENTRIES} jtis held in {:.1} MiB ({:.1} bytes each), inserted at {:.0} ns each",
        bytes as f64 / 1024.0 / 1024.0,
        bytes as f64 / ENTRIES as f64,
        elapsed.as_nanos() as f64 / ENTRIES as f64
    );
    drop(cache);
    bytes
}

/// Median time to check one fresh proof with `alg` (the bound token's own validation is
/// the Bearer path's and measured by `--bench jwt`).
fn proof_check(alg: KeyAlg) -> Duration {
    const PROOFS: usize = 2000;
    let key = TestKey::generate(alg.algorithm(), "client").expect("key");
    let verifier = DpopVerifier::new(
        &DpopConfig {
            policy: DpopPolicy::Required,
            ..DpopConfig::default()
        },
        &url::Url::parse("http://127.0.0.1:3001").expect("URL"),
    )
    .expect("settings")
    .expect("DPoP on");
    let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2lnbmF0dXJl";
    let ath = access_token_hash(token);
    let iat = now();
    let proofs: Vec<HeaderMap> = (0..PROOFS)
        .map(|i| {
            let proof = key.sign_dpop_proof(&json!({
                "jti": format!("bench-{i}"), "htm": "POST",
                "htu": "http://127.0.0.1:3001/mcp", "iat": iat, "ath": ath,
            }));
            let mut headers = HeaderMap::new();
            headers.insert(&DPOP, HeaderValue::from_str(&proof).expect("header"));
            headers
        })
        .collect();
    let uri: Uri = "/mcp".parse().expect("URI");
    let jkt = key.thumbprint();
    let mut times = Vec::with_capacity(PROOFS);
    for headers in &proofs {
        let started = Instant::now();
        let proof = verifier
            .verify(headers, &Method::POST, &uri, token, iat)
            .expect("a good proof");
        verifier
            .commit(&proof, "bench", "client", iat)
            .expect("first use");
        times.push(started.elapsed());
        assert_eq!(proof.jkt, jkt);
    }
    times.sort();
    times[PROOFS / 2]
}

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; nothing here takes arguments.
    let bytes = replay_cache_memory();
    for alg in KeyAlg::ALL {
        let median = proof_check(alg);
        println!(
            "proof check, {}: {:.1} µs (median of 2000, one core)",
            alg.name(),
            median.as_secs_f64() * 1e6
        );
    }
    if bytes > LIMIT {
        eprintln!("replay cache over 64 MiB for one million jtis");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
