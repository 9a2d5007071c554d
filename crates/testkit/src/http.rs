//! Small HTTP helpers the tests share: a client that does not follow redirects, the
//! challenges of a response, MCP request bodies, and serving an app on a loopback port.

use std::{future::Future, net::SocketAddr, time::Duration};

use serde_json::{Value, json};
use tokio::net::TcpListener;

/// A client that does not follow redirects and gives up after 20 s.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("a reqwest client")
}

/// A client that does not follow redirects and has no overall timeout, for responses a
/// test reads for as long as it needs (event streams held open on purpose).
pub fn client_for_streams() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a reqwest client")
}

/// Every `WWW-Authenticate` value (`Bearer` and `DPoP` challenges), joined by `, `.
pub fn www_authenticate(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().unwrap_or("<non-ascii>").to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A JSON-RPC `initialize` request (id 1) from a client named `client_name`.
pub fn initialize(client_name: &str) -> Value {
    json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": client_name, "version": "0"}
        }
    })
}

/// A JSON-RPC `tools/call` request.
pub fn call(id: u64, tool: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}})
}

/// Follows the redirects of an authorization request from `start` by hand, each
/// `Location` (relative ones included) resolved against the URL that answered it, until
/// one points at `redirect_uri` (a prefix of the URL); returns that URL, with the
/// authorization response in its query. At most `max_hops` requests are made. This is
/// what a browser does for a server that approves without a person (dev-idp with
/// auto-login: `/auth` -> `/auth/local` -> the redirect URI, as Dex's hops go).
///
/// # Errors
/// When an answer is not a redirect (a person is wanted), has no usable `Location`, the
/// request fails, or the redirect URI is not reached within `max_hops`.
pub async fn follow_redirects(
    client: &reqwest::Client,
    start: url::Url,
    redirect_uri: &str,
    max_hops: usize,
) -> anyhow::Result<url::Url> {
    let mut location = start;
    for _ in 0..max_hops {
        if location.as_str().starts_with(redirect_uri) {
            return Ok(location);
        }
        let response = client.get(location.clone()).send().await?;
        anyhow::ensure!(
            response.status().is_redirection(),
            "{} answered {} instead of a redirect (is auto-login on?)",
            location.path(),
            response.status()
        );
        let next = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| anyhow::anyhow!("{} redirected without a Location", location.path()))?;
        location = location.join(next)?;
    }
    anyhow::ensure!(
        location.as_str().starts_with(redirect_uri),
        "the authorization server did not redirect back to the client within {max_hops} hops"
    );
    Ok(location)
}

/// An IPv4 address of this machine that is not loopback, if it has one: the interface
/// a UDP socket would use to reach a documentation address (nothing is sent). Tests of
/// what a client does with plain `http://` off loopback serve on it.
pub fn non_loopback_ipv4() -> Option<std::net::Ipv4Addr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    match socket.local_addr().ok()?.ip() {
        std::net::IpAddr::V4(ip) if !ip.is_loopback() && !ip.is_unspecified() => Some(ip),
        _ => None,
    }
}

/// Binds `127.0.0.1:0`, hands the listener and its base URL (`http://127.0.0.1:<port>`)
/// to `serve`, spawns what it returns, and returns the URL.
///
/// # Panics
/// When the socket cannot be bound, or (in the spawned task) when serving fails.
pub async fn serve_on_loopback<F, E>(serve: impl FnOnce(TcpListener, String) -> F) -> String
where
    F: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Debug,
{
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("a loopback port");
    let url = format!(
        "http://{}",
        listener.local_addr().expect("a bound socket's address")
    );
    let served = serve(listener, url.clone());
    tokio::spawn(async move { served.await.expect("the server runs") });
    url
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{Router, http::header::LOCATION, routing::get};

    #[tokio::test]
    async fn follows_relative_locations_up_to_the_redirect_uri() {
        let app = Router::new()
            .route(
                "/dex/auth",
                get(|| async { (axum::http::StatusCode::FOUND, [(LOCATION, "auth/local")]) }),
            )
            .route(
                "/dex/auth/local",
                get(|| async {
                    (
                        axum::http::StatusCode::SEE_OTHER,
                        [(LOCATION, "http://127.0.0.1:9/callback?code=c&state=s")],
                    )
                }),
            )
            .route("/dex/login", get(|| async { "a form" }));
        let base =
            serve_on_loopback(|listener, _| async move { axum::serve(listener, app).await }).await;
        let client = client();
        let start = url::Url::parse(&format!("{base}/dex/auth?client_id=x")).unwrap();
        let reached = follow_redirects(&client, start.clone(), "http://127.0.0.1:9/callback", 5)
            .await
            .unwrap();
        assert_eq!(
            reached.as_str(),
            "http://127.0.0.1:9/callback?code=c&state=s"
        );

        let error = follow_redirects(&client, start, "http://127.0.0.1:9/callback", 1)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("within 1 hops"), "{error}");
        let form = url::Url::parse(&format!("{base}/dex/login")).unwrap();
        let error = follow_redirects(&client, form, "http://127.0.0.1:9/callback", 5)
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("200 OK instead of a redirect"),
            "{error}"
        );
    }
}
