//! dev-idp against Dex v2.45.1, one row per behaviour a client or resource server can
//! observe, each naming the Dex source file and function it mirrors. The README's Dex
//! table lists the same rows.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::Value;
use url::Url;

use crate::support::{REDIRECT, TestIdp, auto_login, claims, query, start};

type Check = fn() -> Pin<Box<dyn Future<Output = ()> + Send>>;

struct Row {
    behaviour: &'static str,
    dex: &'static str,
    check: Check,
}

macro_rules! row {
    ($behaviour:expr, $dex:expr, $check:ident) => {
        Row {
            behaviour: $behaviour,
            dex: $dex,
            check: || Box::pin($check()),
        }
    };
}

const ROWS: &[Row] = &[
    row!(
        "a code issued to another client is 500 server_error",
        "server/handlers.go handleAuthCode",
        code_of_another_client
    ),
    row!(
        "an expired code is 500 server_error",
        "server/handlers.go handleAuthCode",
        expired_code
    ),
    row!(
        "a redirect_uri mismatch is invalid_request and the code stays usable",
        "server/handlers.go handleAuthCode",
        redirect_mismatch_keeps_code
    ),
    row!(
        "an unknown or spent code is invalid_grant",
        "server/handlers.go handleAuthCode",
        spent_code
    ),
    row!(
        "codes live 30 minutes",
        "server/handlers.go sendCodeResponse",
        code_lifetime
    ),
    row!(
        "ID tokens carry c_hash and at_hash, no auth_time",
        "server/oauth2.go newIDToken",
        id_token_hashes
    ),
    row!(
        "the JOSE header has no typ and a 40-hex kid",
        "server/signer/rotation.go rotate",
        jose_header
    ),
    row!(
        "groups is omitted when the user has none",
        "server/oauth2.go idTokenClaims",
        groups_omitted
    ),
    row!(
        "userinfo: 401 access_denied without a bearer token, 403 with a bad one",
        "server/handlers.go handleUserInfo",
        userinfo_errors
    ),
    row!(
        "userinfo returns every claim of the token",
        "server/handlers.go handleUserInfo",
        userinfo_claims
    ),
    row!(
        "a second login replaces the user's refresh token for that client",
        "server/handlers.go exchangeAuthCode",
        one_refresh_token_per_client
    ),
    row!(
        "a spent refresh token is invalid_request and its successor still works",
        "server/refreshhandlers.go getRefreshTokenFromStorage",
        spent_refresh_token
    ),
    row!(
        "the previous refresh token works again within the reuse interval",
        "server/refreshhandlers.go updateRefreshToken",
        refresh_reuse_interval
    ),
    row!(
        "an unknown refresh token is invalid_request",
        "server/refreshhandlers.go getRefreshTokenFromStorage",
        unknown_refresh_token
    ),
    row!(
        "another client's refresh token is invalid_grant and stays usable",
        "server/refreshhandlers.go getRefreshTokenFromStorage",
        refresh_other_client
    ),
    row!(
        "a refresh with an extra scope is invalid_request and the token stays usable",
        "server/refreshhandlers.go getRefreshScopes",
        refresh_extra_scope
    ),
    row!(
        "the grant type is checked before the client",
        "server/handlers.go handleToken",
        grant_type_first
    ),
    row!(
        "token exchange: no connector can verify a subject token",
        "server/handlers.go handleTokenExchange",
        token_exchange
    ),
    row!(
        "discovery lists device, introspection, grants, no response_modes_supported",
        "server/handlers.go constructDiscovery",
        discovery
    ),
    row!(
        "/healthz answers 200",
        "server/server.go newServer",
        healthz
    ),
    row!(
        "/auth -> /auth/local -> /auth/local/login?back=&state=ID",
        "server/handlers.go handleAuthorization, handleConnectorLogin",
        login_hops
    ),
    row!(
        "a bare http://[::1] redirect needs a port",
        "server/oauth2.go validateRedirectURI, isHostLocal",
        ipv6_loopback_redirect
    ),
    row!(
        "an unknown client_id is a 404 page",
        "server/oauth2.go parseAuthorizationRequest",
        unknown_client
    ),
    row!(
        "approval_prompt=force shows the approval page despite skipApprovalScreen",
        "server/handlers.go finalizeLogin",
        approval_prompt_force
    ),
    row!(
        "CORS only on discovery, token, keys, userinfo, introspection",
        "server/server.go newServer handleWithCORS",
        cors_routes
    ),
    row!(
        "preflights asking for non-simple headers are refused",
        "gorilla/handlers cors.go (server/server.go handleWithCORS)",
        cors_preflight
    ),
    row!(
        "device code response: user code, verification URIs, 300 s, interval 5",
        "server/deviceflowhandlers.go handleDeviceCode",
        device_code_response
    ),
    row!(
        "device polling: authorization_pending, slow_down, then the tokens",
        "server/deviceflowhandlers.go handleDeviceToken, verifyUserCode, handleDeviceCallback",
        device_flow
    ),
    row!(
        "device polling after expiry is expired_token",
        "server/deviceflowhandlers.go handleDeviceToken",
        device_expired
    ),
    row!(
        "introspection of access and refresh tokens, inactive as {active:false}",
        "server/introspectionhandler.go handleIntrospect",
        introspection
    ),
    row!(
        "kept stricter: a duplicated parameter is refused",
        "server/oauth2.go parseAuthorizationRequest (Dex takes the first)",
        stricter_duplicates
    ),
];

#[tokio::test]
async fn dev_idp_matches_dex_row_by_row() {
    let mut failures = Vec::new();
    for row in ROWS {
        if tokio::spawn((row.check)()).await.is_err() {
            failures.push(format!("{} ({})", row.behaviour, row.dex));
        }
    }
    assert!(
        failures.is_empty(),
        "rows that differ from Dex: {failures:#?}"
    );
}

// Helpers.

async fn tokens(t: &TestIdp, scope: &str) -> Value {
    let (code, verifier) = t.code(scope, &[]).await;
    let (status, body) = t.exchange(&code, &verifier, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn refresh(
    t: &TestIdp,
    token: &str,
    client: &str,
    scope: Option<&str>,
) -> (StatusCode, Value) {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", token),
        ("client_id", client),
    ];
    if client == "backend" {
        form.push(("client_secret", "backend-secret"));
    }
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    t.token(&form).await
}

fn error(pair: &(StatusCode, Value)) -> (StatusCode, Option<&str>) {
    (pair.0, pair.1["error"].as_str())
}

fn half_hash(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(&digest::digest(&digest::SHA256, value.as_bytes()).as_ref()[..16])
}

// Code exchange.

async fn code_of_another_client() {
    let t = start(auto_login).await;
    let (code, verifier) = t.code("openid", &[]).await;
    let other = t
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", "backend"),
            ("client_secret", "backend-secret"),
        ])
        .await;
    assert_eq!(
        error(&other),
        (StatusCode::INTERNAL_SERVER_ERROR, Some("server_error"))
    );
    assert!(other.1.get("error_description").is_none(), "{}", other.1);
    assert_eq!(t.exchange(&code, &verifier, &[]).await.0, StatusCode::OK);
}

async fn expired_code() {
    let t = start(|mut c| {
        c.code_lifetime = Duration::ZERO;
        auto_login(c)
    })
    .await;
    let (code, verifier) = t.code("openid", &[]).await;
    let answer = t.exchange(&code, &verifier, &[]).await;
    assert_eq!(
        error(&answer),
        (StatusCode::INTERNAL_SERVER_ERROR, Some("server_error"))
    );
}

async fn redirect_mismatch_keeps_code() {
    let t = start(auto_login).await;
    let (code, verifier) = t.code("openid", &[]).await;
    let wrong = t
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:49153/callback"),
            ("client_id", "mcp-client"),
            ("code_verifier", &verifier),
        ])
        .await;
    assert_eq!(
        error(&wrong),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    assert_eq!(t.exchange(&code, &verifier, &[]).await.0, StatusCode::OK);
}

async fn spent_code() {
    let t = start(auto_login).await;
    let (code, verifier) = t.code("openid", &[]).await;
    assert_eq!(t.exchange(&code, &verifier, &[]).await.0, StatusCode::OK);
    for value in [code.as_str(), "never-issued"] {
        let again = t.exchange(value, &verifier, &[]).await;
        assert_eq!(
            error(&again),
            (StatusCode::BAD_REQUEST, Some("invalid_grant"))
        );
    }
}

async fn code_lifetime() {
    let config = dev_idp::IdpConfig::from_dex(crate::support::dex_config()).unwrap();
    assert_eq!(config.code_lifetime, Duration::from_secs(30 * 60));
}

// Tokens.

async fn id_token_hashes() {
    let t = start(auto_login).await;
    let (code, verifier) = t.code("openid email", &[]).await;
    let (_, body) = t.exchange(&code, &verifier, &[]).await;
    let id = t.verify(body["id_token"].as_str().unwrap()).await;
    assert_eq!(id["c_hash"], half_hash(&code));
    assert_eq!(
        id["at_hash"],
        half_hash(body["access_token"].as_str().unwrap())
    );
    assert!(id.get("auth_time").is_none(), "{id}");
    let access = claims(body["access_token"].as_str().unwrap());
    assert!(access.get("auth_time").is_none() && access.get("c_hash").is_none());
}

async fn jose_header() {
    let t = start(auto_login).await;
    let body = tokens(&t, "openid").await;
    for token in [&body["access_token"], &body["id_token"]] {
        let header = jsonwebtoken::decode_header(token.as_str().unwrap()).unwrap();
        assert_eq!(header.typ, None);
        let kid = header.kid.unwrap();
        assert_eq!(kid.len(), 40, "{kid}");
        assert!(
            kid.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }
}

async fn groups_omitted() {
    let t = start(auto_login).await;
    let body = tokens(&t, "openid groups").await;
    for token in [&body["access_token"], &body["id_token"]] {
        assert!(claims(token.as_str().unwrap()).get("groups").is_none());
    }
}

// Userinfo.

async fn userinfo_errors() {
    let t = start(auto_login).await;
    let url = format!("{}/userinfo", t.issuer);
    let missing = t.http.get(&url).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"], "access_denied");
    let bad = t
        .http
        .get(&url)
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::FORBIDDEN);
    assert!(bad.headers().get("www-authenticate").is_none());
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["error"], "access_denied");
}

async fn userinfo_claims() {
    let t = start(auto_login).await;
    let body = tokens(&t, "openid email profile").await;
    let access = body["access_token"].as_str().unwrap();
    let info: Value = t
        .http
        .get(format!("{}/userinfo", t.issuer))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info, claims(access));
    assert!(info["iss"].is_string() && info["aud"].is_string() && info["exp"].is_u64());
}

// Refresh tokens.

async fn one_refresh_token_per_client() {
    let t = start(auto_login).await;
    let first = tokens(&t, "openid offline_access").await;
    let second = tokens(&t, "openid offline_access").await;
    let old = refresh(
        &t,
        first["refresh_token"].as_str().unwrap(),
        "mcp-client",
        None,
    )
    .await;
    assert_eq!(
        error(&old),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let new = refresh(
        &t,
        second["refresh_token"].as_str().unwrap(),
        "mcp-client",
        None,
    )
    .await;
    assert_eq!(new.0, StatusCode::OK, "{}", new.1);
}

async fn spent_refresh_token() {
    let t = start(|mut c| {
        c.refresh_reuse_interval = Duration::ZERO;
        auto_login(c)
    })
    .await;
    let r1 = tokens(&t, "openid offline_access").await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, second) = refresh(&t, &r1, "mcp-client", None).await;
    let r2 = second["refresh_token"].as_str().unwrap().to_owned();
    let replay = refresh(&t, &r1, "mcp-client", None).await;
    assert_eq!(
        error(&replay),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    assert_eq!(
        replay.1["error_description"],
        "Refresh token is invalid or has already been claimed by another client."
    );
    assert_eq!(refresh(&t, &r2, "mcp-client", None).await.0, StatusCode::OK);
}

async fn refresh_reuse_interval() {
    let t = start(auto_login).await;
    let r1 = tokens(&t, "openid offline_access").await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, second) = refresh(&t, &r1, "mcp-client", None).await;
    let (status, again) = refresh(&t, &r1, "mcp-client", None).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["refresh_token"], second["refresh_token"]);
}

async fn unknown_refresh_token() {
    let t = start(auto_login).await;
    for token in ["never-issued", "abc.def"] {
        let answer = refresh(&t, token, "mcp-client", None).await;
        assert_eq!(
            error(&answer),
            (StatusCode::BAD_REQUEST, Some("invalid_request"))
        );
    }
}

async fn refresh_other_client() {
    let t = start(auto_login).await;
    let token = tokens(&t, "openid offline_access").await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = refresh(&t, &token, "backend", None).await;
    assert_eq!(
        error(&other),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_eq!(
        refresh(&t, &token, "mcp-client", None).await.0,
        StatusCode::OK
    );
}

async fn refresh_extra_scope() {
    let t = start(auto_login).await;
    let token = tokens(&t, "openid offline_access").await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let wider = refresh(
        &t,
        &token,
        "mcp-client",
        Some("openid offline_access email"),
    )
    .await;
    assert_eq!(
        error(&wider),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    assert!(
        wider.1["error_description"]
            .as_str()
            .unwrap()
            .contains("email")
    );
    assert_eq!(
        refresh(&t, &token, "mcp-client", None).await.0,
        StatusCode::OK
    );
}

async fn grant_type_first() {
    let t = start(|c| c).await;
    let answer = t
        .token(&[("grant_type", "password"), ("client_id", "nobody")])
        .await;
    assert_eq!(
        error(&answer),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type"))
    );
    let answer = t.token(&[("client_id", "mcp-client")]).await;
    assert_eq!(
        error(&answer),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type"))
    );
}

async fn token_exchange() {
    let t = start(|c| c).await;
    let grant = "urn:ietf:params:oauth:grant-type:token-exchange";
    let answer = t
        .token(&[
            ("grant_type", grant),
            ("client_id", "backend"),
            ("client_secret", "backend-secret"),
            ("subject_token", "x"),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:id_token",
            ),
            ("connector_id", "local"),
        ])
        .await;
    assert_eq!(
        error(&answer),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    assert_eq!(
        answer.1["error_description"],
        "Requested connector does not exist."
    );
    let answer = t
        .token(&[
            ("grant_type", grant),
            ("client_id", "backend"),
            ("client_secret", "backend-secret"),
        ])
        .await;
    assert_eq!(
        error(&answer),
        (StatusCode::BAD_REQUEST, Some("request_not_supported"))
    );
}

// Discovery and endpoints.

async fn discovery() {
    let t = start(|c| c).await;
    let doc: Value = t
        .http
        .get(format!("{}/.well-known/openid-configuration", t.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["device_authorization_endpoint"],
        format!("{}/device/code", t.issuer)
    );
    assert_eq!(
        doc["introspection_endpoint"],
        format!("{}/token/introspect", t.issuer)
    );
    assert_eq!(
        doc["grant_types_supported"],
        serde_json::json!([
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code",
            "urn:ietf:params:oauth:grant-type:token-exchange"
        ])
    );
    assert!(doc.get("response_modes_supported").is_none());
}

async fn healthz() {
    let t = start(|c| c).await;
    let response = t
        .http
        .get(format!("{}/healthz", t.issuer))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "Health check passed");
}

// Login pages.

async fn login_hops() {
    let t = start(|c| c).await;
    let mut auth = Url::parse(&format!("{}/auth", t.issuer)).unwrap();
    auth.query_pairs_mut().extend_pairs([
        ("client_id", "mcp-client"),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", "openid"),
        ("state", "s"),
    ]);
    let (status, local) = t.get_location(auth).await;
    assert_eq!(status, StatusCode::FOUND);
    let local = local.unwrap();
    assert_eq!(local.path(), "/dex/auth/local");
    assert_eq!(query(&local, "client_id").as_deref(), Some("mcp-client"));
    let (status, login) = t.get_location(local).await;
    assert_eq!(status, StatusCode::FOUND);
    let login = login.unwrap();
    assert_eq!(login.path(), "/dex/auth/local/login");
    let pairs: Vec<String> = login.query_pairs().map(|(k, _)| k.into_owned()).collect();
    assert_eq!(pairs, ["back", "state"]);
    assert_eq!(query(&login, "back").as_deref(), Some(""));
    let page = t
        .http
        .get(login.clone())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("name=\"req\""), "no hidden request field");
}

async fn ipv6_loopback_redirect() {
    let t = start(|c| c).await;
    for (redirect, expected) in [
        ("http://[::1]/cb", StatusCode::BAD_REQUEST),
        ("http://[::1]:8080/cb", StatusCode::FOUND),
        ("http://localhost/cb", StatusCode::FOUND),
    ] {
        let (status, _) = t
            .authorize(&[
                ("client_id", "mcp-client"),
                ("redirect_uri", redirect),
                ("response_type", "code"),
                ("scope", "openid"),
            ])
            .await;
        assert_eq!(status, expected, "{redirect}");
    }
}

async fn unknown_client() {
    let t = start(|c| c).await;
    let (status, location) = t
        .authorize(&[
            ("client_id", "nobody"),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", "openid"),
        ])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(location.is_none());
}

async fn approval_prompt_force() {
    let t = start(|c| c).await;
    let (_, form) = t
        .authorize(&[
            ("client_id", "mcp-client"),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", "openid"),
            ("approval_prompt", "force"),
        ])
        .await;
    let response = t
        .http
        .post(form.unwrap())
        .form(&[("login", "alice@example.com"), ("password", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/dex/approval?req="), "{location}");
    assert!(location.contains("&hmac="), "{location}");
}

// CORS.

const ORIGIN: &str = "http://localhost:3001";

async fn cors_routes() {
    let t = start(auto_login).await;
    for (path, method) in [
        ("/.well-known/openid-configuration", "GET"),
        ("/keys", "GET"),
        ("/token", "POST"),
        ("/userinfo", "GET"),
        ("/token/introspect", "POST"),
        ("/auth", "GET"),
        ("/healthz", "GET"),
        ("/device/code", "POST"),
    ] {
        let url = format!("{}{path}", t.issuer);
        let request = if method == "GET" {
            t.http.get(url)
        } else {
            t.http.post(url)
        };
        let response = request.header("origin", ORIGIN).send().await.unwrap();
        let cors = response.headers().get("access-control-allow-origin");
        let expected = !matches!(path, "/auth" | "/healthz" | "/device/code");
        assert_eq!(cors.is_some(), expected, "{path}");
        if let Some(value) = cors {
            assert_eq!(value, ORIGIN, "{path}");
        }
    }
}

async fn cors_preflight() {
    let t = start(|c| c).await;
    let preflight = |headers: &'static str, method: &'static str, origin: &'static str| {
        t.http
            .request(reqwest::Method::OPTIONS, format!("{}/token", t.issuer))
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header("access-control-request-headers", headers)
            .send()
    };
    let refused = preflight("content-type", "POST", ORIGIN).await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let allowed = preflight("authorization", "POST", ORIGIN).await.unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(allowed.headers()["access-control-allow-origin"], ORIGIN);
    assert_eq!(
        allowed.headers()["access-control-allow-headers"],
        "authorization"
    );
    let method = preflight("", "DELETE", ORIGIN).await.unwrap();
    assert_eq!(method.status(), StatusCode::METHOD_NOT_ALLOWED);
    let foreign = preflight("", "POST", "http://evil.example").await.unwrap();
    assert!(
        foreign
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

// Device flow.

async fn device_start(t: &TestIdp, scope: &str) -> Value {
    let response = t
        .http
        .post(format!("{}/device/code", t.issuer))
        .form(&[("client_id", "mcp-client"), ("scope", scope)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

async fn poll(t: &TestIdp, device_code: &str) -> (StatusCode, Value) {
    t.token(&[
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", device_code),
    ])
    .await
}

async fn device_code_response() {
    let t = start(|c| c).await;
    let body = device_start(&t, "").await;
    let user_code = body["user_code"].as_str().unwrap();
    assert_eq!(user_code.len(), 9);
    assert_eq!(&user_code[4..5], "-");
    assert!(
        user_code
            .chars()
            .filter(|c| *c != '-')
            .all(|c| "BCDFGHJKLMNPQRSTVWXZ".contains(c))
    );
    assert_eq!(body["verification_uri"], format!("{}/device", t.issuer));
    assert_eq!(
        body["verification_uri_complete"],
        format!("{}/device?user_code={user_code}", t.issuer)
    );
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["interval"], 5);
}

async fn device_flow() {
    let t = start(|c| c).await;
    let body = device_start(&t, "openid offline_access email").await;
    let device_code = body["device_code"].as_str().unwrap();
    let pending = poll(&t, device_code).await;
    assert_eq!(
        error(&pending),
        (StatusCode::BAD_REQUEST, Some("authorization_pending"))
    );
    let early = poll(&t, device_code).await;
    assert_eq!(error(&early), (StatusCode::BAD_REQUEST, Some("slow_down")));

    // The user's side, over HTTP: the code page, the code (any case), the login form.
    let page = t
        .http
        .get(body["verification_uri_complete"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let user_code = body["user_code"].as_str().unwrap();
    assert!(page.contains(user_code) && page.contains("/dex/device/auth/verify_code"));
    let wrong = t
        .http
        .post(format!("{}/device/auth/verify_code", t.issuer))
        .form(&[("user_code", "BBBB-BBBB")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::OK);
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("Invalid or expired user code")
    );
    let verify = t
        .http
        .post(format!("{}/device/auth/verify_code", t.issuer))
        .form(&[("user_code", user_code.to_lowercase())])
        .send()
        .await
        .unwrap();
    assert_eq!(verify.status(), StatusCode::FOUND);
    let mut next = Url::parse(&t.base)
        .unwrap()
        .join(verify.headers()["location"].to_str().unwrap())
        .unwrap();
    assert_eq!(
        query(&next, "redirect_uri").as_deref(),
        Some("/device/callback")
    );
    // /auth -> /auth/local -> the form.
    for _ in 0..2 {
        let (status, location) = t.get_location(next).await;
        assert_eq!(status, StatusCode::FOUND);
        next = location.unwrap();
    }
    assert_eq!(next.path(), "/dex/auth/local/login");
    let logged_in = t
        .http
        .post(next)
        .form(&[("login", "alice@example.com"), ("password", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(logged_in.status(), StatusCode::SEE_OTHER);
    let callback = Url::parse(logged_in.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(callback.path(), "/dex/device/callback");
    let done = t.http.get(callback).send().await.unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    assert!(done.text().await.unwrap().contains("Login successful"));

    let (status, tokens) = poll(&t, device_code).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = t.verify(tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(access["email"], "alice@example.com");
    assert!(tokens["refresh_token"].is_string() && tokens["id_token"].is_string());
    // Dex's deprecated polling endpoint answers the same.
    let deprecated: Value = t
        .http
        .post(format!("{}/device/token", t.issuer))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", device_code),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(deprecated["access_token"], tokens["access_token"]);
    let unknown = poll(&t, "never-issued").await;
    assert_eq!(
        error(&unknown),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
}

async fn device_expired() {
    let t = start(|mut c| {
        c.device_lifetime = Duration::ZERO;
        c
    })
    .await;
    let body = device_start(&t, "openid").await;
    let answer = poll(&t, body["device_code"].as_str().unwrap()).await;
    assert_eq!(
        error(&answer),
        (StatusCode::BAD_REQUEST, Some("expired_token"))
    );
}

// Introspection.

async fn introspect(t: &TestIdp, token: &str) -> (StatusCode, Value) {
    let response = t
        .http
        .post(format!("{}/token/introspect", t.issuer))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

async fn introspection() {
    let t = start(auto_login).await;
    let body = tokens(&t, "openid offline_access email profile").await;
    let access = body["access_token"].as_str().unwrap();
    let (status, answer) = introspect(&t, access).await;
    assert_eq!(status, StatusCode::OK);
    let claims = claims(access);
    assert_eq!(answer["active"], true);
    assert_eq!(answer["client_id"], "mcp-client");
    assert_eq!(answer["sub"], claims["sub"]);
    assert_eq!(answer["exp"], claims["exp"]);
    assert_eq!(answer["nbf"], claims["iat"]);
    assert_eq!(answer["iss"], t.issuer);
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["token_use"], "access_token");
    assert_eq!(answer["ext"]["email"], "alice@example.com");
    let (_, answer) = introspect(&t, body["refresh_token"].as_str().unwrap()).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["token_use"], "refresh_token");
    assert_eq!(answer["client_id"], "mcp-client");
    for garbage in ["nope", "a.b.c", &format!("{access}x")] {
        let (status, answer) = introspect(&t, garbage).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer, serde_json::json!({"active": false}));
    }
    let get = t
        .http
        .get(format!("{}/token/introspect", t.issuer))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::BAD_REQUEST);
    let empty = t
        .http
        .post(format!("{}/token/introspect", t.issuer))
        .form(&[("x", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), StatusCode::BAD_REQUEST);
}

// Strictness kept.

async fn stricter_duplicates() {
    let t = start(|c| c).await;
    let url = format!(
        "{}/auth/local?client_id=mcp-client&client_id=mcp-browser&redirect_uri={REDIRECT}&response_type=code&scope=openid",
        t.issuer
    );
    let response = t.http.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get("location").is_none());
}
