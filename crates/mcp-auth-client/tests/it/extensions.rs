//! The authorization extensions against a server of their own on 127.0.0.1:0: an
//! authorization server and MCP endpoint that check what the client sends with an
//! independent verifier (jsonwebtoken's JWK import and RFC 7638 thumbprint, not the
//! client's code): DPoP proofs at the token endpoint and on every MCP request, nonces at
//! both, `private_key_jwt` assertions, and the JWT bearer grant's refusal.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mcp_auth_client::ClientError;
use mcp_auth_client::dpop::DpopPolicy;
use mcp_auth_client::grants::Grant;
use mcp_auth_client::grants::assertion::ClientKey;
use serde_json::{Value, json};

use crate::support::{files, options, session, text};

const CLIENT_ID: &str = "m2m-client";
const AS_NONCE: &str = "as-nonce-1";
const RS_NONCE: &str = "rs-nonce-1";

#[derive(Default)]
struct Inner {
    advertise_dpop: bool,
    require_nonce: bool,
    client_public_pem: Vec<u8>,
    /// Issue short-lived DPoP-bound tokens with a refresh token bound to the same key.
    refresh: bool,
    /// The MCP endpoint challenges with Bearer only (it does not accept DPoP).
    bearer_only: bool,
    refresh_tokens: HashMap<String, String>,
    /// The thumbprint each issued token is bound to.
    bound: HashMap<String, String>,
    jtis: HashSet<String>,
    log: Vec<String>,
    issued: usize,
}

#[derive(Clone)]
struct Lab {
    base: String,
    inner: Arc<Mutex<Inner>>,
}

impl Lab {
    async fn start(advertise_dpop: bool, require_nonce: bool, client_public_pem: Vec<u8>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let lab = Lab {
            base,
            inner: Arc::new(Mutex::new(Inner {
                advertise_dpop,
                require_nonce,
                client_public_pem,
                ..Inner::default()
            })),
        };
        let app = Router::new()
            .route("/.well-known/oauth-protected-resource/mcp", get(prm))
            .route("/.well-known/oauth-authorization-server", get(as_metadata))
            .route("/token", post(token))
            .route("/mcp", post(mcp))
            .with_state(lab.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        lab
    }

    fn log(&self) -> Vec<String> {
        self.inner.lock().unwrap().log.clone()
    }

    fn count(&self, prefix: &str) -> usize {
        self.log().iter().filter(|l| l.starts_with(prefix)).count()
    }
}

async fn prm(State(lab): State<Lab>) -> Response {
    axum::Json(
        json!({"resource": format!("{}/mcp", lab.base), "authorization_servers": [lab.base], "scopes_supported": ["mcp:tools"]}),
    )
    .into_response()
}

async fn as_metadata(State(lab): State<Lab>) -> Response {
    let mut md = json!({
        "issuer": lab.base,
        "authorization_endpoint": format!("{}/authorize", lab.base),
        "token_endpoint": format!("{}/token", lab.base),
        "grant_types_supported": ["client_credentials", "urn:ietf:params:oauth:grant-type:jwt-bearer", "refresh_token"],
        // Offered for people's sessions; grants without a person must not ask for it.
        "scopes_supported": ["mcp:tools", "offline_access"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "none"],
        "code_challenge_methods_supported": ["S256"],
    });
    if lab.inner.lock().unwrap().advertise_dpop {
        md["dpop_signing_alg_values_supported"] = json!(["ES256", "EdDSA"]);
    }
    axum::Json(md).into_response()
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, axum::Json(json!({"error": error}))).into_response()
}

/// Verifies a DPoP proof independently; returns its claims and the key's thumbprint.
fn verify_proof(proof: &str, htm: &str, htu: &str) -> Result<(Value, String), String> {
    let header = jsonwebtoken::decode_header(proof).map_err(|e| e.to_string())?;
    if header.typ.as_deref() != Some("dpop+jwt") {
        return Err("typ".into());
    }
    let jwk: Jwk = header.jwk.ok_or("no jwk")?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
    let mut v = Validation::new(header.alg);
    v.required_spec_claims.clear();
    v.validate_exp = false;
    v.validate_aud = false;
    let claims = jsonwebtoken::decode::<Value>(proof, &key, &v)
        .map_err(|e| e.to_string())?
        .claims;
    if claims["htm"] != htm || claims["htu"] != htu {
        return Err(format!("htm/htu {} {}", claims["htm"], claims["htu"]));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if claims["iat"]
        .as_u64()
        .is_none_or(|iat| iat.abs_diff(now) > 60)
    {
        return Err("iat".into());
    }
    let thumbprint = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|e| e.to_string())?;
    Ok((claims, thumbprint))
}

async fn token(
    State(lab): State<Lab>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let mut inner = lab.inner.lock().unwrap();
    let grant = f.get("grant_type").cloned().unwrap_or_default();
    inner.log.push(format!("token {grant}"));
    if let Some(scope) = f.get("scope") {
        inner.log.push(format!("scope {scope}"));
    }
    // The client's authentication: a private_key_jwt assertion, or none with client_id.
    if let Some(assertion) = f.get("client_assertion") {
        let key = DecodingKey::from_ec_pem(&inner.client_public_pem).unwrap();
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&[&lab.base]);
        v.set_issuer(&[CLIENT_ID]);
        match jsonwebtoken::decode::<Value>(assertion, &key, &v) {
            Ok(t) if t.claims["sub"] == CLIENT_ID => inner.log.push("assertion ok".into()),
            _ => return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client"),
        }
    } else if f.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer"
        && f.get("assertion").is_some_and(|a| a.starts_with("bad"))
    {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    let Some(proof) = headers.get("dpop").and_then(|v| v.to_str().ok()) else {
        inner.issued += 1;
        return axum::Json(
            json!({"access_token": format!("bearer-{}", inner.issued), "token_type": "Bearer"}),
        )
        .into_response();
    };
    let (claims, jkt) = match verify_proof(proof, "POST", &format!("{}/token", lab.base)) {
        Ok(v) => v,
        Err(e) => {
            inner.log.push(format!("bad proof: {e}"));
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_dpop_proof");
        }
    };
    if claims.get("ath").is_some() {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_dpop_proof");
    }
    if !inner
        .jtis
        .insert(claims["jti"].as_str().unwrap_or_default().to_owned())
    {
        inner.log.push("replayed jti".into());
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_dpop_proof");
    }
    if inner.require_nonce && claims["nonce"] != AS_NONCE {
        inner.log.push("token nonce challenge".into());
        return (
            StatusCode::BAD_REQUEST,
            [("DPoP-Nonce", AS_NONCE)],
            axum::Json(json!({"error": "use_dpop_nonce"})),
        )
            .into_response();
    }
    if grant == "refresh_token" {
        let rt = f.get("refresh_token").cloned().unwrap_or_default();
        if inner.refresh_tokens.get(&rt) != Some(&jkt) {
            inner.log.push("refresh with another key".into());
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
        }
        inner.log.push("refresh DPoP ok".into());
    }
    inner.issued += 1;
    let access = format!("dpop-bound-{}", inner.issued);
    inner.bound.insert(access.clone(), jkt.clone());
    inner.log.push("token issued DPoP".into());
    if inner.refresh {
        let rt = format!("rt-{}", inner.issued);
        inner.refresh_tokens.insert(rt.clone(), jkt);
        return axum::Json(json!({
            "access_token": access, "token_type": "DPoP", "expires_in": 1, "refresh_token": rt
        }))
        .into_response();
    }
    axum::Json(json!({"access_token": access, "token_type": "DPoP", "expires_in": 3600}))
        .into_response()
}

async fn mcp(State(lab): State<Lab>, headers: HeaderMap, body: String) -> Response {
    let mut inner = lab.inner.lock().unwrap();
    let prm = format!("{}/.well-known/oauth-protected-resource/mcp", lab.base);
    let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        let scheme = if inner.bearer_only {
            "Bearer"
        } else {
            "DPoP algs=\"ES256\","
        };
        return (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                format!("{scheme} resource_metadata=\"{prm}\""),
            )],
        )
            .into_response();
    };
    let msg: Value = serde_json::from_str(&body).unwrap_or_default();
    let method = msg["method"].as_str().unwrap_or("?").to_owned();
    if let Some(token) = auth.strip_prefix("DPoP ") {
        let Some(jkt) = inner.bound.get(token).cloned() else {
            inner.log.push(format!("mcp {method} unknown token"));
            return StatusCode::UNAUTHORIZED.into_response();
        };
        let proof = headers
            .get("dpop")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let checked = verify_proof(proof, "POST", &format!("{}/mcp", lab.base));
        let ok = match &checked {
            Ok((claims, thumbprint)) => {
                let ath = B64.encode(aws_lc_rs::digest::digest(
                    &aws_lc_rs::digest::SHA256,
                    token.as_bytes(),
                ));
                *thumbprint == jkt
                    && claims["ath"] == ath
                    && inner
                        .jtis
                        .insert(claims["jti"].as_str().unwrap_or_default().to_owned())
            }
            Err(_) => false,
        };
        if !ok {
            inner
                .log
                .push(format!("mcp {method} bad proof {checked:?}"));
            return StatusCode::UNAUTHORIZED.into_response();
        }
        if inner.require_nonce && checked.unwrap().0["nonce"] != RS_NONCE {
            inner.log.push(format!("mcp {method} nonce challenge"));
            return (
                StatusCode::UNAUTHORIZED,
                [
                    (
                        header::WWW_AUTHENTICATE.as_str(),
                        "DPoP error=\"use_dpop_nonce\"",
                    ),
                    ("DPoP-Nonce", RS_NONCE),
                ],
            )
                .into_response();
        }
        inner.log.push(format!("mcp {method} DPoP ok"));
    } else if inner.bound.contains_key(auth.trim_start_matches("Bearer ")) {
        // A DPoP-bound token presented as Bearer: a downgrade.
        inner.log.push(format!("mcp {method} downgrade"));
        return StatusCode::UNAUTHORIZED.into_response();
    } else {
        inner.log.push(format!("mcp {method} Bearer"));
    }
    let Some(id) = msg.get("id").cloned() else {
        return StatusCode::ACCEPTED.into_response();
    };
    let result = match method.as_str() {
        "initialize" => json!({
            "protocolVersion": "2025-11-25",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "extensions-lab", "version": "1"}
        }),
        "tools/list" => json!({"tools": [{"name": "ping", "inputSchema": {"type": "object"}}]}),
        _ => json!({"content": [{"type": "text", "text": "pong"}]}),
    };
    axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response()
}

/// A P-256 key pair: the private key as a PEM file for the client, the public key as PEM
/// for the server.
fn client_key_pair(dir: &std::path::Path) -> (std::path::PathBuf, Vec<u8>) {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::KeyPair;
    let pair = aws_lc_rs::signature::EcdsaKeyPair::generate(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
    )
    .unwrap();
    let pem = |label: &str, der: &[u8]| {
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            base64::engine::general_purpose::STANDARD.encode(der)
        )
    };
    let private = pem("PRIVATE KEY", pair.to_pkcs8v1().unwrap().as_ref());
    let public = pem("PUBLIC KEY", pair.public_key().as_der().unwrap().as_ref());
    let path = dir.join("client-key.pem");
    std::fs::write(&path, private).unwrap();
    (path, public.into_bytes())
}

#[tokio::test]
async fn client_credentials_with_private_key_jwt_and_dpop_nonces() {
    let keys = tempfile::tempdir().unwrap();
    let (key_path, public_pem) = client_key_pair(keys.path());
    let lab = Lab::start(true, true, public_pem).await;
    let cache = tempfile::tempdir().unwrap();
    let mut o = options(&format!("{}/mcp", lab.base));
    o.authorize.grant = Grant::ClientCredentials;
    o.authorize.client.client_id = Some(CLIENT_ID.into());
    o.authorize.client.client_key = Some(Arc::new(
        ClientKey::from_pem_file(&key_path, "ES256").unwrap(),
    ));
    let (mut s, buf) = session(o, cache.path());
    s.connect().await.unwrap();
    let tools = s.list_tools().await.unwrap();
    s.call_tool("ping", json!({})).await.unwrap();
    s.close().await;
    assert_eq!(tools.len(), 1);

    let log = lab.log();
    assert_eq!(lab.count("token client_credentials"), 2, "{log:?}");
    assert_eq!(lab.count("token nonce challenge"), 1, "{log:?}");
    // The scope asked for is the resource's; offline_access, which the authorization
    // server offers, is not asked for by a grant without a person.
    assert!(lab.count("scope ") > 0, "{log:?}");
    assert!(log.iter().all(|l| !l.contains("offline_access")), "{log:?}");
    assert_eq!(
        lab.count("assertion ok"),
        2,
        "a fresh assertion per request: {log:?}"
    );
    assert_eq!(lab.count("token issued DPoP"), 1, "{log:?}");
    // The first MCP request (whatever the wire's first method) meets the nonce challenge.
    let mcp_nonce = log
        .iter()
        .filter(|l| l.starts_with("mcp ") && l.ends_with("nonce challenge"))
        .count();
    assert_eq!(mcp_nonce, 1, "{log:?}");
    assert_eq!(lab.count("mcp initialize DPoP ok"), 1, "{log:?}");
    assert_eq!(lab.count("mcp tools/list DPoP ok"), 1, "{log:?}");
    assert_eq!(lab.count("mcp tools/call DPoP ok"), 1, "{log:?}");
    assert!(
        !log.iter()
            .any(|l| l.contains("bad") || l.contains("replayed") || l.contains("downgrade")),
        "{log:?}"
    );

    let trace = text(&buf);
    assert!(trace.contains("DPoP proof htm=POST"), "{trace}");
    assert!(trace.contains(&format!("nonce={RS_NONCE}")), "{trace}");
    assert!(
        !trace.contains("dpop-bound-1"),
        "no token in the trace:\n{trace}"
    );
    let key_files: Vec<_> = files(cache.path())
        .into_iter()
        .filter(|(p, _)| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("dpop-")
        })
        .collect();
    assert_eq!(key_files.len(), 1);
    let stored: Value = serde_json::from_slice(&key_files[0].1).unwrap();
    assert!(
        !trace.contains(stored["private_key"].as_str().unwrap()),
        "no key in the trace"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_files[0].0)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // A second run takes the cached DPoP-bound token and its key: no token request.
    let (mut again, _) = session(
        {
            let mut o = options(&format!("{}/mcp", lab.base));
            o.authorize.grant = Grant::ClientCredentials;
            o.authorize.client.client_id = Some(CLIENT_ID.into());
            o
        },
        cache.path(),
    );
    again.connect().await.unwrap();
    again.close().await;
    assert_eq!(lab.count("token client_credentials"), 2, "{:?}", lab.log());
    assert_eq!(lab.count("mcp initialize DPoP ok"), 2, "{:?}", lab.log());
}

#[tokio::test]
async fn dpop_always_is_refused_by_a_server_without_dpop() {
    let lab = Lab::start(false, false, Vec::new()).await;
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let jwt = dir.path().join("workload.jwt");
    std::fs::write(&jwt, "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ3In0.c2ln\n").unwrap();
    let mut o = options(&format!("{}/mcp", lab.base));
    o.authorize.grant = Grant::JwtBearer {
        assertion_file: jwt,
    };
    o.authorize.client.client_id = Some(CLIENT_ID.into());
    o.authorize.dpop = DpopPolicy::Always;
    let (mut s, _) = session(o, cache.path());
    let err = s.connect().await.unwrap_err();
    assert!(matches!(err, ClientError::Dpop(_)), "{err}");
    assert!(err.to_string().contains(&lab.base), "{err}");
    assert_eq!(lab.count("token"), 0, "{:?}", lab.log());
}

#[tokio::test]
async fn jwt_bearer_sends_the_assertion_and_a_refusal_is_not_retried() {
    let lab = Lab::start(false, false, Vec::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let jwt = dir.path().join("workload.jwt");
    let run = |file: std::path::PathBuf| {
        let mut o = options(&format!("{}/mcp", lab.base));
        o.authorize.grant = Grant::JwtBearer {
            assertion_file: file,
        };
        o.authorize.client.client_id = Some(CLIENT_ID.into());
        o
    };
    std::fs::write(&jwt, "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ3In0.c2ln").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let (mut s, _) = session(run(jwt.clone()), cache.path());
    s.connect().await.unwrap();
    s.close().await;
    assert_eq!(lab.count("mcp initialize Bearer"), 1, "{:?}", lab.log());

    std::fs::write(&jwt, "bad.eyJzdWIiOiJ3In0.c2ln").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let (mut s, _) = session(run(jwt.clone()), cache.path());
    let err = s.connect().await.unwrap_err();
    assert!(err.to_string().contains("invalid_grant"), "{err}");
    assert_eq!(
        lab.count("token urn:ietf:params:oauth:grant-type:jwt-bearer"),
        2,
        "one request per run, no retry after the refusal: {:?}",
        lab.log()
    );

    std::fs::write(&jwt, "not a jwt").unwrap();
    let (mut s, _) = session(run(jwt), tempfile::tempdir().unwrap().path());
    let err = s.connect().await.unwrap_err();
    assert!(err.to_string().contains("--assertion-file"), "{err}");
}

#[tokio::test]
async fn eddsa_proofs_and_a_refresh_proven_with_the_same_key() {
    let lab = Lab::start(true, false, Vec::new()).await;
    lab.inner.lock().unwrap().refresh = true;
    let dir = tempfile::tempdir().unwrap();
    let jwt = dir.path().join("workload.jwt");
    std::fs::write(&jwt, "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ3In0.c2ln").unwrap();
    let mut o = options(&format!("{}/mcp", lab.base));
    o.authorize.grant = Grant::JwtBearer {
        assertion_file: jwt,
    };
    o.authorize.client.client_id = Some(CLIENT_ID.into());
    o.authorize.dpop_alg = mcp_auth_client::dpop::DpopAlg::EdDsa;
    let cache = tempfile::tempdir().unwrap();
    let (mut s, buf) = session(o, cache.path());
    s.connect().await.unwrap();
    s.list_tools().await.unwrap();
    s.close().await;
    let log = lab.log();
    // The token expires within the refresh margin: every later operation refreshes first,
    // each refresh proven with the key the refresh token is bound to.
    assert!(lab.count("refresh DPoP ok") >= 1, "{log:?}");
    assert_eq!(lab.count("refresh with another key"), 0, "{log:?}");
    assert!(lab.count("mcp tools/list DPoP ok") == 1, "{log:?}");
    assert!(!log.iter().any(|l| l.contains("bad")), "{log:?}");
    let trace = text(&buf);
    assert!(trace.contains("EdDSA"), "{trace}");
    assert!(!trace.contains("rt-1"), "no refresh token in the trace");
}

#[tokio::test]
async fn a_bearer_only_resource_gets_bearer_tokens_unless_dpop_is_forced() {
    let lab = Lab::start(true, false, Vec::new()).await;
    lab.inner.lock().unwrap().bearer_only = true;
    let dir = tempfile::tempdir().unwrap();
    let jwt = dir.path().join("workload.jwt");
    std::fs::write(&jwt, "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ3In0.c2ln").unwrap();
    let mut o = options(&format!("{}/mcp", lab.base));
    o.authorize.grant = Grant::JwtBearer {
        assertion_file: jwt,
    };
    o.authorize.client.client_id = Some(CLIENT_ID.into());
    let cache = tempfile::tempdir().unwrap();
    let (mut s, buf) = session(o.clone(), cache.path());
    s.connect().await.unwrap();
    s.close().await;
    assert_eq!(lab.count("mcp initialize Bearer"), 1, "{:?}", lab.log());
    assert_eq!(lab.count("token issued DPoP"), 0, "{:?}", lab.log());
    assert!(text(&buf).contains("does not say it accepts DPoP-bound tokens"));

    o.authorize.dpop = DpopPolicy::Always;
    let cache = tempfile::tempdir().unwrap();
    let (mut s, _) = session(o, cache.path());
    s.connect().await.unwrap();
    s.close().await;
    assert_eq!(lab.count("token issued DPoP"), 1, "{:?}", lab.log());
    assert_eq!(lab.count("mcp initialize DPoP ok"), 1, "{:?}", lab.log());
}
