//! An RFC 7662 token introspection endpoint on a real `127.0.0.1` socket, shaped like
//! Dex's (`<issuer>/token/introspect`, issuer path `/dex`): `client_secret_basic` for
//! one client, a table of answers (`active: false` for any other token), a call
//! counter, and switchable faults (slow answers, garbage, an endpoint that takes no
//! client authentication).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Form, Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use serde_json::{Value, json};

use crate::{http::serve_on_loopback, now};

#[derive(Default)]
struct Shared {
    basic: String,
    answers: Mutex<HashMap<String, Value>>,
    calls: AtomicUsize,
    delay: Mutex<Duration>,
    garbage: AtomicBool,
    no_client_auth: AtomicBool,
}

/// A running introspection endpoint (it serves until the test's runtime ends).
#[derive(Clone)]
pub struct IntrospectionEndpoint {
    url: String,
    issuer: String,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for IntrospectionEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntrospectionEndpoint")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl IntrospectionEndpoint {
    /// Starts on `127.0.0.1:0`, accepting `client_id` with `client_secret` (HTTP Basic).
    pub async fn start(client_id: &str, client_secret: &str) -> Self {
        let shared = Arc::new(Shared {
            basic: format!(
                "Basic {}",
                STANDARD.encode(format!("{client_id}:{client_secret}"))
            ),
            ..Shared::default()
        });
        let app = Router::new()
            .route("/dex/token/introspect", post(introspect))
            .with_state(shared.clone());
        let base =
            serve_on_loopback(|listener, _| async move { axum::serve(listener, app).await }).await;
        Self {
            url: format!("{base}/dex/token/introspect"),
            issuer: format!("{base}/dex"),
            shared,
        }
    }

    /// The endpoint's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The issuer its answers name.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Answers `answer` for `token` from now on.
    pub fn answer(&self, token: &str, answer: Value) {
        self.answers().insert(token.to_string(), answer);
    }

    /// Registers `token` as an active access token of `alice` for `aud`, Dex-shaped
    /// (`token_use`, `ext`), valid for 5 minutes.
    pub fn issue(&self, token: &str, aud: &str, scope: &str) {
        let now = now();
        self.answer(
            token,
            json!({
                "active": true, "sub": "alice", "aud": aud, "iss": self.issuer,
                "exp": now + 300, "iat": now, "nbf": now, "scope": scope,
                "client_id": "mcp-client", "token_type": "Bearer", "token_use": "access_token",
                "ext": {"email": "alice@example.com"}
            }),
        );
    }

    /// Changes the answer for `token` (registered before) in place.
    ///
    /// # Panics
    /// When no answer is registered for `token`.
    pub fn edit(&self, token: &str, change: impl FnOnce(&mut Value)) {
        change(
            self.answers()
                .get_mut(token)
                .expect("an answer for the token"),
        );
    }

    /// Forgets `token`: it is `active: false` from now on.
    pub fn revoke(&self, token: &str) {
        self.answers().remove(token);
    }

    /// How many introspection requests it got.
    pub fn calls(&self) -> usize {
        self.shared.calls.load(Ordering::SeqCst)
    }

    /// Waits this long before each answer.
    pub fn set_delay(&self, delay: Duration) {
        *self
            .shared
            .delay
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = delay;
    }

    /// Whether it answers 200 with a body that is not JSON.
    pub fn set_garbage(&self, garbage: bool) {
        self.shared.garbage.store(garbage, Ordering::SeqCst);
    }

    /// Whether it refuses (400) any request that carries client authentication, as an
    /// endpoint that takes none would.
    pub fn set_no_client_auth(&self, none: bool) {
        self.shared.no_client_auth.store(none, Ordering::SeqCst);
    }

    fn answers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Value>> {
        self.shared
            .answers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

async fn introspect(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    shared.calls.fetch_add(1, Ordering::SeqCst);
    let delay = *shared.delay.lock().unwrap_or_else(PoisonError::into_inner);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if shared.garbage.load(Ordering::SeqCst) {
        return (StatusCode::OK, "<html>not json</html>").into_response();
    }
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if shared.no_client_auth.load(Ordering::SeqCst) {
        if authorization.is_some() {
            return (StatusCode::BAD_REQUEST, "no client authentication expected").into_response();
        }
    } else if authorization != Some(shared.basic.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    if form.get("token_type_hint").map(String::as_str) != Some("access_token") {
        return (StatusCode::BAD_REQUEST, "token_type_hint expected").into_response();
    }
    let answer = form
        .get("token")
        .and_then(|token| {
            shared
                .answers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(token)
                .cloned()
        })
        .unwrap_or_else(|| json!({"active": false}));
    Json(answer).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn ask(
        endpoint: &IntrospectionEndpoint,
        basic: Option<(&str, &str)>,
        token: &str,
    ) -> (u16, String) {
        let mut request = reqwest::Client::new()
            .post(endpoint.url())
            .form(&[("token", token), ("token_type_hint", "access_token")]);
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    #[tokio::test]
    async fn answers_its_client_from_the_table_and_refuses_others() {
        let endpoint = IntrospectionEndpoint::start("rs", "s3cret").await;
        endpoint.issue("t1", "http://rs/mcp", "mcp:tools");
        let (status, body) = ask(&endpoint, Some(("rs", "s3cret")), "t1").await;
        assert_eq!(status, 200);
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (body["active"].clone(), body["iss"].clone()),
            (json!(true), json!(endpoint.issuer()))
        );
        let (_, body) = ask(&endpoint, Some(("rs", "s3cret")), "unknown").await;
        assert_eq!(body, r#"{"active":false}"#);
        assert_eq!(ask(&endpoint, Some(("rs", "wrong")), "t1").await.0, 401);
        endpoint.revoke("t1");
        assert_eq!(
            ask(&endpoint, Some(("rs", "s3cret")), "t1").await.1,
            r#"{"active":false}"#
        );
        endpoint.set_no_client_auth(true);
        assert_eq!(ask(&endpoint, Some(("rs", "s3cret")), "t1").await.0, 400);
        assert_eq!(ask(&endpoint, None, "t1").await.0, 200);
        endpoint.set_garbage(true);
        assert_eq!(ask(&endpoint, None, "t1").await.1, "<html>not json</html>");
        assert_eq!(endpoint.calls(), 7);
    }
}
