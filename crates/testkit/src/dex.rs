//! dev-idp in Dex mode from the repository's `dex-config.yaml`, in-process on a loopback
//! port: the Dex the client tests log in to (feature `dex`).

use std::path::PathBuf;

use anyhow::Context as _;
use dev_idp::{DevIdp, DexConfig, Features, IdpConfig};
use tokio::{net::TcpListener, task::JoinHandle};

/// The repository root (where `dex-config.yaml` is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The repository's `dex-config.yaml` (the file the README and docker-compose use).
pub fn dex_config() -> anyhow::Result<DexConfig> {
    let path = repo_root().join("dex-config.yaml");
    DexConfig::load(&path).with_context(|| format!("loading {}", path.display()))
}

/// `config`, logging the first static user of `dex-config.yaml` in without the form, so
/// that a headless client can complete a login.
pub fn with_static_user_login(config: IdpConfig) -> anyhow::Result<IdpConfig> {
    let dex = dex_config()?;
    let user = dex
        .static_passwords
        .first()
        .context("dex-config.yaml has no static password user")?;
    Ok(config.with_auto_login(&user.email)?)
}

/// A running dev-idp; stopped on drop.
#[derive(Debug)]
pub struct LocalDex {
    /// `http://<host>:<port><path>`.
    pub issuer: String,
    task: JoinHandle<()>,
}

impl Drop for LocalDex {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LocalDex {
    /// Binds `127.0.0.1:0` and serves `dex-config.yaml` with issuer
    /// `http://<host>:<port><path>`, after `configure` (features, auto-login, clients).
    pub async fn start_at(
        host: &str,
        path: &str,
        configure: impl FnOnce(IdpConfig) -> anyhow::Result<IdpConfig>,
    ) -> anyhow::Result<Self> {
        let dex = dex_config()?;
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot bind 127.0.0.1:0")?;
        let issuer = format!("http://{host}:{}{path}", listener.local_addr()?.port());
        let config = configure(IdpConfig::from_dex(dex)?.with_issuer(&issuer)?)?;
        let idp = DevIdp::new(config)?;
        let task = tokio::spawn(async move {
            if let Err(err) = idp.serve(listener).await {
                tracing::error!(%err, "dev-idp stopped");
            }
        });
        Ok(Self { issuer, task })
    }

    /// Issuer `http://127.0.0.1:<port>/dex`, after `configure`.
    pub async fn start(configure: impl FnOnce(IdpConfig) -> IdpConfig) -> Self {
        Self::start_at("127.0.0.1", "/dex", |c| Ok(configure(c)))
            .await
            .expect("dev-idp starts from dex-config.yaml")
    }

    /// Issuer `http://127.0.0.1:<port>/dex`, with `features`, logging the static user in
    /// without the form.
    pub async fn auto_login(features: Features) -> Self {
        Self::start_at("127.0.0.1", "/dex", |c| {
            with_static_user_login(c.with_features(features))
        })
        .await
        .expect("dev-idp starts from dex-config.yaml")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_its_discovery_document_at_the_issuer() {
        let dex = LocalDex::auto_login(Features::default()).await;
        assert!(dex.issuer.starts_with("http://127.0.0.1:"));
        assert!(dex.issuer.ends_with("/dex"));
        let url = format!("{}/.well-known/openid-configuration", dex.issuer);
        let md: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
        assert_eq!(md["issuer"], dex.issuer.as_str());
    }
}
