//! An MCP server that is only an OAuth 2.0 resource server.
//!
//! It serves MCP over Streamable HTTP (`/mcp`, through rmcp) and the legacy HTTP+SSE
//! transport (`/sse` + `/messages`), publishes Protected Resource Metadata (RFC 9728),
//! and validates JWT access tokens issued by an external authorization server against
//! its JWKS. The pieces are reusable on their own:
//!
//! - [`auth::AuthLayer`]: a tower layer putting bearer authorization in front of any
//!   service; [`auth::VerifiedClaims`] is the extractor handlers use;
//! - [`auth::Validator`] and [`auth::JwksCache`]: token validation and the key cache;
//! - [`server::app`] / [`server::serve`]: the whole server, from a [`config::Config`];
//! - [`cli`]: the `resource-server` command line.

pub mod auth;
pub mod check;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod cookie_store;
pub mod error;
pub mod fixtures;
pub mod host;
pub mod mcp;
pub mod mcp_session;
pub mod origin;
pub mod prm;
pub mod request_span;
pub mod server;
pub mod session;
pub mod sse;
pub mod stream_limit;
pub mod web;

pub use config::Config;
pub use server::{serve, serve_with_shutdown};
