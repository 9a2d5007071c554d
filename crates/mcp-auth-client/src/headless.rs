//! Headless authorization: follow the authorization URL over HTTP instead of a browser.
//!
//! For authorization servers that approve without a human (test servers, CI, the
//! conformance suite's mock): GET the authorization URL with a fresh cookie jar, follow
//! each redirect by hand (at most 20), and when a redirect points at the redirect URI,
//! deliver it to the loopback listener, which checks it exactly as it would a browser's.
//! A page instead of a redirect means a human is needed: that is an error here.

use url::Url;

use crate::error::{ClientError, Result};
use crate::http::RecordedSend as _;
use crate::trace::Trace;

const AREA: &str = "headless";
const MAX_HOPS: usize = 20;

/// Follows `authorization_url` until it redirects to `redirect_uri`, then GETs that URL
/// (the loopback listener).
pub async fn follow(trace: &Trace, authorization_url: &Url, redirect_uri: &str) -> Result<()> {
    let http = crate::http::browser_like_client();
    let redirect = Url::parse(redirect_uri).map_err(|source| ClientError::ConfigUrl {
        what: "redirect URI",
        value: redirect_uri.to_owned(),
        source,
    })?;
    let mut url = authorization_url.clone();
    for _ in 0..MAX_HOPS {
        let resp = http
            .get(url.clone())
            .send_recorded()
            .await
            .map_err(|e| ClientError::unreachable(url.as_str(), e))?;
        let status = resp.status();
        if !status.is_redirection() {
            trace.step(
                AREA,
                format!("GET {} -> {}", without_query(&url), status.as_u16()),
            );
            return Err(ClientError::Headless {
                url: without_query(&url),
                reason: format!(
                    "HTTP {} instead of a redirect: this authorization server wants a person (log in or consent); run without --headless",
                    status.as_u16()
                ),
            });
        }
        let Some(location) = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
        else {
            return Err(ClientError::Headless {
                url: without_query(&url),
                reason: format!("HTTP {} without a Location header", status.as_u16()),
            });
        };
        let next = url.join(location).map_err(|e| ClientError::Headless {
            url: without_query(&url),
            reason: format!("bad Location: {e}"),
        })?;
        trace.step(
            AREA,
            format!(
                "GET {} -> {} to {}",
                without_query(&url),
                status.as_u16(),
                without_query(&next)
            ),
        );
        if is_redirect_uri(&next, &redirect) {
            trace.step(
                AREA,
                "reached the redirect URI: handing it to the callback listener",
            );
            // The loopback listener answers with a page; its outcome travels through the
            // listener itself, so the status here does not matter.
            let _ = crate::http::oauth_client()
                .get(next.clone())
                .send_recorded()
                .await
                .map_err(|e| ClientError::unreachable(without_query(&next), e))?;
            return Ok(());
        }
        url = next;
    }
    Err(ClientError::Headless {
        url: without_query(&url),
        reason: format!("more than {MAX_HOPS} redirects"),
    })
}

fn is_redirect_uri(candidate: &Url, redirect: &Url) -> bool {
    candidate.scheme() == redirect.scheme()
        && candidate.host_str() == redirect.host_str()
        && candidate.port_or_known_default() == redirect.port_or_known_default()
        && candidate.path() == redirect.path()
}

/// The URL without its query: authorization URLs and callbacks carry `state`, codes and
/// PKCE challenges, which the trace does not need to repeat.
fn without_query(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[tokio::test]
    async fn a_redirect_uri_that_is_not_a_url_keeps_the_parse_error() {
        let authorize = Url::parse("http://127.0.0.1:1/authorize").unwrap();
        let err = follow(&Trace::silent(), &authorize, "127.0.0.1:53682/callback")
            .await
            .unwrap_err();
        let source = err
            .source()
            .and_then(|s| s.downcast_ref::<url::ParseError>())
            .expect("the url error is kept");
        assert_eq!(
            err.to_string(),
            format!("redirect URI \"127.0.0.1:53682/callback\" is not a URL: {source}")
        );
    }
}
