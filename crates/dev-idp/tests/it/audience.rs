//! Dex's cross-client audience and the RFC 8707 resource → aud switch.

use dev_idp::Features;
use reqwest::StatusCode;

use crate::support::{REDIRECT, auto_login, query, start};

#[tokio::test]
async fn trusted_peer_gets_the_resource_server_audience() {
    let t = start(auto_login).await;
    let (code, verifier) = t
        .code("openid audience:server:client_id:mcp-resource-server", &[])
        .await;
    let (status, body) = t.exchange(&code, &verifier, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let access = t.verify(body["access_token"].as_str().unwrap()).await;
    assert_eq!(
        access["aud"],
        serde_json::json!(["mcp-resource-server", "mcp-client"])
    );
    assert_eq!(access["azp"], "mcp-client");
    let id = t.verify(body["id_token"].as_str().unwrap()).await;
    assert_eq!(id["aud"], access["aud"], "Dex makes both tokens alike");
}

#[tokio::test]
async fn untrusted_client_cannot_name_the_resource_server() {
    let t = start(auto_login).await;
    let (_, location) = t
        .authorize(&[
            ("client_id", "stranger"),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            (
                "scope",
                "openid audience:server:client_id:mcp-resource-server",
            ),
            ("state", "q"),
        ])
        .await;
    let location = location.unwrap();
    assert_eq!(query(&location, "error").as_deref(), Some("invalid_scope"));
    assert_eq!(query(&location, "state").as_deref(), Some("q"));
}

#[tokio::test]
async fn resource_is_ignored_like_dex_unless_switched_on() {
    let resource = "http://localhost:3001/mcp";
    let off = start(auto_login).await;
    let (code, verifier) = off.code("openid", &[("resource", resource)]).await;
    let (_, body) = off
        .exchange(&code, &verifier, &[("resource", resource)])
        .await;
    assert_eq!(
        off.verify(body["access_token"].as_str().unwrap()).await["aud"],
        "mcp-client"
    );

    let on = start(|c| {
        let mut f = Features::default();
        f.resource_audience = true;
        auto_login(c.with_features(f))
    })
    .await;
    let (code, verifier) = on.code("openid", &[("resource", resource)]).await;
    let (status, body) = on
        .exchange(&code, &verifier, &[("resource", resource)])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let access = on.verify(body["access_token"].as_str().unwrap()).await;
    assert_eq!(access["aud"], resource);
    let id = on.verify(body["id_token"].as_str().unwrap()).await;
    assert_eq!(id["aud"], "mcp-client", "ID tokens stay for the client");

    // A resource not authorized at /auth is refused at /token.
    let (code, verifier) = on.code("openid", &[("resource", resource)]).await;
    let (status, body) = on
        .exchange(
            &code,
            &verifier,
            &[("resource", "http://localhost:9999/other")],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_target"))
    );
    // A malformed resource is refused at /auth.
    let (_, location) = on
        .authorize(&[
            ("client_id", "mcp-client"),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", "openid"),
            ("resource", "http://localhost:3001/mcp#frag"),
        ])
        .await;
    assert_eq!(
        query(&location.unwrap(), "error").as_deref(),
        Some("invalid_target")
    );
}
