//! The JSON Web Key Set at `{issuer}/keys`, with `Cache-Control: max-age` bounded by the
//! next scheduled rotation (at most 10 minutes, as Dex sends).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::error::Error;
use crate::state::Idp;

const MAX_AGE_SECS: u64 = 600;
const MIN_AGE_SECS: u64 = 60;

/// `GET {issuer}/keys`.
pub(crate) async fn get(State(idp): State<Arc<Idp>>) -> Result<Response, Error> {
    let jwks = idp.keys.jwks().map_err(|e| {
        tracing::error!(error = %e, "key rotation failed");
        Error::Internal {
            context: "key rotation",
        }
    })?;
    let age = idp
        .keys
        .until_rotation()
        .as_secs()
        .clamp(MIN_AGE_SECS, MAX_AGE_SECS);
    let mut response = Json(jwks).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("max-age={age}, must-revalidate")) {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    Ok(response)
}
