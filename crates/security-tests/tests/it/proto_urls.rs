//! Found by the `as_metadata` and `protected_resource_metadata` fuzz targets: the
//! well-known URL builders of the proto crate take any `Url` and once panicked when its
//! origin was opaque (any scheme other than http, https, ftp, ws, wss or file).

use mcp_auth_proto::wellknown;
use url::Url;

#[test]
fn well_known_builders_do_not_panic_on_other_schemes() {
    for input in [
        "ittps://as.example",
        "urn:example:as",
        "mailto:a@example.com",
    ] {
        let url = Url::parse(input).unwrap();
        for (name, call) in [
            (
                "authorization_server_metadata_urls",
                Box::new(|u: &Url| drop(wellknown::authorization_server_metadata_urls(u)))
                    as Box<dyn Fn(&Url)>,
            ),
            (
                "protected_resource_metadata_url",
                Box::new(|u: &Url| drop(wellknown::protected_resource_metadata_url(u))),
            ),
            (
                "prm_discovery_urls",
                Box::new(|u: &Url| drop(wellknown::prm_discovery_urls(u))),
            ),
            (
                "legacy_authorization_server_metadata_url",
                Box::new(|u: &Url| drop(wellknown::legacy_authorization_server_metadata_url(u))),
            ),
        ] {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call(&url)));
            assert!(outcome.is_ok(), "{name}({input}) panicked");
        }
    }
}

/// The same builders on the URLs they are meant for, for contrast.
#[test]
fn well_known_builders_on_http_urls() {
    let issuer = Url::parse("http://localhost:5556/dex").unwrap();
    let urls = wellknown::authorization_server_metadata_urls(&issuer);
    assert_eq!(
        urls.last().unwrap().as_str(),
        "http://localhost:5556/dex/.well-known/openid-configuration"
    );
    let mcp = Url::parse("http://localhost:3001/mcp").unwrap();
    assert_eq!(
        wellknown::protected_resource_metadata_url(&mcp).as_str(),
        "http://localhost:3001/.well-known/oauth-protected-resource/mcp"
    );
}
