//! `mcp-client audit`, over real sockets: against deliberately broken servers (one break
//! per check), the project's own servers in each of their modes, the TypeScript SDK's
//! server with oidc-provider, and through the command line.

mod broken;
mod cli;
mod peers;
mod project;

use std::time::Duration;

use mcp_auth_client::audit::{self, AuditOptions, CheckId, LoginOptions, Report, Status};
use mcp_auth_client::authorize::AuthorizeOptions;
use mcp_auth_client::cache::Cache;
use mcp_auth_client::registration::ClientConfig;
use mcp_auth_client::trace::{Trace, Verbosity};
use mcp_auth_proto::Scopes;
use serde_json::json;
use testkit::client_side::{Break, ClientSideConfig, ClientSideServer};
use url::Url;

/// The kit's client-side servers, complete in every respect the audit checks, with
/// `broken` broken.
pub async fn server(broken: Option<Break>) -> ClientSideServer {
    let mut config = ClientSideConfig::complete();
    config.breaks.extend(broken);
    ClientSideServer::start(config).await
}

/// Headless login options, with `tool` as the call that needs more scope.
pub fn login(client: ClientConfig, tool: Option<&str>) -> LoginOptions {
    LoginOptions {
        authorize: AuthorizeOptions::headless(
            ClientConfig {
                client_name: "mcp-client audit tests".into(),
                ..client
            },
            Duration::from_secs(30),
        ),
        extra_scopes: Scopes::default(),
        step_up_tool: tool.map(|t| (t.to_owned(), json!({}))),
    }
}

/// Audits `url` (with `login` when given); returns the report and the verbose trace.
pub async fn audit(url: &str, login: Option<LoginOptions>) -> (Report, String) {
    let mut options = AuditOptions::new(Url::parse(url).unwrap());
    options.timeout = Duration::from_secs(10);
    options.login = login;
    let (trace, buf) = Trace::capture(Verbosity::Verbose);
    let report = audit::run(&options, &trace, &Cache::disabled())
        .await
        .unwrap_or_else(|e| panic!("audit of {url}: {e}"));
    let text = String::from_utf8_lossy(&buf.lock().unwrap()).into_owned();
    (report, text)
}

/// The status of `id`.
pub fn status(report: &Report, id: CheckId) -> Status {
    report
        .check(id)
        .expect("every check is in the report")
        .status
}

/// Asserts the status of each `(id, status)`, showing the whole report otherwise.
pub fn expect(report: &Report, expected: &[(CheckId, Status)]) {
    for (id, want) in expected {
        assert_eq!(
            status(report, *id),
            *want,
            "{}: expected {want:?}\n{}",
            id.id(),
            report.to_text()
        );
    }
}

/// Asserts that no check failed.
pub fn expect_no_failure(report: &Report) {
    assert!(!report.has_failures(), "{}", report.to_text());
}
