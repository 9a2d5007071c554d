//! The legacy HTTP+SSE transport (MCP 2024-11-05).
//!
//! `GET <sse url>` opens an event stream whose first event, `endpoint`, names the URL to
//! POST messages to (`/messages?sessionId=...`); replies come back on the stream as
//! `message` events. The endpoint must be on the same origin as the stream: the token is
//! never sent anywhere else.
//!
//! Authentication is either the Bearer header on the GET and on every POST, or a session
//! cookie obtained by `POST /session` with the Bearer token (what a browser's
//! `EventSource`, which cannot send headers, has to use). Cookie-authenticated POSTs
//! carry the server's own `Origin`.
//!
//! Each event of the stream is bounded by [`limits::MESSAGE`]; the stream itself lives as
//! long as the session, so it has no overall limit, and the messages read ahead of a
//! request are few (`EVENT_QUEUE`, 64): past them the reader waits.

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;
use url::Url;

use super::event_stream::EventParser;
use super::jsonrpc::{Incoming, classify, find_response};
use super::{Outcome, RpcResult, auth_refusal};
use crate::credential::Credential;
use crate::error::{ClientError, Result};
use crate::http::{RecordedSend as _, limits, read_body};
use crate::trace::Trace;

const AREA: &str = "sse";
const ENDPOINT_TIMEOUT: Duration = Duration::from_secs(10);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(120);
/// Messages read ahead of the request waiting for its response.
const EVENT_QUEUE: usize = 64;

/// How the legacy transport authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseAuth {
    /// `Authorization: Bearer` on the GET and every POST.
    Bearer,
    /// A session cookie from `POST <session_url>`.
    Cookie {
        /// Where to exchange the token for a cookie.
        session_url: Url,
    },
}

/// An open legacy SSE session.
#[derive(Debug)]
pub struct LegacySse {
    http: reqwest::Client,
    endpoint: Url,
    auth: SseAuth,
    origin: String,
    events: mpsc::Receiver<Result<Value>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for LegacySse {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl LegacySse {
    /// Opens the stream at `url` and waits for the `endpoint` event.
    pub async fn open(
        http: &reqwest::Client,
        trace: &Trace,
        url: &Url,
        auth: &SseAuth,
        token: Option<&Credential>,
    ) -> Result<Outcome<LegacySse>> {
        let origin = url.origin().ascii_serialization();
        if let (SseAuth::Cookie { session_url }, Some(t)) = (auth, token)
            && let Outcome::Refused {
                status,
                challenge,
                dpop_offered,
            } = session_cookie(http, trace, session_url, &origin, t).await?
        {
            return Ok(Outcome::Refused {
                status,
                challenge,
                dpop_offered,
            });
        }
        let mut req = http
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "text/event-stream");
        let by = match (auth, token) {
            (SseAuth::Bearer, Some(t)) => {
                req = t.apply(trace, req, "GET", url)?;
                format!(" ({})", t.scheme())
            }
            (SseAuth::Cookie { .. }, Some(_)) => " (session cookie)".to_owned(),
            _ => String::new(),
        };
        let resp = req
            .send_recorded()
            .await
            .map_err(|e| ClientError::unreachable(url.as_str(), e))?;
        if let Some(t) = token {
            t.note_nonce(url, resp.headers());
        }
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        trace.step(AREA, format!("GET {url}{by} -> {status} {ctype}"));
        if let Some(refusal) = auth_refusal(trace, status, resp.headers()) {
            return Ok(refusal);
        }
        if status != 200 || !ctype.starts_with("text/event-stream") {
            return Err(ClientError::HttpStatus {
                url: url.to_string(),
                status,
                detail: Some(
                    "not an SSE stream, so not the legacy HTTP+SSE transport either".to_owned(),
                ),
            });
        }
        // Bounded: while nobody reads (between requests), the reader stops reading and
        // the server meets TCP back-pressure instead of the client's memory growing.
        let (tx, mut rx) = mpsc::channel::<Result<Value>>(EVENT_QUEUE);
        let (endpoint_tx, endpoint_rx) = tokio::sync::oneshot::channel::<String>();
        let reader_trace = trace.clone();
        let stream_url = url.to_string();
        let reader = tokio::spawn(async move {
            let mut endpoint_tx = Some(endpoint_tx);
            let mut parser = EventParser::new(limits::MESSAGE.bytes);
            let mut stream = resp.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let Ok(chunk) = chunk else {
                    let _ = tx
                        .send(Err(ClientError::Transport(
                            "the SSE stream broke".to_owned(),
                        )))
                        .await;
                    return;
                };
                let Ok(events) = parser.push(&chunk) else {
                    let _ = tx
                        .send(Err(ClientError::BodyTooLarge {
                            url: stream_url,
                            what: limits::MESSAGE.what,
                            limit: limits::MESSAGE.bytes,
                        }))
                        .await;
                    return;
                };
                for ev in events {
                    match ev.event.as_str() {
                        "endpoint" => {
                            if let Some(t) = endpoint_tx.take() {
                                let _ = t.send(ev.data);
                            }
                        }
                        "message" => match serde_json::from_str::<Value>(&ev.data) {
                            Ok(v) => {
                                if tx.send(Ok(v)).await.is_err() {
                                    return;
                                }
                            }
                            Err(_) => {
                                reader_trace.step(AREA, "skipping a message event that is not JSON")
                            }
                        },
                        other => reader_trace.detail(AREA, format!("event {other} skipped")),
                    }
                }
            }
            let _ = tx
                .send(Err(ClientError::Transport(
                    "the server closed the SSE stream".to_owned(),
                )))
                .await;
        });
        let endpoint = match tokio::time::timeout(ENDPOINT_TIMEOUT, endpoint_rx).await {
            Ok(Ok(e)) => e,
            _ => {
                reader.abort();
                // Whatever error the reader reported, else the missing event.
                return Err(match rx.try_recv() {
                    Ok(Err(e)) => e,
                    _ => ClientError::Transport(format!(
                        "{url}: no endpoint event within {} s",
                        ENDPOINT_TIMEOUT.as_secs()
                    )),
                });
            }
        };
        let endpoint_url = url
            .join(&endpoint)
            .map_err(|source| ClientError::InvalidUrl {
                what: "legacy SSE stream",
                url: url.to_string(),
                field: Some("endpoint event"),
                value: endpoint.clone(),
                source,
            })?;
        if endpoint_url.origin() != url.origin() {
            reader.abort();
            return Err(ClientError::Transport(format!(
                "the endpoint event names {endpoint_url}, on another origin than the stream: refusing to send credentials there"
            )));
        }
        trace.step(
            AREA,
            format!(
                "endpoint event: messages go to {}",
                strip_query(&endpoint_url)
            ),
        );
        Ok(Outcome::Ok(LegacySse {
            http: http.clone(),
            endpoint: endpoint_url,
            auth: auth.clone(),
            origin,
            events: rx,
            reader,
        }))
    }

    /// With cookie authentication, gets a new cookie for a new token (after a refresh or a
    /// new authorization). Does nothing with Bearer authentication.
    pub async fn renew_credentials(
        &mut self,
        trace: &Trace,
        token: &Credential,
    ) -> Result<Outcome<()>> {
        match &self.auth {
            SseAuth::Bearer => Ok(Outcome::Ok(())),
            SseAuth::Cookie { session_url } => {
                session_cookie(&self.http, trace, session_url, &self.origin, token).await
            }
        }
    }

    /// POSTs one message; for a request (`id: Some`), waits for its response on the stream.
    pub async fn send(
        &mut self,
        trace: &Trace,
        message: &Value,
        id: Option<u64>,
        token: Option<&Credential>,
    ) -> Result<Outcome<Option<RpcResult>>> {
        let method = message
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned();
        let mut req = self.http.post(self.endpoint.clone()).json(message);
        let by = match (&self.auth, token) {
            (SseAuth::Bearer, Some(t)) => {
                req = t.apply(trace, req, "POST", &self.endpoint)?;
                format!(" ({})", t.scheme())
            }
            (SseAuth::Cookie { .. }, _) => {
                req = req.header(reqwest::header::ORIGIN, &self.origin);
                " (session cookie)".to_owned()
            }
            _ => String::new(),
        };
        let resp = req
            .send_recorded()
            .await
            .map_err(|e| ClientError::unreachable(self.endpoint.as_str(), e))?;
        if let Some(t) = token {
            t.note_nonce(&self.endpoint, resp.headers());
        }
        let status = resp.status().as_u16();
        trace.step(
            AREA,
            format!(
                "POST {} {method}{by} -> {status}",
                strip_query(&self.endpoint)
            ),
        );
        if let Some(refusal) = auth_refusal(trace, status, resp.headers()) {
            return Ok(refusal);
        }
        if !(200..300).contains(&status) {
            let body = read_body(resp, self.endpoint.as_str(), limits::ERROR_BODY)
                .await
                .unwrap_or_default();
            return Err(ClientError::HttpStatus {
                url: strip_query(&self.endpoint),
                status,
                detail: crate::http::body_summary(&body),
            });
        }
        let Some(id) = id else {
            return Ok(Outcome::Ok(None));
        };
        let deadline = tokio::time::Instant::now() + RESPONSE_TIMEOUT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.events.recv()).await;
            match next {
                Err(_) => {
                    return Err(ClientError::Transport(format!(
                        "no response to {method} on the SSE stream within {} s",
                        RESPONSE_TIMEOUT.as_secs()
                    )));
                }
                Ok(None) => {
                    return Err(ClientError::Transport("the SSE stream ended".to_owned()));
                }
                Ok(Some(Err(e))) => return Err(e),
                Ok(Some(Ok(msg))) => {
                    if let Some(outcome) = find_response(&msg, id) {
                        trace.step(AREA, format!("response to {method} arrived on the stream"));
                        trace.detail(AREA, format!("response: {msg}"));
                        return Ok(Outcome::Ok(Some(outcome)));
                    }
                    if let Incoming::ServerMessage { method } = classify(&msg) {
                        trace.step(
                            AREA,
                            format!("server sent {method} on the stream (not handled)"),
                        );
                    }
                }
            }
        }
    }
}

/// Exchanges the Bearer token for a session cookie: `POST <session_url>`, expecting
/// `Set-Cookie`. The cookie lands in the client's jar.
async fn session_cookie(
    http: &reqwest::Client,
    trace: &Trace,
    session_url: &Url,
    origin: &str,
    token: &Credential,
) -> Result<Outcome<()>> {
    let req = http
        .post(session_url.clone())
        .header(reqwest::header::ORIGIN, origin);
    let resp = token
        .apply(trace, req, "POST", session_url)?
        .send_recorded()
        .await
        .map_err(|e| ClientError::unreachable(session_url.as_str(), e))?;
    token.note_nonce(session_url, resp.headers());
    let status = resp.status().as_u16();
    let got_cookie = resp.headers().contains_key(reqwest::header::SET_COOKIE);
    trace.step(
        AREA,
        format!(
            "POST {session_url} ({}) -> {status}{}",
            token.scheme(),
            if got_cookie {
                ": session cookie set (HttpOnly, kept in this client's cookie jar)"
            } else {
                ""
            }
        ),
    );
    if let Some(refusal) = auth_refusal(trace, status, resp.headers()) {
        return Ok(refusal);
    }
    if !(200..300).contains(&status) || !got_cookie {
        return Err(ClientError::HttpStatus {
            url: session_url.to_string(),
            status,
            detail: (!got_cookie).then(|| "no session cookie was set".to_owned()),
        });
    }
    Ok(Outcome::Ok(()))
}

/// The URL without its query (the session id is not a credential, but it need not be
/// repeated in every trace line either).
fn strip_query(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.to_string()
}
