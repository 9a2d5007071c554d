//! Your own rmcp tool server, protected end to end: Streamable HTTP on `/mcp`, the
//! legacy SSE transport on `/sse` + `/messages` (with the `POST /session` cookie for
//! browsers), the Protected Resource Metadata, and every request's token checked
//! against the issuer's keys, its audience and its scopes.
//!
//! ```text
//! cargo run -p mcp-resource-server --example custom_tools -- http://localhost:5556/dex
//! ```

use mcp_resource_server::{Config, McpResourceServer, auth::VerifiedClaims};
use rmcp::{
    RoleServer, handler::server::wrapper::Parameters, schemars, service::RequestContext, tool,
    tool_router,
};

/// The arguments of `add`.
#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct AddArgs {
    a: f64,
    b: f64,
}

/// A handler with two tools of its own; the library makes one per MCP session.
#[derive(Clone, Default)]
pub struct Tools;

#[tool_router(server_handler)]
impl Tools {
    #[tool(description = "Adds two numbers.")]
    fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> String {
        (a + b).to_string()
    }

    #[tool(description = "Who is calling, from the verified access token.")]
    fn whoami(&self, context: RequestContext<RoleServer>) -> String {
        VerifiedClaims::from_context(&context)
            .map_or_else(|| "nobody".into(), |claims| claims.subject.clone())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = std::env::args()
        .nth(1)
        .unwrap_or("http://localhost:5556/dex".into());
    // Tokens must name this server (`aud`) and carry the scope `mcp:tools`.
    let config = Config::new("http://localhost:8080", issuer).with_required_scopes(["mcp:tools"]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    McpResourceServer::new(config, Tools::default)
        .serve(listener)
        .await?;
    Ok(())
}
