//! Token requests (RFC 6749 §4.1.3 and §6), written by hand so that the `resource`
//! parameter (RFC 8707) and the client authentication method stay under our control.
//!
//! Both grants send `resource`. The client authenticates as registered: `none` (only
//! `client_id` in the body), `client_secret_basic` (HTTP Basic over the form-urlencoded
//! id and secret, RFC 6749 §2.3.1) or `client_secret_post` (both in the body).

use base64::Engine;
use mcp_auth_proto::{ErrorResponse, RefreshToken, TokenResponse};
use url::Url;
use url::form_urlencoded::byte_serialize;

use crate::error::{ClientError, Result};
use crate::http::{body_summary, limits, read_body};
use crate::pkce::PkceCodeVerifier;
use crate::registration::{StoredClient, TokenAuthMethod};
use crate::trace::{Trace, describe_token, jwt_claims};

const AREA: &str = "token";

/// Exchanges an authorization code for tokens.
#[allow(clippy::too_many_arguments)]
pub async fn exchange_code(
    http: &reqwest::Client,
    trace: &Trace,
    token_endpoint: &Url,
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
            "POST {token_endpoint}: grant_type=authorization_code with the PKCE code_verifier, resource={resource}, client auth {}",
            client.auth_method.as_str()
        ),
    );
    request(
        http,
        trace,
        token_endpoint,
        client,
        form,
        "authorization_code",
    )
    .await
}

/// Uses a refresh token.
pub async fn refresh(
    http: &reqwest::Client,
    trace: &Trace,
    token_endpoint: &Url,
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
            "POST {token_endpoint}: grant_type=refresh_token, resource={resource}, client auth {}",
            client.auth_method.as_str()
        ),
    );
    request(http, trace, token_endpoint, client, form, "refresh_token").await
}

/// Polls for the tokens of a device code (RFC 8628 §3.4). `authorization_pending` and
/// `slow_down` come back as [`ClientError::TokenEndpoint`] for the caller to wait on.
pub async fn poll_device(
    http: &reqwest::Client,
    trace: &Trace,
    token_endpoint: &Url,
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
        format!("POST {token_endpoint}: grant_type=device_code, resource={resource}"),
    );
    request(http, trace, token_endpoint, client, form, "device_code").await
}

async fn request(
    http: &reqwest::Client,
    trace: &Trace,
    url: &Url,
    client: &StoredClient,
    mut form: Vec<(&'static str, String)>,
    grant: &'static str,
) -> Result<TokenResponse> {
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
        _ => form.push(("client_id", client.client_id.clone())),
    }
    let resp = req
        .form(&form)
        .send()
        .await
        .map_err(|e| ClientError::unreachable(url.as_str(), &e))?;
    let status = resp.status().as_u16();
    let body = read_body(resp, url.as_str(), limits::TOKEN).await?;
    if status != 200 {
        let (error, description) = match serde_json::from_slice::<ErrorResponse>(&body) {
            Ok(e) => (e.error, e.error_description),
            Err(_) => (
                format!("HTTP {status}"),
                Some(body_summary(&body).trim_start_matches(": ").to_owned())
                    .filter(|s| !s.is_empty()),
            ),
        };
        trace.step(AREA, format!("-> {status}: {error}"));
        return Err(ClientError::TokenEndpoint {
            url: url.to_string(),
            grant,
            error,
            description,
        });
    }
    let tokens: TokenResponse =
        serde_json::from_slice(&body).map_err(|e| ClientError::InvalidResponse {
            what: "token response",
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    if !tokens.is_bearer() {
        return Err(ClientError::InvalidResponse {
            what: "token response",
            url: url.to_string(),
            reason: format!("token_type {:?} is not Bearer", tokens.token_type),
        });
    }
    trace.step(
        AREA,
        format!(
            "-> 200: access token ({}){}{}{}",
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
