//! The demo's rmcp [`ServerHandler`]: the demo tools.
//!
//! - `calculator` {operation: add|subtract|multiply|divide, a, b}; division by zero is a
//!   tool error (`isError: true`), not a protocol error.
//! - `weather` {location}: deterministic FAKE data, labelled as such.
//! - `whoami`: the verified claims of the caller, never the token.
//! - `admin_status`: needs an extra scope (`mcp:admin` by default).
//! - `notify` {text, count, interval_ms}: answers, then sends `count`
//!   `notifications/message` (`interval_ms` apart) from
//!   the session's handler on its own, outside the request: they travel on the
//!   session's standalone `GET /mcp` stream (on any instance of a cluster).
//! - `ask_roots`: answers, then asks the client `roots/list` outside the request and
//!   sends what it answered (or why not) as a `notifications/message`.
//!
//! `notify` and `ask_roots` need the logging capability, which the server declares
//! without `--conformance-fixtures` only (the conformance suite expects none); with
//! the fixtures they answer a tool error. `logging/setLevel` is accepted: the only log
//! messages sent are the ones these tools are asked for.
//!
//! With `--conformance-fixtures` it also serves the conformance suite's fixture tools,
//! prompts and resources ([`crate::fixtures`]).
//!
//! The HTTP layers already answered 403 to a `tools/call` lacking scopes; the handler
//! checks again from the claims rmcp passes along (the `http::request::Parts` in the
//! request context's extensions), so the rule holds for any transport.

use std::{
    collections::BTreeMap,
    sync::{Arc, LazyLock},
    time::{Duration, Instant},
};

use mcp_auth_proto::scope::Scopes;
// Logging and roots are deprecated by SEP-2577 from protocol 2026-07-28 on; the
// versions clients speak today have them, and `notify`/`ask_roots` use them.
#[allow(deprecated)]
use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams,
        CompleteResult, ContentBlock, GetPromptRequestParams, GetPromptResponse, Implementation,
        JsonObject, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
        ListToolsResult, LoggingLevel, LoggingMessageNotificationParam, PaginatedRequestParams,
        ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities, ServerConfig,
        SetLevelRequestParams, Tool,
    },
    service::{Peer, RequestContext},
};
use serde_json::{Value, json};

use mcp_resource_server::auth::{
    claims::VerifiedClaims,
    tool_scope::{may_call, scopes_needed},
};

use crate::fixtures::{self, Fixtures};

/// Scope rules the handler enforces (the ones the library's HTTP layers enforce before
/// it, from [`mcp_resource_server::Config::required_scopes`] and
/// [`mcp_resource_server::Config::tool_scopes`]).
#[derive(Debug, Clone, Default)]
pub struct ToolAccess {
    /// Scopes every tool needs.
    pub required: Scopes,
    /// Extra scopes per tool.
    pub per_tool: BTreeMap<String, Scopes>,
    /// Whether authorization is on (off only for conformance testing).
    pub enabled: bool,
}

/// The demo's MCP handler. Cheap to clone; one per session.
#[derive(Debug, Clone)]
pub struct DemoTools {
    access: Arc<ToolAccess>,
    started: Instant,
    fixtures: Option<Fixtures>,
}

impl DemoTools {
    /// A handler enforcing `access`.
    pub fn new(access: Arc<ToolAccess>) -> Self {
        Self {
            access,
            started: Instant::now(),
            fixtures: None,
        }
    }

    /// Also serves the conformance suite's fixtures.
    #[must_use]
    pub fn with_fixtures(mut self, fixtures: Option<Fixtures>) -> Self {
        self.fixtures = fixtures;
        self
    }

    /// The demo tools followed by the fixture tools, built once.
    fn tools_with_fixtures() -> &'static [Tool] {
        static TOOLS: LazyLock<Vec<Tool>> = LazyLock::new(|| {
            let mut tools = DemoTools::tools().to_vec();
            tools.extend_from_slice(fixtures::tools());
            tools
        });
        &TOOLS
    }

    fn listed_tools(&self) -> &'static [Tool] {
        if self.fixtures.is_some() {
            Self::tools_with_fixtures()
        } else {
            Self::tools()
        }
    }

    fn fixtures(&self) -> Result<&Fixtures, McpError> {
        self.fixtures.as_ref().ok_or_else(|| {
            McpError::new(
                rmcp::model::ErrorCode::METHOD_NOT_FOUND,
                "method not found",
                None,
            )
        })
    }

    /// The tools this server offers, built once: rmcp looks a tool up on every
    /// `tools/call` of protocol versions with standard headers (to check `Mcp-Param-*`
    /// against its schema).
    pub fn tools() -> &'static [Tool] {
        static TOOLS: LazyLock<Vec<Tool>> = LazyLock::new(DemoTools::build_tools);
        &TOOLS
    }

    fn build_tools() -> Vec<Tool> {
        vec![
            tool(
                "calculator",
                "Performs basic arithmetic: add, subtract, multiply or divide two numbers.",
                json!({
                    "type": "object",
                    "properties": {
                        "operation": {"type": "string", "enum": ["add", "subtract", "multiply", "divide"]},
                        "a": {"type": "number", "description": "First operand"},
                        "b": {"type": "number", "description": "Second operand"}
                    },
                    "required": ["operation", "a", "b"],
                    "additionalProperties": false
                }),
            ),
            tool(
                "weather",
                "Returns FAKE, deterministic weather for a location (demo data, not a forecast).",
                json!({
                    "type": "object",
                    "properties": {"location": {"type": "string", "description": "City or place name"}},
                    "required": ["location"],
                    "additionalProperties": false
                }),
            ),
            tool(
                "whoami",
                "Returns the verified claims of the caller's access token (never the token itself).",
                json!({"type": "object", "properties": {}, "additionalProperties": false}),
            ),
            tool(
                "admin_status",
                "Server status for administrators; needs an extra scope (mcp:admin by default).",
                json!({"type": "object", "properties": {}, "additionalProperties": false}),
            ),
            tool(
                "notify",
                "Answers, then sends `count` log notifications with `text` on the session's \
                 event stream (GET /mcp), outside the request.",
                json!({
                    "type": "object",
                    "properties": {
                        "text": {"type": "string", "description": "What each notification carries"},
                        "count": {"type": "integer", "minimum": 1, "maximum": MAX_NOTIFICATIONS, "description": "How many (default 1)"},
                        "interval_ms": {"type": "integer", "minimum": 0, "maximum": MAX_INTERVAL_MS, "description": "Milliseconds between two (default 0)"}
                    },
                    "required": ["text"],
                    "additionalProperties": false
                }),
            ),
            tool(
                "ask_roots",
                "Answers, then asks the client for its roots (roots/list) outside the request \
                 and sends the answer as a log notification on the session's event stream.",
                json!({"type": "object", "properties": {}, "additionalProperties": false}),
            ),
        ]
    }

    fn claims(context: &RequestContext<RoleServer>) -> Option<Arc<VerifiedClaims>> {
        VerifiedClaims::from_context(context)
    }

    fn check_scope(&self, tool: &str, claims: Option<&VerifiedClaims>) -> Result<(), McpError> {
        if !self.access.enabled {
            return Ok(());
        }
        let (required, per_tool) = (&self.access.required, &self.access.per_tool);
        match claims {
            Some(claims) if may_call(claims, required, per_tool, tool) => Ok(()),
            Some(_) => {
                let needed = scopes_needed(required, per_tool, tool);
                Err(McpError::invalid_request(
                    format!("insufficient scope: this tool needs {needed}"),
                    Some(json!({"error": "insufficient_scope", "scope": needed.to_string()})),
                ))
            }
            None => Err(McpError::invalid_request("request is not authorized", None)),
        }
    }

    /// `notify` and `ask_roots`: checks the arguments, answers, and leaves the
    /// messages to a task of their own (outside the request, so rmcp sends them on the
    /// standalone stream).
    fn start_messages(
        &self,
        name: &str,
        args: &JsonObject,
        context: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        if self.fixtures.is_some() {
            return tool_error(
                "this server declares no logging capability with --conformance-fixtures",
            );
        }
        let peer = context.peer.clone();
        if name == "ask_roots" {
            tokio::spawn(report_roots(peer));
            return json_result(&json!({"asking": "roots/list"}));
        }
        let Some(text) = args.get("text").and_then(Value::as_str) else {
            return tool_error("expected {text: string, count?: integer, interval_ms?: integer}");
        };
        let count = match args.get("count") {
            None => 1,
            Some(count) => match count.as_u64() {
                Some(count @ 1..=MAX_NOTIFICATIONS) => count,
                _ => {
                    return tool_error(format!(
                        "count must be an integer from 1 to {MAX_NOTIFICATIONS}"
                    ));
                }
            },
        };
        let interval = match args.get("interval_ms") {
            None => 0,
            Some(ms) => match ms.as_u64() {
                Some(ms @ 0..=MAX_INTERVAL_MS) => ms,
                _ => {
                    return tool_error(format!(
                        "interval_ms must be an integer from 0 to {MAX_INTERVAL_MS}"
                    ));
                }
            },
        };
        tokio::spawn(send_notifications(
            peer,
            text.to_string(),
            count,
            Duration::from_millis(interval),
        ));
        json_result(&json!({"sending": count}))
    }

    fn call(
        &self,
        name: &str,
        args: &JsonObject,
        claims: Option<&VerifiedClaims>,
    ) -> Result<CallToolResult, McpError> {
        match name {
            "calculator" => Ok(calculator(args)),
            "weather" => Ok(weather(args)),
            "whoami" => Ok(match claims {
                Some(claims) => json_result(&whoami(claims)),
                None => CallToolResult::success(vec![ContentBlock::text(
                    "Authorization is turned off on this server: there is no verified caller.",
                )]),
            }),
            "admin_status" => Ok(json_result(&json!({
                "status": "ok",
                "uptime_seconds": self.started.elapsed().as_secs(),
                "server": env!("CARGO_PKG_NAME"),
                "version": env!("CARGO_PKG_VERSION"),
            }))),
            other => Err(McpError::invalid_params(
                format!("unknown tool: {other}"),
                None,
            )),
        }
    }
}

/// Most notifications one `notify` call sends.
const MAX_NOTIFICATIONS: u64 = 1000;
/// Longest pause `notify` makes between two notifications, in milliseconds.
const MAX_INTERVAL_MS: u64 = 10_000;
/// How long `ask_roots` waits for the client's answer.
const ROOTS_TIMEOUT: Duration = Duration::from_secs(30);

#[allow(deprecated)]
/// Sends `text` `count` times as `notifications/message`, in order, stopping at the
/// first failure.
async fn send_notifications(peer: Peer<RoleServer>, text: String, count: u64, interval: Duration) {
    for seq in 1..=count {
        if seq > 1 && !interval.is_zero() {
            tokio::time::sleep(interval).await;
        }
        let message = LoggingMessageNotificationParam::new(
            LoggingLevel::Info,
            json!({"text": text, "seq": seq}),
        )
        .with_logger("notify");
        if let Err(error) = peer.notify_logging_message(message).await {
            tracing::info!(%error, seq, "notify: notification not sent");
            return;
        }
    }
}

#[allow(deprecated)]
/// Asks the client for its roots and sends the answer (or why there is none).
async fn report_roots(peer: Peer<RoleServer>) {
    let data = match tokio::time::timeout(ROOTS_TIMEOUT, peer.list_roots()).await {
        Ok(Ok(result)) => json!({
            "roots": result.roots.iter().map(|root| root.uri.as_str()).collect::<Vec<_>>()
        }),
        Ok(Err(error)) => json!({"error": error.to_string()}),
        Err(_) => json!({"error": "the client did not answer roots/list in time"}),
    };
    let message =
        LoggingMessageNotificationParam::new(LoggingLevel::Info, data).with_logger("ask_roots");
    if let Err(error) = peer.notify_logging_message(message).await {
        tracing::info!(%error, "ask_roots: notification not sent");
    }
}

fn tool(name: &'static str, description: &'static str, schema: Value) -> Tool {
    let Value::Object(schema) = schema else {
        unreachable!("tool schemas are objects")
    };
    Tool::new(name, description, Arc::new(schema))
}

fn json_result(value: &Value) -> CallToolResult {
    let mut result = CallToolResult::success(vec![ContentBlock::text(
        serde_json::to_string_pretty(value).unwrap_or_default(),
    )]);
    result.structured_content = Some(value.clone());
    result
}

fn tool_error(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

fn calculator(args: &JsonObject) -> CallToolResult {
    let operation = args.get("operation").and_then(Value::as_str);
    let a = args.get("a").and_then(Value::as_f64);
    let b = args.get("b").and_then(Value::as_f64);
    let (Some(operation), Some(a), Some(b)) = (operation, a, b) else {
        return tool_error(
            "expected {operation: add|subtract|multiply|divide, a: number, b: number}",
        );
    };
    let value = match operation {
        "add" => a + b,
        "subtract" => a - b,
        "multiply" => a * b,
        "divide" if b == 0.0 => return tool_error("Division by zero is not allowed"),
        "divide" => a / b,
        other => {
            return tool_error(format!(
                "unknown operation {other:?}; use add, subtract, multiply or divide"
            ));
        }
    };
    if !value.is_finite() {
        return tool_error("the result is not a finite number");
    }
    let mut result = CallToolResult::success(vec![ContentBlock::text(format!(
        "{a} {operation} {b} = {value}"
    ))]);
    result.structured_content = Some(json!({"result": value}));
    result
}

/// Deterministic fake weather: derived from a hash of the location, stable across runs.
fn weather(args: &JsonObject) -> CallToolResult {
    let Some(location) = args.get("location").and_then(Value::as_str).map(str::trim) else {
        return tool_error("expected {location: string}");
    };
    if location.is_empty() || location.chars().count() > 100 {
        return tool_error("location must be 1 to 100 characters");
    }
    // FNV-1a over the lower-cased name: stable, unlike std's randomly seeded hasher.
    let hash = location
        .to_lowercase()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    let conditions = ["sunny", "cloudy", "rainy", "windy", "foggy", "snowy"];
    let condition = conditions[(hash % conditions.len() as u64) as usize];
    let temperature_c = ((hash >> 8) % 40) as i64 - 5;
    let humidity = 30 + (hash >> 16) % 60;
    let value = json!({
        "location": location,
        "condition": condition,
        "temperature_c": temperature_c,
        "humidity_percent": humidity,
        "source": "FAKE DATA for demonstration; not a real forecast",
    });
    let mut result = CallToolResult::success(vec![ContentBlock::text(format!(
        "[FAKE DEMO DATA] {location}: {condition}, {temperature_c} °C, humidity {humidity}%"
    ))]);
    result.structured_content = Some(value);
    result
}

fn whoami(claims: &VerifiedClaims) -> Value {
    let mut value = json!({
        "issuer": claims.issuer,
        "subject": claims.subject,
        "audience": claims.audience,
        "client_id": claims.client_id,
        "scopes": claims.scopes.iter().collect::<Vec<_>>(),
        "expires_at": claims.expires_at,
        "issued_at": claims.issued_at,
        "token_kind": claims.kind,
        // The thumbprint of the key a DPoP-bound token is bound to (a public value).
        "dpop_jkt": claims.dpop_jkt,
        "profile": claims.profile,
    });
    if claims.scopes.iter().next().is_none() {
        // An empty list looks like a bug to a newcomer: with Dex it is expected.
        value["scopes_note"] = json!(
            "the token carries no scope (or scp) claim: Dex puts none in its tokens, so no tool \
             that needs a scope can be called with them"
        );
    }
    value
}

impl ServerHandler for DemoTools {
    #[allow(deprecated)]
    fn get_info(&self) -> ServerConfig {
        let capabilities = if self.fixtures.is_some() {
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .enable_resources()
                .enable_completions()
                .build()
        } else {
            ServerCapabilities::builder()
                .enable_tools()
                .enable_logging()
                .build()
        };
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new(
                env!("CARGO_PKG_NAME"),
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Demo MCP server protected by OAuth 2.0. Tools: calculator, weather (fake data), \
                 whoami, admin_status (needs an extra scope), notify and ask_roots (messages \
                 sent on the session's event stream).",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(
            self.listed_tools().to_vec(),
        ))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.listed_tools().iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let claims = Self::claims(&context);
        self.check_scope(&request.name, claims.as_deref())?;
        if let Some(fixtures) = &self.fixtures
            && fixtures::has_tool(&request.name)
        {
            return fixtures.call_tool(request, &context).await;
        }
        let args = request.arguments.unwrap_or_default();
        if matches!(request.name.as_ref(), "notify" | "ask_roots") {
            return Ok(self.start_messages(&request.name, &args, &context).into());
        }
        self.call(&request.name, &args, claims.as_deref())
            .map(CallToolResponse::from)
    }

    #[allow(deprecated)]
    async fn set_level(
        &self,
        _request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        Ok(())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        self.fixtures()?;
        Fixtures::list_prompts()
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        self.fixtures()?.get_prompt(&request)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        self.fixtures()?;
        Fixtures::list_resources()
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        self.fixtures()?;
        Fixtures::list_resource_templates()
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        self.fixtures()?;
        Fixtures::read_resource(&request)
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        self.fixtures()?;
        Fixtures::complete(&request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(value: Value) -> JsonObject {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn tools_are_looked_up_by_name_in_the_listed_ones() {
        let server = DemoTools::new(Arc::new(ToolAccess::default()));
        let names: Vec<_> = DemoTools::tools().iter().map(|t| t.name.as_ref()).collect();
        assert_eq!(
            names,
            [
                "calculator",
                "weather",
                "whoami",
                "admin_status",
                "notify",
                "ask_roots"
            ]
        );
        for listed in DemoTools::tools() {
            let found = server
                .get_tool(&listed.name)
                .expect("listed tools are found");
            assert_eq!(found.input_schema, listed.input_schema);
        }
        assert_eq!(
            DemoTools::tools()[0].input_schema["required"],
            json!(["operation", "a", "b"])
        );
        assert!(server.get_tool("missing").is_none());
    }

    #[test]
    fn calculator_works_and_refuses_division_by_zero() {
        let r = calculator(&args(json!({"operation": "multiply", "a": 6, "b": 7})));
        assert_eq!(r.is_error, Some(false));
        assert_eq!(r.structured_content, Some(json!({"result": 42.0})));
        let r = calculator(&args(json!({"operation": "divide", "a": 1, "b": 0})));
        assert_eq!(r.is_error, Some(true));
        let r = calculator(&args(json!({"operation": "pow", "a": 1, "b": 0})));
        assert_eq!(r.is_error, Some(true));
    }

    #[test]
    fn weather_is_deterministic_and_labelled() {
        let a = weather(&args(json!({"location": "Paris"})));
        let b = weather(&args(json!({"location": "paris"})));
        assert_eq!(
            a.structured_content.as_ref().unwrap()["condition"],
            b.structured_content.as_ref().unwrap()["condition"]
        );
        assert!(
            a.structured_content.unwrap()["source"]
                .as_str()
                .unwrap()
                .contains("FAKE")
        );
        assert_eq!(weather(&args(json!({}))).is_error, Some(true));
    }

    #[test]
    fn scope_is_checked_in_the_handler_too() {
        let server = DemoTools::new(Arc::new(ToolAccess {
            required: Scopes::parse("mcp:tools"),
            per_tool: BTreeMap::from([("admin_status".into(), Scopes::parse("mcp:admin"))]),
            enabled: true,
        }));
        let claims = |scopes: &str| -> VerifiedClaims {
            serde_json::from_value(json!({
                "issuer": "i", "subject": "s", "audience": [], "expires_at": 0,
                "issued_at": null, "scopes": scopes.split(' ').collect::<Vec<_>>(),
                "client_id": null, "kind": "jwt", "profile": {},
                "token_fingerprint": "", "dpop_jkt": null
            }))
            .unwrap()
        };
        assert!(server.check_scope("calculator", None).is_err());
        let tools = claims("mcp:tools");
        assert!(server.check_scope("calculator", Some(&tools)).is_ok());
        let refusal = server
            .check_scope("admin_status", Some(&tools))
            .expect_err("admin_status needs mcp:admin");
        assert_eq!(
            refusal.data,
            Some(json!({"error": "insufficient_scope", "scope": "mcp:tools mcp:admin"}))
        );
        let admin = claims("mcp:tools mcp:admin");
        assert!(server.check_scope("admin_status", Some(&admin)).is_ok());
        assert!(
            server
                .check_scope("calculator", Some(&claims("mcp:admin")))
                .is_err()
        );
    }
}
