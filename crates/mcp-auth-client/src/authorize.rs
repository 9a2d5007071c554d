//! The authorization code flow with PKCE (OAuth 2.1 §4.1, RFC 7636, RFC 8707, RFC 9207).
//!
//! One call of [`authorize`] binds the loopback listener, settles the client identity,
//! builds the authorization URL (`response_type=code`, `client_id`, `redirect_uri`,
//! `code_challenge` + `S256`, `state`, `scope`, `resource`), has the user's browser (or
//! the headless follower) visit it, waits for the callback, and exchanges the code.
//! Scope selection follows the MCP specification: see [`select_scopes`].

use std::time::Duration;

use mcp_auth_proto::{BearerChallenge, Scopes};
use url::Url;

use crate::authorization::dpop_key;
pub use crate::authorization::{AuthorizeOptions, Authorized, Interaction};
use crate::cache::Cache;
use crate::discovery::Discovered;
use crate::error::{ClientError, Result};
use crate::loopback::{CallbackListener, Expected};
use crate::registration::{client_identity, registered_redirect_uri};
use crate::trace::Trace;
use crate::{headless, pkce, token};

const AREA: &str = "authorize";

/// The scopes to request, as the MCP specification says ("Scope Selection Strategy"):
/// the `scope` of the challenge, else every PRM `scopes_supported`, else none. On a step-up
/// the scopes of the current token are kept (`current`). `extra` are the user's
/// `--scope`s. `offline_access` is added when the authorization server lists it in
/// `scopes_supported` and supports the `refresh_token` grant (SEP-2207).
#[must_use]
pub fn select_scopes(
    trace: &Trace,
    challenge: Option<&BearerChallenge>,
    discovered: &Discovered,
    current: Option<&Scopes>,
    extra: &Scopes,
) -> Scopes {
    let (mut scopes, why) = match challenge.and_then(|c| c.scope.as_deref()) {
        Some(s) if !s.trim().is_empty() => {
            (Scopes::parse(s), "from the WWW-Authenticate challenge")
        }
        _ => match &discovered.prm {
            Some(prm) if !prm.scopes_supported.is_empty() => (
                prm.scopes_supported.iter().map(String::as_str).collect(),
                "all of the resource's scopes_supported",
            ),
            _ => (
                Scopes::default(),
                "none named by the challenge or the resource",
            ),
        },
    };
    if scopes.is_empty() {
        trace.step(AREA, format!("scope: omitted ({why})"));
    } else {
        trace.step(AREA, format!("scope: \"{scopes}\" ({why})"));
    }
    if let Some(cur) = current.filter(|c| !c.is_empty() && !scopes.contains_all(c)) {
        scopes = cur.union(&scopes);
        trace.step(
            AREA,
            format!("keeping the current token's scopes too: \"{scopes}\""),
        );
    }
    if !extra.is_empty() && !scopes.contains_all(extra) {
        scopes = scopes.union(extra);
        trace.step(AREA, format!("adding the --scope values: \"{scopes}\""));
    }
    let md = &discovered.authorization_server.metadata;
    if md.scopes_supported.iter().any(|s| s == "offline_access")
        && md.supports_grant_type("refresh_token")
        && !scopes.contains("offline_access")
    {
        scopes.insert("offline_access");
        trace.step(
            AREA,
            "the authorization server offers offline_access and refresh tokens: adding offline_access",
        );
    }
    scopes
}

/// Runs the authorization code flow and returns the tokens.
pub async fn authorize(
    http: &reqwest::Client,
    trace: &Trace,
    cache: &Cache,
    discovered: &Discovered,
    options: &AuthorizeOptions,
    scopes: &Scopes,
) -> Result<Authorized> {
    let as_ = &discovered.authorization_server;
    let device = match options.interaction {
        Interaction::Device => true,
        Interaction::Browser { open_browser: true } => {
            let auto = crate::device::no_browser_here() && crate::device::endpoint(as_).is_some();
            if auto {
                trace.step(AREA, "no browser can be opened here (no $BROWSER, no display) and the authorization server offers the device flow: using it");
            }
            auto
        }
        _ => false,
    };
    if device {
        return crate::device::authorize(http, trace, cache, discovered, options, scopes).await;
    }
    let listener = bind_listener(trace, cache, &as_.issuer, options).await?;
    let redirect_uri = listener.redirect_uri().to_owned();
    trace.step(
        AREA,
        format!("listening for the redirect on {redirect_uri} (loopback only)"),
    );
    let client = client_identity(http, trace, cache, as_, &options.client, &redirect_uri).await?;
    let dpop = dpop_key(trace, cache, options, discovered, &client)?;

    let (challenge, verifier) = pkce::new_pair();
    let state = crate::random::unguessable();
    let mut url = as_.authorization_endpoint.clone();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &client.client_id)
            .append_pair("redirect_uri", &redirect_uri)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", &state);
        if !scopes.is_empty() {
            q.append_pair("scope", &scopes.to_string());
        }
        q.append_pair("resource", &discovered.resource);
    }
    trace.step(
        AREA,
        format!(
            "authorization request to {}: PKCE S256, a fresh state, resource={}{}",
            as_.authorization_endpoint,
            discovered.resource,
            if scopes.is_empty() {
                String::new()
            } else {
                format!(", scope=\"{scopes}\"")
            }
        ),
    );
    let pending = listener.serve(Expected {
        state: state.clone(),
        issuer: as_.issuer.clone(),
        iss_required: as_.metadata.authorization_response_iss_parameter_supported,
    });

    match options.interaction {
        Interaction::Headless => {
            if let Err(e) = headless::follow(trace, &url, &redirect_uri).await {
                let _ = pending.wait(Duration::from_millis(1)).await;
                return Err(e);
            }
            // The redirect was delivered; if the listener ignored it (a wrong state, no
            // code), no other response will come: nobody else is logging in.
            if !pending.decided() {
                return Err(pending.abandon().await);
            }
        }
        // (The device flow returned above.)
        Interaction::Browser { .. } | Interaction::Device => {
            let open_browser = options.interaction == (Interaction::Browser { open_browser: true });
            trace.notice(format!(
                "Open this URL in a browser to authorize (waiting up to {} s):\n\n  {url}\n",
                options.timeout.as_secs()
            ));
            crate::diagram::browser_opened(&url);
            let opened = if open_browser {
                match open_in_browser(&browser_program(), url.as_str()).await {
                    Ok(how) => {
                        trace.step(AREA, how);
                        true
                    }
                    Err(e) => {
                        trace.step(
                            AREA,
                            format!("could not open a browser ({e}); open the URL above by hand"),
                        );
                        false
                    }
                }
            } else {
                false
            };
            if !opened || !has_display() {
                trace.notice(NO_BROWSER_HINT);
            }
        }
    }

    let callback = pending.wait(options.timeout).await?;
    if callback.ignored > 0 {
        trace.step(
            AREA,
            format!(
                "the callback listener answered 400 to {} request(s) before this one and ignored them: no code, or a state that is not this login's",
                callback.ignored
            ),
        );
    }
    trace.step(
        AREA,
        format!(
            "callback received: state matches{}, got an authorization code",
            match &callback.iss {
                Some(iss) => format!(", iss {iss} is the authorization server (RFC 9207)"),
                None => ", no iss parameter".to_owned(),
            }
        ),
    );
    if matches!(options.interaction, Interaction::Browser { .. }) {
        crate::diagram::callback_received(callback.iss.is_some());
    }
    let endpoint = token::Endpoint {
        url: &as_.token_endpoint,
        issuer: &as_.issuer,
        dpop: dpop.as_deref(),
        client_key: options.client.client_key.as_deref(),
    };
    let tokens = token::exchange_code(
        http,
        trace,
        &endpoint,
        &client,
        &callback.code,
        verifier,
        &redirect_uri,
        &discovered.resource,
    )
    .await?;
    Ok(Authorized {
        tokens,
        client,
        requested_scope: (!scopes.is_empty()).then(|| scopes.clone()),
        callback_issuer: callback.iss,
        dpop,
    })
}

async fn bind_listener(
    trace: &Trace,
    cache: &Cache,
    issuer: &str,
    options: &AuthorizeOptions,
) -> Result<CallbackListener> {
    let bind_err = |port: u16, e: std::io::Error| {
        ClientError::Config(format!(
            "cannot listen on 127.0.0.1:{port} for the redirect: {e}"
        ))
    };
    if options.redirect_port != 0 {
        return CallbackListener::bind(options.redirect_port)
            .await
            .map_err(|e| bind_err(options.redirect_port, e));
    }
    // A dynamic registration names its redirect URI; binding the same port lets it be reused.
    if options.client.client_id.is_none()
        && let Some(port) = registered_redirect_uri(cache, issuer)
            .and_then(|u| Url::parse(&u).ok())
            .and_then(|u| u.port())
    {
        match CallbackListener::bind(port).await {
                Ok(l) => return Ok(l),
                Err(_) => trace.step(
                    AREA,
                    format!("port {port} of the registered redirect URI is busy: a new registration will be needed"),
                ),
            }
    }
    CallbackListener::bind(0).await.map_err(|e| bind_err(0, e))
}

/// Said at once when no browser can be opened here, rather than after the wait.
pub const NO_BROWSER_HINT: &str = "No browser on this machine? Open the URL on one that can reach the loopback address above, or run with --device (the device flow, RFC 8628: a code to enter on any device with a browser; when the authorization server offers it) or with --headless: mcp-client then follows the redirects itself, which works with authorization servers that approve without a person (the demo's dev-idp with --headless or --auto-login, test servers, CI).";

/// Whether a graphical browser can be shown: always on macOS and Windows, and on other
/// systems when `DISPLAY` or `WAYLAND_DISPLAY` is set, or `$BROWSER` names a program
/// (which may be a text browser).
#[must_use]
pub fn has_display() -> bool {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    cfg!(target_os = "macos")
        || cfg!(windows)
        || set("DISPLAY")
        || set("WAYLAND_DISPLAY")
        || set("BROWSER")
}

/// `$BROWSER`, else the platform's opener.
fn browser_program() -> String {
    match std::env::var("BROWSER") {
        Ok(b) if !b.trim().is_empty() => b,
        _ if cfg!(target_os = "macos") => "open".to_owned(),
        _ if cfg!(windows) => "explorer".to_owned(),
        _ => "xdg-open".to_owned(),
    }
}

/// How long an opener may take to say it failed; openers that hand the URL to a running
/// browser return at once, a browser started directly keeps running.
const OPENER_WAIT: Duration = Duration::from_secs(3);

/// Runs `program url` and says what happened. An opener that exits non-zero (`xdg-open`
/// with no browser installed exits 3) did not open anything: that is an error, not
/// "opened the browser". One still running after [`OPENER_WAIT`] is taken as the browser.
async fn open_in_browser(program: &str, url: &str) -> std::result::Result<String, String> {
    use std::process::Stdio;
    let mut child = tokio::process::Command::new(program)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    match tokio::time::timeout(OPENER_WAIT, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(format!("opened the browser ({program})")),
        Ok(Ok(status)) => Err(match status.code() {
            Some(code) => format!("{program} exited with code {code}"),
            None => format!("{program} was stopped by a signal"),
        }),
        Ok(Err(e)) => Err(format!("{program}: {e}")),
        Err(_) => {
            tokio::spawn(async move { child.wait().await });
            Ok(format!("started the browser ({program}, still running)"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registration::ClientConfig;

    #[test]
    fn headless_options_use_the_code_flow_on_an_ephemeral_port() {
        let client = ClientConfig {
            client_id: Some("c".into()),
            ..ClientConfig::default()
        };
        let o = AuthorizeOptions::headless(client, Duration::from_secs(7));
        assert_eq!(o.interaction, Interaction::Headless);
        assert_eq!(o.redirect_port, 0);
        assert_eq!(o.timeout, Duration::from_secs(7));
        assert_eq!(o.client.client_id.as_deref(), Some("c"));
        assert!(matches!(o.grant, crate::grants::Grant::AuthorizationCode));
    }

    #[tokio::test]
    async fn an_opener_that_fails_is_not_an_opened_browser() {
        let e = open_in_browser("false", "http://127.0.0.1:1/")
            .await
            .unwrap_err();
        assert_eq!(e, "false exited with code 1");
        let e = open_in_browser("/nonexistent/opener", "http://127.0.0.1:1/")
            .await
            .unwrap_err();
        assert!(e.starts_with("/nonexistent/opener: "), "{e}");
        assert_eq!(
            open_in_browser("true", "http://127.0.0.1:1/")
                .await
                .unwrap(),
            "opened the browser (true)"
        );
    }
}
