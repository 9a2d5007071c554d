//! The HTTP clients the flow uses, and a small JSON fetch helper.
//!
//! - [`oauth_client`]: discovery, registration and token requests. It never follows
//!   redirects (`Policy::none()`): a redirect from a metadata or token endpoint is
//!   reported, not followed, so tokens and codes go only where they were meant to go.
//! - [`browser_like_client`]: the headless authorizer's client, with its own cookie jar,
//!   also without automatic redirects (it follows them one by one, see `headless.rs`).
//! - [`mcp_client`]: the MCP transport's client, with a cookie jar for the legacy SSE
//!   session cookie, no overall timeout (SSE streams are long-lived).

use std::time::Duration;

use reqwest::redirect::Policy;

use crate::error::{ClientError, Result};

const USER_AGENT: &str = concat!("mcp-client/", env!("CARGO_PKG_VERSION"));

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
        .send()
        .await
        .map_err(|e| ClientError::unreachable(url.as_str(), &e))?;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if status != 200 {
        return Ok(Fetched::Status(status));
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| ClientError::unreachable(url.as_str(), &e))?;
    match serde_json::from_slice(&body) {
        Ok(v) => Ok(Fetched::Json(v, content_type)),
        Err(_) => Ok(Fetched::NotJson(content_type)),
    }
}

/// A short human label of a body for error messages: an OAuth error object if there is one,
/// else the first characters of the text.
pub(crate) fn body_summary(body: &[u8]) -> String {
    if let Ok(err) = serde_json::from_slice::<mcp_auth_proto::ErrorResponse>(body) {
        return format!(": {err}");
    }
    let text = String::from_utf8_lossy(body);
    let text: String = text.chars().filter(|c| !c.is_control()).take(160).collect();
    if text.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", text.trim())
    }
}
