//! The Streamable HTTP transport (MCP 2025-03-26 and later).
//!
//! Every message is a POST to the MCP URL with `Accept: application/json,
//! text/event-stream`. A request's reply is either a JSON body or an SSE stream whose
//! `message` events carry JSON-RPC messages until the response arrives. The
//! `Mcp-Session-Id` the server gives at initialization is sent back on every later
//! message, and so is the negotiated `MCP-Protocol-Version`.
//!
//! A JSON reply and each event of a reply stream are bounded by
//! [`limits::MESSAGE`], a reply stream as a whole by [`limits::REPLY_STREAM`].

use futures::StreamExt;
use serde_json::Value;
use url::Url;

use super::event_stream::EventParser;
use super::jsonrpc::{Incoming, classify, find_response};
use super::{Outcome, RpcResult, auth_refusal};
use crate::credential::Credential;
use crate::error::{ClientError, Result};
use crate::http::{Limit, RecordedSend as _, limits, read_body};
use crate::trace::Trace;

const AREA: &str = "mcp";

/// A Streamable HTTP session.
#[derive(Debug)]
pub struct Streamable {
    http: reqwest::Client,
    url: Url,
    session_id: Option<String>,
    protocol_version: Option<String>,
    modern: bool,
}

impl Streamable {
    /// A session with the MCP endpoint `url`.
    #[must_use]
    pub fn new(http: reqwest::Client, url: Url) -> Self {
        Self {
            http,
            url,
            session_id: None,
            protocol_version: None,
            modern: false,
        }
    }

    /// Sets the negotiated protocol version (sent as `MCP-Protocol-Version`).
    pub fn set_protocol_version(&mut self, version: &str) {
        self.protocol_version = Some(version.to_owned());
    }

    /// Speaks the 2026-07-28 wire: every request carries `version` in its own
    /// `MCP-Protocol-Version` header (given per message), and a 4xx whose body is a
    /// JSON-RPC error is that error, not a transport failure.
    pub fn set_modern(&mut self, modern: bool) {
        self.modern = modern;
        if modern {
            self.protocol_version = None;
            self.session_id = None;
        }
    }

    /// The session id the server assigned, if any.
    #[must_use]
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    /// Deletes the session on the server, if it assigned one.
    pub async fn terminate(&mut self, trace: &Trace, token: Option<&Credential>) {
        let Some(sid) = self.session_id.take() else {
            return;
        };
        let mut req = self
            .http
            .delete(self.url.clone())
            .header("Mcp-Session-Id", sid);
        if let Some(v) = &self.protocol_version {
            req = req.header("MCP-Protocol-Version", v);
        }
        if let Some(t) = token {
            match t.apply(trace, req, "DELETE", &self.url) {
                Ok(r) => req = r,
                Err(e) => {
                    trace.step(
                        AREA,
                        format!("DELETE {} (end of session) not sent: {e}", self.url),
                    );
                    return;
                }
            }
        }
        match req.send_recorded().await {
            Ok(resp) => trace.step(
                AREA,
                format!(
                    "DELETE {} (end of session) -> {}",
                    self.url,
                    resp.status().as_u16()
                ),
            ),
            Err(e) => trace.step(
                AREA,
                format!(
                    "DELETE {} (end of session) failed: {}",
                    self.url,
                    ClientError::unreachable(self.url.as_str(), e)
                ),
            ),
        }
    }

    /// Sends one message with `headers` besides the transport's own (the modern
    /// wire's request headers). For a request (`id: Some`), waits for its response.
    pub async fn send(
        &mut self,
        trace: &Trace,
        message: &Value,
        headers: &[(String, String)],
        id: Option<u64>,
        token: Option<&Credential>,
    ) -> Result<Outcome<Option<RpcResult>>> {
        let method = message
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned();
        let mut req = self
            .http
            .post(self.url.clone())
            .header(
                reqwest::header::ACCEPT,
                "application/json, text/event-stream",
            )
            .json(message);
        if let Some(sid) = &self.session_id {
            req = req.header("Mcp-Session-Id", sid);
        }
        if let Some(v) = &self.protocol_version {
            req = req.header("MCP-Protocol-Version", v);
        }
        for (name, value) in headers {
            req = req.header(name.as_str(), value.as_str());
        }
        if let Some(t) = token {
            req = t.apply(trace, req, "POST", &self.url)?;
        }
        let resp = req
            .send_recorded()
            .await
            .map_err(|e| ClientError::unreachable(self.url.as_str(), e))?;
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        trace.step(
            AREA,
            format!(
                "POST {} {method}{} -> {status}{}",
                self.url,
                token
                    .map(|t| format!(" ({})", t.scheme()))
                    .unwrap_or_default(),
                if ctype.is_empty() {
                    String::new()
                } else {
                    format!(" {}", ctype.split(';').next().unwrap_or(""))
                }
            ),
        );
        if let Some(t) = token {
            t.note_nonce(&self.url, resp.headers());
        }
        if let Some(refusal) = auth_refusal(trace, status, resp.headers()) {
            return Ok(refusal);
        }
        if !(200..300).contains(&status) {
            let body = read_body(resp, self.url.as_str(), limits::ERROR_BODY)
                .await
                .unwrap_or_default();
            // A modern server states what it refused as a JSON-RPC error; a legacy one's
            // 4xx is kept as such (the session falls back on it).
            if (400..500).contains(&status)
                && let Some(err) = rpc_error_body(&body)
                && (self.modern || super::modern::is_modern_error(err.code))
            {
                trace.detail(
                    AREA,
                    format!("error response: {}", String::from_utf8_lossy(&body)),
                );
                return Ok(Outcome::Ok(Some(Err(err))));
            }
            return Err(ClientError::HttpStatus {
                url: self.url.to_string(),
                status,
                detail: crate::http::body_summary(&body),
            });
        }
        // Sessions are not part of the 2026-07-28 wire: an Mcp-Session-Id is ignored there.
        if let Some(sid) = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            && !self.modern
            && self.session_id.as_deref() != Some(sid)
        {
            trace.step(
                AREA,
                "the server assigned an Mcp-Session-Id; it goes on every later request",
            );
            self.session_id = Some(sid.to_owned());
        }
        let Some(id) = id else {
            return Ok(Outcome::Ok(None));
        };
        if status == 202 {
            return Err(ClientError::Transport(format!(
                "{method}: HTTP 202 without a response"
            )));
        }
        if ctype.starts_with("text/event-stream") {
            let too_large = |limit: Limit| ClientError::BodyTooLarge {
                url: self.url.to_string(),
                what: limit.what,
                limit: limit.bytes,
            };
            let mut parser = EventParser::new(limits::MESSAGE.bytes);
            let mut received = 0usize;
            let mut stream = resp.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| ClientError::unreachable(self.url.as_str(), e))?;
                received += chunk.len();
                if received > limits::REPLY_STREAM.bytes {
                    return Err(too_large(limits::REPLY_STREAM));
                }
                let events = parser
                    .push(&chunk)
                    .map_err(|_| too_large(limits::MESSAGE))?;
                for ev in events {
                    if ev.event != "message" {
                        continue;
                    }
                    let Ok(msg) = serde_json::from_str::<Value>(&ev.data) else {
                        trace.step(AREA, "skipping an SSE event that is not JSON");
                        continue;
                    };
                    if let Some(outcome) = find_response(&msg, id) {
                        trace.detail(AREA, format!("response (SSE-framed): {}", ev.data));
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
            Err(ClientError::Transport(format!(
                "the SSE stream of {method} ended before its response"
            )))
        } else {
            let body = read_body(resp, self.url.as_str(), limits::MESSAGE).await?;
            let msg: Value =
                serde_json::from_slice(&body).map_err(|e| ClientError::MalformedJson {
                    what: "MCP response",
                    url: self.url.to_string(),
                    source: e,
                })?;
            trace.detail(AREA, format!("response: {msg}"));
            find_response(&msg, id)
                .map(|o| Outcome::Ok(Some(o)))
                .ok_or_else(|| {
                    ClientError::Transport(format!("the reply to {method} is not its response"))
                })
        }
    }
}

/// The JSON-RPC error of an error response body, if it is one.
fn rpc_error_body(body: &[u8]) -> Option<super::jsonrpc::RpcError> {
    let msg: Value = serde_json::from_slice(body).ok()?;
    let err = msg.get("error")?;
    Some(super::jsonrpc::RpcError {
        code: err.get("code")?.as_i64()?,
        message: err
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        data: err.get("data").cloned(),
    })
}
