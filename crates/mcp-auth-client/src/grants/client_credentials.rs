//! The client credentials grant (RFC 6749 §4.4; the MCP client credentials extension,
//! SEP-1046): the client asks for a token for itself, authenticating with its secret
//! (`client_secret_basic` or `_post`) or a JWT assertion signed by its key
//! (`private_key_jwt`, RFC 7523 §2.2). No person and no browser are involved.

use mcp_auth_proto::{Scopes, TokenResponse};

use super::{base_form, note_grant_support, request_tokens};
use crate::discovery::{AuthorizationServer, Discovered};
use crate::error::{ClientError, Result};
use crate::identity::{StoredClient, TokenAuthMethod};
use crate::token::Endpoint;
use crate::trace::Trace;

const GRANT: &str = "client_credentials";

/// Requests a token with the client credentials grant.
pub async fn request(
    http: &reqwest::Client,
    trace: &Trace,
    endpoint: &Endpoint<'_>,
    as_: &AuthorizationServer,
    client: &StoredClient,
    discovered: &Discovered,
    scopes: &Scopes,
) -> Result<TokenResponse> {
    if client.auth_method == TokenAuthMethod::None {
        return Err(ClientError::Config(format!(
            "the client credentials grant needs a confidential client: --client-secret or --client-key for {}",
            client.client_id
        )));
    }
    note_grant_support(trace, as_, GRANT);
    trace.step(
        "grant",
        format!(
            "POST {}: grant_type=client_credentials (the client acts for itself, no person), resource={}{}, client auth {}",
            endpoint.url,
            discovered.resource,
            if scopes.is_empty() {
                String::new()
            } else {
                format!(", scope=\"{scopes}\"")
            },
            client.auth_method.as_str()
        ),
    );
    request_tokens(
        http,
        trace,
        endpoint,
        client,
        base_form(GRANT, discovered, scopes),
        GRANT,
    )
    .await
}
