//! The token endpoint (`{issuer}/token`, RFC 6749 §3.2): the `authorization_code` and
//! `refresh_token` grants, `client_credentials` when switched on (RFC 6749 §4.4), DPoP
//! proofs when switched on (RFC 9449 §5: bound access tokens, public clients' refresh
//! tokens bound to the proof key), client authentication by `client_secret_basic` or
//! `client_secret_post` (confidential clients) or none (public clients, which must not
//! send a secret), PKCE verification, and RFC 8707 `resource` when switched on.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::clients::Client;
use crate::endpoints::authorize::valid_resource;
use crate::error::Error;
use crate::params::Params;
use crate::state::Idp;
use crate::store::Redeemed;
use crate::tokens::{issue, issue_client_credentials, now_secs};

/// `POST {issuer}/token`.
pub(crate) async fn token(
    State(idp): State<Arc<Idp>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Error> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !form {
        return Err(Error::token(
            "invalid_request",
            "Content-Type must be application/x-www-form-urlencoded.",
        ));
    }
    let params = Params::parse(&body).map_err(|name| {
        Error::token(
            "invalid_request",
            format!("Parameter `{name}` was sent more than once."),
        )
    })?;
    let client = authenticate(&idp, &headers, &params)?;
    let features = &idp.config.features;
    let jkt = if features.dpop {
        idp.dpop.check(
            &headers,
            &idp.config.endpoint("/token"),
            features.dpop_nonce,
            now_secs(),
        )?
    } else {
        None
    };
    let jkt = jkt.as_deref();
    let mut response = match params.get("grant_type") {
        None => Err(Error::token("invalid_request", "Missing grant_type.")),
        Some("authorization_code") => authorization_code(&idp, &client, &params, jkt),
        Some("refresh_token") => refresh_token(&idp, &client, &params, jkt),
        Some("client_credentials") if features.client_credentials => {
            client_credentials(&idp, &client, &params, jkt)
        }
        Some(other) => Err(Error::token(
            "unsupported_grant_type",
            format!("Unsupported grant_type {other:?}."),
        )),
    }?;
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// RFC 6749 §2.3.1: the Basic credentials are form-urlencoded before base64.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, Error> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || Error::Token {
        error: "invalid_client",
        description: "Malformed Basic credentials.".into(),
        basic: true,
    };
    let value = value.to_str().map_err(|_| bad())?;
    let (scheme, encoded) = value.split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(bad());
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    let unescape = |s: &str| -> String {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((unescape(id), unescape(secret))))
}

fn authenticate(idp: &Idp, headers: &HeaderMap, params: &Params) -> Result<Client, Error> {
    let basic = basic_credentials(headers)?;
    let used_basic = basic.is_some();
    let invalid = |description: &str| Error::Token {
        error: "invalid_client",
        description: description.into(),
        basic: used_basic,
    };
    let (id, secret) = match basic {
        Some((id, secret)) => {
            if params.get("client_secret").is_some() {
                return Err(Error::token(
                    "invalid_request",
                    "Use only one client authentication method.",
                ));
            }
            if params.get("client_id").is_some_and(|c| c != id) {
                return Err(invalid("client_id does not match the Basic credentials."));
            }
            (id, Some(secret).filter(|s| !s.is_empty()))
        }
        None => (
            params
                .get("client_id")
                .ok_or_else(|| invalid("Client authentication required."))?
                .to_owned(),
            params.get("client_secret").map(str::to_owned),
        ),
    };
    let client = idp
        .client(&id)
        .ok_or_else(|| invalid("Invalid client credentials."))?;
    if client.public {
        if secret.is_some() {
            return Err(invalid("A public client must not send a client secret."));
        }
    } else if !secret.as_deref().is_some_and(|s| client.secret_matches(s)) {
        return Err(invalid("Invalid client credentials."));
    }
    Ok(client)
}

/// Resources for this request: those sent now (which must have been authorized, if any
/// were), else those authorized.
fn resources(idp: &Idp, params: &Params, authorized: &[String]) -> Result<Vec<String>, Error> {
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

fn authorization_code(
    idp: &Idp,
    client: &Client,
    params: &Params,
    jkt: Option<&str>,
) -> Result<Response, Error> {
    let value = params
        .get("code")
        .ok_or_else(|| Error::token("invalid_request", "Missing code."))?;
    let code = match idp.store.redeem_code(value, idp.config.code_lifetime * 2) {
        Redeemed::Valid(code) => code,
        Redeemed::Replayed => {
            tracing::warn!(client_id = %client.id, "authorization code replayed; its tokens are revoked");
            return Err(Error::token(
                "invalid_grant",
                "The code was already used; tokens issued for it are revoked.",
            ));
        }
        Redeemed::Unknown => {
            return Err(Error::token("invalid_grant", "Invalid or expired code."));
        }
    };
    if code.grant.client_id != client.id {
        return Err(Error::token(
            "invalid_grant",
            "The code was issued to another client.",
        ));
    }
    if params.get("redirect_uri") != Some(code.redirect_uri.as_str()) {
        return Err(Error::token(
            "invalid_grant",
            "redirect_uri did not match URI from initial request.",
        ));
    }
    match (&code.pkce, params.get("code_verifier")) {
        (Some(challenge), Some(verifier)) => {
            if !challenge.verify(verifier) {
                return Err(Error::token("invalid_grant", "Invalid code_verifier."));
            }
        }
        (Some(_), None) => {
            return Err(Error::token(
                "invalid_grant",
                "Expecting parameter code_verifier in PKCE flow.",
            ));
        }
        (None, Some(_)) => {
            return Err(Error::token(
                "invalid_request",
                "No PKCE flow started. Cannot check code_verifier.",
            ));
        }
        (None, None) => {}
    }
    let mut grant = code.grant;
    let resources = resources(idp, params, &grant.resources)?;
    if grant.resources.is_empty() {
        grant.resources.clone_from(&resources);
    }
    // RFC 9449 §5: a public client's refresh tokens are bound to its proof key.
    if client.public {
        grant.dpop_jkt = jkt.map(str::to_owned);
    }
    let scopes = grant.scopes.clone();
    Ok(Json(issue(idp, &grant, &scopes, &resources, jkt)?).into_response())
}

fn refresh_token(
    idp: &Idp,
    client: &Client,
    params: &Params,
    jkt: Option<&str>,
) -> Result<Response, Error> {
    let value = params
        .get("refresh_token")
        .ok_or_else(|| Error::token("invalid_request", "Missing refresh_token."))?;
    let grant = match idp.store.redeem_refresh(value) {
        Redeemed::Valid(grant) => grant,
        Redeemed::Replayed => {
            tracing::warn!(client_id = %client.id, "refresh token replayed; its family is revoked");
            return Err(Error::token(
                "invalid_grant",
                "The refresh token was already used; its successors are revoked.",
            ));
        }
        Redeemed::Unknown => {
            return Err(Error::token(
                "invalid_grant",
                "Invalid or expired refresh token.",
            ));
        }
    };
    if grant.client_id != client.id {
        return Err(Error::token(
            "invalid_grant",
            "The refresh token was issued to another client.",
        ));
    }
    if let Some(bound) = &grant.dpop_jkt
        && jkt != Some(bound.as_str())
    {
        return Err(Error::token(
            "invalid_grant",
            "The refresh token is bound to a DPoP key; send a proof signed with it.",
        ));
    }
    let scopes: Vec<String> = match params.get("scope") {
        None => grant.scopes.clone(),
        Some(requested) => {
            let requested: Vec<String> = requested.split_whitespace().map(str::to_owned).collect();
            if let Some(extra) = requested.iter().find(|s| !grant.scopes.contains(s)) {
                return Err(Error::token(
                    "invalid_scope",
                    format!("Scope {extra:?} was not originally granted."),
                ));
            }
            requested
        }
    };
    let resources = resources(idp, params, &grant.resources)?;
    Ok(Json(issue(idp, &grant, &scopes, &resources, jkt)?).into_response())
}

/// RFC 6749 §4.4: a confidential client asks for a token for itself. Requested scopes
/// must be ones this server supports (all of them when none is asked for).
fn client_credentials(
    idp: &Idp,
    client: &Client,
    params: &Params,
    jkt: Option<&str>,
) -> Result<Response, Error> {
    if client.public {
        return Err(Error::token(
            "unauthorized_client",
            "A public client cannot use the client_credentials grant.",
        ));
    }
    let supported = idp.config.features.extra_scopes.clone();
    let scopes: Vec<String> = match params.get("scope") {
        None => supported,
        Some(requested) => {
            let requested: Vec<String> = requested.split_whitespace().map(str::to_owned).collect();
            if let Some(unknown) = requested.iter().find(|s| !supported.contains(s)) {
                return Err(Error::token(
                    "invalid_scope",
                    format!("Scope {unknown:?} is not available to clients acting for themselves."),
                ));
            }
            requested
        }
    };
    let resources = resources(idp, params, &[])?;
    Ok(Json(issue_client_credentials(
        idp, &client.id, &scopes, &resources, jkt,
    )?)
    .into_response())
}
