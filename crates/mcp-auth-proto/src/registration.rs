//! Dynamic client registration ([RFC 7591](https://www.rfc-editor.org/rfc/rfc7591)).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::secret::ClientSecret;

/// Client metadata (RFC 7591 §2): the registration request body, and the part of
/// the response that echoes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientMetadata {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<String>,
    /// `none` for a public client, `client_secret_basic`, `client_secret_post`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grant_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    /// `native` or `web` (OpenID Connect Dynamic Client Registration 1.0 §2); MCP
    /// 2026-07-28 asks clients to send it, and an OIDC server defaults it to `web`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_type: Option<String>,
    /// Space-separated scopes the client may request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The registration response (RFC 7591 §3.2.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientInformation {
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<ClientSecret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id_issued_at: Option<u64>,
    /// 0 means the secret does not expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_expires_at: Option<u64>,
    #[serde(flatten)]
    pub metadata: ClientMetadata,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_round_trip_redacts_secret() {
        let info: ClientInformation = serde_json::from_str(
            r#"{"client_id":"c1","client_secret":"s3cr3t","client_secret_expires_at":0,
                "redirect_uris":["http://127.0.0.1:1234/callback"],"token_endpoint_auth_method":"client_secret_basic",
                "grant_types":["authorization_code","refresh_token"],"logo_uri":"https://x"}"#,
        )
        .unwrap();
        assert_eq!(info.client_id, "c1");
        assert_eq!(info.metadata.redirect_uris.len(), 1);
        assert_eq!(info.metadata.extra["logo_uri"], "https://x");
        assert!(!format!("{info:?}").contains("s3cr3t"));
        let again: ClientInformation =
            serde_json::from_value(serde_json::to_value(&info).unwrap()).unwrap();
        assert_eq!(again, info);
    }
}
