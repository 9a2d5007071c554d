//! The Dex topologies wired as the orchestrator wires them, in-process on ephemeral
//! ports: dev-idp in Dex mode, the static metadata server, the resource server with the
//! orchestrator's flags, and the flow walked by hand as a spec-following client would:
//! 401 challenge → PRM → authorization server metadata → authorize (auto-login) → token →
//! MCP with the bearer token; `admin_status` answers 403 insufficient_scope.

use clap::Parser as _;
use demo::cli::{Cli, RunArgs};
use demo::orchestrate::{Topology, rs_args, static_dir};
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use url::Url;

struct Running {
    topology: Topology,
    http: reqwest::Client,
    _work: TempDir,
}

struct TempDir(std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn start(discovery: &str) -> Running {
    let idp_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let static_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rs_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = |l: &TcpListener| l.local_addr().unwrap().port().to_string();
    let args: RunArgs = Cli::parse_from([
        "demo",
        "--headless",
        "--discovery",
        discovery,
        "--idp-port",
        &port(&idp_l),
        "--static-port",
        &port(&static_l),
        "--rs-port",
        &port(&rs_l),
    ])
    .run;
    let topology = Topology::new(&args);

    let dex = dev_idp::DexConfig::load(&args.config).unwrap();
    let idp = dev_idp::IdpConfig::from_dex(dex)
        .unwrap()
        .with_issuer(&topology.issuer)
        .unwrap()
        .with_auto_login("alice@example.com")
        .unwrap();
    tokio::spawn(dev_idp::serve(idp, idp_l));

    let work = std::env::temp_dir().join(format!(
        "demo-topology-{}-{}",
        std::process::id(),
        args.static_port
    ));
    let dir = static_dir(&args, &topology, &work).unwrap();
    tokio::spawn(async move {
        demo::static_server::serve(&dir, static_l, std::future::pending()).await
    });

    let rs = resource_server::cli::Cli::parse_from(
        std::iter::once("resource-server".to_owned())
            .chain(rs_args(&args, &topology).into_iter().skip(1)),
    );
    let config = rs.to_config().unwrap();
    tokio::spawn(resource_server::serve(config, rs_l));

    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    Running {
        topology,
        http,
        _work: TempDir(work),
    }
}

fn param<'a>(challenge: &'a str, name: &str) -> Option<&'a str> {
    let start = challenge.find(&format!("{name}=\""))? + name.len() + 2;
    let end = challenge[start..].find('"')? + start;
    Some(&challenge[start..end])
}

async fn mcp(r: &Running, token: &str, session: Option<&str>, body: Value) -> reqwest::Response {
    let mut request = r
        .http
        .post(&r.topology.mcp_url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&body);
    if let Some(session) = session {
        request = request
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", "2025-06-18");
    }
    request.send().await.unwrap()
}

async fn walk(discovery: &str, expected_as: impl Fn(&Topology) -> String) {
    let r = start(discovery).await;
    let t = &r.topology;

    // 1. No token: 401 with the PRM URL.
    let unauthorized = r
        .http
        .post(&t.mcp_url)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), StatusCode::UNAUTHORIZED);
    let challenge = unauthorized.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    let prm_url = param(&challenge, "resource_metadata")
        .expect("resource_metadata")
        .to_owned();

    // 2. PRM names the authorization server and Dex-acceptable scopes.
    let prm: Value = r
        .http
        .get(&prm_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(prm["resource"], t.mcp_url);
    let authorization_server = prm["authorization_servers"][0].as_str().unwrap().to_owned();
    assert_eq!(authorization_server, expected_as(t));
    let scope = prm["scopes_supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect::<Vec<_>>()
        .join(" ");

    // 3. Authorization server metadata, where this topology publishes it.
    let metadata_url = if discovery == "static" {
        format!("{authorization_server}/.well-known/oauth-authorization-server")
    } else {
        format!("{authorization_server}/.well-known/openid-configuration")
    };
    let metadata = r.http.get(&metadata_url).send().await.unwrap();
    assert_eq!(metadata.status(), StatusCode::OK, "{metadata_url}");
    let metadata: Value = serde_json::from_slice(&metadata.bytes().await.unwrap()).unwrap();
    assert_eq!(metadata["issuer"], authorization_server);
    assert!(
        metadata["code_challenge_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("S256"))
    );

    // 4. Authorize (auto-login) with S256 and the PRM scopes.
    let verifier = "v".repeat(64);
    let challenge_value = {
        use base64::Engine as _;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    };
    let redirect = "http://127.0.0.1:45678/callback";
    let mut authorize = Url::parse(metadata["authorization_endpoint"].as_str().unwrap()).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("client_id", "mcp-client")
        .append_pair("redirect_uri", redirect)
        .append_pair("response_type", "code")
        .append_pair("scope", &scope)
        .append_pair("state", "st")
        .append_pair("code_challenge", &challenge_value)
        .append_pair("code_challenge_method", "S256")
        .append_pair("resource", &t.mcp_url);
    // Dex's hops, as dev-idp mirrors them: /auth -> /auth/local (a relative Location)
    // -> the redirect URI.
    let location = testkit::http::follow_redirects(&r.http, authorize, redirect, 5)
        .await
        .unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap_or_else(|| panic!("{location}"))
        .1
        .into_owned();

    // 5. Token.
    let token: Value = r
        .http
        .post(metadata["token_endpoint"].as_str().unwrap())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect),
            ("client_id", "mcp-client"),
            ("code_verifier", verifier.as_str()),
            ("resource", t.mcp_url.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = token["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{token}"));

    // 6. MCP with the token.
    let init = mcp(
        &r,
        access,
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "topology-test", "version": "0"}}}),
    )
    .await;
    assert_eq!(init.status(), StatusCode::OK);
    let session = init
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let _ = init.text().await;
    let notified = mcp(
        &r,
        access,
        session.as_deref(),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert!(notified.status().is_success());
    let call = mcp(
        &r,
        access,
        session.as_deref(),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "calculator", "arguments": {"operation": "multiply", "a": 6, "b": 7}}}),
    )
    .await;
    assert_eq!(call.status(), StatusCode::OK);
    assert!(call.text().await.unwrap().contains("42"));

    // 7. admin_status needs mcp:admin, which Dex cannot grant.
    let admin = mcp(
        &r,
        access,
        session.as_deref(),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
            "name": "admin_status", "arguments": {}}}),
    )
    .await;
    assert_eq!(admin.status(), StatusCode::FORBIDDEN);
    let challenge = admin.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
    assert!(challenge.contains("mcp:admin"), "{challenge}");
}

#[tokio::test]
async fn static_metadata_topology() {
    walk("static", |t| t.static_url.clone()).await;
}

#[tokio::test]
async fn oidc_discovery_topology() {
    walk("oidc", |t| t.issuer.clone()).await;
}
