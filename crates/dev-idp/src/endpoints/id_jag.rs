//! The enterprise identity provider's half of enterprise-managed authorization
//! (SEP-990, the Identity Assertion JWT Authorization Grant draft): token exchange
//! ([RFC 8693](https://www.rfc-editor.org/rfc/rfc8693)) of an ID token for an ID-JAG.
//!
//! ```text
//! grant_type=urn:ietf:params:oauth:grant-type:token-exchange
//! requested_token_type=urn:ietf:params:oauth:token-type:id-jag
//! subject_token=<ID token>  subject_token_type=urn:ietf:params:oauth:token-type:id_token
//! audience=<MCP authorization server issuer>  resource=<MCP server>  [scope=...]
//! ```
//!
//! The client authenticates as for any grant. The subject token must be an unexpired ID
//! token this server signed for that same client. The answer's `access_token` is the
//! ID-JAG: a JWT with header `typ: oauth-id-jag+jwt` and claims `iss` (this server),
//! `sub` (the user, as in the ID token), `aud` (the `audience`), `client_id`, `jti`,
//! `iat`, `exp` (five minutes), `resource`, `scope` and, when the ID token had it,
//! `email`; `issued_token_type` is the ID-JAG type and `token_type` `N_A` (RFC 8693
//! §2.2.1: not an access token).
//!
//! `client_id` is the client's id at THIS server: the MCP authorization server must know
//! the client under the same id (in the demo both servers read the same
//! `dex-config.yaml`). A real identity provider keeps a mapping per audience instead.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::clients::Client;
use crate::endpoints::authorize::valid_resource;
use crate::error::Error;
use crate::params::Params;
use crate::state::Idp;
use crate::store::random_token;
use crate::time::now_secs;

/// The ID-JAG token type.
pub(crate) const ID_JAG_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id-jag";
/// The ID token type (RFC 8693 §3).
pub(crate) const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
/// The JOSE `typ` of an ID-JAG.
pub(crate) const ID_JAG_TYP: &str = "oauth-id-jag+jwt";
/// Lifetime of an ID-JAG (seconds): it is spent at once, at the next hop.
const LIFETIME: u64 = 300;

/// Answers a token exchange request for an ID-JAG.
pub(crate) fn exchange(idp: &Idp, client: &Client, params: &Params) -> Result<Response, Error> {
    if params.get("subject_token_type") != Some(ID_TOKEN_TYPE) {
        return Err(Error::token(
            "invalid_request",
            format!("An ID-JAG is issued for subject_token_type {ID_TOKEN_TYPE} only."),
        ));
    }
    let subject_token = params
        .get("subject_token")
        .ok_or_else(|| Error::token("invalid_request", "Missing subject_token"))?;
    let audience = params
        .get("audience")
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            Error::token(
                "invalid_request",
                "Missing audience: the issuer of the MCP authorization server.",
            )
        })?;
    if params.all("audience").len() > 1 {
        return Err(Error::token(
            "invalid_target",
            "An ID-JAG has exactly one audience.",
        ));
    }
    let resources = params.all("resource");
    let [resource] = &resources[..] else {
        return Err(Error::token(
            "invalid_target",
            "Send exactly one resource: the MCP server the ID-JAG is for.",
        ));
    };
    if !valid_resource(resource) {
        return Err(Error::token(
            "invalid_target",
            format!("Invalid resource {resource:?}."),
        ));
    }
    let id_token: Value = idp
        .keys
        .verify(subject_token, &idp.config.issuer_str())
        .ok_or_else(|| {
            Error::token(
                "invalid_grant",
                "The subject_token is not a valid, unexpired ID token of this server.",
            )
        })?;
    let issued_to_client = match id_token.get("aud") {
        Some(Value::String(a)) => *a == client.id,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(&client.id)),
        _ => false,
    };
    if !issued_to_client {
        return Err(Error::token(
            "invalid_grant",
            "The subject_token was not issued to this client.",
        ));
    }
    let sub = id_token
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let scope = params
        .get("scope")
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty());
    let iat = now_secs();
    let mut claims = json!({
        "iss": idp.config.issuer_str(),
        "sub": sub,
        "aud": audience,
        "client_id": client.id,
        "jti": random_token(16),
        "iat": iat,
        "exp": iat + LIFETIME,
        "resource": resource,
    });
    if let Some(scope) = &scope {
        claims["scope"] = json!(scope);
    }
    if let Some(email) = id_token.get("email") {
        claims["email"] = email.clone();
    }
    let id_jag = idp.keys.sign(Some(ID_JAG_TYP), &claims).map_err(|e| {
        tracing::error!(error = %e, "signing failed");
        Error::token("server_error", "The server could not sign the ID-JAG.")
    })?;
    tracing::info!(
        client_id = %client.id,
        %audience,
        %resource,
        scope = scope.as_deref().unwrap_or(""),
        "ID-JAG issued by token exchange"
    );
    let mut body = json!({
        "access_token": id_jag,
        "issued_token_type": ID_JAG_TOKEN_TYPE,
        "token_type": "N_A",
        "expires_in": LIFETIME,
    });
    if let Some(scope) = scope {
        body["scope"] = json!(scope);
    }
    Ok(Json(body).into_response())
}
