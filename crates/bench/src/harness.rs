//! The harness run: starts every server, runs every case in order, judges each target
//! and writes the report. A case that cannot run is reported (and makes the exit code
//! non-zero); a target that is measured but missed is only marked MISS.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::Context as _;

use crate::{
    authz::AuthServer,
    chart::{self, Series},
    client_flow::{self, median},
    dpop,
    http_load::{self, CASE_NO_TOKEN, CASE_TOOLS_CALL, Row, Target, Wrk},
    jwt_verify, key_rotation,
    keys::KeyAlg,
    options::{Case, HarnessArgs},
    procs::{self, ResourceServerOptions, Server},
    report::{Report, Status, Verdict},
    scale, sse_streams,
    wrk::{self, LoadResult, WrkCpu},
};

const RS: &str = "resource server";
const RS_OFF: &str = "resource server, authorization off";
const RS_NO_CACHE: &str = "resource server, token cache off";
const TS: &str = "TypeScript SDK server";
const RS_INFO_LOG: &str = "resource server, RUST_LOG=info";
const BARE: &str = "bare axum HTTP server";
/// The resource server's clock leeway in the SSE case: its streams end at `exp` + leeway.
const SSE_LEEWAY: Duration = Duration::from_secs(1);
/// The connection count of targets 1-3.
const TARGET_CONNECTIONS: u32 = 32;
/// What the resource server's calculator answers to `add 2 3`.
const RS_TEXT: &str = "2 add 3 = 5";
/// What the TypeScript SDK server's calculator answers.
const TS_TEXT: &str = r#""text":"5""#;

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    dir.canonicalize().unwrap_or(dir)
}

struct Settings {
    smoke: bool,
    only: Vec<Case>,
    duration: Duration,
    warmup: Duration,
    connections: Vec<u32>,
    rounds: usize,
    sse_streams: usize,
    scale_sessions: usize,
    rotation_requests: usize,
    client_runs: usize,
    verify_budget: Duration,
    out: PathBuf,
    chart: PathBuf,
    out_dir: PathBuf,
    wrk_threads: u32,
    wrk_cpu: WrkCpu,
}

impl Settings {
    fn from(args: &HarnessArgs, repo: &Path) -> Self {
        let smoke = args.smoke;
        // A partial run never replaces the full report.
        let scratch = smoke || !args.only.is_empty();
        let out_dir = repo.join("out/bench");
        let mut connections: Vec<u32> = args
            .connections
            .iter()
            .copied()
            .filter(|c| *c > 0)
            .collect();
        if !connections.contains(&TARGET_CONNECTIONS) {
            connections.push(TARGET_CONNECTIONS);
        }
        connections.sort_unstable();
        connections.dedup();
        let absolute = |p: &PathBuf| {
            if p.is_absolute() {
                p.clone()
            } else {
                std::env::current_dir().unwrap_or_default().join(p)
            }
        };
        Self {
            smoke,
            only: args.only.clone(),
            duration: Duration::from_secs(args.duration.unwrap_or(if smoke { 2 } else { 10 })),
            warmup: Duration::from_secs(if smoke { 1 } else { 3 }),
            connections,
            rounds: args.rounds.unwrap_or(if smoke { 1 } else { 5 }).max(1),
            sse_streams: args
                .sse_streams
                .unwrap_or(if smoke { 1000 } else { 10_000 }),
            scale_sessions: args
                .scale_sessions
                .unwrap_or(if smoke { 1000 } else { 10_000 })
                .max(1),
            rotation_requests: args.rotation_requests.max(1),
            client_runs: args
                .client_runs
                .unwrap_or(if smoke { 3 } else { 15 })
                .max(1),
            verify_budget: Duration::from_millis(if smoke { 200 } else { 1500 }),
            out: args.out.as_ref().map_or_else(
                || {
                    if scratch {
                        out_dir.join("BENCHMARKS.md")
                    } else {
                        repo.join("BENCHMARKS.md")
                    }
                },
                absolute,
            ),
            chart: args.chart.as_ref().map_or_else(
                || {
                    if scratch {
                        out_dir.join("connections.svg")
                    } else {
                        repo.join("crates/bench/results/connections.svg")
                    }
                },
                absolute,
            ),
            out_dir,
            wrk_threads: args.wrk_threads.max(1),
            wrk_cpu: args.wrk_cpu,
        }
    }

    fn runs(&self, case: Case) -> bool {
        self.only.is_empty() || self.only.contains(&case)
    }

    fn describe(&self) -> String {
        format!(
            "Settings: {} run; wrk {} s per measurement (after a {} s warm-up per server), {} thread(s), {}, connections {} (at 32 connections {} more interleaved rounds, medians kept); {} SSE streams; {} concurrent requests after the key rotation; {} timed client runs of each kind.",
            if self.smoke { "smoke" } else { "full" },
            self.duration.as_secs(),
            self.warmup.as_secs(),
            self.wrk_threads,
            self.wrk_cpu.describe(),
            self.connections
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            self.rounds,
            self.sse_streams,
            self.rotation_requests,
            self.client_runs
        )
    }
}

fn command_line() -> String {
    if let Ok(command) = std::env::var("BENCH_COMMAND") {
        return command;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        "cargo run --release -p bench".into()
    } else {
        format!("cargo run --release -p bench -- {}", args.join(" "))
    }
}

fn utc_now() -> String {
    let secs = crate::authz::unix_now();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

async fn first_line(program: &Path, args: &[&str]) -> String {
    match tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
    {
        Ok(out) => {
            let text = if out.stdout.is_empty() {
                out.stderr
            } else {
                out.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        }
        Err(_) => "not found".into(),
    }
}

/// The commit the run measured, and whether tracked files differed from it.
async fn source_revision(repo: &Path) -> String {
    let git = |args: &'static [&'static str]| async move {
        tokio::process::Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(args)
            .output()
            .await
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let Some(commit) = git(&["rev-parse", "--short=12", "HEAD"]).await else {
        return "? (not a git checkout)".into();
    };
    match git(&["status", "--porcelain", "--untracked-files=no"]).await {
        Some(changes) if changes.is_empty() => format!("commit {commit}"),
        Some(_) => format!("commit {commit}, with uncommitted changes"),
        None => format!("commit {commit} (working tree not checked)"),
    }
}

fn lock_version(repo: &Path, name: &str) -> String {
    let lock = std::fs::read_to_string(repo.join("Cargo.lock")).unwrap_or_default();
    let needle = format!("name = \"{name}\"\nversion = \"");
    lock.find(&needle)
        .and_then(|i| lock[i + needle.len()..].split('"').next())
        .unwrap_or("?")
        .to_string()
}

fn package_version(repo: &Path, package: &str) -> String {
    std::fs::read_to_string(
        repo.join("interop/node_modules")
            .join(package)
            .join("package.json"),
    )
    .ok()
    .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
    .and_then(|v| v["version"].as_str().map(str::to_string))
    .unwrap_or_else(|| "?".into())
}

async fn environment(repo: &Path, node: &Path, wrk: &Path) -> Vec<(String, String)> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "?".into());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().find_map(|l| {
                l.strip_prefix("MemTotal:")
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|k| k.parse::<u64>().ok())
            })
        })
        .map_or_else(
            || "?".into(),
            |k| format!("{:.1} GiB", k as f64 / 1024.0 / 1024.0),
        );
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into());
    vec![
        ("source".into(), source_revision(repo).await),
        ("machine".into(), format!("{cores} cores ({cpu}), {memory}, Linux {kernel}")),
        ("load average at the start".into(), load),
        ("load generator".into(), first_line(wrk, &["-v"]).await),
        (
            "our server".into(),
            format!(
                "mcp-resource-server (rmcp {}, jsonwebtoken {} with aws-lc-rs), release build with jemalloc (as the `resource-server` binary; the reference servers too), stateless Streamable HTTP with JSON replies",
                lock_version(repo, "rmcp"),
                lock_version(repo, "jsonwebtoken")
            ),
        ),
        (
            "peer server".into(),
            format!(
                "interop/ts-server.mjs: @modelcontextprotocol/sdk {}, express {}, jose {}, Node.js {} (NODE_ENV=production)",
                package_version(repo, "@modelcontextprotocol/sdk"),
                package_version(repo, "express"),
                package_version(repo, "jose"),
                first_line(node, &["--version"]).await
            ),
        ),
        (
            "tokens".into(),
            "RS256 (RSA 2048) JWT access tokens from the harness's authorization server, verified by both servers against its JWKS (fetched once, then cached)".into(),
        ),
    ]
}

fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Runs every case and writes the report.
///
/// # Errors
/// Only for failures outside the cases (the report cannot be written).
pub async fn run(args: HarnessArgs) -> anyhow::Result<ExitCode> {
    let repo = repo_root();
    let settings = Settings::from(&args, &repo);
    std::fs::create_dir_all(&settings.out_dir)?;
    let node = match args.node.clone() {
        Some(node) => node,
        None => testkit::node::node_binary(&repo.join("interop")).unwrap_or_else(|error| {
            // The cases that need Node.js fail on their own and say so in the report.
            eprintln!("bench: {error:#}");
            repo.join("interop/node_modules")
                .join(testkit::node::PINNED_NODE)
        }),
    };
    let mut report = Report {
        command: command_line(),
        started: utc_now(),
        environment: environment(&repo, &node, &args.wrk).await,
        settings: settings.describe(),
        ..Report::default()
    };
    eprintln!("bench: {}", report.settings);
    if let Some(limit) = open_files_limit()
        && (limit as usize) < settings.sse_streams + 1000
    {
        report.broken.push(format!(
            "the open-files limit is {limit}: too low for {} SSE streams (raise it with `ulimit -n 20000`)",
            settings.sse_streams
        ));
    }

    // Build what the client case runs first, so no compilation overlaps a measurement.
    let client_bin = if settings.runs(Case::Client) {
        eprintln!("bench: building mcp-client and dev-idp");
        Some(client_flow::build_binaries(&repo).await)
    } else {
        None
    };

    let auth = crate::authz::start(KeyAlg::Rs256).await?;
    if settings.runs(Case::Http)
        && let Err(error) = http_cases(&args, &settings, &repo, &node, &auth, &mut report).await
    {
        report.broken.push(format!("{error:#}"));
    }

    if settings.runs(Case::Sse) {
        eprintln!("bench: SSE streams ({})", settings.sse_streams);
        match sse_case(&settings, &auth).await {
            Ok((result, bare)) => {
                report.sse = Some(result);
                report.sse_bare = bare;
            }
            Err(error) => report.broken.push(format!("SSE streams: {error:#}")),
        }
    }

    if settings.runs(Case::Scale) {
        eprintln!("bench: scale-out (three instances behind nginx, Redis)");
        let scale_settings = scale::ScaleSettings {
            wrk: args.wrk.clone(),
            wrk_threads: settings.wrk_threads,
            wrk_cpu: settings.wrk_cpu,
            duration: settings.duration,
            // Target 11 alternates its two loads: at least three rounds for a median,
            // shorter ones in a smoke run to stay within the case's time in CI.
            rounds: settings.rounds.max(3),
            round_duration: if settings.smoke {
                Duration::from_secs(1)
            } else {
                settings.duration
            },
            sse_calls: if settings.smoke { 10 } else { 50 },
            memory_sessions: settings.scale_sessions,
            out_dir: settings.out_dir.clone(),
        };
        match scale::run(&scale_settings, &auth).await {
            Ok(result) => report.scale = Some(result),
            Err(error) => report.broken.push(format!("scale-out: {error:#}")),
        }
    }

    if let Some(bin) = client_bin {
        eprintln!("bench: client");
        let result = match bin {
            Ok(bin) => {
                client_flow::run(&repo, &bin, &settings.out_dir, &node, settings.client_runs).await
            }
            Err(error) => Err(error),
        };
        match result {
            Ok(result) => report.client = Some(result),
            Err(error) => report.broken.push(format!("client: {error:#}")),
        }
    }

    if settings.runs(Case::Jwt) {
        eprintln!("bench: JWT verification");
        let budget = settings.verify_budget;
        match tokio::task::spawn_blocking(move || jwt_verify::time_all(budget)).await {
            Ok(Ok(times)) => report.verify = times,
            Ok(Err(error)) => report.broken.push(format!("JWT verification: {error:#}")),
            Err(error) => report.broken.push(format!("JWT verification: {error}")),
        }
    }

    if settings.runs(Case::Jwt) {
        eprintln!("bench: DPoP replay cache memory");
        for principals in [10_000, dpop::MEMORY_ENTRIES] {
            match dpop::measure_replay_memory(principals).await {
                Ok(result) => report.replay_memory.push(result),
                Err(error) => report
                    .broken
                    .push(format!("DPoP replay cache memory: {error:#}")),
            }
        }
    }

    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let load = load
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        report
            .environment
            .push(("load average at the end".into(), load));
    }
    judge(&settings, &mut report);
    write_outputs(&settings, &report)?;
    Ok(if report.broken.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn http_cases(
    args: &HarnessArgs,
    settings: &Settings,
    repo: &Path,
    node: &Path,
    auth: &AuthServer,
    report: &mut Report,
) -> anyhow::Result<()> {
    let dir = &settings.out_dir;
    let script = wrk::write_script(dir)?;
    let wrk = Wrk {
        program: &args.wrk,
        script: &script,
        threads: settings.wrk_threads,
        cpu: settings.wrk_cpu,
    };
    let start_rs = |name: &'static str, options: ResourceServerOptions, log: &'static str| {
        let log = dir.join(log);
        async move { procs::start_resource_server(name, auth.issuer(), &options, &log).await }
    };
    let rs = start_rs(RS, ResourceServerOptions::default(), "resource-server.log").await?;
    let rs_off = start_rs(
        RS_OFF,
        ResourceServerOptions {
            no_auth: true,
            ..ResourceServerOptions::default()
        },
        "resource-server-no-auth.log",
    )
    .await?;
    let rs_no_cache = start_rs(
        RS_NO_CACHE,
        ResourceServerOptions {
            token_cache: Some(0),
            ..ResourceServerOptions::default()
        },
        "resource-server-no-cache.log",
    )
    .await?;
    let rs_info = start_rs(
        RS_INFO_LOG,
        ResourceServerOptions {
            log_filter: Some("info".into()),
            ..ResourceServerOptions::default()
        },
        "resource-server-info-log.log",
    )
    .await?;
    let ts = procs::start_ts_server(node, repo, auth.issuer(), &dir.join("ts-server.log")).await?;
    let bare = procs::start_bare_http(None, &dir.join("bare-http.log")).await?;

    // Every server gets the same request, token included: those with authorization
    // off ignore it, so the comparison is of the work done, not of bytes sent.
    let rs_token = http_load::token_for(auth, &rs);
    let targets = [
        Target {
            server: &rs,
            token: Some(rs_token.clone()),
            expect_text: RS_TEXT,
        },
        Target {
            server: &ts,
            token: Some(http_load::token_for(auth, &ts)),
            expect_text: TS_TEXT,
        },
        Target {
            server: &rs_off,
            token: Some(rs_token.clone()),
            expect_text: RS_TEXT,
        },
        Target {
            server: &rs_no_cache,
            token: Some(http_load::token_for(auth, &rs_no_cache)),
            expect_text: RS_TEXT,
        },
        Target {
            server: &rs_info,
            token: Some(http_load::token_for(auth, &rs_info)),
            expect_text: RS_TEXT,
        },
        Target {
            server: &bare,
            token: Some(rs_token),
            expect_text: RS_TEXT,
        },
    ];
    for target in &targets {
        http_load::sanity_check(target).await?;
    }
    eprintln!("bench: warm-up");
    for target in &targets {
        http_load::measure(
            &wrk,
            CASE_TOOLS_CALL,
            target,
            TARGET_CONNECTIONS,
            settings.warmup,
        )
        .await?;
    }
    let [rs_t, ts_t, off_t, no_cache_t, info_t, bare_t] = &targets;
    let note = |row: &Row, report: &mut Report| {
        eprintln!(
            "bench: {:<20} {:<40} c={:<4} {:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  errors {}",
            row.case,
            row.server,
            row.connections,
            row.result.rps,
            row.result.p50_ms,
            row.result.p99_ms,
            row.result.errors
        );
        // Wrong replies or failed connections mean something is broken. A peer too
        // slow to answer within wrk's timeout is a result (shown in the table), not a
        // breakage; our own servers get no such allowance.
        let excused = if row.server == TS {
            row.result.timeouts
        } else {
            0
        };
        if row.result.errors > excused {
            report.broken.push(format!(
                "{} errors under load ({} timeouts): {} on {} at {} connections",
                row.result.errors, row.result.timeouts, row.case, row.server, row.connections
            ));
        }
    };
    // The sweep (the chart): each connection count once, servers interleaved.
    let mut samples: Vec<Row> = Vec::new();
    for &c in &settings.connections {
        for target in [rs_t, ts_t, off_t, bare_t] {
            let row =
                http_load::measure(&wrk, CASE_TOOLS_CALL, target, c, settings.duration).await?;
            note(&row, report);
            samples.push(row);
        }
    }
    // Targets 1-3 at 32 connections: more rounds, servers interleaved, medians kept.
    let round: [(&'static str, &Target<'_>); 8] = [
        (CASE_TOOLS_CALL, rs_t),
        (CASE_TOOLS_CALL, ts_t),
        (CASE_TOOLS_CALL, off_t),
        (CASE_TOOLS_CALL, no_cache_t),
        (CASE_TOOLS_CALL, info_t),
        (CASE_TOOLS_CALL, bare_t),
        (CASE_NO_TOKEN, rs_t),
        (CASE_NO_TOKEN, ts_t),
    ];
    for _ in 0..settings.rounds {
        for (case, target) in round {
            let row = http_load::measure(&wrk, case, target, TARGET_CONNECTIONS, settings.duration)
                .await?;
            note(&row, report);
            samples.push(row);
        }
    }
    // DPoP-bound tools/call (target 8): a server of its own, fresh proofs for each run.
    eprintln!("bench: DPoP-bound tools/call");
    let most_rps = samples
        .iter()
        .filter(|r| {
            r.case == CASE_TOOLS_CALL && r.server == RS && r.connections == TARGET_CONNECTIONS
        })
        .map(|r| r.result.rps)
        .fold(f64::NAN, f64::max);
    let plan = dpop::LoadPlan {
        connections: TARGET_CONNECTIONS,
        warmup: settings.warmup,
        duration: settings.duration,
        rounds: settings.rounds,
        most_rps,
    };
    match dpop::run_load(&wrk, auth, dir, RS_TEXT, plan).await {
        Ok(rows) => {
            for row in rows {
                note(&row, report);
                samples.push(row);
            }
        }
        Err(error) => report.broken.push(format!("DPoP load: {error:#}")),
    }
    report.rows = median_rows(samples);

    eprintln!(
        "bench: key rotation under load ({} requests)",
        settings.rotation_requests
    );
    match key_rotation::run(auth, &rs, RS_TEXT, settings.rotation_requests).await {
        Ok(result) => {
            if result.succeeded != result.requests {
                report.broken.push(format!(
                    "key rotation: {} of {} requests failed ({})",
                    result.requests - result.succeeded,
                    result.requests,
                    result.failures.join("; ")
                ));
            }
            report.rotation = Some(result);
        }
        Err(error) => report.broken.push(format!("key rotation: {error:#}")),
    }
    for server in [rs, rs_off, rs_no_cache, rs_info, ts, bare] {
        stop_checked(server, report).await;
    }
    // Hundreds of MiB of INFO lines, written only to be paid for.
    let _ = std::fs::remove_file(dir.join("resource-server-info-log.log"));
    Ok(())
}

/// One row per (case, server, connections), summarising its runs: see [`summarise`].
fn median_rows(samples: Vec<Row>) -> Vec<Row> {
    let mut groups: Vec<Vec<Row>> = Vec::new();
    for row in samples {
        match groups.iter_mut().find(|g| {
            g[0].case == row.case
                && g[0].server == row.server
                && g[0].connections == row.connections
        }) {
            Some(group) => group.push(row),
            None => groups.push(vec![row]),
        }
    }
    let mut rows: Vec<Row> = groups.into_iter().map(summarise).collect();
    let order = |r: &Row| {
        (
            usize::from(r.case != CASE_TOOLS_CALL),
            r.connections,
            [RS, TS, RS_OFF, RS_NO_CACHE, RS_INFO_LOG, BARE]
                .iter()
                .position(|s| *s == r.server)
                .unwrap_or(9),
        )
    };
    rows.sort_by_key(order);
    rows
}

/// The runs of one row as one: requests/s and latency percentiles are medians (no run's
/// outlier, fast or slow, decides a figure alone), with the ranges of requests/s and
/// p99 kept beside them; requests, errors and timeouts are summed; the longest latency
/// and the memory peak are the highest seen.
fn summarise(group: Vec<Row>) -> Row {
    let figures = |figure: fn(&LoadResult) -> f64| -> Vec<f64> {
        group.iter().map(|row| figure(&row.result)).collect()
    };
    let range = |values: &[f64]| {
        values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            })
    };
    let rps = figures(|r| r.rps);
    let p99 = figures(|r| r.p99_ms);
    let result = LoadResult {
        requests: group.iter().map(|r| r.result.requests).sum(),
        rps: median(&rps),
        p50_ms: median(&figures(|r| r.p50_ms)),
        p90_ms: median(&figures(|r| r.p90_ms)),
        p99_ms: median(&p99),
        max_ms: range(&figures(|r| r.max_ms)).1,
        errors: group.iter().map(|r| r.result.errors).sum(),
        timeouts: group.iter().map(|r| r.result.timeouts).sum(),
    };
    let first = &group[0];
    Row {
        case: first.case,
        server: first.server.clone(),
        connections: first.connections,
        result,
        peak_rss_kib: group.iter().map(|r| r.peak_rss_kib).max().unwrap_or(0),
        cpu_us_per_request: median(
            &group
                .iter()
                .map(|r| r.cpu_us_per_request)
                .collect::<Vec<_>>(),
        ),
        runs: group.len(),
        rps_range: range(&rps),
        p99_range: range(&p99),
    }
}

async fn stop_checked(mut server: Server, report: &mut Report) {
    if let Err(error) = server.check_alive() {
        report.broken.push(format!("{error:#}"));
    }
    server.stop().await;
}

async fn sse_case(
    settings: &Settings,
    auth: &AuthServer,
) -> anyhow::Result<(sse_streams::SseResult, Option<sse_streams::SseResult>)> {
    // The reference first: the same streams on a bare axum SSE server.
    let bare = match procs::start_bare_sse(None, &settings.out_dir.join("bare-sse.log")).await {
        Ok(server) => {
            let result =
                sse_streams::run(auth, &server, settings.sse_streams, Duration::ZERO).await;
            server.stop().await;
            match result {
                Ok(result) if result.opened == result.requested => Some(result),
                Ok(result) => {
                    eprintln!(
                        "bench: the bare SSE reference opened {} of {} streams",
                        result.opened, result.requested
                    );
                    None
                }
                Err(error) => {
                    eprintln!("bench: the bare SSE reference failed: {error:#}");
                    None
                }
            }
        }
        Err(error) => {
            eprintln!("bench: the bare SSE reference did not start: {error:#}");
            None
        }
    };
    // A one-second clock leeway, so the case does not wait the default 30 s past `exp`.
    let server = procs::start_resource_server(
        "resource server (SSE)",
        auth.issuer(),
        &ResourceServerOptions {
            extra_args: vec!["--leeway".into(), SSE_LEEWAY.as_secs().to_string()],
            ..ResourceServerOptions::default()
        },
        &settings.out_dir.join("resource-server-sse.log"),
    )
    .await?;
    let result = sse_streams::run(auth, &server, settings.sse_streams, SSE_LEEWAY)
        .await
        .context("holding SSE streams")?;
    server.stop().await;
    Ok((result, bare))
}

fn rps(report: &Report, case: &str, server: &str) -> Option<f64> {
    report
        .row(case, server, TARGET_CONNECTIONS)
        .map(|r| r.result.rps)
}

fn judge(settings: &Settings, report: &mut Report) {
    let mut verdicts = Vec::new();
    let why = |case: Case| {
        if settings.runs(case) {
            "see Problems"
        } else {
            "not selected with --only"
        }
    };
    let row = |case: &str, server: &str| report.row(case, server, TARGET_CONNECTIONS).cloned();

    // 1. Authenticated tools/call at 32 connections.
    verdicts.push(match (row(CASE_TOOLS_CALL, RS), row(CASE_TOOLS_CALL, TS)) {
        (Some(ours), Some(peer)) if peer.result.rps > 0.0 => {
            let ratio = ours.result.rps / peer.result.rps;
            let ceiling = rps(report, CASE_TOOLS_CALL, RS_OFF).unwrap_or(f64::NAN);
            let no_cache = rps(report, CASE_TOOLS_CALL, RS_NO_CACHE).unwrap_or(f64::NAN);
            let info_log = rps(report, CASE_TOOLS_CALL, RS_INFO_LOG).unwrap_or(f64::NAN);
            let floor = row(CASE_TOOLS_CALL, BARE).map_or_else(String::new, |bare| {
                format!(
                    "; floor, a bare axum server with a constant reply: {:.0} req/s, p99 {:.2} ms",
                    bare.result.rps, bare.result.p99_ms
                )
            });
            Verdict {
                id: 1,
                name: "authenticated tools/call, 32 connections",
                goal: "≥ 20x the TS SDK server's req/s, p99 ≤ 3 ms, 0 errors".into(),
                measured: format!(
                    "{:.0} vs {:.0} req/s = **{ratio:.1}x** (medians of {} and {} runs; server CPU per request {:.1} vs {:.1} µs), p99 {:.2} ms (median; runs {:.2}–{:.2} ms), {} errors (authorization off: {:.0} req/s = {:.1}x; token cache off: {:.0} req/s = {:.1}x; with rmcp's per-request INFO logs: {:.0} req/s = {:.1}x{floor})",
                    ours.result.rps,
                    peer.result.rps,
                    ours.runs,
                    peer.runs,
                    ours.cpu_us_per_request,
                    peer.cpu_us_per_request,
                    ours.result.p99_ms,
                    ours.p99_range.0,
                    ours.p99_range.1,
                    ours.result.errors,
                    ceiling,
                    ceiling / peer.result.rps,
                    no_cache,
                    no_cache / peer.result.rps,
                    info_log,
                    info_log / peer.result.rps
                ),
                status: Status::from_bool(
                    ratio >= 20.0 && ours.result.p99_ms <= 3.0 && ours.result.errors == 0,
                ),
            }
        }
        _ => not_run(1, "authenticated tools/call, 32 connections", why(Case::Http)),
    });

    // 2. No token.
    verdicts.push(match (row(CASE_NO_TOKEN, RS), row(CASE_NO_TOKEN, TS)) {
        (Some(ours), Some(peer)) if peer.result.rps > 0.0 => {
            let ratio = ours.result.rps / peer.result.rps;
            Verdict {
                id: 2,
                name: "no token: 401 with the full challenge",
                goal: "≥ 15x the TS SDK server's req/s".into(),
                measured: format!(
                    "{:.0} vs {:.0} req/s = **{ratio:.1}x** (server CPU per request {:.1} vs {:.1} µs; p99 {:.2} vs {:.2} ms, {} errors)",
                    ours.result.rps,
                    peer.result.rps,
                    ours.cpu_us_per_request,
                    peer.cpu_us_per_request,
                    ours.result.p99_ms,
                    peer.result.p99_ms,
                    ours.result.errors
                ),
                status: Status::from_bool(ratio >= 15.0 && ours.result.errors == 0),
            }
        }
        _ => not_run(2, "no token: 401 with the full challenge", why(Case::Http)),
    });

    // 3. Cost of authorization.
    verdicts.push(
        match (row(CASE_TOOLS_CALL, RS), row(CASE_TOOLS_CALL, RS_OFF)) {
            (Some(ours), Some(off)) if off.result.rps > 0.0 => {
                let ratio = ours.result.rps / off.result.rps;
                let no_cache = rps(report, CASE_TOOLS_CALL, RS_NO_CACHE).unwrap_or(f64::NAN);
                Verdict {
                    id: 3,
                    name: "cost of authorization",
                    goal: "authenticated ≥ 0.9x the same server with authorization off".into(),
                    measured: format!(
                        "{:.0} vs {:.0} req/s = **{ratio:.2}x** (token cache off: {:.2}x); server CPU per request {:.1} vs {:.1} µs, authorization {:+.1} µs",
                        ours.result.rps,
                        off.result.rps,
                        no_cache / off.result.rps,
                        ours.cpu_us_per_request,
                        off.cpu_us_per_request,
                        ours.cpu_us_per_request - off.cpu_us_per_request
                    ),
                    status: Status::from_bool(ratio >= 0.9),
                }
            }
            _ => not_run(3, "cost of authorization", why(Case::Http)),
        },
    );

    // 4. SSE streams.
    verdicts.push(match &report.sse {
        Some(sse) => {
            let per = sse.peak_per_stream_kib();
            let all_open = sse.opened == sse.requested;
            let all_closed = sse.closed_in_time == sse.opened;
            Verdict {
                id: 4,
                name: "concurrent authenticated SSE streams",
                goal: format!(
                    "{} open; ≤ 24 KiB peak RSS per stream; all closed at token expiry",
                    sse.requested
                ),
                measured: format!(
                    "{} open, **{per:.1} KiB** per stream{}, {} of {} closed at expiry",
                    sse.opened,
                    report
                        .sse_bare
                        .as_ref()
                        .map_or_else(String::new, |bare| format!(
                            " (bare axum SSE in the same run: {:.1} KiB)",
                            bare.peak_per_stream_kib()
                        )),
                    sse.closed_in_time,
                    sse.opened
                ),
                status: Status::from_bool(all_open && all_closed && per <= 24.0),
            }
        }
        None => not_run(4, "concurrent authenticated SSE streams", why(Case::Sse)),
    });

    // 5. Unknown kid.
    verdicts.push(match &report.rotation {
        Some(rot) => Verdict {
            id: 5,
            name: "unknown kid under load",
            goal: format!(
                "{} concurrent requests with a freshly rotated key → exactly 1 JWKS fetch",
                rot.requests
            ),
            measured: format!(
                "**{}** fetch(es); {} of {} requests succeeded",
                rot.jwks_fetches, rot.succeeded, rot.requests
            ),
            status: Status::from_bool(rot.jwks_fetches == 1 && rot.succeeded == rot.requests),
        },
        None => not_run(5, "unknown kid under load", why(Case::Http)),
    });

    // 6. Client.
    verdicts.push(match &report.client {
        Some(client) => {
            let cached = median(&client.cached_ms);
            let ours = median(&client.ours_full_ms);
            let ts = median(&client.ts_full_ms);
            let ratio = ts / ours;
            Verdict {
                id: 6,
                name: "client start-up and full flow",
                goal: "cached token: median ≤ 20 ms from process start to the tools/call result; full headless flow ≥ 5x faster than the TS SDK client".into(),
                measured: format!(
                    "cached **{cached:.1} ms**; full flow {ours:.0} vs {ts:.0} ms = **{ratio:.1}x**"
                ),
                status: Status::from_bool(cached <= 20.0 && ratio >= 5.0),
            }
        }
        None => not_run(6, "client start-up and full flow", why(Case::Client)),
    });

    // 7. Microbenchmarks.
    verdicts.push(if report.verify.is_empty() {
        not_run(7, "JWT verification microbenchmarks", why(Case::Jwt))
    } else {
        Verdict {
            id: 7,
            name: "JWT verification microbenchmarks",
            goal: "RS256, ES256, EdDSA, cold and cached (criterion: `cargo bench -p bench`)".into(),
            measured: report
                .verify
                .iter()
                .map(|v| {
                    format!(
                        "{} {:.1} µs cold / {:.2} µs cached",
                        v.alg.name(),
                        v.cold_ns / 1000.0,
                        v.cached_ns / 1000.0
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
            status: Status::Info,
        }
    });
    // 8. DPoP-bound tools/call against the peer's Bearer tools/call.
    verdicts.push(
        match (
            report.row(dpop::CASE_DPOP, dpop::RS_DPOP, TARGET_CONNECTIONS),
            row(CASE_TOOLS_CALL, TS),
        ) {
            (Some(ours), Some(peer)) if peer.result.rps > 0.0 => {
                let ratio = ours.result.rps / peer.result.rps;
                let bearer = row(CASE_TOOLS_CALL, RS).map_or_else(String::new, |b| {
                    format!(
                        "; the same request with a cached Bearer token: {:.0} req/s, {:.1} µs",
                        b.result.rps, b.cpu_us_per_request
                    )
                });
                Verdict {
                    id: 8,
                    name: "DPoP-bound tools/call, 32 connections",
                    goal: "≥ 10x the TS SDK server's Bearer req/s (one ES256 proof checked per request), 0 errors".into(),
                    measured: format!(
                        "{:.0} vs {:.0} req/s = **{ratio:.1}x** (medians of {} and {} runs; server CPU per request {:.1} vs {:.1} µs{bearer}), p99 {:.2} ms, {} errors",
                        ours.result.rps,
                        peer.result.rps,
                        ours.runs,
                        peer.runs,
                        ours.cpu_us_per_request,
                        peer.cpu_us_per_request,
                        ours.result.p99_ms,
                        ours.result.errors
                    ),
                    status: Status::from_bool(ratio >= 10.0 && ours.result.errors == 0),
                }
            }
            _ => not_run(8, "DPoP-bound tools/call, 32 connections", why(Case::Http)),
        },
    );

    // 9. The replay cache's memory.
    verdicts.push(match report.replay_memory.as_slice() {
        [] => not_run(9, "DPoP replay cache, 1 million jtis", why(Case::Jwt)),
        results => {
            let worst = results.iter().map(|r| r.bytes).max().unwrap_or(0);
            Verdict {
                id: 9,
                name: "DPoP replay cache, 1 million jtis",
                goal: "≤ 64 MiB resident".into(),
                measured: results
                    .iter()
                    .map(|r| format!("**{:.1} MiB** over {} principals", r.mib(), r.principals))
                    .collect::<Vec<_>>()
                    .join("; "),
                status: Status::from_bool(worst <= dpop::MEMORY_GOAL),
            }
        }
    });
    scale_verdicts(report.scale.as_ref(), why(Case::Scale), &mut verdicts);
    report.verdicts = verdicts;
}

/// Targets 10-12: the scale-out figures.
fn scale_verdicts(scale: Option<&scale::ScaleResult>, why: &str, verdicts: &mut Vec<Verdict>) {
    const SSE: &str = "legacy SSE across instances (Redis pub/sub)";
    const HTTP: &str = "Streamable HTTP through nginx, stateful with Redis";
    const MEMORY: &str = "Redis memory per session";
    let Some(scale) = scale else {
        verdicts.extend([
            not_run(10, SSE, why),
            not_run(11, HTTP, why),
            not_run(12, MEMORY, why),
        ]);
        return;
    };
    let extra = scale.sse_cross.p99_ms - scale.sse_same.p99_ms;
    verdicts.push(Verdict {
        id: 10,
        name: SSE,
        goal: format!(
            "post to another instance → reply on the stream: p99 ≤ 2 ms over the same instance, {} streams",
            scale::CONNECTIONS
        ),
        measured: format!(
            "p99 **{:.2} ms** vs {:.2} ms = **{extra:+.2} ms** (p50 {:.2} vs {:.2} ms)",
            scale.sse_cross.p99_ms,
            scale.sse_same.p99_ms,
            scale.sse_cross.p50_ms,
            scale.sse_same.p50_ms
        ),
        status: Status::from_bool(extra <= 2.0),
    });
    let ratio = scale.ratio();
    let (ratio_lo, ratio_hi) = scale.round_ratio_range();
    verdicts.push(Verdict {
        id: 11,
        name: HTTP,
        goal: "authenticated tools/call via nginx to 3 instances: stateful with Redis ≥ 0.8x stateless without".into(),
        measured: format!(
            "{:.0} vs {:.0} req/s = **{ratio:.2}x** (medians of {} alternated rounds; the rounds' ratios {ratio_lo:.2}–{ratio_hi:.2}); stateful costs {:.1} µs/request more; {:.4} Redis commands/request",
            scale.lb_stateful.rps,
            scale.lb_stateless.rps,
            scale.rounds(),
            scale::extra_us(&scale.lb_stateful, &scale.lb_stateless),
            scale.redis_commands_per_request
        ),
        status: Status::from_bool(ratio >= 0.8),
    });
    verdicts.push(Verdict {
        id: 12,
        name: MEMORY,
        goal: format!(
            "Redis `used_memory` growth at {} of each",
            scale.memory_sessions
        ),
        measured: format!(
            "**{:.0} B** per cookie session, **{:.0} B** per live Streamable HTTP session",
            scale.cookie_bytes, scale.session_bytes
        ),
        status: Status::Info,
    });
}

fn not_run(id: u8, name: &'static str, why: &str) -> Verdict {
    Verdict {
        id,
        name,
        goal: String::new(),
        measured: String::new(),
        status: Status::NotRun(why.into()),
    }
}

/// `target` relative to the directory `from` (both absolute).
fn relative(from: &Path, target: &Path) -> String {
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = target.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".into(); from.len() - common];
    parts.extend(
        to[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

fn write_outputs(settings: &Settings, report: &Report) -> anyhow::Result<()> {
    let ratio = |r: &Row| -> Option<f64> {
        if r.server == TS || r.server == BARE {
            return None;
        }
        // DPoP rows are compared with the peer's Bearer rows (it has no DPoP).
        let case = if r.case == dpop::CASE_DPOP {
            CASE_TOOLS_CALL
        } else {
            r.case
        };
        let peer = report.row(case, TS, r.connections)?;
        (peer.result.rps > 0.0).then(|| r.result.rps / peer.result.rps)
    };
    let colors = [
        (RS, "#d9480f"),
        (RS_OFF, "#868e96"),
        (TS, "#1c7ed6"),
        (BARE, "#2f9e44"),
    ];
    let series: Vec<Series> = colors
        .iter()
        .map(|(name, color)| Series {
            name: (*name).to_string(),
            color,
            points: report
                .rows
                .iter()
                .filter(|r| r.case == CASE_TOOLS_CALL && r.server == *name)
                .map(|r| (r.connections, r.result.rps, r.result.p99_ms))
                .collect(),
        })
        .collect();
    let svg = chart::render(
        "Authenticated MCP tools/call (wrk, same machine, one run)",
        &settings.connections,
        &series,
    );
    if let Some(dir) = settings.chart.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&settings.chart, svg)
        .with_context(|| format!("writing {}", settings.chart.display()))?;
    let out_dir = settings.out.parent().unwrap_or(Path::new("."));
    let markdown = report.markdown(&relative(out_dir, &settings.chart), ratio);
    std::fs::create_dir_all(out_dir)?;
    std::fs::write(&settings.out, &markdown)
        .with_context(|| format!("writing {}", settings.out.display()))?;

    println!();
    println!("{}", report.load_table(ratio));
    println!("{}", report.verdict_table());
    println!("{}", report.details());
    if !report.broken.is_empty() {
        println!("Problems:");
        for b in &report.broken {
            println!("- {b}");
        }
    }
    println!(
        "Wrote {} and {}",
        settings.out.display(),
        settings.chart.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative(Path::new("/r"), Path::new("/r/crates/bench/x.svg")),
            "crates/bench/x.svg"
        );
        assert_eq!(
            relative(Path::new("/r/out/bench"), Path::new("/r/out/bench/c.svg")),
            "c.svg"
        );
        assert_eq!(
            relative(Path::new("/r/a"), Path::new("/r/b/c.svg")),
            "../b/c.svg"
        );
    }

    fn run(rps: f64, p99_ms: f64, errors: u64, peak_rss_kib: u64) -> Row {
        let result = LoadResult {
            requests: 100,
            rps,
            p50_ms: p99_ms / 2.0,
            p90_ms: p99_ms / 1.5,
            p99_ms,
            max_ms: p99_ms * 2.0,
            errors,
            timeouts: 0,
        };
        Row {
            case: CASE_TOOLS_CALL,
            server: RS.into(),
            connections: TARGET_CONNECTIONS,
            result,
            peak_rss_kib,
            cpu_us_per_request: 1000.0 / rps,
            runs: 1,
            rps_range: (rps, rps),
            p99_range: (p99_ms, p99_ms),
        }
    }

    #[test]
    fn runs_are_summarised_figure_by_figure() {
        // The slowest run has the best p99: medians are taken per figure, not per run.
        let row = summarise(vec![
            run(300.0, 2.0, 0, 10),
            run(100.0, 1.0, 1, 30),
            run(200.0, 9.0, 0, 20),
            run(400.0, 3.0, 2, 10),
        ]);
        assert_eq!(row.runs, 4);
        assert_eq!(row.result.rps, 250.0);
        assert_eq!(row.rps_range, (100.0, 400.0));
        assert_eq!(row.result.p99_ms, 2.5);
        assert_eq!(row.p99_range, (1.0, 9.0));
        assert_eq!(row.result.p50_ms, 1.25);
        assert_eq!(row.result.max_ms, 18.0);
        assert_eq!(row.result.requests, 400);
        assert_eq!(row.result.errors, 3);
        assert_eq!(row.peak_rss_kib, 30);
        // CPU per request 3.33, 10, 5, 2.5 µs: the median of its own.
        assert!((row.cpu_us_per_request - (1000.0 / 300.0 + 5.0) / 2.0).abs() < 1e-9);
    }

    #[test]
    fn rows_are_grouped_by_case_server_and_connections() {
        let mut other = run(50.0, 5.0, 0, 5);
        other.server = TS.into();
        let rows = median_rows(vec![run(10.0, 1.0, 0, 1), other, run(30.0, 3.0, 0, 1)]);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].server.as_str(), rows[0].result.rps), (RS, 20.0));
        assert_eq!((rows[1].server.as_str(), rows[1].runs), (TS, 1));
    }

    #[test]
    fn dates() {
        assert!(utc_now().ends_with(" UTC"));
        assert_eq!(utc_now().len(), "2026-01-01 00:00:00 UTC".len());
    }
}
