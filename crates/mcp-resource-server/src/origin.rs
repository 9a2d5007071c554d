//! `Origin` validation (DNS rebinding and cross-site protection, MCP "Security Best
//! Practices"), with the [`OriginPolicy`] that [`crate::host`] shares.
//!
//! - A request carrying an `Origin` not in the allowed list (by default the public URL's
//!   origin) is answered 403. Requests without `Origin` (non-browser clients) pass;
//!   cookie-authenticated ones have stricter rules in [`crate::auth::layer`] and
//!   [`cookie_stream_allowed`].

use std::sync::Arc;

use axum::{
    extract::Request,
    http::{HeaderMap, header},
};

use crate::{
    check::{CheckLayer, RequestCheck},
    error::Error,
};

/// Allowed `Host` and `Origin` values.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    /// Allowed `Host` values, lower case, as `host[:port]`.
    pub hosts: Vec<String>,
    /// Allowed origins, serialised.
    pub origins: Vec<String>,
}

impl OriginPolicy {
    /// Whether a `Host` header value is allowed.
    pub fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim();
        self.hosts
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(host))
    }

    /// Whether an `Origin` header value is allowed ([`mcp_auth_proto::origin`]'s rule).
    pub fn origin_allowed(&self, origin: &str) -> bool {
        mcp_auth_proto::origin::origin_allowed(&self.origins, origin)
    }
}

/// The `Origin` check of an [`OriginPolicy`].
#[derive(Debug)]
pub(crate) struct OriginCheck(pub Arc<OriginPolicy>);

impl RequestCheck for OriginCheck {
    fn check(&self, request: &Request) -> Result<(), Error> {
        match request.headers().get(header::ORIGIN).map(|v| v.to_str()) {
            None => Ok(()),
            Some(Ok(origin)) if self.0.origin_allowed(origin) => Ok(()),
            Some(origin) => {
                tracing::info!(origin = ?origin.ok(), "refused a request from a foreign Origin");
                Err(Error::OriginNotAllowed)
            }
        }
    }
}

/// Layer refusing requests whose `Origin` is not allowed.
pub(crate) type OriginLayer = CheckLayer<OriginCheck>;

/// Whether a cookie-authenticated `GET /sse` may open a stream.
///
/// A browser sends no `Origin` on a same-origin `EventSource` request, and neither on
/// an `<img>`, `<script>` or navigation to the URL, which a page on another port of the
/// same host (same-site, so the `SameSite=Strict` cookie goes along) could use to hold
/// the victim's stream slots. With an `Origin`, the [`OriginCheck`] already decided.
/// Without one, the Fetch Metadata header decides: `Sec-Fetch-Site` must be
/// `same-origin`. A request with neither header (a browser that predates Fetch
/// Metadata, or a page served over plain http from a non-loopback host, where browsers
/// do not send it) is allowed, or the page itself could not open its stream there.
pub(crate) fn cookie_stream_allowed(headers: &HeaderMap) -> bool {
    if headers.contains_key(header::ORIGIN) {
        return true;
    }
    match headers.get("sec-fetch-site") {
        None => true,
        Some(site) => site.as_bytes().eq_ignore_ascii_case(b"same-origin"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        let policy = OriginPolicy {
            hosts: vec!["localhost:3001".into()],
            origins: vec!["http://localhost:3001".into()],
        };
        assert!(policy.host_allowed("LOCALHOST:3001"));
        assert!(!policy.host_allowed("evil.example.com"));
        assert!(!policy.host_allowed("localhost:3002"));
        assert!(policy.origin_allowed("http://localhost:3001"));
        assert!(!policy.origin_allowed("http://evil.example.com"));
    }

    #[test]
    fn cookie_streams_need_a_same_origin_fetch() {
        let with = |pairs: &[(&'static str, &'static str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.insert(*name, value.parse().unwrap());
            }
            cookie_stream_allowed(&headers)
        };
        assert!(with(&[("sec-fetch-site", "same-origin")]));
        assert!(with(&[]));
        assert!(with(&[
            ("origin", "http://localhost:3001"),
            ("sec-fetch-site", "same-site")
        ]));
        assert!(!with(&[("sec-fetch-site", "same-site")]));
        assert!(!with(&[("sec-fetch-site", "cross-site")]));
        assert!(!with(&[("sec-fetch-site", "none")]));
    }
}
