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
