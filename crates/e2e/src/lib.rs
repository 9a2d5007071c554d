//! Harness for the interoperability tests: third-party peers run as child processes,
//! and failures that say which peer and which step went wrong.
//!
//! The peers are Node.js scripts under `interop/` (an MCP-ready authorization server on
//! `oidc-provider`, a client and a server on the official TypeScript MCP SDK), installed
//! at pinned versions from `interop/package-lock.json` with `npm ci --prefix interop`.
//! [`node`] finds and starts them; [`scenario`] runs the steps of a test and reports a
//! failure with the peer, the step and the peers' recent output.

pub mod node;
pub mod scenario;
