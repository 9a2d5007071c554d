//! The OIDC userinfo endpoint (`{issuer}/userinfo`): the user's claims for a valid access
//! token from this server, sent in the `Authorization: Bearer` header only.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use serde_json::{Value, json};

use crate::error::Error;
use crate::state::Idp;
use crate::tokens::Claims;

/// `GET`/`POST {issuer}/userinfo`.
pub(crate) async fn get(
    State(idp): State<Arc<Idp>>,
    headers: HeaderMap,
) -> Result<Json<Value>, Error> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| Error::Bearer {
            description: "A bearer token is required.".into(),
        })?;
    let claims: Claims = idp
        .keys
        .verify(token, &idp.config.issuer_str())
        .ok_or_else(|| Error::Bearer {
            description: "The token is invalid or expired.".into(),
        })?;
    let mut out = json!({ "sub": claims.sub });
    if let Some(email) = claims.email {
        out["email"] = json!(email);
        out["email_verified"] = json!(claims.email_verified.unwrap_or(false));
    }
    if let Some(groups) = claims.groups {
        out["groups"] = json!(groups);
    }
    if let Some(name) = claims.name {
        out["name"] = json!(name);
    }
    if let Some(preferred) = claims.preferred_username {
        out["preferred_username"] = json!(preferred);
    }
    Ok(Json(out))
}
