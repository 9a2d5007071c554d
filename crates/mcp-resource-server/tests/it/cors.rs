//! CORS and the `Origin` check answer the same origins, by the one shared rule.

use crate::{
    custom_tools::start_rs,
    fixture::{TestAuthServer, TestKey, client, initialize, rpc_with, test_config},
};

#[tokio::test]
async fn cors_and_the_origin_check_agree_on_a_differently_cased_origin() {
    let auth = TestAuthServer::with_keys(&[TestKey::rsa1()]).await;
    let issuer = auth.issuer().to_string();
    let url = start_rs(move |url| {
        test_config(url, &issuer).with_allowed_origins(["http://app.example:8080"])
    })
    .await;
    let token = auth
        .token()
        .subject("alice")
        .aud(&format!("{url}/mcp"))
        .scope("mcp:tools")
        .sign();
    let preflight = |origin: &'static str| {
        client()
            .request(reqwest::Method::OPTIONS, format!("{url}/mcp"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };

    // Scheme and host differ in case only: the same origin to both.
    let cased = "HTTP://App.Example:8080";
    let response = preflight(cased).await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(response.headers()["access-control-allow-origin"], cased);
    assert_eq!(
        response.headers()["access-control-allow-credentials"],
        "true"
    );
    let reply = rpc_with(&url, Some(&token), None, initialize(), &[("origin", cased)]).await;
    assert_eq!(reply.status, 200);

    // Another origin: refused by both.
    let other = "http://app.example:8081";
    let response = preflight(other).await.unwrap();
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin"),
        "{:?}",
        response.headers()
    );
    let reply = rpc_with(&url, Some(&token), None, initialize(), &[("origin", other)]).await;
    assert_eq!(reply.status, 403);
}
