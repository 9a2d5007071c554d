//! After login (`--login`): the client's own authorization flow, then what the token and
//! the server show.
//!
//! The flow is the one every `mcp-client` command runs (discovery, registration, PKCE,
//! `state`, `resource`, the browser or `--headless`), without the token cache: the audit
//! wants to see a fresh authorization response, and keeps no token. With the token, and
//! only towards the MCP URL it was issued for:
//! - `initialize`: the token must be accepted;
//! - its `aud`, when it is a JWT, must name the resource that was asked for (RFC 8707);
//! - the same request with the token in the query string instead of the header must be
//!   refused;
//! - with a foreign `Origin`, it must be refused with 403;
//! - a call of `--tool` (one that needs more scope than the first login grants) must get
//!   403 `insufficient_scope` with the scopes it needs.
//!
//! Sessions the server opens are deleted at the end.

use crate::dpop::DpopPolicy;
use base64::Engine;
use mcp_auth_proto::{BearerError, Scopes};
use reqwest::Method;
use serde_json::{Value, json};

use super::challenge::{bearer, describe, initialize_body, mcp_post};
use super::probe::{Reply, foreign_origin};
use super::report::{Findings, Status};
use super::transport::judge_origin;
use super::{CheckId, Context, LoginOptions};
use crate::cache::Cache;
use crate::discovery;
use crate::error::ClientError;
use crate::mcp::event_stream::EventParser;
use crate::mcp::jsonrpc::{self, LATEST_PROTOCOL_VERSION};
use crate::trace::{Trace, describe_token};
use crate::{authorize, http};

const AREA: &str = "audit";

/// `text` without `token`: servers sometimes quote what they refuse.
fn scrub(text: &str, token: &str) -> String {
    text.replace(token, "[token]")
}

/// The checks that only a login can answer.
pub(super) const CHECKS: &[CheckId] = &[
    CheckId::LoginFlow,
    CheckId::LoginIss,
    CheckId::TokenAccepted,
    CheckId::TokenAudience,
    CheckId::TokenQuery,
    CheckId::ScopeInsufficient,
];

/// Logs in and runs the checks that need a token. Returns the secrets obtained, for the
/// report to be scrubbed of them.
pub(super) async fn run(
    ctx: &Context,
    f: &mut Findings,
    trace: &Trace,
    cache: &Cache,
    login: &LoginOptions,
) -> Vec<String> {
    let oauth = http::oauth_client();
    let discovered =
        match discovery::discover(&oauth, trace, &ctx.server, ctx.challenge.as_ref()).await {
            Ok(d) => d,
            Err(e) => {
                f.fail(
                    CheckId::LoginFlow,
                    format!("discovery stopped: {e}"),
                    "see the failures above: the client stops where a MUST is broken",
                );
                f.na_unset(CHECKS, "the login did not complete");
                return Vec::new();
            }
        };
    let scopes = authorize::select_scopes(
        trace,
        ctx.challenge.as_ref(),
        &discovered,
        None,
        &login.extra_scopes,
    );
    let as_ = &discovered.authorization_server;
    let advertised = as_.metadata.authorization_response_iss_parameter_supported;
    // The audit's requests present the token as Bearer: it logs in for a Bearer token.
    let mut options = login.authorize.clone();
    options.dpop = DpopPolicy::Never;
    if as_
        .metadata
        .extra
        .contains_key("dpop_signing_alg_values_supported")
    {
        trace.step(
            "audit",
            "logging in for a Bearer token (the audit's checks send it as Bearer, not DPoP)",
        );
    }
    let authorized = match authorize::authorize(
        &oauth,
        trace,
        cache,
        &discovered,
        &options,
        &scopes,
    )
    .await
    {
        Ok(a) => a,
        Err(e) => {
            if let ClientError::CallbackIssuerMismatch { expected, found } = &e {
                let seen = if found == "(missing)" {
                    "no iss in the authorization response, though the metadata promises it"
                        .to_owned()
                } else {
                    format!("iss={found} in the authorization response, not {expected}")
                };
                f.fail(
                    CheckId::LoginIss,
                    seen,
                    format!("send iss={expected} (the metadata's issuer, exactly) with every authorization response"),
                );
            }
            f.fail(
                CheckId::LoginFlow,
                format!("the authorization stopped: {e}"),
                "see the message: the client stops where the server or the authorization server breaks a rule",
            );
            f.na_unset(CHECKS, "the login did not complete");
            return Vec::new();
        }
    };
    let tokens = authorized.tokens;
    let token = tokens.access_token.secret().to_owned();
    let mut secrets = vec![token.clone()];
    secrets.extend(tokens.refresh_token.as_ref().map(|t| t.secret().to_owned()));
    secrets.extend(tokens.id_token.as_ref().map(|t| t.secret().to_owned()));
    let granted = tokens
        .scope
        .clone()
        .or_else(|| authorized.requested_scope.as_ref().map(Scopes::to_string))
        .unwrap_or_default();
    f.pass(
        CheckId::LoginFlow,
        format!(
            "authorized by {} ({} client {}), scope \"{granted}\", access token {}",
            as_.issuer,
            authorized.client.source,
            authorized.client.client_id,
            describe_token(&token)
        ),
    );
    iss(
        &as_.issuer,
        advertised,
        authorized.callback_issuer.as_deref(),
        f,
    );
    audience(&token, &discovered.resource, &ctx.canonical, f);

    let mut sessions = Vec::new();
    let accepted = accepted(ctx, &token, &mut sessions, f, trace).await;
    if let Some(version) = accepted {
        if let Some(sid) = sessions.first().cloned() {
            let note = jsonrpc::notification("notifications/initialized", None);
            let req = with_session(
                mcp_post(ctx, &ctx.server, &note),
                &token,
                Some(&sid),
                &version,
            );
            let _ = ctx.probe.send(req, true).await;
        }
        let sid = sessions.first().cloned();
        insufficient_scope(
            ctx,
            &token,
            sid.as_deref(),
            &version,
            login,
            &granted,
            f,
            trace,
        )
        .await;
        origin_with_token(ctx, &token, &mut sessions, f, trace).await;
        query(ctx, &token, &mut sessions, f, trace).await;
    } else {
        let why = "the token was not accepted, so refusals cannot be told apart";
        f.na_unset(&[CheckId::TokenQuery, CheckId::ScopeInsufficient], why);
        if f.status(CheckId::TransportOrigin) == Some(Status::NotApplicable) {
            f.na(CheckId::TransportOrigin, why);
        }
    }
    for sid in sessions {
        let req = ctx
            .probe
            .request(Method::DELETE, &ctx.server)
            .bearer_auth(&token)
            .header("mcp-session-id", &sid);
        if let Ok(r) = ctx.probe.send(req, false).await {
            trace.detail(
                AREA,
                format!(
                    "DELETE {} (end of the audit's session) -> {}",
                    ctx.server, r.status
                ),
            );
        }
    }
    secrets
}

fn iss(issuer: &str, advertised: bool, iss: Option<&str>, f: &mut Findings) {
    let id = CheckId::LoginIss;
    match (iss, advertised) {
        (Some(iss), true) => f.pass(id, format!("iss={iss}, as the metadata promises")),
        (Some(iss), false) => f.fail(
            id,
            format!("iss={iss} in the authorization response, but the metadata does not set authorization_response_iss_parameter_supported"),
            "set authorization_response_iss_parameter_supported: true in the metadata, as every authorization server that sends iss must",
        ),
        (None, _) => f.warn(
            id,
            "no iss in the authorization response",
            format!("send iss={issuer} with every authorization response (RFC 9207) and advertise it: it lets clients detect mix-up attacks"),
        ),
    }
}

/// The `aud` of a JWT, without verifying anything (the server does that).
fn jwt_audience(token: &str) -> Option<Vec<String>> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    Some(match claims.get("aud") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    })
}

fn audience(token: &str, resource: &str, canonical: &str, f: &mut Findings) {
    let id = CheckId::TokenAudience;
    let Some(aud) = jwt_audience(token) else {
        f.na(
            id,
            "the access token is opaque (not a JWT): its audience cannot be read from outside",
        );
        return;
    };
    if aud.iter().any(|a| a == resource || a == canonical) {
        f.pass(id, format!("aud {}", super::list(&aud)));
    } else {
        f.warn(
            id,
            format!("aud {} does not name {resource}, the resource the token was asked for", super::list(&aud)),
            "have the authorization server honour RFC 8707: put the requested resource in aud, so that the token is good for this server only",
        );
    }
}

/// Adds the token and, after initialization, the session id and the protocol version.
fn with_session(
    req: reqwest::RequestBuilder,
    token: &str,
    session: Option<&str>,
    version: &str,
) -> reqwest::RequestBuilder {
    let mut req = req
        .bearer_auth(token)
        .header("mcp-protocol-version", version);
    if let Some(sid) = session {
        req = req.header("mcp-session-id", sid);
    }
    req
}

/// The JSON-RPC message of a reply: a JSON body, or the first `message` event of an
/// event stream.
fn rpc_message(reply: &Reply) -> Option<Value> {
    if reply.media_type().as_deref() == Some("text/event-stream") {
        let mut parser = EventParser::default();
        parser
            .push(&reply.body)
            .ok()?
            .into_iter()
            .filter(|e| e.event == "message")
            .find_map(|e| serde_json::from_str(&e.data).ok())
    } else {
        serde_json::from_slice(&reply.body).ok()
    }
}

/// Records a session id the server assigned, to delete it at the end.
fn keep_session(reply: &Reply, sessions: &mut Vec<String>) {
    if let Some(sid) = reply.header("mcp-session-id")
        && !sessions.iter().any(|s| s == sid)
    {
        sessions.push(sid.to_owned());
    }
}

/// `initialize` with the token: `Some(protocol version)` when it was accepted.
async fn accepted(
    ctx: &Context,
    token: &str,
    sessions: &mut Vec<String>,
    f: &mut Findings,
    trace: &Trace,
) -> Option<String> {
    let id = CheckId::TokenAccepted;
    let req = mcp_post(ctx, &ctx.server, &initialize_body()).bearer_auth(token);
    let reply = match ctx.probe.send(req, true).await {
        Ok(r) => r,
        Err(e) => {
            f.fail(
                id,
                format!("initialize with the token: {e}"),
                "the MCP endpoint must answer",
            );
            return None;
        }
    };
    trace.detail(
        AREA,
        scrub(
            &format!(
                "POST {} initialize with the token -> {}",
                ctx.server,
                describe(&reply)
            ),
            token,
        ),
    );
    keep_session(&reply, sessions);
    match reply.status {
        200..=299 => {
            let result = rpc_message(&reply).and_then(|m| m.get("result").cloned());
            let version = result
                .as_ref()
                .and_then(|r| r.get("protocolVersion"))
                .and_then(Value::as_str)
                .unwrap_or(LATEST_PROTOCOL_VERSION)
                .to_owned();
            let name = result
                .as_ref()
                .and_then(|r| r.pointer("/serverInfo/name"))
                .and_then(Value::as_str)
                .unwrap_or("?");
            f.pass(
                id,
                format!(
                    "initialize -> {} (server {name}, protocol {version})",
                    reply.status
                ),
            );
            Some(version)
        }
        401 | 403 => {
            f.fail(
                id,
                format!("initialize with the token just issued -> {}", describe(&reply)),
                "accept the tokens your authorization server issues for this resource: check the accepted issuer and audience (the token's aud names the resource the client asked for)",
            );
            None
        }
        s => {
            f.warn(
                id,
                format!("initialize with the token -> {s} {}", reply.summary()),
                "answer an authorized initialize with its result",
            );
            None
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn insufficient_scope(
    ctx: &Context,
    token: &str,
    session: Option<&str>,
    version: &str,
    login: &LoginOptions,
    granted: &str,
    f: &mut Findings,
    trace: &Trace,
) {
    let id = CheckId::ScopeInsufficient;
    let Some((tool, arguments)) = &login.step_up_tool else {
        f.na(
            id,
            "name a tool that needs more scope than the first login grants with --tool (and --tool-args)",
        );
        return;
    };
    let call = jsonrpc::request(
        2,
        "tools/call",
        Some(json!({"name": tool, "arguments": arguments})),
    );
    let req = with_session(mcp_post(ctx, &ctx.server, &call), token, session, version);
    let reply = match ctx.probe.send(req, true).await {
        Ok(r) => r,
        Err(e) => {
            f.na(id, format!("tools/call {tool}: {e}"));
            return;
        }
    };
    trace.detail(
        AREA,
        scrub(
            &format!(
                "POST {} tools/call {tool} -> {}",
                ctx.server,
                describe(&reply)
            ),
            token,
        ),
    );
    let seen = format!(
        "tools/call {tool} with scope \"{granted}\" -> {}",
        describe(&reply)
    );
    match reply.status {
        403 => match bearer(&reply) {
            Some(c) if c.error == Some(BearerError::InsufficientScope) => {
                let mut lacking = Vec::new();
                if c.scope.as_deref().is_none_or(|s| s.trim().is_empty()) {
                    lacking.push("scope (the scopes the call needs)");
                }
                if c.resource_metadata.is_none() {
                    lacking.push("resource_metadata");
                }
                if lacking.is_empty() {
                    f.pass(id, seen);
                } else {
                    f.warn(
                        id,
                        format!("{seen}; the challenge lacks {}", lacking.join(" and ")),
                        "put scope=\"<every scope the call needs>\" and resource_metadata in the insufficient_scope challenge, so that clients can step up in one go",
                    );
                }
            }
            _ => f.warn(
                id,
                format!("{seen}; no error=\"insufficient_scope\" challenge"),
                "answer WWW-Authenticate: Bearer error=\"insufficient_scope\", scope=\"<scopes needed>\": without it clients cannot tell a missing scope from a refusal",
            ),
        },
        401 => f.fail(
            id,
            seen,
            "answer a valid token that lacks scope with 403 and error=\"insufficient_scope\": a 401 makes clients log in again for the same scopes, over and over",
        ),
        200..=299 => {
            let message = rpc_message(&reply);
            let why = match message.as_ref().and_then(|m| m.get("error")) {
                Some(e) => format!(
                    "the call got a JSON-RPC error ({}): the server did not ask for more scope; check --tool and --tool-args",
                    e.get("message").and_then(Value::as_str).unwrap_or("?")
                ),
                None => format!("{tool} ran with the scope of the first login (\"{granted}\"): it needs no more"),
            };
            f.na(id, why);
        }
        _ => f.warn(
            id,
            seen,
            "answer a call that needs more scope with 403 and error=\"insufficient_scope\", scope=\"...\"",
        ),
    }
}

async fn origin_with_token(
    ctx: &Context,
    token: &str,
    sessions: &mut Vec<String>,
    f: &mut Findings,
    trace: &Trace,
) {
    let mut req = mcp_post(ctx, &ctx.server, &initialize_body()).bearer_auth(token);
    for (name, value) in foreign_origin() {
        req = req.header(name, value);
    }
    match ctx.probe.send(req, true).await {
        Ok(r) => {
            trace.detail(
                AREA,
                scrub(
                    &format!(
                        "POST {} with the token and a foreign Origin -> {}",
                        ctx.server,
                        describe(&r)
                    ),
                    token,
                ),
            );
            keep_session(&r, sessions);
            judge_origin(&r, true, ctx.tokenless_status, f);
        }
        Err(e) => {
            if f.status(CheckId::TransportOrigin) != Some(Status::Pass) {
                f.na(CheckId::TransportOrigin, format!("no answer: {e}"));
            }
        }
    }
}

async fn query(
    ctx: &Context,
    token: &str,
    sessions: &mut Vec<String>,
    f: &mut Findings,
    trace: &Trace,
) {
    let id = CheckId::TokenQuery;
    let mut url = ctx.server.clone();
    url.query_pairs_mut().append_pair("access_token", token);
    let req = mcp_post(ctx, &url, &initialize_body());
    match ctx.probe.send(req, true).await {
        Ok(r) => {
            trace.detail(
                AREA,
                scrub(
                    &format!(
                        "POST {} with the token in the query string -> {}",
                        ctx.server,
                        describe(&r)
                    ),
                    token,
                ),
            );
            keep_session(&r, sessions);
            if (200..300).contains(&r.status) {
                f.fail(
                    id,
                    format!("initialize with ?access_token=... and no Authorization header -> {}: served", r.status),
                    "read tokens from the Authorization header only: URLs end up in logs, histories and Referer headers",
                );
            } else {
                f.pass(
                    id,
                    format!("?access_token=... without the header -> {}", describe(&r)),
                );
            }
        }
        Err(e) => f.na(id, format!("no answer: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_audience_of_a_jwt() {
        let enc = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let one = format!("{}.{}.sig", enc("{}"), enc(r#"{"aud":"https://h/mcp"}"#));
        let many = format!("{}.{}.sig", enc("{}"), enc(r#"{"aud":["a","b"]}"#));
        assert_eq!(jwt_audience(&one).unwrap(), ["https://h/mcp"]);
        assert_eq!(jwt_audience(&many).unwrap(), ["a", "b"]);
        assert!(jwt_audience("opaque").is_none());
    }

    #[test]
    fn audience_verdicts() {
        let enc = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let token = format!(
            "{}.{}.sig",
            enc("{}"),
            enc(r#"{"aud":["mcp-resource-server","mcp-client"]}"#)
        );
        let mut f = Findings::default();
        audience(&token, "http://h/mcp", "http://h/mcp", &mut f);
        assert_eq!(f.status(CheckId::TokenAudience), Some(Status::Warn));
        audience(&token, "mcp-resource-server", "http://h/mcp", &mut f);
        assert_eq!(f.status(CheckId::TokenAudience), Some(Status::Pass));
        audience("opaque", "http://h/mcp", "http://h/mcp", &mut f);
        assert_eq!(
            f.status(CheckId::TokenAudience),
            Some(Status::NotApplicable)
        );
    }
}
