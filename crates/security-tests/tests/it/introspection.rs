//! The introspection rows of the matrix: a resource server verifying tokens through an
//! RFC 7662 endpoint (a real one on 127.0.0.1, from testkit) meets an inactive token, a token
//! for another audience, a refresh token the endpoint calls active, an endpoint that
//! is down, one that is slow, and one that answers garbage. Each row states the status
//! and challenge, bounds the time taken, and proves that neither the token nor the
//! server's client secret reached the logs or the response.

use std::time::{Duration, Instant};

use mcp_auth_proto::{challenge::BearerChallenge, secret::ClientSecret};
use mcp_resource_server::config::IntrospectionSettings;
use serde_json::json;
use testkit::IntrospectionEndpoint;
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
    let endpoint = IntrospectionEndpoint::start(CLIENT_ID, CLIENT_SECRET).await;
    let issuer = endpoint.issuer().to_string();
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_url = format!(
        "http://{}/dex/token/introspect",
        closed.local_addr().unwrap()
    );
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
    let url = start(endpoint.url().to_string()).await;
    let down_url = start(closed_url).await;
    let answer = |aud: &str, token_use: &str| {
        json!({
            "active": true, "sub": "alice", "aud": aud, "iss": issuer,
            "exp": now() + 300, "scope": "mcp:tools", "client_id": "mcp-client",
            "token_use": token_use
        })
    };
    let mcp = format!("{url}/mcp");
    endpoint.answer("opaque-valid-4d1c7be0a2", answer(&mcp, "access_token"));
    endpoint.answer(
        "opaque-other-aud-93b2f1c4",
        answer("https://other.example/mcp", "access_token"),
    );
    endpoint.answer("opaque-refresh-5e8d2a71", answer(&mcp, "refresh_token"));
    let mut revoked = answer(&mcp, "access_token");
    revoked["active"] = json!(false);
    endpoint.answer("opaque-revoked-0b6e9f35", revoked);

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
        endpoint.set_delay(if row.behaviour == Behaviour::Slow {
            Duration::from_secs(30)
        } else {
            Duration::ZERO
        });
        endpoint.set_garbage(row.behaviour == Behaviour::Garbage);
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
        endpoint.set_delay(Duration::ZERO);
        endpoint.set_garbage(false);
    }
}
