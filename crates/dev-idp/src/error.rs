//! The one place where errors become HTTP responses.
//!
//! Where an OAuth error goes depends on how far a request got: before the client and its
//! redirect URI are known good, the user sees a page (redirecting to an unchecked URI would
//! make this server an open redirector); after that, errors go back to the client's
//! redirect URI (RFC 6749 §4.1.2.1). The token endpoint answers JSON (RFC 6749 §5.2), the
//! registration endpoint RFC 7591 §3.2.2 JSON, the userinfo endpoint Dex's `access_denied`.
//! Descriptions are fixed sentences or echo request values, never a token or secret.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use url::Url;

use crate::html;

/// An error answer of any endpoint.
#[derive(Debug)]
pub(crate) enum Error {
    /// Shown to the user as an HTML page.
    Page { status: StatusCode, message: String },
    /// Sent to the client's (already validated) redirect URI.
    Redirect {
        redirect_uri: String,
        error: &'static str,
        description: String,
        state: Option<String>,
        iss: Option<String>,
    },
    /// The token endpoint's JSON error.
    Token {
        error: &'static str,
        description: String,
        /// The client tried HTTP Basic authentication (answer with a Basic challenge).
        basic: bool,
    },
    /// The token endpoint's `use_dpop_nonce` (RFC 9449 §8): 400 with a fresh nonce.
    DpopNonce { nonce: String },
    /// The registration endpoint's JSON error.
    Registration {
        error: &'static str,
        description: String,
    },
    /// The userinfo endpoint's refusal, as Dex answers it: `access_denied`, 401 with a
    /// bare `Bearer` challenge when no bearer token was sent, 403 when it is invalid.
    Bearer { sent: bool },
    /// A failure of this server (logged with its cause, answered without it).
    Internal { context: &'static str },
}

impl Error {
    pub(crate) fn page(status: StatusCode, message: impl Into<String>) -> Self {
        Self::Page {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn token(error: &'static str, description: impl Into<String>) -> Self {
        Self::Token {
            error,
            description: description.into(),
            basic: false,
        }
    }

    pub(crate) fn registration(error: &'static str, description: impl Into<String>) -> Self {
        Self::Registration {
            error,
            description: description.into(),
        }
    }
}

fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Self::Page { status, message } => {
                tracing::info!(%status, %message, "request refused");
                (status, html::error_page(&message)).into_response()
            }
            Self::Redirect {
                redirect_uri,
                error,
                description,
                state,
                iss,
            } => {
                tracing::info!(error, %description, "authorization request refused");
                let Ok(mut url) = Url::parse(&redirect_uri) else {
                    return (
                        StatusCode::BAD_REQUEST,
                        html::error_page("Invalid redirect_uri."),
                    )
                        .into_response();
                };
                {
                    let mut query = url.query_pairs_mut();
                    query.append_pair("error", error);
                    query.append_pair("error_description", &description);
                    if let Some(state) = &state {
                        query.append_pair("state", state);
                    }
                    if let Some(iss) = &iss {
                        query.append_pair("iss", iss);
                    }
                }
                Redirect::to(url.as_str()).into_response()
            }
            Self::Token {
                error,
                description,
                basic,
            } => {
                tracing::info!(error, %description, "token request refused");
                let status = match error {
                    "invalid_client" => StatusCode::UNAUTHORIZED,
                    "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
                    _ => StatusCode::BAD_REQUEST,
                };
                let mut body = serde_json::json!({"error": error});
                if !description.is_empty() {
                    body["error_description"] = description.into();
                }
                let mut response = no_store((status, axum::Json(body)).into_response());
                if basic && status == StatusCode::UNAUTHORIZED {
                    response.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Basic realm=\"token\""),
                    );
                }
                response
            }
            Self::DpopNonce { nonce } => {
                tracing::info!("token request without a current DPoP nonce");
                let body = serde_json::json!({
                    "error": "use_dpop_nonce",
                    "error_description": "Authorization server requires nonce in DPoP proof"
                });
                let mut response =
                    no_store((StatusCode::BAD_REQUEST, axum::Json(body)).into_response());
                if let Ok(value) = HeaderValue::from_str(&nonce) {
                    response.headers_mut().insert("dpop-nonce", value);
                }
                response
            }
            Self::Registration { error, description } => {
                tracing::info!(error, %description, "registration refused");
                let body = serde_json::json!({"error": error, "error_description": description});
                no_store((StatusCode::BAD_REQUEST, axum::Json(body)).into_response())
            }
            Self::Internal { context } => {
                tracing::error!(context, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
            }
            Self::Bearer { sent } => {
                let body = serde_json::json!({"error": "access_denied", "error_description": "Invalid bearer token."});
                if sent {
                    return (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
                }
                (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Bearer")],
                    axum::Json(body),
                )
                    .into_response()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_errors_keep_the_client_query_and_add_state() {
        let response = Error::Redirect {
            redirect_uri: "http://127.0.0.1:9/cb?x=1".into(),
            error: "invalid_scope",
            description: "Unrecognized scope(s) [\"nope\"]".into(),
            state: Some("s t".into()),
            iss: None,
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let location = response.headers()[header::LOCATION].to_str().unwrap();
        let url = Url::parse(location).unwrap();
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(pairs[0], ("x".into(), "1".into()));
        assert_eq!(pairs[1], ("error".into(), "invalid_scope".into()));
        assert_eq!(pairs[3], ("state".into(), "s t".into()));
    }

    #[test]
    fn token_errors_have_rfc6749_statuses() {
        let r = Error::token("invalid_grant", "x").into_response();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
        let r = Error::Token {
            error: "invalid_client",
            description: "x".into(),
            basic: true,
        }
        .into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(r.headers().contains_key(header::WWW_AUTHENTICATE));
    }
}
