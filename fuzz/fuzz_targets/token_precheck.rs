//! Bearer token handling of the resource server before any cryptography: the
//! `Authorization` header parsing of [`AuthLayer::authorize`] and the size, shape and
//! header checks of [`Validator::validate`].
//!
//! The validator's key source is an address where nothing listens, with refetches
//! rate-limited to one a day: no input can obtain a key, so every input must be
//! refused, and no refusal may quote the token.
#![no_main]

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use http::{HeaderMap, HeaderValue, Method, Uri, header};
use libfuzzer_sys::fuzz_target;
use mcp_resource_server::{
    auth::{AuthLayer, JwksCache, JwksSource, Validator, ValidatorConfig},
    config::JwksConfig,
};

struct Harness {
    runtime: tokio::runtime::Runtime,
    validator: Arc<Validator>,
    layer: AuthLayer,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let source = JwksSource::Uri("http://127.0.0.1:9/keys".parse().unwrap());
        let jwks = Arc::new(JwksCache::new(
            source,
            JwksConfig {
                min_refetch_interval: Duration::from_secs(86_400),
                http_timeout: Duration::from_millis(200),
                ..JwksConfig::default()
            },
        ));
        let validator = Arc::new(Validator::new(
            ValidatorConfig {
                issuer: "http://localhost:5556/dex".into(),
                audiences: vec!["http://localhost:3001/mcp".into()],
                leeway: Duration::from_secs(30),
                max_token_bytes: 16 * 1024,
                cache_capacity: 0,
            },
            jwks,
        ));
        let layer = AuthLayer::new(validator.clone()).with_resource_metadata(
            "http://localhost:3001/.well-known/oauth-protected-resource/mcp",
        );
        Harness {
            runtime,
            validator,
            layer,
        }
    })
}

/// A refusal must not quote the token. Checked for JWS-shaped tokens (two dots, 40
/// characters or more), which no fixed text of a refusal can contain by chance.
fn assert_not_quoted(message: &str, token: &str) {
    if token.len() >= 40 && token.matches('.').count() >= 2 {
        assert!(!message.contains(token), "a refusal quotes the token");
    }
}

fuzz_target!(|data: &[u8]| {
    let harness = harness();
    if let Ok(token) = std::str::from_utf8(data) {
        let result = harness.runtime.block_on(harness.validator.validate(token));
        let error = result.expect_err("no key can be obtained, so nothing validates");
        assert_not_quoted(&error.to_string(), token);
        assert_not_quoted(&format!("{error:?}"), token);
    }
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value);
        let uri: Uri = "/mcp".parse().unwrap();
        let result =
            harness
                .runtime
                .block_on(harness.layer.authorize(&Method::POST, &uri, &headers));
        let error = result.expect_err("no key can be obtained, so nothing is authorized");
        if let Ok(text) = std::str::from_utf8(data) {
            let token = text.trim().split_once(' ').map_or("", |(_, t)| t.trim());
            assert_not_quoted(&error.to_string(), token);
            let response = error.into_response_with(None);
            for value in response.headers().values() {
                assert_not_quoted(&String::from_utf8_lossy(value.as_bytes()), token);
            }
        }
    }
});
