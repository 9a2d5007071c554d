//! Command line of the `bench` binary. Without a subcommand it runs the harness; the
//! `resource-server` subcommand is how the harness starts the project's resource server
//! as a separate process (this binary re-executes itself), so one `cargo build` covers
//! everything.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::options::{HarnessArgs, ResourceServerArgs};

/// Benchmark harness: the resource server against the official TypeScript SDK server.
#[derive(Debug, Parser)]
#[command(name = "bench", version, about, long_about = None)]
pub struct Cli {
    /// A component to run instead of the harness.
    #[command(subcommand)]
    pub component: Option<Component>,
    /// Harness settings.
    #[command(flatten)]
    pub harness: HarnessArgs,
}

/// Components the harness runs as child processes.
#[derive(Debug, Subcommand)]
pub enum Component {
    /// The project's resource server (the library behind the `resource-server` binary),
    /// printing `READY <mcp url>` on stdout once it listens.
    ResourceServer(Box<ResourceServerArgs>),
    /// A bare axum SSE server (no authorization, no MCP handler): the reference of the
    /// SSE case's memory figures.
    BareSse {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
    },
    /// A bare axum HTTP server answering every `POST /mcp` with a constant reply (no
    /// authorization, no MCP): the floor of the load cases on this machine.
    BareHttp {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
    },
    /// Fills the resource server's DPoP replay cache and prints the growth of this
    /// process's resident memory (`REPLAY_MEMORY <json>`).
    ReplayMemory {
        /// Entries to hold.
        #[arg(long, default_value_t = crate::dpop::MEMORY_ENTRIES)]
        entries: usize,
        /// Principals the entries are spread over.
        #[arg(long, default_value_t = 10_000)]
        principals: usize,
    },
}

/// Runs the harness or a component.
///
/// # Errors
/// When something is broken: a server did not start, a load had errors.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.component {
        Some(Component::ResourceServer(args)) => {
            crate::component::resource_server(*args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Component::BareSse { listen }) => {
            crate::component::bare_sse(listen).await?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Component::BareHttp { listen }) => {
            crate::component::bare_http(listen).await?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Component::ReplayMemory {
            entries,
            principals,
        }) => {
            crate::dpop::replay_memory(entries, principals)?;
            Ok(ExitCode::SUCCESS)
        }
        None => crate::harness::run(cli.harness).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn resource_server_flags_pass_through() {
        let cli = Cli::parse_from([
            "bench",
            "resource-server",
            "--token-cache",
            "0",
            "--listen",
            "127.0.0.1:4000",
            "--stateless",
            "--no-auth",
        ]);
        let Some(Component::ResourceServer(args)) = cli.component else {
            panic!("expected the resource-server component");
        };
        assert_eq!(args.token_cache, Some(0));
        assert!(args.server.stateless && args.server.no_auth);
        assert_eq!(args.server.listen.port(), 4000);
    }
}
