//! Authorization server metadata ([RFC 8414](https://www.rfc-editor.org/rfc/rfc8414)),
//! which is also the shape of an OpenID Connect discovery document.
//!
//! # Security
//! A client MUST check that the `issuer` in a fetched document equals the issuer it
//! derived the metadata URL from (RFC 8414 §3.3); [`AuthorizationServerMetadata::check_issuer`]
//! does that comparison.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Authorization server metadata (RFC 8414 §2; OpenID Connect Discovery 1.0 §3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthorizationServerMetadata {
    /// The authorization server's issuer identifier (REQUIRED).
    pub issuer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Present when the server accepts dynamic client registration (RFC 7591).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// REQUIRED by RFC 8414, though some servers omit it; absent reads as empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_types_supported: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_modes_supported: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grant_types_supported: Vec<String>,
    /// Absent means `client_secret_basic` only (RFC 8414 §2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// Absent means the server does not announce PKCE support (RFC 8414 §2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub code_challenge_methods_supported: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub id_token_signing_alg_values_supported: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_types_supported: Vec<String>,
    /// The server sends `iss` in authorization responses ([RFC 9207](https://www.rfc-editor.org/rfc/rfc9207)).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub authorization_response_iss_parameter_supported: bool,
    /// The server accepts an https URL naming a Client ID Metadata Document as `client_id`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub client_id_metadata_document_supported: bool,
    /// Members this type does not name, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `issuer` of a metadata document differs from the issuer it was fetched for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("authorization server metadata names issuer {found:?}, expected {expected:?}")]
pub struct IssuerMismatch {
    pub expected: String,
    pub found: String,
}

impl AuthorizationServerMetadata {
    /// A document for `issuer` with no other member set.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            authorization_endpoint: None,
            token_endpoint: None,
            jwks_uri: None,
            registration_endpoint: None,
            userinfo_endpoint: None,
            revocation_endpoint: None,
            introspection_endpoint: None,
            scopes_supported: Vec::new(),
            response_types_supported: Vec::new(),
            response_modes_supported: Vec::new(),
            grant_types_supported: Vec::new(),
            token_endpoint_auth_methods_supported: Vec::new(),
            code_challenge_methods_supported: Vec::new(),
            id_token_signing_alg_values_supported: Vec::new(),
            subject_types_supported: Vec::new(),
            authorization_response_iss_parameter_supported: false,
            client_id_metadata_document_supported: false,
            extra: Map::new(),
        }
    }

    /// Whether the server announces PKCE with `S256` (RFC 7636), which MCP requires.
    #[must_use]
    pub fn supports_pkce_s256(&self) -> bool {
        self.code_challenge_methods_supported
            .iter()
            .any(|m| m == "S256")
    }

    /// Whether `method` may be used at the token endpoint. An absent list means
    /// `client_secret_basic` (RFC 8414 §2).
    #[must_use]
    pub fn supports_token_auth_method(&self, method: &str) -> bool {
        if self.token_endpoint_auth_methods_supported.is_empty() {
            method == "client_secret_basic"
        } else {
            self.token_endpoint_auth_methods_supported
                .iter()
                .any(|m| m == method)
        }
    }

    /// Whether the `grant_type` is supported. An absent list means
    /// `authorization_code` and `implicit` (RFC 8414 §2).
    #[must_use]
    pub fn supports_grant_type(&self, grant: &str) -> bool {
        if self.grant_types_supported.is_empty() {
            matches!(grant, "authorization_code" | "implicit")
        } else {
            self.grant_types_supported.iter().any(|g| g == grant)
        }
    }

    /// RFC 8414 §3.3: the `issuer` member must be identical to the issuer identifier
    /// the metadata URL was built from. The comparison is exact (no normalisation).
    ///
    /// # Errors
    /// [`IssuerMismatch`] when they differ.
    pub fn check_issuer(&self, expected: &str) -> Result<(), IssuerMismatch> {
        if self.issuer == expected {
            Ok(())
        } else {
            Err(IssuerMismatch {
                expected: expected.to_owned(),
                found: self.issuer.clone(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEX: &str = r#"{
      "issuer": "http://localhost:5556/dex",
      "authorization_endpoint": "http://localhost:5556/dex/auth",
      "token_endpoint": "http://localhost:5556/dex/token",
      "jwks_uri": "http://localhost:5556/dex/keys",
      "userinfo_endpoint": "http://localhost:5556/dex/userinfo",
      "device_authorization_endpoint": "http://localhost:5556/dex/device/code",
      "grant_types_supported": ["authorization_code", "refresh_token"],
      "response_types_supported": ["code"],
      "subject_types_supported": ["public"],
      "id_token_signing_alg_values_supported": ["RS256"],
      "code_challenge_methods_supported": ["S256", "plain"],
      "scopes_supported": ["openid", "email", "groups", "profile", "offline_access"],
      "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
      "claims_supported": ["iss", "sub", "aud"]
    }"#;

    #[test]
    fn reads_a_dex_discovery_document() {
        let md: AuthorizationServerMetadata = serde_json::from_str(DEX).unwrap();
        assert!(md.supports_pkce_s256());
        assert!(md.registration_endpoint.is_none());
        assert!(md.supports_token_auth_method("client_secret_post"));
        assert!(!md.supports_token_auth_method("none"));
        assert!(md.supports_grant_type("refresh_token"));
        assert!(md.extra.contains_key("device_authorization_endpoint"));
        assert!(md.check_issuer("http://localhost:5556/dex").is_ok());
        assert!(md.check_issuer("http://localhost:5556/dex/").is_err());
    }

    #[test]
    fn defaults_follow_rfc_8414() {
        let md: AuthorizationServerMetadata =
            serde_json::from_str(r#"{"issuer":"https://as"}"#).unwrap();
        assert!(!md.supports_pkce_s256());
        assert!(md.supports_token_auth_method("client_secret_basic"));
        assert!(!md.supports_token_auth_method("none"));
        assert!(md.supports_grant_type("authorization_code"));
        assert!(!md.supports_grant_type("refresh_token"));
        assert!(!md.client_id_metadata_document_supported);
    }

    #[test]
    fn unknown_members_round_trip_exactly() {
        // An integer past u64 becomes a float; it must read back as the same float.
        let json = r#"{"issuer":"https://as","x":{"n":[166666666666666666666666666666666666666666,2.5,-3,null]}}"#;
        let md: AuthorizationServerMetadata = serde_json::from_str(json).unwrap();
        let again: AuthorizationServerMetadata =
            serde_json::from_slice(&serde_json::to_vec(&md).unwrap()).unwrap();
        assert_eq!(again, md);
    }

    #[test]
    fn issuer_is_required() {
        assert!(serde_json::from_str::<AuthorizationServerMetadata>("{}").is_err());
    }
}
