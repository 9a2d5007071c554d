//! Integration tests of the resource server: real sockets on 127.0.0.1, a test
//! authorization server serving OIDC metadata and a JWKS, tokens signed at test time.

mod cluster;
mod cluster_measure;
mod connections;
mod fixture;
mod introspection;
mod layer;
mod logs;
mod mcp_http;
mod prm;
mod sse;
mod streams;
mod tokens;
mod web;
