//! Newtypes for bearer credentials and client secrets.
//!
//! # Security
//! None of these types implements `Display`, and their `Debug` output is
//! `AccessToken([redacted])`, so a token cannot reach a log line or an error message
//! by accident: reading the value takes an explicit call to `secret()`.
//! [`fingerprint`] gives a short tag that lets log lines about the same token be
//! correlated without revealing it.

use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};

macro_rules! secret_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a secret value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The secret itself. Every call site is a place where it may leave the program.
            #[must_use]
            pub fn secret(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }
    };
}

secret_type!(
    /// An OAuth 2.0 access token ([RFC 6749 §1.4](https://www.rfc-editor.org/rfc/rfc6749#section-1.4)).
    AccessToken
);
secret_type!(
    /// An OAuth 2.0 refresh token ([RFC 6749 §1.5](https://www.rfc-editor.org/rfc/rfc6749#section-1.5)).
    RefreshToken
);
secret_type!(
    /// An OpenID Connect ID token.
    IdToken
);
secret_type!(
    /// A confidential client's secret ([RFC 6749 §2.3.1](https://www.rfc-editor.org/rfc/rfc6749#section-2.3.1)).
    ClientSecret
);

/// A short tag for a secret, for correlating log lines: 8 hex digits of a keyed 64-bit
/// hash. It is not a cryptographic commitment, but 32 bits of it say nothing usable
/// about a token with hundreds of bits of entropy.
#[must_use]
pub fn fingerprint(secret: &str) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    "mcp-auth-fingerprint".hash(&mut hasher);
    secret.hash(&mut hasher);
    format!("{:08x}", hasher.finish() >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let token = AccessToken::new("eyJhbGciOiJSUzI1NiJ9.payload.sig");
        assert_eq!(format!("{token:?}"), "AccessToken([redacted])");
        let secret = ClientSecret::new("hunter2");
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert_eq!(token.secret(), "eyJhbGciOiJSUzI1NiJ9.payload.sig");
    }

    #[test]
    fn serde_is_transparent() {
        let token: RefreshToken = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(token.secret(), "abc");
        assert_eq!(serde_json::to_string(&token).unwrap(), "\"abc\"");
    }

    #[test]
    fn fingerprint_is_stable_short_and_distinct() {
        assert_eq!(fingerprint("a"), fingerprint("a"));
        assert_ne!(fingerprint("a"), fingerprint("b"));
        assert_eq!(fingerprint("token").len(), 8);
        assert!(!fingerprint("token").contains("token"));
    }
}
