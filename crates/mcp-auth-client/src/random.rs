//! Values nobody can guess: the `state` of an authorization request (RFC 6749 §10.12),
//! the names of temporary files, the `jti` of the audit's probe tokens.

/// 16 random bytes from the system's generator, base64url without padding (22
/// characters), as oauth2's `CsrfToken::new_random` makes them.
#[must_use]
pub fn unguessable() -> String {
    oauth2::CsrfToken::new_random().into_secret()
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    #[test]
    fn sixteen_fresh_bytes() {
        let value = unguessable();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&value)
            .unwrap();
        assert_eq!(bytes.len(), 16);
        assert_ne!(unguessable(), value);
    }
}
