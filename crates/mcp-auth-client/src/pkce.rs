//! PKCE (RFC 7636) with S256, from the oauth2 crate: a 32-byte random verifier (43
//! base64url characters) whose SHA-256 is the challenge. The verifier is not `Clone` and
//! prints as `[redacted]`. The `state` sent beside it is [`crate::random::unguessable`].

pub use oauth2::PkceCodeVerifier;

/// A fresh PKCE pair: the `code_challenge` to send with the authorization request and
/// the verifier to send with the token request.
#[must_use]
pub fn new_pair() -> (String, PkceCodeVerifier) {
    let (challenge, verifier) = oauth2::PkceCodeChallenge::new_random_sha256();
    (challenge.as_str().to_owned(), verifier)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn challenge_is_the_s256_of_the_verifier() {
        let (challenge, verifier) = new_pair();
        assert_eq!(verifier.secret().len(), 43);
        let recomputed = oauth2::PkceCodeChallenge::from_code_verifier_sha256(&verifier);
        assert_eq!(recomputed.as_str(), challenge);
        // RFC 7636 Appendix B.
        let rfc = PkceCodeVerifier::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".to_owned());
        assert_eq!(
            oauth2::PkceCodeChallenge::from_code_verifier_sha256(&rfc).as_str(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_eq!(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&challenge)
                .unwrap()
                .len(),
            32
        );
    }
}
