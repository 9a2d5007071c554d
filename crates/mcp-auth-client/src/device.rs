//! The device authorization grant (RFC 8628): the way to log in from a command line on a
//! machine without a browser, such as a remote host reached over SSH. The client asks the
//! authorization server's `device_authorization_endpoint` for a device code and a user
//! code, prints the verification URL and the user code for the person to open on any
//! device with a browser, and polls the token endpoint at the given interval until the
//! person has approved (`authorization_pending` until then, `slow_down` adds 5 seconds to
//! the interval, `expired_token` or `access_denied` end it).
//!
//! Chosen with `--device`, or automatically when no browser can be opened here (no
//! `$BROWSER`, no display) and the authorization server advertises the endpoint.

use std::time::{Duration, Instant};

use mcp_auth_proto::Scopes;
use mcp_auth_proto::wellknown::is_loopback_or_https;
use serde::Deserialize;
use url::Url;

use crate::authorization::{AuthorizeOptions, Authorized, dpop_key};
use crate::cache::Cache;
use crate::discovery::{AuthorizationServer, Discovered};
use crate::error::{ClientError, Result};
use crate::http::{RecordedSend as _, body_summary, limits, read_body};
use crate::registration::client_identity;
use crate::token;
use crate::trace::Trace;

const AREA: &str = "device";

/// RFC 8628 §3.2: the default polling interval.
const DEFAULT_INTERVAL: u64 = 5;
/// RFC 8628 §3.5: `slow_down` adds this to the interval.
const SLOW_DOWN_STEP: u64 = 5;

/// The device authorization endpoint the authorization server advertises, if any.
#[must_use]
pub fn endpoint(as_: &AuthorizationServer) -> Option<&str> {
    as_.metadata
        .extra
        .get("device_authorization_endpoint")
        .and_then(serde_json::Value::as_str)
}

/// Whether this machine has no way to show a browser: no `$BROWSER` and, on Linux and
/// the BSDs, no X11 or Wayland display (an SSH session without forwarding).
#[must_use]
pub fn no_browser_here() -> bool {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    if set("BROWSER") {
        return false;
    }
    if cfg!(any(target_os = "macos", windows)) {
        return false;
    }
    !set("DISPLAY") && !set("WAYLAND_DISPLAY")
}

/// RFC 8628 §3.2 device authorization response.
#[derive(Deserialize)]
struct DeviceAuthorization {
    device_code: String,
    user_code: String,
    verification_uri: String,
    #[serde(default)]
    verification_uri_complete: Option<String>,
    expires_in: u64,
    #[serde(default)]
    interval: Option<u64>,
}

/// Runs the device flow and returns the tokens.
pub async fn authorize(
    http: &reqwest::Client,
    trace: &Trace,
    cache: &Cache,
    discovered: &Discovered,
    options: &AuthorizeOptions,
    scopes: &Scopes,
) -> Result<Authorized> {
    let as_ = &discovered.authorization_server;
    let endpoint = endpoint(as_).ok_or_else(|| {
        ClientError::Config(format!(
            "the authorization server {} does not offer the device flow (no device_authorization_endpoint in its metadata)",
            as_.issuer
        ))
    })?;
    let endpoint = Url::parse(endpoint).map_err(|source| ClientError::InvalidUrl {
        what: "authorization server metadata",
        url: as_.issuer.clone(),
        field: Some("device_authorization_endpoint"),
        value: endpoint.to_owned(),
        source,
    })?;
    if !is_loopback_or_https(&endpoint) {
        return Err(ClientError::InsecureEndpoint {
            url: endpoint.to_string(),
        });
    }
    trace.step(
        AREA,
        "device authorization grant (RFC 8628): the answer for a command line on a remote host, e.g. over SSH, where no browser can be opened",
    );
    // A pre-registered client needs no redirect URI; a registration gets the loopback
    // one an authorization code login would use.
    let client = client_identity(
        http,
        trace,
        cache,
        as_,
        &options.client,
        "http://127.0.0.1/callback",
    )
    .await?;
    let dpop = dpop_key(trace, cache, options, discovered, &client)?;

    let mut form = vec![("client_id", client.client_id.clone())];
    if let Some(secret) = &client.client_secret {
        form.push(("client_secret", secret.secret().to_owned()));
    }
    if !scopes.is_empty() {
        form.push(("scope", scopes.to_string()));
    }
    form.push(("resource", discovered.resource.clone()));
    trace.step(
        AREA,
        format!(
            "POST {endpoint}: client_id={}, resource={}{}",
            client.client_id,
            discovered.resource,
            if scopes.is_empty() {
                String::new()
            } else {
                format!(", scope=\"{scopes}\"")
            }
        ),
    );
    let resp = http
        .post(endpoint.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .form(&form)
        .send_recorded()
        .await
        .map_err(|e| ClientError::unreachable(endpoint.as_str(), e))?;
    let status = resp.status().as_u16();
    let body = read_body(resp, endpoint.as_str(), limits::TOKEN).await?;
    if status != 200 {
        return Err(ClientError::HttpStatus {
            url: endpoint.to_string(),
            status,
            detail: body_summary(&body),
        });
    }
    let device: DeviceAuthorization =
        serde_json::from_slice(&body).map_err(|e| ClientError::MalformedJson {
            what: "device authorization response",
            url: endpoint.to_string(),
            source: e,
        })?;
    let expires = Duration::from_secs(device.expires_in);
    let mut interval = device.interval.unwrap_or(DEFAULT_INTERVAL).max(1);
    trace.notice(format!(
        "To authorize, open {} on any device with a browser and enter the code\n\n  {}\n{}\nWaiting up to {} s (checking every {interval} s).",
        device.verification_uri,
        device.user_code,
        device
            .verification_uri_complete
            .as_deref()
            .map(|u| format!("\n(or open {u}, which carries the code)\n"))
            .unwrap_or_default(),
        expires.as_secs(),
    ));

    let deadline = Instant::now() + expires;
    loop {
        tokio::time::sleep(Duration::from_secs(interval)).await;
        let endpoint = token::Endpoint {
            url: &as_.token_endpoint,
            issuer: &as_.issuer,
            dpop: dpop.as_deref(),
            client_key: options.client.client_key.as_deref(),
        };
        match token::poll_device(
            http,
            trace,
            &endpoint,
            &client,
            &device.device_code,
            &discovered.resource,
        )
        .await
        {
            Ok(tokens) => {
                trace.step(AREA, "approved: tokens received");
                return Ok(Authorized {
                    tokens,
                    client,
                    requested_scope: (!scopes.is_empty()).then(|| scopes.clone()),
                    callback_issuer: None,
                    dpop,
                });
            }
            Err(ClientError::TokenEndpoint { error, .. }) if error == "authorization_pending" => {
                trace.detail(AREA, "not approved yet (authorization_pending)");
            }
            Err(ClientError::TokenEndpoint { error, .. }) if error == "slow_down" => {
                interval += SLOW_DOWN_STEP;
                trace.step(AREA, format!("slow_down: polling every {interval} s now"));
            }
            Err(e) => return Err(e),
        }
        if Instant::now() >= deadline {
            return Err(ClientError::TokenEndpoint {
                url: as_.token_endpoint.to_string(),
                grant: "device_code",
                error: "expired_token".into(),
                description: Some(format!(
                    "nobody approved the device code within {} s",
                    expires.as_secs()
                )),
            });
        }
    }
}
