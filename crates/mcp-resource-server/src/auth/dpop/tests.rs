//! Each check of [`DpopVerifier::verify`] failing on its own, with proofs signed here.

use super::*;
use jsonwebtoken::EncodingKey;
use serde_json::json;
use testkit::keys::{EC_PEM, ED_PEM, RSA1_PEM as RSA_PEM};

const NOW: u64 = 1_800_000_000;
const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln";

struct ProofKey {
    alg: Algorithm,
    name: &'static str,
    key: EncodingKey,
}

impl ProofKey {
    fn ec() -> Self {
        Self {
            alg: Algorithm::ES256,
            name: "ES256",
            key: EncodingKey::from_ec_pem(EC_PEM).unwrap(),
        }
    }
    fn ed() -> Self {
        Self {
            alg: Algorithm::EdDSA,
            name: "EdDSA",
            key: EncodingKey::from_ed_pem(ED_PEM).unwrap(),
        }
    }
    fn rsa() -> Self {
        Self {
            alg: Algorithm::RS256,
            name: "RS256",
            key: EncodingKey::from_rsa_pem(RSA_PEM).unwrap(),
        }
    }

    fn jwk(&self) -> Value {
        let mut jwk =
            serde_json::to_value(Jwk::from_encoding_key(&self.key, self.alg).unwrap()).unwrap();
        jwk.as_object_mut().unwrap().remove("alg");
        jwk
    }

    fn thumbprint(&self) -> String {
        Jwk::from_encoding_key(&self.key, self.alg)
            .unwrap()
            .thumbprint(ThumbprintHash::SHA256)
            .unwrap()
    }

    fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": self.name, "jwk": self.jwk()})
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &self.key, self.alg).unwrap();
        format!("{input}.{signature}")
    }
}

fn claims() -> Value {
    json!({
        "jti": "e1j3V_bKic8-LAEB",
        "htm": "POST",
        "htu": "https://mcp.example/mcp",
        "iat": NOW,
        "ath": access_token_hash(TOKEN),
    })
}

fn edit(claims: Value, f: impl FnOnce(&mut Map<String, Value>)) -> Value {
    let mut claims = claims;
    f(claims.as_object_mut().unwrap());
    claims
}

fn verifier_with(config: DpopConfig) -> DpopVerifier {
    DpopVerifier::new(&config, &Url::parse("https://mcp.example").unwrap())
        .unwrap()
        .unwrap()
}

fn verifier() -> DpopVerifier {
    verifier_with(DpopConfig {
        policy: DpopPolicy::Allowed,
        ..DpopConfig::default()
    })
}

fn headers(proofs: &[&str]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for proof in proofs {
        headers.append(&DPOP, proof.parse().unwrap());
    }
    headers
}

fn check(verifier: &DpopVerifier, proof: &str) -> Result<VerifiedProof, DpopError> {
    verifier.verify(
        &headers(&[proof]),
        &Method::POST,
        &"/mcp".parse().unwrap(),
        TOKEN,
        NOW,
    )
}

#[test]
fn rfc_9449_ath_example() {
    // RFC 9449 §7.1: the access token and the `ath` of the proof that goes with it.
    assert_eq!(
        access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
        "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    );
}

#[test]
fn good_proofs_of_each_key_type_pass_and_name_their_key() {
    let verifier = verifier();
    for key in [ProofKey::ec(), ProofKey::ed(), ProofKey::rsa()] {
        let proof = key.sign(&key.header(), &claims());
        let verified = check(&verifier, &proof).unwrap_or_else(|e| panic!("{}: {e}", key.name));
        assert_eq!(verified.jkt, key.thumbprint(), "{}", key.name);
        // The same proof is accepted once.
        assert_eq!(verifier.commit(&verified, "iss", "alice", NOW), Ok(()));
        let again = check(&verifier, &proof).unwrap();
        assert_eq!(
            verifier.commit(&again, "iss", "alice", NOW),
            Err(DpopError::Replayed)
        );
    }
}

#[test]
fn htu_ignores_query_and_fragment_and_normalises() {
    let verifier = verifier();
    let key = ProofKey::ec();
    for htu in [
        "https://mcp.example/mcp?x=1#f",
        "HTTPS://MCP.EXAMPLE:443/mcp",
    ] {
        let proof = key.sign(
            &key.header(),
            &edit(claims(), |c| {
                c.insert("htu".into(), json!(htu));
            }),
        );
        assert!(check(&verifier, &proof).is_ok(), "{htu}");
    }
}

#[test]
fn each_check_refuses_on_its_own() {
    let verifier = verifier();
    let ec = ProofKey::ec();
    let good_header = ec.header();
    let with_header = |f: &dyn Fn(&mut Map<String, Value>)| {
        let mut header = good_header.clone();
        f(header.as_object_mut().unwrap());
        ec.sign(&header, &claims())
    };
    let with_claims =
        |f: &dyn Fn(&mut Map<String, Value>)| ec.sign(&good_header, &edit(claims(), f));
    let private_jwk = {
        let mut header = good_header.clone();
        header["jwk"]["d"] = json!("AAAA");
        ec.sign(&header, &claims())
    };
    let hmac = {
        let header =
            json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": "c2VjcmV0"}});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims().to_string())
        );
        let signature = jsonwebtoken::crypto::sign(
            input.as_bytes(),
            &EncodingKey::from_secret(b"secret"),
            Algorithm::HS256,
        )
        .unwrap();
        format!("{input}.{signature}")
    };
    let none = format!(
        "{}.{}.AA",
        URL_SAFE_NO_PAD
            .encode(json!({"typ": "dpop+jwt", "alg": "none", "jwk": ec.jwk()}).to_string()),
        URL_SAFE_NO_PAD.encode(claims().to_string())
    );
    let other_key_jwk = {
        let mut header = good_header.clone();
        header["jwk"] = ProofKey::ed().jwk();
        header["alg"] = json!("EdDSA");
        ec.sign(&header, &claims())
    };
    let tampered = {
        let proof = ec.sign(&good_header, &claims());
        let mut parts: Vec<String> = proof.split('.').map(str::to_string).collect();
        parts[1] = URL_SAFE_NO_PAD.encode(
            edit(claims(), |c| {
                c.insert("htm".into(), json!("GET"));
            })
            .to_string(),
        );
        parts.join(".")
    };
    let cases: Vec<(&str, String, DpopError)> = vec![
        (
            "typ JWT",
            with_header(&|h| {
                h.insert("typ".into(), json!("JWT"));
            }),
            DpopError::WrongType,
        ),
        (
            "no typ",
            with_header(&|h| {
                h.remove("typ");
            }),
            DpopError::WrongType,
        ),
        (
            "crit",
            with_header(&|h| {
                h.insert("crit".into(), json!(["x"]));
            }),
            DpopError::Malformed("crit is not supported"),
        ),
        (
            "no jwk",
            with_header(&|h| {
                h.remove("jwk");
            }),
            DpopError::MissingClaim("jwk"),
        ),
        ("private jwk", private_jwk, DpopError::PrivateKey),
        ("HMAC", hmac, DpopError::AlgorithmNotAllowed("HS256".into())),
        (
            "alg none",
            none,
            DpopError::AlgorithmNotAllowed("none".into()),
        ),
        (
            "alg of another key type",
            with_header(&|h| {
                h.insert("alg".into(), json!("RS256"));
            }),
            DpopError::BadKey,
        ),
        (
            "jwk of another key",
            other_key_jwk,
            DpopError::InvalidSignature,
        ),
        (
            "claims changed after signing",
            tampered,
            DpopError::InvalidSignature,
        ),
        (
            "no jti",
            with_claims(&|c| {
                c.remove("jti");
            }),
            DpopError::MissingClaim("jti"),
        ),
        (
            "other method",
            with_claims(&|c| {
                c.insert("htm".into(), json!("GET"));
            }),
            DpopError::WrongMethod,
        ),
        (
            "other path",
            with_claims(&|c| {
                c.insert("htu".into(), json!("https://mcp.example/sse"));
            }),
            DpopError::WrongUrl,
        ),
        (
            "other host",
            with_claims(&|c| {
                c.insert("htu".into(), json!("https://evil.example/mcp"));
            }),
            DpopError::WrongUrl,
        ),
        (
            "other scheme",
            with_claims(&|c| {
                c.insert("htu".into(), json!("http://mcp.example/mcp"));
            }),
            DpopError::WrongUrl,
        ),
        (
            "other port",
            with_claims(&|c| {
                c.insert("htu".into(), json!("https://mcp.example:8443/mcp"));
            }),
            DpopError::WrongUrl,
        ),
        (
            "stale iat",
            with_claims(&|c| {
                c.insert("iat".into(), json!(NOW - 301));
            }),
            DpopError::Stale,
        ),
        (
            "future iat",
            with_claims(&|c| {
                c.insert("iat".into(), json!(NOW + 301));
            }),
            DpopError::Future,
        ),
        (
            "iat a string",
            with_claims(&|c| {
                c.insert("iat".into(), json!("now"));
            }),
            DpopError::Malformed("iat"),
        ),
        (
            "no ath",
            with_claims(&|c| {
                c.remove("ath");
            }),
            DpopError::MissingClaim("ath"),
        ),
        (
            "ath of another token",
            with_claims(&|c| {
                c.insert("ath".into(), json!(access_token_hash("other")));
            }),
            DpopError::WrongAth,
        ),
        (
            "two parts",
            "a.b".into(),
            DpopError::Malformed("expected three parts"),
        ),
        (
            "not JSON",
            "bm90.anNvbg.c2ln".into(),
            DpopError::Malformed("not a JSON object"),
        ),
    ];
    for (name, proof, expected) in cases {
        assert_eq!(check(&verifier, &proof).unwrap_err(), expected, "{name}");
    }
    // The edges of the window pass.
    for iat in [NOW - 300, NOW + 300] {
        let proof = with_claims(&|c| {
            c.insert("iat".into(), json!(iat));
        });
        assert!(check(&verifier, &proof).is_ok(), "iat {iat}");
    }
}

#[test]
fn header_count_and_size() {
    let verifier = verifier();
    let ec = ProofKey::ec();
    let proof = ec.sign(&ec.header(), &claims());
    let uri: Uri = "/mcp".parse().unwrap();
    assert_eq!(
        verifier
            .verify(&headers(&[]), &Method::POST, &uri, TOKEN, NOW)
            .unwrap_err(),
        DpopError::MissingProof
    );
    assert_eq!(
        verifier
            .verify(&headers(&[&proof, &proof]), &Method::POST, &uri, TOKEN, NOW)
            .unwrap_err(),
        DpopError::MultipleProofs
    );
    let huge = format!("{}.{}.{}", "a".repeat(5000), "b".repeat(5000), "c");
    assert_eq!(
        check(&verifier, &huge).unwrap_err(),
        DpopError::Malformed("too large")
    );
}

#[test]
fn algorithms_outside_the_configured_list_are_refused() {
    let verifier = verifier_with(DpopConfig {
        policy: DpopPolicy::Required,
        algorithms: vec!["ES256".into()],
        ..DpopConfig::default()
    });
    let ed = ProofKey::ed();
    assert_eq!(
        check(&verifier, &ed.sign(&ed.header(), &claims())).unwrap_err(),
        DpopError::AlgorithmNotAllowed("EdDSA".into())
    );
    let ec = ProofKey::ec();
    assert!(check(&verifier, &ec.sign(&ec.header(), &claims())).is_ok());
    assert!(
        DpopVerifier::new(
            &DpopConfig {
                policy: DpopPolicy::Allowed,
                algorithms: vec!["HS256".into()],
                ..DpopConfig::default()
            },
            &Url::parse("https://mcp.example").unwrap()
        )
        .is_err()
    );
}

#[test]
fn server_nonces() {
    let verifier = verifier_with(DpopConfig {
        policy: DpopPolicy::Allowed,
        nonce: true,
        ..DpopConfig::default()
    });
    let ec = ProofKey::ec();
    let DpopError::UseNonce(nonce) =
        check(&verifier, &ec.sign(&ec.header(), &claims())).unwrap_err()
    else {
        panic!("a nonce is asked for");
    };
    let with_nonce = |nonce: &str| {
        ec.sign(
            &ec.header(),
            &edit(claims(), |c| {
                c.insert("nonce".into(), json!(nonce));
            }),
        )
    };
    assert!(check(&verifier, &with_nonce(&nonce)).is_ok());
    // A nonce this server did not issue, or a tampered one, is answered with a fresh one.
    let mut forged = URL_SAFE_NO_PAD.decode(&nonce).unwrap();
    forged[23] ^= 1;
    let forged = URL_SAFE_NO_PAD.encode(forged);
    assert!(matches!(
        check(&verifier, &with_nonce(&forged)),
        Err(DpopError::UseNonce(_))
    ));
    assert!(matches!(
        check(&verifier, &with_nonce("made-up")),
        Err(DpopError::UseNonce(_))
    ));
    // An old nonce stops working two slots later.
    let later = NOW + 2 * 300;
    let result = verifier.verify(
        &headers(&[&ec.sign(
            &ec.header(),
            &edit(claims(), |c| {
                c.insert("nonce".into(), json!(nonce));
                c.insert("iat".into(), json!(later));
            }),
        )]),
        &Method::POST,
        &"/mcp".parse().unwrap(),
        TOKEN,
        later,
    );
    assert!(matches!(result, Err(DpopError::UseNonce(_))), "{result:?}");
}

#[test]
fn policy_parses() {
    assert_eq!("off".parse::<DpopPolicy>(), Ok(DpopPolicy::Off));
    assert_eq!("Allowed".parse::<DpopPolicy>(), Ok(DpopPolicy::Allowed));
    assert_eq!("required".parse::<DpopPolicy>(), Ok(DpopPolicy::Required));
    assert!("yes".parse::<DpopPolicy>().is_err());
    assert!(
        DpopVerifier::new(&DpopConfig::default(), &Url::parse("https://h").unwrap())
            .unwrap()
            .is_none()
    );
}
