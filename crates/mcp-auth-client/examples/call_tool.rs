//! Use the client library: authorize against any MCP server, then call a tool.
//!
//! ```sh
//! cargo run -p mcp-auth-client --example call_tool -- http://localhost:3001/mcp
//! ```
//!
//! The session discovers the authorization server from the server's 401 challenge,
//! registers or uses a pre-registered client, runs the PKCE flow in the system browser
//! (`Interaction::Headless` for auto-approving servers), caches the tokens, refreshes
//! them on a 401 and steps up on a 403 `insufficient_scope`.

use std::time::Duration;

use mcp_auth_client::audience::AudiencePolicy;
use mcp_auth_client::authorize::{AuthorizeOptions, Interaction};
use mcp_auth_client::cache::Cache;
use mcp_auth_client::mcp::sse::SseAuth;
use mcp_auth_client::registration::ClientConfig;
use mcp_auth_client::trace::{Trace, Verbosity};
use mcp_auth_client::{ConnectionOptions, McpConnection, TransportChoice};
use mcp_auth_proto::scope::Scopes;
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let server = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://localhost:3001/mcp".into());
    let options = ConnectionOptions {
        server_url: server.parse()?,
        transport: TransportChoice::Auto,
        sse_auth: SseAuth::Bearer,
        authorize: AuthorizeOptions {
            interaction: Interaction::Browser { open_browser: true },
            redirect_port: 0,
            timeout: Duration::from_secs(300),
            client: ClientConfig {
                // Dex and dev-idp without --registration need the pre-registered client.
                client_id: Some("mcp-client".into()),
                ..ClientConfig::default()
            },
            grant: Default::default(),
            dpop: Default::default(),
            dpop_alg: Default::default(),
        },
        extra_scopes: Scopes::default(),
        // Dex's tokens name its client `mcp-resource-server`, not the server's URL: allow
        // that audience for this server (and only for it).
        audiences: AudiencePolicy::new().with(format!("{server}=mcp-resource-server").parse()?),
        max_authorizations: 3,
        allow_insecure_http: false,
        refresh_margin_secs: 60,
    };
    let cache = Cache::new(std::env::temp_dir().join("mcp-client-example"));
    let mut session = McpConnection::new(options, Trace::stderr(Verbosity::Normal), cache)?;
    session.connect().await?;
    let result = session
        .call_tool("calculator", json!({"operation": "add", "a": 2, "b": 3}))
        .await?;
    println!("{result}");
    session.close().await;
    Ok(())
}
