//! The client identity the flow settles on: its `client_id`, the secret of a
//! confidential client, how it authenticates at the token endpoint and where it came
//! from. `registration.rs` settles it; the cache keeps it with the tokens issued to it,
//! and every token request sends it.

use mcp_auth_proto::ClientSecret;
use serde::{Deserialize, Serialize};

/// How the client authenticates at the token endpoint (RFC 7591 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuthMethod {
    /// A public client: `client_id` in the body, no secret.
    None,
    /// HTTP Basic with the URL-encoded id and secret (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// A JWT assertion signed with the client's private key (RFC 7523 §2.2).
    PrivateKeyJwt,
}

impl TokenAuthMethod {
    /// The RFC 7591 name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            TokenAuthMethod::None => "none",
            TokenAuthMethod::ClientSecretBasic => "client_secret_basic",
            TokenAuthMethod::ClientSecretPost => "client_secret_post",
            TokenAuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }

    /// Parses an RFC 7591 name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(TokenAuthMethod::None),
            "client_secret_basic" => Some(TokenAuthMethod::ClientSecretBasic),
            "client_secret_post" => Some(TokenAuthMethod::ClientSecretPost),
            "private_key_jwt" => Some(TokenAuthMethod::PrivateKeyJwt),
            _ => None,
        }
    }
}

/// Where the client identity came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientSource {
    /// Given by the user (`--client-id`).
    PreRegistered,
    /// A Client ID Metadata Document URL.
    MetadataDocument,
    /// Dynamic client registration (RFC 7591).
    Dynamic,
}

impl std::fmt::Display for ClientSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClientSource::PreRegistered => "pre-registered",
            ClientSource::MetadataDocument => "client ID metadata document",
            ClientSource::Dynamic => "dynamic registration",
        })
    }
}

/// A client identity, as used at the authorization and token endpoints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredClient {
    /// The `client_id`.
    pub client_id: String,
    /// The secret of a confidential client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<ClientSecret>,
    /// How it authenticates at the token endpoint.
    pub auth_method: TokenAuthMethod,
    /// Where it came from.
    pub source: ClientSource,
    /// The redirect URI it was registered with (dynamic registration only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
}
