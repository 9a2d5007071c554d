//! The authorization endpoint (`{issuer}/auth`, RFC 6749 §4.1.1), as Dex's
//! `handleAuthorization` and `handleConnectorLogin`: `/auth` sends the browser on to the
//! only connector, `/auth/local`, with the same parameters (302); `/auth/local` validates
//! the request, stores it and sends the browser to the password form at
//! `/auth/local/login?back=&state=<request id>`.
//!
//! Order of checks at `/auth/local`: client and redirect URI first (failures are shown to the user, never
//! redirected), then everything else with errors sent to the redirect URI (§4.1.2.1):
//! request objects, PKCE method, scopes (`openid` required unless switched off, unknown
//! scopes refused, cross-client scopes need `trustedPeers`), response type, `resource`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use url::Url;

use crate::clients::DEVICE_CALLBACK;
use crate::error::Error;
use crate::params::Params;
use crate::pkce::{self, Challenge, Method};
use crate::state::Idp;
use crate::store::{AuthRequest, CodeGrant, Grant, User, random_token};
use crate::time::now_secs;
use crate::tokens::CROSS_CLIENT_PREFIX;

/// The name of the one connector: Dex's password database.
pub(crate) const CONNECTOR: &str = "local";

/// `GET {issuer}/auth`: on to the connector with the same parameters.
pub(crate) async fn get(State(idp): State<Arc<Idp>>, RawQuery(query): RawQuery) -> Response {
    to_connector(&idp, query.unwrap_or_default().as_bytes())
}

/// `POST {issuer}/auth` (form-encoded, as OIDC allows).
pub(crate) async fn post(State(idp): State<Arc<Idp>>, body: Bytes) -> Response {
    to_connector(&idp, &body)
}

fn to_connector(idp: &Idp, raw: &[u8]) -> Response {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in url::form_urlencoded::parse(raw) {
        if name != "connector_id" {
            query.append_pair(&name, &value);
        }
    }
    let target = format!("{}/{CONNECTOR}?{}", idp.path("/auth"), query.finish());
    (StatusCode::FOUND, [(header::LOCATION, target)]).into_response()
}

/// `GET {issuer}/auth/{connector}`: validates and stores the request.
pub(crate) async fn connector(
    State(idp): State<Arc<Idp>>,
    Path(connector): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    if connector != CONNECTOR {
        return Error::page(StatusCode::BAD_REQUEST, "Connector failed to initialize.")
            .into_response();
    }
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    start(&idp, params).unwrap_or_else(IntoResponse::into_response)
}

/// Validates a resource indicator (RFC 8707 §2: absolute URI, no fragment).
pub(crate) fn valid_resource(resource: &str) -> bool {
    Url::parse(resource).is_ok_and(|u| u.fragment().is_none() && !u.cannot_be_a_base())
}

fn start(idp: &Idp, params: Result<Params, String>) -> Result<Response, Error> {
    let params = params.map_err(|name| {
        Error::page(
            StatusCode::BAD_REQUEST,
            format!("Parameter `{name}` was sent more than once."),
        )
    })?;
    let client_id = params
        .get("client_id")
        .ok_or_else(|| Error::page(StatusCode::BAD_REQUEST, "No client_id provided."))?;
    let client = idp
        .client(client_id)
        .ok_or_else(|| Error::page(StatusCode::NOT_FOUND, "Invalid client_id."))?;
    let redirect_uri = params.get("redirect_uri").unwrap_or_default();
    if !client.allows_redirect(redirect_uri) {
        return Err(Error::page(
            StatusCode::BAD_REQUEST,
            "Unregistered redirect_uri.",
        ));
    }
    // A public client's device flow comes back to this server.
    let device_callback = idp.path(DEVICE_CALLBACK);
    let redirect_uri = if redirect_uri == DEVICE_CALLBACK && client.public {
        device_callback.as_str()
    } else {
        redirect_uri
    };

    let state = params.get("state").map(str::to_owned);
    let config = &idp.config;
    let iss = config
        .features
        .issuer_in_response
        .then(|| config.issuer_str());
    let refuse = |error: &'static str, description: String| Error::Redirect {
        redirect_uri: redirect_uri.to_owned(),
        error,
        description,
        state: state.clone(),
        iss: iss.clone(),
    };

    if params.get("request").is_some() {
        return Err(refuse(
            "request_not_supported",
            "Server does not support request parameter.".into(),
        ));
    }
    if params.get("request_uri").is_some() {
        return Err(refuse(
            "request_uri_not_supported",
            "Server does not support request_uri parameter.".into(),
        ));
    }

    // The device flow's login carries no PKCE (the device holds its own, if any).
    let device_login = redirect_uri == device_callback;
    let pkce =
        pkce_challenge(idp, &params, device_login).map_err(|d| refuse("invalid_request", d))?;

    let mut scopes: Vec<String> = Vec::new();
    for scope in params.get("scope").unwrap_or_default().split_whitespace() {
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    }
    check_scopes(idp, &client.id, &scopes).map_err(|d| refuse("invalid_scope", d))?;

    let response_types: Vec<&str> = params
        .get("response_type")
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    if response_types.is_empty() {
        return Err(refuse(
            "invalid_request",
            "No response_type provided".into(),
        ));
    }
    for rt in &response_types {
        match *rt {
            "code" => {}
            "id_token" | "token" => {
                return Err(refuse(
                    "unsupported_response_type",
                    format!("Unsupported response type {rt:?}"),
                ));
            }
            _ => {
                return Err(refuse(
                    "invalid_request",
                    format!("Invalid response type {rt:?}"),
                ));
            }
        }
    }

    let resources = if config.features.resource_audience {
        let resources = params.all("resource");
        if let Some(bad) = resources.iter().find(|r| !valid_resource(r)) {
            return Err(refuse(
                "invalid_target",
                format!("Invalid resource {bad:?}: an absolute URI without fragment is required."),
            ));
        }
        resources
    } else {
        Vec::new()
    };

    let request = AuthRequest {
        client_id: client.id.clone(),
        redirect_uri: redirect_uri.to_owned(),
        state,
        nonce: params.get("nonce").map(str::to_owned),
        scopes,
        pkce,
        resources,
        expires_at: Instant::now() + config.auth_request_lifetime,
        user: None,
        force_approval: params.get("approval_prompt") == Some("force"),
        hmac_key: random_token(32),
    };

    if let Some(email) = &config.auto_login {
        let user = config.dex.user(email).map(User::from).ok_or_else(|| {
            Error::page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Auto-login user vanished.",
            )
        })?;
        tracing::info!(client_id = %client.id, user = %user.email, "auto-login");
        return Ok(complete(idp, request, user));
    }

    let id = idp.store.insert_request(request);
    let login = format!("{}/{CONNECTOR}/login?back=&state={id}", idp.path("/auth"));
    Ok((StatusCode::FOUND, [(header::LOCATION, login)]).into_response())
}

fn pkce_challenge(
    idp: &Idp,
    params: &Params,
    device_login: bool,
) -> Result<Option<Challenge>, String> {
    let method = match params.get("code_challenge_method") {
        None => None,
        Some(m) => Some(
            Method::parse(m)
                .ok_or_else(|| format!("Unsupported PKCE challenge method ({m:?})."))?,
        ),
    };
    let challenge = params.get("code_challenge");
    if idp.config.features.require_s256
        && !device_login
        && (challenge.is_none() || method != Some(Method::S256))
    {
        return Err("PKCE with code_challenge_method=S256 is required.".into());
    }
    match challenge {
        None => Ok(None),
        Some(value) if !pkce::well_formed(value) => Err("Invalid code_challenge.".into()),
        Some(value) => Ok(Some(Challenge {
            value: value.to_owned(),
            method: method.unwrap_or(Method::Plain),
        })),
    }
}

fn check_scopes(idp: &Idp, client_id: &str, scopes: &[String]) -> Result<(), String> {
    let mut unrecognized = Vec::new();
    let mut untrusted = Vec::new();
    for scope in scopes {
        if idp.config.is_known_scope(scope) {
            continue;
        }
        match scope.strip_prefix(CROSS_CLIENT_PREFIX) {
            Some(peer) if idp.trusts(client_id, peer) => {}
            Some(_) => untrusted.push(scope.as_str()),
            None => unrecognized.push(scope.as_str()),
        }
    }
    if !idp.config.features.openid_optional && !scopes.iter().any(|s| s == "openid") {
        return Err(r#"Missing required scope(s) ["openid"]."#.into());
    }
    if !unrecognized.is_empty() {
        return Err(format!("Unrecognized scope(s) {unrecognized:?}"));
    }
    if !untrusted.is_empty() {
        return Err(format!("Client can't request scope(s) {untrusted:?}"));
    }
    Ok(())
}

/// Finishes a request for a logged-in (and consenting) user: issues a code and sends the
/// browser back to the client.
pub(crate) fn complete(idp: &Idp, request: AuthRequest, user: User) -> Response {
    let config = &idp.config;
    let now = Instant::now();
    let grant = Grant {
        client_id: request.client_id,
        user,
        scopes: request.scopes,
        nonce: request.nonce,
        resources: request.resources,
        auth_time: now_secs(),
        expires_at: now + config.refresh_lifetime,
        dpop_jkt: None,
    };
    let code = idp.store.insert_code(CodeGrant {
        grant,
        redirect_uri: request.redirect_uri.clone(),
        pkce: request.pkce,
        expires_at: now + config.code_lifetime,
    });
    // The device flow's callback is a path on this server.
    let parsed = if request.redirect_uri.starts_with('/') {
        config.issuer.join(&request.redirect_uri)
    } else {
        Url::parse(&request.redirect_uri)
    };
    let Ok(mut url) = parsed else {
        return Error::page(StatusCode::BAD_REQUEST, "Invalid redirect_uri.").into_response();
    };
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("code", &code);
        query.append_pair("state", request.state.as_deref().unwrap_or_default());
        if config.features.issuer_in_response {
            query.append_pair("iss", &config.issuer_str());
        }
    }
    Redirect::to(url.as_str()).into_response()
}
