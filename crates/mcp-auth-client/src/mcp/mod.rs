//! MCP over HTTP: a small JSON-RPC layer over our own reqwest client.
//!
//! Not rmcp's client: every request must keep its authorization handling in our hands
//! (a 401 leads to a refresh or a new authorization, a 403 `insufficient_scope` to a
//! step-up, the legacy SSE transport may authenticate with a session cookie), and rmcp's
//! client no longer has the legacy HTTP+SSE transport. So the transports here only carry
//! messages and report a refusal ([`Outcome::Refused`]) with the server's challenge; the
//! connection (`connection.rs`) decides what to do about it.

pub mod event_stream;
pub mod jsonrpc;
pub mod modern;
pub mod sse;
pub mod streamable;

use mcp_auth_proto::BearerChallenge;
use mcp_auth_proto::challenge::parse_www_authenticate;
use reqwest::header::HeaderMap;

use crate::trace::Trace;

/// The result of a JSON-RPC request: its `result` or its error.
pub type RpcResult = Result<serde_json::Value, jsonrpc::RpcError>;

/// What a transport operation gave.
#[derive(Debug)]
pub enum Outcome<T> {
    /// It went through.
    Ok(T),
    /// The server refused the credentials: 401 or 403, with its Bearer challenge.
    Refused {
        /// 401 or 403.
        status: u16,
        /// The parsed `WWW-Authenticate: Bearer` challenge, if any, else the parameters
        /// of a `DPoP` challenge (RFC 9449 §7.1: the same `error`, `scope`,
        /// `resource_metadata`).
        challenge: Option<BearerChallenge>,
        /// Whether the server offered the `DPoP` scheme among its challenges (RFC 9449
        /// §7.1): it accepts DPoP-bound tokens.
        dpop_offered: bool,
    },
}

/// `Some(Outcome::Refused)` for a 401 or 403, with the challenge read and traced.
pub(crate) fn auth_refusal<T>(
    trace: &Trace,
    status: u16,
    headers: &HeaderMap,
) -> Option<Outcome<T>> {
    if status != 401 && status != 403 {
        return None;
    }
    let values: Vec<&str> = headers
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let dpop_offered = values
        .iter()
        .filter_map(|v| parse_www_authenticate(v).ok())
        .flatten()
        .any(|c| c.scheme.eq_ignore_ascii_case("dpop"));
    let (challenge, scheme) = match BearerChallenge::find(values.iter().copied()) {
        Some(c) => (Some(c), "Bearer"),
        None => (dpop_challenge(values.iter().copied()), "DPoP"),
    };
    match &challenge {
        Some(c) => trace.step(
            "auth",
            format!("{status} challenge: {}", describe_challenge(scheme, c)),
        ),
        None if values.is_empty() => {
            trace.step(
                "auth",
                format!("{status} without a WWW-Authenticate header"),
            );
        }
        None => trace.step(
            "auth",
            format!("{status} without a Bearer or DPoP challenge"),
        ),
    }
    Some(Outcome::Refused {
        status,
        challenge,
        dpop_offered,
    })
}

/// The first `DPoP` challenge, read with the Bearer challenge's parameters.
fn dpop_challenge<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<BearerChallenge> {
    let mut c = values
        .into_iter()
        .filter_map(|v| parse_www_authenticate(v).ok())
        .flatten()
        .find(|c| c.scheme.eq_ignore_ascii_case("dpop"))?;
    "Bearer".clone_into(&mut c.scheme);
    BearerChallenge::from_challenge(&c)
}

/// Whether a challenge asks for a DPoP nonce (RFC 9449 §9).
pub(crate) fn is_use_dpop_nonce(challenge: Option<&BearerChallenge>) -> bool {
    challenge
        .and_then(|c| c.error.as_ref())
        .is_some_and(|e| crate::dpop::is_use_nonce(e.as_str()))
}

fn describe_challenge(scheme: &str, c: &BearerChallenge) -> String {
    let mut parts = Vec::new();
    if let Some(e) = &c.error {
        parts.push(format!("error={}", e.as_str()));
    }
    if let Some(s) = &c.scope {
        parts.push(format!("scope=\"{s}\""));
    }
    if let Some(r) = &c.resource_metadata {
        parts.push(format!("resource_metadata={r}"));
    }
    if let Some(d) = &c.error_description {
        parts.push(format!("error_description=\"{d}\""));
    }
    if parts.is_empty() {
        format!("{scheme} (no parameters)")
    } else {
        format!("{scheme} {}", parts.join(", "))
    }
}
