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
//! - [`wrk`], [`load`]: the HTTP load; [`sse`], [`rotation`], [`client`], [`verify`]:
//!   the other cases; [`dpop`]: DPoP-bound load and the replay cache's memory;
//!   [`scale`]: several instances behind nginx sharing Redis;
//!   [`report`], [`chart`]: the output.

pub mod authz;
pub mod chart;
pub mod cli;
pub mod client;
pub mod component;
pub mod dpop;
pub mod harness;
pub mod keys;
pub mod load;
pub mod procs;
pub mod raw;
pub mod report;
pub mod rotation;
pub mod scale;
pub mod sse;
pub mod verify;
pub mod wrk;
