//! The DPoP attack matrix (RFC 9449): proofs that are replayed, addressed elsewhere,
//! made for another token or key, unsigned, HMAC-signed, carrying a private key, or
//! outside the `iat` window, and tokens presented under the wrong scheme, against a
//! running resource server with DPoP `allowed` and one with DPoP `required`. Each case
//! states the expected status and challenge error, and proves that neither the token
//! nor the proof reached the logs, the response body or the response headers.

use jsonwebtoken::{Algorithm, EncodingKey};
use mcp_auth_proto::challenge::{BearerChallenge, DpopChallenge};
use mcp_resource_server::auth::{DpopConfig, DpopPolicy, dpop::access_token_hash};
use serde_json::{Map, Value, json};

use crate::support::{
    Reply, TestAuthServer, TestKey, alg_name, assert_not_leaked, b64, logs, now, post_mcp, raw_jws,
    rs_config, start_rs,
};

/// A proof: its header and claims, signed by `key`.
fn proof(key: &TestKey, header: Value, claims: &Value) -> String {
    key.sign_with_header(header, claims)
}

/// The public JWK of `key` as a proof header carries it.
fn public_jwk(key: &TestKey) -> Value {
    let mut jwk = key.jwk_json();
    let object = jwk.as_object_mut().unwrap();
    object.remove("kid");
    object.remove("alg");
    jwk
}

fn thumbprint(key: &TestKey) -> String {
    key.thumbprint()
}

fn header(key: &TestKey) -> Value {
    json!({"typ": "dpop+jwt", "alg": alg_name(key.alg()), "jwk": public_jwk(key)})
}

fn proof_claims(url: &str, path: &str, method: &str, token: &str) -> Value {
    json!({
        "jti": format!("jti-{}", rand::random::<u64>()),
        "htm": method,
        "htu": format!("{url}{path}"),
        "iat": now(),
        "ath": access_token_hash(token),
    })
}

fn edit(value: &Value, f: impl FnOnce(&mut Map<String, Value>)) -> Value {
    let mut value = value.clone();
    f(value.as_object_mut().unwrap());
    value
}

/// What a case expects in `WWW-Authenticate`.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Served.
    Ok,
    /// 401 with this error in the `DPoP` challenge.
    Dpop(&'static str),
    /// 401 with this error in the `Bearer` challenge (DPoP allowed).
    Bearer(&'static str),
}

struct Case {
    name: &'static str,
    headers: Vec<(&'static str, String)>,
    expect: Expect,
    secrets: Vec<String>,
}

fn dpop_case(name: &'static str, token: &str, proof: Option<String>, expect: Expect) -> Case {
    let mut headers = vec![("authorization", format!("DPoP {token}"))];
    let mut secrets = vec![token.to_string()];
    if let Some(proof) = proof {
        secrets.push(proof.clone());
        headers.push(("dpop", proof));
    }
    Case {
        name,
        headers,
        expect,
        secrets,
    }
}

fn check(case: &Case, reply: &Reply, prm: &str, algs: &str) {
    let name = case.name;
    match case.expect {
        Expect::Ok => {
            assert_eq!(reply.status, 200, "{name}: status; body {}", reply.body);
        }
        Expect::Dpop(code) | Expect::Bearer(code) => {
            assert_eq!(reply.status, 401, "{name}: status; body {}", reply.body);
            let dpop =
                DpopChallenge::find([reply.www_authenticate.as_str()]).unwrap_or_else(|| {
                    panic!("{name}: a DPoP challenge in {:?}", reply.www_authenticate)
                });
            assert_eq!(dpop.algs.as_deref(), Some(algs), "{name}: algs");
            assert_eq!(dpop.resource_metadata.as_deref(), Some(prm), "{name}: PRM");
            let body: Value = serde_json::from_str(&reply.body).unwrap();
            assert_eq!(body["error"], code, "{name}: body error");
            if let Expect::Dpop(code) = case.expect {
                assert_eq!(dpop.error.as_deref(), Some(code), "{name}: DPoP error");
            } else {
                let bearer = BearerChallenge::find([reply.www_authenticate.as_str()])
                    .unwrap_or_else(|| panic!("{name}: a Bearer challenge"));
                assert_eq!(
                    bearer.error.map(|e| e.as_str().to_string()).as_deref(),
                    Some(code),
                    "{name}: Bearer error"
                );
                assert_eq!(dpop.error, None, "{name}: no DPoP error");
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
async fn dpop_attack_matrix() {
    logs();
    let as1 = TestKey::rsa1();
    let client_key = TestKey::ec();
    let other_key = TestKey::attacker();
    let auth_server = TestAuthServer::with_keys(std::slice::from_ref(&as1)).await;
    let url = start_rs(|url| {
        rs_config(url, auth_server.issuer()).with_dpop(DpopConfig {
            policy: DpopPolicy::Allowed,
            ..DpopConfig::default()
        })
    })
    .await;
    let aud = format!("{url}/mcp");
    let prm = format!("{url}/.well-known/oauth-protected-resource/mcp");
    let algs = "ES256 ES384 EdDSA PS256 RS256";

    let bound_claims = |sub: &str| {
        edit(&auth_server.claims(sub, &aud, "mcp:tools"), |c| {
            c.insert("cnf".into(), json!({"jkt": thumbprint(&client_key)}));
        })
    };
    let bound = as1.sign(&bound_claims("alice"));
    let unbound = as1.sign(&auth_server.claims("bob", &aud, "mcp:tools"));
    let good_claims = || proof_claims(&url, "/mcp", "POST", &bound);
    let good = || proof(&client_key, header(&client_key), &good_claims());

    let replayed = good();
    let hmac = raw_jws(
        &json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": b64(b"shared")}}),
        &good_claims(),
        |input| {
            jsonwebtoken::crypto::sign(
                input,
                &EncodingKey::from_secret(b"shared"),
                Algorithm::HS256,
            )
            .unwrap()
        },
    );
    let hmac_with_public_key = raw_jws(
        &edit(&header(&client_key), |h| {
            h.insert("alg".into(), json!("HS256"));
        }),
        &good_claims(),
        |input| {
            let secret = serde_json::to_vec(&public_jwk(&client_key)).unwrap();
            jsonwebtoken::crypto::sign(input, &EncodingKey::from_secret(&secret), Algorithm::HS256)
                .unwrap()
        },
    );
    let unsigned = raw_jws(
        &edit(&header(&client_key), |h| {
            h.insert("alg".into(), json!("none"));
        }),
        &good_claims(),
        |_| String::new(),
    );
    let private_jwk = proof(
        &client_key,
        edit(&header(&client_key), |h| {
            // The key's private scalar beside its public part (a made-up value: the
            // server must refuse on sight whatever it is).
            h.get_mut("jwk").unwrap()["d"] = json!(b64(&[7u8; 32]));
        }),
        &good_claims(),
    );
    let claims_with = |f: &dyn Fn(&mut Map<String, Value>)| {
        proof(&client_key, header(&client_key), &edit(&good_claims(), f))
    };

    let cases = vec![
        dpop_case("good proof", &bound, Some(replayed.clone()), Expect::Ok),
        dpop_case(
            "replayed proof",
            &bound,
            Some(replayed),
            Expect::Dpop("invalid_dpop_proof"),
        ),
        dpop_case(
            "proof for another URL",
            &bound,
            Some(claims_with(&|c| {
                c.insert("htu".into(), json!(format!("{url}/sse")));
            })),
            Expect::Dpop("invalid_dpop_proof"),
        ),
        dpop_case(
            "proof for another server",
            &bound,
            Some(claims_with(&|c| {
                c.insert("htu".into(), json!("https://other.example/mcp"));
            })),
            Expect::Dpop("invalid_dpop_proof"),
        ),
        dpop_case(
            "proof for another method",
            &bound,
            Some(claims_with(&|c| {
                c.insert("htm".into(), json!("GET"));
            })),
            Expect::Dpop("invalid_dpop_proof"),
        ),
        dpop_case(
            "wrong ath (proof for another token)",
            &bound,
            Some(claims_with(&|c| {
                c.insert("ath".into(), json!(access_token_hash(&unbound)));
            })),
            Expect::Dpop("invalid_dpop_proof"),
        ),
        dpop_case(
            "proof signed by another key",
            &bound,
            Some(proof(&other_key, header(&other_key), &good_claims())),
            Expect::Dpop("invalid_dpop_proof"),
        ),
        dpop_case(
            "another key's jwk over this key's signature",
            &bound,
            Some(proof(
                &other_key,
                edit(&header(&other_key), |h| {
                    h.insert("jwk".into(), public_jwk(&as1));
                }),
                &good_claims(),
            )),
            Expect::Dpop("invalid_dpop_proof"),
        ),
        dpop_case(
            "missing proof",
            &bound,
            None,
            Expect::Dpop("invalid_dpop_proof"),
        ),
        dpop_case(
            "private key in jwk",
            &bound,
            Some(private_jwk),
            Expect::Dpop("invalid_dpop_proof"),
        ),
        dpop_case(
            "alg none",
            &bound,
            Some(unsigned),
            Expect::Dpop("invalid_dpop_proof"),
        ),
        dpop_case(
            "HMAC with a key in the jwk",
            &bound,
            Some(hmac),
            Expect::Dpop("invalid_dpop_proof"),
        ),
        dpop_case(
            "HMAC keyed with the public jwk",
            &bound,
            Some(hmac_with_public_key),
            Expect::Dpop("invalid_dpop_proof"),
        ),
        dpop_case(
            "stale iat (6 minutes old)",
            &bound,
            Some(claims_with(&|c| {
                c.insert("iat".into(), json!(now() - 360));
            })),
            Expect::Dpop("invalid_dpop_proof"),
        ),
        dpop_case(
            "future iat (6 minutes ahead)",
            &bound,
            Some(claims_with(&|c| {
                c.insert("iat".into(), json!(now() + 360));
            })),
            Expect::Dpop("invalid_dpop_proof"),
        ),
        dpop_case(
            "typ JWT",
            &bound,
            Some(proof(
                &client_key,
                edit(&header(&client_key), |h| {
                    h.insert("typ".into(), json!("JWT"));
                }),
                &good_claims(),
            )),
            Expect::Dpop("invalid_dpop_proof"),
        ),
        Case {
            name: "two DPoP headers",
            headers: vec![
                ("authorization", format!("DPoP {bound}")),
                ("dpop", good()),
                ("dpop", good()),
            ],
            expect: Expect::Dpop("invalid_dpop_proof"),
            secrets: vec![bound.clone()],
        },
        Case {
            name: "DPoP-bound token sent as Bearer (downgrade)",
            headers: vec![("authorization", format!("Bearer {bound}"))],
            expect: Expect::Bearer("invalid_token"),
            secrets: vec![bound.clone()],
        },
        Case {
            name: "DPoP-bound token sent as Bearer with a valid proof beside it",
            headers: vec![
                ("authorization", format!("Bearer {bound}")),
                ("dpop", good()),
            ],
            expect: Expect::Bearer("invalid_token"),
            secrets: vec![bound.clone()],
        },
        dpop_case(
            "bearer token sent as DPoP with a valid proof",
            &unbound,
            Some(proof(
                &client_key,
                header(&client_key),
                &proof_claims(&url, "/mcp", "POST", &unbound),
            )),
            Expect::Dpop("invalid_token"),
        ),
        Case {
            name: "bearer token sent as Bearer",
            headers: vec![("authorization", format!("Bearer {unbound}"))],
            expect: Expect::Ok,
            secrets: vec![unbound.clone()],
        },
    ];

    for case in &cases {
        let reply = post_mcp(&url, "/mcp", &case.headers).await;
        check(case, &reply, &prm, algs);
    }

    // Required: a bearer token is refused, with a DPoP challenge and no Bearer one.
    let required = start_rs(|url| {
        rs_config(url, auth_server.issuer())
            .with_audiences([aud.clone()])
            .with_dpop(DpopConfig {
                policy: DpopPolicy::Required,
                algorithms: vec!["ES256".into()],
                ..DpopConfig::default()
            })
    })
    .await;
    let reply = post_mcp(
        &required,
        "/mcp",
        &[("authorization", format!("Bearer {unbound}"))],
    )
    .await;
    assert_eq!(reply.status, 401, "required: bearer refused");
    assert!(
        BearerChallenge::find([reply.www_authenticate.as_str()]).is_none(),
        "{}",
        reply.www_authenticate
    );
    let challenge = DpopChallenge::find([reply.www_authenticate.as_str()]).unwrap();
    assert_eq!(challenge.error.as_deref(), Some("invalid_token"));
    assert_eq!(challenge.algs.as_deref(), Some("ES256"));
    // The same bound token and a proof for that server are served.
    let proof_for_required = proof(
        &client_key,
        header(&client_key),
        &proof_claims(&required, "/mcp", "POST", &bound),
    );
    let reply = post_mcp(
        &required,
        "/mcp",
        &[
            ("authorization", format!("DPoP {bound}")),
            ("dpop", proof_for_required),
        ],
    )
    .await;
    assert_eq!(
        reply.status, 200,
        "required: bound token with a proof; {}",
        reply.body
    );
    // A proof made for the first server is not accepted by the second (htu).
    let reply = post_mcp(
        &required,
        "/mcp",
        &[("authorization", format!("DPoP {bound}")), ("dpop", good())],
    )
    .await;
    assert_eq!(reply.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_server_nonce_round_trip() {
    logs();
    let as1 = TestKey::rsa1();
    let client_key = TestKey::ec();
    let auth_server = TestAuthServer::with_keys(std::slice::from_ref(&as1)).await;
    let url = start_rs(|url| {
        rs_config(url, auth_server.issuer()).with_dpop(DpopConfig {
            policy: DpopPolicy::Allowed,
            nonce: true,
            ..DpopConfig::default()
        })
    })
    .await;
    let aud = format!("{url}/mcp");
    let token = as1.sign(&edit(
        &auth_server.claims("alice", &aud, "mcp:tools"),
        |c| {
            c.insert("cnf".into(), json!({"jkt": thumbprint(&client_key)}));
        },
    ));
    let send = |proof: String| {
        let url = url.clone();
        let token = token.clone();
        async move {
            let response = crate::support::client()
                .post(format!("{url}/mcp"))
                .header("accept", "application/json, text/event-stream")
                .header("content-type", "application/json")
                .header("authorization", format!("DPoP {token}"))
                .header("dpop", proof)
                .body(crate::support::initialize().to_string())
                .send()
                .await
                .unwrap();
            let nonce = response
                .headers()
                .get("dpop-nonce")
                .map(|v| v.to_str().unwrap().to_string());
            (Reply::from(response).await, nonce)
        }
    };
    let claims = proof_claims(&url, "/mcp", "POST", &token);
    let (reply, nonce) = send(proof(&client_key, header(&client_key), &claims)).await;
    assert_eq!(reply.status, 401);
    let challenge = DpopChallenge::find([reply.www_authenticate.as_str()]).unwrap();
    assert_eq!(challenge.error.as_deref(), Some("use_dpop_nonce"));
    let nonce = nonce.expect("a DPoP-Nonce header");
    let with_nonce = edit(&proof_claims(&url, "/mcp", "POST", &token), |c| {
        c.insert("nonce".into(), json!(nonce));
    });
    let (reply, _) = send(proof(&client_key, header(&client_key), &with_nonce)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let forged = edit(&proof_claims(&url, "/mcp", "POST", &token), |c| {
        c.insert("nonce".into(), json!(format!("{nonce}x")));
    });
    let (reply, fresh) = send(proof(&client_key, header(&client_key), &forged)).await;
    assert_eq!(reply.status, 401);
    assert!(fresh.is_some());
}

/// The cookie path with DPoP required: `POST /session` takes the bound token and a
/// proof for `/session`, the session records the binding (`whoami` over the stream says
/// which key), and the cookie then stands for the token without proofs: it is a bearer
/// credential of its own, as the README says. A bound token sent as `Bearer` cannot
/// open a session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_session_from_a_bound_token_records_the_binding() {
    use crate::support::{SseAuth, call, open_sse, post_message, sse_handshake};
    let logs = logs();
    let as1 = TestKey::rsa1();
    let client_key = TestKey::ec();
    let auth_server = TestAuthServer::with_keys(std::slice::from_ref(&as1)).await;
    let url = start_rs(|url| {
        rs_config(url, auth_server.issuer()).with_dpop(DpopConfig {
            policy: DpopPolicy::Required,
            ..DpopConfig::default()
        })
    })
    .await;
    let aud = format!("{url}/sse");
    let jkt = thumbprint(&client_key);
    let token = as1.sign(&edit(
        &auth_server.claims("alice", &aud, "mcp:tools"),
        |c| {
            c.insert("cnf".into(), json!({"jkt": jkt}));
        },
    ));
    let open = |authorization: String, proof: Option<String>| {
        let url = url.clone();
        async move {
            let mut request = crate::support::client()
                .post(format!("{url}/session"))
                .header("authorization", authorization);
            if let Some(proof) = proof {
                request = request.header("dpop", proof);
            }
            let response = request.send().await.unwrap();
            let cookie = response
                .headers()
                .get("set-cookie")
                .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string());
            (response.status().as_u16(), cookie)
        }
    };
    let (status, cookie) = open(format!("Bearer {token}"), None).await;
    assert_eq!(
        (status, cookie),
        (401, None),
        "a bound token as Bearer opens no session"
    );
    let proof_for_mcp = proof(
        &client_key,
        header(&client_key),
        &proof_claims(&url, "/mcp", "POST", &token),
    );
    let (status, _) = open(format!("DPoP {token}"), Some(proof_for_mcp)).await;
    assert_eq!(status, 401, "a proof for another URL opens no session");
    let good = proof(
        &client_key,
        header(&client_key),
        &proof_claims(&url, "/session", "POST", &token),
    );
    let (status, cookie) = open(format!("DPoP {token}"), Some(good)).await;
    assert_eq!(status, 204);
    let cookie = cookie.expect("a session cookie");
    assert!(
        logs.lines_with("cookie session opened")
            .iter()
            .any(|line| line.contains(&jkt)),
        "the session log names the key the token is bound to"
    );
    let auth = SseAuth::Cookie(&cookie, Some(&url));
    let (mut reader, endpoint) = open_sse(&url, auth).await;
    sse_handshake(&url, &endpoint, auth, &mut reader).await;
    let reply = post_message(&url, &endpoint, auth, &call(2, "whoami", json!({}))).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let message = reader.message().await;
    assert_eq!(
        message["result"]["structuredContent"]["dpop_jkt"],
        jkt.as_str()
    );
    assert_not_leaked(&token, &[&reply.body, &reply.headers], "cookie session");
}

/// One principal sending fresh proofs as fast as it can fills only its own share of the
/// replay cache: past it that principal is answered 429 with `Retry-After` (and no
/// challenge: its credentials are fine), a second key bound to the same principal does
/// not buy a second share, and another principal is served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_principal_fills_only_its_share_of_the_replay_cache() {
    const SHARE: usize = 10;
    const FLOOD: usize = 40;
    logs();
    let as1 = TestKey::rsa1();
    let mallory_key = TestKey::attacker();
    let mallory_second_key = TestKey::rsa2();
    let alice_key = TestKey::ec();
    let auth_server = TestAuthServer::with_keys(std::slice::from_ref(&as1)).await;
    let url = start_rs(|url| {
        rs_config(url, auth_server.issuer()).with_dpop(DpopConfig {
            policy: DpopPolicy::Required,
            replay_capacity: 1000,
            replay_per_principal: SHARE,
            ..DpopConfig::default()
        })
    })
    .await;
    let aud = format!("{url}/mcp");
    let bound_to = |sub: &str, key: &TestKey| {
        as1.sign(&edit(&auth_server.claims(sub, &aud, "mcp:tools"), |c| {
            c.insert("cnf".into(), json!({"jkt": thumbprint(key)}));
        }))
    };
    let mallory = bound_to("mallory", &mallory_key);
    let mallory_second = bound_to("mallory", &mallory_second_key);
    let alice = bound_to("alice", &alice_key);
    let request = |token: &str, key: &TestKey| {
        let proof = proof(key, header(key), &proof_claims(&url, "/mcp", "POST", token));
        vec![("authorization", format!("DPoP {token}")), ("dpop", proof)]
    };

    // Mallory floods, all at once.
    let flood = (0..FLOOD).map(|_| {
        let url = url.clone();
        let headers = request(&mallory, &mallory_key);
        tokio::spawn(async move { post_mcp(&url, "/mcp", &headers).await })
    });
    let replies = futures::future::join_all(flood).await;
    let mut served = 0;
    let mut over = 0;
    for reply in replies {
        let reply = reply.unwrap();
        match reply.status {
            200 => served += 1,
            429 => {
                over += 1;
                assert!(
                    reply.www_authenticate.is_empty(),
                    "no challenge: {}",
                    reply.www_authenticate
                );
                // `headers` is the header map's `Debug`: `{"name": "value", ...}`.
                let retry_after: u64 = reply
                    .headers
                    .split_once("\"retry-after\": \"")
                    .and_then(|(_, rest)| rest.split_once('"'))
                    .unwrap_or_else(|| panic!("Retry-After in {}", reply.headers))
                    .0
                    .parse()
                    .unwrap();
                // Until the oldest proofs leave: within the window after their iat.
                assert!((1..=600).contains(&retry_after), "{retry_after}");
                let body: Value = serde_json::from_str(&reply.body).unwrap();
                assert_eq!(body["error"], "too_many_proofs");
            }
            other => panic!("flood: status {other}, body {}", reply.body),
        }
    }
    assert_eq!((served, over), (SHARE, FLOOD - SHARE));

    // A second key bound to the same principal shares the same quota.
    let reply = post_mcp(&url, "/mcp", &request(&mallory_second, &mallory_second_key)).await;
    assert_eq!(reply.status, 429, "second key of the same principal");

    // Alice is served for her whole share, while Mallory is still refused.
    let mut last = Vec::new();
    for n in 0..SHARE {
        last = request(&alice, &alice_key);
        let reply = post_mcp(&url, "/mcp", &last).await;
        assert_eq!(reply.status, 200, "alice, request {n}: {}", reply.body);
    }
    let reply = post_mcp(&url, "/mcp", &request(&mallory, &mallory_key)).await;
    assert_eq!(reply.status, 429, "mallory, after alice");
    let reply = post_mcp(&url, "/mcp", &request(&alice, &alice_key)).await;
    assert_eq!(reply.status, 429, "alice, past her share");

    // A replayed proof is refused as a replay, share or not.
    let reply = post_mcp(&url, "/mcp", &last).await;
    assert_eq!(reply.status, 401, "replay: {}", reply.body);
    let body: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(body["error"], "invalid_dpop_proof");
}
