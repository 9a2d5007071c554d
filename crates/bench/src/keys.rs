//! The signature algorithms the harness measures: RSA 2048 (RS256), P-256 (ES256) and
//! Ed25519 (EdDSA). The keys themselves are the test kit's ([`testkit::TestKey`]),
//! generated at start.

use jsonwebtoken::Algorithm;

/// The signature algorithms the harness signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 over a 2048-bit key.
    Rs256,
    /// ECDSA over P-256 with SHA-256.
    Es256,
    /// Ed25519.
    EdDsa,
}

impl KeyAlg {
    /// Every algorithm, in the order reports list them.
    pub const ALL: [Self; 3] = [Self::Rs256, Self::Es256, Self::EdDsa];

    /// The JOSE name (`alg`).
    pub fn name(self) -> &'static str {
        testkit::keys::alg_name(self.algorithm())
    }

    /// The algorithm as the JWT library names it.
    pub fn algorithm(self) -> Algorithm {
        match self {
            Self::Rs256 => Algorithm::RS256,
            Self::Es256 => Algorithm::ES256,
            Self::EdDsa => Algorithm::EdDSA,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_algorithm_signs_under_the_name_reports_give_it() {
        for alg in KeyAlg::ALL {
            let key = testkit::TestKey::generate(alg.algorithm(), "k").unwrap();
            let token = key.sign(&serde_json::json!({"sub": "s"}));
            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(header.alg, alg.algorithm());
            let named: Algorithm = alg.name().parse().unwrap();
            assert_eq!(named, alg.algorithm());
        }
    }
}
