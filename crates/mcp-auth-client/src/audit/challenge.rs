//! Requests without a valid token, and the challenge they get.
//!
//! `POST initialize` without a token must get 401 with a `WWW-Authenticate: Bearer`
//! challenge naming the metadata (`resource_metadata`) and the scopes (`scope`), and no
//! error code (the request had no token). `GET` and `DELETE` without a token must be
//! refused as well. An invalid token must get 401 `invalid_token`, and an unsigned JWT
//! made to look right (issuer, audience, expiry, scope) must be refused.

use base64::Engine;
use mcp_auth_proto::BearerChallenge;
use mcp_auth_proto::challenge::parse_www_authenticate;
use reqwest::Method;
use serde_json::json;

use super::probe::Reply;
use super::report::Findings;
use super::{CheckId, Context};
use crate::error::ClientError;
use crate::mcp::jsonrpc::{self, LATEST_PROTOCOL_VERSION};
use crate::trace::Trace;

const AREA: &str = "audit";

/// The checks of this group that need the first request to have been refused.
const CHALLENGE_CHECKS: &[CheckId] = &[
    CheckId::ChallengeHeader,
    CheckId::ChallengeResourceMetadata,
    CheckId::ChallengeScope,
    CheckId::ChallengeNoErrorCode,
];

/// The JSON-RPC `initialize` request the probes send.
pub(super) fn initialize_body() -> serde_json::Value {
    jsonrpc::request(
        1,
        "initialize",
        Some(json!({
            "protocolVersion": LATEST_PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "mcp-client-audit", "version": env!("CARGO_PKG_VERSION")}
        })),
    )
}

/// A `POST` of `body` to the MCP URL, as a Streamable HTTP client sends it.
pub(super) fn mcp_post(
    ctx: &Context,
    url: &url::Url,
    body: &serde_json::Value,
) -> reqwest::RequestBuilder {
    ctx.probe
        .request(Method::POST, url)
        .header(
            reqwest::header::ACCEPT,
            "application/json, text/event-stream",
        )
        .json(body)
}

/// The status and, when there is one, the Bearer challenge of a reply, for a report line.
pub(super) fn describe(reply: &Reply) -> String {
    let values = reply.www_authenticate();
    if values.is_empty() {
        format!("{}, no WWW-Authenticate", reply.status)
    } else {
        format!("{} WWW-Authenticate: {}", reply.status, values.join(", "))
    }
}

/// The Bearer challenge of a reply, if one parses.
pub(super) fn bearer(reply: &Reply) -> Option<BearerChallenge> {
    BearerChallenge::find(reply.www_authenticate())
}

/// `POST initialize` without a token, then `GET`, `DELETE` and an invalid token.
///
/// # Errors
/// When the MCP URL does not answer at all: there is then nothing to audit.
pub(super) async fn run(
    ctx: &mut Context,
    f: &mut Findings,
    trace: &Trace,
) -> Result<(), ClientError> {
    let url = ctx.server.clone();
    let reply = ctx
        .probe
        .send(mcp_post(ctx, &url, &initialize_body()), true)
        .await?;
    trace.detail(
        AREA,
        format!("POST {url} without a token -> {}", describe(&reply)),
    );
    ctx.tokenless_status = reply.status;
    status(&reply, f);
    if (200..400).contains(&reply.status) {
        f.na_unset(
            CHALLENGE_CHECKS,
            "the request without a token was not refused",
        );
    } else {
        ctx.challenge = header(&reply, f);
        match &ctx.challenge {
            Some(c) => {
                resource_metadata(c, f);
                scope(c, f);
                no_error_code(c, f);
                if let Some(rm) = &c.resource_metadata {
                    ctx.note_url("the challenge's resource_metadata", rm.clone());
                }
            }
            None => f.na_unset(CHALLENGE_CHECKS, "no Bearer challenge to read"),
        }
    }
    every_method(ctx, &reply, f, trace).await;
    invalid_token(ctx, f, trace).await;
    Ok(())
}

fn status(reply: &Reply, f: &mut Findings) {
    let id = CheckId::ChallengeStatus;
    match reply.status {
        401 => f.pass(id, "401"),
        s @ 200..=299 => f.fail(
            id,
            format!("{s}: the request was served without a token"),
            "put the authorization check in front of the MCP endpoint (if the server is meant to be public, this audit does not apply)",
        ),
        s @ 300..=399 => f.fail(
            id,
            format!(
                "{s} redirect to {}",
                reply.header("location").unwrap_or("(no Location)")
            ),
            "answer 401 with a Bearer challenge: MCP clients do not follow redirects to a login page",
        ),
        403 => f.fail(
            id,
            format!("403 {}", reply.summary()),
            "a request without a token is answered 401 (403 means a token that lacks scope)",
        ),
        s => f.fail(
            id,
            format!("{s} {}", reply.summary()),
            "answer a request without a token with 401 and a Bearer challenge",
        ),
    }
}

fn header(reply: &Reply, f: &mut Findings) -> Option<BearerChallenge> {
    let id = CheckId::ChallengeHeader;
    let values = reply.www_authenticate();
    if values.is_empty() {
        f.fail(
            id,
            format!("{} without a WWW-Authenticate header", reply.status),
            "send WWW-Authenticate: Bearer resource_metadata=\"<PRM URL>\", scope=\"<scopes>\" with every 401",
        );
        return None;
    }
    let mut schemes = Vec::new();
    for v in &values {
        match parse_www_authenticate(v) {
            Ok(challenges) => {
                for c in &challenges {
                    if let Some(b) = BearerChallenge::from_challenge(c) {
                        f.pass(id, format!("WWW-Authenticate: {v}"));
                        return Some(b);
                    }
                    schemes.push(c.scheme.clone());
                }
            }
            Err(e) => {
                f.fail(
                    id,
                    format!("WWW-Authenticate: {v} does not parse ({e})"),
                    "write the challenge as RFC 9110 §11.6.1 says: Bearer name=\"value\", name=\"value\"",
                );
                return None;
            }
        }
    }
    f.fail(
        id,
        format!("no Bearer challenge (schemes: {})", super::list(&schemes)),
        "add a Bearer challenge: WWW-Authenticate: Bearer resource_metadata=\"<PRM URL>\"",
    );
    None
}

fn resource_metadata(c: &BearerChallenge, f: &mut Findings) {
    let id = CheckId::ChallengeResourceMetadata;
    match c.resource_metadata.as_deref() {
        Some(rm) => match url::Url::parse(rm) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {
                f.pass(id, format!("resource_metadata=\"{rm}\""));
            }
            _ => f.fail(
                id,
                format!("resource_metadata=\"{rm}\" is not an absolute http(s) URL"),
                "give the absolute URL of the Protected Resource Metadata",
            ),
        },
        None => f.warn(
            id,
            "the challenge has no resource_metadata",
            "add resource_metadata=\"<URL of the Protected Resource Metadata>\": clients of the 2025-06-18 revision only look there, and it spares every client the well-known guesses",
        ),
    }
}

fn scope(c: &BearerChallenge, f: &mut Findings) {
    let id = CheckId::ChallengeScope;
    match c.scope.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(s) => f.pass(id, format!("scope=\"{s}\"")),
        None => f.warn(
            id,
            "the challenge has no scope",
            "add scope=\"<the scopes this endpoint needs>\": clients then ask for exactly those instead of everything in scopes_supported",
        ),
    }
}

fn no_error_code(c: &BearerChallenge, f: &mut Findings) {
    let id = CheckId::ChallengeNoErrorCode;
    match &c.error {
        None => f.pass(id, "no error code"),
        Some(e) => f.warn(
            id,
            format!("error=\"{e}\" on a request that carried no token"),
            "leave error (and error_description) out when the request had no credentials; keep invalid_token for a token that was refused",
        ),
    }
}

async fn every_method(ctx: &Context, post: &Reply, f: &mut Findings, trace: &Trace) {
    let id = CheckId::ChallengeEveryMethod;
    let mut seen = vec![format!("POST {}", post.status)];
    let mut served = Vec::new();
    let mut unreachable = Vec::new();
    for method in [Method::GET, Method::DELETE] {
        let req = ctx
            .probe
            .request(method.clone(), &ctx.server)
            .header(reqwest::header::ACCEPT, "text/event-stream");
        // A GET that is wrongly served may be an endless event stream: status only.
        match ctx.probe.send(req, false).await {
            Ok(r) => {
                trace.detail(
                    AREA,
                    format!(
                        "{method} {} without a token -> {}",
                        ctx.server,
                        describe(&r)
                    ),
                );
                seen.push(format!("{method} {}", r.status));
                if r.status < 400 {
                    served.push(format!("{method} answered {}", r.status));
                }
            }
            Err(e) => unreachable.push(format!("{method}: {e}")),
        }
    }
    let seen = format!("without a token: {}", seen.join(", "));
    if !served.is_empty() {
        f.fail(
            id,
            format!("{seen}; {} without a token", served.join(", ")),
            "check the token on every method of the MCP endpoint, not only POST",
        );
    } else if !unreachable.is_empty() {
        f.warn(
            id,
            format!("{seen}; no answer to {}", unreachable.join("; ")),
            "answer every method, if only with 401 or 405",
        );
    } else {
        f.pass(id, seen);
    }
}

async fn invalid_token(ctx: &Context, f: &mut Findings, trace: &Trace) {
    let id = CheckId::TokenInvalid;
    let bogus = format!("mcp-audit-invalid-{}", crate::random::unguessable());
    let req = mcp_post(ctx, &ctx.server, &initialize_body()).bearer_auth(&bogus);
    let reply = match ctx.probe.send(req, true).await {
        Ok(r) => r,
        Err(e) => {
            f.na(id, format!("no answer: {e}"));
            return;
        }
    };
    trace.detail(
        AREA,
        format!(
            "POST {} with an invalid token -> {}",
            ctx.server,
            describe(&reply)
        ),
    );
    let challenge = bearer(&reply);
    match reply.status {
        401 => match challenge.as_ref().and_then(|c| c.error.as_ref()) {
            Some(mcp_auth_proto::BearerError::InvalidToken) => {
                f.pass(id, "401 error=\"invalid_token\"");
            }
            other => f.warn(
                id,
                format!(
                    "401 with {}",
                    other.map_or_else(
                        || "no error code".to_owned(),
                        |e| format!("error=\"{e}\"")
                    )
                ),
                "say error=\"invalid_token\" in the challenge, so that clients know to refresh or log in again",
            ),
        },
        s @ 200..=299 => f.fail(
            id,
            format!("{s}: a made-up token was accepted"),
            "validate every token (signature, issuer, audience, expiry) before serving",
        ),
        s => f.fail(
            id,
            format!("{s} {}", reply.summary()),
            "answer an invalid or expired token with 401 and error=\"invalid_token\"",
        ),
    }
}

/// Sends an unsigned JWT (`alg: none`) carrying plausible claims: this server as the
/// audience, the authorization server as the issuer, a future expiry, the challenged
/// scopes. Only a server that does not verify signatures accepts it.
pub(super) async fn unsigned_token(ctx: &Context, f: &mut Findings, trace: &Trace) {
    let id = CheckId::TokenUnsigned;
    let now = crate::cache::now();
    let scope = ctx
        .challenge
        .as_ref()
        .and_then(|c| c.scope.clone())
        .or_else(|| ctx.prm().map(|p| p.doc.scopes_supported.join(" ")))
        .unwrap_or_default();
    let claims = json!({
        "iss": ctx.issuer.clone().unwrap_or_else(|| ctx.server.origin().ascii_serialization()),
        "sub": "mcp-client-audit",
        "aud": ctx.prm().map_or_else(|| ctx.canonical.clone(), |p| p.doc.resource.clone()),
        "client_id": "mcp-client-audit",
        "scope": scope,
        "iat": now,
        "exp": now + 300,
        "jti": crate::random::unguessable(),
    });
    let enc = |v: &serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let token = format!(
        "{}.{}.",
        enc(&json!({"alg": "none", "typ": "at+jwt"})),
        enc(&claims)
    );
    let req = mcp_post(ctx, &ctx.server, &initialize_body()).bearer_auth(&token);
    match ctx.probe.send(req, true).await {
        Ok(r) => {
            trace.detail(
                AREA,
                format!(
                    "POST {} with an unsigned JWT -> {}",
                    ctx.server,
                    describe(&r)
                ),
            );
            if (200..300).contains(&r.status) {
                f.fail(
                    id,
                    format!("{}: an unsigned token (alg none) with aud {} was accepted", r.status, claims["aud"]),
                    "verify signatures with an allow-list of algorithms that excludes none, with the authorization server's keys",
                );
            } else {
                f.pass(id, format!("refused: {}", r.status));
            }
        }
        Err(e) => f.na(id, format!("no answer: {e}")),
    }
}
