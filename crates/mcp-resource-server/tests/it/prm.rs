//! Protected Resource Metadata documents.

use serde_json::Value;

use crate::{
    custom_tools::start_rs,
    fixture::{TestAuthServer, TestKey, client, test_config},
};

#[tokio::test]
async fn each_location_names_its_resource_and_is_readable_cross_origin() {
    let auth = TestAuthServer::with_keys(&[TestKey::rsa1()]).await;
    let issuer = auth.issuer().to_string();
    let url = start_rs(move |url| test_config(url, &issuer)).await;
    for (path, resource) in [
        (
            "/.well-known/oauth-protected-resource/mcp",
            format!("{url}/mcp"),
        ),
        (
            "/.well-known/oauth-protected-resource/sse",
            format!("{url}/sse"),
        ),
        ("/.well-known/oauth-protected-resource", url.clone()),
    ] {
        let response = client()
            .get(format!("{url}{path}"))
            .header("origin", "http://inspector.example:6274")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["access-control-allow-origin"], "*");
        let prm: Value = response.json().await.unwrap();
        assert_eq!(prm["resource"], resource.as_str());
        assert_eq!(prm["authorization_servers"][0], auth.issuer());
        assert_eq!(prm["scopes_supported"], serde_json::json!(["mcp:tools"]));
        assert_eq!(
            prm["bearer_methods_supported"],
            serde_json::json!(["header"])
        );
        assert!(prm["resource_name"].is_string());
    }
    // CORS preflight from a browser client.
    let response = client()
        .request(
            reqwest::Method::OPTIONS,
            format!("{url}/.well-known/oauth-protected-resource/mcp"),
        )
        .header("origin", "http://inspector.example:6274")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn advertised_authorization_servers_are_configurable() {
    let auth = TestAuthServer::with_keys(&[TestKey::rsa1()]).await;
    let issuer = auth.issuer().to_string();
    let url = start_rs(move |url| {
        test_config(url, &issuer).with_authorization_servers(["http://localhost:5558"])
    })
    .await;
    let prm: Value = client()
        .get(format!("{url}/.well-known/oauth-protected-resource/mcp"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        prm["authorization_servers"],
        serde_json::json!(["http://localhost:5558"])
    );
}

#[tokio::test]
async fn dpop_fields_follow_the_policy() {
    use mcp_resource_server::auth::{DpopConfig, DpopPolicy};
    let auth = TestAuthServer::with_keys(&[TestKey::rsa1()]).await;
    for (policy, algs, required) in [
        (DpopPolicy::Off, None, None),
        (
            DpopPolicy::Allowed,
            Some(serde_json::json!(["ES256", "EdDSA"])),
            None,
        ),
        (
            DpopPolicy::Required,
            Some(serde_json::json!(["ES256", "EdDSA"])),
            Some(true),
        ),
    ] {
        let issuer = auth.issuer().to_string();
        let url = start_rs(move |url| {
            test_config(url, &issuer).with_dpop(DpopConfig {
                policy,
                algorithms: vec!["ES256".into(), "EdDSA".into()],
                ..DpopConfig::default()
            })
        })
        .await;
        let prm: Value = client()
            .get(format!("{url}/.well-known/oauth-protected-resource/mcp"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            prm.get("dpop_signing_alg_values_supported"),
            algs.as_ref(),
            "{policy:?}"
        );
        assert_eq!(
            prm.get("dpop_bound_access_tokens_required")
                .and_then(Value::as_bool),
            required,
            "{policy:?}"
        );
    }
}
