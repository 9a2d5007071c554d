//! Client identity: who this client says it is to the authorization server.
//!
//! In the order of the MCP specification (2025-11-25, "Client Registration Approaches"):
//! 1. a pre-registered client id (public, or confidential with a secret);
//! 2. a Client ID Metadata Document URL used as the `client_id`, when the authorization
//!    server says `client_id_metadata_document_supported: true`;
//! 3. dynamic client registration (RFC 7591) at the `registration_endpoint`; the
//!    registration is kept in the cache (once it has led to tokens) and reused with the same authorization server
//!    as long as its redirect URI can still be used.
//!
//! The token endpoint authentication method (`none`, `client_secret_basic`,
//! `client_secret_post`) follows what the registration says, else what the authorization
//! server lists in `token_endpoint_auth_methods_supported`.
//!
//! # Security
//! A pre-registered client id (and its secret) belongs to one authorization server, and
//! is never sent to another one, whatever issuer a resource names: that would hand the
//! secret to an attacker's server, and open the mix-up attack of RFC 9700 §4.4 to a
//! public client. The issuer is `--client-issuer` ([`ClientConfig::client_issuer`]) when
//! given; otherwise the first issuer the client id is used with, recorded in the cache
//! and said in the trace. A later use with another issuer is refused, naming both.

use mcp_auth_proto::ClientSecret;
use mcp_auth_proto::registration::{ClientInformation, ClientMetadata};

use crate::cache::{Cache, ClientBinding, now};
use crate::discovery::AuthorizationServer;
use crate::error::{ClientError, Result};
use crate::http::{RecordedSend as _, body_summary, limits, read_body};
pub use crate::identity::{ClientSource, StoredClient, TokenAuthMethod};
use crate::trace::Trace;

const AREA: &str = "client";

/// What the user configured about the client's identity.
#[derive(Debug, Clone, Default)]
pub struct ClientConfig {
    /// A pre-registered client id.
    pub client_id: Option<String>,
    /// Its secret, for a confidential client.
    pub client_secret: Option<ClientSecret>,
    /// The issuer of the authorization server the pre-registered client belongs to
    /// (`None`: bound to the first one it is used with).
    pub client_issuer: Option<String>,
    /// A Client ID Metadata Document URL (an https URL), used when the AS supports it.
    pub client_metadata_url: Option<String>,
    /// Forces a token endpoint authentication method.
    pub auth_method: Option<TokenAuthMethod>,
    /// The `client_name` sent in dynamic registration.
    pub client_name: String,
    /// The private key of a pre-registered client that authenticates with
    /// `private_key_jwt`.
    pub client_key: Option<std::sync::Arc<crate::client_assertion::ClientKey>>,
}

/// The identity to use with `as_`, given the redirect URI that will be used.
///
/// `reuse_redirect` is true when a cached dynamic registration may be reused, which the
/// caller decides (its redirect URI must be the one that will be used).
pub async fn client_identity(
    http: &reqwest::Client,
    trace: &Trace,
    cache: &Cache,
    as_: &AuthorizationServer,
    config: &ClientConfig,
    redirect_uri: &str,
) -> Result<StoredClient> {
    let md = &as_.metadata;
    if let Some(id) = &config.client_id {
        check_binding(
            trace,
            cache,
            id,
            config.client_issuer.as_deref(),
            &as_.issuer,
        )?;
        let auth_method = config.auth_method.unwrap_or_else(|| {
            if config.client_key.is_some() {
                TokenAuthMethod::PrivateKeyJwt
            } else if config.client_secret.is_some() {
                secret_method(as_)
            } else {
                TokenAuthMethod::None
            }
        });
        trace.step(
            AREA,
            format!(
                "using the pre-registered client id {id} ({})",
                if auth_method == TokenAuthMethod::PrivateKeyJwt {
                    "confidential, authenticates with a JWT signed by its key (private_key_jwt)"
                        .to_owned()
                } else if config.client_secret.is_some() {
                    format!("confidential, secret sent by {}", auth_method.as_str())
                } else {
                    "public".to_owned()
                }
            ),
        );
        return Ok(StoredClient {
            client_id: id.clone(),
            client_secret: config.client_secret.clone(),
            auth_method,
            source: ClientSource::PreRegistered,
            redirect_uri: None,
        });
    }
    if let Some(url) = &config.client_metadata_url {
        if md.client_id_metadata_document_supported {
            trace.step(
                AREA,
                format!(
                    "the authorization server accepts client ID metadata documents: client_id = {url}"
                ),
            );
            return Ok(StoredClient {
                client_id: url.clone(),
                client_secret: None,
                auth_method: TokenAuthMethod::None,
                source: ClientSource::MetadataDocument,
                redirect_uri: None,
            });
        }
        trace.step(
            AREA,
            "the authorization server does not accept client ID metadata documents",
        );
    }
    if let Some(reg) = cache.load_registration(&as_.issuer)?
        && reg.client.redirect_uri.as_deref() == Some(redirect_uri)
    {
        trace.step(
            AREA,
            format!(
                "reusing the client {} registered with {} before",
                reg.client.client_id, as_.issuer
            ),
        );
        return Ok(reg.client);
    }
    let Some(endpoint) = &as_.registration_endpoint else {
        return Err(ClientError::NoClientIdentity {
            issuer: as_.issuer.clone(),
        });
    };
    register(http, trace, as_, config, endpoint, redirect_uri).await
}

/// Checks that the pre-registered `client_id` belongs to `issuer` (the authorization
/// server about to receive it), and records the binding: the one given
/// (`--client-issuer`), else the one recorded, else this first use.
fn check_binding(
    trace: &Trace,
    cache: &Cache,
    client_id: &str,
    configured: Option<&str>,
    issuer: &str,
) -> Result<()> {
    let mismatch = |bound: &str, how: &str| ClientError::ClientIssuerMismatch {
        client_id: client_id.to_owned(),
        bound: bound.to_owned(),
        how: how.to_owned(),
        requested: issuer.to_owned(),
    };
    let recorded = cache.load_binding(client_id)?;
    match (configured, &recorded) {
        (Some(bound), _) if bound != issuer => return Err(mismatch(bound, "--client-issuer")),
        (Some(_), _) => trace.step(
            AREA,
            format!("the client id {client_id} belongs to {issuer} (--client-issuer): it may be sent there"),
        ),
        (None, Some(b)) if b.issuer != issuer => {
            return Err(mismatch(
                &b.issuer,
                "bound at its first use; --client-issuer chooses another",
            ));
        }
        (None, Some(_)) => trace.step(
            AREA,
            format!("the client id {client_id} belongs to {issuer} (bound at its first use)"),
        ),
        (None, None) => trace.step(
            AREA,
            format!(
                "first use of the client id {client_id}: binding it to {issuer}; it will not be sent to another authorization server (--client-issuer sets the binding)"
            ),
        ),
    }
    if recorded.as_ref().is_none_or(|b| b.issuer != issuer) {
        cache.save_binding(&ClientBinding {
            client_id: client_id.to_owned(),
            issuer: issuer.to_owned(),
            bound_at: now(),
        })?;
    }
    Ok(())
}

/// The redirect URI of the cached registration for `issuer`, if any: the loopback
/// listener tries to bind its port so that the registration can be reused.
pub fn registered_redirect_uri(cache: &Cache, issuer: &str) -> Option<String> {
    cache
        .load_registration(issuer)
        .ok()
        .flatten()
        .and_then(|r| r.client.redirect_uri)
}

async fn register(
    http: &reqwest::Client,
    trace: &Trace,
    as_: &AuthorizationServer,
    config: &ClientConfig,
    endpoint: &url::Url,
    redirect_uri: &str,
) -> Result<StoredClient> {
    let md = &as_.metadata;
    // A native app is a public client: ask for `none` when the AS allows it.
    let requested = config.auth_method.unwrap_or_else(|| {
        if md.token_endpoint_auth_methods_supported.is_empty()
            || md.supports_token_auth_method("none")
        {
            TokenAuthMethod::None
        } else {
            secret_method(as_)
        }
    });
    let request = ClientMetadata {
        redirect_uris: vec![redirect_uri.to_owned()],
        token_endpoint_auth_method: Some(requested.as_str().to_owned()),
        grant_types: vec!["authorization_code".to_owned(), "refresh_token".to_owned()],
        response_types: vec!["code".to_owned()],
        client_name: Some(config.client_name.clone()),
        application_type: Some(application_type(redirect_uri).to_owned()),
        software_id: Some("mcp-auth-client".to_owned()),
        software_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        ..ClientMetadata::default()
    };
    trace.step(
        AREA,
        format!(
            "POST {endpoint}: dynamic client registration (RFC 7591), redirect_uri {redirect_uri}, token_endpoint_auth_method {}",
            requested.as_str()
        ),
    );
    let resp = http
        .post(endpoint.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .json(&request)
        .send_recorded()
        .await
        .map_err(|e| ClientError::unreachable(endpoint.as_str(), e))?;
    let status = resp.status().as_u16();
    let body = read_body(resp, endpoint.as_str(), limits::REGISTRATION).await?;
    if !(200..300).contains(&status) {
        trace.step(AREA, format!("-> {status}"));
        return Err(ClientError::Registration {
            url: endpoint.to_string(),
            reason: match body_summary(&body) {
                Some(summary) => format!("HTTP {status}: {summary}"),
                None => format!("HTTP {status}"),
            },
            source: None,
        });
    }
    let info: ClientInformation =
        serde_json::from_slice(&body).map_err(|e| ClientError::Registration {
            url: endpoint.to_string(),
            reason: "the response is not a client information response".to_owned(),
            source: Some(e),
        })?;
    let auth_method = match info
        .metadata
        .token_endpoint_auth_method
        .as_deref()
        .and_then(TokenAuthMethod::parse)
    {
        Some(m) => m,
        None if info.client_secret.is_some() => {
            if md.token_endpoint_auth_methods_supported.is_empty()
                || md.supports_token_auth_method("client_secret_basic")
                || md.supports_token_auth_method("client_secret_post")
            {
                secret_method(as_)
            } else {
                TokenAuthMethod::None
            }
        }
        None => TokenAuthMethod::None,
    };
    trace.step(
        AREA,
        format!(
            "-> {status}: registered as client_id {}{}, token endpoint auth {}",
            info.client_id,
            if info.client_secret.is_some() {
                " with a client secret"
            } else {
                " (public)"
            },
            auth_method.as_str()
        ),
    );
    let client = StoredClient {
        client_id: info.client_id,
        client_secret: info.client_secret,
        auth_method,
        source: ClientSource::Dynamic,
        redirect_uri: Some(redirect_uri.to_owned()),
    };
    Ok(client)
}

/// The OpenID Connect `application_type` for a redirect URI: `native` for a loopback
/// redirect (a program on the user's machine, as this client is), `web` for one served
/// from elsewhere. MCP 2026-07-28 (client registration) asks for it: an OIDC server
/// would default to `web` and may then refuse a loopback redirect.
fn application_type(redirect_uri: &str) -> &'static str {
    match url::Url::parse(redirect_uri) {
        // An https redirect on a host that is not loopback: a web application's.
        Ok(u) if u.scheme() == "https" && !is_loopback_host(&u) => "web",
        // http on loopback (the only http redirect OAuth 2.1 allows) or a private scheme.
        _ => "native",
    }
}

fn is_loopback_host(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The method for a client with a secret: basic when the AS lists it (or lists nothing,
/// RFC 8414's default), else post.
fn secret_method(as_: &AuthorizationServer) -> TokenAuthMethod {
    let md = &as_.metadata;
    if md.supports_token_auth_method("client_secret_basic") {
        TokenAuthMethod::ClientSecretBasic
    } else if md.supports_token_auth_method("client_secret_post") {
        TokenAuthMethod::ClientSecretPost
    } else {
        TokenAuthMethod::ClientSecretBasic
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use crate::discovery::MetadataSource;

    /// A registration endpoint on 127.0.0.1 that answers 201 with `body`; its URL.
    async fn registration_endpoint(body: &'static str) -> url::Url {
        let app = axum::Router::new().route(
            "/register",
            axum::routing::post(move || async move {
                (
                    axum::http::StatusCode::CREATED,
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
            }),
        );
        let base = testkit::http::serve_on_loopback(|listener, _| {
            axum::serve(listener, app).into_future()
        })
        .await;
        url::Url::parse(&format!("{base}/register")).unwrap()
    }

    #[tokio::test]
    async fn a_response_that_is_not_client_information_keeps_serde_s_error() {
        let endpoint = registration_endpoint(r#"{"client_id": 7}"#).await;
        let issuer = endpoint.origin().ascii_serialization();
        let metadata = serde_json::from_value(serde_json::json!({
            "issuer": issuer,
            "registration_endpoint": endpoint.as_str(),
        }))
        .unwrap();
        let as_ = AuthorizationServer {
            issuer: issuer.clone(),
            metadata,
            source: MetadataSource::Discovered,
            authorization_endpoint: endpoint.join("/authorize").unwrap(),
            token_endpoint: endpoint.join("/token").unwrap(),
            registration_endpoint: Some(endpoint.clone()),
        };
        let err = register(
            &reqwest::Client::new(),
            &Trace::silent(),
            &as_,
            &ClientConfig::default(),
            &endpoint,
            "http://127.0.0.1:53682/callback",
        )
        .await
        .unwrap_err();
        let source = err
            .source()
            .and_then(|s| s.downcast_ref::<serde_json::Error>())
            .expect("the serde_json error is kept");
        assert_eq!(
            err.to_string(),
            format!(
                "dynamic client registration at {endpoint} failed: the response is not a client information response: {source}"
            )
        );
        assert!(matches!(err, ClientError::Registration { .. }), "{err:?}");
    }

    #[test]
    fn a_refusal_has_no_source() {
        let err = ClientError::Registration {
            url: "http://as/register".into(),
            reason: "HTTP 400: invalid_redirect_uri".into(),
            source: None,
        };
        assert_eq!(
            err.to_string(),
            "dynamic client registration at http://as/register failed: HTTP 400: invalid_redirect_uri"
        );
        assert!(err.source().is_none());
    }

    #[test]
    fn application_type_follows_the_redirect() {
        assert_eq!(
            application_type("http://127.0.0.1:53682/callback"),
            "native"
        );
        assert_eq!(application_type("http://localhost:8080/cb"), "native");
        assert_eq!(application_type("http://[::1]:9/cb"), "native");
        assert_eq!(application_type("com.example.app:/oauth"), "native");
        assert_eq!(application_type("https://127.0.0.1/cb"), "native");
        assert_eq!(application_type("https://app.example.com/cb"), "web");
    }
}
