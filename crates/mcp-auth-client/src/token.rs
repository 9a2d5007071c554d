//! Token requests (RFC 6749 §4.1.3 and §6), written by hand so that the `resource`
//! parameter (RFC 8707) and the client authentication method stay under our control.
//!
//! Both grants send `resource`. The client authenticates as registered: `none` (only
//! `client_id` in the body), `client_secret_basic` (HTTP Basic over the form-urlencoded
//! id and secret, RFC 6749 §2.3.1), `client_secret_post` (both in the body) or
//! `private_key_jwt` (a signed JWT assertion, RFC 7523 §2.2).
//!
//! With a DPoP key ([`Endpoint::dpop`]) every token request carries a proof; a
//! `400 use_dpop_nonce` with a `DPoP-Nonce` header is answered by one retry with the nonce
//! (RFC 9449 §8), and the response's `token_type` must then be `DPoP` (or `Bearer`, when
//! the server chose not to bind the token).
//!
//! Why not the oauth2 crate's request builders (`exchange_code(..).add_extra_param(
//! "resource", ..)`), when PKCE and the random values already come from it: its builders
//! do the form and the Basic header, which is the 20 lines of `post` that would go, and
//! everything else would have to be put back around them. A DPoP proof is made per
//! request for its method, URL and nonce, and the one `use_dpop_nonce` retry needs the
//! `DPoP-Nonce` header of the error response; the builders have no per-request header
//! and their `RequestTokenError` keeps the body but not the headers, so both would move
//! into a custom `AsyncHttpClient` that rewrites requests and remembers responses, where
//! the retry no longer reads as one. That custom client would be needed anyway: oauth2
//! 5's reqwest integration is built on reqwest 0.12 and this workspace uses 0.13, and the
//! recorded send of the sequence diagram, the body limit ([`limits::TOKEN`]) and the
//! shared HTTP client with its timeouts all live at that seam. `private_key_jwt` is not
//! one of oauth2's `AuthType`s and would still be extra parameters; its
//! `StandardTokenResponse` would be converted into [`TokenResponse`], whose token
//! newtypes never print; and it refuses a response whose `Content-Type` is not
//! `application/json`, which this client reads all the same. The swap would trade a
//! readable loop for the same code spread over an adapter, so the requests stay here.

use base64::Engine;
use mcp_auth_proto::{ErrorResponse, RefreshToken, TokenResponse};
use url::Url;
use url::form_urlencoded::byte_serialize;

use crate::client_assertion::{CLIENT_ASSERTION_TYPE, ClientKey};
use crate::dpop::{self, DpopKey};
use crate::error::{ClientError, Result};
use crate::http::{RecordedSend as _, body_summary, limits, read_body};
use crate::identity::{StoredClient, TokenAuthMethod};
use crate::pkce::PkceCodeVerifier;
use crate::trace::{Trace, describe_token, jwt_claims};

const AREA: &str = "token";

/// A token endpoint and what a request to it needs besides the client.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint<'a> {
    /// The token endpoint URL.
    pub url: &'a Url,
    /// The authorization server's issuer (the `aud` of a client assertion).
    pub issuer: &'a str,
    /// The DPoP key, when tokens are to be DPoP-bound.
    pub dpop: Option<&'a DpopKey>,
    /// The client's key, for `private_key_jwt`.
    pub client_key: Option<&'a ClientKey>,
}

/// Exchanges an authorization code for tokens.
#[allow(clippy::too_many_arguments)]
pub async fn exchange_code(
    http: &reqwest::Client,
    trace: &Trace,
    endpoint: &Endpoint<'_>,
    client: &StoredClient,
    code: &str,
    verifier: PkceCodeVerifier,
    redirect_uri: &str,
    resource: &str,
) -> Result<TokenResponse> {
    let form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code.to_owned()),
        ("redirect_uri", redirect_uri.to_owned()),
        ("code_verifier", verifier.secret().clone()),
        ("resource", resource.to_owned()),
    ];
    trace.step(
        AREA,
        format!(
            "POST {}: grant_type=authorization_code with the PKCE code_verifier, resource={resource}, client auth {}",
            endpoint.url,
            client.auth_method.as_str()
        ),
    );
    request(http, trace, endpoint, client, form, "authorization_code").await
}

/// Uses a refresh token.
pub async fn refresh(
    http: &reqwest::Client,
    trace: &Trace,
    endpoint: &Endpoint<'_>,
    client: &StoredClient,
    refresh_token: &RefreshToken,
    resource: &str,
) -> Result<TokenResponse> {
    let form = vec![
        ("grant_type", "refresh_token".to_owned()),
        ("refresh_token", refresh_token.secret().to_owned()),
        ("resource", resource.to_owned()),
    ];
    trace.step(
        AREA,
        format!(
            "POST {}: grant_type=refresh_token, resource={resource}, client auth {}{}",
            endpoint.url,
            client.auth_method.as_str(),
            if endpoint.dpop.is_some() {
                ", with a DPoP proof of the key the token is bound to"
            } else {
                ""
            }
        ),
    );
    request(http, trace, endpoint, client, form, "refresh_token").await
}

/// Polls for the tokens of a device code (RFC 8628 §3.4). `authorization_pending` and
/// `slow_down` come back as [`ClientError::TokenEndpoint`] for the caller to wait on.
pub async fn poll_device(
    http: &reqwest::Client,
    trace: &Trace,
    endpoint: &Endpoint<'_>,
    client: &StoredClient,
    device_code: &str,
    resource: &str,
) -> Result<TokenResponse> {
    let form = vec![
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:device_code".to_owned(),
        ),
        ("device_code", device_code.to_owned()),
        ("resource", resource.to_owned()),
    ];
    trace.detail(
        AREA,
        format!(
            "POST {}: grant_type=device_code, resource={resource}",
            endpoint.url
        ),
    );
    request(http, trace, endpoint, client, form, "device_code").await
}

/// A token request that must give an access token for a resource: `Bearer`, or `DPoP`
/// when a proof was sent.
pub(crate) async fn request(
    http: &reqwest::Client,
    trace: &Trace,
    endpoint: &Endpoint<'_>,
    client: &StoredClient,
    form: Vec<(&'static str, String)>,
    grant: &'static str,
) -> Result<TokenResponse> {
    let url = endpoint.url;
    let tokens = post(http, trace, endpoint, client, form, grant).await?;
    let dpop_bound = tokens.token_type.eq_ignore_ascii_case("dpop");
    if !(tokens.is_bearer() || dpop_bound && endpoint.dpop.is_some()) {
        return Err(ClientError::InvalidResponse {
            what: "token response",
            url: url.to_string(),
            reason: if dpop_bound {
                "token_type DPoP, but no DPoP proof was sent".to_owned()
            } else {
                format!(
                    "token_type {:?} is not {}",
                    tokens.token_type,
                    if endpoint.dpop.is_some() {
                        "DPoP or Bearer"
                    } else {
                        "Bearer"
                    }
                )
            },
        });
    }
    if endpoint.dpop.is_some() && !dpop_bound {
        trace.step(
            AREA,
            "the authorization server answered the proof with a Bearer token: it is not bound to the key, and is sent as Bearer",
        );
    }
    trace.step(
        AREA,
        format!(
            "-> 200: {} access token ({}){}{}{}",
            if dpop_bound { "DPoP-bound" } else { "Bearer" },
            describe_token(tokens.access_token.secret()),
            tokens
                .expires_in
                .map(|s| format!(", expires in {s} s"))
                .unwrap_or_default(),
            tokens
                .scope
                .as_deref()
                .map(|s| format!(", scope \"{s}\""))
                .unwrap_or_default(),
            if tokens.refresh_token.is_some() {
                ", with a refresh token"
            } else {
                ", no refresh token"
            }
        ),
    );
    if let Some(claims) = jwt_claims(tokens.access_token.secret()) {
        trace.detail(
            AREA,
            format!("access token (decoded, not verified):\n{claims}"),
        );
    }
    Ok(tokens)
}

/// POSTs a token request with the client's authentication (and a DPoP proof), retrying
/// once on `use_dpop_nonce`; returns the 200 response, whatever its `token_type`.
pub(crate) async fn post(
    http: &reqwest::Client,
    trace: &Trace,
    endpoint: &Endpoint<'_>,
    client: &StoredClient,
    form: Vec<(&'static str, String)>,
    grant: &'static str,
) -> Result<TokenResponse> {
    let url = endpoint.url;
    let mut nonce_retried = false;
    loop {
        let mut form = form.clone();
        let mut req = http
            .post(url.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        let secret = client.client_secret.as_ref().map(|s| s.secret().to_owned());
        match (client.auth_method, secret) {
            (TokenAuthMethod::ClientSecretBasic, Some(secret)) => {
                let enc = |s: &str| byte_serialize(s.as_bytes()).collect::<String>();
                let credentials = base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    enc(&client.client_id),
                    enc(&secret)
                ));
                req = req.header(
                    reqwest::header::AUTHORIZATION,
                    format!("Basic {credentials}"),
                );
            }
            (TokenAuthMethod::ClientSecretPost, Some(secret)) => {
                form.push(("client_id", client.client_id.clone()));
                form.push(("client_secret", secret));
            }
            (TokenAuthMethod::PrivateKeyJwt, _) => {
                let Some(key) = endpoint.client_key else {
                    return Err(ClientError::Config(format!(
                        "the client {} authenticates with private_key_jwt, but no --client-key was given",
                        client.client_id
                    )));
                };
                form.push(("client_id", client.client_id.clone()));
                form.push(("client_assertion_type", CLIENT_ASSERTION_TYPE.to_owned()));
                form.push((
                    "client_assertion",
                    key.assertion(&client.client_id, endpoint.issuer)?,
                ));
                trace.step(
                    AREA,
                    format!(
                        "client assertion (RFC 7523): iss=sub={}, aud={}, expires in 60 s",
                        client.client_id, endpoint.issuer
                    ),
                );
            }
            _ => form.push(("client_id", client.client_id.clone())),
        }
        if let Some(key) = endpoint.dpop {
            req = dpop::with_proof(trace, key, req, "POST", url, None)?;
        }
        let resp = req
            .form(&form)
            .send_recorded()
            .await
            .map_err(|e| ClientError::unreachable(url.as_str(), e))?;
        let status = resp.status().as_u16();
        let new_nonce = endpoint
            .dpop
            .is_some_and(|k| k.note_nonce(url, resp.headers()));
        let body = read_body(resp, url.as_str(), limits::TOKEN).await?;
        if status == 200 {
            return serde_json::from_slice(&body).map_err(|e| ClientError::MalformedJson {
                what: "token response",
                url: url.to_string(),
                source: e,
            });
        }
        let (error, description) = match serde_json::from_slice::<ErrorResponse>(&body) {
            Ok(e) => (e.error, e.error_description),
            Err(_) => (format!("HTTP {status}"), body_summary(&body)),
        };
        if status == 400 && dpop::is_use_nonce(&error) && new_nonce && !nonce_retried {
            nonce_retried = true;
            trace.step(
                AREA,
                "-> 400 use_dpop_nonce: the authorization server gave a DPoP-Nonce; one retry with a new proof carrying it",
            );
            continue;
        }
        trace.step(AREA, format!("-> {status}: {error}"));
        return Err(ClientError::TokenEndpoint {
            url: url.to_string(),
            grant,
            error,
            description,
        });
    }
}
