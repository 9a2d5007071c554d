//! The approval page when `oauth2.skipApprovalScreen` is false, and stale login requests.

use reqwest::StatusCode;
use url::Url;

use crate::support::{REDIRECT, query, start};

async fn login_to_approval(t: &crate::support::TestIdp) -> Url {
    let (_, location) = t
        .authorize(&[
            ("client_id", "mcp-client"),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", "openid email"),
            ("state", "a1"),
        ])
        .await;
    let form = location.unwrap();
    let req = query(&form, "req").unwrap();
    let response = t
        .http
        .post(form.clone())
        .form(&[
            ("req", req.as_str()),
            ("login", "alice@example.com"),
            ("password", "password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let approval = form
        .join(response.headers()["location"].to_str().unwrap())
        .unwrap();
    assert!(approval.path().ends_with("/approval"), "{approval}");
    approval
}

#[tokio::test]
async fn approval_page_grants_or_denies() {
    let t = start(|mut c| {
        c.dex.oauth2.skip_approval_screen = false;
        c
    })
    .await;

    let approval = login_to_approval(&t).await;
    let page = t.http.get(approval.clone()).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("<code>email</code>"), "{html}");
    let req = query(&approval, "req").unwrap();
    let granted = t
        .http
        .post(approval.clone())
        .form(&[("req", req.as_str()), ("approval", "approve")])
        .send()
        .await
        .unwrap();
    let back = Url::parse(granted.headers()["location"].to_str().unwrap()).unwrap();
    assert!(query(&back, "code").is_some());
    assert_eq!(query(&back, "state").as_deref(), Some("a1"));
    // The request is finished: its id no longer works.
    let again = t
        .http
        .post(approval)
        .form(&[("req", req.as_str()), ("approval", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);

    let approval = login_to_approval(&t).await;
    let req = query(&approval, "req").unwrap();
    let denied = t
        .http
        .post(approval)
        .form(&[("req", req.as_str()), ("approval", "rejected")])
        .send()
        .await
        .unwrap();
    let back = Url::parse(denied.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(query(&back, "error").as_deref(), Some("access_denied"));
    assert_eq!(query(&back, "state").as_deref(), Some("a1"));
}

#[tokio::test]
async fn unknown_login_request_is_refused() {
    let t = start(|c| c).await;
    let response = t
        .http
        .post(format!("{}/auth/local/login", t.issuer))
        .form(&[
            ("req", "forged"),
            ("login", "alice@example.com"),
            ("password", "password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get("location").is_none());
    // The approval page cannot be reached without logging in first.
    let (_, location) = t
        .authorize(&[
            ("client_id", "mcp-client"),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", "openid"),
        ])
        .await;
    let req = query(&location.unwrap(), "req").unwrap();
    let skip = t
        .http
        .post(format!("{}/approval", t.issuer))
        .form(&[("req", req.as_str()), ("approval", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(skip.status(), StatusCode::BAD_REQUEST);
}
