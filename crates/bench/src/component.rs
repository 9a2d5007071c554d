//! The components the harness starts as child processes.

use crate::cli::ResourceServerArgs;

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
    mcp_resource_server::serve_with_shutdown(config, listener, async {
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
