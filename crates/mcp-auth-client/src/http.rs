//! The HTTP clients the flow uses, the size limits of what they read, and a small JSON
//! fetch helper.
//!
//! - [`oauth_client`]: discovery, registration and token requests. It never follows
//!   redirects (`Policy::none()`): a redirect from a metadata or token endpoint is
//!   reported, not followed, so tokens and codes go only where they were meant to go.
//! - [`browser_like_client`]: the headless authorizer's client, with its own cookie jar,
//!   also without automatic redirects (it follows them one by one, see `headless.rs`).
//! - [`mcp_client`]: the MCP transport's client, with a cookie jar for the legacy SSE
//!   session cookie, no overall timeout (SSE streams are long-lived).
//!
//! Every request goes out through `RecordedSend::send_recorded`, the one place where
//! `--diagram` sees it (see `diagram.rs`).
//!
//! # Security
//! Every response body the client reads goes through `read_body`, which stops at the
//! [`Limit`] of its kind (see [`limits`]) and answers [`ClientError::BodyTooLarge`]
//! naming the URL and the limit: a server cannot make the client hold more than that in
//! memory, whatever it sends or announces. Event streams are bounded per event (and, for
//! the stream of one Streamable HTTP reply, in all) by the parser in
//! `mcp/event_stream.rs`, with the same limits.

use std::time::Duration;

use reqwest::redirect::Policy;

pub use crate::body_limit::{Limit, human_bytes, limits};
use crate::error::{ClientError, Result};

const USER_AGENT: &str = concat!("mcp-client/", env!("CARGO_PKG_VERSION"));

/// Reads the whole body of `resp`, at most `limit.bytes` of it. A `Content-Length` above
/// the limit is refused before anything is read; a body that grows past it is dropped as
/// soon as it does.
pub(crate) async fn read_body(
    mut resp: reqwest::Response,
    url: &str,
    limit: Limit,
) -> Result<Vec<u8>> {
    let too_large = || ClientError::BodyTooLarge {
        url: url.to_owned(),
        what: limit.what,
        limit: limit.bytes,
    };
    let announced = resp.content_length().unwrap_or(0);
    if announced > limit.bytes as u64 {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(usize::try_from(announced).unwrap_or(0));
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| ClientError::unreachable(url, e))?
    {
        if body.len() + chunk.len() > limit.bytes {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Sending a request so that `--diagram` draws it (see `diagram.rs`); the same as
/// `send` when nothing is being recorded.
pub(crate) trait RecordedSend {
    /// Sends the request and, while recording, notes it and its response.
    fn send_recorded(self) -> impl Future<Output = reqwest::Result<reqwest::Response>> + Send;
}

impl RecordedSend for reqwest::RequestBuilder {
    async fn send_recorded(self) -> reqwest::Result<reqwest::Response> {
        let (client, req) = self.build_split();
        let req = req?;
        let Some(pending) = crate::diagram::request(&req) else {
            return client.execute(req).await;
        };
        let resp = client.execute(req).await?;
        pending.response(&resp);
        if !pending.wants_body(&resp) {
            return Ok(resp);
        }
        // A token response: read it (within its limit) to draw its tokens' fingerprints,
        // then hand the same response on.
        use reqwest::ResponseBuilderExt as _;
        let mut builder = http::Response::builder()
            .status(resp.status())
            .version(resp.version())
            .url(resp.url().clone());
        if let Some(headers) = builder.headers_mut() {
            headers.extend(resp.headers().clone());
        }
        let url = resp.url().to_string();
        // Its length is announced and within the limit, so only a connection lost
        // mid-body fails here: the caller then gets an empty body, which it reports as
        // a response that is not a token response.
        let body = read_body(resp, &url, limits::TOKEN)
            .await
            .unwrap_or_default();
        pending.tokens(&body);
        Ok(builder
            .body(body)
            .map(reqwest::Response::from)
            .expect("parts taken from a valid response"))
    }
}

/// The client for discovery, registration and token requests.
#[must_use]
pub fn oauth_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .user_agent(USER_AGENT)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("static reqwest configuration")
}

/// The client the headless authorizer uses: a fresh cookie jar, no automatic redirects.
#[must_use]
pub fn browser_like_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .cookie_store(true)
        .user_agent(USER_AGENT)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("static reqwest configuration")
}

/// The client of the MCP transports.
#[must_use]
pub fn mcp_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .cookie_store(true)
        .user_agent(USER_AGENT)
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .build()
        .expect("static reqwest configuration")
}

/// What a GET for a JSON document gave.
#[derive(Debug)]
pub(crate) enum Fetched {
    /// 200 with a body that parses as JSON (whatever its content type).
    Json(serde_json::Value, Option<String>),
    /// Any other status.
    Status(u16),
    /// 200 but the body is not JSON.
    NotJson(Option<String>),
}

/// GET `url` with `Accept: application/json`. The content type is not required to be JSON:
/// static file servers (busybox httpd) serve `.well-known` files as
/// `application/octet-stream`, and the body is what counts.
pub(crate) async fn get_json(http: &reqwest::Client, url: &url::Url) -> Result<Fetched> {
    let resp = http
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send_recorded()
        .await
        .map_err(|e| ClientError::unreachable(url.as_str(), e))?;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if status != 200 {
        return Ok(Fetched::Status(status));
    }
    let body = read_body(resp, url.as_str(), limits::METADATA).await?;
    match serde_json::from_slice(&body) {
        Ok(v) => Ok(Fetched::Json(v, content_type)),
        Err(_) => Ok(Fetched::NotJson(content_type)),
    }
}

/// A short human label of a body for error messages: an OAuth error object if there is one,
/// else the first characters of the text.
pub(crate) fn body_summary(body: &[u8]) -> Option<String> {
    if let Ok(err) = serde_json::from_slice::<mcp_auth_proto::ErrorResponse>(body) {
        return Some(err.to_string());
    }
    let text = String::from_utf8_lossy(body);
    if let Some(summary) = html_summary(&text) {
        return Some(summary);
    }
    let text: String = text.chars().filter(|c| !c.is_control()).take(160).collect();
    Some(text.trim().to_owned()).filter(|text| !text.is_empty())
}

/// An HTML page in one phrase (`an HTML page titled "Welcome", 5120 bytes`), or `None`
/// if `text` is not one: a web site or a login page where an MCP or OAuth endpoint was
/// expected, which quoting raw would bury the message.
fn html_summary(text: &str) -> Option<String> {
    let head: String = text.trim_start().chars().take(512).collect();
    let lower = head.to_ascii_lowercase();
    if !(lower.starts_with("<!doctype html")
        || lower.starts_with("<html")
        || lower.starts_with("<head"))
    {
        return None;
    }
    let lower_all = text.to_ascii_lowercase();
    let title = lower_all.find("<title").and_then(|start| {
        let open_end = start + lower_all[start..].find('>')? + 1;
        let close = open_end + lower_all[open_end..].find("</title")?;
        let t: String = text
            .get(open_end..close)?
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        (!t.is_empty()).then(|| t.chars().take(80).collect::<String>())
    });
    Some(format!(
        "an HTML page{}, {} bytes (a web page, not an MCP or OAuth response: is the URL right?)",
        title
            .map(|t| format!(" titled \"{t}\""))
            .unwrap_or_default(),
        text.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_summarised_not_quoted() {
        let page = "<!DOCTYPE html>\n<html><head><title>\n  Example   Domain </title><style>body{}</style></head><body><p>secret-ish text</p></body></html>";
        let s = body_summary(page.as_bytes());
        assert_eq!(
            s.unwrap(),
            format!(
                "an HTML page titled \"Example Domain\", {} bytes (a web page, not an MCP or OAuth response: is the URL right?)",
                page.len()
            )
        );
        assert!(
            body_summary(b"<html><body>x</body></html>")
                .unwrap()
                .starts_with("an HTML page, ")
        );
        assert_eq!(body_summary(b"plain words").as_deref(), Some("plain words"));
        assert_eq!(body_summary(b" \r\n"), None);
    }
}
