//! Protected Resource Metadata (RFC 9728) from untrusted JSON, and the resource checks
//! a client makes with it.
//!
//! Properties: no panic; what parses serialises and parses back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_auth_proto::{prm::ProtectedResourceMetadata, wellknown};

fuzz_target!(|data: &[u8]| {
    let Ok(prm) = serde_json::from_slice::<ProtectedResourceMetadata>(data) else {
        return;
    };
    let server = url::Url::parse("http://localhost:3001/mcp").unwrap();
    let _ = wellknown::resource_matches(&prm.resource, &server);
    // Every function takes any URL, whatever its scheme.
    if let Ok(resource) = url::Url::parse(&prm.resource) {
        let _ = wellknown::canonical_resource(&resource);
        let _ = wellknown::is_loopback_or_https(&resource);
        let _ = wellknown::resource_matches(&prm.resource, &resource);
        let _ = wellknown::protected_resource_metadata_url(&resource);
        let _ = wellknown::prm_discovery_urls(&resource);
        let _ = wellknown::legacy_authorization_server_metadata_url(&resource);
        let _ = wellknown::legacy_endpoints(&resource);
    }
    for server in &prm.authorization_servers {
        if let Ok(issuer) = url::Url::parse(server) {
            let _ = wellknown::authorization_server_metadata_urls(&issuer);
        }
    }
    let json = serde_json::to_vec(&prm).expect("PRM serialises");
    let again: ProtectedResourceMetadata =
        serde_json::from_slice(&json).expect("serialised PRM parses");
    assert_eq!(again, prm);
});
