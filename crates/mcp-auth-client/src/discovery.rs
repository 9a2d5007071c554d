//! Discovery: from an MCP server URL to its authorization server's endpoints.
//!
//! In the orders the MCP specification sets (2025-11-25, "Authorization Server Discovery"):
//! 1. Protected Resource Metadata (RFC 9728): the `resource_metadata` URL of the 401
//!    challenge, else `/.well-known/oauth-protected-resource/<path>`, else the root
//!    `/.well-known/oauth-protected-resource`. Its `resource` must name this server
//!    (RFC 9728 §3.3), or the client refuses to authorize.
//! 2. Authorization server metadata for the first `authorization_servers` entry:
//!    RFC 8414 path insertion, OIDC path insertion, OIDC path appending. The document's
//!    `issuer` must equal the issuer looked up (RFC 8414 §3.3).
//! 3. Without any PRM, the 2025-03-26 fallbacks: AS metadata at the MCP server's root
//!    `/.well-known/oauth-authorization-server`, then the default endpoints
//!    `/authorize`, `/token`, `/register` on the MCP server's origin.
//!
//! Authorization server endpoints must be https, except on loopback addresses.

use mcp_auth_proto::wellknown::{
    authorization_server_metadata_urls, canonical_resource, is_loopback_or_https,
    legacy_authorization_server_metadata_url, legacy_endpoints, prm_discovery_urls,
    resource_matches,
};
use mcp_auth_proto::{AuthorizationServerMetadata, BearerChallenge, ProtectedResourceMetadata};
use url::Url;

use crate::error::{ClientError, Result};
use crate::http::{Fetched, get_json};
use crate::trace::Trace;

const AREA: &str = "discovery";

/// How the authorization server's metadata was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataSource {
    /// From PRM's `authorization_servers` and a metadata document whose issuer matched.
    Discovered,
    /// 2025-03-26: the metadata document at the MCP server's root.
    LegacyRoot,
    /// 2025-03-26: no metadata at all; the default endpoints on the MCP server's origin.
    LegacyDefaults,
}

/// The authorization server to use.
#[derive(Debug, Clone)]
pub struct AuthorizationServer {
    /// Its issuer identifier (the cache key for registrations and tokens).
    pub issuer: String,
    /// Its metadata (made up from the default endpoints for [`MetadataSource::LegacyDefaults`]).
    pub metadata: AuthorizationServerMetadata,
    /// Where the metadata came from.
    pub source: MetadataSource,
    /// The authorization endpoint.
    pub authorization_endpoint: Url,
    /// The token endpoint.
    pub token_endpoint: Url,
    /// The registration endpoint, if any.
    pub registration_endpoint: Option<Url>,
}

/// What discovery learned about a server.
#[derive(Debug, Clone)]
pub struct Discovered {
    /// The `resource` parameter to send (RFC 8707): PRM's `resource`, else the server's
    /// canonical URI.
    pub resource: String,
    /// The Protected Resource Metadata, if the server has one.
    pub prm: Option<ProtectedResourceMetadata>,
    /// The authorization server.
    pub authorization_server: AuthorizationServer,
    /// Whether the resource accepts DPoP-bound tokens: its metadata lists
    /// `dpop_signing_alg_values_supported` or requires them (RFC 9728 §2), or its 401
    /// challenge offered the `DPoP` scheme (RFC 9449 §7.1; the session sets this).
    pub resource_offers_dpop: bool,
}

/// Runs the whole discovery for `server_url`, given the challenge of its 401 (if any).
pub async fn discover(
    http: &reqwest::Client,
    trace: &Trace,
    server_url: &Url,
    challenge: Option<&BearerChallenge>,
) -> Result<Discovered> {
    let canonical = canonical_resource(server_url)
        .map_err(|source| ClientError::server_url(server_url, source))?;
    match discover_resource(http, trace, server_url, challenge).await? {
        Some(prm) => {
            let Some(issuer) = prm.authorization_servers.first().cloned() else {
                return Err(ClientError::NoAuthorizationServer {
                    server: server_url.to_string(),
                    reason: "its protected resource metadata lists no authorization_servers"
                        .to_owned(),
                });
            };
            if prm.authorization_servers.len() > 1 {
                trace.step(
                    AREA,
                    format!(
                        "the resource lists {} authorization servers; using the first, {issuer}",
                        prm.authorization_servers.len()
                    ),
                );
            }
            let authorization_server = discover_authorization_server(http, trace, &issuer).await?;
            let resource_offers_dpop = prm
                .extra
                .get("dpop_signing_alg_values_supported")
                .and_then(serde_json::Value::as_array)
                .is_some_and(|a| !a.is_empty())
                || prm.extra.get("dpop_bound_access_tokens_required")
                    == Some(&serde_json::Value::Bool(true));
            Ok(Discovered {
                resource: prm.resource.clone(),
                prm: Some(prm),
                authorization_server,
                resource_offers_dpop,
            })
        }
        None => {
            trace.step(
                AREA,
                "no protected resource metadata: falling back to the 2025-03-26 discovery on the server's origin",
            );
            let authorization_server = discover_legacy(http, trace, server_url).await?;
            Ok(Discovered {
                resource: canonical,
                prm: None,
                authorization_server,
                resource_offers_dpop: false,
            })
        }
    }
}

/// Finds and checks the Protected Resource Metadata. `Ok(None)` when the server has none.
pub async fn discover_resource(
    http: &reqwest::Client,
    trace: &Trace,
    server_url: &Url,
    challenge: Option<&BearerChallenge>,
) -> Result<Option<ProtectedResourceMetadata>> {
    let mut candidates: Vec<(Url, &str)> = Vec::new();
    if let Some(rm) = challenge.and_then(|c| c.resource_metadata.as_deref()) {
        match Url::parse(rm) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {
                candidates.push((u, "named by the WWW-Authenticate challenge"));
            }
            _ => trace.step(
                AREA,
                format!("ignoring the challenge's resource_metadata {rm:?}: not an http(s) URL"),
            ),
        }
    }
    for (i, u) in prm_discovery_urls(server_url).into_iter().enumerate() {
        if !candidates.iter().any(|(c, _)| *c == u) {
            candidates.push((
                u,
                if i == 0 {
                    "well-known URI with the server's path"
                } else {
                    "well-known URI at the root"
                },
            ));
        }
    }
    for (url, why) in candidates {
        match get_json(http, &url).await? {
            Fetched::Json(value, ctype) => {
                trace.step(
                    AREA,
                    format!("GET {url} -> 200: protected resource metadata ({why})"),
                );
                note_content_type(trace, ctype.as_deref());
                trace.detail(AREA, pretty(&value));
                let prm: ProtectedResourceMetadata =
                    serde_json::from_value(value).map_err(|e| ClientError::MalformedJson {
                        what: "protected resource metadata",
                        url: url.to_string(),
                        source: e,
                    })?;
                if !resource_matches(&prm.resource, server_url) {
                    trace.step(
                        AREA,
                        format!(
                            "its resource {} is not {server_url}: refusing it (RFC 9728 §3.3)",
                            prm.resource
                        ),
                    );
                    return Err(ClientError::ResourceMismatch {
                        prm_resource: prm.resource,
                        server: server_url.to_string(),
                    });
                }
                trace.step(
                    AREA,
                    format!(
                        "resource {} matches the server; authorization servers: [{}]; scopes_supported: [{}]",
                        prm.resource,
                        prm.authorization_servers.join(", "),
                        prm.scopes_supported.join(" ")
                    ),
                );
                return Ok(Some(prm));
            }
            Fetched::Status(status) => {
                trace.step(AREA, format!("GET {url} -> {status} ({why}): not there"));
            }
            Fetched::NotJson(ctype) => trace.step(
                AREA,
                format!(
                    "GET {url} -> 200 but the body is not JSON ({}); skipping",
                    ctype.as_deref().unwrap_or("no content type")
                ),
            ),
        }
    }
    Ok(None)
}

/// Finds the metadata of `issuer` by RFC 8414 and OIDC discovery and checks its `issuer`.
pub async fn discover_authorization_server(
    http: &reqwest::Client,
    trace: &Trace,
    issuer: &str,
) -> Result<AuthorizationServer> {
    let issuer_url = Url::parse(issuer).map_err(|source| ClientError::InvalidUrl {
        what: "authorization server issuer",
        url: issuer.to_owned(),
        field: None,
        value: issuer.to_owned(),
        source,
    })?;
    check_secure(&issuer_url)?;
    let urls = authorization_server_metadata_urls(&issuer_url);
    let labels = if urls.len() == 2 {
        ["RFC 8414", "OpenID Connect discovery", ""]
    } else {
        [
            "RFC 8414 path insertion",
            "OIDC path insertion",
            "OIDC path appending",
        ]
    };
    for (url, label) in urls.iter().zip(labels) {
        match get_json(http, url).await? {
            Fetched::Json(value, ctype) => {
                trace.step(
                    AREA,
                    format!("GET {url} -> 200: authorization server metadata ({label})"),
                );
                note_content_type(trace, ctype.as_deref());
                trace.detail(AREA, pretty(&value));
                let metadata: AuthorizationServerMetadata =
                    serde_json::from_value(value).map_err(|e| ClientError::MalformedJson {
                        what: "authorization server metadata",
                        url: url.to_string(),
                        source: e,
                    })?;
                if metadata.issuer != issuer {
                    return Err(ClientError::IssuerMismatch {
                        url: url.to_string(),
                        expected: issuer.to_owned(),
                        found: metadata.issuer,
                    });
                }
                trace.step(AREA, format!("issuer {issuer} matches"));
                return from_metadata(trace, metadata, MetadataSource::Discovered);
            }
            Fetched::Status(status) => {
                trace.step(AREA, format!("GET {url} -> {status} ({label}): not there"));
            }
            Fetched::NotJson(ctype) => trace.step(
                AREA,
                format!(
                    "GET {url} -> 200 but the body is not JSON ({}); skipping",
                    ctype.as_deref().unwrap_or("no content type")
                ),
            ),
        }
    }
    Err(ClientError::NoAuthorizationServer {
        server: issuer.to_owned(),
        reason: format!(
            "no metadata document at {}",
            urls.iter().map(Url::as_str).collect::<Vec<_>>().join(", ")
        ),
    })
}

/// The 2025-03-26 discovery: metadata at the MCP server's root, else default endpoints.
pub async fn discover_legacy(
    http: &reqwest::Client,
    trace: &Trace,
    server_url: &Url,
) -> Result<AuthorizationServer> {
    let url = legacy_authorization_server_metadata_url(server_url);
    match get_json(http, &url).await? {
        Fetched::Json(value, ctype) => {
            trace.step(
                AREA,
                format!("GET {url} -> 200: authorization server metadata at the server's root (2025-03-26)"),
            );
            note_content_type(trace, ctype.as_deref());
            trace.detail(AREA, pretty(&value));
            let metadata: AuthorizationServerMetadata =
                serde_json::from_value(value).map_err(|e| ClientError::MalformedJson {
                    what: "authorization server metadata",
                    url: url.to_string(),
                    source: e,
                })?;
            // In this older scheme the metadata URL comes from the MCP server, not from an
            // issuer, so there is no issuer to compare with; insist on the same origin.
            let same_origin = Url::parse(&metadata.issuer)
                .map(|i| i.origin() == server_url.origin())
                .unwrap_or(false);
            if !same_origin {
                return Err(ClientError::IssuerMismatch {
                    url: url.to_string(),
                    expected: server_url.origin().ascii_serialization(),
                    found: metadata.issuer,
                });
            }
            trace.step(
                AREA,
                format!(
                    "issuer {} is on the server's origin, as 2025-03-26 expects",
                    metadata.issuer
                ),
            );
            from_metadata(trace, metadata, MetadataSource::LegacyRoot)
        }
        Fetched::Status(status) => {
            trace.step(
                AREA,
                format!("GET {url} -> {status}: no metadata at the server's root"),
            );
            let ep = legacy_endpoints(server_url);
            trace.step(
                AREA,
                format!(
                    "using the 2025-03-26 default endpoints {}, {}, {}",
                    ep.authorize, ep.token, ep.register
                ),
            );
            let issuer = server_url.origin().ascii_serialization();
            let mut metadata = AuthorizationServerMetadata::new(issuer.clone());
            metadata.authorization_endpoint = Some(ep.authorize.to_string());
            metadata.token_endpoint = Some(ep.token.to_string());
            metadata.registration_endpoint = Some(ep.register.to_string());
            metadata.response_types_supported = vec!["code".to_owned()];
            // 2025-03-26 makes PKCE mandatory for clients; without metadata there is nothing
            // to check, so S256 is assumed.
            metadata.code_challenge_methods_supported = vec!["S256".to_owned()];
            check_secure(&ep.authorize)?;
            Ok(AuthorizationServer {
                issuer,
                metadata,
                source: MetadataSource::LegacyDefaults,
                authorization_endpoint: ep.authorize,
                token_endpoint: ep.token,
                registration_endpoint: Some(ep.register),
            })
        }
        Fetched::NotJson(_) => Err(ClientError::InvalidResponse {
            what: "authorization server metadata",
            url: url.to_string(),
            reason: "the body is not JSON".to_owned(),
        }),
    }
}

fn from_metadata(
    trace: &Trace,
    metadata: AuthorizationServerMetadata,
    source: MetadataSource,
) -> Result<AuthorizationServer> {
    let endpoint = |name: &'static str, value: &Option<String>| -> Result<Option<Url>> {
        match value {
            None => Ok(None),
            Some(v) => {
                let u = Url::parse(v).map_err(|source| ClientError::InvalidUrl {
                    what: "authorization server metadata",
                    url: metadata.issuer.clone(),
                    field: Some(name),
                    value: v.clone(),
                    source,
                })?;
                check_secure(&u)?;
                Ok(Some(u))
            }
        }
    };
    let missing = |name: &str| ClientError::InvalidResponse {
        what: "authorization server metadata",
        url: metadata.issuer.clone(),
        reason: format!("it has no {name}"),
    };
    let authorization_endpoint =
        endpoint("authorization_endpoint", &metadata.authorization_endpoint)?
            .ok_or_else(|| missing("authorization_endpoint"))?;
    let token_endpoint = endpoint("token_endpoint", &metadata.token_endpoint)?
        .ok_or_else(|| missing("token_endpoint"))?;
    let registration_endpoint = endpoint("registration_endpoint", &metadata.registration_endpoint)?;
    if !metadata.supports_pkce_s256() {
        trace.step(
            AREA,
            format!(
                "code_challenge_methods_supported is [{}]: no S256, so no PKCE, so no authorization",
                metadata.code_challenge_methods_supported.join(", ")
            ),
        );
        return Err(ClientError::NoPkceS256 {
            issuer: metadata.issuer,
        });
    }
    trace.step(
        AREA,
        format!(
            "authorize at {authorization_endpoint}, tokens at {token_endpoint}, registration {}; PKCE S256 supported",
            registration_endpoint
                .as_ref()
                .map_or_else(|| "not offered".to_owned(), Url::to_string)
        ),
    );
    Ok(AuthorizationServer {
        issuer: metadata.issuer.clone(),
        metadata,
        source,
        authorization_endpoint,
        token_endpoint,
        registration_endpoint,
    })
}

fn check_secure(url: &Url) -> Result<()> {
    if is_loopback_or_https(url) {
        Ok(())
    } else {
        Err(ClientError::InsecureEndpoint {
            url: url.to_string(),
        })
    }
}

fn note_content_type(trace: &Trace, content_type: Option<&str>) {
    if let Some(ct) = content_type
        && !ct.to_ascii_lowercase().contains("json")
    {
        trace.step(
            AREA,
            format!(
                "(served as {ct}, not application/json: static file servers such as busybox httpd label files by extension, and a .well-known name has none; the body parses as JSON, which is what counts)"
            ),
        );
    }
}

pub(crate) fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    fn parse_error(err: &ClientError) -> &url::ParseError {
        err.source()
            .and_then(|s| s.downcast_ref::<url::ParseError>())
            .expect("the url error is kept")
    }

    #[tokio::test]
    async fn an_issuer_that_is_not_a_url_keeps_the_parse_error() {
        let err = discover_authorization_server(&reqwest::Client::new(), &Trace::silent(), "as")
            .await
            .unwrap_err();
        let source = parse_error(&err);
        assert_eq!(
            err.to_string(),
            format!("authorization server issuer from as is not valid: {source}")
        );
    }

    #[test]
    fn a_metadata_endpoint_that_is_not_a_url_keeps_the_parse_error() {
        let metadata = serde_json::from_value(serde_json::json!({
            "issuer": "https://as.example",
            "authorization_endpoint": "https://as.example/authorize",
            "token_endpoint": "/token",
        }))
        .unwrap();
        let err =
            from_metadata(&Trace::silent(), metadata, MetadataSource::Discovered).unwrap_err();
        let source = parse_error(&err);
        assert_eq!(
            err.to_string(),
            format!(
                "authorization server metadata from https://as.example is not valid: token_endpoint \"/token\": {source}"
            )
        );
    }
}
