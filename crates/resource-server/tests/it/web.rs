//! The browser page under `/app/`.

use resource_server::DemoOptions;

use crate::fixture::{TestAuthServer, TestKey, client, start_demo, start_rs, test_config};

#[tokio::test]
async fn the_page_is_served_at_app_and_at_its_callback() {
    let dir = std::env::temp_dir().join(format!("mcp-rs-web-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("index.html"),
        r#"<script type="module" src="app.js"></script>"#,
    )
    .unwrap();
    std::fs::write(dir.join("app.js"), "console.log('page');").unwrap();
    let auth = TestAuthServer::with_keys(&[TestKey::rsa1()]).await;
    let issuer = auth.issuer().to_string();
    let web = dir.clone();
    let options = DemoOptions {
        web_dir: Some(web),
        ..DemoOptions::default()
    };
    let url = start_demo(move |url| test_config(url, &issuer), options).await;

    for path in ["/app/", "/app/callback?code=x&state=y"] {
        let response = client().get(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["referrer-policy"], "no-referrer");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert!(response.text().await.unwrap().contains("app.js"), "{path}");
    }
    let script = client()
        .get(format!("{url}/app/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert!(
        script.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("javascript")
    );
    // Without a web directory, there is no page.
    let issuer = auth.issuer().to_string();
    let bare = start_rs(move |url| test_config(url, &issuer)).await;
    assert_eq!(
        client()
            .get(format!("{bare}/app/"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    std::fs::remove_dir_all(dir).ok();
}
