//! Failures end with one clear error, make no authorization they should not, and leave
//! the token cache exactly as it was.

use mcp_auth_client::ClientError;
use mcp_auth_client::cache::{Cache, TokenSet, now};
use mcp_auth_client::registration::{ClientSource, StoredClient, TokenAuthMethod};
use mcp_auth_proto::{AccessToken, RefreshToken};

use testkit::client_side::{Break, ClientSideConfig, ClientSideServer};

use crate::support::{assert_no_secrets, config, files, options, session, text};

/// Seeds the cache with tokens the mock does not know (so they get refused, the refresh
/// fails, and a new authorization starts), runs a connect, and checks the cache is intact.
async fn fails_and_keeps_cache(
    config: ClientSideConfig,
) -> (ClientError, ClientSideServer, String) {
    let mock = ClientSideServer::start(config).await;
    let dir = tempfile::tempdir().unwrap();
    Cache::new(dir.path())
        .save_tokens(&TokenSet {
            server: mock.mcp_url(),
            resource: mock.mcp_url(),
            issuer: mock.issuer(),
            token_endpoint: format!("{}/token", mock.issuer()),
            client: StoredClient {
                client_id: "seeded".into(),
                client_secret: None,
                auth_method: TokenAuthMethod::None,
                source: ClientSource::Dynamic,
                redirect_uri: None,
            },
            access_token: AccessToken::new("stale-access"),
            token_type: "Bearer".into(),
            refresh_token: Some(RefreshToken::new("stale-refresh")),
            scope: Some("mcp:tools".into()),
            expires_at: Some(now() + 3600),
            obtained_at: now(),
        })
        .unwrap();
    let before = files(dir.path());
    let (mut s, buf) = session(options(&mock.mcp_url()), dir.path());
    let err = s.connect().await.unwrap_err();
    assert_eq!(files(dir.path()), before, "the cache changed");
    let trace = text(&buf);
    assert_no_secrets(&trace);
    assert!(!trace.contains("stale-access") && !err.to_string().contains("stale"));
    (err, mock, trace)
}

#[tokio::test]
async fn state_mismatch() {
    let (err, mock, _) = fails_and_keeps_cache(config().with(Break::WrongState)).await;
    assert!(matches!(err, ClientError::StateMismatch), "{err}");
    assert_eq!(mock.count("token grant=authorization_code"), 0);
}

#[tokio::test]
async fn metadata_issuer_mismatch() {
    let (err, mock, _) = fails_and_keeps_cache(config().with(Break::IssuerMismatch)).await;
    assert!(matches!(err, ClientError::IssuerMismatch { .. }), "{err}");
    assert_eq!(mock.count("authorize"), 0);
}

#[tokio::test]
async fn callback_issuer_mismatch() {
    let (err, mock, _) = fails_and_keeps_cache(config().with(Break::IssWrong)).await;
    assert!(
        matches!(err, ClientError::CallbackIssuerMismatch { .. }),
        "{err}"
    );
    assert_eq!(mock.count("token grant=authorization_code"), 0);
}

#[tokio::test]
async fn callback_without_promised_iss() {
    let (err, _, _) = fails_and_keeps_cache(config().with(Break::IssAbsent)).await;
    assert!(
        matches!(err, ClientError::CallbackIssuerMismatch { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn no_s256() {
    let (err, mock, trace) = fails_and_keeps_cache(config().with(Break::NoS256)).await;
    assert!(matches!(err, ClientError::NoPkceS256 { .. }), "{err}");
    assert_eq!(mock.count("authorize"), 0);
    assert_eq!(mock.count("register"), 0);
    assert!(trace.contains("no S256"), "{trace}");
}

#[tokio::test]
async fn resource_mismatch() {
    let (err, mock, _) = fails_and_keeps_cache(config().with(Break::PrmWrongResource)).await;
    assert!(matches!(err, ClientError::ResourceMismatch { .. }), "{err}");
    assert_eq!(mock.count("authorize"), 0);
}

#[tokio::test]
async fn plain_http_authorization_server_off_loopback() {
    let (err, mock, _) = fails_and_keeps_cache(ClientSideConfig {
        prm_authorization_server: Some("http://as.example.com/tenant".into()),
        ..config()
    })
    .await;
    assert!(matches!(err, ClientError::InsecureEndpoint { .. }), "{err}");
    assert!(err.to_string().contains("http://as.example.com/tenant"));
    assert_eq!(mock.count("authorize"), 0);
}

#[tokio::test]
async fn authorization_server_error_in_callback() {
    let (err, _, _) = fails_and_keeps_cache(config().with(Break::CallbackError)).await;
    assert!(
        matches!(&err, ClientError::AuthorizationDenied { error, .. } if error == "access_denied"),
        "{err}"
    );
    assert!(err.to_string().contains("access_denied"));
}

#[tokio::test]
async fn headless_meets_a_login_page() {
    let (err, mock, _) = fails_and_keeps_cache(config().with(Break::LoginPage)).await;
    assert!(matches!(err, ClientError::Headless { .. }), "{err}");
    assert!(err.to_string().contains("wants a person"), "{err}");
    assert_eq!(mock.count("token grant=authorization_code"), 0);
}

#[tokio::test]
async fn unreachable_server() {
    // A port that was free a moment ago: nothing listens there now.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = session(options(&format!("http://127.0.0.1:{port}/mcp")), dir.path());
    let err = s.connect().await.unwrap_err();
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("cannot reach http://127.0.0.1:")
    );
    assert!(files(dir.path()).is_empty());
}
