//! Per-tool scope checks on JSON-RPC bodies, before the MCP handler sees them.
//!
//! A client that lacks a tool's scope must get an HTTP 403 with
//! `WWW-Authenticate: Bearer error="insufficient_scope", scope="<all scopes needed>"`
//! so that it can step up (MCP authorization, "Scope challenge handling"); a JSON-RPC
//! error inside a 200 would not tell it to. So [`ToolScopeLayer`] reads the body of a
//! `POST` (bounded in size), matches every `tools/call` in it (single message or batch)
//! with the tool's scopes, and answers 403 before the request reaches rmcp.

use std::{
    borrow::Cow,
    collections::BTreeMap,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use axum::{
    BoxError,
    body::{Body, Bytes, HttpBody},
    extract::Request,
    http::{Method, Response as HttpResponse},
    response::Response,
};
use futures::{
    TryFutureExt,
    future::{Either, MapOk},
};
use mcp_auth_proto::scope::Scopes;
use serde::Deserialize;
use serde_json::Value;
use tower::{Layer, Service};

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

/// The part of a JSON-RPC message the check reads; everything else is skipped unread.
#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    params: Option<Params<'a>>,
}

#[derive(Deserialize)]
struct Params<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
}

/// All scopes needed to call `tool`: the `required` ones and the tool's extra ones.
pub fn scopes_needed(required: &Scopes, per_tool: &BTreeMap<String, Scopes>, tool: &str) -> Scopes {
    match per_tool.get(tool) {
        Some(extra) => required.union(extra),
        None => required.clone(),
    }
}

/// Whether `claims` hold [`scopes_needed`] for `tool`, without building that set (this
/// runs on every `tools/call`; the set is built only to name it in a refusal).
pub fn may_call(
    claims: &VerifiedClaims,
    required: &Scopes,
    per_tool: &BTreeMap<String, Scopes>,
    tool: &str,
) -> bool {
    claims.has_scopes(required)
        && per_tool
            .get(tool)
            .is_none_or(|extra| claims.has_scopes(extra))
}

impl ToolScopePolicy {
    /// All scopes needed to call `tool`.
    pub fn needed_for(&self, tool: &str) -> Scopes {
        scopes_needed(&self.required, &self.per_tool, tool)
    }

    /// Whether `claims` may call every tool, so that no body needs reading.
    pub fn allows_every_tool(&self, claims: &VerifiedClaims) -> bool {
        claims.has_scopes(&self.required) && self.per_tool.values().all(|s| claims.has_scopes(s))
    }

    /// Checks every `tools/call` in a JSON-RPC body against `claims`.
    ///
    /// Bodies that are not JSON pass: they cannot call a tool, and the MCP layer answers
    /// them with a parse error.
    ///
    /// # Errors
    /// [`Error::InsufficientScope`] with the union of the scopes needed.
    pub fn check(&self, body: &[u8], claims: &VerifiedClaims) -> Result<(), Error> {
        let mut missing: Option<Scopes> = None;
        for tool in called_tools(body) {
            if may_call(claims, &self.required, &self.per_tool, &tool) {
                continue;
            }
            let needed = self.needed_for(&tool);
            missing = Some(match missing {
                Some(acc) => acc.union(&needed),
                None => needed,
            });
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

/// The names of the tools a JSON-RPC body calls.
///
/// The common shapes are read without building a JSON tree. Anything they do not fit
/// (a duplicate member, a `method` or `name` that is not a string, `params` that is not
/// an object) is read again as a whole JSON value, member by member as the MCP layer
/// would, so no shape slips through unchecked.
fn called_tools(body: &[u8]) -> Vec<Cow<'_, str>> {
    fn tools_of<'a>(messages: impl IntoIterator<Item = Message<'a>>) -> Vec<Cow<'a, str>> {
        messages
            .into_iter()
            .filter(|m| m.method.as_deref() == Some("tools/call"))
            .filter_map(|m| m.params.and_then(|p| p.name))
            .collect()
    }
    let is_batch = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let typed = if is_batch {
        serde_json::from_slice::<Vec<Message<'_>>>(body).map(tools_of)
    } else {
        serde_json::from_slice::<Message<'_>>(body).map(|m| tools_of([m]))
    };
    if let Ok(tools) = typed {
        return tools;
    }
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let messages = match &value {
        Value::Array(items) => items.iter().collect(),
        single => vec![single],
    };
    messages
        .into_iter()
        .filter(|m| m.get("method").and_then(Value::as_str) == Some("tools/call"))
        .filter_map(|m| m.pointer("/params/name").and_then(Value::as_str))
        .map(|name| Cow::Owned(name.to_string()))
        .collect()
}

/// Layer enforcing a [`ToolScopePolicy`] on `POST` requests that carry verified claims
/// (put it after the authorization layer).
#[derive(Debug, Clone)]
pub struct ToolScopeLayer {
    policy: Arc<ToolScopePolicy>,
}

impl ToolScopeLayer {
    /// A layer enforcing `policy`.
    pub fn new(policy: Arc<ToolScopePolicy>) -> Self {
        Self { policy }
    }
}

impl<S> Layer<S> for ToolScopeLayer {
    type Service = ToolScopeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ToolScopeService {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// The service made by [`ToolScopeLayer`].
#[derive(Debug, Clone)]
pub struct ToolScopeService<S> {
    inner: S,
    policy: Arc<ToolScopePolicy>,
}

fn into_axum<B>(response: HttpResponse<B>) -> Response
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    response.map(Body::new)
}

/// Response future of [`ToolScopeService`]: the inner service's own future unless a
/// body had to be read.
pub type ToolScopeFuture<F, B, E> = Either<
    MapOk<F, fn(HttpResponse<B>) -> Response>,
    Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>,
>;

impl<S, B> Service<Request> for ToolScopeService<S>
where
    S: Service<Request, Response = HttpResponse<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ToolScopeFuture<S::Future, B, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // Only a POST by a token that lacks some tool's scope needs its body read.
        let claims = match request.extensions().get::<Arc<VerifiedClaims>>() {
            Some(claims)
                if request.method() == Method::POST && !self.policy.allows_every_tool(claims) =>
            {
                claims.clone()
            }
            _ => {
                return Either::Left(
                    self.inner
                        .call(request)
                        .map_ok(into_axum::<B> as fn(_) -> _),
                );
            }
        };
        let policy = self.policy.clone();
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Either::Right(Box::pin(async move {
            let (parts, body) = request.into_parts();
            let checked = match policy.read_body(body).await {
                Ok(bytes) => policy.check(&bytes, &claims).map(|()| bytes),
                Err(error) => Err(error),
            };
            match checked {
                Ok(bytes) => inner
                    .call(Request::from_parts(parts, Body::from(bytes)))
                    .await
                    .map(into_axum),
                Err(error) => Ok(error.into_response_with(Some(&policy.challenge))),
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(scopes: &str) -> VerifiedClaims {
        VerifiedClaims::with_scopes(scopes)
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

    #[test]
    fn every_shape_of_a_tool_call_is_read() {
        let policy = policy();
        let tools = claims("mcp:tools");
        let refused = |body: &str| {
            matches!(
                policy.check(body.as_bytes(), &tools),
                Err(Error::InsufficientScope { .. })
            )
        };
        // Escapes in the method or the name.
        assert!(refused(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"admin\u005fstatus"}}"#
        ));
        // A duplicate member: the last one counts, as in a JSON object read member by member.
        assert!(refused(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"admin_status"}}"#
        ));
        // A batch where another message has params of another shape.
        assert!(refused(
            r#" [{"jsonrpc":"2.0","id":1,"method":"ping","params":[1,2]},
                 {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"admin_status","arguments":{}}}]"#
        ));
        // A name that is not a string calls no tool.
        assert!(!refused(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}"#
        ));
        assert!(!refused(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"calculator"}}"#
        ));
    }

    #[test]
    fn a_token_with_every_scope_skips_the_body() {
        let policy = policy();
        assert!(policy.allows_every_tool(&claims("mcp:tools mcp:admin")));
        assert!(!policy.allows_every_tool(&claims("mcp:tools")));
        assert!(!policy.allows_every_tool(&claims("mcp:admin")));
    }
}
