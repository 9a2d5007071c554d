//! The device authorization grant (RFC 8628) as Dex's `deviceflowhandlers.go` runs it.
//!
//! 1. The device posts to `{issuer}/device/code` (`client_id`, optional `client_secret`,
//!    `scope` defaulting to `openid`, optional PKCE) and gets a device code, a user code
//!    such as `BCDF-GHJK`, `verification_uri` = `{issuer}/device`, `expires_in` 300 and
//!    `interval` 5.
//! 2. The user opens `{issuer}/device`, types the code; the page posts it to
//!    `{issuer}/device/auth/verify_code`, which sends the browser to the ordinary login at
//!    `{issuer}/auth` with `redirect_uri=/device/callback` and `state` = the user code.
//! 3. `{issuer}/device/callback` exchanges the code, keeps the token response for the
//!    device and shows a success page.
//! 4. The device polls `{issuer}/token` (or Dex's deprecated `{issuer}/device/token`)
//!    with `grant_type=urn:ietf:params:oauth:grant-type:device_code`:
//!    `authorization_pending` until then, `slow_down` when it polls before its interval
//!    (which then grows by 5 seconds each time), `expired_token` after `expires_in`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::clients::DEVICE_CALLBACK;
use crate::endpoints::grants::{DEVICE_CODE_GRANT, exchange};
use crate::error::Error;
use crate::html;
use crate::params::Params;
use crate::pkce::{Challenge, Method};
use crate::state::Idp;
use crate::store::{CodeLookup, DeviceRequest, random_token};

/// Dex's interval between polls, in seconds.
const POLL_INTERVAL: u64 = 5;

/// Dex's user code alphabet: consonants only, so that no word can be spelled.
const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";

/// Eight letters of the alphabet, `XXXX-XXXX`.
fn user_code() -> String {
    let mut letters = String::with_capacity(9);
    while letters.len() < 9 {
        let mut byte = [0u8; 1];
        aws_lc_rs::rand::fill(&mut byte).expect("the system random number generator failed");
        // 240 is a multiple of 20: no bias.
        if byte[0] < 240 {
            if letters.len() == 4 {
                letters.push('-');
            }
            letters.push(char::from(USER_CODE_ALPHABET[usize::from(byte[0] % 20)]));
        }
    }
    letters
}

/// `POST {issuer}/device/code`.
pub(crate) async fn code(State(idp): State<Arc<Idp>>, body: Bytes) -> Result<Response, Error> {
    let params = Params::parse(&body).map_err(|name| {
        Error::token(
            "invalid_request",
            format!("Parameter `{name}` was sent more than once."),
        )
    })?;
    let method_name = params.get("code_challenge_method").unwrap_or("plain");
    let method = Method::parse(method_name).ok_or_else(|| {
        Error::token(
            "invalid_request",
            format!("Unsupported PKCE challenge method ({method_name:?})."),
        )
    })?;
    let pkce = params.get("code_challenge").map(|value| Challenge {
        value: value.to_owned(),
        method,
    });
    let mut scopes: Vec<String> = params
        .get("scope")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if scopes.is_empty() {
        scopes.push("openid".into());
    }
    let client_id = params.get("client_id").unwrap_or_default().to_owned();
    tracing::info!(%client_id, scopes = %scopes.join(" "), "device authorization request");
    let now = Instant::now();
    let lifetime = idp.config.device_lifetime;
    let device = DeviceRequest {
        user_code: user_code(),
        device_code: random_token(32),
        client_id,
        client_secret: params.get("client_secret").map(str::to_owned),
        scopes,
        resources: params.all("resource"),
        pkce,
        expires_at: now + lifetime,
        last_poll: now,
        poll_interval: 0,
        token: None,
    };
    let verification = idp.config.endpoint("/device");
    let complete = {
        let mut url = url::Url::parse(&verification).map_err(|_| Error::Internal {
            context: "verification URI",
        })?;
        url.query_pairs_mut()
            .append_pair("user_code", &device.user_code);
        url.to_string()
    };
    let body = json!({
        "device_code": device.device_code,
        "user_code": device.user_code,
        "verification_uri": verification,
        "verification_uri_complete": complete,
        "expires_in": lifetime.as_secs(),
        "interval": POLL_INTERVAL,
    });
    idp.store.insert_device(device);
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `GET {issuer}/device`: the page where the user types the code.
pub(crate) async fn page(State(idp): State<Arc<Idp>>, RawQuery(query): RawQuery) -> Response {
    let query = Params::parse(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let invalid = query.get("invalid") == Some("true");
    html::device_page(
        &idp.path("/device/auth/verify_code"),
        query.get("user_code").unwrap_or_default(),
        invalid,
    )
}

/// `POST {issuer}/device/auth/verify_code`: on to the login for a known code.
pub(crate) async fn verify(State(idp): State<Arc<Idp>>, body: Bytes) -> Result<Response, Error> {
    let params = Params::parse(&body).unwrap_or_default();
    let user_code = params
        .get("user_code")
        .ok_or_else(|| Error::page(StatusCode::BAD_REQUEST, "No user code received"))?
        .trim()
        .to_ascii_uppercase();
    let Some(device) = idp.store.device_by_user_code(&user_code) else {
        return Ok(html::device_page(
            &idp.path("/device/auth/verify_code"),
            &user_code,
            true,
        ));
    };
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("client_id", &device.client_id);
    query.append_pair(
        "client_secret",
        device.client_secret.as_deref().unwrap_or_default(),
    );
    query.append_pair("state", &device.user_code);
    query.append_pair("response_type", "code");
    query.append_pair("redirect_uri", DEVICE_CALLBACK);
    query.append_pair("scope", &device.scopes.join(" "));
    // With `--resource-audience`, the resources the device asked for (RFC 8707).
    for resource in &device.resources {
        query.append_pair("resource", resource);
    }
    let target = format!("{}?{}", idp.path("/auth"), query.finish());
    Ok((StatusCode::FOUND, [(header::LOCATION, target)]).into_response())
}

/// `GET {issuer}/device/callback`: the login came back; the device's tokens are made.
pub(crate) async fn callback(
    State(idp): State<Arc<Idp>>,
    RawQuery(query): RawQuery,
) -> Result<Response, Error> {
    let query = Params::parse(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let (Some(user_code), Some(code_value)) = (query.get("state"), query.get("code")) else {
        return Err(Error::page(
            StatusCode::BAD_REQUEST,
            "Request was missing parameters",
        ));
    };
    let CodeLookup::Found(code) = idp.store.code(code_value) else {
        return Err(Error::page(
            StatusCode::BAD_REQUEST,
            "Invalid or expired auth code.",
        ));
    };
    if code.expires_at <= Instant::now() {
        return Err(Error::page(
            StatusCode::BAD_REQUEST,
            "Invalid or expired auth code.",
        ));
    }
    let device = idp
        .store
        .device_by_user_code(user_code)
        .ok_or_else(|| Error::page(StatusCode::BAD_REQUEST, "Invalid or expired user code."))?;
    let client = idp
        .client(&device.client_id)
        .ok_or_else(|| Error::token("invalid_client", "Invalid client credentials."))?;
    let secret_ok = match device.client_secret.as_deref() {
        None => client.public,
        Some(secret) => !client.public && client.secret_matches(secret),
    };
    if !secret_ok {
        return Err(Error::token(
            "invalid_client",
            "Invalid client credentials.",
        ));
    }
    let resources = code.grant.resources.clone();
    let tokens = exchange(&idp, code_value, *code, &resources, None).map_err(|e| {
        tracing::info!(error = ?e, "device code exchange failed");
        Error::page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Failed to exchange auth code.",
        )
    })?;
    let tokens = serde_json::to_value(tokens).map_err(|_| Error::Internal {
        context: "token response",
    })?;
    let stored = idp.store.with_device(&device.device_code, |d| {
        if d.token.is_some() || d.expires_at <= Instant::now() {
            return false;
        }
        d.token = Some(tokens);
        true
    });
    if stored != Some(true) {
        return Err(Error::page(
            StatusCode::BAD_REQUEST,
            "Invalid or expired device code.",
        ));
    }
    let name = client.name.unwrap_or(client.id);
    Ok(html::device_success_page(&name))
}

/// `POST {issuer}/device/token`: Dex's deprecated polling endpoint.
pub(crate) async fn deprecated_token(
    State(idp): State<Arc<Idp>>,
    body: Bytes,
) -> Result<Response, Error> {
    let params = Params::parse(&body).map_err(|_| Error::token("invalid_request", ""))?;
    if params.get("grant_type") != Some(DEVICE_CODE_GRANT) {
        return Err(Error::token("invalid_grant", ""));
    }
    token(&idp, &params)
}

/// The device code grant at the token endpoint (no client authentication, as in Dex).
pub(crate) fn token(idp: &Idp, params: &Params) -> Result<Response, Error> {
    let device_code = params
        .get("device_code")
        .ok_or_else(|| Error::token("invalid_request", "No device code received"))?;
    let now = Instant::now();
    let state = idp
        .store
        .with_device(device_code, |d| {
            if d.expires_at <= now {
                return Err(Error::token("expired_token", ""));
            }
            if let Some(tokens) = &d.token {
                return Ok((tokens.clone(), d.pkce.clone()));
            }
            let early = now < d.last_poll + Duration::from_secs(d.poll_interval);
            d.poll_interval = if early {
                d.poll_interval + POLL_INTERVAL
            } else {
                POLL_INTERVAL
            };
            d.last_poll = now;
            Err(Error::token(
                if early {
                    "slow_down"
                } else {
                    "authorization_pending"
                },
                "",
            ))
        })
        .ok_or_else(|| Error::token("invalid_request", "Invalid Device code."))?;
    let (tokens, pkce) = state?;
    match (pkce, params.get("code_verifier")) {
        (Some(challenge), Some(verifier)) => {
            if !challenge.verify(verifier) {
                return Err(Error::token("invalid_grant", "Invalid code_verifier."));
            }
        }
        (None, Some(_)) => {
            return Err(Error::token(
                "invalid_request",
                "No PKCE flow started. Cannot check code_verifier.",
            ));
        }
        (Some(_), None) => {
            return Err(Error::token(
                "invalid_grant",
                "Expecting parameter code_verifier in PKCE flow.",
            ));
        }
        (None, None) => {}
    }
    Ok(Json(tokens).into_response())
}
