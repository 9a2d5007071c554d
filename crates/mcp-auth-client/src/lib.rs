//! An MCP client that gets itself authorized, then lists and calls tools.
//!
//! Pointed at any MCP server URL, it follows the MCP authorization specification
//! (2025-11-25, with the 2025-03-26 fallbacks) and shows every step:
//!
//! 1. [`discovery`]: the 401 challenge, Protected Resource Metadata (RFC 9728) and the
//!    authorization server's metadata (RFC 8414 / OpenID Connect discovery);
//! 2. [`registration`]: a pre-registered client, a Client ID Metadata Document, or
//!    dynamic registration (RFC 7591);
//! 3. [`authorize`]: the authorization code flow with PKCE S256 ([`pkce`]), `state`,
//!    `resource` (RFC 8707) and `iss` (RFC 9207), through the system browser and the
//!    [`loopback`] listener, or [`headless`]ly;
//! 4. [`token`]: code exchange and refresh; [`grants`]: the grants without a person;
//!    [`dpop`]: DPoP-bound tokens (RFC 9449) and [`credential`]: how a token goes on a
//!    request; [`audience`]: which tokens may go to which server; [`cache`]: tokens
//!    (and DPoP keys) on disk, owner-only;
//! 5. [`connection`]: MCP over Streamable HTTP or legacy SSE ([`mcp`]), with refresh on
//!    401 and step-up on 403 `insufficient_scope`;
//! 6. [`trace`]: the readable account of all of the above.
//!
//! [`audit`] turns the same knowledge around: it checks a server's authorization setup
//! against the specifications and prints a report card.
//!
//! The binary `mcp-client` is [`cli::run`] behind a tracing subscriber.

pub mod audience;
pub mod audit;
pub mod authorize;
pub mod cache;
pub mod cli;
pub mod connection;
pub mod credential;
pub mod device;
pub mod diagram;
pub mod discovery;
pub mod dpop;
pub mod error;
pub mod grants;
pub mod headless;
pub mod http;
pub mod loopback;
pub mod mcp;
pub mod pkce;
pub mod random;
pub mod registration;
pub mod token;
pub mod trace;

mod authorization;
mod body_limit;
mod client_assertion;
mod identity;

pub use connection::{ConnectionOptions, McpConnection, TransportChoice};
pub use error::ClientError;
