//! OAuth 2.0 authorization for MCP servers: put any rmcp [`ServerHandler`] behind a
//! resource server (RFC 9728, RFC 6750, RFC 9449) that accepts only tokens from your
//! authorization server.
//!
//! [`McpResourceServer`] is the entry point: give it a [`Config`] and a function making
//! your handler, and it serves MCP over Streamable HTTP (`/mcp`) and the legacy
//! HTTP+SSE transport (`/sse` + `/messages`, with a session cookie for browsers),
//! publishes the Protected Resource Metadata, answers `401` with the challenge clients
//! need to find the authorization server, checks `Host` and `Origin`, limits event
//! streams and sessions per principal, and can share its session state between
//! instances through Redis.
//!
//! ```no_run
//! use mcp_resource_server::{Config, McpResourceServer};
//! # #[derive(Clone, Default)] struct MyHandler;
//! # impl rmcp::ServerHandler for MyHandler {}
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::new("http://localhost:8080", "https://idp.example.com");
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! McpResourceServer::new(config, MyHandler::default)
//!     .serve(listener)
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! The pieces are usable on their own, in front of any tower service:
//!
//! - [`auth::AuthLayer`]: bearer (and DPoP) token authorization as a tower layer;
//!   [`auth::VerifiedClaims`] is the extractor handlers read the caller from;
//! - [`auth::Validator`] and [`auth::JwksCache`]: JWT validation and the key cache;
//!   [`auth::Introspector`]: RFC 7662 introspection instead.
//!
//! [`ServerHandler`]: rmcp::ServerHandler

#![warn(missing_docs, unreachable_pub)]

pub mod auth;
pub(crate) mod check;
pub(crate) mod cluster;
pub mod config;
pub(crate) mod connection;
pub(crate) mod cookie_session;
pub(crate) mod cookie_store;
pub mod error;
pub(crate) mod host;
pub(crate) mod in_flight_ids;
pub(crate) mod legacy_sse;
pub(crate) mod mcp_session_owners;
pub(crate) mod origin;
pub(crate) mod prm;
pub(crate) mod request_span;
pub mod server;
pub(crate) mod sse_reply;
pub(crate) mod stream_limit;

pub use config::{Config, ConfigError};
pub use server::{McpResourceServer, ServeError};
