//! Every check of the audit: its stable id, what it checks, and where the rule is written.
//!
//! The order here is the order of the report. Ids never change meaning; a new rule gets a
//! new id. "MCP authz" names the authorization specification of both revisions the audit
//! follows (2025-11-25 and 2026-07-28), by section heading; "(2026-07-28)" marks a rule
//! only the newer revision has.

macro_rules! catalogue {
    ($($variant:ident => $id:literal, $title:literal, $section:literal;)*) => {
        /// One check of the audit.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum CheckId {
            $(
                #[doc = $title]
                $variant,
            )*
        }

        impl CheckId {
            /// Every check, in report order.
            pub const ALL: &'static [CheckId] = &[$(CheckId::$variant),*];

            /// The stable id, as printed and in JSON (`challenge.status`).
            #[must_use]
            pub fn id(self) -> &'static str {
                match self { $(CheckId::$variant => $id),* }
            }

            /// What the check asks of the server, in a few words.
            #[must_use]
            pub fn title(self) -> &'static str {
                match self { $(CheckId::$variant => $title),* }
            }

            /// Where the rule is written.
            #[must_use]
            pub fn section(self) -> &'static str {
                match self { $(CheckId::$variant => $section),* }
            }

            /// The check with this id.
            #[must_use]
            pub fn from_id(id: &str) -> Option<CheckId> {
                match id { $($id => Some(CheckId::$variant),)* _ => None }
            }
        }
    };
}

catalogue! {
    TransportHttps => "transport.https",
        "every URL is https, or http on a loopback host",
        "MCP authz: Communication Security; OAuth 2.1 §1.5; RFC 9728 §2; RFC 8414 §2";
    TransportOrigin => "transport.origin",
        "a request with a foreign Origin is refused with 403",
        "MCP transports, Streamable HTTP: Security Warning";
    ChallengeStatus => "challenge.status",
        "a request without a token is answered 401",
        "MCP authz: Error Handling; RFC 6750 §3.1";
    ChallengeHeader => "challenge.header",
        "the 401 carries a WWW-Authenticate Bearer challenge",
        "RFC 6750 §3; RFC 9110 §11.6.1";
    ChallengeResourceMetadata => "challenge.resource-metadata",
        "the challenge names the metadata URL (resource_metadata)",
        "MCP authz: Protected Resource Metadata Discovery Requirements; RFC 9728 §5.1";
    ChallengeScope => "challenge.scope",
        "the challenge names the scopes needed (scope)",
        "MCP authz: Scope Selection Strategy; RFC 6750 §3";
    ChallengeNoErrorCode => "challenge.no-error-code",
        "no error code when the request carried no token",
        "RFC 6750 §3.1";
    ChallengeEveryMethod => "challenge.every-method",
        "GET and DELETE without a token are refused too",
        "MCP authz: Token Handling; RFC 6750 §3.1";
    TokenInvalid => "token.invalid",
        "an invalid token is answered 401 invalid_token",
        "MCP authz: Token Handling; RFC 6750 §3.1";
    TokenUnsigned => "token.unsigned",
        "an unsigned JWT (alg none) is refused",
        "MCP authz: Token Handling; OAuth 2.1 §5.2; RFC 8725 §3.1";
    PrmFound => "prm.found",
        "Protected Resource Metadata can be found",
        "MCP authz: Authorization Server Location; RFC 9728 §3";
    PrmChallengeUrl => "prm.challenge-url",
        "the challenge's resource_metadata URL serves the metadata",
        "RFC 9728 §5.1, §3.2";
    PrmPathInserted => "prm.path-inserted",
        "metadata at the path-inserted well-known URL",
        "RFC 9728 §3.1; MCP authz: Protected Resource Metadata Discovery Requirements";
    PrmRoot => "prm.root",
        "metadata at the root well-known URL",
        "RFC 9728 §3.1; MCP authz: Protected Resource Metadata Discovery Requirements";
    PrmContentType => "prm.content-type",
        "metadata served as application/json",
        "RFC 9728 §3.2";
    PrmResource => "prm.resource",
        "the metadata's resource is this server's canonical URI",
        "RFC 9728 §3.3; MCP authz: Canonical Server URI";
    PrmAuthorizationServers => "prm.authorization-servers",
        "the metadata lists at least one authorization server",
        "MCP authz: Authorization Server Location; RFC 9728 §2";
    PrmBearerMethods => "prm.bearer-methods",
        "tokens are offered in the Authorization header only",
        "MCP authz: Token Requirements; RFC 9728 §2; RFC 6750 §2";
    PrmCors => "prm.cors",
        "the metadata is readable cross-origin (CORS)",
        "browser clients (Fetch standard); RFC 9728 does not require it";
    ScopeOfflineAccess => "scope.offline-access",
        "the resource does not ask for offline_access",
        "MCP authz (2026-07-28): Refresh Tokens";
    AsDiscovery => "as.discovery",
        "authorization server metadata at an RFC 8414 or OIDC location",
        "MCP authz: Authorization Server Metadata Discovery; RFC 8414 §3.1, §5";
    AsIssuer => "as.issuer",
        "the metadata's issuer is the issuer looked up",
        "RFC 8414 §3.3; OIDC Discovery §4.3; MCP authz (2026-07-28): Authorization Server Metadata Discovery";
    AsContentType => "as.content-type",
        "authorization server metadata served as application/json",
        "RFC 8414 §3.2";
    AsRequiredMembers => "as.required-members",
        "the metadata has what the authorization code flow needs",
        "RFC 8414 §2";
    AsPkceS256 => "as.pkce-s256",
        "code_challenge_methods_supported lists S256",
        "MCP authz: Authorization Code Protection; RFC 8414 §2; RFC 7636 §4.2";
    AsRegistration => "as.registration",
        "clients can get a client id (CIMD, DCR, pre-registration)",
        "MCP authz: Client Registration Approaches";
    AsIssParameter => "as.iss-parameter",
        "the metadata promises iss in authorization responses",
        "MCP authz (2026-07-28): Authorization Response Validation; RFC 9207 §3";
    AsCors => "as.cors",
        "authorization server metadata readable cross-origin (CORS)",
        "browser clients (Fetch standard); RFC 8414 does not require it";
    DpopAdvertised => "dpop.advertised",
        "DPoP (sender-constrained tokens) advertised",
        "RFC 9449 §5.1; RFC 9728 §2; RFC 9700 §2.2.1";
    LoginFlow => "login.flow",
        "the client's authorization flow completes",
        "MCP authz: Authorization Flow Steps";
    LoginIss => "login.iss",
        "the authorization response carries the right iss",
        "MCP authz (2026-07-28): Authorization Response Validation; RFC 9207 §2";
    TokenAccepted => "token.accepted",
        "the token issued for this server is accepted",
        "MCP authz: Token Handling";
    TokenAudience => "token.audience",
        "the token's aud names this server (resource honoured)",
        "RFC 8707 §2; MCP authz: Token Audience Binding and Validation";
    TokenQuery => "token.query",
        "a token in the query string is refused",
        "MCP authz: Token Requirements; OAuth 2.1 §5.1";
    ScopeInsufficient => "scope.insufficient",
        "a call needing more scope gets 403 insufficient_scope with scope",
        "MCP authz: Scope Challenge Handling; RFC 6750 §3.1";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_round_trip() {
        let mut ids: Vec<&str> = CheckId::ALL.iter().map(|c| c.id()).collect();
        for c in CheckId::ALL {
            assert_eq!(CheckId::from_id(c.id()), Some(*c));
            assert!(!c.title().is_empty() && !c.section().is_empty());
        }
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), CheckId::ALL.len());
    }
}
