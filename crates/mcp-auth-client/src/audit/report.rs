//! The outcome of each check, and the report in three forms: lines for a terminal,
//! JSON for machines, and markdown for a file.
//!
//! # JSON schema (`mcp-client-audit/1`)
//! ```json
//! {"schema": "mcp-client-audit/1", "server": "<MCP URL>", "login": false,
//!  "summary": {"pass": 0, "fail": 0, "warn": 0, "not_applicable": 0},
//!  "checks": [{"id": "challenge.status", "status": "pass", "title": "...",
//!              "section": "...", "seen": "...", "fix": null}]}
//! ```
//! `status` is one of `pass`, `fail`, `warn`, `not_applicable`; `fix` is a string for
//! `fail` and `warn`, else `null`. Every check of [`CheckId::ALL`] appears once, in that
//! order.
//!
//! # Security
//! Nothing here holds a token; [`Report::redact`] replaces a secret wherever a server
//! echoed it into what the audit saw.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::catalogue::CheckId;

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The server does what the rule asks.
    Pass,
    /// A MUST is broken.
    Fail,
    /// A SHOULD is not followed, or something works only for some clients.
    Warn,
    /// The check could not apply (nothing to check, or it needs `--login`).
    NotApplicable,
}

impl Status {
    /// The label of a report line.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Warn => "WARN",
            Status::NotApplicable => "N/A",
        }
    }
}

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    status: Status,
    seen: String,
    fix: Option<String>,
}

/// The outcomes recorded so far, by check. A later outcome for a check replaces an
/// earlier one (the audit after login knows more than before).
#[derive(Debug, Default)]
pub(crate) struct Findings(BTreeMap<CheckId, Outcome>);

impl Findings {
    fn set(&mut self, id: CheckId, status: Status, seen: String, fix: Option<String>) {
        self.0.insert(id, Outcome { status, seen, fix });
    }

    pub(crate) fn pass(&mut self, id: CheckId, seen: impl Into<String>) {
        self.set(id, Status::Pass, seen.into(), None);
    }

    pub(crate) fn fail(&mut self, id: CheckId, seen: impl Into<String>, fix: impl Into<String>) {
        self.set(id, Status::Fail, seen.into(), Some(fix.into()));
    }

    pub(crate) fn warn(&mut self, id: CheckId, seen: impl Into<String>, fix: impl Into<String>) {
        self.set(id, Status::Warn, seen.into(), Some(fix.into()));
    }

    pub(crate) fn na(&mut self, id: CheckId, why: impl Into<String>) {
        self.set(id, Status::NotApplicable, why.into(), None);
    }

    /// Marks every check of `ids` that has no outcome yet as not applicable.
    pub(crate) fn na_unset(&mut self, ids: &[CheckId], why: &str) {
        for id in ids {
            if !self.0.contains_key(id) {
                self.na(*id, why);
            }
        }
    }

    /// The status recorded for `id`, if any.
    pub(crate) fn status(&self, id: CheckId) -> Option<Status> {
        self.0.get(&id).map(|o| o.status)
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// The stable id.
    pub id: &'static str,
    /// The verdict.
    pub status: Status,
    /// What is checked.
    pub title: &'static str,
    /// Where the rule is written.
    pub section: &'static str,
    /// What the audit saw (or, when not applicable, why).
    pub seen: String,
    /// What to change, for `fail` and `warn`.
    pub fix: Option<String>,
}

/// How many checks ended in each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Passed.
    pub pass: usize,
    /// Failed.
    pub fail: usize,
    /// Warnings.
    pub warn: usize,
    /// Not applicable.
    pub not_applicable: usize,
}

/// The audit of one MCP server.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The schema of the JSON form.
    pub schema: &'static str,
    /// The MCP server URL audited.
    pub server: String,
    /// Whether the audit logged in.
    pub login: bool,
    /// The count per status.
    pub summary: Summary,
    /// Every check, in catalogue order.
    pub checks: Vec<CheckResult>,
}

impl Report {
    /// The report of `findings`; checks without an outcome are not applicable.
    pub(crate) fn new(server: &str, login: bool, mut findings: Findings) -> Self {
        let checks: Vec<CheckResult> = CheckId::ALL
            .iter()
            .map(|&id| {
                let o = findings.0.remove(&id).unwrap_or(Outcome {
                    status: Status::NotApplicable,
                    seen: "not evaluated".to_owned(),
                    fix: None,
                });
                CheckResult {
                    id: id.id(),
                    status: o.status,
                    title: id.title(),
                    section: id.section(),
                    seen: o.seen,
                    fix: o.fix,
                }
            })
            .collect();
        let mut summary = Summary::default();
        for c in &checks {
            match c.status {
                Status::Pass => summary.pass += 1,
                Status::Fail => summary.fail += 1,
                Status::Warn => summary.warn += 1,
                Status::NotApplicable => summary.not_applicable += 1,
            }
        }
        Self {
            schema: "mcp-client-audit/1",
            server: server.to_owned(),
            login,
            summary,
            checks,
        }
    }

    /// Whether any check failed.
    #[must_use]
    pub fn has_failures(&self) -> bool {
        self.summary.fail > 0
    }

    /// The result of the check `id`.
    #[must_use]
    pub fn check(&self, id: CheckId) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.id == id.id())
    }

    /// Replaces every occurrence of `secret` in what was seen and in the fixes.
    pub fn redact(&mut self, secret: &str) {
        if secret.is_empty() {
            return;
        }
        for c in &mut self.checks {
            if c.seen.contains(secret) {
                c.seen = c.seen.replace(secret, "[token]");
            }
            if let Some(fix) = &mut c.fix
                && fix.contains(secret)
            {
                *fix = fix.replace(secret, "[token]");
            }
        }
    }

    /// The report for a terminal: a heading, one line per check (`STATUS id  title
    /// [section]`), the `seen` and `fix` lines under each failure and warning, and a
    /// closing count.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "audit of {} ({})\n",
            self.server,
            if self.login {
                "without a token, then logged in"
            } else {
                "without a token; --login checks the tokens too"
            }
        );
        let width = self.checks.iter().map(|c| c.id.len()).max().unwrap_or(0);
        for c in &self.checks {
            let _ = writeln!(
                out,
                "{:<4}  {:<width$}  {}  [{}]",
                c.status.label(),
                c.id,
                c.title,
                c.section
            );
            match c.status {
                Status::Fail | Status::Warn => {
                    let _ = writeln!(out, "      seen: {}", one_line(&c.seen));
                    if let Some(fix) = &c.fix {
                        let _ = writeln!(out, "      fix:  {}", one_line(fix));
                    }
                }
                Status::NotApplicable => {
                    let _ = writeln!(out, "      ({})", one_line(&c.seen));
                }
                Status::Pass => {}
            }
        }
        let s = self.summary;
        let _ = writeln!(
            out,
            "\n{} checks: {} pass, {} fail, {} warn, {} not applicable",
            self.checks.len(),
            s.pass,
            s.fail,
            s.warn,
            s.not_applicable
        );
        out
    }

    /// The report as JSON (see the module documentation for the schema).
    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The report as a markdown document: a summary, then a table of every check.
    #[must_use]
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let s = self.summary;
        let _ = writeln!(out, "# MCP authorization audit of `{}`\n", self.server);
        let _ = writeln!(
            out,
            "{}. {} checks: **{} fail**, {} warn, {} pass, {} not applicable.\n",
            if self.login {
                "Audited without a token, then logged in with `mcp-client`'s own flow"
            } else {
                "Audited without a token (no login)"
            },
            self.checks.len(),
            s.fail,
            s.warn,
            s.pass,
            s.not_applicable
        );
        let _ = writeln!(out, "| status | check | what | seen | fix | rule |");
        let _ = writeln!(out, "|---|---|---|---|---|---|");
        for c in &self.checks {
            let _ = writeln!(
                out,
                "| {} | `{}` | {} | {} | {} | {} |",
                c.status.label(),
                c.id,
                cell(c.title),
                cell(&c.seen),
                cell(c.fix.as_deref().unwrap_or("")),
                cell(c.section)
            );
        }
        out
    }
}

/// Text for one line: control characters (a server's text may hold any) become spaces.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Text for a markdown table cell.
fn cell(s: &str) -> String {
    one_line(s)
        .replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('<', "&lt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let mut f = Findings::default();
        f.pass(CheckId::ChallengeStatus, "401");
        f.fail(
            CheckId::PrmResource,
            "resource is http://h/x|y\nnext",
            "name the server",
        );
        f.warn(CheckId::ChallengeScope, "no scope", "add scope=\"...\"");
        f.na(CheckId::LoginFlow, "needs --login");
        Report::new("http://h/mcp", false, f)
    }

    #[test]
    fn every_check_appears_once_in_order() {
        let r = report();
        let ids: Vec<&str> = r.checks.iter().map(|c| c.id).collect();
        let all: Vec<&str> = CheckId::ALL.iter().map(|c| c.id()).collect();
        assert_eq!(ids, all);
        assert_eq!(r.summary.pass, 1);
        assert_eq!(r.summary.fail, 1);
        assert_eq!(r.summary.warn, 1);
        assert_eq!(r.summary.not_applicable, CheckId::ALL.len() - 3);
        assert!(r.has_failures());
    }

    #[test]
    fn renderings() {
        let r = report();
        let text = r.to_text();
        assert!(text.contains("FAIL  prm.resource"), "{text}");
        assert!(
            text.contains("      seen: resource is http://h/x|y next"),
            "{text}"
        );
        assert!(text.contains("      fix:  name the server"), "{text}");
        let md = r.to_markdown();
        assert!(md.contains("http://h/x\\|y next"), "{md}");
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json["schema"], "mcp-client-audit/1");
        let check = &json["checks"][CheckId::ALL
            .iter()
            .position(|c| *c == CheckId::ChallengeStatus)
            .unwrap()];
        assert_eq!(check["id"], "challenge.status");
        assert_eq!(check["status"], "pass");
        assert!(check["fix"].is_null());
        assert_eq!(json["summary"]["not_applicable"], CheckId::ALL.len() - 3);
    }

    #[test]
    fn redacts_secrets() {
        let mut f = Findings::default();
        f.fail(
            CheckId::TokenQuery,
            "echoed s3cr3t back",
            "do not echo s3cr3t",
        );
        let mut r = Report::new("http://h/mcp", true, f);
        r.redact("s3cr3t");
        assert!(!r.to_json().contains("s3cr3t"));
        assert!(r.to_text().contains("echoed [token] back"));
    }
}
