//! Token introspection (RFC 7662) against a real introspection endpoint on 127.0.0.1:
//! opaque tokens accepted and cached, `active: false` and a wrong `aud` refused with
//! 401, revocation seen once the cache ceiling passes, and an endpoint that is down,
//! slow or refusing the server's credentials answered 503 without hanging.

use std::time::{Duration, Instant};

use mcp_auth_proto::secret::ClientSecret;
use mcp_resource_server::config::IntrospectionSettings;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::fixture::{call, now, rpc, start_rs, test_config};
use testkit::IntrospectionEndpoint;

const CLIENT_ID: &str = "mcp-resource-server";
const CLIENT_SECRET: &str = "introspection-secret";

async fn start_endpoint() -> IntrospectionEndpoint {
    IntrospectionEndpoint::start(CLIENT_ID, CLIENT_SECRET).await
}

fn settings(endpoint: &str, secret: &str) -> IntrospectionSettings {
    let mut settings = IntrospectionSettings::new(endpoint, CLIENT_ID, ClientSecret::new(secret));
    settings.timeout = Duration::from_millis(500);
    settings
}

async fn server(issuer: &str, settings: IntrospectionSettings) -> String {
    let issuer = issuer.to_string();
    start_rs(move |url| test_config(url, &issuer).with_introspection(settings)).await
}

fn list() -> Value {
    json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
}

#[tokio::test]
async fn an_opaque_token_is_introspected_once_then_cached() {
    let endpoint = start_endpoint().await;
    let url = server(endpoint.issuer(), settings(endpoint.url(), CLIENT_SECRET)).await;
    let token = "opaque-token-0123456789abcdef";
    endpoint.issue(token, &format!("{url}/mcp"), "mcp:tools");

    let init = rpc(&url, Some(token), None, crate::fixture::initialize()).await;
    assert_eq!(init.status, 200, "{:?}", init.body);
    let session = init.session.unwrap();
    let whoami = rpc(
        &url,
        Some(token),
        Some(&session),
        call(3, "whoami", json!({})),
    )
    .await;
    let claims = &whoami.body.unwrap()["result"]["structuredContent"];
    assert_eq!(claims["subject"], "alice");
    assert_eq!(claims["token_kind"], "introspected");
    assert_eq!(claims["profile"]["email"], "alice@example.com");
    assert_eq!(endpoint.calls(), 1, "later requests use the cached answer");

    // Scopes come from the answer: admin_status needs mcp:admin.
    let admin = rpc(
        &url,
        Some(token),
        Some(&session),
        call(4, "admin_status", json!({})),
    )
    .await;
    assert_eq!(admin.status, 403);
    assert!(admin.www_authenticate.contains("insufficient_scope"));
}

#[tokio::test]
async fn inactive_wrong_audience_and_refresh_tokens_get_401_invalid_token() {
    let endpoint = start_endpoint().await;
    let url = server(endpoint.issuer(), settings(endpoint.url(), CLIENT_SECRET)).await;

    let unknown = rpc(&url, Some("never-issued-token"), None, list()).await;
    assert_eq!(unknown.status, 401);
    assert!(unknown.www_authenticate.contains("error=\"invalid_token\""));
    assert!(unknown.www_authenticate.contains("resource_metadata="));

    endpoint.issue(
        "for-another-resource",
        "https://other.example/mcp",
        "mcp:tools",
    );
    let other = rpc(&url, Some("for-another-resource"), None, list()).await;
    assert_eq!(other.status, 401);
    assert!(
        other
            .www_authenticate
            .contains("not issued for this resource"),
        "{}",
        other.www_authenticate
    );

    endpoint.issue("a-refresh-token", &format!("{url}/mcp"), "mcp:tools");
    endpoint.edit("a-refresh-token", |answer| {
        answer["token_use"] = json!("refresh_token");
    });
    let refresh = rpc(&url, Some("a-refresh-token"), None, list()).await;
    assert_eq!(
        refresh.status, 401,
        "Dex says refresh tokens are active too"
    );
}

#[tokio::test]
async fn a_revoked_token_is_refused_once_the_cache_ceiling_passes() {
    let endpoint = start_endpoint().await;
    let mut settings = settings(endpoint.url(), CLIENT_SECRET);
    settings.cache_ceiling = Duration::from_secs(1);
    let url = server(endpoint.issuer(), settings).await;
    let token = "soon-revoked-token";
    endpoint.issue(token, &format!("{url}/mcp"), "mcp:tools");
    let init = rpc(&url, Some(token), None, crate::fixture::initialize()).await;
    assert_eq!(init.status, 200);
    endpoint.revoke(token);
    let cached = rpc(&url, Some(token), None, crate::fixture::initialize()).await;
    assert_eq!(
        cached.status, 200,
        "within the ceiling the cached answer holds"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let refused = rpc(&url, Some(token), None, crate::fixture::initialize()).await;
    assert_eq!(
        refused.status, 401,
        "past the ceiling the revocation is seen"
    );
    assert_eq!(endpoint.calls(), 2);
}

#[tokio::test]
async fn an_endpoint_that_is_down_slow_or_refusing_us_means_503_in_bounded_time() {
    // Down: a port nothing listens on.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_url = format!("http://{}/introspect", closed.local_addr().unwrap());
    drop(closed);
    let endpoint = start_endpoint().await;
    let url = server(endpoint.issuer(), settings(&closed_url, CLIENT_SECRET)).await;
    let started = Instant::now();
    let down = rpc(&url, Some("any-token"), None, list()).await;
    assert_eq!(down.status, 503);
    assert!(started.elapsed() < Duration::from_secs(2));

    // Slow: the endpoint takes 5 s, the timeout is 500 ms.
    let url = server(endpoint.issuer(), settings(endpoint.url(), CLIENT_SECRET)).await;
    endpoint.issue("slow-token", &format!("{url}/mcp"), "mcp:tools");
    endpoint.set_delay(Duration::from_secs(5));
    let started = Instant::now();
    let slow = rpc(&url, Some("slow-token"), None, list()).await;
    assert_eq!(slow.status, 503);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(2),
        "{took:?}"
    );
    endpoint.set_delay(Duration::ZERO);

    // Our own credentials refused by the endpoint: a server-side fault, not the token's.
    let url = server(endpoint.issuer(), settings(endpoint.url(), "wrong-secret")).await;
    endpoint.issue("good-token", &format!("{url}/mcp"), "mcp:tools");
    let refused = rpc(&url, Some("good-token"), None, list()).await;
    assert_eq!(refused.status, 503);
    assert!(refused.www_authenticate.is_empty());
}

/// A DPoP proof (RFC 9449 §4.2) for `POST {url}/mcp` and `token`, signed by `key`.
fn dpop_proof(key: &crate::fixture::TestKey, url: &str, token: &str, jti: &str) -> String {
    key.sign_dpop_proof(&json!({
        "jti": jti, "htm": "POST", "htu": format!("{url}/mcp"), "iat": now(),
        "ath": mcp_resource_server::auth::dpop::access_token_hash(token),
    }))
}

fn thumbprint(key: &crate::fixture::TestKey) -> String {
    key.thumbprint()
}

/// An opaque DPoP-bound token: the binding is known only from the introspection answer's
/// `cnf.jkt` (RFC 9449 §6.2), and the proof's key must match it.
#[tokio::test]
async fn a_dpop_bound_opaque_token_needs_a_proof_by_the_key_the_answer_names() {
    use mcp_resource_server::auth::{DpopConfig, DpopPolicy};
    let endpoint = start_endpoint().await;
    let issuer = endpoint.issuer().to_string();
    let settings = settings(endpoint.url(), CLIENT_SECRET);
    let url = start_rs(move |url| {
        test_config(url, &issuer)
            .with_introspection(settings)
            .with_dpop(DpopConfig {
                policy: DpopPolicy::Allowed,
                ..DpopConfig::default()
            })
    })
    .await;
    let client_key = crate::fixture::TestKey::ec();
    let other_key = crate::fixture::TestKey::ed();
    let token = "opaque-dpop-bound-token-0123456789";
    endpoint.issue(token, &format!("{url}/mcp"), "mcp:tools");
    endpoint.edit(token, |answer| {
        answer["cnf"] = json!({"jkt": thumbprint(&client_key)});
    });
    let dpop = |proof: &str| {
        vec![
            ("authorization", format!("DPoP {token}")),
            ("dpop", proof.to_string()),
        ]
    };
    let send = |headers: Vec<(&'static str, String)>| {
        let url = url.clone();
        async move {
            let extra: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            crate::fixture::rpc_with(&url, None, None, crate::fixture::initialize(), &extra).await
        }
    };

    let good = send(dpop(&dpop_proof(&client_key, &url, token, "jti-1"))).await;
    assert_eq!(
        good.status, 200,
        "{:?} {}",
        good.body, good.www_authenticate
    );

    // The same token with a valid proof by another key: the answer's jkt does not match.
    let wrong_key = send(dpop(&dpop_proof(&other_key, &url, token, "jti-2"))).await;
    assert_eq!(wrong_key.status, 401);
    assert!(
        wrong_key.www_authenticate.contains("invalid_dpop_proof"),
        "{}",
        wrong_key.www_authenticate
    );

    // The same proof again: a replay.
    let replayed = send(dpop(&dpop_proof(&client_key, &url, token, "jti-1"))).await;
    assert_eq!(replayed.status, 401, "{}", replayed.www_authenticate);
    assert!(replayed.www_authenticate.contains("invalid_dpop_proof"));

    // The bound token presented as a bearer token: a downgrade, refused.
    let bearer = rpc(&url, Some(token), None, crate::fixture::initialize()).await;
    assert_eq!(bearer.status, 401);
    assert!(
        bearer.www_authenticate.contains("invalid_token"),
        "{}",
        bearer.www_authenticate
    );

    // A fresh proof by the right key still works, from the cached answer.
    let again = send(dpop(&dpop_proof(&client_key, &url, token, "jti-3"))).await;
    assert_eq!(again.status, 200, "{}", again.www_authenticate);
    assert_eq!(endpoint.calls(), 1, "one introspection, then the cache");
}

/// No client id configured: the server sends no client authentication (Dex's endpoint
/// takes none), and the answer is used as usual.
#[tokio::test]
async fn without_a_client_id_no_client_authentication_is_sent() {
    let endpoint = start_endpoint().await;
    endpoint.set_no_client_auth(true);
    let url = server(endpoint.issuer(), settings_without_client(endpoint.url())).await;
    endpoint.issue("opaque-no-client-auth", &format!("{url}/mcp"), "mcp:tools");
    let init = rpc(
        &url,
        Some("opaque-no-client-auth"),
        None,
        crate::fixture::initialize(),
    )
    .await;
    assert_eq!(init.status, 200, "{}", init.www_authenticate);
    assert_eq!(endpoint.calls(), 1);
}

fn settings_without_client(endpoint: &str) -> IntrospectionSettings {
    let mut settings = IntrospectionSettings::new(endpoint, "", ClientSecret::new(""));
    settings.timeout = Duration::from_millis(500);
    settings
}
