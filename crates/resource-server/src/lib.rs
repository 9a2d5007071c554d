//! The demo MCP server, built on [`mcp_resource_server`]: a few demo tools
//! ([`tools`]), the MCP conformance suite's fixtures ([`fixtures`], on request), the
//! browser page ([`web`]) and the `resource-server` command line ([`cli`]).
//!
//! Everything about authorization, transports, sessions and limits is the library's;
//! this crate only chooses the handler and what else to serve.

pub mod cli;
pub mod fixtures;
pub mod tools;
pub mod web;

use std::{future::Future, path::PathBuf, sync::Arc};

use mcp_resource_server::{Config, ConfigError, McpResourceServer, ServeError};
use tokio::net::TcpListener;

use crate::{
    fixtures::Fixtures,
    tools::{DemoTools, ToolAccess},
};

/// The library's configuration with the demo's scopes: `admin_status` needs
/// `mcp:admin` beside the required `mcp:tools`, and the metadata advertises both.
pub fn demo_config(public_url: impl Into<String>, issuer: impl Into<String>) -> Config {
    let mut config = Config::new(public_url, issuer)
        .with_scopes_supported(["mcp:tools", "mcp:admin"])
        .with_tool_scope("admin_status", ["mcp:admin"]);
    config.resource_name = "MCP OAuth demo resource server".into();
    config
}

/// What the demo serves beside the protected MCP routes.
#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    /// Directory of the browser page served under `/app/` (not served when `None`).
    pub web_dir: Option<PathBuf>,
    /// Also serve the MCP conformance suite's fixture tools, prompts and resources.
    pub conformance_fixtures: bool,
}

/// The demo server: the library's [`McpResourceServer`] around [`DemoTools`].
///
/// # Errors
/// [`ConfigError`] for a wrong setting.
pub fn server(
    config: Config,
    options: &DemoOptions,
) -> Result<McpResourceServer<impl Fn() -> DemoTools + Send + Sync + 'static>, ConfigError> {
    let validated = config.validate()?;
    let access = Arc::new(ToolAccess {
        required: validated.required_scopes.clone(),
        per_tool: validated.tool_scopes.clone(),
        enabled: !config.no_auth,
    });
    let fixtures = options.conformance_fixtures.then(Fixtures::new);
    let mut server = McpResourceServer::new(config, move || {
        DemoTools::new(access.clone()).with_fixtures(fixtures.clone())
    });
    if let Some(web) = options.web_dir.as_deref().and_then(web::router) {
        server = server.with_routes(web);
    }
    Ok(server)
}

/// Serves the demo tools for `config` on `listener` until the process ends.
///
/// # Errors
/// [`ServeError`] on a wrong setting or a socket failure.
pub async fn serve(config: Config, listener: TcpListener) -> Result<(), ServeError> {
    serve_with_shutdown(
        config,
        &DemoOptions::default(),
        listener,
        std::future::pending(),
    )
    .await
}

/// Serves the demo for `config` and `options` on `listener` until `shutdown` completes.
///
/// # Errors
/// [`ServeError`] on a wrong setting or a socket failure.
pub async fn serve_with_shutdown(
    config: Config,
    options: &DemoOptions,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    server(config, options)?
        .serve_with_shutdown(listener, shutdown)
        .await
}
