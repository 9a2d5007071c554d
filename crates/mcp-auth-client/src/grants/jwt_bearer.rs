//! The JWT bearer authorization grant (RFC 7523 §2.1): a JWT issued by someone the
//! authorization server trusts (a workload's platform, SEP-1933; an enterprise identity
//! provider's ID-JAG, SEP-990) is exchanged for an access token. The JWT's `aud` is the
//! authorization server's issuer; the client does not change or re-sign it.
//!
//! A refusal (`invalid_grant`, `invalid_scope`, `unauthorized_client`, ...) ends the
//! attempt: the same assertion would be refused again, and falling back to another grant
//! would act with an identity nobody chose.

use mcp_auth_proto::{Scopes, TokenResponse};

use super::{JWT_BEARER_GRANT, base_form, note_grant_support, request_tokens};
use crate::discovery::{AuthorizationServer, Discovered};
use crate::error::Result;
use crate::identity::StoredClient;
use crate::token::Endpoint;
use crate::trace::{Trace, jwt_claims};

/// Requests a token with the JWT bearer grant and `assertion`.
#[allow(clippy::too_many_arguments)]
pub async fn request(
    http: &reqwest::Client,
    trace: &Trace,
    endpoint: &Endpoint<'_>,
    as_: &AuthorizationServer,
    client: &StoredClient,
    discovered: &Discovered,
    scopes: &Scopes,
    assertion: &str,
) -> Result<TokenResponse> {
    note_grant_support(trace, as_, JWT_BEARER_GRANT);
    if let Some(claims) = jwt_claims(assertion) {
        trace.detail(
            "grant",
            format!("the assertion (decoded, not verified):\n{claims}"),
        );
    }
    trace.step(
        "grant",
        format!(
            "POST {}: grant_type={JWT_BEARER_GRANT} with the assertion, resource={}{}, client auth {}",
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
    let mut form = base_form(JWT_BEARER_GRANT, discovered, scopes);
    form.push(("assertion", assertion.to_owned()));
    request_tokens(http, trace, endpoint, client, form, "jwt-bearer").await
}
