//! The OIDC userinfo endpoint (`{issuer}/userinfo`), as Dex's `handleUserInfo`: every
//! claim of a valid token from this server, which must come in the `Authorization:
//! Bearer` header. No bearer token: 401; an invalid one: 403.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use serde_json::Value;

use crate::error::Error;
use crate::state::Idp;

/// `GET`/`POST {issuer}/userinfo`.
pub(crate) async fn get(
    State(idp): State<Arc<Idp>>,
    headers: HeaderMap,
) -> Result<Json<Value>, Error> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.get(..7)
                .filter(|p| p.eq_ignore_ascii_case("bearer "))
                .map(|_| &v[7..])
        })
        .ok_or(Error::Bearer { sent: false })?;
    let claims: Value = idp
        .verify_access_token(token)
        .ok_or(Error::Bearer { sent: true })?;
    Ok(Json(claims))
}
