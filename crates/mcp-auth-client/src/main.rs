//! `mcp-client`: see `mcp_auth_client::cli`.

use std::process::ExitCode;

use clap::Parser;
use mcp_auth_client::cli::{Cli, run};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mcp-client: {e}");
            ExitCode::FAILURE
        }
    }
}
