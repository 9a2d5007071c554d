//! The client as a confused deputy: it must not obtain, or send, a token made for
//! another resource on a server's say-so. Cross-client audience scopes (Dex's
//! `audience:server:client_id:<id>`) need `--allow-audience`; a JWT access token whose
//! `aud` names neither the server's resource nor an allowed audience is never sent,
//! whether it comes from the code exchange, a refresh or the cache.

use mcp_auth_client::ClientError;
use mcp_auth_client::audience::AudiencePolicy;
use mcp_auth_client::cache::{Cache, TokenSet, now};
use mcp_auth_client::registration::{ClientSource, StoredClient, TokenAuthMethod};
use mcp_auth_proto::{AccessToken, RefreshToken};

use testkit::client_side::{ClientSideConfig, ClientSideServer};

use crate::support::{assert_no_secrets, config, files, options, session, text};

/// A mock whose metadata asks for Dex's cross-client scope for `audience`.
async fn asking_for_audience(audience: &str) -> ClientSideServer {
    let scope = format!("audience:server:client_id:{audience}");
    ClientSideServer::start(ClientSideConfig {
        prm_scopes: vec!["openid".into(), scope.clone()],
        required_scope: Some(scope),
        as_scopes: vec![],
        jwt_audience: Some(vec![audience.into(), "mcp-client".into()]),
        ..config()
    })
    .await
}

fn allow(server: &str, audience: &str) -> AudiencePolicy {
    AudiencePolicy::new().with(format!("{server}={audience}").parse().unwrap())
}

/// Whether any bearer token was presented at the mock's `/mcp`.
fn token_reached_the_server(mock: &ClientSideServer) -> bool {
    !mock.presented().is_empty()
}

#[tokio::test]
async fn a_cross_client_scope_is_not_requested_without_an_allowance() {
    let mock = asking_for_audience("mcp-resource-server").await;
    let dir = tempfile::tempdir().unwrap();
    let (mut s, buf) = session(options(&mock.mcp_url()), dir.path());
    let err = s.connect().await.unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(&err, ClientError::AudienceScopeNotAllowed { audience, .. } if audience == "mcp-resource-server"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!(
            "--allow-audience {}=mcp-resource-server",
            mock.mcp_url()
        )),
        "{msg}"
    );
    // Nothing was asked of the authorization server.
    assert_eq!(mock.count("authorize"), 0, "{:?}", mock.log());
    assert_eq!(mock.count("register"), 0);
    assert_no_secrets(&text(&buf));

    // An allowance for another server does not count here.
    let mut o = options(&mock.mcp_url());
    o.audiences = allow("http://127.0.0.1:1/mcp", "mcp-resource-server");
    let (mut s, _) = session(o, dir.path());
    assert!(matches!(
        s.connect().await.unwrap_err(),
        ClientError::AudienceScopeNotAllowed { .. }
    ));
    assert_eq!(mock.count("authorize"), 0);
}

#[tokio::test]
async fn with_the_allowance_the_dex_flow_works() {
    let mock = asking_for_audience("mcp-resource-server").await;
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(&mock.mcp_url());
    o.audiences = allow(&mock.base, "mcp-resource-server");
    let (mut s, buf) = session(o, dir.path());
    s.connect()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", text(&buf)));
    s.list_tools().await.unwrap();
    let trace = text(&buf);
    assert!(
        trace.contains("the access token is for mcp-resource-server, an audience allowed"),
        "{trace}"
    );
    assert_no_secrets(&trace);
}

#[tokio::test]
async fn a_token_for_another_resource_is_neither_sent_nor_cached() {
    // The authorization server answers with a token for another resource (as one that
    // maps scopes to audiences would, whatever `resource` says).
    let mock = ClientSideServer::start(ClientSideConfig {
        jwt_audience: Some(vec!["https://bank.example.com/mcp".into()]),
        ..config()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (mut s, buf) = session(options(&mock.mcp_url()), dir.path());
    let err = s.connect().await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ClientError::TokenAudience { .. }), "{msg}");
    assert!(msg.contains("https://bank.example.com/mcp"), "{msg}");
    assert!(msg.contains(&mock.mcp_url()), "{msg}");
    assert_no_secrets(&msg);
    assert_no_secrets(&text(&buf));
    assert_eq!(mock.count("token grant=authorization_code"), 1);
    assert!(!token_reached_the_server(&mock), "{:?}", mock.log());
    assert!(
        Cache::new(dir.path())
            .load_tokens(&mock.mcp_url())
            .unwrap()
            .is_none()
    );

    // A JWT without any audience says nothing about where it may be used: not sent.
    let mock = ClientSideServer::start(ClientSideConfig {
        jwt_audience: Some(vec![]),
        ..config()
    })
    .await;
    let (mut s, _) = session(options(&mock.mcp_url()), dir.path());
    let err = s.connect().await.unwrap_err();
    assert!(err.to_string().contains("no audience at all"), "{err}");
    assert!(!token_reached_the_server(&mock));
}

#[tokio::test]
async fn tokens_for_this_resource_and_opaque_tokens_are_used() {
    for jwt_audience in [Some(vec!["{resource}".to_owned()]), None] {
        let mock = ClientSideServer::start(ClientSideConfig {
            jwt_audience: jwt_audience.clone(),
            ..config()
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let (mut s, buf) = session(options(&mock.mcp_url()), dir.path());
        s.connect()
            .await
            .unwrap_or_else(|e| panic!("{jwt_audience:?}: {e}\n{}", text(&buf)));
        assert!(token_reached_the_server(&mock));
    }
}

#[tokio::test]
async fn a_refreshed_token_for_another_resource_is_not_used() {
    let mock = ClientSideServer::start(ClientSideConfig {
        jwt_audience: Some(vec!["{resource}".into()]),
        jwt_audience_on_refresh: Some(vec!["https://bank.example.com/mcp".into()]),
        ..config()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (mut s, buf) = session(options(&mock.mcp_url()), dir.path());
    s.connect().await.unwrap();
    let first = s.tokens().unwrap().access_token.clone();
    mock.revoke_access_tokens();
    // 401, then a refresh whose token is for another resource: not used, so a new
    // authorization follows, and its token (for this server) goes through.
    s.list_tools()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", text(&buf)));
    let trace = text(&buf);
    assert!(trace.contains("the refreshed token is not used"), "{trace}");
    assert_eq!(mock.count("token grant=refresh_token"), 1);
    assert_eq!(mock.count("authorize"), 2);
    assert_ne!(s.tokens().unwrap().access_token, first);
    let from_refresh = mock.from_refresh();
    assert_eq!(from_refresh.len(), 1);
    assert!(
        !mock.presented().contains(&from_refresh[0]),
        "the refreshed token reached the server"
    );
    assert_no_secrets(&trace);
}

#[tokio::test]
async fn a_cached_token_for_another_resource_is_not_used() {
    let mock = ClientSideServer::start(config()).await;
    let dir = tempfile::tempdir().unwrap();
    use base64::Engine as _;
    let enc = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let foreign = format!(
        "{}.{}.secret-access-cached",
        enc(serde_json::json!({"alg": "RS256"})),
        enc(serde_json::json!({"aud": "https://bank.example.com/mcp"}))
    );
    Cache::new(dir.path())
        .save_tokens(&TokenSet {
            server: mock.mcp_url(),
            resource: mock.mcp_url(),
            issuer: mock.issuer(),
            token_endpoint: format!("{}/token", mock.issuer()),
            client: StoredClient {
                client_id: "dyn-client-1".into(),
                client_secret: None,
                auth_method: TokenAuthMethod::None,
                source: ClientSource::Dynamic,
                redirect_uri: None,
            },
            access_token: AccessToken::new(foreign.clone()),
            token_type: "Bearer".into(),
            refresh_token: Some(RefreshToken::new("secret-refresh-cached")),
            scope: Some("mcp:tools".into()),
            expires_at: Some(now() + 3600),
            obtained_at: now(),
        })
        .unwrap();
    let before = files(dir.path());
    let (mut s, buf) = session(options(&mock.mcp_url()), dir.path());
    let trace = text(&buf);
    assert!(trace.contains("not using the cached tokens"), "{trace}");
    assert!(trace.contains("https://bank.example.com/mcp"), "{trace}");
    assert!(s.tokens().is_none());
    // A new authorization replaces them; the foreign token never reached the server.
    s.connect().await.unwrap();
    assert_eq!(mock.count("token grant=refresh_token"), 0);
    assert_eq!(mock.count("authorize"), 1);
    assert_ne!(s.tokens().unwrap().access_token.secret(), foreign);
    assert_ne!(files(dir.path()), before);
    assert_no_secrets(&text(&buf));
}
