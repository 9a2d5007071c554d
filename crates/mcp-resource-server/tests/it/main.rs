//! Integration tests of the library: real sockets on 127.0.0.1, a test authorization
//! server serving OIDC metadata and a JWKS, tokens signed at test time. The whole server
//! runs around the `custom_tools` example's handler; the `resource-server` crate's
//! tests drive it further through the demo tools.

mod cors;
mod custom_tools;
// Shared with the resource-server crate's tests, which use more of it.
#[allow(dead_code, unused_imports)]
mod fixture;
mod layer;
mod prm;
mod request_ids;
