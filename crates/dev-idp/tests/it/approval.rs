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
    let response = t
        .http
        .post(form.clone())
        .form(&[("login", "alice@example.com"), ("password", "password")])
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
    let hmac = query(&approval, "hmac").unwrap();
    assert!(html.contains(&hmac));
    // Without the HMAC (or with another) the request id alone is not enough.
    for forged in [vec![], vec![("hmac", "AAAA")]] {
        let mut form = vec![("req", req.as_str()), ("approval", "approve")];
        form.extend(forged);
        let refused = t
            .http
            .post(approval.clone())
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    }
    let granted = t
        .http
        .post(approval.clone())
        .form(&[
            ("req", req.as_str()),
            ("hmac", hmac.as_str()),
            ("approval", "approve"),
        ])
        .send()
        .await
        .unwrap();
    let back = Url::parse(granted.headers()["location"].to_str().unwrap()).unwrap();
    assert!(query(&back, "code").is_some());
    assert_eq!(query(&back, "state").as_deref(), Some("a1"));
    // The request is finished: its id no longer works (Dex: 500 "Database error.").
    let again = t
        .http
        .post(approval)
        .form(&[
            ("req", req.as_str()),
            ("hmac", hmac.as_str()),
            ("approval", "approve"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::INTERNAL_SERVER_ERROR);

    // Dex answers a refusal with its error page, not a redirect to the client.
    let approval = login_to_approval(&t).await;
    let req = query(&approval, "req").unwrap();
    let hmac = query(&approval, "hmac").unwrap();
    let denied = t
        .http
        .post(approval)
        .form(&[
            ("req", req.as_str()),
            ("hmac", hmac.as_str()),
            ("approval", "rejected"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(denied.headers().get("location").is_none());
    assert!(denied.text().await.unwrap().contains("Approval rejected."));
}

#[tokio::test]
async fn unknown_login_request_is_refused() {
    let t = start(|c| c).await;
    let response = t
        .http
        .post(format!("{}/auth/local/login?back=&state=forged", t.issuer))
        .form(&[("login", "alice@example.com"), ("password", "password")])
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
    let req = query(&location.unwrap(), "state").unwrap();
    let skip = t
        .http
        .post(format!("{}/approval", t.issuer))
        .form(&[("req", req.as_str()), ("approval", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(skip.status(), StatusCode::UNAUTHORIZED);
}
