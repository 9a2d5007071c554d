//! What the token endpoint's grants share (`token.rs` dispatches on `grant_type`;
//! `device.rs` and `jwt_bearer.rs` hold two of the grants): the grant-type names, the
//! scope that asks for a refresh token, the RFC 8707 resources of a token request and
//! the exchange of a checked code (authorization code and device code grants).

use crate::endpoints::authorize::valid_resource;
use crate::error::Error;
use crate::params::Params;
use crate::state::Idp;
use crate::store::CodeGrant;
use crate::tokens::{Extras, TokenResponse, issue};

/// The RFC 8628 grant type.
pub(crate) const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The scope that asks for a refresh token.
pub(crate) const OFFLINE_ACCESS: &str = "offline_access";

/// The RFC 7523 grant type.
pub(crate) const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The RFC 8693 grant type.
pub(crate) const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// Resources for this request: those sent now (which must have been authorized, if any
/// were), else those authorized.
pub(crate) fn resources(
    idp: &Idp,
    params: &Params,
    authorized: &[String],
) -> Result<Vec<String>, Error> {
    if !idp.config.features.resource_audience {
        return Ok(Vec::new());
    }
    let requested = params.all("resource");
    if let Some(bad) = requested.iter().find(|r| !valid_resource(r)) {
        return Err(Error::token(
            "invalid_target",
            format!("Invalid resource {bad:?}."),
        ));
    }
    if requested.is_empty() {
        return Ok(authorized.to_vec());
    }
    if let Some(extra) = requested
        .iter()
        .find(|r| !authorized.is_empty() && !authorized.contains(r))
    {
        return Err(Error::token(
            "invalid_target",
            format!("Resource {extra:?} was not part of the authorization."),
        ));
    }
    Ok(requested)
}

/// Exchanges a checked code: deletes it, stores a refresh token with `offline_access`
/// (replacing the user's previous one for this client) and signs the tokens.
pub(crate) fn exchange(
    idp: &Idp,
    value: &str,
    code: CodeGrant,
    resources: &[String],
    dpop_jkt: Option<&str>,
) -> Result<TokenResponse, Error> {
    let mut grant = code.grant;
    if grant.resources.is_empty() {
        grant.resources = resources.to_vec();
    }
    let offline = grant.scopes.iter().any(|s| s == OFFLINE_ACCESS);
    let refresh_token = idp
        .store
        .consume_code(value, idp.config.code_lifetime, offline.then_some(&grant))
        .ok_or_else(|| Error::token("invalid_grant", "Invalid or expired code parameter."))?;
    let scopes = grant.scopes.clone();
    let extras = Extras {
        code: Some(value),
        refresh_token,
        dpop_jkt,
    };
    issue(idp, &grant, &scopes, resources, extras)
}
