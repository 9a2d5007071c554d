//! How the client obtains tokens once discovery has found the authorization server.
//!
//! - [`Grant::AuthorizationCode`]: a person logs in (`authorize.rs`), the default;
//! - [`Grant::ClientCredentials`]: the client acts for itself, no person involved
//!   (RFC 6749 §4.4, the MCP client credentials extension, SEP-1046), authenticating with
//!   its secret or a JWT signed by its key ([`client_credentials`]);
//! - [`Grant::JwtBearer`]: a workload presents a JWT its platform issued (workload
//!   identity federation, SEP-1933) as an RFC 7523 §2.1 authorization grant
//!   ([`jwt_bearer`]);
//! - [`Grant::IdJag`]: enterprise-managed authorization (SEP-990): the user's ID token
//!   is exchanged at the enterprise identity provider for an Identity Assertion JWT
//!   Authorization Grant (RFC 8693 token exchange), which the MCP authorization server
//!   accepts as a JWT bearer grant ([`id_jag`]).
//!
//! The grants without a person need a pre-registered client (`--client-id`); none of
//! them is retried after the authorization server refuses it.
//!
//! Whatever the grant, tokens are DPoP-bound when [`dpop_key`] says so, and the client
//! authenticates at the token endpoint as configured (`none`, a secret, or
//! `private_key_jwt` with [`assertion::ClientKey`]).

pub mod client_credentials;
pub mod id_jag;
pub mod jwt_bearer;

/// JWT client assertions (`private_key_jwt`, RFC 7523 §2.2): the client's key. The client
/// authenticates with it at the token endpoint whatever the grant, the authorization code
/// included.
pub mod assertion {
    pub use crate::client_assertion::{CLIENT_ASSERTION_TYPE, ClientKey};
}

use std::path::Path;

use mcp_auth_proto::{Scopes, TokenResponse};

use crate::authorization::{AuthorizeOptions, Authorized};
pub use crate::authorization::{Grant, IdJagConfig, dpop_key};
use crate::authorize;
use crate::cache::Cache;
use crate::discovery::{AuthorizationServer, Discovered};
use crate::error::{ClientError, Result};
use crate::identity::StoredClient;
use crate::registration::client_identity;
use crate::token::{self, Endpoint};
use crate::trace::Trace;

/// The `grant_type` of the JWT bearer grant (RFC 7523 §2.1).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Obtains tokens for `discovered` with the configured grant.
pub async fn obtain(
    http: &reqwest::Client,
    trace: &Trace,
    cache: &Cache,
    discovered: &Discovered,
    options: &AuthorizeOptions,
    scopes: &Scopes,
) -> Result<Authorized> {
    if let Grant::AuthorizationCode = &options.grant {
        return authorize::authorize(http, trace, cache, discovered, options, scopes).await;
    }
    // No person takes part from here on, so no refresh token is wanted: the client
    // asks again with its credentials or a fresh assertion (RFC 6749 §4.4.3; RFC 7521
    // §4.1 leaves refresh tokens for assertion grants to policy). `offline_access`,
    // added for the authorization code flow, is left out.
    let without_offline;
    let scopes = if scopes.contains("offline_access") {
        without_offline = scopes
            .iter()
            .filter(|s| *s != "offline_access")
            .collect::<Scopes>();
        trace.step(
            "grant",
            format!(
                "the {} grant involves no person: leaving offline_access out of the scope",
                options.grant.name()
            ),
        );
        &without_offline
    } else {
        scopes
    };
    let as_ = &discovered.authorization_server;
    if options.client.client_id.is_none() {
        return Err(ClientError::Config(format!(
            "the {} grant needs a pre-registered client: --client-id",
            options.grant.name()
        )));
    }
    // A pre-registered client: no redirect URI is involved.
    let client = client_identity(http, trace, cache, as_, &options.client, "").await?;
    let dpop = dpop_key(trace, cache, options, discovered, &client)?;
    let endpoint = Endpoint {
        url: &as_.token_endpoint,
        issuer: &as_.issuer,
        dpop: dpop.as_deref(),
        client_key: options.client.client_key.as_deref(),
    };
    let tokens = match &options.grant {
        Grant::AuthorizationCode => unreachable!("handled above"),
        Grant::ClientCredentials => {
            client_credentials::request(http, trace, &endpoint, as_, &client, discovered, scopes)
                .await?
        }
        Grant::JwtBearer { assertion_file } => {
            let assertion = read_jwt_file(assertion_file, "--assertion-file")?;
            trace.step(
                "grant",
                format!(
                    "workload identity: the JWT in {} is the authorization grant (RFC 7523 §2.1)",
                    assertion_file.display()
                ),
            );
            jwt_bearer::request(
                http, trace, &endpoint, as_, &client, discovered, scopes, &assertion,
            )
            .await?
        }
        Grant::IdJag(config) => {
            let id_jag = id_jag::exchange(http, trace, config, as_, discovered, scopes).await?;
            trace.step(
                "grant",
                format!(
                    "hop 2 of 2: the ID-JAG goes to the MCP authorization server {} as a JWT bearer grant",
                    as_.issuer
                ),
            );
            jwt_bearer::request(
                http, trace, &endpoint, as_, &client, discovered, scopes, &id_jag,
            )
            .await?
        }
    };
    Ok(Authorized {
        tokens,
        client,
        requested_scope: (!scopes.is_empty()).then(|| scopes.clone()),
        callback_issuer: None,
        dpop,
    })
}

/// Reads a JWT from a file (at most 64 KiB, surrounding whitespace ignored).
pub(crate) fn read_jwt_file(path: &Path, flag: &'static str) -> Result<String> {
    let bad = |why: &str| ClientError::Config(format!("{flag} {}: {why}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| ClientError::file(flag, path, e))?;
    if meta.len() > 64 * 1024 {
        return Err(bad("larger than 64 KiB, not a JWT"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| ClientError::file(flag, path, e))?;
    let jwt = text.trim();
    if jwt.split('.').count() != 3 || jwt.contains(char::is_whitespace) {
        return Err(bad("does not hold a JWT (three dot-separated parts)"));
    }
    Ok(jwt.to_owned())
}

/// Traces when the authorization server's metadata does not list `grant`.
pub(crate) fn note_grant_support(trace: &Trace, as_: &AuthorizationServer, grant: &str) {
    if !as_.metadata.supports_grant_type(grant) {
        trace.step(
            "grant",
            format!(
                "the authorization server {} does not list {grant} in grant_types_supported; trying it anyway",
                as_.issuer
            ),
        );
    }
}

/// The form of a grant for `discovered`: `resource` (RFC 8707) and `scope` when some.
pub(crate) fn base_form(
    grant_type: &str,
    discovered: &Discovered,
    scopes: &Scopes,
) -> Vec<(&'static str, String)> {
    let mut form = vec![
        ("grant_type", grant_type.to_owned()),
        ("resource", discovered.resource.clone()),
    ];
    if !scopes.is_empty() {
        form.push(("scope", scopes.to_string()));
    }
    form
}

/// A token request for the resource; the trace names the grant.
pub(crate) async fn request_tokens(
    http: &reqwest::Client,
    trace: &Trace,
    endpoint: &Endpoint<'_>,
    client: &StoredClient,
    form: Vec<(&'static str, String)>,
    grant: &'static str,
) -> Result<TokenResponse> {
    token::request(http, trace, endpoint, client, form, grant).await
}
