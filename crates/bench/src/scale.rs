//! Scale-out (`--redis-url`): three resource-server instances behind nginx (round-robin,
//! no affinity) sharing a `redis-server`, against the same three without Redis.
//!
//! - **Legacy SSE across instances**: 32 streams, each opened on instance A; every
//!   stream's client posts alternately to A and to B over connections it keeps open
//!   (one per instance), and times each post until its reply arrives on the stream. The
//!   p99 of the B path over that of the A path is what relaying through Redis adds.
//! - **Streamable HTTP notifications across instances**: 32 sessions, each with its
//!   standalone `GET /mcp` stream open on instance A; each client calls the demo's
//!   `notify` tool alternately on A and on B, and times each call until the
//!   notification its handler sends outside the request arrives on the stream. The
//!   B path goes through Redis to A; the A path is rmcp's own.
//! - **Streamable HTTP through nginx**: authenticated `tools/call` with wrk, stateful
//!   with Redis (32 sessions, each request naming the next one) against stateless
//!   without Redis. Both trios stay up and the two loads alternate for a number of
//!   rounds (stateless, stateful, stateless, …), so drift in the machine's load falls
//!   on both alike; medians are kept with each row's range and the range of the rounds'
//!   own ratios. Then the split of the difference: the same loads on one instance
//!   without nginx (stateless, stateful without Redis, stateful with Redis), and the
//!   Redis commands per stateful request (`INFO commandstats`).
//! - **Redis memory** per cookie session (`POST /session`) and per live Streamable HTTP
//!   session (`initialize`): `used_memory` of `INFO memory` before and after opening
//!   that many of each, divided by their number.
//!
//! `redis-server` and `nginx` are Debian's packages of those names; without them the
//! case is reported as not run.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use futures::future::join_all;
use scale_out::{find_program, nginx_conf};
use serde_json::{Value, json};
use testkit::process::free_port;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    process::{Child, Command},
};

use crate::{
    authz::{AuthServer, TokenSpec},
    client_flow::median,
    procs::{self, DEFAULT_LOG_FILTER, Server},
    wrk::{self, Expect, Load, LoadResult, PROTOCOL_VERSION, WrkCpu},
};

/// Connections of the loads and streams of the SSE probe.
pub const CONNECTIONS: u32 = 32;
/// Instances behind the balancer.
const INSTANCES: usize = 3;
/// What the calculator answers (a substring of the reply).
const EXPECT_TEXT: &str = "2 add 3 = 5";

/// How the case runs.
#[derive(Debug, Clone)]
pub struct ScaleSettings {
    /// The wrk binary.
    pub wrk: PathBuf,
    /// wrk's threads.
    pub wrk_threads: u32,
    /// Where wrk runs.
    pub wrk_cpu: WrkCpu,
    /// Length of each load.
    pub duration: Duration,
    /// Rounds of the two nginx loads, alternated (at least one).
    pub rounds: usize,
    /// Length of each of those rounds' loads.
    pub round_duration: Duration,
    /// Timed posts per SSE stream and path.
    pub sse_calls: usize,
    /// Cookie sessions and Streamable HTTP sessions opened for the memory figures.
    pub memory_sessions: usize,
    /// Logs and scripts go here.
    pub out_dir: PathBuf,
}

/// p50 and p99 of a set of latencies, ms.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
}

impl Latency {
    fn of(mut samples: Vec<f64>) -> Self {
        samples.sort_by(f64::total_cmp);
        let at = |p: f64| {
            if samples.is_empty() {
                return f64::NAN;
            }
            let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
            samples[rank.clamp(1, samples.len()) - 1]
        };
        Self {
            p50_ms: at(50.0),
            p99_ms: at(99.0),
        }
    }
}

/// Figures of the scale-out case.
#[derive(Debug, Clone, Default)]
pub struct ScaleResult {
    /// Timed posts per path.
    pub sse_samples: usize,
    /// Post → reply on the stream, posted to the instance holding the stream.
    pub sse_same: Latency,
    /// The same, posted to another instance.
    pub sse_cross: Latency,
    /// Timed `notify` calls per path.
    pub notify_samples: usize,
    /// `notify` call → its notification on the stream, called on the stream's instance.
    pub notify_same: Latency,
    /// The same, called on another instance.
    pub notify_cross: Latency,
    /// Through nginx to three stateless instances without Redis: the rounds' medians.
    pub lb_stateless: LoadResult,
    /// Through nginx to three stateful instances with Redis: the rounds' medians.
    pub lb_stateful: LoadResult,
    /// Each round of `lb_stateless`, in order.
    pub lb_stateless_runs: Vec<LoadResult>,
    /// Each round of `lb_stateful`, in order (round `i` ran right after stateless `i`).
    pub lb_stateful_runs: Vec<LoadResult>,
    /// Redis commands per request of `lb_stateful`.
    pub redis_commands_per_request: f64,
    /// One instance, no nginx: stateless.
    pub one_stateless: LoadResult,
    /// One instance, no nginx: stateful, no Redis.
    pub one_stateful: LoadResult,
    /// One instance, no nginx: stateful with Redis.
    pub one_stateful_redis: LoadResult,
    /// Sessions of each kind opened for the memory figures.
    pub memory_sessions: usize,
    /// Redis `used_memory` growth per cookie session, bytes.
    pub cookie_bytes: f64,
    /// Redis `used_memory` growth per live Streamable HTTP session, bytes.
    pub session_bytes: f64,
    /// Principals the memory figures' sessions belong to.
    pub memory_principals: usize,
    /// Requests of the memory figures answered 503 and sent again.
    pub memory_retries: usize,
}

/// Machine time one request of `slow` costs over one of `fast`, µs (from throughputs
/// on the same machine).
pub fn extra_us(slow: &LoadResult, fast: &LoadResult) -> f64 {
    if slow.rps > 0.0 && fast.rps > 0.0 {
        1e6 / slow.rps - 1e6 / fast.rps
    } else {
        f64::NAN
    }
}

/// Several runs of one load as one: requests/s and latency percentiles are medians,
/// requests, errors and timeouts summed, the longest latency the highest seen.
pub fn summarise(runs: &[LoadResult]) -> LoadResult {
    let figures =
        |figure: fn(&LoadResult) -> f64| -> Vec<f64> { runs.iter().map(figure).collect() };
    LoadResult {
        requests: runs.iter().map(|r| r.requests).sum(),
        rps: median(&figures(|r| r.rps)),
        p50_ms: median(&figures(|r| r.p50_ms)),
        p90_ms: median(&figures(|r| r.p90_ms)),
        p99_ms: median(&figures(|r| r.p99_ms)),
        max_ms: range(&figures(|r| r.max_ms)).1,
        errors: runs.iter().map(|r| r.errors).sum(),
        timeouts: runs.iter().map(|r| r.timeouts).sum(),
    }
}

/// Lowest and highest of `values` (NaN, NaN when empty).
pub fn range(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

fn rps_ratio(slow: &LoadResult, fast: &LoadResult) -> f64 {
    if fast.rps > 0.0 {
        slow.rps / fast.rps
    } else {
        f64::NAN
    }
}

impl ScaleResult {
    /// Stateful with Redis over stateless without, through nginx: the ratio of the
    /// rounds' median requests/s.
    pub fn ratio(&self) -> f64 {
        rps_ratio(&self.lb_stateful, &self.lb_stateless)
    }

    /// Rounds of the nginx loads.
    pub fn rounds(&self) -> usize {
        self.lb_stateful_runs
            .len()
            .min(self.lb_stateless_runs.len())
    }

    /// Lowest and highest of the rounds' own ratios (each stateful run over the
    /// stateless run just before it).
    pub fn round_ratio_range(&self) -> (f64, f64) {
        let ratios: Vec<f64> = self
            .lb_stateful_runs
            .iter()
            .zip(&self.lb_stateless_runs)
            .map(|(slow, fast)| rps_ratio(slow, fast))
            .collect();
        range(&ratios)
    }

    /// Lowest and highest requests/s of each nginx load's rounds: (stateless, stateful).
    pub fn rps_ranges(&self) -> ((f64, f64), (f64, f64)) {
        let rps = |runs: &[LoadResult]| range(&runs.iter().map(|r| r.rps).collect::<Vec<_>>());
        (rps(&self.lb_stateless_runs), rps(&self.lb_stateful_runs))
    }

    /// The case's section of the report (Markdown).
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Three instances behind nginx (round-robin, no affinity), `{CONNECTIONS}` connections.\n"
        );
        let _ = writeln!(
            out,
            "Legacy SSE, post → reply on the stream ({} posts per path, persistent connections, streams open before posting): same instance p50 {:.2} ms, p99 {:.2} ms; another instance p50 {:.2} ms, p99 {:.2} ms.\n",
            self.sse_samples,
            self.sse_same.p50_ms,
            self.sse_same.p99_ms,
            self.sse_cross.p50_ms,
            self.sse_cross.p99_ms
        );
        let _ = writeln!(
            out,
            "Streamable HTTP, `notify` call → its notification on the standalone stream ({} calls per path, the stream open on instance A): called on A p50 {:.2} ms, p99 {:.2} ms; called on another instance p50 {:.2} ms, p99 {:.2} ms.\n",
            self.notify_samples,
            self.notify_same.p50_ms,
            self.notify_same.p99_ms,
            self.notify_cross.p50_ms,
            self.notify_cross.p99_ms
        );
        let rounds = self.rounds();
        let (stateless_range, stateful_range) = self.rps_ranges();
        let _ = writeln!(
            out,
            "The nginx rows are medians of {rounds} rounds, the two loads alternated (stateless, stateful, stateless, …) with both trios up; requests/s of the rounds in brackets.\n"
        );
        out.push_str("| authenticated tools/call | req/s | p50 | p99 | errors | cost over the row above |\n|---|--:|--:|--:|--:|--:|\n");
        let rows = [
            ("one instance, stateless", &self.one_stateless, None),
            ("one instance, stateful, no Redis", &self.one_stateful, None),
            (
                "one instance, stateful, Redis",
                &self.one_stateful_redis,
                None,
            ),
            (
                "nginx → 3, stateless, no Redis",
                &self.lb_stateless,
                Some(stateless_range),
            ),
            (
                "nginx → 3, stateful, Redis",
                &self.lb_stateful,
                Some(stateful_range),
            ),
        ];
        let mut above: Option<&LoadResult> = None;
        for (name, row, spread) in rows {
            let extra = above.map_or_else(String::new, |a| {
                format!("{:+.1} µs/request", extra_us(row, a))
            });
            let spread = spread.map_or_else(String::new, |(lo, hi)| format!(" ({lo:.0}–{hi:.0})"));
            let _ = writeln!(
                out,
                "| {name} | {:.0}{spread} | {:.2} ms | {:.2} ms | {} | {extra} |",
                row.rps, row.p50_ms, row.p99_ms, row.errors
            );
            above = Some(row);
        }
        let (ratio_lo, ratio_hi) = self.round_ratio_range();
        let _ = writeln!(
            out,
            "\nStateful with Redis / stateless, through nginx: **{:.2}x** (ratio of the medians of {rounds} rounds; the rounds' own ratios {ratio_lo:.2}–{ratio_hi:.2}); the stateful path costs {:.1} µs per request more (rmcp's session machinery {:.1} µs, Redis {:.1} µs, measured on one instance); Redis commands per stateful request, PINGs and renewals included: {:.4}.\n",
            self.ratio(),
            extra_us(&self.lb_stateful, &self.lb_stateless),
            extra_us(&self.one_stateful, &self.one_stateless),
            extra_us(&self.one_stateful_redis, &self.one_stateful),
            self.redis_commands_per_request
        );
        let _ = writeln!(
            out,
            "Redis `used_memory` at {n} of each ({} principals, ten of each per principal): **{:.0} B** per cookie session, **{:.0} B** per live Streamable HTTP session ({} requests answered 503 by a loaded Redis and sent again after `Retry-After`).",
            self.memory_principals,
            self.cookie_bytes,
            self.session_bytes,
            self.memory_retries,
            n = self.memory_sessions
        );
        out
    }
}

async fn wait_for_port(port: u16, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            bail!("{what} did not listen on {port} within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// A helper process (redis-server, nginx), killed when dropped, with its directory.
#[derive(Debug)]
struct Helper {
    port: u16,
    dir: PathBuf,
    _child: Child,
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Helper {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

async fn start_redis(program: &Path, dir: PathBuf) -> anyhow::Result<Helper> {
    let port = free_port();
    std::fs::create_dir_all(&dir)?;
    let child = Command::new(program)
        .args(["--port", &port.to_string()])
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting redis-server")?;
    wait_for_port(port, "redis-server").await?;
    Ok(Helper {
        port,
        dir,
        _child: child,
    })
}

async fn start_nginx(
    program: &Path,
    port: u16,
    upstreams: &[u16],
    dir: PathBuf,
) -> anyhow::Result<Helper> {
    std::fs::create_dir_all(&dir)?;
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, nginx_conf(port, upstreams, &dir))?;
    // The configuration logs errors to stderr; here they go to a file beside it.
    let error_log = std::fs::File::create(dir.join("error.log"))?;
    let child = Command::new(program)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(error_log)
        .kill_on_drop(true)
        .spawn()
        .context("starting nginx")?;
    wait_for_port(port, "nginx").await?;
    Ok(Helper {
        port,
        dir,
        _child: child,
    })
}

/// One Redis command (RESP), its bulk-string reply.
async fn redis_command(port: u16, args: &[&str]) -> anyhow::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        let _ = write!(request, "${}\r\n{arg}\r\n", arg.len());
    }
    stream.write_all(request.as_bytes()).await?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .context("redis did not answer")??;
        if n == 0 {
            bail!("redis closed the connection");
        }
        reply.extend_from_slice(&buf[..n]);
        if let Some(end) = reply.windows(2).position(|w| w == b"\r\n") {
            let head = std::str::from_utf8(&reply[..end])?;
            let Some(len) = head.strip_prefix('$') else {
                bail!("unexpected redis reply {head:?}");
            };
            let len: usize = len.parse()?;
            if reply.len() >= end + 2 + len {
                return Ok(String::from_utf8_lossy(&reply[end + 2..end + 2 + len]).into_owned());
            }
        }
    }
}

async fn used_memory(port: u16) -> anyhow::Result<i64> {
    let info = redis_command(port, &["INFO", "memory"]).await?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .context("no used_memory in INFO memory")?
        .trim()
        .parse()
        .context("used_memory")
}

async fn redis_calls(port: u16) -> anyhow::Result<u64> {
    let info = redis_command(port, &["INFO", "commandstats"]).await?;
    Ok(info
        .lines()
        .filter_map(|l| l.split("calls=").nth(1))
        .filter_map(|rest| rest.split(',').next()?.parse::<u64>().ok())
        .sum())
}

/// Starts one instance listening on `port`, behind `public_url`.
async fn start_instance(
    name: &str,
    port: u16,
    public_url: &str,
    issuer: &str,
    extra: &[&str],
    log: &Path,
) -> anyhow::Result<Server> {
    // Room for the memory figures' sessions, all of one principal.
    let room = "1000000";
    let mut command = procs::harness_command(None)?;
    command
        .arg("resource-server")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--public-url", public_url])
        .args(["--issuer", issuer, "--jwks-min-refetch", "1"])
        .args(["--max-mcp-sessions-per-principal", room])
        .args(["--max-mcp-sessions", room])
        .args(["--cookie-max-per-principal", room])
        .args(["--cookie-max-sessions", room])
        .args(["--web-dir", "/nonexistent"])
        .args(extra)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| DEFAULT_LOG_FILTER.into()),
        );
    procs::spawn_ready(name, command, log).await
}

/// Three instances (with `extra` flags) and nginx in front of them.
struct Cluster {
    nginx: Helper,
    instances: Vec<Server>,
}

impl Cluster {
    async fn start(
        settings: &ScaleSettings,
        nginx: &Path,
        issuer: &str,
        tag: &str,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let ports = (0..INSTANCES).map(|_| free_port()).collect::<Vec<_>>();
        let lb_port = free_port();
        let public = format!("http://127.0.0.1:{lb_port}");
        let mut instances = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            instances.push(
                start_instance(
                    &format!("resource server ({tag} {i})"),
                    *port,
                    &public,
                    issuer,
                    extra,
                    &settings.out_dir.join(format!("scale-{tag}-{i}.log")),
                )
                .await?,
            );
        }
        let nginx = start_nginx(
            nginx,
            lb_port,
            &ports,
            settings.out_dir.join(format!("scale-nginx-{tag}")),
        )
        .await?;
        Ok(Self { nginx, instances })
    }

    fn url(&self) -> String {
        self.nginx.url()
    }

    fn instance_url(&self, i: usize) -> String {
        format!("http://{}", self.instances[i].authority())
    }

    async fn stop(self) {
        for instance in self.instances {
            instance.stop().await;
        }
    }
}

fn http() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("HTTP client")
}

fn initialize_body(id: u64) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "1"}
        }
    })
}

/// Opens a Streamable HTTP session at `base` and completes its handshake.
async fn open_session(client: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<String> {
    let post = |session: Option<&str>, body: Value| {
        let mut request = client
            .post(format!("{base}/mcp"))
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", PROTOCOL_VERSION)
            .json(&body);
        if let Some(session) = session {
            request = request.header("mcp-session-id", session);
        }
        request.send()
    };
    let response = post(None, initialize_body(1)).await?;
    if response.status() != 200 {
        bail!("initialize at {base} answered {}", response.status());
    }
    let session = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .context("initialize without Mcp-Session-Id")?
        .to_string();
    response.bytes().await?;
    let response = post(
        Some(&session),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await?;
    if !response.status().is_success() {
        bail!("notifications/initialized answered {}", response.status());
    }
    Ok(session)
}

/// wrk's script: the harness's script, plus each request naming the next of `sessions`
/// (`header`: `Mcp-Session-Id`, or a header the server ignores, so that the stateless
/// load costs wrk the same work) and carrying a JSON-RPC id of its own.
///
/// The ids matter: a session's requests in flight must have distinct ids (JSON-RPC;
/// MCP: an id is never reused within a session), and rmcp routes a reply to the stream
/// of the request that last used its id. With every request `"id":1`, two requests in
/// flight in one session left the first without a reply (its connection stuck until
/// the end of the run), so the stateful loads measured fewer and fewer live
/// connections rather than the servers. Each wrk thread numbers its requests apart
/// from the others' (`thread_index + n × 1000`).
fn write_script(
    dir: &Path,
    name: &str,
    header: &str,
    sessions: &[String],
) -> anyhow::Result<PathBuf> {
    let base = wrk::write_script(dir)?;
    let mut script = std::fs::read_to_string(&base)?;
    let list: Vec<String> = sessions.iter().map(|s| format!("{s:?}")).collect();
    let (prefix, rest) = wrk::TOOLS_CALL
        .split_once(r#""id":1,"#)
        .context("the request body has no \"id\":1")?;
    let _ = write!(
        script,
        "\nlocal sessions = {{{sessions}}}\nlocal next_session = 0\nlocal next_id = 0\nlocal body_head, body_tail = {prefix:?}, {rest:?}\n\
         local setup_threads = setup\nfunction setup(thread)\n  setup_threads(thread)\n  thread:set(\"thread_index\", #threads)\nend\n\
         function request()\n  next_session = next_session % #sessions + 1\n  next_id = next_id + 1\n  wrk.headers[{header:?}] = sessions[next_session]\n  \
         wrk.body = body_head .. '\"id\":' .. (next_id * 1000 + thread_index) .. ',' .. body_tail\n  return wrk.format()\nend\n",
        sessions = list.join(", "),
    );
    let path = dir.join(name);
    std::fs::write(&path, script)?;
    Ok(path)
}

async fn load(
    settings: &ScaleSettings,
    script: &Path,
    url: &str,
    token: &str,
) -> anyhow::Result<LoadResult> {
    let result = wrk::run(
        &settings.wrk,
        script,
        &Load {
            url,
            threads: settings.wrk_threads,
            cpu: settings.wrk_cpu,
            connections: CONNECTIONS,
            duration: settings.duration,
            token: Some(token),
            expect: Expect::ToolResult(EXPECT_TEXT.into()),
        },
    )
    .await?;
    if result.errors > 0 {
        bail!("{} errors under load at {url}", result.errors);
    }
    Ok(result)
}

/// A stateless load at `url` (one instance or the balancer).
async fn stateless_load(
    settings: &ScaleSettings,
    url: &str,
    token: &str,
) -> anyhow::Result<LoadResult> {
    let ids: Vec<String> = (0..CONNECTIONS).map(|i| format!("s{i}")).collect();
    let script = write_script(
        &settings.out_dir,
        "scale-stateless.lua",
        "X-Bench-Seq",
        &ids,
    )?;
    load(settings, &script, url, token).await
}

/// Opens [`CONNECTIONS`] sessions at `base` and warms them up; returns wrk's script
/// whose requests name them in turn (rmcp serves one session's requests one at a time,
/// so a single session would measure that queue rather than the servers).
async fn stateful_script(
    settings: &ScaleSettings,
    base: &str,
    token: &str,
) -> anyhow::Result<PathBuf> {
    let client = http()?;
    let mut sessions = Vec::new();
    for _ in 0..CONNECTIONS {
        sessions.push(open_session(&client, base, token).await?);
    }
    let script = write_script(
        &settings.out_dir,
        "scale-stateful.lua",
        "Mcp-Session-Id",
        &sessions,
    )?;
    // A short warm-up: every instance makes its copy of every session first.
    let warm = ScaleSettings {
        duration: Duration::from_secs(1),
        ..settings.clone()
    };
    load(&warm, &script, &format!("{base}/mcp"), token).await?;
    Ok(script)
}

async fn stateful_load(
    settings: &ScaleSettings,
    base: &str,
    token: &str,
) -> anyhow::Result<LoadResult> {
    let script = stateful_script(settings, base, token).await?;
    load(settings, &script, &format!("{base}/mcp"), token).await
}

/// Events of one SSE response, as they arrive.
struct SseEvents {
    response: reqwest::Response,
    buffer: String,
}

impl SseEvents {
    /// The next event's `data`.
    async fn next_data(&mut self) -> anyhow::Result<String> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                if !data.is_empty() {
                    return Ok(data.join("\n"));
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.response.chunk())
                .await
                .context("no event within 10 s")??
                .context("the stream ended")?;
            self.buffer
                .push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n"));
        }
    }

    /// Skips events until the JSON-RPC message with `id`.
    async fn reply(&mut self, id: u64) -> anyhow::Result<()> {
        loop {
            let data = self.next_data().await?;
            if serde_json::from_str::<Value>(&data).is_ok_and(|v| v["id"] == id) {
                return Ok(());
            }
        }
    }
}

/// One stream on `a`, posts alternating between `a` and `b`: the latencies of each path.
async fn sse_probe(
    a: String,
    b: String,
    token: String,
    calls: usize,
) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    // One client per path, so each keeps its own connection open.
    let stream_client = http()?;
    let (to_a, to_b) = (http()?, http()?);
    let response = stream_client
        .get(format!("{a}/sse"))
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .send()
        .await?;
    if response.status() != 200 {
        bail!("GET /sse answered {}", response.status());
    }
    let mut events = SseEvents {
        response,
        buffer: String::new(),
    };
    let endpoint = events.next_data().await?;
    let post = |client: &reqwest::Client, base: &str, body: Value| {
        client
            .post(format!("{base}{endpoint}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    async fn accepted(response: reqwest::Result<reqwest::Response>) -> anyhow::Result<()> {
        let response = response?;
        let status = response.status();
        response.bytes().await?;
        if status != 202 {
            bail!("POST /messages answered {status}");
        }
        Ok(())
    }
    accepted(post(&to_a, &a, initialize_body(1)).await).await?;
    events.reply(1).await?;
    let mut id = 1u64;
    let call = |id: u64| json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}});
    // Warm-up: both connections opened, both paths taken once.
    for (client, base) in [(&to_a, &a), (&to_b, &b)] {
        id += 1;
        accepted(post(client, base, call(id)).await).await?;
        events.reply(id).await?;
    }
    let (mut same, mut cross) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
    for _ in 0..calls {
        for (client, base, times) in [(&to_a, &a, &mut same), (&to_b, &b, &mut cross)] {
            id += 1;
            let started = Instant::now();
            accepted(post(client, base, call(id)).await).await?;
            events.reply(id).await?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    Ok((same, cross))
}

/// One session opened on `a` with its standalone stream there; `notify` called
/// alternately on `a` and `b`: the latencies of each path, call → notification.
async fn notify_probe(
    a: String,
    b: String,
    token: String,
    calls: usize,
) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let stream_client = http()?;
    let (to_a, to_b) = (http()?, http()?);
    let session = open_session(&to_a, &a, &token).await?;
    let response = stream_client
        .get(format!("{a}/mcp"))
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", PROTOCOL_VERSION)
        .send()
        .await?;
    if response.status() != 200 {
        bail!("GET /mcp answered {}", response.status());
    }
    let mut events = SseEvents {
        response,
        buffer: String::new(),
    };
    let call = |client: &reqwest::Client, base: &str, id: u64| {
        client
            .post(format!("{base}/mcp"))
            .bearer_auth(&token)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", PROTOCOL_VERSION)
            .header("mcp-session-id", &session)
            .json(&json!({
                "jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": {"name": "notify", "arguments": {"text": id.to_string()}}
            }))
            .send()
    };
    let mut id = 1u64;
    let (mut same, mut cross) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
    // The first call of each path warms it up (B re-creates the session) and is not
    // counted.
    for round in 0..=calls {
        for (client, base, path) in [(&to_a, &a, 0), (&to_b, &b, 1)] {
            id += 1;
            let started = Instant::now();
            let text = id.to_string();
            let reply = async {
                let response = call(client, base, id).await?;
                let status = response.status();
                response.bytes().await?;
                anyhow::ensure!(status == 200, "notify answered {status}");
                Ok(())
            };
            let arrived = async {
                loop {
                    let data = events.next_data().await?;
                    let message: Value = serde_json::from_str(&data).unwrap_or_default();
                    if message["params"]["data"]["text"] == text.as_str() {
                        return anyhow::Ok(started.elapsed());
                    }
                }
            };
            let (replied, arrived) = tokio::join!(reply, arrived);
            replied?;
            let elapsed = arrived?.as_secs_f64() * 1000.0;
            if round > 0 {
                if path == 0 { &mut same } else { &mut cross }.push(elapsed);
            }
        }
    }
    Ok((same, cross))
}

/// Sends `request`; a `503` (Redis slower than the instances' timeout on a loaded
/// machine) is sent again after its `Retry-After`, at most five times, and counted.
async fn send_retrying(
    request: reqwest::RequestBuilder,
    retries: &std::sync::atomic::AtomicUsize,
) -> anyhow::Result<reqwest::Response> {
    for _ in 0..5 {
        let response = request
            .try_clone()
            .context("request cannot be sent again")?
            .send()
            .await?;
        if response.status() != 503 {
            return Ok(response);
        }
        retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let wait = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .unwrap_or(1);
        tokio::time::sleep(Duration::from_secs(wait.min(5))).await;
    }
    Ok(request.send().await?)
}

/// Opens `n` of what `open` opens, 32 at a time, spread over the instances.
async fn open_many<F, Fut>(n: usize, open: F) -> anyhow::Result<()>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut done = 0;
    while done < n {
        let batch = (done..n.min(done + 32)).map(&open);
        for result in join_all(batch).await {
            result?;
        }
        done = n.min(done + 32);
    }
    Ok(())
}

/// Runs the case.
///
/// # Errors
/// When redis-server or nginx is missing, a process does not start, or a load fails.
pub async fn run(settings: &ScaleSettings, auth: &AuthServer) -> anyhow::Result<ScaleResult> {
    let (Some(redis_program), Some(nginx_program)) =
        (find_program("redis-server"), find_program("nginx"))
    else {
        bail!("redis-server and nginx are needed (Debian packages redis-server, nginx)");
    };
    std::fs::create_dir_all(&settings.out_dir)?;
    let mut result = ScaleResult {
        sse_samples: settings.sse_calls * CONNECTIONS as usize,
        memory_sessions: settings.memory_sessions,
        ..ScaleResult::default()
    };
    let mint = |audience: String, subject: &str| -> anyhow::Result<String> {
        Ok(TokenSpec {
            subject: subject.into(),
            ..TokenSpec::for_audience(audience)
        }
        .mint(auth))
    };

    // Without Redis, stateless: one instance alone here; the trio stays up for the
    // rounds through nginx below.
    let stateless = Cluster::start(
        settings,
        &nginx_program,
        auth.issuer(),
        "stateless",
        &["--stateless"],
    )
    .await?;
    let stateless_token = mint(format!("{}/mcp", stateless.url()), "scale-user")?;
    eprintln!("bench: scale-out, one stateless instance");
    result.one_stateless = stateless_load(
        settings,
        &format!("{}/mcp", stateless.instance_url(0)),
        &stateless_token,
    )
    .await?;

    // One stateful instance without Redis (its public URL is its own).
    let port = free_port();
    let own = format!("http://127.0.0.1:{port}");
    let single = start_instance(
        "resource server (stateful)",
        port,
        &own,
        auth.issuer(),
        &[],
        &settings.out_dir.join("scale-stateful.log"),
    )
    .await?;
    eprintln!("bench: scale-out, one stateful instance");
    result.one_stateful =
        stateful_load(settings, &own, &mint(format!("{own}/mcp"), "scale-user")?).await?;
    single.stop().await;

    // With Redis.
    let redis = start_redis(&redis_program, settings.out_dir.join("scale-redis")).await?;
    let redis_url = format!("redis://127.0.0.1:{}", redis.port);
    let cluster = Cluster::start(
        settings,
        &nginx_program,
        auth.issuer(),
        "redis",
        &["--redis-url", &redis_url],
    )
    .await?;
    let lb = cluster.url();
    let token = mint(format!("{lb}/mcp"), "scale-user")?;
    eprintln!("bench: scale-out, one instance with Redis");
    result.one_stateful_redis = stateful_load(settings, &cluster.instance_url(0), &token).await?;

    // Target 11: the two nginx loads alternated, both trios up.
    let script = stateful_script(settings, &lb, &token).await?;
    let round = ScaleSettings {
        duration: settings.round_duration,
        ..settings.clone()
    };
    let rounds = settings.rounds.max(1);
    let (mut calls, mut stateful_requests) = (0u64, 0u64);
    for i in 1..=rounds {
        eprintln!("bench: scale-out through nginx, round {i}/{rounds}: stateless, stateful");
        let run = stateless_load(
            &round,
            &format!("{}/mcp", stateless.url()),
            &stateless_token,
        )
        .await?;
        result.lb_stateless_runs.push(run);
        let calls_before = redis_calls(redis.port).await?;
        let run = load(&round, &script, &format!("{lb}/mcp"), &token).await?;
        // Every command of the run: the requests' own and the instances' PINGs and renewals.
        calls += redis_calls(redis.port).await?.saturating_sub(calls_before);
        stateful_requests += run.requests;
        result.lb_stateful_runs.push(run);
    }
    stateless.stop().await;
    result.lb_stateless = summarise(&result.lb_stateless_runs);
    result.lb_stateful = summarise(&result.lb_stateful_runs);
    result.redis_commands_per_request = calls as f64 / stateful_requests.max(1) as f64;

    eprintln!("bench: scale-out, legacy SSE across instances");
    let probes = (0..CONNECTIONS as usize).map(|i| {
        let token = mint(format!("{lb}/sse"), &format!("scale-sse-{i}"));
        let (a, b) = (cluster.instance_url(0), cluster.instance_url(1));
        let calls = settings.sse_calls;
        async move { sse_probe(a, b, token?, calls).await }
    });
    let (mut same, mut cross) = (Vec::new(), Vec::new());
    for probe in join_all(probes).await {
        let (s, c) = probe?;
        same.extend(s);
        cross.extend(c);
    }
    result.sse_same = Latency::of(same);
    result.sse_cross = Latency::of(cross);

    eprintln!("bench: scale-out, Streamable HTTP notifications across instances");
    let probes = (0..CONNECTIONS as usize).map(|i| {
        let token = mint(format!("{lb}/mcp"), &format!("scale-notify-{i}"));
        let (a, b) = (cluster.instance_url(0), cluster.instance_url(1));
        let calls = settings.sse_calls;
        async move { notify_probe(a, b, token?, calls).await }
    });
    let (mut same, mut cross) = (Vec::new(), Vec::new());
    for probe in join_all(probes).await {
        let (s, c) = probe?;
        same.extend(s);
        cross.extend(c);
    }
    result.notify_samples = same.len();
    result.notify_same = Latency::of(same);
    result.notify_cross = Latency::of(cross);

    eprintln!(
        "bench: scale-out, Redis memory per session ({} of each)",
        settings.memory_sessions
    );
    // Ten sessions of each kind per principal, as many clients would hold.
    let principals = settings.memory_sessions.div_ceil(10).max(1);
    let mut sse_tokens = Vec::with_capacity(principals);
    let mut mcp_tokens = Vec::with_capacity(principals);
    for p in 0..principals {
        sse_tokens.push(mint(format!("{lb}/sse"), &format!("scale-memory-{p}"))?);
        mcp_tokens.push(mint(format!("{lb}/mcp"), &format!("scale-memory-{p}"))?);
    }
    let client = http()?;
    let urls: Vec<String> = (0..INSTANCES).map(|i| cluster.instance_url(i)).collect();
    let before = used_memory(redis.port).await?;
    let retries = std::sync::atomic::AtomicUsize::new(0);
    open_many(settings.memory_sessions, |i| {
        let request = client
            .post(format!("{}/session", urls[i % INSTANCES]))
            .bearer_auth(&sse_tokens[i % principals]);
        let retries = &retries;
        async move {
            let response = send_retrying(request, retries).await?;
            let status = response.status();
            anyhow::ensure!(status == 204, "POST /session answered {status}");
            Ok(())
        }
    })
    .await?;
    let after_cookies = used_memory(redis.port).await?;
    open_many(settings.memory_sessions, |i| {
        let request = client
            .post(format!("{}/mcp", urls[i % INSTANCES]))
            .bearer_auth(&mcp_tokens[i % principals])
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", PROTOCOL_VERSION)
            .json(&initialize_body(1));
        let retries = &retries;
        async move {
            let response = send_retrying(request, retries).await?;
            let status = response.status();
            response.bytes().await?;
            anyhow::ensure!(status == 200, "initialize answered {status}");
            Ok(())
        }
    })
    .await?;
    result.memory_principals = principals;
    result.memory_retries = retries.into_inner();
    let after_sessions = used_memory(redis.port).await?;
    let n = settings.memory_sessions.max(1) as f64;
    result.cookie_bytes = (after_cookies - before) as f64 / n;
    result.session_bytes = (after_sessions - after_cookies) as f64 / n;
    cluster.stop().await;
    drop(redis);
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_rank() {
        let latency = Latency::of((1..=100).map(f64::from).rev().collect());
        assert_eq!((latency.p50_ms, latency.p99_ms), (50.0, 99.0));
        assert!(Latency::of(Vec::new()).p99_ms.is_nan());
    }

    #[test]
    fn rounds_kept_as_medians_with_their_ranges() {
        let at = |rps: f64, p99_ms: f64| LoadResult {
            requests: 10,
            rps,
            p99_ms,
            max_ms: p99_ms * 2.0,
            ..LoadResult::default()
        };
        let result = ScaleResult {
            lb_stateless_runs: vec![at(1000.0, 3.0), at(800.0, 5.0), at(1200.0, 4.0)],
            lb_stateful_runs: vec![at(900.0, 4.0), at(760.0, 6.0), at(840.0, 5.0)],
            ..ScaleResult::default()
        };
        let result = ScaleResult {
            lb_stateless: summarise(&result.lb_stateless_runs),
            lb_stateful: summarise(&result.lb_stateful_runs),
            ..result
        };
        assert_eq!(result.rounds(), 3);
        assert_eq!(result.lb_stateless.rps, 1000.0);
        assert_eq!(result.lb_stateless.p99_ms, 4.0);
        assert_eq!(result.lb_stateless.max_ms, 10.0);
        assert_eq!(result.lb_stateless.requests, 30);
        assert!((result.ratio() - 0.84).abs() < 1e-9);
        // Each stateful run over the stateless run just before it: 0.9, 0.95, 0.7.
        let (lo, hi) = result.round_ratio_range();
        assert!((lo - 0.7).abs() < 1e-9 && (hi - 0.95).abs() < 1e-9);
        assert_eq!(result.rps_ranges(), ((800.0, 1200.0), (760.0, 900.0)));
        let text = result.markdown();
        assert!(text.contains("medians of 3 rounds"), "{text}");
        assert!(text.contains("| 1000 (800–1200) |"), "{text}");
        assert!(text.contains("**0.84x**"), "{text}");
        assert!(text.contains("ratios 0.70–0.95"), "{text}");
        assert!(range(&[]).0.is_nan());
    }

    #[test]
    fn extra_cost_from_throughputs() {
        let at = |rps: f64| LoadResult {
            rps,
            ..LoadResult::default()
        };
        assert!((extra_us(&at(500.0), &at(1000.0)) - 1000.0).abs() < 1e-9);
        assert!(extra_us(&at(0.0), &at(1000.0)).is_nan());
    }

    #[test]
    fn every_request_of_a_load_carries_its_own_id() {
        let dir = std::env::temp_dir().join(format!("bench-scale-script-{}", std::process::id()));
        let script =
            write_script(&dir, "t.lua", "Mcp-Session-Id", &["a".into(), "b".into()]).unwrap();
        let text = std::fs::read_to_string(script).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        // The script splices `"id":<n>,` between these two halves of the request.
        let (head, tail) = wrk::TOOLS_CALL.split_once(r#""id":1,"#).unwrap();
        assert!(text.contains(&format!("{head:?}, {tail:?}")));
        assert!(text.contains("next_id * 1000 + thread_index"));
        let body: Value = serde_json::from_str(&format!(r#"{head}"id":2001,{tail}"#)).unwrap();
        assert_eq!(body["id"], 2001);
        assert_eq!(body["method"], "tools/call");
    }
}
