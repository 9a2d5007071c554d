//! DPoP at the token endpoint (RFC 9449 §5, §8) and the client credentials grant.

use aws_lc_rs::{rand::SystemRandom, signature};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dev_idp::{Features, IdpConfig};
use jsonwebtoken::{
    Algorithm, EncodingKey,
    jwk::{Jwk, ThumbprintHash},
};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{REDIRECT, TestIdp, auto_login, claims, start};

struct ProofKey {
    key: EncodingKey,
    jwk: Value,
    jkt: String,
}

impl ProofKey {
    fn generate() -> Self {
        let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &SystemRandom::new(),
        )
        .unwrap();
        let key = EncodingKey::from_ec_der(pkcs8.as_ref());
        let jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap();
        let jkt = jwk.thumbprint(ThumbprintHash::SHA256).unwrap();
        let mut jwk = serde_json::to_value(jwk).unwrap();
        jwk.as_object_mut().unwrap().remove("alg");
        Self { key, jwk, jkt }
    }

    fn proof_with(&self, header: Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature =
            jsonwebtoken::crypto::sign(input.as_bytes(), &self.key, Algorithm::ES256).unwrap();
        format!("{input}.{signature}")
    }

    fn proof(&self, htu: &str, nonce: Option<&str>) -> String {
        let mut claims = json!({
            "jti": format!("{}", rand_u64()),
            "htm": "POST",
            "htu": htu,
            "iat": now(),
        });
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        self.proof_with(
            json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk}),
            &claims,
        )
    }
}

fn rand_u64() -> u64 {
    let mut bytes = [0u8; 8];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    u64::from_le_bytes(bytes)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn mcp_ready(config: IdpConfig) -> IdpConfig {
    auto_login(config).with_features(Features::mcp_ready())
}

/// `POST /token` with a form, optional Basic credentials and DPoP proof; returns the
/// status, the body and the `DPoP-Nonce` header.
async fn token(
    t: &TestIdp,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
    proof: Option<String>,
) -> (StatusCode, Value, Option<String>) {
    let mut request = t.http.post(format!("{}/token", t.issuer)).form(form);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    if let Some(proof) = proof {
        request = request.header("dpop", proof);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let nonce = response
        .headers()
        .get("dpop-nonce")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, response.json().await.unwrap(), nonce)
}

async fn code_form(t: &TestIdp) -> (String, String) {
    t.code("openid offline_access mcp:tools", &[]).await
}

#[tokio::test]
async fn metadata_advertises_dpop_with_mcp_ready() {
    let t = start(mcp_ready).await;
    let doc: Value = t
        .http
        .get(format!("{}/.well-known/openid-configuration", t.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["dpop_signing_alg_values_supported"],
        json!(["ES256", "ES384", "EdDSA", "PS256", "RS256"])
    );
    let plain = start(auto_login).await;
    let doc: Value = plain
        .http
        .get(format!("{}/.well-known/openid-configuration", plain.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc.get("dpop_signing_alg_values_supported").is_none());
}

#[tokio::test]
async fn bound_tokens_and_bound_refresh_tokens() {
    let t = start(mcp_ready).await;
    let htu = format!("{}/token", t.issuer);
    let key = ProofKey::generate();
    let (code, verifier) = code_form(&t).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("client_id", "mcp-client"),
        ("code_verifier", verifier.as_str()),
    ];
    let (status, body, _) = token(&t, &form, None, Some(key.proof(&htu, None))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    let access = body["access_token"].as_str().unwrap();
    t.verify(access).await;
    assert_eq!(claims(access)["cnf"]["jkt"], key.jkt.as_str());
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();

    // The refresh token is bound: no proof, or another key's proof, is refused.
    let refresh_form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
        ("client_id", "mcp-client"),
    ];
    let (status, body, _) = token(&t, &refresh_form, None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn refresh_needs_the_same_key() {
    let t = start(mcp_ready).await;
    let htu = format!("{}/token", t.issuer);
    let key = ProofKey::generate();
    let (code, verifier) = code_form(&t).await;
    let (_, body, _) = token(
        &t,
        &[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("client_id", "mcp-client"),
            ("code_verifier", verifier.as_str()),
        ],
        None,
        Some(key.proof(&htu, None)),
    )
    .await;
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
        ("client_id", "mcp-client"),
    ];
    let other = ProofKey::generate();
    let (status, body, _) = token(&t, &form, None, Some(other.proof(&htu, None))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn refresh_with_the_key_succeeds_and_proofs_are_checked() {
    let t = start(mcp_ready).await;
    let htu = format!("{}/token", t.issuer);
    let key = ProofKey::generate();
    let (code, verifier) = code_form(&t).await;
    let (_, body, _) = token(
        &t,
        &[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("client_id", "mcp-client"),
            ("code_verifier", verifier.as_str()),
        ],
        None,
        Some(key.proof(&htu, None)),
    )
    .await;
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
        ("client_id", "mcp-client"),
    ];
    // Bad proofs are refused before the refresh token is spent.
    let replayed = key.proof(&htu, None);
    let wrong_url = key.proof("http://other.example/token", None);
    let private = key.proof_with(
        json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": {
            "kty": "EC", "crv": "P-256", "x": key.jwk["x"], "y": key.jwk["y"], "d": "AAAA"}}),
        &json!({"jti": "p", "htm": "POST", "htu": htu, "iat": now()}),
    );
    let hmac = {
        let header =
            json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": "c2VjcmV0"}});
        let claims = json!({"jti": "h", "htm": "POST", "htu": htu, "iat": now()});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = jsonwebtoken::crypto::sign(
            input.as_bytes(),
            &EncodingKey::from_secret(b"secret"),
            Algorithm::HS256,
        )
        .unwrap();
        format!("{input}.{sig}")
    };
    let stale = key.proof_with(
        json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.jwk}),
        &json!({"jti": "s", "htm": "POST", "htu": htu, "iat": now() - 600}),
    );
    for (name, proof) in [
        ("wrong htu", wrong_url),
        ("private jwk", private),
        ("HMAC", hmac),
        ("stale iat", stale),
    ] {
        let (status, body, _) = token(&t, &form, None, Some(proof)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
        assert_eq!(body["error"], "invalid_dpop_proof", "{name}");
    }
    let (status, body, _) = token(&t, &form, None, Some(replayed.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["cnf"]["jkt"],
        key.jkt.as_str()
    );
    let next = body["refresh_token"].as_str().unwrap().to_owned();
    let (status, body, _) = token(
        &t,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", next.as_str()),
            ("client_id", "mcp-client"),
        ],
        None,
        Some(replayed),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_dpop_proof", "replayed proof");
}

#[tokio::test]
async fn server_nonces_at_the_token_endpoint() {
    let t = start(|config| {
        let mut features = Features::mcp_ready();
        features.dpop_nonce = true;
        auto_login(config).with_features(features)
    })
    .await;
    let htu = format!("{}/token", t.issuer);
    let key = ProofKey::generate();
    let (code, verifier) = code_form(&t).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("client_id", "mcp-client"),
        ("code_verifier", verifier.as_str()),
    ];
    let (status, body, nonce) = token(&t, &form, None, Some(key.proof(&htu, None))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "use_dpop_nonce");
    let nonce = nonce.expect("DPoP-Nonce");
    let (status, body, _) = token(&t, &form, None, Some(key.proof(&htu, Some("forged")))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("use_dpop_nonce"))
    );
    // The code was not spent by the refused attempts.
    let (status, body, _) = token(&t, &form, None, Some(key.proof(&htu, Some(&nonce)))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP");
}

#[tokio::test]
async fn client_credentials_is_a_switch() {
    let off = start(mcp_ready).await;
    let form = [("grant_type", "client_credentials"), ("scope", "mcp:tools")];
    let (status, body, _) = token(&off, &form, Some(("backend", "backend-secret")), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unsupported_grant_type");

    let t = start(|config| {
        let mut features = Features::mcp_ready();
        features.client_credentials = true;
        config.with_features(features)
    })
    .await;
    let doc: Value = t
        .http
        .get(format!("{}/.well-known/openid-configuration", t.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("client_credentials"))
    );
    let (status, body, _) = token(&t, &form, Some(("backend", "backend-secret")), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "bearer");
    assert!(body.get("refresh_token").is_none());
    let access = claims(body["access_token"].as_str().unwrap());
    assert_eq!(access["sub"], "backend");
    assert_eq!(access["client_id"], "backend");
    assert_eq!(access["scope"], "mcp:tools");
    t.verify(body["access_token"].as_str().unwrap()).await;
    // A resource becomes the audience, and a proof binds the token.
    let key = ProofKey::generate();
    let (status, body, _) = token(
        &t,
        &[
            ("grant_type", "client_credentials"),
            ("resource", "http://localhost:3001/mcp"),
        ],
        Some(("backend", "backend-secret")),
        Some(key.proof(&format!("{}/token", t.issuer), None)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    let access = claims(body["access_token"].as_str().unwrap());
    assert_eq!(access["aud"], "http://localhost:3001/mcp");
    assert_eq!(access["cnf"]["jkt"], key.jkt.as_str());
    // Wrong secret, public client, unknown scope.
    let (status, body, _) = token(&t, &form, Some(("backend", "nope")), None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let (status, body, _) = token(
        &t,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "mcp-client"),
        ],
        None,
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unauthorized_client"))
    );
    let (status, body, _) = token(
        &t,
        &[("grant_type", "client_credentials"), ("scope", "openid")],
        Some(("backend", "backend-secret")),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope"))
    );
}

/// With `--opaque-tokens`, the binding of a DPoP-bound token reaches the resource server
/// only through introspection: the answer carries `cnf.jkt` (RFC 9449 §6.2).
#[tokio::test]
async fn introspection_of_an_opaque_bound_token_names_the_key() {
    let t = start(|c| {
        let mut c = mcp_ready(c);
        c.opaque_tokens = true;
        c
    })
    .await;
    let htu = format!("{}/token", t.issuer);
    let key = ProofKey::generate();
    let (code, verifier) = code_form(&t).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("client_id", "mcp-client"),
        ("code_verifier", verifier.as_str()),
    ];
    let (status, body, _) = token(&t, &form, None, Some(key.proof(&htu, None))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    let access = body["access_token"].as_str().unwrap();
    assert!(jsonwebtoken::decode_header(access).is_err(), "opaque");
    let answer: Value = t
        .http
        .post(format!("{}/token/introspect", t.issuer))
        .form(&[("token", access)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["cnf"]["jkt"], key.jkt.as_str());

    // An unbound token's answer has no `cnf`, as Dex's.
    let (code, verifier) = code_form(&t).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("client_id", "mcp-client"),
        ("code_verifier", verifier.as_str()),
    ];
    let (status, body, _) = token(&t, &form, None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer: Value = t
        .http
        .post(format!("{}/token/introspect", t.issuer))
        .form(&[("token", body["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["active"], true, "{answer}");
    assert!(answer.get("cnf").is_none(), "{answer}");
}
