//! The token endpoint (`{issuer}/token`, RFC 6749 §3.2): the `authorization_code` and
//! `refresh_token` grants, client authentication by `client_secret_basic` or
//! `client_secret_post` (confidential clients), `private_key_jwt` when switched on
//! (`client_assertion.rs`) or none (public clients, which must not send a secret), PKCE
//! verification, and RFC 8707 `resource` when switched on. Behind switches: the client
//! credentials grant, token exchange for ID-JAGs (`id_jag.rs`) and the JWT bearer grant
//! (`jwt_bearer.rs`).

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::clients::Client;
use crate::endpoints::grants::{
    DEVICE_CODE_GRANT, JWT_BEARER_GRANT, OFFLINE_ACCESS, TOKEN_EXCHANGE_GRANT, exchange, resources,
};
use crate::endpoints::{client_assertion, id_jag, jwt_bearer};
use crate::error::Error;
use crate::params::Params;
use crate::state::Idp;
use crate::store::{CodeLookup, RefreshRefusal};
use crate::time::now_secs;
use crate::tokens::{Extras, Principal, issue, issue_without_login};

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
    // Dex checks the grant type before the client (and the device code grant
    // authenticates no client at all).
    let mut response = match params.get("grant_type").unwrap_or_default() {
        "authorization_code" => {
            let client = authenticate(&idp, &headers, &params).await?;
            authorization_code(&idp, &client, &params, jkt)
        }
        "refresh_token" => {
            let client = authenticate(&idp, &headers, &params).await?;
            refresh_token(&idp, &client, &params, jkt)
        }
        "client_credentials" if features.client_credentials => {
            let client = authenticate(&idp, &headers, &params).await?;
            client_credentials(&idp, &client, &params, jkt)
        }
        DEVICE_CODE_GRANT => crate::endpoints::device::token(&idp, &params),
        TOKEN_EXCHANGE_GRANT => {
            let client = authenticate(&idp, &headers, &params).await?;
            if features.id_jag
                && params.get("requested_token_type") == Some(id_jag::ID_JAG_TOKEN_TYPE)
            {
                id_jag::exchange(&idp, &client, &params)
            } else {
                token_exchange(&params)
            }
        }
        JWT_BEARER_GRANT if !features.trusted_issuers.is_empty() => {
            let client = authenticate(&idp, &headers, &params).await?;
            jwt_bearer::grant(&idp, &client, &params, jkt).await
        }
        _ => Err(Error::token("unsupported_grant_type", "")),
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

async fn authenticate(idp: &Idp, headers: &HeaderMap, params: &Params) -> Result<Client, Error> {
    let basic = basic_credentials(headers)?;
    if client_assertion::attempted(params) {
        if basic.is_some() {
            return Err(Error::token(
                "invalid_request",
                "Use only one client authentication method.",
            ));
        }
        return client_assertion::authenticate(idp, params).await;
    }
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

fn authorization_code(
    idp: &Idp,
    client: &Client,
    params: &Params,
    jkt: Option<&str>,
) -> Result<Response, Error> {
    let value = params
        .get("code")
        .ok_or_else(|| Error::token("invalid_request", "Required param: code."))?;
    // Dex's handleAuthCode: a code that exists but is expired or belongs to another
    // client falls into its "storage error" branch and gets 500 server_error.
    let code = match idp.store.code(value) {
        CodeLookup::Found(code) => *code,
        CodeLookup::Replayed => {
            tracing::warn!(client_id = %client.id, "authorization code replayed; its refresh token is revoked");
            return Err(Error::token(
                "invalid_grant",
                "Invalid or expired code parameter.",
            ));
        }
        CodeLookup::Unknown => {
            return Err(Error::token(
                "invalid_grant",
                "Invalid or expired code parameter.",
            ));
        }
    };
    if code.expires_at <= Instant::now() || code.grant.client_id != client.id {
        tracing::info!(client_id = %client.id, "code expired or issued to another client");
        return Err(Error::token("server_error", ""));
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
    if params.get("redirect_uri").unwrap_or_default() != code.redirect_uri {
        return Err(Error::token(
            "invalid_request",
            "redirect_uri did not match URI from initial request.",
        ));
    }
    let resources = resources(idp, params, &code.grant.resources)?;
    let mut code = code;
    // RFC 9449 §5: a public client's refresh tokens are bound to its proof key.
    if client.public {
        code.grant.dpop_jkt = jkt.map(str::to_owned);
    }
    Ok(Json(exchange(idp, value, code, &resources, jkt)?).into_response())
}

/// Dex's `refreshhandlers.go`: `invalid_request` for an unknown, spent or expired token,
/// `invalid_grant` for another client's; a refused request leaves the token usable.
fn refresh_token(
    idp: &Idp,
    client: &Client,
    params: &Params,
    jkt: Option<&str>,
) -> Result<Response, Error> {
    const INVALID: &str = "Refresh token is invalid or has already been claimed by another client.";
    let value = params
        .get("refresh_token")
        .ok_or_else(|| Error::token("invalid_request", "No refresh token is found in request."))?;
    let reuse = idp.config.refresh_reuse_interval;
    let record =
        idp.store
            .refresh(value, Some(&client.id), reuse)
            .map_err(|refusal| match refusal {
                RefreshRefusal::Invalid => Error::token("invalid_request", INVALID),
                RefreshRefusal::Expired => {
                    Error::token("invalid_request", "Refresh token expired.")
                }
                RefreshRefusal::OtherClient => Error::token("invalid_grant", INVALID),
            })?;
    let grant = record.grant;
    if let Some(bound) = &grant.dpop_jkt
        && jkt != Some(bound.as_str())
    {
        return Err(Error::token(
            "invalid_grant",
            "The refresh token is bound to a DPoP key; send a proof signed with it.",
        ));
    }
    let scopes: Vec<String> = match params.get("scope").filter(|s| !s.trim().is_empty()) {
        None => grant.scopes.clone(),
        Some(requested) => {
            let requested: Vec<String> = requested.split_whitespace().map(str::to_owned).collect();
            let extra: Vec<&String> = requested
                .iter()
                .filter(|s| !grant.scopes.contains(s))
                .collect();
            if !extra.is_empty() {
                return Err(Error::token(
                    "invalid_request",
                    format!("Requested scopes contain unauthorized scope(s): {extra:?}."),
                ));
            }
            requested
        }
    };
    let resources = resources(idp, params, &grant.resources)?;
    let refresh_token = idp
        .store
        .rotate_refresh(value, reuse)
        .ok_or_else(|| Error::token("invalid_request", INVALID))?;
    let extras = Extras {
        code: None,
        refresh_token: Some(refresh_token),
        dpop_jkt: jkt,
    };
    Ok(Json(issue(idp, &grant, &scopes, &resources, extras)?).into_response())
}

/// Dex's `handleTokenExchange` with only the password database as connector: it cannot
/// vouch for a subject token, so every well-formed request names a connector that "does
/// not exist".
fn token_exchange(params: &Params) -> Result<Response, Error> {
    match params.get("subject_token_type") {
        Some(
            "urn:ietf:params:oauth:token-type:id_token"
            | "urn:ietf:params:oauth:token-type:access_token",
        ) => {}
        _ => {
            return Err(Error::token(
                "request_not_supported",
                "Invalid subject_token_type.",
            ));
        }
    }
    if params.get("subject_token").is_none() {
        return Err(Error::token("invalid_request", "Missing subject_token"));
    }
    Err(Error::token(
        "invalid_request",
        "Requested connector does not exist.",
    ))
}

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
            // No refresh token without a person (RFC 6749 §4.4.3): `offline_access` is
            // left out of the grant (RFC 6749 §3.3 lets the server grant less), and the
            // response's `scope` says so.
            let requested: Vec<String> = requested
                .split_whitespace()
                .filter(|s| *s != OFFLINE_ACCESS)
                .map(str::to_owned)
                .collect();
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
    let principal = Principal {
        subject: &client.id,
        client_id: &client.id,
        email: None,
        grant: "client_credentials",
    };
    Ok(Json(issue_without_login(
        idp, &principal, &scopes, &resources, jkt,
    )?)
    .into_response())
}
