//! CORS as Dex applies it: only on discovery, token, keys, userinfo and introspection,
//! for the origins of `web.allowedOrigins` (`*` allows any), with the rules of the CORS
//! handler Dex uses (gorilla/handlers). A preflight must name a method (400 otherwise)
//! among GET, HEAD and POST (405 otherwise), and may ask only for the headers
//! `Authorization`, `web.allowedHeaders` and the always-allowed `Accept`,
//! `Accept-Language`, `Content-Language` and `Origin`: asking for any other, such as
//! `Content-Type`, gets 403. Requests from other origins get no CORS headers.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

const DEFAULT_HEADERS: [&str; 4] = ["accept", "accept-language", "content-language", "origin"];
const METHODS: [&str; 3] = ["GET", "HEAD", "POST"];

/// The CORS policy of `web.allowedOrigins` and `web.allowedHeaders`.
#[derive(Debug, Clone)]
pub(crate) struct Cors {
    origins: Vec<String>,
    headers: Vec<String>,
}

impl Cors {
    /// The policy, or `None` when no origin is allowed (Dex then adds no CORS handler).
    pub(crate) fn new(origins: &[String], extra_headers: &[String]) -> Option<Arc<Self>> {
        if origins.is_empty() {
            return None;
        }
        let mut headers = vec!["authorization".to_owned()];
        headers.extend(extra_headers.iter().map(|h| h.trim().to_ascii_lowercase()));
        let origins = if origins.iter().any(|o| o == "*") {
            vec!["*".to_owned()]
        } else {
            origins.to_vec()
        };
        Some(Arc::new(Self { origins, headers }))
    }

    fn allows(&self, origin: &str) -> bool {
        !origin.is_empty() && self.origins.iter().any(|o| o == "*" || o == origin)
    }

    fn decorate(&self, response: &mut Response, origin: &str) {
        let headers = response.headers_mut();
        if self.origins.len() > 1 {
            headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
        let value = if self.origins.iter().any(|o| o == "*") {
            HeaderValue::from_static("*")
        } else {
            match HeaderValue::from_str(origin) {
                Ok(v) => v,
                Err(_) => return,
            }
        };
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }

    fn preflight(&self, request: &Request) -> Response {
        let Some(method) = request.headers().get(header::ACCESS_CONTROL_REQUEST_METHOD) else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        if !METHODS.iter().any(|m| method.as_bytes() == m.as_bytes()) {
            return StatusCode::METHOD_NOT_ALLOWED.into_response();
        }
        let asked = request
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let mut allowed: Vec<String> = Vec::new();
        for name in asked.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let lower = name.to_ascii_lowercase();
            if DEFAULT_HEADERS.contains(&lower.as_str()) {
                continue;
            }
            if !self.headers.contains(&lower) {
                return StatusCode::FORBIDDEN.into_response();
            }
            allowed.push(lower);
        }
        let mut response = StatusCode::OK.into_response();
        if let Some(value) = (!allowed.is_empty())
            .then(|| HeaderValue::from_str(&allowed.join(",")).ok())
            .flatten()
        {
            response
                .headers_mut()
                .insert(header::ACCESS_CONTROL_ALLOW_HEADERS, value);
        }
        response
    }
}

/// The middleware, for `axum::middleware::from_fn_with_state`.
pub(crate) async fn layer(State(cors): State<Arc<Cors>>, request: Request, next: Next) -> Response {
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let preflight = request.method() == Method::OPTIONS;
    if !cors.allows(&origin) {
        if preflight {
            return Response::new(Body::empty());
        }
        return next.run(request).await;
    }
    let mut response = if preflight {
        cors.preflight(&request)
    } else {
        next.run(request).await
    };
    if !preflight || response.status() == StatusCode::OK {
        cors.decorate(&mut response, &origin);
    }
    response
}
