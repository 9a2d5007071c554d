//! The client's error type.
//!
//! Every variant reads as one sentence that names what went wrong and, where it helps,
//! what to do about it. No variant carries a token or a secret.

use std::time::Duration;

/// Everything that can end an operation of the client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A network error: the peer could not be reached or the connection broke.
    #[error("cannot reach {url}: {}", cause(source))]
    Unreachable {
        /// The URL that was requested (without its query, where that may carry a code).
        url: String,
        /// What the HTTP stack said, without the URL.
        #[source]
        source: reqwest::Error,
    },
    /// A peer answered with an unexpected HTTP status.
    #[error("{url} answered HTTP {status}{}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    HttpStatus {
        /// The URL that was requested.
        url: String,
        /// The status code.
        status: u16,
        /// A short detail: what the body says, or what the status means here.
        detail: Option<String>,
    },
    /// A peer sent a body larger than the client reads for that kind of response.
    #[error(
        "{url} sent more than {} for {what}, the most this client reads: the response was dropped",
        crate::body_limit::human_bytes(*limit)
    )]
    BodyTooLarge {
        /// The URL that was requested.
        url: String,
        /// What the body was (`a metadata document`, `a token response`, ...).
        what: &'static str,
        /// The limit, in bytes.
        limit: usize,
    },
    /// A peer answered something that could not be understood.
    #[error("{what} from {url} is not valid: {reason}")]
    InvalidResponse {
        /// What was expected (`protected resource metadata`, `token response`, ...).
        what: &'static str,
        /// The URL that was requested.
        url: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A URL a peer sent could not be parsed.
    #[error(
        "{what} from {url} is not valid: {}{source}",
        field.map(|f| format!("{f} {value:?}: ")).unwrap_or_default()
    )]
    InvalidUrl {
        /// What was expected (`authorization server metadata`, ...).
        what: &'static str,
        /// Where it came from.
        url: String,
        /// The member that held it, where the URL is one member of a document.
        field: Option<&'static str>,
        /// The text that is not a URL.
        value: String,
        /// Why it is not a URL.
        #[source]
        source: url::ParseError,
    },
    /// A peer's JSON could not be read as what was expected.
    #[error("{what} from {url} is not valid: {source}")]
    MalformedJson {
        /// What was expected (`token response`, `MCP response`, ...).
        what: &'static str,
        /// The URL that was requested.
        url: String,
        /// Where and why the JSON did not fit.
        #[source]
        source: serde_json::Error,
    },
    /// The Protected Resource Metadata names another resource (RFC 9728 §3.3).
    #[error(
        "the protected resource metadata names the resource {prm_resource}, which is not the server {server}: refusing to authorize"
    )]
    ResourceMismatch {
        /// The `resource` of the metadata.
        prm_resource: String,
        /// The MCP server URL in use.
        server: String,
    },
    /// The metadata of the authorization server names another issuer (RFC 8414 §3.3).
    #[error("the authorization server metadata at {url} names the issuer {found}, not {expected}")]
    IssuerMismatch {
        /// Where the metadata came from.
        url: String,
        /// The issuer that was looked up.
        expected: String,
        /// The issuer the document names.
        found: String,
    },
    /// The authorization server does not list PKCE S256.
    #[error(
        "the authorization server {issuer} does not list S256 in code_challenge_methods_supported, and PKCE with S256 is required"
    )]
    NoPkceS256 {
        /// The issuer.
        issuer: String,
    },
    /// An authorization server endpoint is plain http on a non-loopback host.
    #[error(
        "refusing to use {url}: authorization server endpoints must be https (or http on a loopback address)"
    )]
    InsecureEndpoint {
        /// The offending URL.
        url: String,
    },
    /// The MCP server URL is plain http on a host that is not a loopback address.
    #[error(
        "refusing {url}: over plain http to a host that is not loopback, the bearer token and every MCP message could be read and changed by anyone on the network path; use https (or pass --allow-insecure-http on a lab network)"
    )]
    InsecureServer {
        /// The MCP server URL.
        url: String,
    },
    /// No authorization server could be found.
    #[error("no authorization server found for {server}: {reason}")]
    NoAuthorizationServer {
        /// The MCP server URL.
        server: String,
        /// What was tried.
        reason: String,
    },
    /// No way to identify this client to the authorization server.
    #[error(
        "no client identity for {issuer}: it has no registration endpoint and does not accept client ID metadata documents; pass --client-id (and --client-secret) of a client registered there"
    )]
    NoClientIdentity {
        /// The issuer.
        issuer: String,
    },
    /// Pre-registered credentials would go to another authorization server than theirs.
    #[error(
        "the pre-registered client {client_id} belongs to the authorization server {bound} ({how}), but this server's authorization server is {requested}: its credentials are not sent there. Pass --client-issuer {requested} only if {client_id} is registered there"
    )]
    ClientIssuerMismatch {
        /// The pre-registered client id.
        client_id: String,
        /// The issuer the credentials are bound to.
        bound: String,
        /// How they were bound (`--client-issuer`, or first use).
        how: String,
        /// The issuer the server names.
        requested: String,
    },
    /// The server asks for a cross-client audience the user did not allow for it.
    #[error(
        "{server} asks for the scope {scope}, which makes the authorization server (Dex) issue a token for its client {audience}, not for {server}: refusing to request it, as that token could be used at whatever server accepts {audience}. If {audience} is the audience of {server} itself, allow it with --allow-audience {server}={audience}"
    )]
    AudienceScopeNotAllowed {
        /// The MCP server (canonical URL).
        server: String,
        /// The cross-client scope.
        scope: String,
        /// The audience it asks for.
        audience: String,
    },
    /// An access token whose `aud` names neither the resource nor an allowed audience.
    #[error(
        "the access token from {issuer} is for {}, which is neither {resource} nor an audience allowed for {server}: it is not sent there, as it could be used at another server. If one of these is the audience of {server} itself, allow it with --allow-audience {server}=<audience>",
        if audiences.is_empty() { "no audience at all (no aud claim)".to_owned() } else { format!("the audience {}", audiences.join(", ")) }
    )]
    TokenAudience {
        /// The issuer that made the token.
        issuer: String,
        /// The MCP server (canonical URL).
        server: String,
        /// The resource the token was requested for.
        resource: String,
        /// The token's `aud` values.
        audiences: Vec<String>,
    },
    /// The authorization server answered the authorization request with an error.
    #[error("the authorization server refused the authorization: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    AuthorizationDenied {
        /// The `error` code of the callback.
        error: String,
        /// The `error_description`, if any.
        description: Option<String>,
    },
    /// The `state` of the callback is not the one that was sent.
    #[error(
        "the state in the authorization callback does not match the one sent: the response was discarded"
    )]
    StateMismatch,
    /// The `iss` of the callback is not the authorization server (RFC 9207).
    #[error(
        "the authorization callback names the issuer {found}, not {expected} (RFC 9207): the response was discarded"
    )]
    CallbackIssuerMismatch {
        /// The issuer in use.
        expected: String,
        /// The `iss` of the callback (`(missing)` when the AS promised one and sent none).
        found: String,
    },
    /// Nobody came back to the redirect URI in time.
    #[error(
        "no authorization callback within {} s: the authorization was abandoned{}",
        waited.as_secs(),
        match ignored {
            0 => String::new(),
            1 => " (1 request to the callback was ignored: not an authorization response, or not for this login)".to_owned(),
            n => format!(" ({n} requests to the callback were ignored: not authorization responses, or not for this login)"),
        }
    )]
    CallbackTimeout {
        /// How long the listener waited.
        waited: Duration,
        /// Requests it answered 400 and ignored (no code, or a wrong `state`).
        ignored: u32,
    },
    /// The headless authorizer could not reach the redirect URI.
    #[error("headless authorization stopped at {url}: {reason}")]
    Headless {
        /// The last URL visited.
        url: String,
        /// Why it stopped.
        reason: String,
    },
    /// The token endpoint answered with an OAuth error (RFC 6749 §5.2).
    #[error("the token endpoint {url} refused the {grant} grant: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    TokenEndpoint {
        /// The token endpoint.
        url: String,
        /// `authorization_code` or `refresh_token`.
        grant: &'static str,
        /// The OAuth error code.
        error: String,
        /// The error description, if any.
        description: Option<String>,
    },
    /// Dynamic client registration failed.
    #[error(
        "dynamic client registration at {url} failed: {reason}{}",
        source.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
    )]
    Registration {
        /// The registration endpoint.
        url: String,
        /// Why.
        reason: String,
        /// Where and why the response did not fit, when it was not a client information
        /// response.
        #[source]
        source: Option<serde_json::Error>,
    },
    /// The server kept asking for authorization past the session's budget.
    #[error(
        "gave up after {attempts} authorizations, the most one session makes (--max-authorizations): the server still answers {status}{}{}",
        scope.as_deref().map(|s| format!(" and asks for the scope \"{s}\"")).unwrap_or_default(),
        description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default()
    )]
    TooManyAuthorizations {
        /// How many authorizations were made.
        attempts: u32,
        /// The last HTTP status (401 or 403).
        status: u16,
        /// The last scope asked for.
        scope: Option<String>,
        /// The last `error_description`, if any.
        description: Option<String>,
    },
    /// The server answered 403 with an error other than `insufficient_scope`.
    #[error("the server refused the request (HTTP 403){}", .0.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Forbidden(Option<String>),
    /// A JSON-RPC error response.
    #[error("the MCP server answered {method} with error {code}: {message}")]
    JsonRpc {
        /// The method that was called.
        method: String,
        /// The JSON-RPC error code.
        code: i64,
        /// The error message.
        message: String,
    },
    /// DPoP cannot be used as configured (RFC 9449).
    #[error("DPoP: {0}")]
    Dpop(String),
    /// A transport-level problem of the MCP session.
    #[error("MCP transport: {0}")]
    Transport(String),
    /// Reading or writing the token cache failed.
    #[error("token cache {path}: {source}")]
    Cache {
        /// The file or directory.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file named by a flag (a key, a JWT) could not be read.
    #[error("{flag} {path}: {source}")]
    File {
        /// The flag that named it (`--client-key`, `--assertion-file`, ...).
        flag: &'static str,
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Bad configuration or arguments.
    #[error("{0}")]
    Config(String),
    /// An `--allow-audience` value that cannot be read.
    #[error("--allow-audience {value:?}: {source}")]
    AllowAudience {
        /// The value as given.
        value: String,
        /// What is wrong with it.
        #[source]
        source: AllowedAudienceError,
    },
    /// The MCP server URL cannot name a resource (RFC 8707): it is not http(s) or has no
    /// host.
    #[error("{url} is not a usable MCP server URL: {source}")]
    ServerUrl {
        /// The MCP server URL, without its user name and password.
        url: String,
        /// Why it cannot name a resource.
        #[source]
        source: mcp_auth_proto::wellknown::UrlError,
    },
    /// A URL of the configuration could not be parsed.
    #[error("{what} {value:?} is not a URL: {source}")]
    ConfigUrl {
        /// What the URL is for (`redirect URI`, ...).
        what: &'static str,
        /// The text that is not a URL.
        value: String,
        /// Why it is not a URL.
        #[source]
        source: url::ParseError,
    },
}

impl ClientError {
    /// `err` as [`ClientError::Unreachable`]. reqwest's error names the full URL, query
    /// included, which on a redirect to the callback carries the authorization code: it
    /// is kept without it, and `url` is the one to show.
    pub(crate) fn unreachable(url: impl Into<String>, err: reqwest::Error) -> Self {
        ClientError::Unreachable {
            url: url.into(),
            source: err.without_url(),
        }
    }

    /// `source` as [`ClientError::ServerUrl`] for the MCP server URL `url`.
    pub(crate) fn server_url(url: &url::Url, source: mcp_auth_proto::wellknown::UrlError) -> Self {
        let mut shown = url.clone();
        // Both fail only for URLs that cannot carry credentials, which then have none.
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        ClientError::ServerUrl {
            url: shown.to_string(),
            source,
        }
    }

    /// `source` as [`ClientError::File`] for the file at `path` that `flag` named.
    pub(crate) fn file(flag: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        ClientError::File {
            flag,
            path: path.display().to_string(),
            source,
        }
    }
}

/// The innermost cause of a reqwest error, which says what went wrong on the wire
/// (`Connection refused (os error 111)`); reqwest's own message only says that sending
/// failed.
fn cause(err: &reqwest::Error) -> String {
    let mut innermost: Option<&dyn std::error::Error> = None;
    let mut next = std::error::Error::source(err);
    while let Some(source) = next {
        innermost = Some(source);
        next = source.source();
    }
    match innermost {
        Some(source) => source.to_string(),
        None if err.is_timeout() => "timed out".to_owned(),
        None => "request failed".to_owned(),
    }
}

/// Why an `--allow-audience` value cannot be read ([`ClientError::AllowAudience`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AllowedAudienceError {
    /// No `=` in it.
    #[error("not RESOURCE=AUDIENCE (for example http://localhost:3001=mcp-resource-server)")]
    NotAPair,
    /// The resource is not a URL.
    #[error("{resource:?} is not a resource URL ({source})")]
    NotAUrl {
        /// The resource as given.
        resource: String,
        /// Why it is not a URL.
        #[source]
        source: url::ParseError,
    },
    /// The resource is a URL, but not an http(s) URL with a host.
    #[error("{resource:?} is not a resource URL ({source})")]
    NotAResource {
        /// The resource as given.
        resource: String,
        /// Why it cannot name a resource.
        #[source]
        source: mcp_auth_proto::wellknown::UrlError,
    },
    /// Nothing after the `=`.
    #[error("no audience after the =")]
    NoAudience,
}

/// Result alias of the crate.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[tokio::test]
    async fn unreachable_keeps_its_cause_and_not_the_query() {
        // A port that was free a moment ago: nothing listens there now.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{port}/callback");
        let err = reqwest::get(format!("{url}?code=c0de-s3cret"))
            .await
            .unwrap_err();
        let err = ClientError::unreachable(url.as_str(), err);
        let text = err.to_string();
        assert!(text.starts_with(&format!("cannot reach {url}: ")), "{text}");
        assert!(text.to_lowercase().contains("refused"), "{text}");
        let source = err.source().expect("the reqwest error is kept");
        assert!(source.downcast_ref::<reqwest::Error>().is_some());
        for shown in [text, format!("{err:?}"), source.to_string()] {
            assert!(!shown.contains("c0de-s3cret"), "{shown}");
        }
    }

    #[test]
    fn http_status_detail_reads_as_before() {
        let err = |detail: Option<&str>| ClientError::HttpStatus {
            url: "http://127.0.0.1:1/mcp".into(),
            status: 404,
            detail: detail.map(str::to_owned),
        };
        assert_eq!(
            err(Some("not found")).to_string(),
            "http://127.0.0.1:1/mcp answered HTTP 404: not found"
        );
        assert_eq!(
            err(None).to_string(),
            "http://127.0.0.1:1/mcp answered HTTP 404"
        );
    }

    #[test]
    fn unreadable_files_keep_the_io_error() {
        let path = std::env::temp_dir().join("mcp-auth-client-no-such-file.jwt");
        let source = std::fs::read(&path).unwrap_err();
        let expected = format!("--assertion-file {}: {source}", path.display());
        let err = ClientError::file("--assertion-file", &path, source);
        assert_eq!(err.to_string(), expected);
        assert!(err.source().unwrap().is::<std::io::Error>());
    }

    #[test]
    fn an_unusable_server_url_keeps_its_cause_and_not_its_credentials() {
        let url = url::Url::parse("ftp://user:s3cret@h/mcp").unwrap();
        let source = mcp_auth_proto::wellknown::canonical_resource(&url).unwrap_err();
        let err = ClientError::server_url(&url, source.clone());
        assert_eq!(
            err.to_string(),
            format!("ftp://h/mcp is not a usable MCP server URL: {source}")
        );
        let kept = err.source().expect("the URL error is kept");
        assert_eq!(
            kept.downcast_ref::<mcp_auth_proto::wellknown::UrlError>(),
            Some(&source)
        );
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(!shown.contains("s3cret"), "{shown}");
        }
    }

    #[test]
    fn malformed_json_keeps_serde_s_error() {
        let source = serde_json::from_str::<u64>("\"x\"").unwrap_err();
        let expected = format!("token response from http://as/token is not valid: {source}");
        let err = ClientError::MalformedJson {
            what: "token response",
            url: "http://as/token".into(),
            source,
        };
        assert_eq!(err.to_string(), expected);
        assert!(err.source().unwrap().is::<serde_json::Error>());
    }
}
