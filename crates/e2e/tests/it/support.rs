//! The project's own servers, started in-process on ephemeral loopback ports, and small
//! helpers shared by the scenarios.

use std::{path::PathBuf, sync::Once};

use anyhow::Context;
use dev_idp::{DevIdp, DexConfig, Features, IdpConfig};
use mcp_resource_server::Config as RsConfig;
use tokio::{net::TcpListener, task::JoinHandle};

/// Sends the servers' traces to the test output (shown for failing tests) once.
pub fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A server task that is aborted on drop.
#[derive(Debug)]
pub struct Running {
    /// Its base URL (resource server: public URL; dev-idp: issuer).
    pub url: String,
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `127.0.0.1:0`.
pub async fn loopback_listener() -> anyhow::Result<TcpListener> {
    TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot bind 127.0.0.1:0")
}

/// Starts the project's resource server on an ephemeral port. `configure` gets the
/// public URL (`http://<host>:<port>`) and returns the configuration to serve.
pub async fn start_resource_server(
    host: &str,
    configure: impl FnOnce(&str) -> RsConfig,
) -> anyhow::Result<Running> {
    let listener = loopback_listener().await?;
    let port = listener.local_addr()?.port();
    let url = format!("http://{host}:{port}");
    let config = configure(&url);
    config
        .validate()
        .with_context(|| format!("resource server configuration for {url}"))?;
    let task = tokio::spawn(async move {
        if let Err(err) = mcp_resource_server::serve(config, listener).await {
            tracing::error!(%err, "resource server stopped");
        }
    });
    Ok(Running { url, task })
}

/// The repository's `dex-config.yaml` (the file the README and docker-compose use).
pub fn dex_config() -> anyhow::Result<DexConfig> {
    let path = repo_root().join("dex-config.yaml");
    DexConfig::load(&path).with_context(|| format!("loading {}", path.display()))
}

/// Starts dev-idp from the repository's `dex-config.yaml` on an ephemeral port, with
/// issuer `http://<host>:<port><path>`, the given features, and auto-login of the
/// configuration's static user.
pub async fn start_dev_idp(host: &str, path: &str, features: Features) -> anyhow::Result<Running> {
    let dex = dex_config()?;
    let user = dex
        .static_passwords
        .first()
        .context("dex-config.yaml has no static password user")?
        .email
        .clone();
    let listener = loopback_listener().await?;
    let port = listener.local_addr()?.port();
    let issuer = format!("http://{host}:{port}{path}");
    let config = IdpConfig::from_dex(dex)?
        .with_issuer(&issuer)?
        .with_features(features)
        .with_auto_login(&user)?;
    let idp = DevIdp::new(config)?;
    let task = tokio::spawn(async move {
        if let Err(err) = idp.serve(listener).await {
            tracing::error!(%err, "dev-idp stopped");
        }
    });
    Ok(Running { url: issuer, task })
}
