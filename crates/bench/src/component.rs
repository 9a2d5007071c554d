//! The components the harness starts as child processes.

use crate::options::ResourceServerArgs;

/// Runs the project's resource server from its own command-line flags (plus the token
/// cache capacity, which only the library exposes), printing `READY <mcp url>` once it
/// listens, until SIGTERM or Ctrl-C.
///
/// # Errors
/// A wrong setting or a socket failure.
pub async fn resource_server(args: ResourceServerArgs) -> anyhow::Result<()> {
    let mut config = args.server.to_config()?;
    if let Some(capacity) = args.token_cache {
        config = config.with_token_cache_capacity(capacity);
    }
    config.validate()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr()?;
    println!("READY http://{addr}/mcp");
    resource_server::serve_with_shutdown(config, &args.server.options(), listener, async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    })
    .await?;
    Ok(())
}

/// Runs a bare axum SSE server as a reference for the SSE case's memory figures: `GET
/// /sse` answers the same `endpoint` event and keep-alives as the resource server, and
/// closes the stream at the `exp` of the bearer token, which it reads WITHOUT verifying
/// it (no authorization, no MCP handler). Prints `READY <url>` once it listens.
///
/// # Errors
/// A socket failure.
pub async fn bare_sse(listen: std::net::SocketAddr) -> anyhow::Result<()> {
    use axum::{
        Router,
        http::HeaderMap,
        response::sse::{Event, KeepAlive, Sse},
        routing::get,
    };
    use futures::{StreamExt, stream};

    async fn open(headers: HeaderMap) -> impl axum::response::IntoResponse {
        let lifetime = unverified_exp(&headers)
            .map(|exp| exp.saturating_sub(crate::authz::unix_now()))
            .unwrap_or(60);
        let id: u64 = rand_id();
        let endpoint = Event::default()
            .event("endpoint")
            .data(format!("/messages?sessionId={id:016x}"));
        let events = stream::once(async move { Ok::<_, std::convert::Infallible>(endpoint) })
            .chain(stream::pending())
            .take_until(tokio::time::sleep(std::time::Duration::from_secs(lifetime)));
        Sse::new(events).keep_alive(KeepAlive::default())
    }

    serve_reference(listen, Router::new().route("/sse", get(open))).await
}

/// What the bare HTTP reference answers to every `POST /mcp`: the resource server's
/// JSON-RPC reply to the harness's `tools/call`, as a constant.
pub const BARE_HTTP_REPLY: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"2 add 3 = 5"}],"structuredContent":{"result":5.0},"isError":false}}"#;

/// Runs a bare axum HTTP server as the floor of the load cases: `POST /mcp` answers
/// [`BARE_HTTP_REPLY`] without reading the request (no authorization, no JSON-RPC, no
/// MCP), on the same tokio runtime and hyper HTTP/1 server as the resource server.
/// Prints `READY <url>` once it listens.
///
/// # Errors
/// A socket failure.
pub async fn bare_http(listen: std::net::SocketAddr) -> anyhow::Result<()> {
    use axum::{Router, http::header, routing::post};

    async fn reply() -> impl axum::response::IntoResponse {
        (
            [(header::CONTENT_TYPE, "application/json")],
            BARE_HTTP_REPLY,
        )
    }

    serve_reference(listen, Router::new().route("/mcp", post(reply))).await
}

/// Serves a reference server's `router` on `listen` with `TCP_NODELAY` (as the resource
/// server sets it), printing `READY <url>` once it listens.
async fn serve_reference(listen: std::net::SocketAddr, router: axum::Router) -> anyhow::Result<()> {
    use axum::serve::ListenerExt;

    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    println!("READY http://{addr}/mcp");
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router).await?;
    Ok(())
}

fn rand_id() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::Instant::now())
}

/// The `exp` claim of the bearer token, read without any verification.
fn unverified_exp(headers: &axum::http::HeaderMap) -> Option<u64> {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let token = value.strip_prefix("Bearer ")?;
    let payload = token.split('.').nth(1)?;
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    claims["exp"].as_u64()
}
