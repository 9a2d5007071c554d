//! The one place where errors become HTTP responses.
//!
//! Every refusal of this server is an [`Error`]. [`Error::into_response_with`] picks the
//! status code, attaches the `WWW-Authenticate` challenges (RFC 6750 §3, RFC 9728 §5.1;
//! with DPoP on, a `DPoP` challenge with `algs` beside or instead of `Bearer`, and a
//! `DPoP-Nonce` when one is required, RFC 9449 §7.1, §9) for the endpoint in question, writes a JSON body with an external message, and logs
//! the internal one. The external message says what failed in protocol terms and never
//! carries internals; neither ever carries a token.

use axum::{
    body::{Body, Bytes},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use mcp_auth_proto::{
    challenge::{BearerChallenge, BearerError, DpopChallenge},
    scope::Scopes,
};
use serde::Serialize;

pub(crate) mod token;

use self::token::{DPOP_NONCE, DpopError, ValidationError};

/// `Retry-After` of the refusals that end by themselves soon (a server that is busy,
/// keys or shared state that are away).
const RETRY_AFTER_SECS: u64 = 5;

/// What the challenges of an endpoint say about DPoP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopAdvert {
    /// Accepted proof algorithms, space-separated (`algs`).
    pub algs: String,
    /// Only DPoP-bound tokens are accepted: no `Bearer` challenge.
    pub required: bool,
}

/// What a challenge says about the endpoint that was refused.
#[derive(Debug, Clone, Default)]
pub struct ChallengeContext {
    /// PRM URL for this endpoint (`resource_metadata`).
    pub resource_metadata: Option<String>,
    /// Scopes to request for this endpoint (`scope` on 401); omitted when empty.
    pub scope: Scopes,
    /// DPoP at this endpoint; `None` when off.
    pub dpop: Option<DpopAdvert>,
}

/// Every way a request can be refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No bearer credentials (401, challenge without `error`).
    #[error("no bearer credentials")]
    MissingCredentials,
    /// A malformed request (400 `invalid_request`).
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// A token that failed validation (401 `invalid_token`).
    #[error("invalid token: {0}")]
    InvalidToken(#[source] ValidationError),
    /// A DPoP proof or binding that failed (401 `invalid_dpop_proof`, `use_dpop_nonce`
    /// or `invalid_token`; 503 when proofs cannot be checked for replay).
    #[error("DPoP: {0}")]
    Dpop(#[source] DpopError),
    /// A session cookie that is unknown or expired (401 `invalid_token`).
    #[error("unknown or expired session cookie")]
    InvalidSession,
    /// Keys could not be obtained to check the token (503).
    #[error("cannot verify tokens: {0}")]
    KeysUnavailable(#[source] ValidationError),
    /// A valid token without the scopes needed (403 `insufficient_scope`).
    #[error("insufficient scope, needs {needed}")]
    InsufficientScope {
        /// Every scope needed for the request.
        needed: Scopes,
    },
    /// An `Origin` that is not allowed (403).
    #[error("origin not allowed")]
    OriginNotAllowed,
    /// A `Host` that is not this server's (403).
    #[error("host not allowed")]
    HostNotAllowed,
    /// An unknown session id, or one owned by someone else (404).
    #[error("unknown session")]
    SessionNotFound,
    /// A body over the size limit (413).
    #[error("request body too large")]
    PayloadTooLarge,
    /// A body that is not JSON (415).
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// A JSON-RPC request whose id is that of a request still in flight in the same
    /// MCP session (400, JSON-RPC `-32600`).
    #[error("request id already in flight in this session")]
    DuplicateRequestId,
    /// Any other malformed request (400, no challenge).
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// A session that cannot take more messages right now (503).
    #[error("session busy")]
    Busy,
    /// The principal already holds as many event streams as allowed (429).
    #[error("too many event streams for this principal (limit {limit})")]
    TooManyStreams {
        /// The per-principal limit.
        limit: usize,
    },
    /// The server holds as many event streams as it allows in total (503).
    #[error("too many event streams open (limit {limit})")]
    StreamCapacity {
        /// The overall limit.
        limit: usize,
    },
    /// The principal already holds as many MCP sessions as allowed (429).
    #[error("too many MCP sessions for this principal (limit {limit})")]
    TooManySessions {
        /// The per-principal limit.
        limit: usize,
    },
    /// The server holds as many MCP sessions as it allows in total (503).
    #[error("too many MCP sessions (limit {limit})")]
    SessionCapacity {
        /// The overall limit.
        limit: usize,
    },
    /// The cookie-session store holds as many sessions as it allows (503).
    #[error("cookie session store full")]
    CookieStoreFull,
    /// The state shared by the instances (Redis) cannot be reached (503, `Retry-After`).
    #[error("shared state unavailable: {0}")]
    StoreUnavailable(String),
    /// A failure of this server (500).
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<ValidationError> for Error {
    fn from(error: ValidationError) -> Self {
        if error.is_unavailable() {
            Self::KeysUnavailable(error)
        } else {
            Self::InvalidToken(error)
        }
    }
}

impl Error {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Dpop(DpopError::ReplayCacheFull | DpopError::SharedReplayUnavailable) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Dpop(DpopError::OverQuota { .. }) => StatusCode::TOO_MANY_REQUESTS,
            Self::MissingCredentials
            | Self::InvalidToken(_)
            | Self::InvalidSession
            | Self::Dpop(_) => StatusCode::UNAUTHORIZED,
            Self::InvalidRequest(_) | Self::BadRequest(_) | Self::DuplicateRequestId => {
                StatusCode::BAD_REQUEST
            }
            Self::KeysUnavailable(_)
            | Self::Busy
            | Self::StreamCapacity { .. }
            | Self::SessionCapacity { .. }
            | Self::CookieStoreFull
            | Self::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooManyStreams { .. } | Self::TooManySessions { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::InsufficientScope { .. } | Self::OriginNotAllowed | Self::HostNotAllowed => {
                StatusCode::FORBIDDEN
            }
            Self::SessionNotFound => StatusCode::NOT_FOUND,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn bearer_error(&self) -> Option<BearerError> {
        match self {
            Self::InvalidRequest(_) => Some(BearerError::InvalidRequest),
            // A bound token sent as `Bearer` is refused under the scheme it came with.
            Self::InvalidToken(_) | Self::InvalidSession | Self::Dpop(DpopError::Downgrade) => {
                Some(BearerError::InvalidToken)
            }
            Self::InsufficientScope { .. } => Some(BearerError::InsufficientScope),
            _ => None,
        }
    }

    /// The message shown to the client: protocol terms only.
    fn external_message(&self) -> &'static str {
        match self {
            Self::MissingCredentials => "Bearer token required in the Authorization header",
            Self::Dpop(error) => error.external_message(),
            Self::InvalidRequest(reason) => reason,
            Self::InvalidToken(ValidationError::Expired) => "The access token expired",
            Self::InvalidToken(ValidationError::NotYetValid) => "The access token is not valid yet",
            Self::InvalidToken(ValidationError::WrongAudience) => {
                "The access token was not issued for this resource"
            }
            Self::InvalidToken(_) => "The access token is invalid",
            Self::InvalidSession => "The session is unknown or expired",
            Self::KeysUnavailable(_) => "Tokens cannot be verified right now",
            Self::InsufficientScope { .. } => {
                "The access token lacks the scopes this request needs"
            }
            Self::OriginNotAllowed => "Origin not allowed",
            Self::HostNotAllowed => "Host not allowed",
            Self::SessionNotFound => "Session not found",
            Self::PayloadTooLarge => "Request body too large",
            Self::UnsupportedMediaType => "Content-Type must be application/json",
            Self::BadRequest(reason) => reason,
            Self::DuplicateRequestId => {
                "Invalid Request: a request with this id is still in flight in this session"
            }
            Self::Busy => "The session is busy; read its event stream and retry",
            Self::TooManyStreams { .. } => {
                "Too many event streams are open for this user; close one and retry"
            }
            Self::StreamCapacity { .. } => "The server cannot open more event streams right now",
            Self::TooManySessions { .. } => {
                "Too many MCP sessions are open for this user; end one (DELETE with its Mcp-Session-Id) or let one idle out, and retry"
            }
            Self::SessionCapacity { .. } => "The server cannot open more MCP sessions right now",
            Self::CookieStoreFull => "The server cannot open more browser sessions right now",
            Self::StoreUnavailable(_) => "Session state is unavailable right now; retry shortly",
            Self::Internal(_) => "Internal error",
        }
    }

    fn error_code(&self) -> &'static str {
        match self {
            Self::MissingCredentials => "unauthorized",
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidToken(_) | Self::InvalidSession => "invalid_token",
            Self::Dpop(error) => error.code(),
            Self::KeysUnavailable(_) => "temporarily_unavailable",
            Self::InsufficientScope { .. } => "insufficient_scope",
            Self::OriginNotAllowed | Self::HostNotAllowed => "forbidden",
            Self::SessionNotFound => "not_found",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::BadRequest(_) => "bad_request",
            Self::DuplicateRequestId => "duplicate_request_id",
            Self::Busy | Self::StreamCapacity { .. } | Self::StoreUnavailable(_) => {
                "temporarily_unavailable"
            }
            Self::TooManyStreams { .. } => "too_many_streams",
            Self::TooManySessions { .. } => "too_many_sessions",
            Self::SessionCapacity { .. } | Self::CookieStoreFull => "temporarily_unavailable",
            Self::Internal(_) => "server_error",
        }
    }

    /// The `scope` of this error's challenges, `None` if it takes no challenge.
    fn challenge_scope(&self, context: &ChallengeContext) -> Option<Option<String>> {
        match self {
            Self::InsufficientScope { needed } => Some(Some(needed.to_string())),
            // Over its share, the client's credentials are fine: no challenge, as for
            // the other per-principal limits.
            Self::Dpop(DpopError::OverQuota { .. }) => None,
            Self::MissingCredentials
            | Self::InvalidRequest(_)
            | Self::InvalidToken(_)
            | Self::InvalidSession
            | Self::Dpop(_) => Some((!context.scope.is_empty()).then(|| context.scope.to_string())),
            _ => None,
        }
    }

    /// The `Bearer` challenge for this error at an endpoint, if it takes one (none where
    /// only DPoP-bound tokens are accepted). A DPoP error goes in the `DPoP` challenge.
    pub fn challenge(&self, context: &ChallengeContext) -> Option<BearerChallenge> {
        if context.dpop.as_ref().is_some_and(|d| d.required) {
            return None;
        }
        let scope = self.challenge_scope(context)?;
        let error = self.bearer_error();
        let error_description = error.as_ref().map(|_| self.external_message().to_string());
        Some(BearerChallenge {
            error,
            error_description,
            scope,
            resource_metadata: context.resource_metadata.clone(),
            ..BearerChallenge::default()
        })
    }

    /// The `DPoP` challenge for this error at an endpoint with DPoP on, if it takes one.
    /// It carries the error when the error is DPoP's, or when it is the only challenge.
    pub fn dpop_challenge(&self, context: &ChallengeContext) -> Option<DpopChallenge> {
        let advert = context.dpop.as_ref()?;
        let scope = self.challenge_scope(context)?;
        let error = match self {
            Self::Dpop(DpopError::Downgrade) if !advert.required => None,
            Self::Dpop(error) => Some(error.code().to_string()),
            _ if advert.required => self.bearer_error().map(|e| e.as_str().to_string()),
            _ => None,
        };
        let error_description = error.as_ref().map(|_| self.external_message().to_string());
        Some(DpopChallenge {
            algs: Some(advert.algs.clone()),
            scope,
            error,
            error_description,
            resource_metadata: context.resource_metadata.clone(),
        })
    }

    /// The `WWW-Authenticate` header value of the `Bearer` challenge, if there is one.
    pub fn challenge_header(&self, context: &ChallengeContext) -> Option<HeaderValue> {
        let challenge = self.challenge(context)?;
        HeaderValue::from_str(&challenge.to_string()).ok()
    }

    /// Every `WWW-Authenticate` value for this error at an endpoint: `Bearer` first,
    /// then `DPoP`.
    fn challenge_headers(&self, context: &ChallengeContext) -> Vec<HeaderValue> {
        let bearer = self.challenge_header(context);
        let dpop = self
            .dpop_challenge(context)
            .and_then(|c| HeaderValue::from_str(&c.to_string()).ok());
        bearer.into_iter().chain(dpop).collect()
    }

    /// Logs this error: a warning for a failure of the server, debug for a refusal.
    fn log(&self) {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), error = %self, "request refused");
        }
    }

    /// The response to this error at an endpoint described by `context`, rendered
    /// (challenge, JSON body) so that it can be answered many times.
    pub fn render(&self, context: &ChallengeContext) -> Refusal {
        let body = match self {
            // Refused before rmcp read the request: a JSON-RPC error without an id
            // (JSON-RPC 2.0 §5), so MCP clients show the reason.
            Self::TooManySessions { limit } | Self::SessionCapacity { limit } => {
                serde_json::to_vec(&serde_json::json!({
                    "jsonrpc": "2.0",
                    "id": null,
                    "error": {
                        "code": -32000,
                        "message": self.external_message(),
                        "data": {"error": self.error_code(), "limit": limit},
                    },
                }))
            }
            // Without the id: the client must not take it for the reply to the request
            // in flight under that id.
            Self::DuplicateRequestId => serde_json::to_vec(&serde_json::json!({
                "jsonrpc": "2.0",
                "id": null,
                "error": {
                    "code": -32600,
                    "message": self.external_message(),
                    "data": {"error": self.error_code()},
                },
            })),
            _ => serde_json::to_vec(&ErrorBody {
                error: self.error_code(),
                error_description: self.external_message(),
            }),
        };
        Refusal {
            status: self.status(),
            challenges: self.challenge_headers(context),
            dpop_nonce: match self {
                Self::Dpop(DpopError::UseNonce(nonce)) => HeaderValue::from_str(nonce).ok(),
                _ => None,
            },
            body: body.expect("strings and numbers serialise").into(),
            retry_after: match self {
                Self::Dpop(DpopError::OverQuota { retry_after }) => Some(*retry_after),
                Self::KeysUnavailable(_)
                | Self::Dpop(DpopError::ReplayCacheFull | DpopError::SharedReplayUnavailable)
                | Self::Busy
                | Self::TooManyStreams { .. }
                | Self::StreamCapacity { .. }
                | Self::TooManySessions { .. }
                | Self::SessionCapacity { .. }
                | Self::CookieStoreFull
                | Self::StoreUnavailable(_) => Some(RETRY_AFTER_SECS),
                _ => None,
            },
            no_store: matches!(
                self,
                Self::MissingCredentials
                    | Self::InvalidToken(_)
                    | Self::InvalidSession
                    | Self::Dpop(_)
                    | Self::InsufficientScope { .. }
            ),
        }
    }

    /// Turns this error into a response for an endpoint described by `context`.
    pub fn into_response_with(self, context: Option<&ChallengeContext>) -> Response {
        self.log();
        self.render(context.unwrap_or(&ChallengeContext::default()))
            .response()
    }

    /// Logs this error and answers `refusal`, which [`Error::render`] made from it
    /// beforehand (for callers that answer the same refusal often).
    pub fn into_rendered_response(self, refusal: &Refusal) -> Response {
        debug_assert_eq!(self.status(), refusal.status);
        self.log();
        refusal.response()
    }
}

/// A refusal rendered by [`Error::render`]: building its response copies no more than
/// reference-counted bytes.
#[derive(Debug, Clone)]
pub struct Refusal {
    status: StatusCode,
    challenges: Vec<HeaderValue>,
    dpop_nonce: Option<HeaderValue>,
    body: Bytes,
    /// `Retry-After`, in seconds.
    retry_after: Option<u64>,
    no_store: bool,
}

impl Refusal {
    /// A fresh response.
    pub fn response(&self) -> Response {
        let mut response = Response::new(Body::from(self.body.clone()));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        // Room for these and the CORS headers added on the way out, without regrowing.
        headers.reserve(8);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for challenge in &self.challenges {
            headers.append(header::WWW_AUTHENTICATE, challenge.clone());
        }
        if let Some(nonce) = &self.dpop_nonce {
            headers.insert(DPOP_NONCE.clone(), nonce.clone());
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.no_store {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        response
    }
}

/// The JSON body of every refusal.
#[derive(Serialize)]
struct ErrorBody {
    error: &'static str,
    error_description: &'static str,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        self.into_response_with(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> ChallengeContext {
        ChallengeContext {
            resource_metadata: Some("http://h/.well-known/oauth-protected-resource/mcp".into()),
            scope: Scopes::parse("mcp:tools"),
            dpop: None,
        }
    }

    fn challenges_of(error: Error, dpop: DpopAdvert) -> (StatusCode, Vec<String>, Option<String>) {
        let context = ChallengeContext {
            dpop: Some(dpop),
            ..context()
        };
        let response = error.into_response_with(Some(&context));
        let values = response
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        let nonce = response
            .headers()
            .get(&DPOP_NONCE)
            .map(|v| v.to_str().unwrap().to_string());
        (response.status(), values, nonce)
    }

    #[test]
    fn dpop_challenges() {
        let allowed = DpopAdvert {
            algs: "ES256 EdDSA".into(),
            required: false,
        };
        let (status, values, nonce) = challenges_of(Error::MissingCredentials, allowed.clone());
        assert_eq!(status, 401);
        assert_eq!(values.len(), 2, "{values:?}");
        assert!(values[0].starts_with("Bearer "), "{values:?}");
        assert_eq!(
            values[1],
            r#"DPoP scope="mcp:tools", resource_metadata="http://h/.well-known/oauth-protected-resource/mcp", algs="ES256 EdDSA""#
        );
        assert_eq!(nonce, None);
        // A DPoP error is the DPoP challenge's, not the Bearer one's.
        let (status, values, _) = challenges_of(Error::Dpop(DpopError::Replayed), allowed.clone());
        assert_eq!(status, 401);
        assert!(!values[0].contains("error="), "{values:?}");
        assert!(
            values[1].starts_with(r#"DPoP error="invalid_dpop_proof""#),
            "{values:?}"
        );
        let (_, values, nonce) =
            challenges_of(Error::Dpop(DpopError::UseNonce("n-1".into())), allowed);
        assert!(
            values[1].starts_with(r#"DPoP error="use_dpop_nonce""#),
            "{values:?}"
        );
        assert_eq!(nonce.as_deref(), Some("n-1"));
        // Required: the DPoP challenge alone, carrying every error.
        let required = DpopAdvert {
            algs: "ES256".into(),
            required: true,
        };
        let (status, values, _) = challenges_of(
            Error::InvalidToken(ValidationError::Expired),
            required.clone(),
        );
        assert_eq!(status, 401);
        assert_eq!(values.len(), 1, "{values:?}");
        assert!(
            values[0].starts_with(r#"DPoP error="invalid_token""#),
            "{values:?}"
        );
        let (status, _, _) =
            challenges_of(Error::Dpop(DpopError::ReplayCacheFull), required.clone());
        assert_eq!(status, 503);
        // Over the principal's share: 429, when to come back, no challenge.
        let context = ChallengeContext {
            dpop: Some(required),
            ..context()
        };
        let response = Error::Dpop(DpopError::OverQuota { retry_after: 42 })
            .into_response_with(Some(&context));
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[header::RETRY_AFTER], "42");
        assert!(response.headers().get(header::WWW_AUTHENTICATE).is_none());
    }

    fn header_of(error: Error) -> (StatusCode, String) {
        let response = error.into_response_with(Some(&context()));
        let value = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (response.status(), value)
    }

    #[test]
    fn challenges() {
        let (status, value) = header_of(Error::MissingCredentials);
        assert_eq!(status, 401);
        assert_eq!(
            value,
            r#"Bearer scope="mcp:tools", resource_metadata="http://h/.well-known/oauth-protected-resource/mcp""#
        );
        let (status, value) = header_of(Error::InvalidToken(ValidationError::Expired));
        assert_eq!(status, 401);
        assert!(value.contains(r#"error="invalid_token""#), "{value}");
        let (status, value) = header_of(Error::InsufficientScope {
            needed: Scopes::parse("mcp:tools mcp:admin"),
        });
        assert_eq!(status, 403);
        assert!(value.contains(r#"error="insufficient_scope""#), "{value}");
        assert!(value.contains(r#"scope="mcp:tools mcp:admin""#), "{value}");
        let (status, value) = header_of(Error::InvalidRequest("token in query"));
        assert_eq!(status, 400);
        assert!(value.contains(r#"error="invalid_request""#), "{value}");
        let (status, value) = header_of(Error::OriginNotAllowed);
        assert_eq!(status, 403);
        assert!(value.is_empty());
    }

    #[test]
    fn stream_limits() {
        let response = Error::TooManyStreams { limit: 3 }.into_response_with(Some(&context()));
        assert_eq!(response.status(), 429);
        assert!(response.headers().get(header::WWW_AUTHENTICATE).is_none());
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
        assert_eq!(
            Error::StreamCapacity { limit: 3 }.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[tokio::test]
    async fn a_rendered_refusal_answers_as_the_error_does() {
        async fn parts(response: Response) -> (StatusCode, Vec<(String, String)>, Bytes) {
            let status = response.status();
            let mut headers: Vec<_> = response
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
                .collect();
            headers.sort();
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            (status, headers, body)
        }
        let refusal = Error::MissingCredentials.render(&context());
        let rendered = parts(Error::MissingCredentials.into_rendered_response(&refusal)).await;
        let fresh = parts(Error::MissingCredentials.into_response_with(Some(&context()))).await;
        assert_eq!(rendered, fresh);
        // A second answer from the same rendering is whole too.
        assert_eq!(parts(refusal.response()).await, fresh);
        let (status, headers, body) = fresh;
        assert_eq!(status, 401);
        assert!(headers.contains(&("cache-control".into(), "no-store".into())));
        assert!(headers.contains(&("content-type".into(), "application/json".into())));
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "unauthorized");
    }
}
