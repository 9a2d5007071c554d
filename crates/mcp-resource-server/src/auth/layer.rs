//! The authorization layer: a tower [`Layer`] that puts bearer-token authorization in
//! front of any service (an axum `Router`, an rmcp `StreamableHttpService`, ...).
//!
//! For each request it:
//! 1. refuses credentials outside the `Authorization` header: an `access_token` query
//!    parameter, or a form-encoded body without the header (RFC 6750 §2.2/§2.3), answer
//!    400 `invalid_request` and the token in them is never used;
//! 2. reads exactly one `Authorization: Bearer <token>` header (scheme case-insensitive);
//! 3. or, where enabled with [`AuthLayer::with_cookie_sessions`] and no header was sent,
//!    the session cookie, which needs an allowed `Origin` on state-changing methods;
//! 4. validates the token with the [`Validator`];
//! 5. checks the layer's required scopes (403 `insufficient_scope`);
//! 6. hands `Arc<VerifiedClaims>` and the [`AuthMethod`] to the inner service as request
//!    extensions (see [`VerifiedClaims`] for the extractor).
//!
//! Refusals become responses in [`crate::error`], with a challenge naming this layer's
//! PRM URL and scopes.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    BoxError,
    body::{Body, Bytes, HttpBody},
    http::{HeaderMap, Method, Request, Uri, header},
    response::Response,
};
use mcp_auth_proto::{scope::Scopes, secret};
use tower::{Layer, Service};

use super::{claims::VerifiedClaims, validator::Validator};
use crate::{
    error::{ChallengeContext, Error},
    session::{CookieSessions, cookie_value},
};

/// How a request was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthMethod {
    /// `Authorization: Bearer`.
    Bearer,
    /// The session cookie issued by `POST /session`.
    Cookie {
        /// When the cookie session ends (seconds since the epoch).
        expires_at: u64,
    },
}

/// The first instant at which the credentials of a request are no longer accepted:
/// the token's `exp` plus the validator's leeway, or the end of the cookie session if
/// that is earlier. Put in the request extensions by [`AuthLayer`] next to
/// [`AuthMethod`]; event streams opened by the request end then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthorizedUntil(pub SystemTime);

impl AuthorizedUntil {
    /// Time left from now (zero once passed), to the millisecond or finer.
    pub fn remaining(&self) -> Duration {
        self.0
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    }
}

/// Cookie authentication settings for [`AuthLayer::with_cookie_sessions`].
#[derive(Debug, Clone)]
pub struct CookieAuth {
    /// Where sessions live.
    pub sessions: Arc<CookieSessions>,
    /// Cookie name.
    pub cookie_name: String,
    /// Origins allowed to use the cookie (serialised `scheme://host[:port]`).
    pub allowed_origins: Arc<[String]>,
}

#[derive(Debug, Clone)]
struct Settings {
    validator: Arc<Validator>,
    challenge: ChallengeContext,
    required_scopes: Scopes,
    cookies: Option<CookieAuth>,
}

/// Layer that authorizes requests with bearer tokens. See the module documentation.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    settings: Arc<Settings>,
}

impl AuthLayer {
    /// A layer validating tokens with `validator`; no scope required, no cookies.
    pub fn new(validator: Arc<Validator>) -> Self {
        Self {
            settings: Arc::new(Settings {
                validator,
                challenge: ChallengeContext::default(),
                required_scopes: Scopes::default(),
                cookies: None,
            }),
        }
    }

    /// Sets the PRM URL put in challenges (`resource_metadata`).
    #[must_use]
    pub fn with_resource_metadata(mut self, url: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.settings)
            .challenge
            .resource_metadata = Some(url.into());
        self
    }

    /// Sets the scopes every request needs; also advertised in 401 challenges.
    #[must_use]
    pub fn with_required_scopes(mut self, scopes: Scopes) -> Self {
        let settings = Arc::make_mut(&mut self.settings);
        settings.challenge.scope = scopes.clone();
        settings.required_scopes = scopes;
        self
    }

    /// Accepts the session cookie when no `Authorization` header is sent.
    #[must_use]
    pub fn with_cookie_sessions(mut self, cookies: CookieAuth) -> Self {
        Arc::make_mut(&mut self.settings).cookies = Some(cookies);
        self
    }

    /// Authorizes a request from its head. Public so other transports can reuse it.
    ///
    /// # Errors
    /// The [`Error`] to answer with.
    pub async fn authorize(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<(Arc<VerifiedClaims>, AuthMethod), Error> {
        self.settings.authorize(method, uri, headers).await
    }

    /// When the credentials behind `claims` (sent as `method`) stop being accepted.
    pub fn authorized_until(&self, claims: &VerifiedClaims, method: AuthMethod) -> AuthorizedUntil {
        self.settings.authorized_until(claims, method)
    }

    /// The challenge context of this layer.
    pub fn challenge_context(&self) -> &ChallengeContext {
        &self.settings.challenge
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            settings: self.settings.clone(),
        }
    }
}

/// The service made by [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    settings: Arc<Settings>,
}

/// Response future of [`AuthService`].
pub type AuthFuture<E> = Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AuthService<S>
where
    S: Service<Request<ReqBody>, Response = axum::http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = AuthFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let settings = self.settings.clone();
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            match settings
                .authorize(request.method(), request.uri(), request.headers())
                .await
            {
                Ok((claims, method)) => {
                    let until = settings.authorized_until(&claims, method);
                    request.extensions_mut().insert(claims);
                    request.extensions_mut().insert(method);
                    request.extensions_mut().insert(until);
                    let response = inner.call(request).await?;
                    Ok(response.map(Body::new))
                }
                Err(error) => Ok(error.into_response_with(Some(&settings.challenge))),
            }
        })
    }
}

/// `b64token` of RFC 6750 §2.1.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// The bearer token of the `Authorization` header: `Ok(None)` when there is no header.
fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, Error> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Error::InvalidRequest("More than one Authorization header"));
    }
    let value = value
        .to_str()
        .map_err(|_| Error::InvalidRequest("Malformed Authorization header"))?;
    let (scheme, credentials) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Error::MissingCredentials);
    }
    let token = credentials.trim_start_matches(' ');
    if !is_b64token(token) {
        return Err(Error::InvalidRequest("Malformed Bearer credentials"));
    }
    Ok(Some(token))
}

fn query_has_token(uri: &Uri) -> bool {
    uri.query().is_some_and(|query| {
        url::form_urlencoded::parse(query.as_bytes()).any(|(key, _)| key == "access_token")
    })
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|essence| {
                essence
                    .trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        })
}

/// Whether `Origin` (if any) is allowed; state-changing methods must send one.
pub fn origin_allowed(method: &Method, headers: &HeaderMap, allowed: &[String]) -> bool {
    match headers.get(header::ORIGIN).map(|v| v.to_str()) {
        None => matches!(*method, Method::GET | Method::HEAD),
        Some(Ok(origin)) => allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)),
        Some(Err(_)) => false,
    }
}

impl Settings {
    fn authorized_until(&self, claims: &VerifiedClaims, method: AuthMethod) -> AuthorizedUntil {
        let token_end = self.validator.accepted_until(claims);
        AuthorizedUntil(match method {
            AuthMethod::Bearer => token_end,
            // The cookie session is refused once its whole-second end is reached.
            AuthMethod::Cookie { expires_at } => UNIX_EPOCH
                .checked_add(Duration::from_secs(expires_at))
                .map_or(token_end, |end| end.min(token_end)),
        })
    }

    async fn authorize(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<(Arc<VerifiedClaims>, AuthMethod), Error> {
        if query_has_token(uri) {
            tracing::info!("refused a token sent in the query string");
            return Err(Error::InvalidRequest(
                "Tokens are accepted only in the Authorization header",
            ));
        }
        let token = bearer_token(headers)?;
        let (claims, auth_method) = match token {
            Some(token) => match self.validator.validate(token).await {
                Ok(claims) => (claims, AuthMethod::Bearer),
                Err(error) => {
                    tracing::info!(token = %secret::fingerprint(token), reason = %error, "bearer token refused");
                    return Err(error.into());
                }
            },
            None => {
                if is_form(headers) {
                    return Err(Error::InvalidRequest(
                        "Tokens are accepted only in the Authorization header",
                    ));
                }
                let Some(cookies) = &self.cookies else {
                    return Err(Error::MissingCredentials);
                };
                let Some(id) = cookie_value(headers, &cookies.cookie_name) else {
                    return Err(Error::MissingCredentials);
                };
                if !origin_allowed(method, headers, &cookies.allowed_origins) {
                    tracing::info!(
                        "refused a cookie-authenticated request without an allowed Origin"
                    );
                    return Err(Error::OriginNotAllowed);
                }
                let (claims, expires_at) = cookies.sessions.get(id).ok_or(Error::InvalidSession)?;
                (claims, AuthMethod::Cookie { expires_at })
            }
        };
        if !claims.has_scopes(&self.required_scopes) {
            tracing::info!(subject = %claims.subject, token = %claims.token_fingerprint, "token lacks required scopes");
            return Err(Error::InsufficientScope {
                needed: self.required_scopes.clone(),
            });
        }
        Ok((claims, auth_method))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::AUTHORIZATION, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer_token(&headers(&[])).unwrap(), None);
        assert_eq!(
            bearer_token(&headers(&["Bearer abc.def"])).unwrap(),
            Some("abc.def")
        );
        assert_eq!(
            bearer_token(&headers(&["bEaReR abc"])).unwrap(),
            Some("abc")
        );
        assert!(matches!(
            bearer_token(&headers(&["Bearer"])),
            Err(Error::InvalidRequest(_))
        ));
        assert!(matches!(
            bearer_token(&headers(&["Bearer a b"])),
            Err(Error::InvalidRequest(_))
        ));
        assert!(matches!(
            bearer_token(&headers(&["Basic abc"])),
            Err(Error::MissingCredentials)
        ));
        assert!(matches!(
            bearer_token(&headers(&["Bearer a", "Bearer b"])),
            Err(Error::InvalidRequest(_))
        ));
    }

    #[test]
    fn query_tokens_are_spotted() {
        assert!(query_has_token(&"/mcp?access_token=x".parse().unwrap()));
        assert!(query_has_token(&"/mcp?a=1&access_token=".parse().unwrap()));
        assert!(!query_has_token(&"/mcp?sessionId=x".parse().unwrap()));
    }

    #[test]
    fn origins() {
        let allowed = vec!["http://localhost:3001".to_string()];
        let mut h = HeaderMap::new();
        assert!(origin_allowed(&Method::GET, &h, &allowed));
        assert!(!origin_allowed(&Method::POST, &h, &allowed));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://localhost:3001"),
        );
        assert!(origin_allowed(&Method::POST, &h, &allowed));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!origin_allowed(&Method::GET, &h, &allowed));
    }
}
