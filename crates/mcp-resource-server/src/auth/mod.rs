//! Bearer- and DPoP-token authorization: JWKS cache, JWT validation, DPoP proofs and
//! their replay cache, the tower layer, the claims extractor and per-tool scope checks.

pub mod claims;
pub mod dpop;
pub mod jwks;
pub mod layer;
pub mod replay;
pub mod stream_expiry;
pub mod tool_scope;
pub mod validator;

pub use claims::{Principal, VerifiedClaims};
pub use dpop::{DpopConfig, DpopPolicy, DpopVerifier};
pub use jwks::{JwksCache, JwksSource};
pub use layer::{AuthLayer, AuthMethod, AuthorizedUntil, CookieAuth};
pub use tool_scope::ToolScopePolicy;
pub use validator::{ValidationError, Validator, ValidatorConfig};
