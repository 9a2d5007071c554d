//! Command line of the `demo` binary: with no subcommand it runs the whole flow; each
//! subcommand runs one component, so the orchestrator can start them as separate
//! processes of this same executable.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use crate::options::{Discovery, RunArgs, Transport};

/// Runs the MCP authorization flow locally: a Dex-compatible authorization server, a
/// static metadata server and the MCP resource server as separate processes, then the
/// client through login, tool listing and tool calls.
#[derive(Debug, Parser)]
#[command(name = "demo", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// Run one component instead of the whole demo.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Options of the whole-demo run.
    #[command(flatten)]
    pub run: RunArgs,
}

/// One component.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The local authorization server (dev-idp).
    Idp(dev_idp::cli::Cli),
    /// A busybox-httpd-like static file server for static-metadata/.
    StaticServer(crate::static_server::StaticServerArgs),
    /// The MCP resource server.
    ResourceServer(resource_server::cli::Cli),
    /// The MCP client (mcp-client).
    Client(mcp_auth_client::cli::Cli),
}

/// Runs the component or the whole demo.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        None => crate::orchestrate::run(cli.run).await,
        Some(Command::Idp(c)) => dev_idp::cli::run(c).await.map(|()| ExitCode::SUCCESS),
        Some(Command::StaticServer(a)) => crate::static_server::run(a)
            .await
            .map(|()| ExitCode::SUCCESS),
        Some(Command::ResourceServer(c)) => resource_server::cli::run(c)
            .await
            .map(|()| ExitCode::SUCCESS),
        Some(Command::Client(c)) => mcp_auth_client::cli::run(c).await,
    }
}
