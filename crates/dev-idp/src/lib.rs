//! A local authorization server that reads Dex's `dex-config.yaml` and, by default,
//! behaves as Dex does, for running the MCP authorization flow where Docker and Dex are
//! not available. Switches turn on what Dex lacks (RFC 8414 metadata, RFC 8707
//! `resource` → `aud`, RFC 7591 registration, required S256, RFC 9068 access tokens with
//! extra scopes, key rotation, RFC 9449 DPoP-bound tokens, the client credentials grant, `private_key_jwt` client
//! authentication, and both parts of enterprise-managed authorization: ID-JAGs by token
//! exchange and the JWT bearer grant), so the effect of each on MCP clients can be tried.
//!
//! Start it in-process with [`DevIdp`] (or [`serve`]) on any listener; the `dev-idp`
//! binary is [`cli::run`].
//!
//! # Security
//! For local development only: state lives in memory, registration is open to anyone,
//! and the auto-login switch logs a user in without a password.

pub mod cli;
pub mod config;
pub mod duration;
pub mod keys;
pub mod server;
pub mod settings;

mod assertion;
mod clients;
mod cors;
mod dpop;
mod endpoints;
mod error;
mod html;
mod params;
mod pkce;
mod remote_keys;
mod state;
mod store;
mod time;
mod tokens;

pub use config::{ConfigError, DexConfig};
pub use server::{DevIdp, ServerError, serve};
pub use settings::{Features, IdpConfig, TrustedIssuer};
