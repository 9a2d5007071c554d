//! The password login form and the approval page (Dex's `handlePasswordLogin` and
//! `handleApproval`).
//!
//! `GET {issuer}/auth/local/login?back=&state=<id>` shows the form, which posts back to
//! the same URL; the POST checks the bcrypt hash from `staticPasswords`. The only link
//! between the form and the authorization request is the opaque, unguessable request id.
//! Unless `oauth2.skipApprovalScreen` is set (and the request did not ask for
//! `approval_prompt=force`), `{issuer}/approval?req=<id>&hmac=<mac>` then asks for consent;
//! the HMAC, keyed per request, keeps anyone who saw the id from approving.

use std::sync::Arc;

use aws_lc_rs::{constant_time, hmac};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::endpoints::authorize::{CONNECTOR, complete};
use crate::error::Error;
use crate::html;
use crate::params::Params;
use crate::state::Idp;
use crate::store::{AuthRequest, User};

fn params(raw: &[u8]) -> Result<Params, Error> {
    Params::parse(raw).map_err(|_| Error::page(StatusCode::BAD_REQUEST, "Malformed request."))
}

/// The pending request named by `state` (Dex's messages).
fn pending(idp: &Idp, connector: &str, query: &Params) -> Result<(String, AuthRequest), Error> {
    let id = query
        .get("state")
        .ok_or_else(|| Error::page(StatusCode::BAD_REQUEST, "User session error."))?;
    let request = idp.store.request(id).ok_or_else(|| {
        Error::page(
            StatusCode::BAD_REQUEST,
            "Requested resource does not exist.",
        )
    })?;
    if connector != CONNECTOR {
        return Err(Error::page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Requested resource does not exist.",
        ));
    }
    Ok((id.to_owned(), request))
}

fn client_name(idp: &Idp, request: &AuthRequest) -> String {
    idp.client(&request.client_id)
        .and_then(|c| c.name)
        .unwrap_or_else(|| request.client_id.clone())
}

fn form_action(idp: &Idp, id: &str) -> String {
    format!("{}/{CONNECTOR}/login?back=&state={id}", idp.path("/auth"))
}

/// `GET {issuer}/auth/{connector}/login`.
pub(crate) async fn form(
    State(idp): State<Arc<Idp>>,
    Path(connector): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, Error> {
    let query = params(query.unwrap_or_default().as_bytes())?;
    let (id, request) = pending(&idp, &connector, &query)?;
    Ok(html::login_page(
        &form_action(&idp, &id),
        &client_name(&idp, &request),
        "",
        None,
    )
    .into_response())
}

/// `POST {issuer}/auth/{connector}/login`.
pub(crate) async fn submit(
    State(idp): State<Arc<Idp>>,
    Path(connector): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Response, Error> {
    let query = params(query.unwrap_or_default().as_bytes())?;
    let (id, request) = pending(&idp, &connector, &query)?;
    let form = params(&body)?;
    let login = form.get("login").unwrap_or_default().to_owned();
    let password = form.get("password").unwrap_or_default().to_owned();
    let user = idp.config.dex.user(&login).cloned();
    let hash = user
        .as_ref()
        .map_or_else(|| idp.dummy_hash(), |u| u.hash.clone());
    let matches = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(false);
    let Some(user) = user.filter(|_| matches) else {
        // The login name is not logged: people type passwords into the wrong field.
        tracing::info!(client_id = %request.client_id, "login failed");
        // Dex shows the form again, with 200.
        return Ok(html::login_page(
            &form_action(&idp, &id),
            &client_name(&idp, &request),
            &login,
            Some("Invalid Email Address and password."),
        ));
    };
    let user = User::from(&user);
    tracing::info!(user = %user.email, client_id = %request.client_id, "login succeeded");
    if idp.config.dex.oauth2.skip_approval_screen && !request.force_approval {
        let request = idp
            .store
            .take_request(&id)
            .ok_or_else(|| Error::page(StatusCode::BAD_REQUEST, "User session error."))?;
        return Ok(complete(&idp, request, user));
    }
    let mac = mac(&request, &id);
    if !idp.store.set_user(&id, user) {
        return Err(Error::page(StatusCode::BAD_REQUEST, "User session error."));
    }
    Ok(Redirect::to(&format!("{}?req={id}&hmac={mac}", idp.path("/approval"))).into_response())
}

/// The HMAC-SHA256 of the request id under the request's key, base64url.
fn mac(request: &AuthRequest, id: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, request.hmac_key.as_bytes());
    URL_SAFE_NO_PAD.encode(hmac::sign(&key, id.as_bytes()).as_ref())
}

/// The logged-in request named by `req`, with a valid `hmac` (Dex's checks and statuses).
fn approved_request(idp: &Idp, params: &Params) -> Result<(String, AuthRequest), Error> {
    let unauthorized = || Error::page(StatusCode::UNAUTHORIZED, "Unauthorized request");
    let given = params.get("hmac").ok_or_else(unauthorized)?;
    let id = params.get("req").unwrap_or_default();
    let request = idp
        .store
        .request(id)
        .ok_or_else(|| Error::page(StatusCode::INTERNAL_SERVER_ERROR, "Database error."))?;
    if request.user.is_none() {
        return Err(Error::page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Login process not yet finalized.",
        ));
    }
    if constant_time::verify_slices_are_equal(mac(&request, id).as_bytes(), given.as_bytes())
        .is_err()
    {
        return Err(unauthorized());
    }
    Ok((id.to_owned(), request))
}

/// `GET {issuer}/approval`.
pub(crate) async fn approval_form(
    State(idp): State<Arc<Idp>>,
    RawQuery(query): RawQuery,
) -> Result<Response, Error> {
    let query = params(query.unwrap_or_default().as_bytes())?;
    let (id, request) = approved_request(&idp, &query)?;
    let action = idp.path("/approval");
    let mac = query.get("hmac").unwrap_or_default();
    Ok(html::approval_page(
        &action,
        &id,
        mac,
        &client_name(&idp, &request),
        &request.scopes,
    )
    .into_response())
}

/// `POST {issuer}/approval`.
pub(crate) async fn approval_submit(
    State(idp): State<Arc<Idp>>,
    body: Bytes,
) -> Result<Response, Error> {
    let form = params(&body)?;
    let (id, _) = approved_request(&idp, &form)?;
    if form.get("approval") != Some("approve") {
        // Dex answers a refusal with an error page, not a redirect to the client.
        idp.store.take_request(&id);
        return Err(Error::page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Approval rejected.",
        ));
    }
    let request = idp
        .store
        .take_request(&id)
        .ok_or_else(|| Error::page(StatusCode::BAD_REQUEST, "User session error."))?;
    let Some(user) = request.user.clone() else {
        return Err(Error::page(StatusCode::BAD_REQUEST, "User session error."));
    };
    Ok(complete(&idp, request, user))
}
