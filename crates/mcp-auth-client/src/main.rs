//! `mcp-client`: see `mcp_auth_client::cli`.

use std::io::IsTerminal as _;
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
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
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
