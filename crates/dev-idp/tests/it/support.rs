//! A server on 127.0.0.1:0 configured from the repository's dex-config.yaml, and helpers
//! to walk the authorization code flow by hand.

use std::path::PathBuf;

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dev_idp::config::StaticClient;
use dev_idp::{DevIdp, DexConfig, IdpConfig};
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::Value;
use url::Url;

pub const REDIRECT: &str = "http://127.0.0.1:49152/callback";

pub fn repo_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(name)
}

pub struct TestIdp {
    pub idp: DevIdp,
    pub base: String,
    pub issuer: String,
    pub http: reqwest::Client,
}

/// The repository's dex-config.yaml plus two test clients: `stranger` (public, not a
/// trusted peer of anyone) and `backend` (confidential, secret `backend-secret`).
pub fn dex_config() -> DexConfig {
    let mut dex = DexConfig::load(&repo_file("dex-config.yaml")).expect("dex-config.yaml");
    dex.static_clients
        .push(serde_yaml_ng::from_str::<StaticClient>("id: stranger\npublic: true\n").unwrap());
    dex.static_clients.push(
        serde_yaml_ng::from_str::<StaticClient>(&format!(
            "id: backend\nsecret: backend-secret\nredirectURIs: ['{REDIRECT}']\n"
        ))
        .unwrap(),
    );
    dex
}

pub async fn start(configure: impl FnOnce(IdpConfig) -> IdpConfig) -> TestIdp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let issuer = format!("{base}/dex");
    let config = IdpConfig::from_dex(dex_config())
        .unwrap()
        .with_issuer(&issuer)
        .unwrap();
    let idp = DevIdp::new(configure(config)).unwrap();
    tokio::spawn(idp.clone().serve(listener));
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    TestIdp {
        idp,
        base,
        issuer,
        http,
    }
}

pub fn pkce_pair() -> (String, String) {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let challenge = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()));
    (verifier, challenge)
}

pub fn query(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.into_owned())
}

pub fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

impl TestIdp {
    /// GET `url`; returns the status and the Location header resolved against it.
    pub async fn get_location(&self, url: Url) -> (StatusCode, Option<Url>) {
        let response = self.http.get(url.clone()).send().await.unwrap();
        let location = response
            .headers()
            .get("location")
            .map(|l| url.join(l.to_str().unwrap()).unwrap());
        (response.status(), location)
    }

    /// GET /auth, which always sends the browser on to /auth/local with the same
    /// parameters (302), then GET that; returns its status and Location header.
    pub async fn authorize(&self, params: &[(&str, &str)]) -> (StatusCode, Option<Url>) {
        let mut url = Url::parse(&format!("{}/auth", self.issuer)).unwrap();
        url.query_pairs_mut().extend_pairs(params);
        let (status, location) = self.get_location(url).await;
        assert_eq!(status, StatusCode::FOUND);
        let local = location.unwrap();
        assert_eq!(local.path(), "/dex/auth/local");
        self.get_location(local).await
    }

    /// GET /auth, then the login form with the given credentials; returns the final
    /// redirect to the client.
    pub async fn login(&self, params: &[(&str, &str)], email: &str, password: &str) -> Url {
        let (status, location) = self.authorize(params).await;
        assert_eq!(status, StatusCode::FOUND);
        let form_url = location.unwrap();
        assert!(form_url.path().ends_with("/auth/local/login"), "{form_url}");
        assert_eq!(query(&form_url, "back").as_deref(), Some(""));
        let page = self.http.get(form_url.clone()).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(page.headers()["x-frame-options"], "DENY");
        let html = page.text().await.unwrap();
        assert!(html.contains("<form method=\"post\""), "{html}");
        let state = query(&form_url, "state").unwrap();
        assert!(html.contains(&state));
        let response = self
            .http
            .post(form_url)
            .form(&[("login", email), ("password", password)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        Url::parse(response.headers()["location"].to_str().unwrap()).unwrap()
    }

    /// Exchanges `code` for tokens as the public client `mcp-client` with PKCE, adding
    /// `extra` form fields (`resource`, ...).
    pub async fn exchange(
        &self,
        code: &str,
        verifier: &str,
        extra: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", "mcp-client"),
            ("code_verifier", verifier),
        ];
        form.extend_from_slice(extra);
        self.token(&form).await
    }

    pub async fn token(&self, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}/token", self.issuer))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert_eq!(response.headers()["cache-control"], "no-store");
        (status, response.json().await.unwrap())
    }

    /// A code for `mcp-client` with S256 through auto-login (the server must have it on).
    pub async fn code(&self, scope: &str, extra: &[(&str, &str)]) -> (String, String) {
        let (verifier, challenge) = pkce_pair();
        let mut params = vec![
            ("client_id", "mcp-client"),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", scope),
            ("state", "st"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        params.extend_from_slice(extra);
        let (status, location) = self.authorize(&params).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{location:?}");
        let location = location.unwrap();
        let code = query(&location, "code").unwrap_or_else(|| panic!("no code in {location}"));
        (code, verifier)
    }

    pub async fn jwks(&self) -> Value {
        self.http
            .get(format!("{}/keys", self.issuer))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Verifies a JWT against the published JWKS with jsonwebtoken.
    pub async fn verify(&self, jwt: &str) -> Value {
        let header = jsonwebtoken::decode_header(jwt).unwrap();
        let kid = header.kid.expect("kid");
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(self.jwks().await).unwrap();
        let jwk = jwks.find(&kid).expect("kid published");
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_issuer(&[&self.issuer]);
        validation.validate_aud = false;
        jsonwebtoken::decode::<Value>(jwt, &key, &validation)
            .unwrap()
            .claims
    }
}

pub fn auto_login(config: IdpConfig) -> IdpConfig {
    config.with_auto_login("alice@example.com").unwrap()
}
