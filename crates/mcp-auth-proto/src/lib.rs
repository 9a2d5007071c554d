//! Wire types and pure logic for OAuth 2.0 authorization in the Model Context Protocol.
//!
//! Everything here is shared by the resource server (`mcp-resource-server`), the client
//! (`mcp-auth-client`) and the local authorization server (`dev-idp`, for its metadata
//! document), and does no I/O: serde types for the documents that travel between them,
//! and the small algorithms the specifications define on top of them. The test crates
//! use it to read what the servers answer as a client would.
//!
//! | module | what it holds | specification |
//! |---|---|---|
//! | [`prm`] | Protected Resource Metadata | [RFC 9728](https://www.rfc-editor.org/rfc/rfc9728) |
//! | [`metadata`] | Authorization server metadata | [RFC 8414](https://www.rfc-editor.org/rfc/rfc8414), OpenID Connect Discovery |
//! | [`challenge`] | `WWW-Authenticate` parsing and formatting | [RFC 9110 §11.6.1](https://www.rfc-editor.org/rfc/rfc9110#section-11.6.1), [RFC 6750 §3](https://www.rfc-editor.org/rfc/rfc6750#section-3) |
//! | [`token`] | Token and error responses | [RFC 6749 §5](https://www.rfc-editor.org/rfc/rfc6749#section-5) |
//! | [`registration`] | Dynamic client registration | [RFC 7591](https://www.rfc-editor.org/rfc/rfc7591) |
//! | [`scope`] | Scope sets | [RFC 6749 §3.3](https://www.rfc-editor.org/rfc/rfc6749#section-3.3) |
//! | [`wellknown`] | Well-known URLs, canonical resource URIs | RFC 8414 §3, RFC 9728 §3, [RFC 8707](https://www.rfc-editor.org/rfc/rfc8707) |
//! | [`origin`] | Matching an `Origin` against the allowed ones | [RFC 6454](https://www.rfc-editor.org/rfc/rfc6454) |
//! | [`secret`] | Newtypes for tokens and secrets that never print | |

pub mod challenge;
pub mod metadata;
pub mod origin;
pub mod prm;
pub mod registration;
pub mod scope;
pub mod secret;
pub mod token;
pub mod wellknown;

pub use challenge::{BearerChallenge, BearerError, Challenge};
pub use metadata::AuthorizationServerMetadata;
pub use prm::ProtectedResourceMetadata;
pub use scope::Scopes;
pub use secret::{AccessToken, ClientSecret, IdToken, RefreshToken};
pub use token::{ErrorResponse, TokenResponse};
