//! The device flow with `--mcp-ready`: S256 required elsewhere does not block the
//! device's browser login, and the device's `resource` becomes the token's `aud`.

use reqwest::StatusCode;
use serde_json::Value;
use url::Url;

use crate::support::{auto_login, start};

const RESOURCE: &str = "http://127.0.0.1:3001/mcp";

#[tokio::test]
async fn mcp_ready_device_flow_carries_the_resource() {
    let t = start(|c| auto_login(c.with_features(dev_idp::Features::mcp_ready()))).await;
    let body: Value = t
        .http
        .post(format!("{}/device/code", t.issuer))
        .form(&[
            ("client_id", "mcp-client"),
            ("scope", "mcp:tools"),
            ("resource", RESOURCE),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let verify = t
        .http
        .post(format!("{}/device/auth/verify_code", t.issuer))
        .form(&[("user_code", body["user_code"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    let mut next = Url::parse(&t.base)
        .unwrap()
        .join(verify.headers()["location"].to_str().unwrap())
        .unwrap();
    // /auth -> /auth/local -> (auto-login) the device callback.
    for _ in 0..2 {
        let (status, location) = t.get_location(next).await;
        assert!(status.is_redirection(), "{status}");
        next = location.unwrap();
    }
    assert_eq!(next.path(), "/dex/device/callback", "{next}");
    assert_eq!(
        t.http.get(next).send().await.unwrap().status(),
        StatusCode::OK
    );
    let (status, tokens) = t
        .token(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", body["device_code"].as_str().unwrap()),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = t.verify(tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(access["aud"], RESOURCE);
    assert_eq!(access["scope"], "mcp:tools");
}
