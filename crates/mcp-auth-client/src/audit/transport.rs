//! Transport security: https outside loopback for every URL the audit met, and the
//! `Origin` check that defends local servers against DNS rebinding.
//!
//! A foreign `Origin` must be refused with 403. Without a token, a server whose token
//! check answers first (401) does not show whether it checks `Origin`; the audit then
//! says so, and with `--login` sends the foreign `Origin` with a valid token
//! (`login.rs`).

use mcp_auth_proto::wellknown::is_loopback_or_https;
use url::Url;

use super::challenge::{describe, initialize_body, mcp_post};
use super::probe::{FOREIGN_ORIGIN, Reply, foreign_origin};
use super::report::Findings;
use super::{CheckId, Context};
use crate::trace::Trace;

const AREA: &str = "audit";

pub(super) fn https(ctx: &Context, f: &mut Findings) {
    let id = CheckId::TransportHttps;
    let mut insecure = Vec::new();
    let mut checked = 0usize;
    for (what, raw) in &ctx.urls {
        let Ok(url) = Url::parse(raw) else { continue };
        checked += 1;
        if !is_loopback_or_https(&url) {
            let line = format!("{url} ({what})");
            if !insecure.contains(&line) {
                insecure.push(line);
            }
        }
    }
    if insecure.is_empty() {
        f.pass(
            id,
            format!("{checked} URLs, each https or on a loopback host"),
        );
    } else {
        f.fail(
            id,
            format!("plain http off loopback: {}", super::list(&insecure)),
            "serve every endpoint over https (http is only for localhost, 127.0.0.0/8 and [::1])",
        );
    }
}

/// Judges the answer to a foreign `Origin`. `with_token` says whether a valid token went
/// with it (then a refusal can only be about the `Origin`); without one, `tokenless` is
/// the status of the same request without the `Origin`.
pub(super) fn judge_origin(reply: &Reply, with_token: bool, tokenless: u16, f: &mut Findings) {
    let id = CheckId::TransportOrigin;
    let seen = format!(
        "POST with Origin: {FOREIGN_ORIGIN}{} -> {}",
        if with_token { " and a valid token" } else { "" },
        describe(reply)
    );
    match reply.status {
        403 if !with_token && tokenless == 403 => f.na(
            id,
            format!("{seen}: so is any request without a token, so the Origin check cannot be seen without one; --login sends a valid one"),
        ),
        403 => f.pass(id, seen),
        200..=299 => f.fail(
            id,
            format!("{seen}: served"),
            "check Origin on every request and answer 403 to origins that are not yours (DNS rebinding lets any web page reach a local server)",
        ),
        401 if !with_token => f.na(
            id,
            format!("{seen}: the token check answers first, so the Origin check cannot be seen without a token; --login sends a valid one"),
        ),
        _ => f.warn(
            id,
            seen,
            "refuse a foreign Origin with 403, as the transport specification says",
        ),
    }
}

pub(super) async fn origin_without_token(ctx: &Context, f: &mut Findings, trace: &Trace) {
    let mut req = mcp_post(ctx, &ctx.server, &initialize_body());
    for (name, value) in foreign_origin() {
        req = req.header(name, value);
    }
    match ctx.probe.send(req, true).await {
        Ok(r) => {
            trace.detail(
                AREA,
                format!(
                    "POST {} with a foreign Origin -> {}",
                    ctx.server,
                    describe(&r)
                ),
            );
            judge_origin(&r, false, ctx.tokenless_status, f);
        }
        Err(e) => f.na(CheckId::TransportOrigin, format!("no answer: {e}")),
    }
}
