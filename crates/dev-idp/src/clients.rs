//! OAuth clients: Dex's static clients and, when registration is on, registered ones.
//!
//! Redirect URI rules follow Dex: registered URIs match exactly; a PUBLIC client with NO
//! registered URIs may use any `http` URI on `localhost`, `127.0.0.1` or `[::1]`, any port
//! (Dex 2.42 and later). Dynamically registered clients additionally get RFC 8252 §7.3:
//! a registered loopback IP redirect matches on any port.

use std::fmt;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use url::{Host, Url};

use crate::config::StaticClient;

/// Where the device flow's browser login returns (relative to the issuer's path).
pub(crate) const DEVICE_CALLBACK: &str = "/device/callback";

/// A client known to the server.
#[derive(Clone)]
pub(crate) struct Client {
    pub(crate) id: String,
    pub(crate) secret: Option<String>,
    pub(crate) public: bool,
    pub(crate) redirect_uris: Vec<String>,
    pub(crate) trusted_peers: Vec<String>,
    pub(crate) name: Option<String>,
    pub(crate) dynamic: bool,
    /// Where the client's public keys are, when it authenticates with `private_key_jwt`.
    pub(crate) keys: Option<KeySource>,
}

/// Where a client's or a trusted issuer's public keys come from.
#[derive(Debug, Clone)]
pub(crate) enum KeySource {
    /// A JSON Web Key Set given in the configuration.
    Inline(jsonwebtoken::jwk::JwkSet),
    /// A JSON Web Key Set fetched from this URL.
    Uri(String),
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("public", &self.public)
            .field("redirect_uris", &self.redirect_uris)
            .field("dynamic", &self.dynamic)
            .finish_non_exhaustive()
    }
}

/// Whether a URL's host is `localhost` or a loopback address.
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn is_loopback_ip(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        _ => false,
    }
}

impl Client {
    pub(crate) fn from_static(client: &StaticClient) -> Self {
        Self {
            id: client.id.clone(),
            secret: client
                .secret
                .clone()
                .filter(|s| !s.is_empty() && !client.public),
            public: client.public,
            redirect_uris: client.redirect_uris.clone(),
            trusted_peers: client.trusted_peers.clone(),
            name: client.name.clone(),
            dynamic: false,
            keys: match (&client.jwks, &client.jwks_uri) {
                // The configuration check has parsed the set already.
                (Some(jwks), _) => serde_json::from_value(jwks.clone())
                    .ok()
                    .map(KeySource::Inline),
                (None, Some(uri)) => Some(KeySource::Uri(uri.clone())),
                (None, None) => None,
            },
        }
    }

    /// Whether `uri` is an acceptable redirect URI for this client.
    pub(crate) fn allows_redirect(&self, uri: &str) -> bool {
        if self.redirect_uris.iter().any(|r| r == uri) {
            return true;
        }
        if uri == DEVICE_CALLBACK {
            // Dex lets a public client without redirect URIs use the device flow.
            return self.public && self.redirect_uris.is_empty();
        }
        let Ok(url) = Url::parse(uri) else {
            return false;
        };
        if url.fragment().is_some() {
            return false;
        }
        if self.dynamic && is_loopback_ip(&url) {
            let mut any_port = url.clone();
            let _ = any_port.set_port(None);
            return self.redirect_uris.iter().any(|r| {
                Url::parse(r).is_ok_and(|mut reg| {
                    is_loopback_ip(&reg) && {
                        let _ = reg.set_port(None);
                        reg == any_port
                    }
                })
            });
        }
        if !self.public || !self.redirect_uris.is_empty() {
            return false;
        }
        // Dex's isHostLocal reads `[::1]` only with a port (net.SplitHostPort).
        let bare_ipv6 = matches!(url.host(), Some(url::Host::Ipv6(_))) && url.port().is_none();
        url.scheme() == "http" && is_loopback(&url) && !bare_ipv6
    }

    /// Constant-time comparison with the configured secret.
    pub(crate) fn secret_matches(&self, given: &str) -> bool {
        self.secret
            .as_deref()
            .is_some_and(|s| verify_slices_are_equal(s.as_bytes(), given.as_bytes()).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(redirects: &[&str]) -> Client {
        Client {
            id: "c".into(),
            secret: None,
            public: true,
            redirect_uris: redirects.iter().map(|s| (*s).to_owned()).collect(),
            trusted_peers: vec![],
            name: None,
            dynamic: false,
            keys: None,
        }
    }

    #[test]
    fn public_client_without_uris_gets_any_loopback_port() {
        let c = public(&[]);
        assert!(c.allows_redirect("http://127.0.0.1:43123/callback"));
        assert!(c.allows_redirect("http://localhost:1/cb"));
        assert!(c.allows_redirect("http://[::1]:8080/"));
        assert!(!c.allows_redirect("http://[::1]/cb"), "Dex needs the port");
        assert!(!c.allows_redirect("https://evil.example/cb"));
        assert!(!c.allows_redirect("http://127.0.0.1.evil.example/cb"));
        assert!(!c.allows_redirect("http://127.0.0.1:1/cb#frag"));
        assert!(!c.allows_redirect("not a url"));
    }

    #[test]
    fn registered_uris_match_exactly() {
        let c = public(&["http://localhost:3001/app/callback"]);
        assert!(c.allows_redirect("http://localhost:3001/app/callback"));
        assert!(!c.allows_redirect("http://localhost:3002/app/callback"));
        assert!(!c.allows_redirect("http://127.0.0.1:5000/cb"));
        let mut confidential = public(&[]);
        confidential.public = false;
        assert!(!confidential.allows_redirect("http://127.0.0.1:5000/cb"));
    }

    #[test]
    fn dynamic_clients_get_any_port_on_loopback_ip() {
        let mut c = public(&["http://127.0.0.1:4000/callback"]);
        c.dynamic = true;
        assert!(c.allows_redirect("http://127.0.0.1:5123/callback"));
        assert!(!c.allows_redirect("http://127.0.0.1:5123/other"));
        assert!(!c.allows_redirect("http://localhost:5123/callback"));
    }

    #[test]
    fn secrets_compare() {
        let mut c = public(&[]);
        c.secret = Some("abc".into());
        assert!(c.secret_matches("abc"));
        assert!(!c.secret_matches("abd"));
        assert!(!c.secret_matches(""));
    }
}
