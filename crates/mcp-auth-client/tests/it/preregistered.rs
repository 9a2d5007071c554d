//! Pre-registered credentials are bound to one authorization server: `--client-issuer`,
//! else the first one they are used with (recorded in the cache). A server that names
//! another authorization server gets nothing: no authorization request, no token
//! request, no secret.

use mcp_auth_client::ClientError;
use mcp_auth_client::cache::Cache;
use mcp_auth_proto::ClientSecret;

use testkit::client_side::{ClientSideConfig, ClientSideServer};

use crate::support::{config, options, session, text};

const SECRET: &str = "s3cr3t-of-the-pre-registered-client";

/// Options of a confidential pre-registered client for `server`.
fn confidential(server: &str, issuer: Option<&str>) -> mcp_auth_client::ConnectionOptions {
    let mut o = options(server);
    o.authorize.client.client_id = Some("mcp-client".into());
    o.authorize.client.client_secret = Some(ClientSecret::new(SECRET));
    o.authorize.client.client_issuer = issuer.map(str::to_owned);
    o
}

/// A server whose metadata names `as_issuer` as its authorization server.
async fn server_naming(as_issuer: &str) -> ClientSideServer {
    ClientSideServer::start(ClientSideConfig {
        prm_authorization_server: Some(as_issuer.to_owned()),
        ..config()
    })
    .await
}

fn assert_untouched(evil: &ClientSideServer) {
    assert_eq!(evil.count("authorize"), 0, "{:?}", evil.log());
    assert_eq!(evil.count("token"), 0, "{:?}", evil.log());
}

#[tokio::test]
async fn with_client_issuer_the_credentials_go_nowhere_else() {
    let good = ClientSideServer::start(config()).await;
    let evil_as = ClientSideServer::start(config()).await;
    let evil = server_naming(&evil_as.issuer()).await;
    let dir = tempfile::tempdir().unwrap();

    let (mut s, buf) = session(
        confidential(&evil.mcp_url(), Some(&good.issuer())),
        dir.path(),
    );
    let err = s.connect().await.unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, ClientError::ClientIssuerMismatch { .. }),
        "{msg}"
    );
    assert!(
        msg.contains(&good.issuer()) && msg.contains(&evil_as.issuer()),
        "{msg}"
    );
    assert!(msg.contains("--client-issuer"), "{msg}");
    assert!(!msg.contains(SECRET) && !text(&buf).contains(SECRET));
    assert_untouched(&evil_as);

    // The same client against the server whose authorization server it belongs to.
    let (mut s, buf) = session(
        confidential(&good.mcp_url(), Some(&good.issuer())),
        dir.path(),
    );
    s.connect()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", text(&buf)));
    assert_eq!(good.count("token grant=authorization_code"), 1);
    assert!(text(&buf).contains("(--client-issuer)"), "{}", text(&buf));
}

#[tokio::test]
async fn without_client_issuer_the_first_use_binds_them() {
    let good = ClientSideServer::start(config()).await;
    let evil_as = ClientSideServer::start(config()).await;
    let evil = server_naming(&evil_as.issuer()).await;
    let dir = tempfile::tempdir().unwrap();

    let (mut s, buf) = session(confidential(&good.mcp_url(), None), dir.path());
    s.connect()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", text(&buf)));
    assert!(
        text(&buf).contains(&format!(
            "first use of the client id mcp-client: binding it to {}",
            good.issuer()
        )),
        "{}",
        text(&buf)
    );
    let binding = Cache::new(dir.path())
        .load_binding("mcp-client")
        .unwrap()
        .unwrap();
    assert_eq!(binding.issuer, good.issuer());

    // A later run against a server naming another authorization server: refused.
    let (mut s, buf) = session(confidential(&evil.mcp_url(), None), dir.path());
    let err = s.connect().await.unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, ClientError::ClientIssuerMismatch { .. }),
        "{msg}"
    );
    assert!(
        msg.contains(&good.issuer()) && msg.contains(&evil_as.issuer()),
        "{msg}"
    );
    assert!(msg.contains("first use"), "{msg}");
    assert!(!text(&buf).contains(SECRET));
    assert_untouched(&evil_as);

    // Binding again on purpose: --client-issuer replaces the recorded binding, and the
    // credentials go to the authorization server named (this mock's resource server
    // then refuses tokens from another mock, which does not matter here).
    let (mut s, _) = session(
        confidential(&evil.mcp_url(), Some(&evil_as.issuer())),
        dir.path(),
    );
    let _ = s.connect().await;
    assert!(evil_as.count("token grant=authorization_code") > 0);
    assert_eq!(
        Cache::new(dir.path())
            .load_binding("mcp-client")
            .unwrap()
            .unwrap()
            .issuer,
        evil_as.issuer()
    );
}

#[tokio::test]
async fn a_public_client_id_is_bound_too() {
    // Sending even a public client id to another authorization server opens the mix-up
    // attack (RFC 9700 §4.4): its codes could be redeemed where they were not issued.
    let good = ClientSideServer::start(config()).await;
    let evil_as = ClientSideServer::start(config()).await;
    let evil = server_naming(&evil_as.issuer()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(&good.mcp_url());
    o.authorize.client.client_id = Some("mcp-client".into());
    let (mut s, _) = session(o.clone(), dir.path());
    s.connect().await.unwrap();
    o.server_url = evil.mcp_url().parse().unwrap();
    let (mut s, _) = session(o, dir.path());
    let err = s.connect().await.unwrap_err();
    assert!(
        matches!(err, ClientError::ClientIssuerMismatch { .. }),
        "{err}"
    );
    assert_untouched(&evil_as);
}
