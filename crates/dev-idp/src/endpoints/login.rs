//! The password login form and the approval page (Dex's local password connector).
//!
//! `GET {issuer}/auth/local/login?req=<id>` shows the form; the POST checks the bcrypt
//! hash from `staticPasswords`. The only link between the form and the authorization
//! request is the opaque, unguessable request id, bound server-side. Unless
//! `oauth2.skipApprovalScreen` is set, `{issuer}/approval` then asks for consent.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use crate::endpoints::authorize::complete;
use crate::error::Error;
use crate::html;
use crate::params::Params;
use crate::state::Idp;
use crate::store::{AuthRequest, User};

const EXPIRED: &str =
    "This login request is unknown or has expired. Go back to the application and start again.";

fn request_id(raw: &[u8]) -> Result<(Params, String), Error> {
    let params = Params::parse(raw)
        .map_err(|_| Error::page(StatusCode::BAD_REQUEST, "Malformed request."))?;
    let id = params
        .get("req")
        .ok_or_else(|| Error::page(StatusCode::BAD_REQUEST, EXPIRED))?
        .to_owned();
    Ok((params, id))
}

fn pending(idp: &Idp, id: &str) -> Result<AuthRequest, Error> {
    idp.store
        .request(id)
        .ok_or_else(|| Error::page(StatusCode::BAD_REQUEST, EXPIRED))
}

fn client_name(idp: &Idp, request: &AuthRequest) -> String {
    idp.client(&request.client_id)
        .and_then(|c| c.name)
        .unwrap_or_else(|| request.client_id.clone())
}

/// `GET {issuer}/auth/local/login`.
pub(crate) async fn form(
    State(idp): State<Arc<Idp>>,
    RawQuery(query): RawQuery,
) -> Result<Response, Error> {
    let (_, id) = request_id(query.unwrap_or_default().as_bytes())?;
    let request = pending(&idp, &id)?;
    let action = idp.path("/auth/local/login");
    Ok(html::login_page(&action, &id, &client_name(&idp, &request), "", None).into_response())
}

/// `POST {issuer}/auth/local/login`.
pub(crate) async fn submit(State(idp): State<Arc<Idp>>, body: Bytes) -> Result<Response, Error> {
    let (params, id) = request_id(&body)?;
    let request = pending(&idp, &id)?;
    let login = params.get("login").unwrap_or_default().to_owned();
    let password = params.get("password").unwrap_or_default().to_owned();
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
        let action = idp.path("/auth/local/login");
        let page = html::login_page(
            &action,
            &id,
            &client_name(&idp, &request),
            &login,
            Some("Invalid Email Address and password."),
        );
        return Ok((StatusCode::UNAUTHORIZED, page).into_response());
    };
    let user = User::from(&user);
    tracing::info!(user = %user.email, client_id = %request.client_id, "login succeeded");
    if idp.config.dex.oauth2.skip_approval_screen {
        let request = idp
            .store
            .take_request(&id)
            .ok_or_else(|| Error::page(StatusCode::BAD_REQUEST, EXPIRED))?;
        return Ok(complete(&idp, request, user));
    }
    if !idp.store.set_user(&id, user) {
        return Err(Error::page(StatusCode::BAD_REQUEST, EXPIRED));
    }
    Ok(Redirect::to(&format!("{}?req={id}", idp.path("/approval"))).into_response())
}

/// `GET {issuer}/approval`.
pub(crate) async fn approval_form(
    State(idp): State<Arc<Idp>>,
    RawQuery(query): RawQuery,
) -> Result<Response, Error> {
    let (_, id) = request_id(query.unwrap_or_default().as_bytes())?;
    let request = pending(&idp, &id)?;
    if request.user.is_none() {
        return Err(Error::page(StatusCode::BAD_REQUEST, EXPIRED));
    }
    let action = idp.path("/approval");
    Ok(
        html::approval_page(&action, &id, &client_name(&idp, &request), &request.scopes)
            .into_response(),
    )
}

/// `POST {issuer}/approval`.
pub(crate) async fn approval_submit(
    State(idp): State<Arc<Idp>>,
    body: Bytes,
) -> Result<Response, Error> {
    let (params, id) = request_id(&body)?;
    let logged_in = pending(&idp, &id)?.user.is_some();
    if !logged_in {
        return Err(Error::page(StatusCode::BAD_REQUEST, EXPIRED));
    }
    let request = idp
        .store
        .take_request(&id)
        .ok_or_else(|| Error::page(StatusCode::BAD_REQUEST, EXPIRED))?;
    let Some(user) = request.user.clone() else {
        return Err(Error::page(StatusCode::BAD_REQUEST, EXPIRED));
    };
    if params.get("approval") == Some("approve") {
        return Ok(complete(&idp, request, user));
    }
    let config = &idp.config;
    Err(Error::Redirect {
        redirect_uri: request.redirect_uri,
        error: "access_denied",
        description: "The user denied the request.".into(),
        state: request.state,
        iss: config
            .features
            .issuer_in_response
            .then(|| config.issuer_str()),
    })
}
