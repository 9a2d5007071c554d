//! The loopback redirect listener (RFC 8252 §7.3).
//!
//! Binds `127.0.0.1` (never all interfaces) on an ephemeral port, or on a configured one
//! for authorization servers that match redirect URIs exactly, and serves
//! `GET /callback`. It checks, in order: that the request is an authorization response
//! (`code` or `error`), its `state` (CSRF, RFC 6749 §10.12), `iss` when present or
//! promised (RFC 9207), then `error` or `code`. The browser gets a short page saying what
//! happened, every echoed value HTML-escaped.
//!
//! # Security
//! Any local process can reach the port. A request that is not an authorization response
//! or whose `state` is not the one sent is answered 400 and otherwise ignored: the
//! listener keeps waiting for the real response until its timeout, so one junk request
//! cannot end a login. The first response with the right `state` decides the outcome
//! (a wrong `iss` then fails the login: that response is the real one, and it says it
//! comes from another authorization server); any later one is answered 409.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use tokio::sync::oneshot;

use crate::error::{ClientError, Result};

/// The path of the redirect URI.
pub const CALLBACK_PATH: &str = "/callback";

/// What the callback must carry.
#[derive(Debug, Clone)]
pub struct Expected {
    /// The `state` sent with the authorization request.
    pub state: String,
    /// The authorization server's issuer.
    pub issuer: String,
    /// True when the AS advertises `authorization_response_iss_parameter_supported`:
    /// a missing `iss` is then an error (RFC 9207 §2.4).
    pub iss_required: bool,
}

/// A successful callback.
pub struct Callback {
    /// The authorization code.
    pub code: String,
    /// The `iss` parameter, if sent.
    pub iss: Option<String>,
    /// Requests to the callback that were ignored before this one.
    pub ignored: u32,
}

impl std::fmt::Debug for Callback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callback")
            .field("code", &"[redacted]")
            .field("iss", &self.iss)
            .field("ignored", &self.ignored)
            .finish()
    }
}

/// A bound listener, not yet serving.
#[derive(Debug)]
pub struct CallbackListener {
    listener: tokio::net::TcpListener,
    redirect_uri: String,
}

impl CallbackListener {
    /// Binds `127.0.0.1:port` (`0` for an ephemeral port).
    pub async fn bind(port: u16) -> std::io::Result<Self> {
        let listener =
            tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
        let port = listener.local_addr()?.port();
        Ok(Self {
            listener,
            redirect_uri: format!("http://127.0.0.1:{port}{CALLBACK_PATH}"),
        })
    }

    /// The redirect URI (`http://127.0.0.1:<port>/callback`).
    #[must_use]
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Starts serving; the returned handle waits for the outcome.
    #[must_use]
    pub fn serve(self, expected: Expected) -> PendingCallback {
        let (tx, rx) = oneshot::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let state = Arc::new(Shared {
            expected,
            redirect_uri: self.redirect_uri.clone(),
            outcome: Mutex::new(Some(tx)),
            ignored: Mutex::default(),
        });
        let app = router(state.clone());
        let listener = self.listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await;
        });
        PendingCallback {
            rx,
            stop: Some(stop_tx),
            task,
            shared: state,
        }
    }
}

/// A listener that is serving.
pub struct PendingCallback {
    rx: oneshot::Receiver<Result<Callback>>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PendingCallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingCallback")
            .field("ignored", &self.shared.ignored().count)
            .finish_non_exhaustive()
    }
}

impl PendingCallback {
    /// Waits for the first decisive callback, at most `timeout`; then stops the listener.
    /// Requests that were ignored (not an authorization response, or a wrong `state`)
    /// do not end the wait; the timeout error counts them.
    pub async fn wait(mut self, timeout: Duration) -> Result<Callback> {
        let out = match tokio::time::timeout(timeout, &mut self.rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(ClientError::Transport(
                "the callback listener stopped".to_owned(),
            )),
            Err(_) => Err(ClientError::CallbackTimeout {
                waited: timeout,
                ignored: self.shared.ignored().count,
            }),
        };
        self.shutdown().await;
        out
    }

    /// True once a response with the right `state` arrived (whatever it said).
    #[must_use]
    pub fn decided(&self) -> bool {
        self.shared.outcome.lock().map_or(true, |o| o.is_none())
    }

    /// How many requests were answered 400 and ignored so far.
    #[must_use]
    pub fn ignored(&self) -> u32 {
        self.shared.ignored().count
    }

    /// Gives up on a callback that will not come (the headless follower delivered the
    /// authorization server's redirect and the listener ignored it): stops the listener
    /// and says why that redirect was not accepted.
    pub async fn abandon(mut self) -> ClientError {
        let outcome = self.rx.try_recv();
        self.shutdown().await;
        match outcome {
            Ok(Err(e)) => e,
            Ok(Ok(_)) => ClientError::Transport(
                "the authorization response arrived after it was given up".to_owned(),
            ),
            Err(_) => match self.shared.ignored().last {
                Some(Rejection::WrongState) => ClientError::StateMismatch,
                Some(Rejection::NotAResponse) => ClientError::Headless {
                    url: self.shared.redirect_uri.clone(),
                    reason: "the authorization server redirected without a code or an error"
                        .to_owned(),
                },
                None => ClientError::Headless {
                    url: self.shared.redirect_uri.clone(),
                    reason: "the callback listener did not answer the redirect".to_owned(),
                },
            },
        }
    }

    async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Let the page reach the browser, but do not hang on a kept-alive connection.
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.task).await;
        self.task.abort();
    }
}

struct Shared {
    expected: Expected,
    redirect_uri: String,
    outcome: Mutex<Option<oneshot::Sender<Result<Callback>>>>,
    ignored: Mutex<Ignored>,
}

/// The requests the listener answered 400 and ignored.
#[derive(Debug, Default, Clone, Copy)]
struct Ignored {
    count: u32,
    last: Option<Rejection>,
}

/// Why a request to the callback was ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rejection {
    /// Neither `code` nor `error`, or a query that does not parse.
    NotAResponse,
    /// A `state` other than the one sent (or none).
    WrongState,
}

impl Shared {
    fn ignore(&self, why: Rejection) {
        if let Ok(mut ignored) = self.ignored.lock() {
            ignored.count += 1;
            ignored.last = Some(why);
        }
    }

    fn ignored(&self) -> Ignored {
        self.ignored.lock().map(|i| *i).unwrap_or_default()
    }
}

fn router(state: Arc<Shared>) -> Router {
    Router::new()
        .route(CALLBACK_PATH, get(callback))
        .with_state(state)
}

#[derive(serde::Deserialize)]
struct Params {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    iss: Option<String>,
}

async fn callback(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(p)) = query else {
        shared.ignore(Rejection::NotAResponse);
        return page(
            StatusCode::BAD_REQUEST,
            "Not an authorization response",
            "The query string could not be read.",
        );
    };
    if p.code.is_none() && p.error.is_none() {
        shared.ignore(Rejection::NotAResponse);
        return page(
            StatusCode::BAD_REQUEST,
            "Not an authorization response",
            "This address expects a code or an error from the authorization server.",
        );
    }
    let e = &shared.expected;
    if p.state.as_deref() != Some(e.state.as_str()) {
        // Not the response to this client's request (a stale tab, another program, an
        // attacker): ignored, and the real one can still arrive.
        shared.ignore(Rejection::WrongState);
        return page(
            StatusCode::BAD_REQUEST,
            "Not this client's authorization",
            "The state of this response is not the one the client sent, so it was ignored. If you are logging in, finish in the tab the client opened.",
        );
    }
    let Some(sender) = shared.outcome.lock().ok().and_then(|mut o| o.take()) else {
        return page(
            StatusCode::CONFLICT,
            "Already handled",
            "An authorization response was already received. You can close this tab.",
        );
    };
    let (result, resp) = if p.iss.as_deref().is_some_and(|iss| iss != e.issuer)
        || (p.iss.is_none() && e.iss_required)
    {
        let found = p.iss.clone().unwrap_or_else(|| "(missing)".to_owned());
        let text = format!(
            "The response names the issuer {}, not {}, so it was discarded. Return to the terminal.",
            escape(&found),
            escape(&e.issuer)
        );
        (
            Err(ClientError::CallbackIssuerMismatch {
                expected: e.issuer.clone(),
                found,
            }),
            page_html(StatusCode::BAD_REQUEST, "Authorization failed", &text),
        )
    } else if let Some(error) = p.error {
        let text = format!(
            "The authorization server answered <code>{}</code>{}. Return to the terminal.",
            escape(&error),
            p.error_description
                .as_deref()
                .map(|d| format!(": {}", escape(d)))
                .unwrap_or_default()
        );
        (
            Err(ClientError::AuthorizationDenied {
                error,
                description: p.error_description,
            }),
            page_html(StatusCode::OK, "Authorization refused", &text),
        )
    } else {
        let code = p.code.unwrap_or_default();
        (
            Ok(Callback {
                code,
                iss: p.iss,
                ignored: shared.ignored().count,
            }),
            page(
                StatusCode::OK,
                "Authorized",
                "mcp-client received the authorization. You can close this tab and return to the terminal.",
            ),
        )
    };
    let _ = sender.send(result);
    resp
}

fn page(status: StatusCode, title: &str, text: &str) -> Response {
    page_html(status, title, &escape(text))
}

fn page_html(status: StatusCode, title: &str, body_html: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font-family:sans-serif;max-width:40em;margin:4em auto}}</style></head>\
         <body><h1>{t}</h1><p>{body_html}</p></body></html>",
        t = escape(title)
    );
    let mut resp = (status, Html(html)).into_response();
    let h = resp.headers_mut();
    h.insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    h.insert(
        axum::http::header::CONTENT_SECURITY_POLICY,
        axum::http::HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    h.insert(
        axum::http::header::REFERRER_POLICY,
        axum::http::HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// HTML-escapes text for element content and attribute values.
#[must_use]
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<script>alert('x')&\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;)&amp;&quot;&lt;/script&gt;"
        );
    }
}
