//! Which audiences a token may have at the server it goes to: the client's defence
//! against being a confused deputy (RFC 9700 §4, the MCP specification's security best
//! practices), i.e. against a server that gets, through this client, a token made for
//! another resource and replays it there.
//!
//! Authorization servers that honour RFC 8707 put the `resource` the client asked for in
//! `aud`, and the client always asks for the server it talks to. Dex ignores `resource`:
//! its tokens are for the client itself, or, with the cross-client scope
//! `audience:server:client_id:<id>`, for another of its clients `<id>` as well. Nothing
//! in the protocol ties `<id>` to the server that asked for that scope, so a malicious
//! server can name the user's real resource server there. Hence two checks:
//!
//! 1. before an authorization, [`AudiencePolicy::check_scopes`]: a cross-client scope is
//!    requested only when the user allowed its audience for this server
//!    (`--allow-audience <resource>=<audience>`); otherwise nothing is requested;
//! 2. before a token is used (after the code exchange, after a refresh, from the cache),
//!    [`AudiencePolicy::check_token`]: an access token that is a JWT must name in `aud`
//!    the resource it was requested for, or an audience allowed for the server.
//!    Tokens that are not JWTs are opaque to a client (RFC 6749 §1.4) and pass: what
//!    they are for is known only to the authorization and resource servers.
//!
//! An allowance is keyed by a resource URL and applies to the servers it names
//! (the same origin, and the same path or one below it): `http://localhost:3001=api`
//! covers `http://localhost:3001/mcp` and `http://localhost:3001/sse`.

use mcp_auth_proto::wellknown::{canonical_resource, resource_matches};
use mcp_auth_proto::{AccessToken, Scopes};
use serde_json::Value;
use url::Url;

#[doc(inline)]
pub use crate::error::AllowedAudienceError;
use crate::error::{ClientError, Result};

/// The prefix of Dex's cross-client scopes: `audience:server:client_id:<id>` asks for a
/// token whose `aud` includes the Dex client `<id>`.
pub const CROSS_CLIENT_SCOPE_PREFIX: &str = "audience:server:client_id:";

/// One allowance: tokens for `audience` may be obtained for, and sent to, `resource`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedAudience {
    /// The resource (an http or https URL, canonical).
    pub resource: String,
    /// The audience (a Dex client id, or any `aud` value).
    pub audience: String,
}

impl std::str::FromStr for AllowedAudience {
    type Err = ClientError;

    /// Parses `RESOURCE=AUDIENCE` (split at the first `=`).
    fn from_str(s: &str) -> Result<Self> {
        let invalid = |source| ClientError::AllowAudience {
            value: s.to_owned(),
            source,
        };
        let Some((resource, audience)) = s.split_once('=') else {
            return Err(invalid(AllowedAudienceError::NotAPair));
        };
        let resource = resource.trim();
        let url = Url::parse(resource).map_err(|source| {
            invalid(AllowedAudienceError::NotAUrl {
                resource: resource.to_owned(),
                source,
            })
        })?;
        let resource = canonical_resource(&url).map_err(|source| {
            invalid(AllowedAudienceError::NotAResource {
                resource: resource.to_owned(),
                source,
            })
        })?;
        let audience = audience.trim();
        if audience.is_empty() {
            return Err(invalid(AllowedAudienceError::NoAudience));
        }
        Ok(Self {
            resource,
            audience: audience.to_owned(),
        })
    }
}

/// The audiences the user allowed, per resource. Empty by default: then only tokens
/// for the server's own resource URL are used.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AudiencePolicy {
    allowed: Vec<AllowedAudience>,
}

/// What the client could tell about a token's audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenAudience {
    /// A JWT whose `aud` names the resource (that value).
    Resource(String),
    /// A JWT whose `aud` names an audience allowed for the server (that value).
    Allowed(String),
    /// Not a JWT: opaque to the client.
    Opaque,
}

impl AudiencePolicy {
    /// No allowance.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an allowance.
    #[must_use]
    pub fn with(mut self, allowed: AllowedAudience) -> Self {
        if !self.allowed.contains(&allowed) {
            self.allowed.push(allowed);
        }
        self
    }

    /// The audiences allowed for `server_url`.
    pub fn allowed_for<'a>(&'a self, server_url: &'a Url) -> impl Iterator<Item = &'a str> {
        self.allowed
            .iter()
            .filter(|a| resource_matches(&a.resource, server_url))
            .map(|a| a.audience.as_str())
    }

    /// Refuses a request for a cross-client audience (Dex's
    /// `audience:server:client_id:<id>`) that the user did not allow for `server_url`.
    pub fn check_scopes(&self, scopes: &Scopes, server_url: &Url) -> Result<()> {
        for scope in scopes.iter() {
            let Some(audience) = scope.strip_prefix(CROSS_CLIENT_SCOPE_PREFIX) else {
                continue;
            };
            if !self.allowed_for(server_url).any(|a| a == audience) {
                return Err(ClientError::AudienceScopeNotAllowed {
                    server: server_key(server_url),
                    scope: scope.to_owned(),
                    audience: audience.to_owned(),
                });
            }
        }
        Ok(())
    }

    /// Checks that an access token may go to `server_url`: a JWT must name `resource`
    /// (what the token was requested for), the server itself, or an audience allowed for
    /// the server. `issuer` only goes into the error.
    pub fn check_token(
        &self,
        token: &AccessToken,
        server_url: &Url,
        resource: &str,
        issuer: &str,
    ) -> Result<TokenAudience> {
        let Some((_, claims)) = crate::trace::decode_jwt(token.secret()) else {
            return Ok(TokenAudience::Opaque);
        };
        let audiences = audiences(&claims);
        let server = server_key(server_url);
        if let Some(aud) = audiences
            .iter()
            .find(|aud| same_resource(aud, resource) || same_resource(aud, &server))
        {
            return Ok(TokenAudience::Resource(aud.clone()));
        }
        if let Some(aud) = audiences
            .iter()
            .find(|aud| self.allowed_for(server_url).any(|a| a == aud.as_str()))
        {
            return Ok(TokenAudience::Allowed(aud.clone()));
        }
        Err(ClientError::TokenAudience {
            issuer: issuer.to_owned(),
            server,
            resource: resource.to_owned(),
            audiences,
        })
    }
}

/// `aud` as a list (RFC 7519 §4.1.3: a string or an array of strings).
fn audiences(claims: &Value) -> Vec<String> {
    match claims.get("aud") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// Equal as strings, or as canonical resource URLs (`https://H/mcp/` = `https://h/mcp`).
fn same_resource(aud: &str, resource: &str) -> bool {
    if aud == resource {
        return true;
    }
    let canonical = |s: &str| Url::parse(s).ok().and_then(|u| canonical_resource(&u).ok());
    matches!((canonical(aud), canonical(resource)), (Some(a), Some(b)) if a == b)
}

fn server_key(server_url: &Url) -> String {
    canonical_resource(server_url).unwrap_or_else(|_| server_url.to_string())
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    fn jwt(claims: &Value) -> AccessToken {
        let enc =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        AccessToken::new(format!(
            "{}.{}.c2ln",
            enc(&serde_json::json!({"alg": "RS256"})),
            enc(claims)
        ))
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn parses_allowances() {
        let a: AllowedAudience = "http://localhost:3001/mcp/=mcp-resource-server"
            .parse()
            .unwrap();
        assert_eq!(a.resource, "http://localhost:3001/mcp");
        assert_eq!(a.audience, "mcp-resource-server");
        assert!("mcp-resource-server".parse::<AllowedAudience>().is_err());
        assert!("not a url=x".parse::<AllowedAudience>().is_err());
        assert!("http://h/mcp=".parse::<AllowedAudience>().is_err());
    }

    #[test]
    fn unreadable_allowances_keep_their_causes() {
        use std::error::Error as _;

        let parse = |s: &str| s.parse::<AllowedAudience>().unwrap_err();
        let err = parse("not a url=x");
        assert!(
            matches!(
                &err,
                ClientError::AllowAudience {
                    source: AllowedAudienceError::NotAUrl { .. },
                    ..
                }
            ),
            "{err:?}"
        );
        let cause = err.source().and_then(std::error::Error::source);
        assert_eq!(
            cause.and_then(|e| e.downcast_ref::<url::ParseError>()),
            Some(&url::ParseError::RelativeUrlWithoutBase)
        );
        assert_eq!(
            err.to_string(),
            "--allow-audience \"not a url=x\": \"not a url\" is not a resource URL \
             (relative URL without a base)"
        );

        let err = parse("ftp://user:s3cret@h/mcp=x");
        let cause = err.source().and_then(std::error::Error::source);
        assert!(
            cause
                .and_then(|e| e.downcast_ref::<mcp_auth_proto::wellknown::UrlError>())
                .is_some(),
            "{err:?}"
        );
        // The URL error does not repeat the password (the value itself is the user's own).
        assert!(!cause.unwrap().to_string().contains("s3cret"));

        for (value, expected) in [
            (
                "mcp-resource-server",
                "--allow-audience \"mcp-resource-server\": not RESOURCE=AUDIENCE \
                 (for example http://localhost:3001=mcp-resource-server)",
            ),
            (
                "http://h/mcp=",
                "--allow-audience \"http://h/mcp=\": no audience after the =",
            ),
        ] {
            let err = parse(value);
            assert_eq!(err.to_string(), expected);
            assert!(err.source().unwrap().source().is_none());
        }
    }

    #[test]
    fn cross_client_scopes_need_an_allowance_for_this_server() {
        let server = url("http://localhost:3001/mcp");
        let scopes = Scopes::parse("openid audience:server:client_id:mcp-resource-server");
        let err = AudiencePolicy::new()
            .check_scopes(&scopes, &server)
            .unwrap_err();
        assert!(
            matches!(&err, ClientError::AudienceScopeNotAllowed { audience, .. } if audience == "mcp-resource-server"),
            "{err}"
        );
        let origin_wide = AudiencePolicy::new()
            .with("http://localhost:3001=mcp-resource-server".parse().unwrap());
        assert!(origin_wide.check_scopes(&scopes, &server).is_ok());
        // An allowance for another server, or another path, does not carry over.
        let other = AudiencePolicy::new().with(
            "http://evil.example/mcp=mcp-resource-server"
                .parse()
                .unwrap(),
        );
        assert!(other.check_scopes(&scopes, &server).is_err());
        let sibling = AudiencePolicy::new().with(
            "http://localhost:3001/sse=mcp-resource-server"
                .parse()
                .unwrap(),
        );
        assert!(sibling.check_scopes(&scopes, &server).is_err());
        assert!(
            AudiencePolicy::new()
                .check_scopes(&Scopes::parse("openid mcp:tools"), &server)
                .is_ok()
        );
    }

    #[test]
    fn a_jwt_must_name_the_resource_or_an_allowed_audience() {
        let server = url("https://mcp.example.com/mcp");
        let resource = "https://mcp.example.com/mcp";
        let none = AudiencePolicy::new();
        let check = |policy: &AudiencePolicy, claims: Value| {
            policy.check_token(&jwt(&claims), &server, resource, "https://as.example.com")
        };
        assert_eq!(
            check(
                &none,
                serde_json::json!({"aud": "https://mcp.example.com/mcp/"})
            )
            .unwrap(),
            TokenAudience::Resource("https://mcp.example.com/mcp/".into())
        );
        assert!(check(&none, serde_json::json!({"aud": ["x", resource]})).is_ok());
        // Dex's token for a peer client: refused unless allowed.
        let dex = serde_json::json!({"aud": ["mcp-resource-server", "mcp-client"]});
        let err = check(&none, dex.clone()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("mcp-resource-server") && msg.contains("--allow-audience"),
            "{msg}"
        );
        let allowed = AudiencePolicy::new().with(
            "https://mcp.example.com=mcp-resource-server"
                .parse()
                .unwrap(),
        );
        assert_eq!(
            check(&allowed, dex).unwrap(),
            TokenAudience::Allowed("mcp-resource-server".into())
        );
        // A token for another resource, or for none at all.
        assert!(
            check(
                &none,
                serde_json::json!({"aud": "https://other.example.com/mcp"})
            )
            .is_err()
        );
        assert!(check(&none, serde_json::json!({"sub": "alice"})).is_err());
        // Opaque tokens say nothing to the client.
        assert_eq!(
            none.check_token(&AccessToken::new("opaque-1"), &server, resource, "i")
                .unwrap(),
            TokenAudience::Opaque
        );
    }
}
