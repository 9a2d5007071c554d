//! `WWW-Authenticate` challenges: a parser for the general syntax of
//! [RFC 9110 §11.6.1](https://www.rfc-editor.org/rfc/rfc9110#section-11.6.1) and a typed
//! view of the `Bearer` scheme ([RFC 6750 §3](https://www.rfc-editor.org/rfc/rfc6750#section-3),
//! with `resource_metadata` from [RFC 9728 §5.1](https://www.rfc-editor.org/rfc/rfc9728#section-5.1)).
//!
//! ```
//! use mcp_auth_proto::challenge::{BearerChallenge, BearerError};
//!
//! let header = r#"Basic realm="x", Bearer error="insufficient_scope", scope="mcp:tools mcp:admin""#;
//! let bearer = BearerChallenge::find([header]).unwrap();
//! assert_eq!(bearer.error, Some(BearerError::InsufficientScope));
//! assert_eq!(bearer.scopes(), ["mcp:tools", "mcp:admin"]);
//! ```
//!
//! # Security
//! [`BearerChallenge`]'s `Display` writes a value that is safe to put in a header
//! whatever the fields hold: quotes and backslashes are escaped, and control and
//! non-ASCII characters are dropped, so no field can end the header or forge another.

use std::fmt;

/// One challenge of a `WWW-Authenticate` header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The auth-scheme as written (compare it case-insensitively).
    pub scheme: String,
    /// The token68 form, as in `Negotiate abc==`, when the challenge uses it.
    pub token68: Option<String>,
    /// Auth-params in order; names lower-cased, values unquoted.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// The value of the first parameter named `name` (case-insensitive).
    #[must_use]
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The parameters of this challenge if its scheme is `scheme` (case-insensitive),
    /// as a lookup by name.
    fn params_of(&self, scheme: &str) -> Option<impl Fn(&str) -> Option<String> + '_> {
        self.scheme
            .eq_ignore_ascii_case(scheme)
            .then_some(|name: &str| self.param(name).map(str::to_owned))
    }
}

/// The first challenge among `header_values` that `view` accepts. Values that do not
/// parse are skipped.
fn find_first<'a, T>(
    header_values: impl IntoIterator<Item = &'a str>,
    view: impl Fn(&Challenge) -> Option<T>,
) -> Option<T> {
    header_values
        .into_iter()
        .filter_map(|v| parse_www_authenticate(v).ok())
        .flatten()
        .find_map(|c| view(&c))
}

/// Writes `scheme` and the parameters that have a value, in the order given, each as
/// a quoted-string.
fn write_challenge(
    f: &mut fmt::Formatter<'_>,
    scheme: &str,
    params: &[(&str, Option<&str>)],
) -> fmt::Result {
    f.write_str(scheme)?;
    let mut separator = " ";
    for (name, value) in params {
        let Some(value) = value else { continue };
        f.write_str(separator)?;
        separator = ", ";
        f.write_str(name)?;
        f.write_str("=")?;
        write_quoted(f, value)?;
    }
    Ok(())
}

/// A `WWW-Authenticate` value that does not follow RFC 9110's grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    #[error("expected an auth-scheme at byte {0}")]
    ExpectedScheme(usize),
    #[error("unterminated quoted-string starting at byte {0}")]
    UnterminatedQuote(usize),
    #[error("expected a token or quoted-string after '=' at byte {0}")]
    ExpectedValue(usize),
    #[error("unexpected character at byte {0}")]
    Unexpected(usize),
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn skip_ws_and_commas(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.pos += 1;
        }
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &str {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        // Only ASCII bytes are ever accepted by the predicates used here.
        std::str::from_utf8(&self.s[start..self.pos]).unwrap_or_default()
    }

    fn quoted_string(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        self.pos += 1; // opening quote
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(ParseError::UnterminatedQuote(start)),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(String::from_utf8_lossy(&out).into_owned());
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        None => return Err(ParseError::UnterminatedQuote(start)),
                        Some(b) => {
                            out.push(b);
                            self.pos += 1;
                        }
                    }
                }
                Some(b) => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
    }

    /// Looks ahead for `token BWS "=" BWS (token / quoted-string)` without consuming.
    fn at_auth_param(&self) -> bool {
        let mut probe = Cursor {
            s: self.s,
            pos: self.pos,
        };
        if probe.take_while(is_tchar).is_empty() {
            return false;
        }
        probe.skip_ws();
        if probe.peek() != Some(b'=') {
            return false;
        }
        probe.pos += 1;
        probe.skip_ws();
        matches!(probe.peek(), Some(b) if b == b'"' || is_tchar(b) && b != b'=')
    }

    fn auth_param(&mut self) -> Result<(String, String), ParseError> {
        let name = self.take_while(is_tchar).to_ascii_lowercase();
        self.skip_ws();
        self.pos += 1; // '=', checked by at_auth_param
        self.skip_ws();
        let value = if self.peek() == Some(b'"') {
            self.quoted_string()?
        } else {
            let v = self.take_while(is_tchar);
            if v.is_empty() {
                return Err(ParseError::ExpectedValue(self.pos));
            }
            v.to_owned()
        };
        Ok((name, value))
    }
}

/// Parses a `WWW-Authenticate` field value into its challenges (RFC 9110 §11.6.1).
///
/// Several challenges may share one value, separated by commas; a challenge carries
/// either a token68 or a list of auth-params.
///
/// # Errors
/// [`ParseError`] when the value does not follow the grammar.
pub fn parse_www_authenticate(value: &str) -> Result<Vec<Challenge>, ParseError> {
    let mut c = Cursor {
        s: value.as_bytes(),
        pos: 0,
    };
    let mut challenges = Vec::new();
    loop {
        c.skip_ws_and_commas();
        if c.peek().is_none() {
            return Ok(challenges);
        }
        let scheme = c.take_while(is_tchar).to_owned();
        if scheme.is_empty() {
            return Err(ParseError::ExpectedScheme(c.pos));
        }
        let mut challenge = Challenge {
            scheme,
            token68: None,
            params: Vec::new(),
        };
        let had_space = matches!(c.peek(), Some(b' ' | b'\t'));
        c.skip_ws();
        if had_space && c.peek().is_some() && c.peek() != Some(b',') {
            if c.at_auth_param() {
                loop {
                    challenge.params.push(c.auth_param()?);
                    c.skip_ws();
                    // After a comma, either another param of this challenge or a new challenge.
                    let save = c.pos;
                    c.skip_ws_and_commas();
                    if save == c.pos || !c.at_auth_param() {
                        break;
                    }
                }
            } else {
                let mut t = c.take_while(is_token68_char).to_owned();
                if t.is_empty() {
                    return Err(ParseError::Unexpected(c.pos));
                }
                while c.peek() == Some(b'=') {
                    t.push('=');
                    c.pos += 1;
                }
                challenge.token68 = Some(t);
                c.skip_ws();
            }
        }
        match c.peek() {
            None | Some(b',') => challenges.push(challenge),
            Some(_) => {
                // A new challenge may follow only after a comma, except right after
                // a param list where the loop above already consumed the comma.
                if challenge.params.is_empty() {
                    return Err(ParseError::Unexpected(c.pos));
                }
                challenges.push(challenge);
            }
        }
    }
}

/// The `error` code of a Bearer challenge (RFC 6750 §3.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BearerError {
    /// The request is malformed: 400.
    InvalidRequest,
    /// The token is expired, revoked, malformed or invalid for other reasons: 401.
    InvalidToken,
    /// The token lacks a scope the request needs: 403.
    InsufficientScope,
    /// A code this type does not name.
    Other(String),
}

impl BearerError {
    /// The code as it travels on the wire.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::Other(s) => s,
        }
    }

    /// The HTTP status RFC 6750 §3.1 pairs with the code (401 for unknown codes).
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidRequest => 400,
            Self::InsufficientScope => 403,
            Self::InvalidToken | Self::Other(_) => 401,
        }
    }

    fn from_wire(s: &str) -> Self {
        match s {
            "invalid_request" => Self::InvalidRequest,
            "invalid_token" => Self::InvalidToken,
            "insufficient_scope" => Self::InsufficientScope,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for BearerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `Bearer` challenge (RFC 6750 §3 and RFC 9728 §5.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BearerChallenge {
    pub realm: Option<String>,
    /// Space-separated scopes the resource needs (all of them, for `insufficient_scope`).
    pub scope: Option<String>,
    pub error: Option<BearerError>,
    pub error_description: Option<String>,
    pub error_uri: Option<String>,
    /// URL of the resource's Protected Resource Metadata (RFC 9728 §5.1).
    pub resource_metadata: Option<String>,
}

impl BearerChallenge {
    /// The Bearer view of a parsed challenge, if its scheme is `Bearer`.
    #[must_use]
    pub fn from_challenge(challenge: &Challenge) -> Option<Self> {
        let get = challenge.params_of("bearer")?;
        Some(Self {
            realm: get("realm"),
            scope: get("scope"),
            error: get("error").as_deref().map(BearerError::from_wire),
            error_description: get("error_description"),
            error_uri: get("error_uri"),
            resource_metadata: get("resource_metadata"),
        })
    }

    /// The first Bearer challenge among the `WWW-Authenticate` values of a response.
    /// Values that do not parse are skipped.
    pub fn find<'a>(header_values: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        find_first(header_values, Self::from_challenge)
    }

    /// The scopes of the `scope` parameter.
    #[must_use]
    pub fn scopes(&self) -> Vec<&str> {
        self.scope
            .as_deref()
            .map(|s| s.split_ascii_whitespace().collect())
            .unwrap_or_default()
    }
}

/// Writes `value` as a quoted-string holding only visible ASCII and spaces.
fn write_quoted(f: &mut fmt::Formatter<'_>, value: &str) -> fmt::Result {
    f.write_str("\"")?;
    for ch in value.chars() {
        match ch {
            '"' | '\\' => write!(f, "\\{ch}")?,
            ' '..='~' => write!(f, "{ch}")?,
            _ => {}
        }
    }
    f.write_str("\"")
}

impl fmt::Display for BearerChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_challenge(
            f,
            "Bearer",
            &[
                ("realm", self.realm.as_deref()),
                ("error", self.error.as_ref().map(BearerError::as_str)),
                ("error_description", self.error_description.as_deref()),
                ("error_uri", self.error_uri.as_deref()),
                ("scope", self.scope.as_deref()),
                ("resource_metadata", self.resource_metadata.as_deref()),
            ],
        )
    }
}

/// A `DPoP` challenge ([RFC 9449 §7.1](https://www.rfc-editor.org/rfc/rfc9449#section-7.1)),
/// with the `resource_metadata` parameter of RFC 9728 §5.1.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DpopChallenge {
    /// Space-separated JWS algorithms the resource accepts for proofs.
    pub algs: Option<String>,
    /// Space-separated scopes the resource needs.
    pub scope: Option<String>,
    /// `invalid_token`, `invalid_dpop_proof`, `use_dpop_nonce`, `insufficient_scope`, ...
    pub error: Option<String>,
    pub error_description: Option<String>,
    /// URL of the resource's Protected Resource Metadata (RFC 9728 §5.1).
    pub resource_metadata: Option<String>,
}

impl DpopChallenge {
    /// The DPoP view of a parsed challenge, if its scheme is `DPoP`.
    #[must_use]
    pub fn from_challenge(challenge: &Challenge) -> Option<Self> {
        let get = challenge.params_of("dpop")?;
        Some(Self {
            algs: get("algs"),
            scope: get("scope"),
            error: get("error"),
            error_description: get("error_description"),
            resource_metadata: get("resource_metadata"),
        })
    }

    /// The first DPoP challenge among the `WWW-Authenticate` values of a response.
    pub fn find<'a>(header_values: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        find_first(header_values, Self::from_challenge)
    }
}

impl fmt::Display for DpopChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_challenge(
            f,
            "DPoP",
            &[
                ("error", self.error.as_deref()),
                ("error_description", self.error_description.as_deref()),
                ("scope", self.scope.as_deref()),
                ("resource_metadata", self.resource_metadata.as_deref()),
                ("algs", self.algs.as_deref()),
            ],
        )
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn dpop_challenge_round_trips() {
        let challenge = DpopChallenge {
            algs: Some("ES256 EdDSA".into()),
            error: Some("use_dpop_nonce".into()),
            error_description: Some("Resource server requires nonce in DPoP proof".into()),
            resource_metadata: Some("https://r/.well-known/oauth-protected-resource/mcp".into()),
            ..DpopChallenge::default()
        };
        let text = challenge.to_string();
        assert!(text.starts_with("DPoP error=\"use_dpop_nonce\""), "{text}");
        let header = format!("Bearer scope=\"a\", {text}");
        assert_eq!(DpopChallenge::find([header.as_str()]), Some(challenge));
        assert!(BearerChallenge::find([header.as_str()]).is_some());
    }

    use super::*;

    fn parse(s: &str) -> Vec<Challenge> {
        parse_www_authenticate(s).unwrap()
    }

    #[test]
    fn bare_scheme() {
        let c = parse("Bearer");
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "Bearer");
        assert!(c[0].params.is_empty());
    }

    #[test]
    fn bearer_with_params() {
        let c = parse(
            r#"Bearer realm="example", error="invalid_token", error_description="The access token expired""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].param("realm"), Some("example"));
        assert_eq!(c[0].param("ERROR"), Some("invalid_token"));
        assert_eq!(
            c[0].param("error_description"),
            Some("The access token expired")
        );
    }

    #[test]
    fn several_challenges_in_one_value() {
        let c = parse(
            r#"Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple""#,
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].scheme, "Newauth");
        assert_eq!(c[0].param("type"), Some("1"));
        assert_eq!(c[0].param("title"), Some(r#"Login to "apps""#));
        assert_eq!(c[1].scheme, "Basic");
        assert_eq!(c[1].param("realm"), Some("simple"));
    }

    #[test]
    fn token68_and_empty_elements() {
        let c = parse(", Negotiate abc+/def==,  , Bearer scope=\"a\"");
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].token68.as_deref(), Some("abc+/def=="));
        assert_eq!(c[1].param("scope"), Some("a"));
    }

    #[test]
    fn scheme_then_comma_then_scheme() {
        let c = parse("Negotiate, Bearer resource_metadata=\"https://r/x\"");
        assert_eq!(c.len(), 2);
        assert!(c[0].params.is_empty() && c[0].token68.is_none());
        assert_eq!(c[1].param("resource_metadata"), Some("https://r/x"));
    }

    #[test]
    fn whitespace_around_equals() {
        let c = parse("Bearer error = \"invalid_token\" ,scope= a");
        assert_eq!(c[0].param("error"), Some("invalid_token"));
        assert_eq!(c[0].param("scope"), Some("a"));
    }

    #[test]
    fn errors() {
        assert!(matches!(
            parse_www_authenticate("Bearer error=\"abc"),
            Err(ParseError::UnterminatedQuote(_))
        ));
        assert!(parse_www_authenticate("=abc").is_err());
        assert!(parse_www_authenticate("Bearer \"x\"").is_err());
        assert_eq!(parse_www_authenticate("").unwrap(), vec![]);
    }

    #[test]
    fn find_picks_the_bearer_challenge() {
        let b = BearerChallenge::find([
            "not valid \"",
            r#"Basic realm="x", bearer error="insufficient_scope", scope="a b", resource_metadata="https://r/.well-known/oauth-protected-resource/mcp""#,
        ])
        .unwrap();
        assert_eq!(b.error, Some(BearerError::InsufficientScope));
        assert_eq!(b.error.as_ref().map(BearerError::status), Some(403));
        assert_eq!(b.scopes(), ["a", "b"]);
        assert_eq!(
            b.resource_metadata.as_deref(),
            Some("https://r/.well-known/oauth-protected-resource/mcp")
        );
    }

    #[test]
    fn display_formats_and_escapes() {
        let b = BearerChallenge {
            error: Some(BearerError::InvalidToken),
            error_description: Some("bad \"token\" \\ here\r\nSet-Cookie: x=y\u{7f}é".into()),
            scope: Some("mcp:tools".into()),
            resource_metadata: Some(
                "http://localhost:3001/.well-known/oauth-protected-resource/mcp".into(),
            ),
            ..BearerChallenge::default()
        };
        let s = b.to_string();
        assert_eq!(
            s,
            r#"Bearer error="invalid_token", error_description="bad \"token\" \\ hereSet-Cookie: x=y", scope="mcp:tools", resource_metadata="http://localhost:3001/.well-known/oauth-protected-resource/mcp""#
        );
        assert!(!s.contains('\r') && !s.contains('\n'));
        assert_eq!(BearerChallenge::default().to_string(), "Bearer");
    }

    #[test]
    fn display_round_trips() {
        let b = BearerChallenge {
            realm: Some("r \\ \"q\"".into()),
            scope: Some("a b".into()),
            error: Some(BearerError::Other("custom".into())),
            error_description: Some("x, y=z".into()),
            error_uri: Some("https://e/x".into()),
            resource_metadata: Some("https://r".into()),
        };
        assert_eq!(BearerChallenge::find([b.to_string().as_str()]), Some(b));
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    fn field() -> impl Strategy<Value = Option<String>> {
        proptest::option::of("[ -~]{0,40}")
    }

    proptest! {
        #[test]
        fn parser_never_panics(s in "\\PC{0,200}") {
            let _ = parse_www_authenticate(&s);
        }

        #[test]
        fn parser_never_panics_on_header_like_input(s in "[A-Za-z =,\"\\\\_:/.+-]{0,120}") {
            let _ = parse_www_authenticate(&s);
        }

        #[test]
        fn formatter_output_parses_back(
            realm in field(), scope in field(), error in proptest::option::of("[a-z_]{1,20}"),
            error_description in field(), error_uri in field(), resource_metadata in field(),
        ) {
            let b = BearerChallenge {
                realm, scope, error_description, error_uri, resource_metadata,
                error: error.as_deref().map(BearerError::from_wire),
            };
            let header = b.to_string();
            prop_assert_eq!(BearerChallenge::find([header.as_str()]), Some(b));
        }
    }
}
