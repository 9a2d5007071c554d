//! Integration tests of the demo server, the library's first user: real sockets on
//! 127.0.0.1, a test authorization server serving OIDC metadata and a JWKS, tokens
//! signed at test time. They drive the library end to end through the demo tools.

#[path = "../../../mcp-resource-server/tests/it/fixture.rs"]
#[allow(dead_code)]
mod shared_fixture;

/// The library's test fixture, with the demo's configuration and server.
mod fixture {
    use std::time::Duration;

    use mcp_resource_server::{Config, config::JwksConfig};
    use resource_server::DemoOptions;

    pub use crate::shared_fixture::*;

    /// The demo's configuration with quick JWKS refetches.
    pub fn test_config(public_url: String, issuer: &str) -> Config {
        resource_server::demo_config(public_url, issuer).with_jwks_config(JwksConfig {
            min_refetch_interval: Duration::from_millis(300),
            ..JwksConfig::default()
        })
    }

    /// Starts the demo server on 127.0.0.1:0 with the configuration `make` builds from
    /// its public URL; returns that URL.
    pub async fn start_rs(make: impl FnOnce(String) -> Config) -> String {
        start_demo(make, DemoOptions::default()).await
    }

    /// [`start_rs`] with the demo's options (browser page, conformance fixtures).
    pub async fn start_demo(make: impl FnOnce(String) -> Config, options: DemoOptions) -> String {
        serve_on_loopback(|listener, url| {
            let server =
                resource_server::server(make(url), &options).expect("test configuration is valid");
            server.serve(listener)
        })
        .await
    }
}

mod cluster;
mod connections;
mod introspection;
mod logs;
mod mcp_http;
mod sse;
mod streams;
mod tokens;
mod web;
