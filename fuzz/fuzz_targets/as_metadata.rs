//! Authorization server metadata (RFC 8414 / OpenID Connect discovery) from untrusted
//! JSON, and the well-known URLs derived from its issuer.
//!
//! Properties: no panic; what parses serialises and parses back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_auth_proto::{metadata::AuthorizationServerMetadata, wellknown};

fuzz_target!(|data: &[u8]| {
    let Ok(metadata) = serde_json::from_slice::<AuthorizationServerMetadata>(data) else {
        return;
    };
    let _ = metadata.supports_pkce_s256();
    let _ = metadata.check_issuer("http://localhost:5556/dex");
    let _ = metadata.check_issuer(&metadata.issuer.clone());
    if let Ok(issuer) = url::Url::parse(&metadata.issuer) {
        let _ = wellknown::authorization_server_metadata_urls(&issuer);
    }
    let json = serde_json::to_vec(&metadata).expect("metadata serialises");
    let again: AuthorizationServerMetadata =
        serde_json::from_slice(&json).expect("serialised metadata parses");
    assert_eq!(again, metadata);
});
