//! The authorization code flow: login form, auto-login, PKCE, code and redirect checks,
//! errors at the redirect URI and on the page.

use reqwest::StatusCode;

use crate::support::{REDIRECT, auto_login, claims, pkce_pair, query, start};

#[tokio::test]
async fn login_form_then_s256_code_exchange() {
    let t = start(|c| c).await;
    let (verifier, challenge) = pkce_pair();
    let params = [
        ("client_id", "mcp-client"),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", "openid email profile"),
        ("state", "xyz"),
        ("nonce", "n-1"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];

    // A wrong password shows the form again (200, as Dex) and no redirect.
    let (_, location) = t.authorize(&params).await;
    let form_url = location.unwrap();
    let wrong = t
        .http
        .post(form_url.clone())
        .form(&[("login", "alice@example.com"), ("password", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::OK);
    assert!(wrong.headers().get("location").is_none());
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("Invalid Email Address and password")
    );

    let back = t.login(&params, "alice@example.com", "password").await;
    assert!(back.as_str().starts_with(REDIRECT));
    assert_eq!(query(&back, "state").as_deref(), Some("xyz"));
    assert!(query(&back, "iss").is_none(), "Dex sends no iss");
    let code = query(&back, "code").unwrap();

    let (status, body) = t.exchange(&code, &verifier, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "bearer");
    assert!(body["expires_in"].as_u64().unwrap() > 0);
    assert!(
        body.get("refresh_token").is_none(),
        "no offline_access, no refresh token"
    );

    let access = t.verify(body["access_token"].as_str().unwrap()).await;
    assert_eq!(access["aud"], "mcp-client");
    assert_eq!(access["email"], "alice@example.com");
    assert_eq!(access["name"], "alice");
    assert!(access.get("scope").is_none(), "Dex-shaped access token");
    let id = t.verify(body["id_token"].as_str().unwrap()).await;
    assert_eq!(id["nonce"], "n-1");
    assert_eq!(id["sub"], access["sub"]);
    assert!(id["at_hash"].is_string());
    let header = jsonwebtoken::decode_header(body["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(header.typ, None, "Dex sends no typ");

    // The code is single-use.
    let (status, body) = t.exchange(&code, &verifier, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");

    // userinfo accepts the access token.
    let info: serde_json::Value = t
        .http
        .get(format!("{}/userinfo", t.issuer))
        .bearer_auth(access_token_via_login(&t).await)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["email"], "alice@example.com");
    let refused = t
        .http
        .get(format!("{}/userinfo", t.issuer))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.status(),
        StatusCode::FORBIDDEN,
        "Dex: 403 for a bad token"
    );
}

/// A fresh access token through the login form (login names match case-insensitively).
async fn access_token_via_login(t: &crate::support::TestIdp) -> String {
    let (verifier, challenge) = pkce_pair();
    let params = [
        ("client_id", "mcp-client"),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", "openid email"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let back = t.login(&params, "ALICE@example.com", "password").await;
    let code = query(&back, "code").unwrap();
    let (_, body) = t.exchange(&code, &verifier, &[]).await;
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn auto_login_with_plain_pkce() {
    let t = start(auto_login).await;
    let verifier = "p".repeat(50);
    let (status, location) = t
        .authorize(&[
            ("client_id", "mcp-client"),
            ("redirect_uri", "http://localhost:8123/cb"),
            ("response_type", "code"),
            ("scope", "openid"),
            ("code_challenge", verifier.as_str()),
        ])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location = location.unwrap();
    assert!(
        location
            .as_str()
            .starts_with("http://localhost:8123/cb?code=")
    );
    let code = query(&location, "code").unwrap();
    let (status, body) = t
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://localhost:8123/cb"),
            ("client_id", "mcp-client"),
            ("code_verifier", &verifier),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["aud"],
        "mcp-client"
    );
}

/// A case name, the form fields it changes, the error expected.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

#[tokio::test]
async fn token_endpoint_refuses_bad_verifier_redirect_and_missing_verifier() {
    let t = start(auto_login).await;
    let cases: [Case; 3] = [
        (
            "wrong verifier",
            &[(
                "code_verifier",
                "wrong-verifier-wrong-verifier-wrong-verifier",
            )],
            "invalid_grant",
        ),
        ("no verifier", &[], "invalid_grant"),
        (
            "wrong redirect",
            &[("redirect_uri", "http://127.0.0.1:49153/callback")],
            "invalid_request",
        ),
    ];
    for (name, overrides, error) in cases {
        let (code, verifier) = t.code("openid", &[]).await;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", "mcp-client"),
        ];
        if !overrides.iter().any(|(k, _)| *k == "redirect_uri") {
            form.push(("redirect_uri", crate::support::REDIRECT));
        }
        if name != "no verifier" && !overrides.iter().any(|(k, _)| *k == "code_verifier") {
            form.push(("code_verifier", verifier.as_str()));
        }
        form.extend_from_slice(overrides);
        let (status, body) = t.token(&form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
        assert_eq!(body["error"], error, "{name}: {body}");
        // As in Dex, a failed exchange leaves the code usable.
        let (status, again) = t
            .token(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("client_id", "mcp-client"),
                ("redirect_uri", crate::support::REDIRECT),
                ("code_verifier", &verifier),
            ])
            .await;
        assert_eq!(status, StatusCode::OK, "{name}: {again}");
    }
    let (status, body) = t
        .token(&[("grant_type", "password"), ("client_id", "mcp-client")])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type"))
    );
    let (status, body) = t
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", "nobody"),
            ("code", "x"),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
}

#[tokio::test]
async fn scope_errors_go_to_the_redirect_uri_with_state() {
    let t = start(auto_login).await;
    let (_, challenge) = pkce_pair();
    for (scope, needle) in [
        ("openid mcp:tools", "Unrecognized scope"),
        ("email profile", "openid"),
        ("openid audience:server:client_id:backend", "can't request"),
    ] {
        let (status, location) = t
            .authorize(&[
                ("client_id", "mcp-client"),
                ("redirect_uri", REDIRECT),
                ("response_type", "code"),
                ("scope", scope),
                ("state", "s1"),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
            ])
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let location = location.unwrap();
        assert!(location.as_str().starts_with(REDIRECT), "{location}");
        assert_eq!(
            query(&location, "error").as_deref(),
            Some("invalid_scope"),
            "{scope}"
        );
        assert_eq!(query(&location, "state").as_deref(), Some("s1"));
        assert!(
            query(&location, "error_description")
                .unwrap()
                .contains(needle),
            "{scope}"
        );
        assert!(query(&location, "code").is_none());
    }

    // Unknown PKCE method and response type are refused at the redirect too.
    let (_, location) = t
        .authorize(&[
            ("client_id", "mcp-client"),
            ("redirect_uri", REDIRECT),
            ("response_type", "token"),
            ("scope", "openid"),
        ])
        .await;
    assert_eq!(
        query(&location.unwrap(), "error").as_deref(),
        Some("unsupported_response_type")
    );
    let (_, location) = t
        .authorize(&[
            ("client_id", "mcp-client"),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", "openid"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S512"),
        ])
        .await;
    assert_eq!(
        query(&location.unwrap(), "error").as_deref(),
        Some("invalid_request")
    );
}

#[tokio::test]
async fn unknown_client_or_redirect_is_shown_not_redirected() {
    let t = start(auto_login).await;
    for (client, redirect) in [
        ("nobody", REDIRECT),
        ("mcp-client", "https://evil.example/cb"),
        ("mcp-browser", "http://127.0.0.1:3001/app/callback"),
        ("backend", "http://127.0.0.1:49153/callback"),
    ] {
        let (status, location) = t
            .authorize(&[
                ("client_id", client),
                ("redirect_uri", redirect),
                ("response_type", "code"),
                ("scope", "openid"),
            ])
            .await;
        let expected = if client == "nobody" {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::BAD_REQUEST
        };
        assert_eq!(status, expected, "{client} {redirect}");
        assert!(location.is_none());
    }
}

#[tokio::test]
async fn require_s256_refuses_plain_and_missing_challenges() {
    let t = start(|c| {
        let mut f = dev_idp::Features::default();
        f.require_s256 = true;
        auto_login(c.with_features(f))
    })
    .await;
    let plain = "p".repeat(50);
    for extra in [vec![], vec![("code_challenge", plain.as_str())]] {
        let mut params = vec![
            ("client_id", "mcp-client"),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", "openid"),
        ];
        params.extend(extra);
        let (_, location) = t.authorize(&params).await;
        let location = location.unwrap();
        assert_eq!(
            query(&location, "error").as_deref(),
            Some("invalid_request")
        );
        assert!(
            query(&location, "error_description")
                .unwrap()
                .contains("S256")
        );
    }
    // S256 still works.
    t.code("openid", &[]).await;
}

#[tokio::test]
async fn expired_codes_and_login_requests_are_refused() {
    let t = start(|mut c| {
        c.code_lifetime = std::time::Duration::ZERO;
        auto_login(c)
    })
    .await;
    let (code, verifier) = t.code("openid", &[]).await;
    let (status, body) = t.exchange(&code, &verifier, &[]).await;
    // Dex's quirk: an expired code is a 500.
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, Some("server_error"))
    );

    let t = start(|mut c| {
        c.auth_request_lifetime = std::time::Duration::ZERO;
        c
    })
    .await;
    let (_, location) = t
        .authorize(&[
            ("client_id", "mcp-client"),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", "openid"),
        ])
        .await;
    let form = t.http.get(location.unwrap()).send().await.unwrap();
    assert_eq!(form.status(), StatusCode::BAD_REQUEST);
    assert!(
        form.text()
            .await
            .unwrap()
            .contains("Requested resource does not exist.")
    );
}
