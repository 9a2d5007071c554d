//! `resource-server`: parses the command line, installs logging, runs the server.

use clap::Parser;
use mcp_resource_server::cli::{Cli, run};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
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
