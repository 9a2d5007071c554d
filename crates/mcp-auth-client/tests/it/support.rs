//! What the client tests share: a headless client, its trace, the checks on what it
//! leaves behind, and the project's resource server in-process. The other servers it
//! meets are the test kit's: `testkit::client_side` and `testkit::dex`.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_auth_client::authorize::AuthorizeOptions;
use mcp_auth_client::cache::Cache;
use mcp_auth_client::registration::ClientConfig;
use mcp_auth_client::trace::{Trace, Verbosity};
use mcp_auth_client::{ConnectionOptions, McpConnection};
use testkit::client_side::{Break, ClientSideConfig};
use url::Url;

/// The kit's client-side servers as these tests use them: correct, with the
/// authorization server metadata served the way a static file server would (not as
/// JSON), which the client accepts.
pub fn config() -> ClientSideConfig {
    ClientSideConfig::default().with(Break::AsAsOctetStream)
}

/// The project's resource server on 127.0.0.1:0, set up by `configure` from its base
/// URL (`http://127.0.0.1:<port>`); stopped on drop.
pub struct ResourceServer {
    pub base: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ResourceServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ResourceServer {
    pub async fn start(configure: impl FnOnce(&str) -> mcp_resource_server::Config) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let config = configure(&base);
        let task = tokio::spawn(async move {
            let _ = resource_server::serve(config, listener).await;
        });
        Self { base, task }
    }

    /// `<base>/mcp`.
    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.base)
    }
}

/// McpConnection options for a headless client of `server_url`.
pub fn options(server_url: &str) -> ConnectionOptions {
    let client = ClientConfig {
        client_name: "mcp-client tests".into(),
        ..ClientConfig::default()
    };
    ConnectionOptions::new(
        Url::parse(server_url).unwrap(),
        AuthorizeOptions::headless(client, Duration::from_secs(10)),
    )
}

/// A headless session and the buffer its trace goes to.
pub fn session(
    options: ConnectionOptions,
    cache_dir: &Path,
) -> (McpConnection, Arc<Mutex<Vec<u8>>>) {
    let (trace, buf) = Trace::capture(Verbosity::Verbose);
    let session = McpConnection::new(options, trace, Cache::new(cache_dir)).unwrap();
    (session, buf)
}

/// The trace so far, as text.
pub fn text(buf: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&buf.lock().unwrap()).into_owned()
}

/// Asserts no secret the mock issued appears in `s`.
pub fn assert_no_secrets(s: &str) {
    assert!(
        !s.contains("secret-access-") && !s.contains("secret-refresh-") && !s.contains("code-"),
        "a token or code leaked:\n{s}"
    );
}

/// Every file under `dir`, recursively, as (path, contents).
pub fn files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files(&p));
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}
