//! `mcp-client audit`: a report card of an MCP server's authorization setup.
//!
//! The audit looks at a server from outside, as a client would, and checks every MUST and
//! SHOULD of the MCP authorization specification (2025-11-25 and 2026-07-28) and of RFC
//! 9728, 8414, 8707, 6750 and 9207 that can be observed that way. One line per check, with
//! a stable id ([`CheckId`]), a status, the rule's section and, for a failure or a
//! warning, what was seen and what to change.
//!
//! In order:
//! 1. `challenge`: requests without a token (every method), with an invalid token, and
//!    the 401 challenge they get;
//! 2. `prm`: Protected Resource Metadata at the challenge's URL and both well-known
//!    URLs;
//! 3. `as_metadata`: the authorization server's metadata at the RFC 8414 and OIDC
//!    locations, and what it offers (PKCE, registration, `iss`, DPoP);
//! 4. `transport`: https outside loopback, the `Origin` check;
//! 5. with `--login`, `login`: the client's own authorization flow, then what the token
//!    shows and how the server treats it (query string, foreign `Origin`, a call that needs
//!    more scope).
//!
//! # Security
//! Each request of the audit itself has a time limit, reads a bounded body and follows no
//! redirect; the login is the client's own flow, with the client's limits. The audit sends
//! the token it obtains only to the MCP URL it audits (the server the token was issued
//! for) and never prints it: the report and the trace are scrubbed of it even where a
//! server echoed it. One check puts the token in a query string on purpose
//! (`token.query`), to that same server: servers that log URLs then have it in their logs,
//! so audit with a short-lived token.

pub mod catalogue;
pub mod report;

mod as_metadata;
mod challenge;
mod login;
mod prm;
mod probe;
mod transport;

use std::time::Duration;

use mcp_auth_proto::wellknown::canonical_resource;
use mcp_auth_proto::{AuthorizationServerMetadata, BearerChallenge, ProtectedResourceMetadata};
use serde_json::Value;
use url::Url;

pub use catalogue::CheckId;
pub use report::{CheckResult, Report, Status, Summary};

use crate::authorize::AuthorizeOptions;
use crate::cache::Cache;
use crate::error::{ClientError, Result};
use crate::trace::Trace;
use probe::Probe;
use report::Findings;

/// Default time limit of one request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default limit of a body read: metadata documents and MCP replies are far smaller.
pub const DEFAULT_MAX_BODY: usize = 256 * 1024;

/// How to log in, for the checks that need a token.
#[derive(Debug, Clone)]
pub struct LoginOptions {
    /// The client's authorization flow options (browser or headless, client identity).
    pub authorize: AuthorizeOptions,
    /// Scopes to ask for beyond the specification's selection.
    pub extra_scopes: mcp_auth_proto::Scopes,
    /// A tool that needs more scope than the first login grants, called after login to
    /// see the server's `insufficient_scope` challenge, with its arguments.
    pub step_up_tool: Option<(String, Value)>,
}

/// What to audit, and how.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// The MCP endpoint.
    pub server_url: Url,
    /// Log in after the checks without a token (`--login`).
    pub login: Option<LoginOptions>,
    /// Time limit of each request.
    pub timeout: Duration,
    /// Largest body read from any response.
    pub max_body: usize,
}

impl AuditOptions {
    /// An audit of `server_url` without login, with the default limits.
    #[must_use]
    pub fn new(server_url: Url) -> Self {
        Self {
            server_url,
            login: None,
            timeout: DEFAULT_TIMEOUT,
            max_body: DEFAULT_MAX_BODY,
        }
    }
}

/// Where a Protected Resource Metadata document was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PrmLocation {
    /// The `resource_metadata` URL of the challenge.
    Challenge,
    /// `/.well-known/oauth-protected-resource/<path of the MCP URL>`.
    PathInserted,
    /// `/.well-known/oauth-protected-resource` (the same URL when the MCP URL has no path).
    Root,
}

/// A metadata document that was fetched and parsed, with where it came from.
#[derive(Debug, Clone)]
struct Found<T> {
    url: Url,
    doc: T,
    json_content_type: bool,
    content_type: Option<String>,
}

/// What the checks learn and share, in the order they run.
#[derive(Debug)]
struct Context {
    probe: Probe,
    /// The MCP URL as given.
    server: Url,
    /// Its canonical form (RFC 8707).
    canonical: String,
    /// The status of `POST initialize` without a token.
    tokenless_status: u16,
    /// The Bearer challenge of the 401 (or of whatever refusal came).
    challenge: Option<BearerChallenge>,
    /// Every PRM document found, by location.
    prm_docs: Vec<(PrmLocation, Found<ProtectedResourceMetadata>)>,
    /// The authorization server's issuer, from the PRM.
    issuer: Option<String>,
    /// The metadata a client would use.
    as_metadata: Option<Found<AuthorizationServerMetadata>>,
    /// URLs seen along the way, with what they are, for the https check.
    urls: Vec<(String, String)>,
}

impl Context {
    /// The document a client would use: challenge URL, then path-inserted, then root.
    fn prm(&self) -> Option<&Found<ProtectedResourceMetadata>> {
        [
            PrmLocation::Challenge,
            PrmLocation::PathInserted,
            PrmLocation::Root,
        ]
        .iter()
        .find_map(|l| {
            self.prm_docs
                .iter()
                .find(|(loc, _)| loc == l)
                .map(|(_, f)| f)
        })
    }

    fn note_url(&mut self, what: impl Into<String>, url: impl Into<String>) {
        self.urls.push((what.into(), url.into()));
    }
}

/// Runs the audit. The flow's trace (and, with `-v`, each request of the audit) goes to
/// `trace`; `cache` is only read, for a registration to reuse at login.
///
/// # Errors
/// Only for a URL that cannot be an MCP server URL or does not answer at all; everything a
/// server does wrong is a line of the report.
pub async fn run(options: &AuditOptions, trace: &Trace, cache: &Cache) -> Result<Report> {
    let canonical = canonical_resource(&options.server_url)
        .map_err(|source| ClientError::server_url(&options.server_url, source))?;
    let mut ctx = Context {
        probe: Probe::new(options.timeout, options.max_body),
        server: options.server_url.clone(),
        canonical,
        tokenless_status: 0,
        challenge: None,
        prm_docs: Vec::new(),
        issuer: None,
        as_metadata: None,
        urls: Vec::new(),
    };
    ctx.note_url("the MCP URL", options.server_url.to_string());
    let mut f = Findings::default();
    challenge::run(&mut ctx, &mut f, trace).await?;
    prm::run(&mut ctx, &mut f, trace).await;
    as_metadata::run(&mut ctx, &mut f, trace).await;
    challenge::unsigned_token(&ctx, &mut f, trace).await;
    transport::https(&ctx, &mut f);
    transport::origin_without_token(&ctx, &mut f, trace).await;
    let mut secrets = Vec::new();
    match &options.login {
        Some(login) => {
            secrets = login::run(&ctx, &mut f, trace, cache, login).await;
        }
        None => f.na_unset(login::CHECKS, "needs --login"),
    }
    let mut report = Report::new(options.server_url.as_str(), options.login.is_some(), f);
    for secret in &secrets {
        report.redact(secret);
    }
    Ok(report)
}

/// Runs the audit for the command line: prints the report (text, or JSON with `json`),
/// writes it as markdown to `report_file` if given, and exits non-zero if a check failed.
///
/// # Errors
/// A URL that cannot be audited, or a report file that cannot be written.
pub async fn command(
    options: &AuditOptions,
    json: bool,
    report_file: Option<&std::path::Path>,
    trace: &Trace,
    cache: &Cache,
) -> anyhow::Result<std::process::ExitCode> {
    use std::io::Write as _;
    let report = run(options, trace, cache).await?;
    if let Some(path) = report_file {
        std::fs::write(path, report.to_markdown())
            .map_err(|e| anyhow::anyhow!("cannot write the report to {}: {e}", path.display()))?;
        trace.step(
            "audit",
            format!("markdown report written to {}", path.display()),
        );
    }
    let text = if json {
        report.to_json()
    } else {
        report.to_text()
    };
    // A closed pipe (`| head`) is not an error.
    let _ = writeln!(std::io::stdout().lock(), "{}", text.trim_end());
    Ok(if report.has_failures() {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    })
}

/// A list of strings for a report line: `a, b, c`, or `none`.
fn list<T: AsRef<str>>(items: &[T]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(", ")
    }
}
