//! The attack matrix: forged, malformed, misplaced and mis-addressed tokens against a
//! running resource server. Each case states the expected status and challenge, and
//! every case proves that no token text reached the captured logs, the response body
//! or the response headers.
//!
//! Cases marked `precrypto` also run against a second resource server whose JWKS
//! endpoint is down and whose refetch interval is zero: a token that got past the
//! cheap pre-checks would make that server fetch keys (and answer 503), so an unchanged
//! fetch count and the expected status show the token was refused before any
//! cryptography.

use jsonwebtoken::EncodingKey;
use mcp_auth_proto::challenge::BearerChallenge;
use mcp_resource_server::config::JwksConfig;
use serde_json::{Value, json};
use std::time::Duration;

use crate::support::{
    JwksMode, RSA1_PUB_PEM, Reply, TestAuthServer, TestKey, Tripwire, alg_name, assert_not_leaked,
    b64, client, logs, now, post_mcp, raw_jws, rs_config, start_rs,
};

/// How the credentials are sent.
enum Carry {
    /// `Authorization: <value>` exactly.
    Header(String),
    /// `?access_token=<token>` and no header.
    Query(String),
    /// `?access_token=<token>` and a valid header.
    QueryAndHeader(String),
    /// Two `Authorization: Bearer` headers.
    TwoHeaders(String, String),
    /// A form body `access_token=<token>` and no header.
    Form(String),
    /// Nothing.
    Nothing,
}

/// The challenge expected in `WWW-Authenticate`.
#[derive(Debug, Clone, Copy)]
enum Challenge {
    /// No challenge (the request was served).
    Absent,
    /// `Bearer` with `resource_metadata`, without `error`.
    NoError,
    /// `Bearer error="<code>"` with `resource_metadata`.
    Error(&'static str),
}

struct Case {
    name: &'static str,
    carry: Carry,
    status: u16,
    challenge: Challenge,
    /// Refused by the pre-checks, before any key lookup or signature check.
    precrypto: bool,
    /// Text that must never be echoed or logged (the token(s)).
    secrets: Vec<String>,
}

fn bearer(token: &str) -> Carry {
    Carry::Header(format!("Bearer {token}"))
}

fn case(name: &'static str, token: String, status: u16, challenge: Challenge) -> Case {
    Case {
        name,
        carry: bearer(&token),
        status,
        challenge,
        precrypto: false,
        secrets: vec![token],
    }
}

impl Case {
    fn precrypto(mut self) -> Self {
        self.precrypto = true;
        self
    }
}

const INVALID_TOKEN: Challenge = Challenge::Error("invalid_token");
const INVALID_REQUEST: Challenge = Challenge::Error("invalid_request");

/// An HMAC JWS whose secret is the RSA public key (the classic algorithm confusion).
fn hmac_with_public_key(alg: jsonwebtoken::Algorithm, claims: &Value) -> String {
    let secret = EncodingKey::from_secret(RSA1_PUB_PEM);
    raw_jws(
        &json!({"alg": alg_name(alg), "kid": "rsa-1", "typ": "at+jwt"}),
        claims,
        |input| jsonwebtoken::crypto::sign(input, &secret, alg).unwrap(),
    )
}

fn unsigned(alg: &str, claims: &Value) -> String {
    raw_jws(&json!({"alg": alg, "typ": "JWT"}), claims, |_| {
        String::new()
    })
}

fn with(claims: &Value, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut claims = claims.clone();
    edit(claims.as_object_mut().unwrap());
    claims
}

async fn send(url: &str, carry: &Carry, valid: &str) -> Reply {
    match carry {
        Carry::Header(value) => post_mcp(url, "/mcp", &[("authorization", value.clone())]).await,
        Carry::Query(token) => post_mcp(url, &format!("/mcp?access_token={token}"), &[]).await,
        Carry::QueryAndHeader(token) => {
            post_mcp(
                url,
                &format!("/mcp?access_token={token}"),
                &[("authorization", format!("Bearer {valid}"))],
            )
            .await
        }
        Carry::TwoHeaders(a, b) => {
            post_mcp(
                url,
                "/mcp",
                &[
                    ("authorization", format!("Bearer {a}")),
                    ("authorization", format!("Bearer {b}")),
                ],
            )
            .await
        }
        Carry::Form(token) => {
            let response = client()
                .post(format!("{url}/mcp"))
                .header("accept", "application/json, text/event-stream")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("access_token={token}"))
                .send()
                .await
                .unwrap();
            Reply::from(response).await
        }
        Carry::Nothing => post_mcp(url, "/mcp", &[]).await,
    }
}

fn check(case: &Case, reply: &Reply, prm: &str, server: &str) {
    let name = case.name;
    assert_eq!(
        reply.status, case.status,
        "{name} ({server}): status; body {}",
        reply.body
    );
    let challenge = BearerChallenge::find([reply.www_authenticate.as_str()]);
    match case.challenge {
        Challenge::Absent => assert!(
            reply.www_authenticate.is_empty(),
            "{name}: unexpected challenge {}",
            reply.www_authenticate
        ),
        Challenge::NoError | Challenge::Error(_) => {
            let challenge = challenge.unwrap_or_else(|| {
                panic!(
                    "{name} ({server}): expected a Bearer challenge, got {:?}",
                    reply.www_authenticate
                )
            });
            assert_eq!(
                challenge.resource_metadata.as_deref(),
                Some(prm),
                "{name}: challenge names the PRM"
            );
            let error = challenge.error.as_ref().map(|e| e.as_str().to_string());
            match case.challenge {
                Challenge::NoError => assert_eq!(error, None, "{name}: no error code"),
                Challenge::Error(code) => {
                    assert_eq!(error.as_deref(), Some(code), "{name}: error code");
                    let body: Value = serde_json::from_str(&reply.body)
                        .unwrap_or_else(|_| panic!("{name}: JSON error body"));
                    assert_eq!(body["error"], code, "{name}: body error code");
                }
                Challenge::Absent => unreachable!(),
            }
        }
    }
    for secret in &case.secrets {
        assert_not_leaked(
            secret,
            &[&reply.body, &reply.headers, &reply.www_authenticate],
            name,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_matrix() {
    logs();
    let as1 = TestKey::rsa1();
    let ec = TestKey::ec();
    let attacker = TestKey::attacker();
    let auth_server = TestAuthServer::with_keys(&[as1.clone(), ec.clone()]).await;
    let url = start_rs(|url| rs_config(url, auth_server.issuer())).await;
    let aud = format!("{url}/mcp");
    let prm = format!("{url}/.well-known/oauth-protected-resource/mcp");
    let tripwire = Tripwire::start(&attacker).await;

    // A second server whose keys can never be obtained, to show pre-crypto refusals.
    let dead_as = TestAuthServer::with_keys(std::slice::from_ref(&as1)).await;
    dead_as.set_jwks_mode(JwksMode::Down);
    let dead_issuer = dead_as.issuer().to_string();
    let dead_jwks = dead_as.jwks_url();
    let keyless = start_rs(|url| {
        rs_config(url, &dead_issuer)
            .with_jwks_uri(dead_jwks)
            .with_audiences([aud.clone()])
            .with_jwks_config(JwksConfig {
                min_refetch_interval: Duration::ZERO,
                http_timeout: Duration::from_secs(1),
                ..JwksConfig::default()
            })
    })
    .await;
    let keyless_prm = format!("{keyless}/.well-known/oauth-protected-resource/mcp");
    // Wait for its start-up prefetch, so that later counts only move because of a case.
    for _ in 0..100 {
        if dead_as.fetches() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(dead_as.fetches() > 0, "the keyless server tried its JWKS");

    let good = auth_server.claims("alice", &aud, "mcp:tools");
    let valid = as1.sign(&good);
    // The query-string cases get tokens of their own, so that a request line written to
    // the logs would be caught on them and not on an unrelated case.
    let query_token_1 = as1.sign(&auth_server.claims("alice", &aud, "mcp:tools"));
    let query_token_2 = as1.sign(&auth_server.claims("alice", &aud, "mcp:tools"));
    let t = now();

    let cases = vec![
        case("valid RS256 token (baseline)", valid.clone(), 200, Challenge::Absent),
        case(
            "valid ES256 token (baseline)",
            ec.sign(&good),
            200,
            Challenge::Absent,
        ),
        case(
            "alg none",
            unsigned("none", &good),
            401,
            INVALID_TOKEN,
        )
        .precrypto(),
        case(
            "alg None",
            unsigned("None", &good),
            401,
            INVALID_TOKEN,
        )
        .precrypto(),
        case(
            "alg NONE",
            unsigned("NONE", &good),
            401,
            INVALID_TOKEN,
        )
        .precrypto(),
        case(
            "alg nOnE with a made-up signature",
            raw_jws(&json!({"alg": "nOnE"}), &good, |_| b64(b"sig")),
            401,
            INVALID_TOKEN,
        )
        .precrypto(),
        case(
            "HS256 signed with the RSA public key",
            hmac_with_public_key(jsonwebtoken::Algorithm::HS256, &good),
            401,
            INVALID_TOKEN,
        )
        .precrypto(),
        case(
            "HS384 signed with the RSA public key",
            hmac_with_public_key(jsonwebtoken::Algorithm::HS384, &good),
            401,
            INVALID_TOKEN,
        )
        .precrypto(),
        case(
            "HS512 signed with the RSA public key",
            hmac_with_public_key(jsonwebtoken::Algorithm::HS512, &good),
            401,
            INVALID_TOKEN,
        )
        .precrypto(),
        case(
            "jku pointing at the attacker's JWKS",
            attacker.sign_with_header(
                json!({"alg": "RS256", "kid": "attacker", "jku": format!("{}/jwks.json", tripwire.url)}),
                &good,
            ),
            401,
            INVALID_TOKEN,
        ),
        case(
            "jku with the real kid, signed by the attacker",
            attacker.sign_with_header(
                json!({"alg": "RS256", "kid": "rsa-1", "jku": format!("{}/jwks.json", tripwire.url)}),
                &good,
            ),
            401,
            INVALID_TOKEN,
        ),
        case(
            "x5u pointing at the attacker",
            attacker.sign_with_header(
                json!({"alg": "RS256", "kid": "attacker", "x5u": format!("{}/cert.pem", tripwire.url)}),
                &good,
            ),
            401,
            INVALID_TOKEN,
        ),
        case(
            "embedded jwk with the attacker's key",
            attacker.sign_with_header(
                json!({"alg": "RS256", "kid": "attacker", "jwk": attacker.jwk()}),
                &good,
            ),
            401,
            INVALID_TOKEN,
        ),
        case(
            "embedded jwk, no kid",
            attacker.sign_with_header(json!({"alg": "RS256", "jwk": attacker.jwk()}), &good),
            401,
            INVALID_TOKEN,
        ),
        case(
            "kid of the real key, signed by the attacker",
            attacker.sign_with_header(json!({"alg": "RS256", "kid": "rsa-1"}), &good),
            401,
            INVALID_TOKEN,
        ),
        case(
            "kid path traversal",
            attacker.sign_with_header(
                json!({"alg": "RS256", "kid": "../../../../../../dev/null"}),
                &good,
            ),
            401,
            INVALID_TOKEN,
        ),
        case(
            "kid SQL injection",
            attacker.sign_with_header(json!({"alg": "RS256", "kid": "x' OR '1'='1"}), &good),
            401,
            INVALID_TOKEN,
        ),
        case(
            "kid that is not a string",
            as1.sign_with_header(json!({"alg": "RS256", "kid": 1}), &good),
            401,
            INVALID_TOKEN,
        )
        .precrypto(),
        case(
            "kid of the EC key with alg RS256",
            as1.sign_with_header(json!({"alg": "RS256", "kid": "ec-1"}), &good),
            401,
            INVALID_TOKEN,
        ),
        case(
            "unknown crit header",
            as1.sign_with_header(
                json!({"alg": "RS256", "kid": "rsa-1", "crit": ["urn:example:ignored"], "urn:example:ignored": true}),
                &good,
            ),
            401,
            INVALID_TOKEN,
        )
        .precrypto(),
        case(
            "crit b64=false",
            as1.sign_with_header(
                json!({"alg": "RS256", "kid": "rsa-1", "crit": ["b64"], "b64": false}),
                &good,
            ),
            401,
            INVALID_TOKEN,
        )
        .precrypto(),
        case(
            "expired",
            as1.sign(&with(&good, |c| {
                c.insert("exp".into(), json!(t - 3600));
                c.insert("iat".into(), json!(t - 7200));
            })),
            401,
            INVALID_TOKEN,
        ),
        case(
            "nbf in the future",
            as1.sign(&with(&good, |c| {
                c.insert("nbf".into(), json!(t + 3600));
            })),
            401,
            INVALID_TOKEN,
        ),
        case(
            "missing exp",
            as1.sign(&with(&good, |c| {
                c.remove("exp");
            })),
            401,
            INVALID_TOKEN,
        ),
        case(
            "exp is a string",
            as1.sign(&with(&good, |c| {
                c.insert("exp".into(), json!((t + 300).to_string()));
            })),
            401,
            INVALID_TOKEN,
        ),
        case(
            "wrong iss",
            as1.sign(&with(&good, |c| {
                c.insert("iss".into(), json!("http://evil.example/dex"));
            })),
            401,
            INVALID_TOKEN,
        ),
        case(
            "iss with a trailing slash",
            as1.sign(&with(&good, |c| {
                c.insert("iss".into(), json!(format!("{}/", auth_server.issuer())));
            })),
            401,
            INVALID_TOKEN,
        ),
        case(
            "wrong aud",
            as1.sign(&with(&good, |c| {
                c.insert("aud".into(), json!("http://other.example/mcp"));
            })),
            401,
            INVALID_TOKEN,
        ),
        case(
            "aud array with one accepted value",
            as1.sign(&with(&good, |c| {
                c.insert(
                    "aud".into(),
                    json!(["http://other.example/mcp", aud.clone(), "mcp-client"]),
                );
            })),
            200,
            Challenge::Absent,
        ),
        case(
            "aud empty array",
            as1.sign(&with(&good, |c| {
                c.insert("aud".into(), json!([]));
            })),
            401,
            INVALID_TOKEN,
        ),
        case(
            "signature of another payload (sub changed)",
            {
                let other = as1.sign(&with(&good, |c| {
                    c.insert("sub".into(), json!("mallory"));
                }));
                let mut parts: Vec<&str> = valid.split('.').collect();
                let forged_payload = other.split('.').nth(1).unwrap().to_string();
                parts[1] = &forged_payload;
                parts.join(".")
            },
            401,
            INVALID_TOKEN,
        ),
        case(
            "signature stripped",
            {
                let (input, _) = valid.rsplit_once('.').unwrap();
                format!("{input}.")
            },
            401,
            INVALID_TOKEN,
        )
        .precrypto(),
        case("empty token", String::new(), 400, INVALID_REQUEST).precrypto(),
        Case {
            carry: Carry::Header("Bearer      ".into()),
            ..case("whitespace-only token", String::new(), 400, INVALID_REQUEST).precrypto()
        },
        case(
            "two-part token",
            {
                let (input, _) = valid.rsplit_once('.').unwrap();
                input.to_string()
            },
            401,
            INVALID_TOKEN,
        )
        .precrypto(),
        case(
            "characters outside b64token",
            format!("{}$%!", &valid[..40]),
            400,
            INVALID_REQUEST,
        )
        .precrypto(),
        case(
            "b64token but not base64url (+ and /)",
            valid.replace('-', "+").replace('_', "/") + "+/",
            401,
            INVALID_TOKEN,
        )
        .precrypto(),
        case(
            "header part not base64 JSON",
            format!("bm90IGpzb24.{}", valid.split_once('.').unwrap().1),
            401,
            INVALID_TOKEN,
        )
        .precrypto(),
        case(
            "oversized token (64 KiB)",
            as1.sign(&with(&good, |c| {
                c.insert("pad".into(), json!("A".repeat(64 * 1024)));
            })),
            401,
            INVALID_TOKEN,
        )
        .precrypto(),
        case(
            "encrypted JWE (five parts)",
            format!(
                "{}.{}.{}.{}.{}",
                b64(br#"{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"rsa-1"}"#),
                b64(&[7u8; 256]),
                b64(&[1u8; 12]),
                b64(&[2u8; 300]),
                b64(&[3u8; 16])
            ),
            401,
            INVALID_TOKEN,
        )
        .precrypto(),
        case(
            "typ of another token kind (dpop+jwt)",
            as1.sign_with_header(json!({"alg": "RS256", "kid": "rsa-1", "typ": "dpop+jwt"}), &good),
            401,
            INVALID_TOKEN,
        )
        .precrypto(),
        Case {
            carry: Carry::Query(query_token_1.clone()),
            ..case(
                "valid token in the query string",
                query_token_1.clone(),
                400,
                INVALID_REQUEST,
            )
        },
        Case {
            carry: Carry::QueryAndHeader(query_token_2.clone()),
            ..case(
                "valid token in the query string and the header",
                query_token_2.clone(),
                400,
                INVALID_REQUEST,
            )
        },
        Case {
            carry: Carry::TwoHeaders(valid.clone(), as1.sign(&auth_server.claims("bob", &aud, "mcp:tools"))),
            ..case("two Authorization headers", valid.clone(), 400, INVALID_REQUEST)
        },
        Case {
            carry: Carry::Form(valid.clone()),
            ..case(
                "valid token in a form body",
                valid.clone(),
                400,
                INVALID_REQUEST,
            )
        },
        Case {
            carry: Carry::Nothing,
            ..case("no credentials", String::new(), 401, Challenge::NoError)
        },
        Case {
            carry: Carry::Header(format!("Basic {}", b64(b"alice:password"))),
            ..case("Basic credentials", String::new(), 401, Challenge::NoError)
        },
        Case {
            carry: Carry::Header(format!("bEaReR {valid}")),
            ..case("scheme in mixed case", valid.clone(), 200, Challenge::Absent)
        },
        case(
            "valid token without the required scope",
            as1.sign(&auth_server.claims("alice", &aud, "openid profile")),
            403,
            Challenge::Error("insufficient_scope"),
        ),
        // An OIDC ID token for the client: `aud` is the client id, not this resource,
        // so an RFC 9068 deployment (audience = the resource URI) refuses it.
        case(
            "ID token (aud = client id) at an RFC 9068 deployment",
            as1.sign_with_header(
                json!({"alg": "RS256", "kid": "rsa-1", "typ": "JWT"}),
                &json!({
                    "iss": auth_server.issuer(), "sub": "alice", "aud": "mcp-client",
                    "azp": "mcp-client", "exp": t + 300, "iat": t, "nonce": "n-0S6_WzA2Mj",
                    "at_hash": "77QmUPtjPfzWtF2AnpK9RQ", "email": "alice@example.com"
                }),
            ),
            401,
            INVALID_TOKEN,
        ),
    ];
    assert!(cases.len() >= 30, "{} cases", cases.len());

    // Dex topology: the access token *is* an ID token (aud = [resource server's client
    // id, client], azp = client). Nothing in it distinguishes the two, so a deployment
    // accepting Dex tokens accepts this ID token: documented, not preventable here.
    let dex_url = start_rs(|url| {
        rs_config(url, auth_server.issuer())
            .with_audiences(["mcp-resource-server"])
            .with_scopes_supported(["openid"])
            .with_required_scopes(Vec::<String>::new())
    })
    .await;
    let dex_id_token = as1.sign_with_header(
        json!({"alg": "RS256", "kid": "rsa-1", "typ": "JWT"}),
        &json!({
            "iss": auth_server.issuer(), "sub": "CiQwOGE4Njg0Yi1kYjg4", "aud": ["mcp-resource-server", "mcp-client"],
            "azp": "mcp-client", "exp": t + 300, "iat": t, "nonce": "n-0S6_WzA2Mj",
            "at_hash": "77QmUPtjPfzWtF2AnpK9RQ", "email": "alice@example.com"
        }),
    );
    let dex_case = case(
        "ID token at a Dex deployment (cannot be told apart: accepted, documented)",
        dex_id_token,
        200,
        Challenge::Absent,
    );
    let reply = send(&dex_url, &dex_case.carry, &valid).await;
    check(
        &dex_case,
        &reply,
        &format!("{dex_url}/.well-known/oauth-protected-resource/mcp"),
        "dex",
    );

    for case in &cases {
        let reply = send(&url, &case.carry, &valid).await;
        check(case, &reply, &prm, "main");
        if case.precrypto {
            let before = dead_as.fetches();
            let reply = send(&keyless, &case.carry, &valid).await;
            check(case, &reply, &keyless_prm, "keyless");
            assert_eq!(
                dead_as.fetches(),
                before,
                "{}: refused before any key lookup",
                case.name
            );
        }
    }
    assert_eq!(
        tripwire.hits(),
        0,
        "keys are only ever taken from the configured JWKS"
    );
    // Whatever the forged headers said, the only JWKS ever fetched is the configured one.
    assert!(auth_server.fetches() >= 1);
    // And the resource server still serves the legitimate client.
    let reply = send(&url, &bearer(&valid), &valid).await;
    assert_eq!(reply.status, 200);
}

/// The legacy SSE routes and `POST /session` sit behind the same layer with their own
/// PRM URL: a sample of the matrix against each of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_routes_refuse_the_same_tokens() {
    logs();
    let as1 = TestKey::rsa1();
    let auth_server = TestAuthServer::with_keys(std::slice::from_ref(&as1)).await;
    let url = start_rs(|url| rs_config(url, auth_server.issuer())).await;
    let aud = format!("{url}/sse");
    let prm = format!("{url}/.well-known/oauth-protected-resource/sse");
    let good = auth_server.claims("alice", &aud, "mcp:tools");
    let t = now();
    let samples = [
        ("alg none", unsigned("none", &good), 401, INVALID_TOKEN),
        (
            "HS256 with the public key",
            hmac_with_public_key(jsonwebtoken::Algorithm::HS256, &good),
            401,
            INVALID_TOKEN,
        ),
        (
            "expired",
            as1.sign(&with(&good, |c| {
                c.insert("exp".into(), json!(t - 3600));
            })),
            401,
            INVALID_TOKEN,
        ),
        (
            "wrong aud",
            as1.sign(&with(&good, |c| {
                c.insert("aud".into(), json!("http://other.example/sse"));
            })),
            401,
            INVALID_TOKEN,
        ),
        (
            "signed by the attacker with the real kid",
            TestKey::attacker().sign_with_header(json!({"alg": "RS256", "kid": "rsa-1"}), &good),
            401,
            INVALID_TOKEN,
        ),
        (
            "without the required scope",
            as1.sign(&auth_server.claims("alice", &aud, "openid")),
            403,
            Challenge::Error("insufficient_scope"),
        ),
    ];
    for (name, token, status, challenge) in samples {
        for (method, path) in [
            (reqwest::Method::GET, "/sse"),
            (reqwest::Method::POST, "/session"),
            (reqwest::Method::POST, "/messages?sessionId=x"),
        ] {
            let response = client()
                .request(method.clone(), format!("{url}{path}"))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let reply = Reply::from(response).await;
            let case = Case {
                name,
                carry: Carry::Nothing,
                status,
                challenge,
                precrypto: false,
                secrets: vec![token.clone()],
            };
            check(&case, &reply, &prm, &format!("{method} {path}"));
        }
    }
    // A token in the query string of the stream request.
    let token = as1.sign(&good);
    let response = client()
        .get(format!("{url}/sse?access_token={token}"))
        .send()
        .await
        .unwrap();
    let reply = Reply::from(response).await;
    let case = Case {
        name: "token in the query string of GET /sse",
        carry: Carry::Nothing,
        status: 400,
        challenge: INVALID_REQUEST,
        precrypto: false,
        secrets: vec![token],
    };
    check(&case, &reply, &prm, "GET /sse");
}
