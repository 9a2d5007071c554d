//! Bearer- and DPoP-token authorization: JWKS cache, JWT validation, token
//! introspection, DPoP proofs and their replay cache, the tower layer, the claims
//! extractor and per-tool scope checks.

pub mod claims;
pub mod dpop;
pub mod introspection;
pub mod jwks;
pub mod layer;
pub mod replay;
pub mod stream_expiry;
pub mod tool_scope;
pub mod validator;
pub mod verify;

pub use claims::{Principal, VerifiedClaims};
pub use dpop::{DpopConfig, DpopPolicy, DpopVerifier};
pub use introspection::{IntrospectionConfig, Introspector};
pub use jwks::{JwksCache, JwksConfig, JwksSource};
pub use layer::{AuthLayer, AuthMethod, AuthService, AuthorizedUntil};
pub use mcp_auth_proto::scope::Scopes;
pub use tool_scope::ToolScopePolicy;
pub use validator::{ValidationError, Validator, ValidatorConfig};
pub use verify::VerifyToken;
