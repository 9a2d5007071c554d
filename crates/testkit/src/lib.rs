//! Shared test machinery for the workspace: a test authorization server on a real
//! loopback socket (metadata, JWKS, tokens minted with chosen claims, algorithm and
//! `kid`), the servers a client meets in client tests ([`client_side`]), fixed and
//! generated signing keys, an SSE reader, small HTTP helpers and a
//! runner for real processes.
//!
//! ```no_run
//! # async fn example() {
//! use std::time::Duration;
//! let auth = testkit::TestAuthServer::start().await;
//! let token = auth
//!     .token()
//!     .aud("http://127.0.0.1:3000/mcp")
//!     .scope("mcp:tools")
//!     .expires_in(Duration::from_secs(60))
//!     .sign();
//! # let _ = (auth.issuer(), auth.jwks_url(), token);
//! # }
//! ```

pub mod client_side;
#[cfg(feature = "dex")]
pub mod dex;
pub mod http;
pub mod introspection;
pub mod keys;
pub mod legacy_sse;
pub mod node;
pub mod process;
pub mod server;
pub mod sse;

pub use introspection::IntrospectionEndpoint;
pub use keys::TestKey;
pub use server::{JwksMode, SLOW_JWKS, TestAuthServer, TestAuthServerBuilder, TokenBuilder, now};
pub use sse::{SseEvent, SseReader};
