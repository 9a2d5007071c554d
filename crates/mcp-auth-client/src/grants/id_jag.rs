//! Hop 1 of enterprise-managed authorization (SEP-990, the Identity Assertion JWT
//! Authorization Grant draft): at the enterprise identity provider's token endpoint, the
//! user's ID token is exchanged (RFC 8693) for an ID-JAG, a JWT naming the MCP
//! authorization server as its audience and the MCP server as its resource:
//!
//! ```text
//! grant_type=urn:ietf:params:oauth:grant-type:token-exchange
//! requested_token_type=urn:ietf:params:oauth:token-type:id-jag
//! subject_token=<ID token>  subject_token_type=urn:ietf:params:oauth:token-type:id_token
//! audience=<MCP authorization server issuer>  resource=<MCP server>  [scope=...]
//! ```
//!
//! Hop 2 is the JWT bearer grant at the MCP authorization server (`jwt_bearer.rs`).

use mcp_auth_proto::Scopes;

use super::{IdJagConfig, read_jwt_file};
use crate::discovery::{AuthorizationServer, Discovered};
use crate::error::{ClientError, Result};
use crate::identity::{ClientSource, StoredClient, TokenAuthMethod};
use crate::token::{self, Endpoint};
use crate::trace::{Trace, jwt_claims};

/// The token exchange grant type (RFC 8693 §2.1).
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The ID-JAG token type.
pub const ID_JAG_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id-jag";
/// The ID token type (RFC 8693 §3).
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";

/// Exchanges the ID token for an ID-JAG for `as_` and the resource of `discovered`.
pub async fn exchange(
    http: &reqwest::Client,
    trace: &Trace,
    config: &IdJagConfig,
    as_: &AuthorizationServer,
    discovered: &Discovered,
    scopes: &Scopes,
) -> Result<String> {
    let id_token = read_jwt_file(&config.id_token_file, "--id-token-file")?;
    let idp_client = StoredClient {
        client_id: config.idp_client_id.clone(),
        client_secret: config.idp_client_secret.clone(),
        auth_method: if config.idp_client_secret.is_some() {
            TokenAuthMethod::ClientSecretBasic
        } else {
            TokenAuthMethod::None
        },
        source: ClientSource::PreRegistered,
        redirect_uri: None,
    };
    let url = &config.idp_token_endpoint;
    let idp = url.origin().ascii_serialization();
    let endpoint = Endpoint {
        url,
        issuer: &idp,
        dpop: None,
        client_key: None,
    };
    trace.step(
        "grant",
        format!(
            "hop 1 of 2: POST {url}: token exchange (RFC 8693) at the identity provider: the ID token from {} for an ID-JAG with audience={} (the MCP authorization server) and resource={}{}, as client {}",
            config.id_token_file.display(),
            as_.issuer,
            discovered.resource,
            if scopes.is_empty() {
                String::new()
            } else {
                format!(", scope=\"{scopes}\"")
            },
            config.idp_client_id
        ),
    );
    let mut form = vec![
        ("grant_type", TOKEN_EXCHANGE_GRANT.to_owned()),
        ("requested_token_type", ID_JAG_TOKEN_TYPE.to_owned()),
        ("subject_token", id_token),
        ("subject_token_type", ID_TOKEN_TYPE.to_owned()),
        ("audience", as_.issuer.clone()),
        ("resource", discovered.resource.clone()),
    ];
    if !scopes.is_empty() {
        form.push(("scope", scopes.to_string()));
    }
    let response = token::post(http, trace, &endpoint, &idp_client, form, "token-exchange").await?;
    let issued = response
        .extra
        .get("issued_token_type")
        .and_then(serde_json::Value::as_str);
    if issued != Some(ID_JAG_TOKEN_TYPE) {
        return Err(ClientError::InvalidResponse {
            what: "token exchange response",
            url: url.to_string(),
            reason: format!(
                "issued_token_type is {}, not {ID_JAG_TOKEN_TYPE}",
                issued.unwrap_or("missing")
            ),
        });
    }
    let id_jag = response.access_token.secret().to_owned();
    trace.step(
        "grant",
        "-> 200: an ID-JAG (issued_token_type id-jag): the identity provider vouches for the user to the MCP authorization server",
    );
    if let Some(claims) = jwt_claims(&id_jag) {
        trace.detail(
            "grant",
            format!("the ID-JAG (decoded, not verified):\n{claims}"),
        );
    }
    Ok(id_jag)
}
