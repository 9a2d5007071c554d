//! The audit's HTTP requests: each bounded in time and in the body it reads, never
//! following a redirect (a redirect is something to report, and a token must not travel
//! on to wherever it points).

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::redirect::Policy;
use url::Url;

use crate::error::ClientError;
use crate::http::RecordedSend as _;

/// A foreign origin for CORS and `Origin` checks (`.invalid` is reserved, RFC 2606).
pub(crate) const FOREIGN_ORIGIN: &str = "https://mcp-audit.invalid";

/// What came back.
#[derive(Debug)]
pub(crate) struct Reply {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, at most the probe's limit (empty when the body was not read).
    pub body: Vec<u8>,
    /// The body was longer than the limit, or ended early (time limit, broken stream).
    pub truncated: bool,
}

impl Reply {
    /// The first value of a header, if it is text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every `WWW-Authenticate` value that is text.
    pub(crate) fn www_authenticate(&self) -> Vec<&str> {
        self.headers
            .get_all(reqwest::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }

    /// The media type of the body, lower case, without parameters.
    pub(crate) fn media_type(&self) -> Option<String> {
        self.header("content-type").map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    }

    /// Whether the body is served as `application/json`.
    pub(crate) fn is_json_content_type(&self) -> bool {
        self.media_type().as_deref() == Some("application/json")
    }

    /// Whether the response allows a page of [`FOREIGN_ORIGIN`] to read it.
    pub(crate) fn allows_foreign_origin(&self) -> bool {
        matches!(
            self.header("access-control-allow-origin").map(str::trim),
            Some(o) if o == "*" || o.eq_ignore_ascii_case(FOREIGN_ORIGIN)
        )
    }

    /// A short description of the body for a report line.
    pub(crate) fn summary(&self) -> String {
        match crate::http::body_summary(&self.body) {
            None => "an empty body".to_owned(),
            Some(s) => format!("\"{s}\""),
        }
    }
}

/// An HTTP client for the audit's requests.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    http: reqwest::Client,
    max_body: usize,
}

impl Probe {
    /// Requests that give up after `timeout` and read at most `max_body` bytes of a body.
    pub(crate) fn new(timeout: Duration, max_body: usize) -> Self {
        let http = reqwest::Client::builder()
            .redirect(Policy::none())
            .user_agent(concat!("mcp-client-audit/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .build()
            .expect("static reqwest configuration");
        Self { http, max_body }
    }

    /// A request to build on.
    pub(crate) fn request(&self, method: reqwest::Method, url: &Url) -> reqwest::RequestBuilder {
        self.http.request(method, url.clone())
    }

    /// `GET url` with `Accept: application/json` and the given extra headers.
    pub(crate) async fn get_json(
        &self,
        url: &Url,
        extra: &[(HeaderName, HeaderValue)],
    ) -> Result<Reply, ClientError> {
        let mut req = self
            .request(reqwest::Method::GET, url)
            .header(reqwest::header::ACCEPT, "application/json");
        for (name, value) in extra {
            req = req.header(name, value);
        }
        self.send(req, true).await
    }

    /// Sends `req`; reads the body (bounded) when `read_body`, else drops it unread
    /// (for responses that may be endless event streams).
    ///
    /// # Errors
    /// [`ClientError::Unreachable`] when no response came (refused, timed out).
    pub(crate) async fn send(
        &self,
        req: reqwest::RequestBuilder,
        read_body: bool,
    ) -> Result<Reply, ClientError> {
        let mut resp = req.send_recorded().await.map_err(|e| {
            let url = e.url().map(Url::to_string).unwrap_or_default();
            ClientError::unreachable(url, e)
        })?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let mut body = Vec::new();
        let mut truncated = false;
        if read_body {
            loop {
                match resp.chunk().await {
                    Ok(Some(chunk)) => {
                        let room = self.max_body - body.len();
                        if chunk.len() > room {
                            body.extend_from_slice(&chunk[..room]);
                            truncated = true;
                            break;
                        }
                        body.extend_from_slice(&chunk);
                    }
                    Ok(None) => break,
                    Err(_) => {
                        truncated = true;
                        break;
                    }
                }
            }
        }
        Ok(Reply {
            status,
            headers,
            body,
            truncated,
        })
    }
}

/// The `Origin` header of [`FOREIGN_ORIGIN`].
pub(crate) fn foreign_origin() -> [(HeaderName, HeaderValue); 1] {
    [(
        reqwest::header::ORIGIN,
        HeaderValue::from_static(FOREIGN_ORIGIN),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bodies_are_cut_at_the_limit() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/big", listener.local_addr().unwrap())).unwrap();
        let app = axum::Router::new().route(
            "/big",
            axum::routing::get(|| async {
                ([("content-type", "application/json")], "x".repeat(100_000))
            }),
        );
        let task = tokio::spawn(async move { axum::serve(listener, app).await });
        let probe = Probe::new(Duration::from_secs(5), 1000);
        let reply = probe.get_json(&url, &[]).await.unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body.len(), 1000);
        assert!(reply.truncated);
        assert!(reply.is_json_content_type());
        assert!(!reply.allows_foreign_origin());
        task.abort();
    }

    #[tokio::test]
    async fn an_endless_body_is_cut_at_the_time_limit() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/stream", listener.local_addr().unwrap())).unwrap();
        let app = axum::Router::new().route(
            "/stream",
            axum::routing::get(|| async {
                let endless = futures::stream::unfold((), |()| async {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Some((Ok::<_, std::convert::Infallible>(": tick\n\n"), ()))
                });
                (
                    [("content-type", "text/event-stream")],
                    axum::body::Body::from_stream(endless),
                )
            }),
        );
        let task = tokio::spawn(async move { axum::serve(listener, app).await });
        let probe = Probe::new(Duration::from_secs(1), 1 << 20);
        // The guard only keeps a broken probe from hanging the test run.
        let reply = tokio::time::timeout(Duration::from_secs(30), probe.get_json(&url, &[]))
            .await
            .expect("the probe's own time limit ends the read")
            .unwrap();
        assert_eq!(reply.status, 200);
        assert!(reply.truncated);
        assert!(reply.body.starts_with(b": tick"));
        task.abort();
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_sentence() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = Url::parse(&format!("http://{}/x", listener.local_addr().unwrap())).unwrap();
        drop(listener);
        let err = Probe::new(Duration::from_secs(5), 1000)
            .get_json(&url, &[])
            .await
            .unwrap_err();
        assert!(err.to_string().starts_with("cannot reach"), "{err}");
    }
}
