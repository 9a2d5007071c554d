//! The introspection rows of the matrix: a resource server verifying tokens through an
//! RFC 7662 endpoint (a real one on 127.0.0.1, below) meets an inactive token, a token
//! for another audience, a refresh token the endpoint calls active, an endpoint that
//! is down, one that is slow, and one that answers garbage. Each row states the status
//! and challenge, bounds the time taken, and proves that neither the token nor the
//! server's client secret reached the logs or the response.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Form, Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use base64::{Engine, engine::general_purpose::STANDARD};
use mcp_auth_proto::{challenge::BearerChallenge, secret::ClientSecret};
use mcp_resource_server::config::IntrospectionSettings;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::support::{assert_not_leaked, logs, mcp_with_token, now, rs_config, start_rs};

const CLIENT_ID: &str = "mcp-resource-server";
const CLIENT_SECRET: &str = "introspection-client-secret-7f3a9c";
/// The per-exchange timeout of the resource servers below.
const TIMEOUT: Duration = Duration::from_millis(500);

/// How the endpoint behaves.
#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    Answer,
    Slow,
    Garbage,
}

#[derive(Clone)]
struct Endpoint {
    answers: Arc<Mutex<HashMap<String, Value>>>,
    behaviour: Arc<Mutex<Behaviour>>,
}

async fn introspect(
    State(endpoint): State<Endpoint>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let behaviour = *endpoint.behaviour.lock().unwrap();
    match behaviour {
        Behaviour::Slow => {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Behaviour::Garbage => return (StatusCode::OK, "<html>not json</html>").into_response(),
        Behaviour::Answer => {}
    }
    let expected = format!(
        "Basic {}",
        STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(expected.as_str())
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let answer = form
        .get("token")
        .and_then(|t| endpoint.answers.lock().unwrap().get(t).cloned())
        .unwrap_or_else(|| json!({"active": false}));
    Json(answer).into_response()
}

struct Row {
    name: &'static str,
    token: &'static str,
    behaviour: Behaviour,
    /// Point the resource server at a port nothing listens on.
    endpoint_down: bool,
    status: u16,
    /// `Some(code)`: a Bearer challenge with this error; `None`: no challenge.
    challenge: Option<&'static str>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_rows() {
    logs();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let issuer = format!("{base}/as");
    let endpoint = Endpoint {
        answers: Arc::default(),
        behaviour: Arc::new(Mutex::new(Behaviour::Answer)),
    };
    let app = Router::new()
        .route("/as/introspect", post(introspect))
        .with_state(endpoint.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_url = format!("http://{}/as/introspect", closed.local_addr().unwrap());
    drop(closed);

    let start = |endpoint_url: String| {
        let issuer = issuer.clone();
        start_rs(move |url| {
            let mut settings = IntrospectionSettings::new(
                endpoint_url,
                CLIENT_ID,
                ClientSecret::new(CLIENT_SECRET),
            );
            settings.timeout = TIMEOUT;
            rs_config(url, &issuer).with_introspection(settings)
        })
    };
    let url = start(format!("{base}/as/introspect")).await;
    let down_url = start(closed_url).await;
    let answer = |aud: &str, token_use: &str| {
        json!({
            "active": true, "sub": "alice", "aud": aud, "iss": issuer,
            "exp": now() + 300, "scope": "mcp:tools", "client_id": "mcp-client",
            "token_use": token_use
        })
    };
    {
        let mut answers = endpoint.answers.lock().unwrap();
        let mcp = format!("{url}/mcp");
        answers.insert(
            "opaque-valid-4d1c7be0a2".into(),
            answer(&mcp, "access_token"),
        );
        answers.insert(
            "opaque-other-aud-93b2f1c4".into(),
            answer("https://other.example/mcp", "access_token"),
        );
        answers.insert(
            "opaque-refresh-5e8d2a71".into(),
            answer(&mcp, "refresh_token"),
        );
        let mut revoked = answer(&mcp, "access_token");
        revoked["active"] = json!(false);
        answers.insert("opaque-revoked-0b6e9f35".into(), revoked);
    }

    let rows = [
        Row {
            name: "active opaque token",
            token: "opaque-valid-4d1c7be0a2",
            behaviour: Behaviour::Answer,
            endpoint_down: false,
            status: 200,
            challenge: None,
        },
        Row {
            name: "inactive (active: false)",
            token: "opaque-revoked-0b6e9f35",
            behaviour: Behaviour::Answer,
            endpoint_down: false,
            status: 401,
            challenge: Some("invalid_token"),
        },
        Row {
            name: "unknown to the endpoint",
            token: "opaque-never-issued-77c1",
            behaviour: Behaviour::Answer,
            endpoint_down: false,
            status: 401,
            challenge: Some("invalid_token"),
        },
        Row {
            name: "wrong audience in the introspection response",
            token: "opaque-other-aud-93b2f1c4",
            behaviour: Behaviour::Answer,
            endpoint_down: false,
            status: 401,
            challenge: Some("invalid_token"),
        },
        Row {
            name: "a refresh token the endpoint calls active",
            token: "opaque-refresh-5e8d2a71",
            behaviour: Behaviour::Answer,
            endpoint_down: false,
            status: 401,
            challenge: Some("invalid_token"),
        },
        Row {
            name: "endpoint down",
            token: "opaque-valid-4d1c7be0a2-down",
            behaviour: Behaviour::Answer,
            endpoint_down: true,
            status: 503,
            challenge: None,
        },
        Row {
            name: "endpoint slow (past the timeout)",
            token: "opaque-slow-2f9a61d3",
            behaviour: Behaviour::Slow,
            endpoint_down: false,
            status: 503,
            challenge: None,
        },
        Row {
            name: "endpoint answers garbage",
            token: "opaque-garbage-8a4e0c17",
            behaviour: Behaviour::Garbage,
            endpoint_down: false,
            status: 503,
            challenge: None,
        },
    ];
    for row in rows {
        *endpoint.behaviour.lock().unwrap() = row.behaviour;
        let target = if row.endpoint_down { &down_url } else { &url };
        let started = Instant::now();
        let reply = mcp_with_token(target, row.token).await;
        let took = started.elapsed();
        let name = row.name;
        assert_eq!(
            reply.status, row.status,
            "{name}: status; body {}",
            reply.body
        );
        assert!(
            took < TIMEOUT + Duration::from_millis(1500),
            "{name}: took {took:?}, the timeout is {TIMEOUT:?}"
        );
        match row.challenge {
            None => assert!(
                reply.www_authenticate.is_empty(),
                "{name}: unexpected challenge {}",
                reply.www_authenticate
            ),
            Some(code) => {
                let challenge = BearerChallenge::find([reply.www_authenticate.as_str()])
                    .unwrap_or_else(|| panic!("{name}: no Bearer challenge"));
                assert_eq!(
                    challenge
                        .error
                        .as_ref()
                        .map(|e| e.as_str().to_string())
                        .as_deref(),
                    Some(code),
                    "{name}: error code"
                );
                assert_eq!(
                    challenge.resource_metadata.as_deref(),
                    Some(format!("{target}/.well-known/oauth-protected-resource/mcp").as_str()),
                    "{name}: the challenge names the PRM"
                );
            }
        }
        for secret in [row.token, CLIENT_SECRET] {
            assert_not_leaked(secret, &[&reply.body, &reply.headers], name);
        }
        *endpoint.behaviour.lock().unwrap() = Behaviour::Answer;
    }
}
