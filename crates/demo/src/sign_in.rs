//! The first hop of the `--enterprise` run: the user signs in at the enterprise identity
//! provider, and the demo keeps the ID token it issues.
//!
//! In a company this is the single sign-on the user already did (in a browser, with
//! the company's identity provider); the MCP client gets the ID token from it. Here the
//! demo plays that part headlessly: the authorization code flow with PKCE for the public
//! client `mcp-client`, the identity provider logging the demo user in without a form
//! (`--auto-login`), each redirect followed by hand until the one to the redirect URI,
//! whose `code` and `state` are read without a listener. The ID token is written to a
//! file readable by its owner only, for `mcp-client --id-token-file`.

use std::path::Path;

use anyhow::{Context as _, bail};
use url::Url;

/// The client id the user signs in with (dex-config.yaml's public CLI client).
pub const CLIENT_ID: &str = "mcp-client";
/// A loopback redirect URI nothing listens on: the demo reads the code from the
/// redirect itself.
const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";
const MAX_HOPS: usize = 10;

/// Signs the demo user in at `issuer` and writes the ID token to `path`; returns its
/// header and claims, decoded for the trace (the token itself is not printed).
pub async fn id_token(issuer: &str, path: &Path) -> anyhow::Result<String> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let (challenge, verifier) = mcp_auth_client::pkce::new_pair();
    let state = mcp_auth_client::random::unguessable();
    let mut url = Url::parse(&format!("{issuer}/auth"))?;
    url.query_pairs_mut()
        .append_pair("client_id", CLIENT_ID)
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid email profile")
        .append_pair("state", &state)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let mut callback = None;
    for _ in 0..MAX_HOPS {
        let response = http
            .get(url.clone())
            .send()
            .await
            .with_context(|| format!("GET {issuer}/auth…"))?;
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(|l| url.join(l))
            .transpose()?;
        let Some(next) = location else {
            bail!(
                "the identity provider answered {} at {} instead of a redirect: is --auto-login on?",
                response.status(),
                url.path()
            );
        };
        if next.as_str().starts_with(REDIRECT_URI) {
            callback = Some(next);
            break;
        }
        url = next;
    }
    let callback = callback.context("too many redirects at the identity provider")?;
    let param = |name: &str| {
        callback
            .query_pairs()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.into_owned())
    };
    if let Some(error) = param("error") {
        bail!("the identity provider refused the sign-in: {error}");
    }
    if param("state").as_deref() != Some(state.as_str()) {
        bail!("the identity provider's redirect carries another state");
    }
    let code = param("code").context("no code in the identity provider's redirect")?;
    let response = http
        .post(format!("{issuer}/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("code_verifier", verifier.secret().as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", CLIENT_ID),
        ])
        .send()
        .await
        .with_context(|| format!("POST {issuer}/token"))?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.context("token response")?;
    if !status.is_success() {
        bail!(
            "the identity provider refused the code: {}",
            body["error"].as_str().unwrap_or("no error code")
        );
    }
    let id_token = body["id_token"]
        .as_str()
        .context("the token response has no id_token")?;
    write_private(path, id_token)?;
    mcp_auth_client::trace::jwt_claims(id_token).context("the ID token is not a JWT")
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}
