//! Token introspection (RFC 7662) at `{issuer}/token/introspect`, as Dex's
//! `introspectionhandler.go` serves it: no client authentication; a token that looks like
//! a JWT is checked as an access token, anything else as a refresh token (or, with
//! `--opaque-tokens`, first as an opaque access token); an inactive token is
//! `{"active": false}` with 200. Dex's fields: `client_id`, `sub`, `exp`, `iat`, `nbf`,
//! `username`, `aud`, `iss`, `token_type`, `token_use`, and the user's claims under `ext`.
//! Beyond Dex, a token carrying a `scope` claim (the `--extra-scopes` switch) reports it,
//! and a DPoP-bound token (`--dpop`) its `cnf`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use crate::error::Error;
use crate::params::Params;
use crate::state::Idp;
use crate::store::RefreshRecord;
use crate::tokens::dex_subject;

/// `GET {issuer}/token/introspect`: Dex's answer to any other method.
pub(crate) async fn wrong_method() -> Error {
    Error::token(
        "invalid_request",
        "HTTP method is \"GET\", expected \"POST\".",
    )
}

/// `POST {issuer}/token/introspect`.
pub(crate) async fn post(State(idp): State<Arc<Idp>>, body: Bytes) -> Result<Response, Error> {
    let params = Params::parse(&body).map_err(|name| {
        Error::token(
            "invalid_request",
            format!("Parameter `{name}` was sent more than once."),
        )
    })?;
    if body.is_empty() {
        return Err(Error::token(
            "invalid_request",
            "The POST body can not be empty.",
        ));
    }
    let token = params.get("token").ok_or_else(|| {
        Error::token(
            "invalid_request",
            "The POST body doesn't contain 'token' parameter.",
        )
    })?;
    let answer = if looks_like_jwt(token) {
        idp.verify_access_token(token).map(|c| access(&idp, &c))
    } else if let Some(claims) = idp.store.opaque(token) {
        Some(access(&idp, &claims))
    } else {
        idp.store
            .refresh(token, None, idp.config.refresh_reuse_interval)
            .ok()
            .map(|record| refresh(&idp, &record))
    };
    let mut response = Json(answer.unwrap_or_else(|| json!({"active": false}))).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// Dex's guess: three dot-separated parts whose first two are base64url JSON.
fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts[..2].iter().all(|p| {
            URL_SAFE_NO_PAD
                .decode(p)
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .is_some_and(|v| v.is_object())
        })
}

const EXT: [&str; 7] = [
    "azp",
    "email",
    "email_verified",
    "groups",
    "name",
    "preferred_username",
    "federated_claims",
];

fn access(idp: &Idp, claims: &Value) -> Value {
    let aud = &claims["aud"];
    // Dex's getClientID: `azp` when there are several audiences, else the audience.
    let client_id = claims["azp"]
        .as_str()
        .or_else(|| aud.as_str())
        .or_else(|| {
            aud.as_array()
                .and_then(|a| a.first())
                .and_then(Value::as_str)
        })
        .unwrap_or_default();
    let ext: Map<String, Value> = EXT
        .iter()
        .filter_map(|k| claims.get(*k).map(|v| ((*k).to_owned(), v.clone())))
        .collect();
    let mut out = json!({
        "active": true,
        "client_id": client_id,
        "sub": claims["sub"],
        "exp": claims["exp"],
        "iat": claims["iat"],
        "nbf": claims["iat"],
        "aud": aud,
        "iss": idp.config.issuer_str(),
        "token_type": "Bearer",
        "token_use": "access_token",
        "ext": ext,
    });
    if let Some(username) = claims.get("preferred_username") {
        out["username"] = username.clone();
    }
    if let Some(scope) = claims.get("scope") {
        out["scope"] = scope.clone();
    }
    // A DPoP-bound token's key (RFC 9449 §6.2), so that a resource server verifying an
    // opaque token can check the proof's key. Dex has no DPoP, hence no `cnf`.
    if let Some(cnf) = claims.get("cnf").filter(|c| !c.is_null()) {
        out["cnf"] = cnf.clone();
    }
    out
}

fn refresh(idp: &Idp, record: &RefreshRecord) -> Value {
    let grant = &record.grant;
    let user = &grant.user;
    let issued = grant.auth_time;
    let mut ext = json!({
        "email": user.email,
        "email_verified": true,
        "name": user.username,
    });
    if !user.groups.is_empty() {
        ext["groups"] = json!(user.groups);
    }
    let mut out = json!({
        "active": true,
        "client_id": grant.client_id,
        "sub": dex_subject(&user.user_id, "local"),
        "exp": issued + idp.config.refresh_lifetime.as_secs(),
        "iat": issued,
        "nbf": issued,
        "aud": grant.client_id,
        "iss": idp.config.issuer_str(),
        "token_type": "Bearer",
        "token_use": "refresh_token",
        "ext": ext,
    });
    if let Some(preferred) = &user.preferred_username {
        out["username"] = json!(preferred);
        out["ext"]["preferred_username"] = json!(preferred);
    }
    out
}
