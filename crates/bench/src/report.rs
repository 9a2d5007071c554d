//! The results: tables and per-target verdicts, printed to the terminal and written as
//! Markdown (`BENCHMARKS.md`) next to the SVG chart.

use std::fmt::Write as _;

use crate::{
    client_flow::{ClientResult, median},
    dpop::ReplayMemory,
    http_load::Row,
    jwt_verify::VerifyTimes,
    key_rotation::RotationResult,
    scale::ScaleResult,
    sse_streams::SseResult,
};

/// Whether a target was met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Met.
    Pass,
    /// Measured, not met.
    Miss,
    /// A measurement without a threshold.
    Info,
    /// Could not be measured (the reason).
    NotRun(String),
}

impl Status {
    /// Pass or miss from a condition.
    pub fn from_bool(ok: bool) -> Self {
        if ok { Self::Pass } else { Self::Miss }
    }

    fn label(&self) -> &str {
        match self {
            Self::Pass => "PASS",
            Self::Miss => "MISS",
            Self::Info => "INFO",
            Self::NotRun(_) => "NOT RUN",
        }
    }
}

/// One target's line.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// Target number in the issue.
    pub id: u8,
    /// What it is about.
    pub name: &'static str,
    /// The goal, in words.
    pub goal: String,
    /// What was measured.
    pub measured: String,
    /// The verdict.
    pub status: Status,
}

/// Everything a run produced.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The command that made it.
    pub command: String,
    /// UTC start time.
    pub started: String,
    /// Machine and versions, as `(name, value)`.
    pub environment: Vec<(String, String)>,
    /// wrk rows.
    pub rows: Vec<Row>,
    /// Target 4.
    pub sse: Option<SseResult>,
    /// Target 4's reference: the same streams on a bare axum SSE server.
    pub sse_bare: Option<SseResult>,
    /// Target 5.
    pub rotation: Option<RotationResult>,
    /// Target 6.
    pub client: Option<ClientResult>,
    /// Target 7.
    pub verify: Vec<VerifyTimes>,
    /// Target 9: the DPoP replay cache holding one million entries.
    pub replay_memory: Vec<ReplayMemory>,
    /// Targets 10-12: several instances behind nginx sharing Redis.
    pub scale: Option<ScaleResult>,
    /// Verdicts.
    pub verdicts: Vec<Verdict>,
    /// What broke (servers that did not start, errors under load).
    pub broken: Vec<String>,
    /// Settings of the run, in words.
    pub settings: String,
}

/// CPU time per request, or nothing when it could not be read.
fn cpu(us: f64) -> String {
    if us.is_finite() {
        format!("{us:.1} µs")
    } else {
        String::new()
    }
}

fn kib(kib: u64) -> String {
    if kib >= 10 * 1024 {
        format!("{:.0} MiB", kib as f64 / 1024.0)
    } else {
        format!("{kib} KiB")
    }
}

impl Report {
    /// The row for `case`, `server`, `connections`.
    pub fn row(&self, case: &str, server: &str, connections: u32) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.case == case && r.server == server && r.connections == connections)
    }

    /// The load table (Markdown).
    pub fn load_table(&self, ratio_against: impl Fn(&Row) -> Option<f64>) -> String {
        let mut out = String::from(
            "| request | server | conns | runs | req/s (median) | req/s (range) | p50 | p99 (median) | p99 (range) | errors | peak RSS | CPU/request | our/peer |\n|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
        );
        for r in &self.rows {
            let ratio = ratio_against(r).map_or_else(|| "".to_string(), |x| format!("{x:.1}x"));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.0} | {} | {:.2} ms | {:.2} ms | {} | {} | {} | {} | {} |",
                r.case,
                r.server,
                r.connections,
                r.runs,
                r.result.rps,
                if r.runs > 1 {
                    format!("{:.0}–{:.0}", r.rps_range.0, r.rps_range.1)
                } else {
                    String::new()
                },
                r.result.p50_ms,
                r.result.p99_ms,
                if r.runs > 1 {
                    format!("{:.2}–{:.2} ms", r.p99_range.0, r.p99_range.1)
                } else {
                    String::new()
                },
                r.result.errors,
                kib(r.peak_rss_kib),
                cpu(r.cpu_us_per_request),
                ratio
            );
        }
        out
    }

    /// The verdict table (Markdown).
    pub fn verdict_table(&self) -> String {
        let mut out =
            String::from("| # | target | goal | measured | verdict |\n|--:|---|---|---|---|\n");
        for v in &self.verdicts {
            let status = match &v.status {
                Status::NotRun(why) => format!("NOT RUN ({why})"),
                other => format!("**{}**", other.label()),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                v.id, v.name, v.goal, v.measured, status
            );
        }
        out
    }

    /// Details of targets 4-10 (Markdown).
    pub fn details(&self) -> String {
        let mut out = String::new();
        if let Some(sse) = &self.sse {
            let _ = writeln!(
                out,
                "**SSE streams (target 4).** {} of {} streams opened in {:.1} s ({} tokens of distinct subjects, each shared by at most {} streams). Server RSS: {} before, {} with every stream open, peak {}: **{:.1} KiB per stream** at the peak. {} of {} streams were closed by the server when their tokens expired (at `exp` plus the server's clock leeway, set to {} s; the last {:.1} s after that).\n",
                sse.opened,
                sse.requested,
                sse.open_secs,
                sse.tokens,
                sse.requested.div_ceil(sse.tokens.max(1)),
                kib(sse.baseline_kib),
                kib(sse.held_kib),
                kib(sse.peak_kib),
                sse.peak_per_stream_kib(),
                sse.closed_in_time,
                sse.opened,
                sse.leeway.as_secs(),
                sse.last_close_after_exp_secs
            );
            if let Some(bare) = &self.sse_bare {
                let _ = writeln!(
                    out,
                    "Reference in the same run: the same {} streams on a bare axum SSE server (same events and keep-alives, no authorization, no MCP handler): {} before, peak {}: **{:.1} KiB per stream**.\n",
                    bare.requested,
                    kib(bare.baseline_kib),
                    kib(bare.peak_kib),
                    bare.peak_per_stream_kib()
                );
            }
            if !sse.failures.is_empty() {
                let _ = writeln!(out, "First failures: {}\n", sse.failures.join("; "));
            }
        }
        if let Some(rot) = &self.rotation {
            let _ = writeln!(
                out,
                "**Key rotation under load (target 5).** The authorization server rotated its key; {} requests signed with the new key were released at once on {} open connections: {} succeeded, the JWKS was fetched **{}** time(s), the burst took {:.0} ms.{}\n",
                rot.requests,
                rot.requests,
                rot.succeeded,
                rot.jwks_fetches,
                rot.burst_ms,
                if rot.failures.is_empty() {
                    String::new()
                } else {
                    format!(" Failures: {}.", rot.failures.join("; "))
                }
            );
        }
        if let Some(client) = &self.client {
            let fmt = |v: &[f64]| {
                v.iter()
                    .map(|x| format!("{x:.0}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                out,
                "**Client (target 6).** Wall time of whole processes, ms.\n\n| run | median | runs |\n|---|--:|---|\n| `mcp-client call` with a cached token | {:.1} | {} |\n| `mcp-client --headless --no-cache call` (discovery, registration, authorization, token, initialize, call) | {:.1} | {} |\n| TypeScript SDK client (`interop/ts-client.mjs`), the same flow | {:.1} | {} |\n",
                median(&client.cached_ms),
                fmt(&client.cached_ms),
                median(&client.ours_full_ms),
                fmt(&client.ours_full_ms),
                median(&client.ts_full_ms),
                fmt(&client.ts_full_ms)
            );
        }
        if !self.verify.is_empty() {
            out.push_str("**JWT verification (target 7)**, one core, ns per token (the harness's quick timing; `cargo bench -p bench` runs the same code under criterion).\n\n| alg | signature only (`jsonwebtoken::decode`) | validator, cold (cache off) | validator, cached |\n|---|--:|--:|--:|\n");
            for v in &self.verify {
                let _ = writeln!(
                    out,
                    "| {} | {:.0} | {:.0} | {:.0} |",
                    v.alg.name(),
                    v.signature_ns,
                    v.cold_ns,
                    v.cached_ns
                );
            }
            out.push('\n');
        }
        out.push_str(&crate::dpop::memory_details(&self.replay_memory));
        if let Some(scale) = &self.scale {
            let _ = writeln!(out, "**Scale-out (targets 10-12).** {}", scale.markdown());
        }
        out
    }

    /// The whole Markdown document; `chart` is the chart's path relative to it.
    pub fn markdown(&self, chart: &str, ratio_against: impl Fn(&Row) -> Option<f64>) -> String {
        let mut out = String::from("# Benchmarks\n\n");
        out.push_str(
            "Written by the benchmark harness (`crates/bench`) from one run; every ratio compares figures measured side by side in that run, on the same machine, with the load generator (`wrk`) on the same cores. Absolute figures drift between runs and machines; the ratios are what the targets are about.\n\n",
        );
        let _ = writeln!(
            out,
            "Command: `{}`  \nStarted: {}\n",
            self.command, self.started
        );
        let _ = writeln!(out, "{}\n", self.settings);
        out.push_str("| | |\n|---|---|\n");
        for (k, v) in &self.environment {
            let _ = writeln!(out, "| {k} | {v} |");
        }
        out.push_str("\n## Targets\n\n");
        out.push_str(&self.verdict_table());
        out.push_str("\n## Load (wrk)\n\nEvery server gets the same `tools/call`, bearer token included (the servers with authorization off ignore it). Each row summarises its runs: requests/s and latencies are the medians of the runs (ranges beside requests/s and p99), errors are summed, peak RSS is the highest of the runs. CPU/request is the CPU time the server process used (all threads, user and system) divided by the requests it answered, the median of the runs: the server's own cost per request, which does not depend on how it shared the cores with the load generator.\n\n");
        out.push_str(&self.load_table(ratio_against));
        let _ = writeln!(
            out,
            "\n![throughput and p99 against connections]({chart})\n"
        );
        out.push_str("## Details\n\n");
        out.push_str(&self.details());
        if !self.broken.is_empty() {
            out.push_str("## Problems\n\n");
            for b in &self.broken {
                let _ = writeln!(out, "- {b}");
            }
        }
        out
    }
}
