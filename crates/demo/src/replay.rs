//! `--dpop`: after the client's steps, the demo plays someone who captured one
//! DPoP-protected request, access token and proof together, and sends it again. The
//! first delivery is served; the second is refused, because the resource server remembers
//! every proof's `jti` for as long as the proof's `iat` is acceptable (RFC 9449 §11.1).
//! The token alone is no use either: without the client's private key no new proof can be
//! made, and as a `Bearer` token it is refused as a downgrade.

use std::path::Path;

use anyhow::{Context as _, bail};
use mcp_auth_client::cache::Cache;
use mcp_auth_client::dpop::DpopKey;
use url::Url;

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"demo-replay","version":"1"}}}"#;

/// One delivery of the captured request: its status and `WWW-Authenticate` values.
async fn deliver(
    http: &reqwest::Client,
    url: &Url,
    token: &str,
    proof: &str,
) -> anyhow::Result<(u16, String)> {
    let response = http
        .post(url.clone())
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(INITIALIZE)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let challenge = response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ");
    Ok((response.status().as_u16(), challenge))
}

/// Sends one freshly proven request twice; true when the first is served and the replay
/// is refused with `invalid_dpop_proof`.
///
/// # Errors
/// When the client's cache holds no DPoP-bound token or key for `mcp_url`, or the
/// resource server cannot be reached.
pub async fn show(mcp_url: &str, cache_dir: &Path) -> anyhow::Result<bool> {
    let cache = Cache::new(cache_dir);
    let tokens = cache
        .load_tokens(mcp_url)?
        .context("the client left no tokens for the MCP server")?;
    if !tokens.token_type.eq_ignore_ascii_case("dpop") {
        bail!(
            "the client's token is a {} token, not DPoP-bound",
            tokens.token_type
        );
    }
    let key = DpopKey::load(&cache, &tokens.issuer, &tokens.client.client_id)?
        .context("the client's DPoP key is not in its cache")?;
    let url = Url::parse(mcp_url)?;
    let token = tokens.access_token.secret();
    let (proof, claims) = key.proof("POST", &url, Some(token))?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;

    eprintln!(
        "[replay] a request of the client, captured: its DPoP-bound token and one proof \
         (jti {}, htm {}, htu {}, key {})",
        claims["jti"].as_str().unwrap_or_default(),
        claims["htm"].as_str().unwrap_or_default(),
        claims["htu"].as_str().unwrap_or_default(),
        key.thumbprint()
    );
    let (first, _) = deliver(&http, &url, token, &proof).await?;
    eprintln!("[replay] first delivery: POST {url} initialize (DPoP) -> {first}");
    let (second, challenge) = deliver(&http, &url, token, &proof).await?;
    eprintln!(
        "[replay] the same request and proof again -> {second}: {}",
        if challenge.is_empty() {
            "no challenge"
        } else {
            &challenge
        }
    );
    let refused = second == 401 && challenge.contains("invalid_dpop_proof");
    if refused {
        eprintln!(
            "[replay] refused: the resource server had seen this proof's jti; a thief \
             would need the client's private key to make a new proof"
        );
    }
    Ok(first == 200 && refused)
}
