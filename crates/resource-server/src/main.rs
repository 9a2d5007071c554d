//! `resource-server`: parses the command line, installs logging, runs the server.

use std::io::IsTerminal as _;

use clap::Parser;
use resource_server::cli::{Cli, run};
use tracing_subscriber::EnvFilter;

/// jemalloc instead of the C library's malloc: every MCP request allocates and frees
/// many small objects on both tokio workers (rmcp runs each stateless request's service
/// loop and handler as tasks of their own). Two builds of the server differing only in
/// the allocator, run alternately under wrk (one thread, 32 connections, stateless
/// `tools/call`): median 30,700 against 28,500 req/s over 12 runs each. Held SSE
/// streams cost about the same (`bench --only sse`: 23.5 against 23.2 KiB per stream
/// over 10,000).
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        // Colours only on a terminal: a log redirected to a file stays plain text.
        .with_ansi(std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_env_filter(
            // rmcp logs every message at INFO; its warnings are enough by default.
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rmcp=warn")),
        )
        .init();
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("resource-server: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
