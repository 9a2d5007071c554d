//! The authorization layer: a tower [`Layer`] that puts bearer-token authorization in
//! front of any service (an axum `Router`, an rmcp `StreamableHttpService`, ...).
//!
//! For each request it:
//! 1. refuses credentials outside the `Authorization` header: an `access_token` query
//!    parameter, or a form-encoded body without the header (RFC 6750 §2.2/§2.3), answer
//!    400 `invalid_request` and the token in them is never used;
//! 2. reads exactly one `Authorization: Bearer <token>` header (scheme case-insensitive),
//!    or, with DPoP on ([`AuthLayer::with_dpop`]), `Authorization: DPoP <token>`, whose
//!    `DPoP` proof is checked first ([`super::dpop`]);
//! 3. or, on the legacy SSE routes of [`crate::McpResourceServer`] and when no header
//!    was sent, the session cookie, which needs an allowed `Origin` on state-changing
//!    methods;
//! 4. verifies the token with its [`VerifyToken`] (JWT validation or introspection);
//! 5. checks the binding (RFC 9449 §7): a token with `cnf.jkt` must come with the `DPoP`
//!    scheme and a proof signed by that key (a bound token sent as `Bearer` is a
//!    downgrade and refused), a token without it must not; then records the proof's
//!    `jti` so it cannot be replayed (with `--redis-url`, also in Redis, so that no
//!    other instance takes it either);
//! 6. checks the layer's required scopes (403 `insufficient_scope`);
//! 7. hands `Arc<VerifiedClaims>` and the [`AuthMethod`] to the inner service as request
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
use mcp_auth_proto::{AccessToken, scope::Scopes, secret};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::{
    claims::VerifiedClaims,
    dpop::{DpopError, DpopVerifier, VerifiedProof},
    verify::VerifyToken,
};
use crate::error::{ChallengeContext, DpopAdvert, Error, Refusal};

/// How a request was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthMethod {
    /// `Authorization: Bearer`.
    Bearer,
    /// `Authorization: DPoP` with a proof signed by the key the token is bound to.
    Dpop,
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

/// A cookie session's verified claims and its end (seconds since the epoch).
pub(crate) type CookieSession = (Arc<VerifiedClaims>, u64);

/// A cookie session looked up in a store that must be asked over the network.
pub(crate) type PendingCookie =
    Pin<Box<dyn Future<Output = Result<Option<CookieSession>, Error>> + Send>>;

/// What a [`CookieSessionLookup`] found for a request's cookie.
pub(crate) enum CookieLookup {
    /// Known at once: the session, or none.
    Ready(Option<CookieSession>),
    /// To be awaited (a store shared between instances).
    Pending(PendingCookie),
}

/// Where the layer finds the cookie session a request names: implemented by the
/// cookie session store, so that this module knows neither the cookie's format nor
/// where sessions live.
pub(crate) trait CookieSessionLookup: Send + Sync + std::fmt::Debug {
    /// The session the request's cookie names; `None` when it carries no such cookie.
    fn find(&self, headers: &HeaderMap) -> Option<CookieLookup>;
}

/// Cookie authentication settings for [`AuthLayer::with_cookie_sessions`].
#[derive(Debug, Clone)]
pub(crate) struct CookieAuth {
    /// Where sessions are found.
    pub(crate) sessions: Arc<dyn CookieSessionLookup>,
    /// Origins allowed to use the cookie (serialised `scheme://host[:port]`).
    pub(crate) allowed_origins: Arc<[String]>,
}

#[derive(Debug, Clone)]
struct Settings {
    validator: Arc<dyn VerifyToken>,
    challenge: ChallengeContext,
    /// The answer to a request without credentials, rendered from `challenge`.
    missing_credentials: Refusal,
    required_scopes: Scopes,
    cookies: Option<CookieAuth>,
    dpop: Option<Arc<DpopVerifier>>,
}

impl Settings {
    fn set_challenge(&mut self, challenge: ChallengeContext) {
        self.missing_credentials = Error::MissingCredentials.render(&challenge);
        self.challenge = challenge;
    }
}

/// Layer that authorizes requests with bearer tokens. See the module documentation.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    settings: Arc<Settings>,
}

impl AuthLayer {
    /// A layer verifying tokens with `validator` (a [`super::Validator`] for JWTs, an
    /// [`super::Introspector`] for introspection); no scope required, no cookies.
    pub fn new<V: VerifyToken + 'static>(validator: Arc<V>) -> Self {
        Self::with_verifier(validator)
    }

    /// [`AuthLayer::new`] for a verifier already behind `dyn`.
    pub fn with_verifier(validator: Arc<dyn VerifyToken>) -> Self {
        let challenge = ChallengeContext::default();
        let settings = Settings {
            validator,
            missing_credentials: Error::MissingCredentials.render(&challenge),
            challenge,
            required_scopes: Scopes::default(),
            cookies: None,
            dpop: None,
        };
        Self {
            settings: Arc::new(settings),
        }
    }

    /// Sets the PRM URL put in challenges (`resource_metadata`).
    #[must_use]
    pub fn with_resource_metadata(mut self, url: impl Into<String>) -> Self {
        let settings = Arc::make_mut(&mut self.settings);
        let challenge = ChallengeContext {
            resource_metadata: Some(url.into()),
            ..settings.challenge.clone()
        };
        settings.set_challenge(challenge);
        self
    }

    /// Sets the scopes every request needs; also advertised in 401 challenges.
    #[must_use]
    pub fn with_required_scopes(mut self, scopes: Scopes) -> Self {
        let settings = Arc::make_mut(&mut self.settings);
        let challenge = ChallengeContext {
            scope: scopes.clone(),
            ..settings.challenge.clone()
        };
        settings.set_challenge(challenge);
        settings.required_scopes = scopes;
        self
    }

    /// Accepts DPoP-bound tokens with their proofs (RFC 9449), as `verifier` says;
    /// challenges then name the proof algorithms.
    #[must_use]
    pub fn with_dpop(mut self, verifier: Arc<DpopVerifier>) -> Self {
        let settings = Arc::make_mut(&mut self.settings);
        let challenge = ChallengeContext {
            dpop: Some(DpopAdvert {
                algs: verifier.algs().to_string(),
                required: verifier.required(),
            }),
            ..settings.challenge.clone()
        };
        settings.set_challenge(challenge);
        settings.dpop = Some(verifier);
        self
    }

    /// Accepts the session cookie when no `Authorization` header is sent.
    #[must_use]
    pub(crate) fn with_cookie_sessions(mut self, cookies: CookieAuth) -> Self {
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

pin_project! {
    /// Response future of [`AuthService`].
    ///
    /// Most requests are decided without waiting: a refusal, a token found in the cache
    /// of verified tokens, a session cookie. Only a token whose signature must be
    /// checked (which may need a JWKS fetch) takes a boxed future.
    pub struct AuthFuture<F, E> {
        #[pin]
        state: AuthState<F, E>,
    }
}

pin_project! {
    #[project = AuthStateProj]
    enum AuthState<F, E> {
        Refused { response: Option<Response> },
        Authorized { #[pin] future: F },
        Validating { future: Pin<Box<dyn Future<Output = Result<Response, E>> + Send>> },
    }
}

impl<F, E, B> Future for AuthFuture<F, E>
where
    F: Future<Output = Result<axum::http::Response<B>, E>>,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            AuthStateProj::Refused { response } => {
                Poll::Ready(Ok(response.take().expect("polled after completion")))
            }
            AuthStateProj::Authorized { future } => future
                .poll(cx)
                .map(|result| result.map(|response| response.map(Body::new))),
            AuthStateProj::Validating { future } => future.as_mut().poll(cx),
        }
    }
}

impl<S> AuthService<S> {
    fn authorized<ReqBody>(
        settings: &Settings,
        request: &mut Request<ReqBody>,
        claims: Arc<VerifiedClaims>,
        method: AuthMethod,
    ) {
        let until = settings.authorized_until(&claims, method);
        let extensions = request.extensions_mut();
        extensions.insert(claims);
        extensions.insert(method);
        extensions.insert(until);
    }
}

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
    type Future = AuthFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let decision = self
            .settings
            .decide(request.method(), request.uri(), request.headers());
        let state = match decision {
            Ok(Decision::Authorized(claims, method)) => {
                Self::authorized(&self.settings, &mut request, claims, method);
                AuthState::Authorized {
                    future: self.inner.call(request),
                }
            }
            Err(error) => AuthState::Refused {
                response: Some(self.settings.refuse(error)),
            },
            Ok(Decision::Validate(token, proof)) => {
                let settings = self.settings.clone();
                // The ready service goes into the future; a clone stays for the next call.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                AuthState::Validating {
                    future: Box::pin(async move {
                        match settings.validate(token.secret(), proof.as_ref()).await {
                            Ok((claims, method)) => {
                                Self::authorized(&settings, &mut request, claims, method);
                                let response = inner.call(request).await?;
                                Ok(response.map(Body::new))
                            }
                            Err(error) => Ok(settings.refuse(error)),
                        }
                    }),
                }
            }
            Ok(Decision::LookUpCookie(pending)) => {
                let settings = self.settings.clone();
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                AuthState::Validating {
                    future: Box::pin(async move {
                        match settings.shared_cookie(pending).await {
                            Ok((claims, method)) => {
                                Self::authorized(&settings, &mut request, claims, method);
                                let response = inner.call(request).await?;
                                Ok(response.map(Body::new))
                            }
                            Err(error) => Ok(settings.refuse(error)),
                        }
                    }),
                }
            }
            Ok(Decision::RecordProof(claims, proof)) => {
                let settings = self.settings.clone();
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                AuthState::Validating {
                    future: Box::pin(async move {
                        match settings.record_shared(&proof).await {
                            Ok(()) => {
                                Self::authorized(&settings, &mut request, claims, AuthMethod::Dpop);
                                let response = inner.call(request).await?;
                                Ok(response.map(Body::new))
                            }
                            Err(error) => Ok(settings.refuse(error)),
                        }
                    }),
                }
            }
        };
        AuthFuture { state }
    }
}

/// `b64token` of RFC 6750 §2.1: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    /// The characters before the padding, as a table: this runs on every request.
    const B64TOKEN: [bool; 256] = {
        let mut table = [false; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            table[b] =
                c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
            b += 1;
        }
        table
    };
    let body = token.trim_end_matches('=');
    !body.is_empty() && body.bytes().all(|b| B64TOKEN[usize::from(b)])
}

/// The `Authorization` schemes this layer understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Bearer,
    Dpop,
}

/// The scheme and credentials of the `Authorization` header, their syntax unchecked;
/// `DPoP` only when `dpop` is on.
fn credentials(headers: &HeaderMap, dpop: bool) -> Result<Option<(Scheme, &str)>, Error> {
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
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if dpop && scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        return Err(Error::MissingCredentials);
    };
    Ok(Some((scheme, credentials.trim_start_matches(' '))))
}

/// Bearer credentials must be a `b64token` (RFC 6750 §2.1).
fn check_token_syntax(token: &str) -> Result<(), Error> {
    if is_b64token(token) {
        Ok(())
    } else {
        Err(Error::InvalidRequest("Malformed Bearer credentials"))
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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

/// Whether a cookie-authenticated request may go on as far as its `Origin` goes: one that
/// sends an `Origin` must name an allowed one ([`mcp_auth_proto::origin`]'s rule), and
/// state-changing methods must send one.
pub fn cookie_origin_allowed(method: &Method, headers: &HeaderMap, allowed: &[String]) -> bool {
    match headers.get(header::ORIGIN).map(|v| v.to_str()) {
        None => matches!(*method, Method::GET | Method::HEAD),
        Some(Ok(origin)) => mcp_auth_proto::origin::origin_allowed(allowed, origin),
        Some(Err(_)) => false,
    }
}

impl Settings {
    fn authorized_until(&self, claims: &VerifiedClaims, method: AuthMethod) -> AuthorizedUntil {
        let token_end = self.validator.accepted_until(claims);
        AuthorizedUntil(match method {
            AuthMethod::Bearer | AuthMethod::Dpop => token_end,
            // The cookie session is refused once its whole-second end is reached.
            AuthMethod::Cookie { expires_at } => UNIX_EPOCH
                .checked_add(Duration::from_secs(expires_at))
                .map_or(token_end, |end| end.min(token_end)),
        })
    }

    /// Everything that can be decided from the request head without waiting: the
    /// refusals, a cached token, a session cookie. A token that needs its signature
    /// checked is handed back as [`Decision::Validate`].
    fn decide(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<Decision, Error> {
        if query_has_token(uri) {
            tracing::info!("refused a token sent in the query string");
            return Err(Error::InvalidRequest(
                "Tokens are accepted only in the Authorization header",
            ));
        }
        if let Some((scheme, token)) = credentials(headers, self.dpop.is_some())? {
            let proof = match (scheme, &self.dpop) {
                (Scheme::Dpop, Some(dpop)) => {
                    check_token_syntax(token)?;
                    let proof =
                        dpop.verify(headers, method, uri, token, now())
                            .map_err(|error| {
                                tracing::info!(reason = %error, "DPoP proof refused");
                                Error::Dpop(error)
                            })?;
                    Some(proof)
                }
                (Scheme::Bearer, Some(dpop)) if dpop.required() => {
                    tracing::info!("refused a bearer token where DPoP is required");
                    return Err(Error::Dpop(DpopError::Required));
                }
                _ => None,
            };
            // A token in the cache is that very string, which passed every check
            // before, its syntax included; only a miss needs the syntax checked.
            if let Some(claims) = self.validator.cached(token) {
                let method = self.check_binding(&claims, proof.as_ref())?;
                let claims = self.check_scopes(claims)?;
                return Ok(match proof {
                    Some(proof) if self.dpop.as_ref().is_some_and(|d| d.is_shared()) => {
                        Decision::RecordProof(claims, proof)
                    }
                    _ => Decision::Authorized(claims, method),
                });
            }
            check_token_syntax(token)?;
            return Ok(Decision::Validate(AccessToken::new(token), proof));
        }
        if is_form(headers) {
            return Err(Error::InvalidRequest(
                "Tokens are accepted only in the Authorization header",
            ));
        }
        let Some(cookies) = &self.cookies else {
            return Err(Error::MissingCredentials);
        };
        let Some(lookup) = cookies.sessions.find(headers) else {
            return Err(Error::MissingCredentials);
        };
        if !cookie_origin_allowed(method, headers, &cookies.allowed_origins) {
            tracing::info!("refused a cookie-authenticated request without an allowed Origin");
            return Err(Error::OriginNotAllowed);
        }
        let (claims, expires_at) = match lookup {
            CookieLookup::Ready(found) => found.ok_or(Error::InvalidSession)?,
            CookieLookup::Pending(pending) => return Ok(Decision::LookUpCookie(pending)),
        };
        Ok(Decision::Authorized(
            self.check_scopes(claims)?,
            AuthMethod::Cookie { expires_at },
        ))
    }

    /// Verifies a token that was not in the cache, then checks its binding to `proof`
    /// and its scopes.
    async fn validate(
        &self,
        token: &str,
        proof: Option<&VerifiedProof>,
    ) -> Result<(Arc<VerifiedClaims>, AuthMethod), Error> {
        match self.validator.verify(token).await {
            Ok(claims) => {
                let method = self.check_binding(&claims, proof)?;
                let claims = self.check_scopes(claims)?;
                if let Some(proof) = proof {
                    self.record_shared(proof).await?;
                }
                Ok((claims, method))
            }
            Err(error) => {
                tracing::info!(token = %secret::fingerprint(token), reason = %error, "bearer token refused");
                Err(error.into())
            }
        }
    }

    async fn authorize(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<(Arc<VerifiedClaims>, AuthMethod), Error> {
        match self.decide(method, uri, headers)? {
            Decision::Authorized(claims, method) => Ok((claims, method)),
            Decision::Validate(token, proof) => self.validate(token.secret(), proof.as_ref()).await,
            Decision::LookUpCookie(pending) => self.shared_cookie(pending).await,
            Decision::RecordProof(claims, proof) => {
                self.record_shared(&proof).await?;
                Ok((claims, AuthMethod::Dpop))
            }
        }
    }

    /// Records an accepted proof in the state shared by the instances, when there is
    /// one (after this instance's cache took it in [`Settings::check_binding`]).
    async fn record_shared(&self, proof: &VerifiedProof) -> Result<(), Error> {
        let Some(dpop) = &self.dpop else {
            return Ok(());
        };
        dpop.commit_shared(proof, now()).await.map_err(|error| {
            tracing::info!(reason = %error, "DPoP proof refused by the shared replay record");
            Error::Dpop(error)
        })
    }

    /// RFC 9449 §7: a bound token only with a proof of its key, an unbound one only
    /// without; with DPoP off, tokens are bearer tokens whatever they carry. The proof
    /// is recorded as used once everything else about it passed.
    fn check_binding(
        &self,
        claims: &VerifiedClaims,
        proof: Option<&VerifiedProof>,
    ) -> Result<AuthMethod, Error> {
        let Some(dpop) = &self.dpop else {
            return Ok(AuthMethod::Bearer);
        };
        let refuse = |error: DpopError| {
            tracing::info!(subject = %claims.subject, token = %claims.token_fingerprint, reason = %error, "DPoP binding refused");
            Err(Error::Dpop(error))
        };
        match (proof, &claims.dpop_jkt) {
            (None, None) => Ok(AuthMethod::Bearer),
            (None, Some(_)) => refuse(DpopError::Downgrade),
            (Some(_), None) => refuse(DpopError::NotBound),
            (Some(proof), Some(jkt)) if *jkt != proof.jkt => refuse(DpopError::KeyMismatch),
            (Some(proof), Some(_)) => {
                match dpop.commit(proof, &claims.issuer, &claims.subject, now()) {
                    Ok(()) => Ok(AuthMethod::Dpop),
                    Err(error) => refuse(error),
                }
            }
        }
    }

    /// Waits for a cookie session from the shared store, then checks its scopes.
    async fn shared_cookie(
        &self,
        pending: PendingCookie,
    ) -> Result<(Arc<VerifiedClaims>, AuthMethod), Error> {
        let (claims, expires_at) = pending.await?.ok_or(Error::InvalidSession)?;
        Ok((
            self.check_scopes(claims)?,
            AuthMethod::Cookie { expires_at },
        ))
    }

    fn check_scopes(&self, claims: Arc<VerifiedClaims>) -> Result<Arc<VerifiedClaims>, Error> {
        if claims.has_scopes(&self.required_scopes) {
            Ok(claims)
        } else {
            tracing::info!(subject = %claims.subject, token = %claims.token_fingerprint, "token lacks required scopes");
            Err(Error::InsufficientScope {
                needed: self.required_scopes.clone(),
            })
        }
    }

    /// The response to a refusal; the most common one, a request without credentials,
    /// reuses the challenge rendered when the layer was built.
    fn refuse(&self, error: Error) -> Response {
        match error {
            Error::MissingCredentials => error.into_rendered_response(&self.missing_credentials),
            error => error.into_response_with(Some(&self.challenge)),
        }
    }
}

/// What [`Settings::decide`] concluded.
enum Decision {
    /// Authorized without waiting.
    Authorized(Arc<VerifiedClaims>, AuthMethod),
    /// A token whose signature must be checked, with its verified DPoP proof if any.
    Validate(AccessToken, Option<VerifiedProof>),
    /// A session cookie being looked up in the shared store.
    LookUpCookie(PendingCookie),
    /// Authorized with DPoP once the proof is recorded in the shared state.
    RecordProof(Arc<VerifiedClaims>, VerifiedProof),
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    /// The bearer token as [`Settings::decide`] takes it from a request whose token is
    /// not in the cache.
    fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, Error> {
        let token = credentials(headers, false)?.map(|(_, token)| token);
        if let Some(token) = token {
            check_token_syntax(token)?;
        }
        Ok(token)
    }

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
        assert!(cookie_origin_allowed(&Method::GET, &h, &allowed));
        assert!(!cookie_origin_allowed(&Method::POST, &h, &allowed));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://localhost:3001"),
        );
        assert!(cookie_origin_allowed(&Method::POST, &h, &allowed));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!cookie_origin_allowed(&Method::GET, &h, &allowed));
    }
}
