//! PKCE (RFC 7636): challenges stored at the authorization endpoint, verifiers checked at
//! the token endpoint. Dex accepts `S256` and `plain` and defaults to `plain` when a
//! challenge comes without a method.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A `code_challenge_method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    S256,
    Plain,
}

impl Method {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "S256" => Some(Self::S256),
            "plain" => Some(Self::Plain),
            _ => None,
        }
    }
}

/// A stored challenge.
#[derive(Clone)]
pub(crate) struct Challenge {
    pub(crate) value: String,
    pub(crate) method: Method,
}

/// RFC 7636 §4.1: 43 to 128 characters from the unreserved set.
pub(crate) fn well_formed(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

impl Challenge {
    /// Whether `verifier` answers this challenge.
    pub(crate) fn verify(&self, verifier: &str) -> bool {
        if !well_formed(verifier) {
            return false;
        }
        let expected = match self.method {
            Method::S256 => {
                URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
            }
            Method::Plain => verifier.to_owned(),
        };
        verify_slices_are_equal(expected.as_bytes(), self.value.as_bytes()).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b() {
        let challenge = Challenge {
            value: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
            method: Method::S256,
        };
        assert!(challenge.verify("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"));
        assert!(!challenge.verify("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXl"));
    }

    #[test]
    fn plain_and_syntax() {
        let v = "a".repeat(43);
        let challenge = Challenge {
            value: v.clone(),
            method: Method::Plain,
        };
        assert!(challenge.verify(&v));
        assert!(!challenge.verify("short"));
        assert!(!well_formed(&"a".repeat(129)));
        assert!(!well_formed(&format!("{}!", "a".repeat(43))));
    }
}
