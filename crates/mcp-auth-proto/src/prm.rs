//! OAuth 2.0 Protected Resource Metadata ([RFC 9728](https://www.rfc-editor.org/rfc/rfc9728)).
//!
//! An MCP server publishes this document so that a client can find the authorization
//! server(s) that issue tokens for it. The `resource` member is REQUIRED and MUST be
//! the resource identifier into which the well-known suffix was inserted to build the
//! URL the document was fetched from (RFC 9728 §3.3); see
//! [`crate::wellknown::protected_resource_metadata_url`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The Protected Resource Metadata document (RFC 9728 §2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtectedResourceMetadata {
    /// The protected resource's resource identifier (RFC 9728 §2, REQUIRED).
    pub resource: String,
    /// Issuer identifiers of the authorization servers that can be used with this resource.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_servers: Vec<String>,
    /// The resource's own JWK Set, for signed requests or responses (rarely used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Scope values used in authorization requests to access this resource.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// How a bearer token may be presented (RFC 6750): `header`, `body`, `query`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bearer_methods_supported: Vec<String>,
    /// A human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// A page with human-readable documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_documentation: Option<String>,
    /// JWS algorithms accepted for DPoP proofs (RFC 9728 §2, RFC 9449 §5.1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dpop_signing_alg_values_supported: Vec<String>,
    /// Whether the resource always requires DPoP-bound access tokens (RFC 9728 §2).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dpop_bound_access_tokens_required: bool,
    /// Members this type does not name, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ProtectedResourceMetadata {
    /// A document for `resource` with no other member set.
    pub fn new(resource: impl Into<String>) -> Self {
        Self {
            resource: resource.into(),
            authorization_servers: Vec::new(),
            jwks_uri: None,
            scopes_supported: Vec::new(),
            bearer_methods_supported: Vec::new(),
            resource_name: None,
            resource_documentation: None,
            dpop_signing_alg_values_supported: Vec::new(),
            dpop_bound_access_tokens_required: false,
            extra: Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_keeps_unknown_members() {
        let json = r#"{"resource":"https://mcp.example/mcp","authorization_servers":["https://as.example"],
            "scopes_supported":["mcp:tools"],"bearer_methods_supported":["header"],"x_custom":1}"#;
        let prm: ProtectedResourceMetadata = serde_json::from_str(json).unwrap();
        assert_eq!(prm.resource, "https://mcp.example/mcp");
        assert_eq!(prm.authorization_servers, ["https://as.example"]);
        assert_eq!(prm.extra["x_custom"], 1);
        let back: ProtectedResourceMetadata =
            serde_json::from_value(serde_json::to_value(&prm).unwrap()).unwrap();
        assert_eq!(back, prm);
    }

    #[test]
    fn resource_is_required() {
        assert!(serde_json::from_str::<ProtectedResourceMetadata>("{}").is_err());
    }

    #[test]
    fn empty_members_are_omitted() {
        let json = serde_json::to_value(ProtectedResourceMetadata::new("https://r")).unwrap();
        assert_eq!(json, serde_json::json!({"resource": "https://r"}));
    }
}
