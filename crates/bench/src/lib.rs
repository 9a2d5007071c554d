//! The benchmark harness of the workspace.
//!
//! `cargo run --release -p bench` starts the project's resource server (stateless
//! Streamable HTTP, RS256 tokens checked against a JWKS) and the official TypeScript SDK
//! server configured the same way, drives the same bounded `wrk` load at both over
//! loopback, then measures what only the resource server does (thousands of SSE streams,
//! a JWKS key rotation under load), the client's start-up and full flow against the
//! TypeScript SDK client, and JWT verification per algorithm. It prints a table with a
//! PASS/MISS verdict per target and writes `BENCHMARKS.md` with an SVG chart.
//!
//! - [`authz`]: the harness's authorization server (the test kit's, with its issuer at the
//!   root and a generated key) and the tokens it mints for the load;
//! - [`procs`]: the servers under test as child processes, and their memory;
//! - [`wrk`], [`http_load`]: the HTTP load (T1-T3); [`sse_streams`] (T4), [`key_rotation`]
//!   (T5), [`client_flow`] (T6), [`jwt_verify`] (T7): the other cases; [`dpop`]:
//!   DPoP-bound load and the replay cache's memory;
//!   [`scale`]: several instances behind nginx sharing Redis;
//!   [`report`], [`chart`]: the output.

pub mod authz;
pub mod chart;
pub mod cli;
pub mod client_flow;
pub mod component;
pub mod dpop;
pub mod harness;
pub mod http_load;
pub mod jwt_verify;
pub mod key_rotation;
pub mod keys;
pub mod options;
pub mod procs;
pub mod raw;
pub mod report;
pub mod scale;
pub mod sse_streams;
pub mod wrk;
