//! Token endpoint responses ([RFC 6749 §5](https://www.rfc-editor.org/rfc/rfc6749#section-5)).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::secret::{AccessToken, IdToken, RefreshToken};

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: AccessToken,
    /// `Bearer` (compared case-insensitively, RFC 6749 §7.1).
    pub token_type: String,
    /// Lifetime in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<RefreshToken>,
    /// The granted scope, when it differs from the requested one (RFC 6749 §5.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<IdToken>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl TokenResponse {
    /// Whether `token_type` is `Bearer`, in any case.
    #[must_use]
    pub fn is_bearer(&self) -> bool {
        self.token_type.eq_ignore_ascii_case("bearer")
    }
}

/// An OAuth 2.0 error response, from the token endpoint (RFC 6749 §5.2) or, as
/// query parameters, from the authorization endpoint (§4.1.2.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_uri: Option<String>,
}

impl ErrorResponse {
    /// An error with a code and a description.
    pub fn new(error: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            error_description: Some(description.into()),
            error_uri: None,
        }
    }
}

impl fmt::Display for ErrorResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.error)?;
        if let Some(d) = &self.error_description {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ErrorResponse {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_redacts() {
        let t: TokenResponse = serde_json::from_str(
            r#"{"access_token":"at-123","token_type":"bearer","expires_in":3600,"refresh_token":"rt-9","scope":"a b","foo":"bar"}"#,
        )
        .unwrap();
        assert!(t.is_bearer());
        assert_eq!(t.expires_in, Some(3600));
        assert_eq!(t.access_token.secret(), "at-123");
        let dbg = format!("{t:?}");
        assert!(!dbg.contains("at-123") && !dbg.contains("rt-9"));
        assert_eq!(t.extra["foo"], "bar");
    }

    #[test]
    fn error_response() {
        let e: ErrorResponse =
            serde_json::from_str(r#"{"error":"invalid_grant","error_description":"code reused"}"#)
                .unwrap();
        assert_eq!(e.to_string(), "invalid_grant: code reused");
        assert_eq!(
            serde_json::to_value(ErrorResponse::new("invalid_scope", "x")).unwrap(),
            serde_json::json!({"error": "invalid_scope", "error_description": "x"})
        );
    }
}
