//! Per-tool scope checks on JSON-RPC bodies, before the MCP handler sees them.
//!
//! A client that lacks a tool's scope must get an HTTP 403 with
//! `WWW-Authenticate: Bearer error="insufficient_scope", scope="<all scopes needed>"`
//! so that it can step up (MCP authorization, "Scope challenge handling"); a JSON-RPC
//! error inside a 200 would not tell it to. So the body of a `POST` (bounded in size)
//! is parsed here, every `tools/call` in it (single message or batch) is matched with
//! the tool's scopes, and the request is answered 403 before it reaches rmcp.

use std::{collections::BTreeMap, sync::Arc};

use axum::{
    body::{Body, Bytes},
    extract::{Request, State},
    http::Method,
    middleware::Next,
    response::Response,
};
use mcp_auth_proto::scope::Scopes;
use serde_json::Value;

use super::claims::VerifiedClaims;
use crate::error::{ChallengeContext, Error};

/// Which scopes each tool needs.
#[derive(Debug, Clone, Default)]
pub struct ToolScopePolicy {
    /// Scopes every request needs.
    pub required: Scopes,
    /// Extra scopes per tool.
    pub per_tool: BTreeMap<String, Scopes>,
    /// Largest body inspected (and accepted).
    pub max_body_bytes: usize,
    /// Challenge details of the endpoint.
    pub challenge: ChallengeContext,
}

impl ToolScopePolicy {
    /// All scopes needed to call `tool`.
    pub fn needed_for(&self, tool: &str) -> Scopes {
        match self.per_tool.get(tool) {
            Some(extra) => self.required.union(extra),
            None => self.required.clone(),
        }
    }

    /// Checks every `tools/call` in a JSON-RPC body against `claims`.
    ///
    /// Bodies that are not JSON pass: they cannot call a tool, and the MCP layer answers
    /// them with a parse error.
    ///
    /// # Errors
    /// [`Error::InsufficientScope`] with the union of the scopes needed.
    pub fn check(&self, body: &[u8], claims: &VerifiedClaims) -> Result<(), Error> {
        let Ok(value) = serde_json::from_slice::<Value>(body) else {
            return Ok(());
        };
        let messages = match &value {
            Value::Array(items) => items.iter().collect(),
            single => vec![single],
        };
        let mut missing: Option<Scopes> = None;
        for message in messages {
            if message.get("method").and_then(Value::as_str) != Some("tools/call") {
                continue;
            }
            let Some(tool) = message.pointer("/params/name").and_then(Value::as_str) else {
                continue;
            };
            let needed = self.needed_for(tool);
            if !claims.has_scopes(&needed) {
                missing = Some(match missing {
                    Some(acc) => acc.union(&needed),
                    None => needed,
                });
            }
        }
        match missing {
            Some(needed) => {
                tracing::info!(subject = %claims.subject, needed = %needed, "tool call lacks scope");
                Err(Error::InsufficientScope { needed })
            }
            None => Ok(()),
        }
    }

    /// Reads a bounded body.
    ///
    /// # Errors
    /// [`Error::PayloadTooLarge`] over the limit.
    pub async fn read_body(&self, body: Body) -> Result<Bytes, Error> {
        axum::body::to_bytes(body, self.max_body_bytes)
            .await
            .map_err(|_| Error::PayloadTooLarge)
    }
}

/// Middleware (for `axum::middleware::from_fn_with_state`) enforcing [`ToolScopePolicy`]
/// on `POST` requests that carry verified claims.
pub async fn enforce_tool_scopes(
    State(policy): State<Arc<ToolScopePolicy>>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let Some(claims) = request.extensions().get::<Arc<VerifiedClaims>>().cloned() else {
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    let bytes = match policy.read_body(body).await {
        Ok(bytes) => bytes,
        Err(error) => return error.into_response_with(Some(&policy.challenge)),
    };
    if let Err(error) = policy.check(&bytes, &claims) {
        return error.into_response_with(Some(&policy.challenge));
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::claims::TokenKind;

    fn claims(scopes: &str) -> VerifiedClaims {
        VerifiedClaims {
            issuer: "i".into(),
            subject: "s".into(),
            audience: vec![],
            expires_at: 0,
            issued_at: None,
            scopes: Scopes::parse(scopes),
            client_id: None,
            kind: TokenKind::Jwt,
            profile: Default::default(),
            token_fingerprint: String::new(),
        }
    }

    fn policy() -> ToolScopePolicy {
        ToolScopePolicy {
            required: Scopes::parse("mcp:tools"),
            per_tool: BTreeMap::from([("admin_status".into(), Scopes::parse("mcp:admin"))]),
            max_body_bytes: 1024,
            challenge: ChallengeContext::default(),
        }
    }

    #[test]
    fn tool_calls_need_their_scopes() {
        let call =
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin_status"}}"#;
        let list = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        let calc =
            br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"calculator"}}]"#;
        let policy = policy();
        match policy.check(call, &claims("mcp:tools")) {
            Err(Error::InsufficientScope { needed }) => {
                assert_eq!(needed.to_string(), "mcp:tools mcp:admin")
            }
            other => panic!("{other:?}"),
        }
        assert!(policy.check(call, &claims("mcp:tools mcp:admin")).is_ok());
        assert!(policy.check(list, &claims("mcp:tools")).is_ok());
        assert!(policy.check(calc, &claims("mcp:tools")).is_ok());
        assert!(policy.check(b"not json", &claims("")).is_ok());
    }
}
