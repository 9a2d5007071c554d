//! The options of a harness run and of the `resource-server` component, apart from the
//! command line that parses them (`cli.rs`) so that the harness (`harness.rs`) and the
//! component (`component.rs`) which take them need nothing from it.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::wrk::WrkCpu;

/// Settings of a harness run.
#[derive(Debug, Clone, Args)]
pub struct HarnessArgs {
    /// Short run (about 2 s per load, 1,000 SSE streams) that writes to out/bench/ and
    /// leaves BENCHMARKS.md alone.
    #[arg(long, env = "BENCH_SMOKE")]
    pub smoke: bool,
    /// Run only these cases, comma-separated (the report then goes to out/bench/ unless
    /// --out is given) [default: all].
    #[arg(long, env = "BENCH_ONLY", value_enum, value_delimiter = ',')]
    pub only: Vec<Case>,
    /// Where the Markdown report goes [default: BENCHMARKS.md, or out/bench/BENCHMARKS.md
    /// with --smoke].
    #[arg(long, env = "BENCH_OUT")]
    pub out: Option<PathBuf>,
    /// Where the SVG chart goes [default: crates/bench/results/connections.svg, or
    /// out/bench/connections.svg with --smoke].
    #[arg(long, env = "BENCH_CHART")]
    pub chart: Option<PathBuf>,
    /// Seconds of each wrk run [default: 10, or 2 with --smoke].
    #[arg(long, env = "BENCH_DURATION")]
    pub duration: Option<u64>,
    /// Connection counts of the sweep, comma-separated (32 is always measured).
    #[arg(
        long,
        env = "BENCH_CONNECTIONS",
        value_delimiter = ',',
        default_value = "1,8,32,64,128"
    )]
    pub connections: Vec<u32>,
    /// Extra interleaved rounds at 32 connections for targets 1-3 (the median is kept),
    /// and the alternated rounds of target 11 (at least 3; 1 s each with --smoke)
    /// [default: 5, or 1 with --smoke].
    #[arg(long, env = "BENCH_ROUNDS")]
    pub rounds: Option<usize>,
    /// SSE streams to hold [default: 10000, or 1000 with --smoke].
    #[arg(long, env = "BENCH_SSE_STREAMS")]
    pub sse_streams: Option<usize>,
    /// Concurrent requests after the key rotation.
    #[arg(long, env = "BENCH_ROTATION_REQUESTS", default_value_t = 1000)]
    pub rotation_requests: usize,
    /// Timed runs of each client measurement [default: 15, or 3 with --smoke].
    #[arg(long, env = "BENCH_CLIENT_RUNS")]
    pub client_runs: Option<usize>,
    /// Cookie sessions and Streamable HTTP sessions opened for the Redis memory figures
    /// [default: 10000, or 1000 with --smoke].
    #[arg(long, env = "BENCH_SCALE_SESSIONS")]
    pub scale_sessions: Option<usize>,
    /// The wrk binary.
    #[arg(long, env = "BENCH_WRK", default_value = "wrk")]
    pub wrk: PathBuf,
    /// wrk's threads. One thread drives several times what the servers here answer (the
    /// bare reference shows how much); on two cores shared with the server, a second
    /// only adds a busy thread, and its time slices show up in every p99.
    #[arg(long, env = "BENCH_WRK_THREADS", default_value_t = 1)]
    pub wrk_threads: u32,
    /// The CPU wrk runs on (through `taskset -c`): a number, `last` (the last CPU this
    /// process may use), or `none` to let the kernel place it.
    /// On a machine with spare cores, pinning keeps the load generator off the server's;
    /// on two cores shared with the server it mostly moves time between the servers:
    /// a single-threaded peer gets a core of its own.
    #[arg(long, env = "BENCH_WRK_CPU", default_value = "none")]
    pub wrk_cpu: WrkCpu,
    /// Node.js for the TypeScript SDK peers [default: the pinned one in interop/node_modules].
    #[arg(long, env = "BENCH_NODE")]
    pub node: Option<PathBuf>,
}

/// The cases of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Case {
    /// HTTP load against both servers (and DPoP-bound requests at ours), then the key
    /// rotation burst (T1-T3, T5, T8).
    Http,
    /// SSE streams held open (T4).
    Sse,
    /// The client against the TypeScript SDK client (T6).
    Client,
    /// JWT verification timings and the DPoP replay cache's memory (T7, T9).
    Jwt,
    /// Three instances behind nginx sharing Redis, `redis-server` and `nginx` on PATH
    /// (T10-T12).
    Scale,
}

/// Flags of the `resource-server` component.
#[derive(Debug, Args)]
pub struct ResourceServerArgs {
    /// Capacity of the cache of verified tokens (0 turns it off) [default: the server's].
    #[arg(long, env = "BENCH_RS_TOKEN_CACHE")]
    pub token_cache: Option<usize>,
    /// The resource server's own flags.
    #[command(flatten)]
    pub server: resource_server::cli::Cli,
}
