//! The project's own servers, started in-process on ephemeral loopback ports, and small
//! helpers shared by the scenarios.

use std::{
    path::Path,
    sync::{Arc, Mutex, Once},
    time::Duration,
};

use anyhow::Context;
use dev_idp::Features;
use mcp_auth_client::{
    ConnectionOptions, McpConnection, TransportChoice,
    authorize::AuthorizeOptions,
    cache::Cache,
    registration::ClientConfig,
    trace::{Trace, Verbosity},
};
use mcp_resource_server::Config as RsConfig;
use serde_json::Value;
pub use testkit::dex::repo_root;
use testkit::dex::{LocalDex, with_static_user_login};
use tokio::{net::TcpListener, task::JoinHandle};
use url::Url;

/// Sends the servers' traces to the test output (shown for failing tests) once.
pub fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .with_ansi(false)
            .try_init();
    });
}

/// A server task that is aborted on drop.
#[derive(Debug)]
pub struct Running {
    /// Its base URL (resource server: public URL; dev-idp: issuer).
    pub url: String,
    task: JoinHandle<()>,
}

impl Running {
    /// Wraps a spawned server task.
    pub fn new(url: String, task: JoinHandle<()>) -> Self {
        Self { url, task }
    }
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
    configure: impl FnOnce(&str) -> anyhow::Result<RsConfig>,
) -> anyhow::Result<Running> {
    let listener = loopback_listener().await?;
    let port = listener.local_addr()?.port();
    let url = format!("http://{host}:{port}");
    let config = configure(&url)?;
    config
        .validate()
        .with_context(|| format!("resource server configuration for {url}"))?;
    let task = tokio::spawn(async move {
        if let Err(err) = resource_server::serve(config, listener).await {
            tracing::error!(%err, "resource server stopped");
        }
    });
    Ok(Running { url, task })
}

/// Starts dev-idp from the repository's `dex-config.yaml` on an ephemeral port, with
/// issuer `http://<host>:<port><path>`, the given features, and auto-login of the
/// configuration's static user.
pub async fn start_dev_idp(host: &str, path: &str, features: Features) -> anyhow::Result<LocalDex> {
    LocalDex::start_at(host, path, |config| {
        with_static_user_login(config.with_features(features))
    })
    .await
}

/// The project's client, as a library: a session plus the trace it wrote.
pub struct ProjectClient {
    /// The session.
    pub session: McpConnection,
    trace: Arc<Mutex<Vec<u8>>>,
}

impl ProjectClient {
    /// A headless client session for `server_url` with its token cache in `cache_dir`;
    /// see [`Self::options`].
    pub fn new(
        server_url: &str,
        transport: TransportChoice,
        cache_dir: &Path,
        refresh_margin_secs: i64,
    ) -> anyhow::Result<Self> {
        Self::with_options(
            Self::options(server_url, transport, refresh_margin_secs)?,
            cache_dir,
        )
    }

    /// Headless session options that register dynamically unless a client id is set.
    /// `refresh_margin_secs` is how early an expiring access token is refreshed.
    pub fn options(
        server_url: &str,
        transport: TransportChoice,
        refresh_margin_secs: i64,
    ) -> anyhow::Result<ConnectionOptions> {
        let server_url =
            Url::parse(server_url).with_context(|| format!("server URL {server_url}"))?;
        let client = ClientConfig {
            client_name: "mcp-client (e2e)".into(),
            ..ClientConfig::default()
        };
        let authorize = AuthorizeOptions::headless(client, Duration::from_secs(60));
        Ok(ConnectionOptions {
            transport,
            refresh_margin_secs,
            ..ConnectionOptions::new(server_url, authorize)
        })
    }

    /// A session with `options`, its token cache in `cache_dir`, and a captured trace.
    pub fn with_options(options: ConnectionOptions, cache_dir: &Path) -> anyhow::Result<Self> {
        let (trace, buffer) = Trace::capture(Verbosity::Verbose);
        let session = McpConnection::new(options, trace, Cache::new(cache_dir))?;
        Ok(Self {
            session,
            trace: buffer,
        })
    }

    /// Everything the client's trace said so far.
    pub fn trace(&self) -> String {
        String::from_utf8_lossy(&self.trace.lock().expect("trace lock")).into_owned()
    }

    /// The trace, attached to an error.
    pub fn explain(&self, err: impl Into<anyhow::Error>) -> anyhow::Error {
        err.into()
            .context(format!("client trace:\n{}", tail(&self.trace(), 60)))
    }

    /// Connects (authorizing as needed), lists the tools and checks `expected` are listed.
    pub async fn connect_and_list(&mut self, expected: &[&str]) -> anyhow::Result<Vec<String>> {
        if let Err(err) = self.session.connect().await {
            return Err(self
                .explain(err)
                .context("connect (initialize, authorizing as needed)"));
        }
        let tools = match self.session.list_tools().await {
            Ok(tools) => tools,
            Err(err) => return Err(self.explain(err).context("tools/list")),
        };
        let names: Vec<String> = tools
            .iter()
            .filter_map(|t| t.get("name").and_then(Value::as_str).map(str::to_string))
            .collect();
        for name in expected {
            anyhow::ensure!(
                names.iter().any(|n| n == name),
                "tool {name} is not listed: {names:?}"
            );
        }
        Ok(names)
    }

    /// Calls `calculator` with 2 + 3 (or `tool` with `arguments`) and returns the text.
    pub async fn call_text(&mut self, tool: &str, arguments: Value) -> anyhow::Result<String> {
        let result = match self.session.call_tool(tool, arguments).await {
            Ok(result) => result,
            Err(err) => return Err(self.explain(err).context(format!("tools/call {tool}"))),
        };
        anyhow::ensure!(
            result.get("isError").and_then(Value::as_bool) != Some(true),
            "tool {tool} answered an error: {result}"
        );
        Ok(result
            .get("content")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default())
    }
}

/// `calculator` arguments for 2 + 3.
pub fn two_plus_three() -> Value {
    serde_json::json!({"operation": "add", "a": 2, "b": 3})
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The header and claims of a JWT, decoded without verification (the servers verify;
/// the tests only look at what was issued).
pub fn jwt_header_and_claims(token: &str) -> anyhow::Result<(Value, Value)> {
    use base64::Engine as _;
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        anyhow::bail!("the access token is not a JWT (expected three dot-separated parts)");
    };
    let decode = |part: &str| -> anyhow::Result<Value> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part)?;
        Ok(serde_json::from_slice(&bytes)?)
    };
    Ok((decode(header)?, decode(claims)?))
}
