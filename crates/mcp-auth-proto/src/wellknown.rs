//! Well-known metadata URLs and canonical resource identifiers.
//!
//! - Protected Resource Metadata lives at the resource's origin with
//!   `/.well-known/oauth-protected-resource` inserted before the resource's path
//!   ([RFC 9728 §3.1](https://www.rfc-editor.org/rfc/rfc9728#section-3.1)).
//! - Authorization server metadata is found by RFC 8414 path insertion, then OpenID
//!   Connect path insertion, then OpenID Connect path appending (the order the MCP
//!   specification sets, 2025-11-25).
//! - Resource indicators ([RFC 8707](https://www.rfc-editor.org/rfc/rfc8707)) use the
//!   canonical form of the MCP server URL: lower-case scheme and host, no fragment, no
//!   trailing slash.

use url::Url;

/// The well-known suffix of Protected Resource Metadata (RFC 9728 §3).
pub const PROTECTED_RESOURCE: &str = "/.well-known/oauth-protected-resource";
/// The well-known suffix of OAuth authorization server metadata (RFC 8414 §3).
pub const AUTHORIZATION_SERVER: &str = "/.well-known/oauth-authorization-server";
/// The well-known suffix of OpenID Connect discovery.
pub const OPENID_CONFIGURATION: &str = "/.well-known/openid-configuration";

/// A URL that cannot serve as a resource or issuer identifier. The URL it names has
/// no user name or password (a URL's credentials are not repeated in errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    #[error("{0:?} is not an http or https URL")]
    Scheme(String),
    #[error("{0:?} has no host")]
    NoHost(String),
}

/// `url` as errors show it: without its user name and password.
fn shown(url: &Url) -> String {
    let mut shown = url.clone();
    // Both fail only for URLs that cannot carry credentials, which then have none.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

/// The path without a trailing slash; empty for the root.
fn trimmed_path(url: &Url) -> &str {
    url.path().trim_end_matches('/')
}

fn check_http(url: &Url) -> Result<(), UrlError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlError::Scheme(shown(url)));
    }
    if url.host().is_none() {
        return Err(UrlError::NoHost(shown(url)));
    }
    Ok(())
}

/// `url` with its path and query replaced and its fragment and user information
/// dropped: the origin of `url` plus `path`. Total for every URL; the result is only
/// meaningful for http(s) URLs, which callers check (see [`canonical_resource`]).
fn at_path(url: &Url, path: &str, query: Option<&str>) -> Url {
    let mut out = url.clone();
    // Both fail only for URLs that cannot carry credentials, which then have none.
    let _ = out.set_username("");
    let _ = out.set_password(None);
    out.set_fragment(None);
    out.set_query(query);
    out.set_path(path);
    out
}

/// The canonical resource identifier of an MCP server URL (RFC 8707 §2 and the MCP
/// specification): `https://mcp.example.com/mcp`, `http://localhost:3001`. The query is
/// kept, the fragment dropped, a trailing slash removed.
///
/// # Errors
/// [`UrlError`] for a URL that is not http(s) or has no host.
pub fn canonical_resource(url: &Url) -> Result<String, UrlError> {
    check_http(url)?;
    let mut s = url.origin().ascii_serialization();
    s.push_str(trimmed_path(url));
    if let Some(q) = url.query() {
        s.push('?');
        s.push_str(q);
    }
    Ok(s)
}

/// The URL of the Protected Resource Metadata for `resource` (RFC 9728 §3.1):
/// `https://h/mcp` → `https://h/.well-known/oauth-protected-resource/mcp`.
#[must_use]
pub fn protected_resource_metadata_url(resource: &Url) -> Url {
    at_path(
        resource,
        &format!("{PROTECTED_RESOURCE}{}", trimmed_path(resource)),
        resource.query(),
    )
}

/// Where a client looks for Protected Resource Metadata when the server's challenge
/// names none: the path-suffixed location, then the root (duplicates removed).
#[must_use]
pub fn prm_discovery_urls(mcp_url: &Url) -> Vec<Url> {
    let mut urls = vec![at_path(
        mcp_url,
        &format!("{PROTECTED_RESOURCE}{}", trimmed_path(mcp_url)),
        None,
    )];
    let root = at_path(mcp_url, PROTECTED_RESOURCE, None);
    if !urls.contains(&root) {
        urls.push(root);
    }
    urls
}

/// The metadata URLs to try for an issuer, in the MCP specification's order.
///
/// For `https://as/tenant1`: RFC 8414 insertion
/// (`/.well-known/oauth-authorization-server/tenant1`), OIDC insertion
/// (`/.well-known/openid-configuration/tenant1`), OIDC appending
/// (`/tenant1/.well-known/openid-configuration`). For an issuer without a path, the
/// two root documents.
#[must_use]
pub fn authorization_server_metadata_urls(issuer: &Url) -> Vec<Url> {
    let p = trimmed_path(issuer);
    if p.is_empty() {
        vec![
            at_path(issuer, AUTHORIZATION_SERVER, None),
            at_path(issuer, OPENID_CONFIGURATION, None),
        ]
    } else {
        vec![
            at_path(issuer, &format!("{AUTHORIZATION_SERVER}{p}"), None),
            at_path(issuer, &format!("{OPENID_CONFIGURATION}{p}"), None),
            at_path(issuer, &format!("{p}{OPENID_CONFIGURATION}"), None),
        ]
    }
}

/// The 2025-03-26 location of authorization server metadata: the MCP server's own
/// origin, path discarded.
#[must_use]
pub fn legacy_authorization_server_metadata_url(mcp_url: &Url) -> Url {
    at_path(mcp_url, AUTHORIZATION_SERVER, None)
}

/// The 2025-03-26 default endpoints, used when no metadata is found at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyEndpoints {
    pub authorize: Url,
    pub token: Url,
    pub register: Url,
}

/// `/authorize`, `/token` and `/register` on the MCP server's origin.
#[must_use]
pub fn legacy_endpoints(mcp_url: &Url) -> LegacyEndpoints {
    LegacyEndpoints {
        authorize: at_path(mcp_url, "/authorize", None),
        token: at_path(mcp_url, "/token", None),
        register: at_path(mcp_url, "/register", None),
    }
}

/// Whether a Protected Resource Metadata `resource` value names the server at
/// `server_url`: same origin, and a path equal to the server's or a prefix of it on a
/// segment boundary. A client MUST NOT use metadata that names another resource.
#[must_use]
pub fn resource_matches(prm_resource: &str, server_url: &Url) -> bool {
    let Ok(resource) = Url::parse(prm_resource) else {
        return false;
    };
    if resource.origin() != server_url.origin() || resource.fragment().is_some() {
        return false;
    }
    let rp = trimmed_path(&resource);
    let sp = trimmed_path(server_url);
    rp.is_empty()
        || sp == rp
        || sp
            .strip_prefix(rp)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Whether `url` is https, or http on a loopback host (`localhost`, `127.0.0.0/8`,
/// `[::1]`), the only transports OAuth 2.1 allows for endpoints and redirects.
#[must_use]
pub fn is_loopback_or_https(url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => match url.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn url_errors_do_not_repeat_credentials() {
        let err = canonical_resource(&u("ftp://user:s3cret@h/mcp")).unwrap_err();
        assert_eq!(err, UrlError::Scheme("ftp://h/mcp".into()));
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(
                !shown.contains("s3cret") && !shown.contains("user"),
                "{shown}"
            );
        }
    }

    fn strs(urls: Vec<Url>) -> Vec<String> {
        urls.into_iter().map(String::from).collect()
    }

    #[test]
    fn canonical() {
        assert_eq!(
            canonical_resource(&u("HTTPS://MCP.Example.com:443/mcp/#frag")).unwrap(),
            "https://mcp.example.com/mcp"
        );
        assert_eq!(
            canonical_resource(&u("http://localhost:3001/")).unwrap(),
            "http://localhost:3001"
        );
        assert_eq!(
            canonical_resource(&u("http://h/a/b?x=1")).unwrap(),
            "http://h/a/b?x=1"
        );
        assert!(canonical_resource(&u("file:///x")).is_err());
        assert!(canonical_resource(&u("mailto:a@b")).is_err());
    }

    #[test]
    fn prm_url() {
        assert_eq!(
            protected_resource_metadata_url(&u("http://localhost:3001/mcp")).as_str(),
            "http://localhost:3001/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            protected_resource_metadata_url(&u("http://localhost:3001")).as_str(),
            "http://localhost:3001/.well-known/oauth-protected-resource"
        );
        assert_eq!(
            strs(prm_discovery_urls(&u("https://h/a/mcp/"))),
            [
                "https://h/.well-known/oauth-protected-resource/a/mcp",
                "https://h/.well-known/oauth-protected-resource"
            ]
        );
        assert_eq!(
            strs(prm_discovery_urls(&u("https://h/"))),
            ["https://h/.well-known/oauth-protected-resource"]
        );
    }

    #[test]
    fn as_metadata_order() {
        assert_eq!(
            strs(authorization_server_metadata_urls(&u("https://as/tenant1"))),
            [
                "https://as/.well-known/oauth-authorization-server/tenant1",
                "https://as/.well-known/openid-configuration/tenant1",
                "https://as/tenant1/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            strs(authorization_server_metadata_urls(&u(
                "http://localhost:5556/dex/"
            ))),
            [
                "http://localhost:5556/.well-known/oauth-authorization-server/dex",
                "http://localhost:5556/.well-known/openid-configuration/dex",
                "http://localhost:5556/dex/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            strs(authorization_server_metadata_urls(&u("https://as"))),
            [
                "https://as/.well-known/oauth-authorization-server",
                "https://as/.well-known/openid-configuration",
            ]
        );
    }

    #[test]
    fn legacy() {
        let mcp = u("http://localhost:3001/mcp");
        assert_eq!(
            legacy_authorization_server_metadata_url(&mcp).as_str(),
            "http://localhost:3001/.well-known/oauth-authorization-server"
        );
        let e = legacy_endpoints(&mcp);
        assert_eq!(e.authorize.as_str(), "http://localhost:3001/authorize");
        assert_eq!(e.token.as_str(), "http://localhost:3001/token");
        assert_eq!(e.register.as_str(), "http://localhost:3001/register");
    }

    #[test]
    fn matching() {
        let server = u("https://h/api/mcp");
        assert!(resource_matches("https://h/api/mcp", &server));
        assert!(resource_matches("https://h/api/mcp/", &server));
        assert!(resource_matches("https://h/api", &server));
        assert!(resource_matches("https://h", &server));
        assert!(!resource_matches("https://h/ap", &server));
        assert!(!resource_matches("https://h/api/mcp/x", &server));
        assert!(!resource_matches("https://evil/api/mcp", &server));
        assert!(!resource_matches("http://h/api/mcp", &server));
        assert!(!resource_matches("https://h:8443/api/mcp", &server));
        assert!(!resource_matches("not a url", &server));
    }

    #[test]
    fn builders_drop_userinfo_query_and_fragment() {
        assert_eq!(
            strs(authorization_server_metadata_urls(&u(
                "https://user:pw@as/t1?x=1#f"
            ))),
            [
                "https://as/.well-known/oauth-authorization-server/t1",
                "https://as/.well-known/openid-configuration/t1",
                "https://as/t1/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            legacy_authorization_server_metadata_url(&u("http://h:1/mcp?q#f")).as_str(),
            "http://h:1/.well-known/oauth-authorization-server"
        );
    }

    #[test]
    fn builders_are_total_on_other_schemes() {
        for input in [
            "urn:example:as",
            "mailto:a@example.com",
            "ittps://as/x",
            "file:///x",
        ] {
            let url = u(input);
            let _ = authorization_server_metadata_urls(&url);
            let _ = protected_resource_metadata_url(&url);
            let _ = prm_discovery_urls(&url);
            let _ = legacy_authorization_server_metadata_url(&url);
            let _ = legacy_endpoints(&url);
            assert!(canonical_resource(&url).is_err());
        }
    }

    #[test]
    fn loopback_or_https() {
        assert!(is_loopback_or_https(&u("https://as.example")));
        assert!(is_loopback_or_https(&u("http://localhost:5556/dex")));
        assert!(is_loopback_or_https(&u("http://127.0.0.2/x")));
        assert!(is_loopback_or_https(&u("http://[::1]:8/")));
        assert!(!is_loopback_or_https(&u("http://as.example")));
        assert!(!is_loopback_or_https(&u("http://localhost.evil.com")));
        assert!(!is_loopback_or_https(&u("ftp://localhost")));
    }
}
