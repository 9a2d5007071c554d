//! The MCP conformance suite's server fixtures, served only with
//! `--conformance-fixtures`.
//!
//! The suite's server scenarios (`conformance server`, release 0.2.0-alpha.12) call
//! tools, prompts and resources of fixed names and contents (`test_simple_text`,
//! `test://static-text`, `test_prompt_with_arguments`, ...). They exist so that the
//! protocol machinery can be proven against the official suite; none of them touches
//! authorization, and the demo tools are unchanged with or without them.
//!
//! The multi round-trip fixtures (SEP-2322, `input_required` results) keep no state in
//! the server: each `requestState` is sealed with HMAC-SHA-256 under a key drawn when
//! the process starts, bound to the tool or prompt it was issued for, and checked when
//! the client echoes it (a forged or altered state is `-32602`). That works alike for
//! the stateful and the stateless transport.

use std::{
    sync::{Arc, LazyLock},
    time::Duration,
};

use aws_lc_rs::{hmac, rand::SystemRandom};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rmcp::{
    ErrorData as McpError, RoleServer,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities,
        CompleteRequestParams, CompleteResult, ContentBlock, GetPromptRequestParams,
        GetPromptResponse, GetPromptResult, InputRequiredResult, InputResponses, ListPromptsResult,
        ListResourceTemplatesResult, ListResourcesResult, ProgressNotificationParam,
        ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Tool,
    },
    service::RequestContext,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// A 1×1 PNG, base64.
const PNG_1X1: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/// A WAV file holding one silent 8-bit sample at 8 kHz, base64.
const WAV_SILENCE: &str = "UklGRiUAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQEAAACA";

/// The fixture tools, in listing order.
pub fn tools() -> &'static [Tool] {
    static TOOLS: LazyLock<Vec<Tool>> = LazyLock::new(build_tools);
    &TOOLS
}

fn no_args() -> Value {
    json!({"type": "object", "properties": {}})
}

fn build_tools() -> Vec<Tool> {
    let simple = [
        ("test_simple_text", "Returns one text block."),
        ("test_image_content", "Returns a 1x1 PNG image."),
        ("test_audio_content", "Returns a short WAV clip."),
        (
            "test_embedded_resource",
            "Returns an embedded text resource.",
        ),
        (
            "test_multiple_content_types",
            "Returns text, an image and an embedded resource.",
        ),
        (
            "test_error_handling",
            "Always fails with a tool error (isError).",
        ),
        (
            "test_tool_with_progress",
            "Reports progress 0, 50 and 100 of 100 when given a progress token.",
        ),
        (
            "test_input_required_result_elicitation",
            "Asks the client for a name (elicitation) before answering.",
        ),
        (
            "test_input_required_result_sampling",
            "Asks the client for a sampled message before answering.",
        ),
        (
            "test_input_required_result_list_roots",
            "Asks the client for its roots before answering.",
        ),
        (
            "test_input_required_result_request_state",
            "Asks for a confirmation and checks the echoed request state.",
        ),
        (
            "test_input_required_result_multiple_inputs",
            "Asks for an elicitation, a sampled message and the roots at once.",
        ),
        (
            "test_input_required_result_multi_round",
            "Asks two questions, one round each.",
        ),
        (
            "test_input_required_result_tampered_state",
            "Refuses a request state that fails its integrity check.",
        ),
        (
            "test_input_required_result_capabilities",
            "Asks only for the inputs the client declared capabilities for.",
        ),
        (
            "test_missing_capability",
            "Needs the client's sampling capability; refuses with -32021 without it.",
        ),
        (
            "test_streaming_elicitation",
            "Asks for a name through an input_required result, never a server request.",
        ),
        (
            "test_logging_tool",
            "Emits no log messages: this server has no logging capability.",
        ),
    ];
    let mut tools: Vec<Tool> = simple
        .into_iter()
        .map(|(name, description)| object_tool(name, description, no_args()))
        .collect();
    tools.push(object_tool(
        "json_schema_2020_12_tool",
        "Tool with JSON Schema 2020-12 features",
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "$defs": {
                "address": {
                    "$anchor": "addressDef",
                    "type": "object",
                    "properties": {"street": {"type": "string"}, "city": {"type": "string"}}
                }
            },
            "properties": {
                "name": {"type": "string"},
                "address": {"$ref": "#/$defs/address"},
                "contactMethod": {"type": "string", "enum": ["phone", "email"]},
                "phone": {"type": "string"},
                "email": {"type": "string"}
            },
            "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
            "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
            "then": {"required": ["phone"]},
            "else": {"required": ["email"]},
            "additionalProperties": false
        }),
    ));
    tools.push(object_tool(
        "test_custom_header",
        "Echoes a region that the client also sends as the Mcp-Param-Region header (SEP-2243).",
        json!({
            "type": "object",
            "properties": {
                "region": {"type": "string", "description": "Any region name", "x-mcp-header": "Region"}
            },
            "required": ["region"]
        }),
    ));
    tools
}

fn object_tool(name: &'static str, description: &'static str, schema: Value) -> Tool {
    let Value::Object(schema) = schema else {
        unreachable!("tool schemas are objects")
    };
    Tool::new(name, description, Arc::new(schema))
}

/// Whether `name` is one of the fixture tools.
pub fn has_tool(name: &str) -> bool {
    tools().iter().any(|t| t.name == name)
}

/// Builds a complete result (`resultType: "complete"`, SEP-2322) from its wire form.
fn complete<T: DeserializeOwned>(mut value: Value) -> Result<T, McpError> {
    value["resultType"] = json!("complete");
    wire(value)
}

/// Builds an rmcp type from its wire form (the fixtures are written as the suite
/// states them).
fn wire<T: DeserializeOwned>(value: Value) -> Result<T, McpError> {
    serde_json::from_value(value)
        .map_err(|e| McpError::internal_error(format!("fixture is malformed: {e}"), None))
}

fn text(text: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(text)])
}

/// Seals and opens `requestState` values (see the module documentation).
#[derive(Clone)]
pub struct Fixtures {
    key: Arc<hmac::Key>,
}

impl std::fmt::Debug for Fixtures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fixtures { key: [redacted] }")
    }
}

/// One of the suite's elicitation requests for a single string property.
fn ask(message: &str, property: &str, kind: &str) -> Value {
    json!({
        "method": "elicitation/create",
        "params": {
            "message": message,
            "requestedSchema": {
                "type": "object",
                "properties": {property: {"type": kind}},
                "required": [property]
            }
        }
    })
}

fn sampling(prompt: &str) -> Value {
    json!({
        "method": "sampling/createMessage",
        "params": {
            "messages": [{"role": "user", "content": {"type": "text", "text": prompt}}],
            "maxTokens": 50
        }
    })
}

fn roots() -> Value {
    json!({"method": "roots/list", "params": {}})
}

/// The string `field` of an accepted elicitation response.
fn elicited<'a>(responses: &'a InputResponses, key: &str, field: &str) -> Option<&'a str> {
    responses.get(key)?.get("content")?.get(field)?.as_str()
}

impl Fixtures {
    /// Fixtures with a fresh random sealing key.
    ///
    /// # Panics
    /// If the system random generator fails.
    pub fn new() -> Self {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
            .expect("the system random generator works");
        Self { key: Arc::new(key) }
    }

    /// `round` of `subject`'s exchange as a sealed `requestState`.
    fn seal(&self, subject: &str, round: u32) -> String {
        let payload = format!("{subject}:{round}");
        let tag = hmac::sign(&self.key, payload.as_bytes());
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(tag.as_ref())
        )
    }

    /// The round sealed in `state` for `subject`; `-32602` for a state that fails its
    /// integrity check or was issued for something else.
    fn open(&self, subject: &str, state: &str) -> Result<u32, McpError> {
        let refused = || {
            McpError::invalid_params(
                "requestState failed its integrity check",
                Some(json!({"reason": "tampered or foreign requestState"})),
            )
        };
        let (payload, tag) = state.split_once('.').ok_or_else(refused)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| refused())?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| refused())?;
        hmac::verify(&self.key, &payload, &tag).map_err(|_| refused())?;
        let payload = String::from_utf8(payload).map_err(|_| refused())?;
        let (issued_for, round) = payload.rsplit_once(':').ok_or_else(refused)?;
        if issued_for != subject {
            return Err(refused());
        }
        round.parse().map_err(|_| refused())
    }

    /// The round the client is in: 0 without a state, else the sealed one.
    fn round(&self, subject: &str, state: Option<&str>) -> Result<u32, McpError> {
        state.map_or(Ok(0), |state| self.open(subject, state))
    }

    /// An `input_required` result asking for `requests`, with a sealed state for
    /// `round` when `stateful`.
    fn input_required(
        &self,
        subject: &str,
        requests: Value,
        round: Option<u32>,
    ) -> Result<InputRequiredResult, McpError> {
        let mut result = json!({"resultType": "input_required", "inputRequests": requests});
        if let Some(round) = round {
            result["requestState"] = json!(self.seal(subject, round));
        }
        wire(result)
    }

    /// `tools/call` of a fixture tool.
    ///
    /// # Errors
    /// A protocol error where the suite expects one (a tampered state, a missing
    /// client capability).
    pub async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let name = request.name.as_ref();
        let responses = request.input_responses.clone().unwrap_or_default();
        let state = request.request_state.as_deref();
        let has = |key: &str| responses.contains_key(key);
        Ok(match name {
            "test_simple_text" => text("This is a simple text response for testing.").into(),
            "test_image_content" => {
                CallToolResult::success(vec![ContentBlock::image(PNG_1X1, "image/png")]).into()
            }
            "test_audio_content" => {
                CallToolResult::success(vec![ContentBlock::audio(WAV_SILENCE, "audio/wav")]).into()
            }
            "test_embedded_resource" => complete::<CallToolResult>(json!({"content": [{
                "type": "resource",
                "resource": {
                    "uri": "test://embedded-resource",
                    "mimeType": "text/plain",
                    "text": "This is an embedded resource content."
                }
            }]}))?
            .into(),
            "test_multiple_content_types" => complete::<CallToolResult>(json!({"content": [
                {"type": "text", "text": "Multiple content types test:"},
                {"type": "image", "data": PNG_1X1, "mimeType": "image/png"},
                {"type": "resource", "resource": {
                    "uri": "test://mixed-content-resource",
                    "mimeType": "application/json",
                    "text": "{\"test\":\"data\",\"value\":123}"
                }}
            ]}))?
            .into(),
            "test_error_handling" => CallToolResult::error(vec![ContentBlock::text(
                "This tool intentionally returns an error for testing",
            )])
            .into(),
            "test_tool_with_progress" => progress(context).await.into(),
            "json_schema_2020_12_tool" => text(format!(
                "received {}",
                Value::Object(request.arguments.clone().unwrap_or_default())
            ))
            .into(),
            "test_custom_header" => {
                let region = request
                    .arguments
                    .as_ref()
                    .and_then(|a| a.get("region"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                text(format!("region: {region}")).into()
            }
            "test_input_required_result_elicitation" | "test_streaming_elicitation" => {
                match elicited(&responses, "user_name", "name") {
                    Some(user) => text(format!("Hello, {user}!")).into(),
                    None => self
                        .input_required(
                            name,
                            json!({"user_name": ask("What is your name?", "name", "string")}),
                            None,
                        )?
                        .into(),
                }
            }
            "test_input_required_result_sampling" => match responses.get("capital_question") {
                Some(answer) => {
                    let said = answer
                        .pointer("/content/text")
                        .and_then(Value::as_str)
                        .unwrap_or("(no text)");
                    text(format!("The client answered: {said}")).into()
                }
                None => self
                    .input_required(
                        name,
                        json!({"capital_question": sampling("What is the capital of France?")}),
                        None,
                    )?
                    .into(),
            },
            "test_input_required_result_list_roots" => match responses.get("client_roots") {
                Some(listed) => {
                    let uris: Vec<&str> = listed
                        .get("roots")
                        .and_then(Value::as_array)
                        .map(|roots| {
                            roots
                                .iter()
                                .filter_map(|r| r.get("uri").and_then(Value::as_str))
                                .collect()
                        })
                        .unwrap_or_default();
                    text(format!("The client's roots: {}", uris.join(", "))).into()
                }
                None => self
                    .input_required(name, json!({"client_roots": roots()}), None)?
                    .into(),
            },
            "test_input_required_result_request_state"
            | "test_input_required_result_tampered_state" => {
                let round = self.round(name, state)?;
                if round == 1 && has("confirm") {
                    text("state-ok: the request state passed its integrity check").into()
                } else {
                    self.input_required(
                        name,
                        json!({"confirm": ask("Please confirm", "ok", "boolean")}),
                        Some(1),
                    )?
                    .into()
                }
            }
            "test_input_required_result_multiple_inputs" => {
                let round = self.round(name, state)?;
                let all = ["user_name", "greeting", "client_roots"];
                if round == 1 && all.iter().all(|k| has(k)) {
                    text("Received all three inputs.").into()
                } else {
                    let mut requests = json!({
                        "user_name": ask("What is your name?", "name", "string"),
                        "greeting": sampling("Generate a greeting"),
                        "client_roots": roots(),
                    });
                    // Re-ask only what is missing (SEP-2322: re-request, not an error).
                    if round == 1
                        && let Some(map) = requests.as_object_mut()
                    {
                        map.retain(|k, _| !has(k));
                    }
                    self.input_required(name, requests, Some(1))?.into()
                }
            }
            "test_input_required_result_multi_round" => {
                let round = self.round(name, state)?;
                match round {
                    1 if has("step1") => self
                        .input_required(
                            name,
                            json!({"step2": ask("Step 2: What is your favorite color?", "color", "string")}),
                            Some(2),
                        )?
                        .into(),
                    2 if has("step2") => {
                        let who = elicited(&responses, "step2", "color").unwrap_or("unknown");
                        text(format!("Both steps done; favorite color: {who}")).into()
                    }
                    2 => self
                        .input_required(
                            name,
                            json!({"step2": ask("Step 2: What is your favorite color?", "color", "string")}),
                            Some(2),
                        )?
                        .into(),
                    _ => self
                        .input_required(
                            name,
                            json!({"step1": ask("Step 1: What is your name?", "name", "string")}),
                            Some(1),
                        )?
                        .into(),
                }
            }
            "test_input_required_result_capabilities" => {
                let caps = context.client_capabilities().unwrap_or_default();
                let mut requests = serde_json::Map::new();
                if caps.elicitation.is_some() && !has("user_name") {
                    requests.insert(
                        "user_name".into(),
                        ask("What is your name?", "name", "string"),
                    );
                }
                if caps.sampling.is_some() && !has("greeting") {
                    requests.insert("greeting".into(), sampling("Generate a greeting"));
                }
                if caps.roots.is_some() && !has("client_roots") {
                    requests.insert("client_roots".into(), roots());
                }
                if requests.is_empty() {
                    text("Every input the client can give was given (or none was declared).").into()
                } else {
                    self.input_required(name, Value::Object(requests), None)?
                        .into()
                }
            }
            "test_missing_capability" => {
                let caps = context.client_capabilities().unwrap_or_default();
                if caps.sampling.is_none() {
                    let required: ClientCapabilities = wire(json!({"sampling": {}}))?;
                    return Err(McpError::missing_required_client_capability(required));
                }
                text("The client declared sampling.").into()
            }
            "test_logging_tool" => {
                text("No log message was sent: this server has no logging capability.").into()
            }
            other => {
                return Err(McpError::invalid_params(
                    format!("unknown tool: {other}"),
                    None,
                ));
            }
        })
    }

    /// `prompts/list`.
    ///
    /// # Errors
    /// Never in practice (the listing is fixed).
    pub fn list_prompts() -> Result<ListPromptsResult, McpError> {
        complete(json!({"prompts": [
            {"name": "test_simple_prompt", "description": "A prompt without arguments"},
            {"name": "test_prompt_with_arguments", "description": "A prompt with two required arguments",
             "arguments": [
                {"name": "arg1", "description": "First test argument", "required": true},
                {"name": "arg2", "description": "Second test argument", "required": true}
             ]},
            {"name": "test_prompt_with_embedded_resource", "description": "A prompt embedding a resource",
             "arguments": [{"name": "resourceUri", "description": "URI of the resource to embed", "required": true}]},
            {"name": "test_prompt_with_image", "description": "A prompt with an image"},
            {"name": "test_input_required_result_prompt", "description": "A prompt that first asks the client for context"}
        ]}))
    }

    /// `prompts/get`.
    ///
    /// # Errors
    /// `-32602` for an unknown prompt or a missing argument.
    pub fn get_prompt(
        &self,
        request: &GetPromptRequestParams,
    ) -> Result<GetPromptResponse, McpError> {
        let args = request.arguments.clone().unwrap_or_default();
        let arg = |name: &str| -> Result<String, McpError> {
            args.get(name)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| McpError::invalid_params(format!("missing argument {name:?}"), None))
        };
        let user_text = |t: String| json!({"role": "user", "content": {"type": "text", "text": t}});
        let messages = match request.name.as_str() {
            "test_simple_prompt" => {
                json!([user_text("This is a simple prompt for testing.".into())])
            }
            "test_prompt_with_arguments" => json!([user_text(format!(
                "Prompt with arguments: arg1='{}', arg2='{}'",
                arg("arg1")?,
                arg("arg2")?
            ))]),
            "test_prompt_with_embedded_resource" => json!([
                {"role": "user", "content": {"type": "resource", "resource": {
                    "uri": arg("resourceUri")?,
                    "mimeType": "text/plain",
                    "text": "Embedded resource content for testing."
                }}},
                user_text("Please process the embedded resource above.".into())
            ]),
            "test_prompt_with_image" => json!([
                {"role": "user", "content": {"type": "image", "data": PNG_1X1, "mimeType": "image/png"}},
                user_text("Please analyze the image above.".into())
            ]),
            "test_input_required_result_prompt" => {
                let responses = request.input_responses.clone().unwrap_or_default();
                match elicited(&responses, "user_context", "context") {
                    Some(context) => json!([user_text(format!("Use this context: {context}"))]),
                    None => {
                        return Ok(self
                            .input_required(
                                "test_input_required_result_prompt",
                                json!({"user_context": ask(
                                    "What context should the prompt use?",
                                    "context",
                                    "string"
                                )}),
                                None,
                            )?
                            .into());
                    }
                }
            }
            other => {
                return Err(McpError::invalid_params(
                    format!("unknown prompt: {other}"),
                    None,
                ));
            }
        };
        Ok(complete::<GetPromptResult>(json!({"messages": messages}))?.into())
    }

    /// `resources/list`.
    ///
    /// # Errors
    /// Never in practice (the listing is fixed).
    pub fn list_resources() -> Result<ListResourcesResult, McpError> {
        complete(json!({"resources": [
            {"uri": "test://static-text", "name": "static-text",
             "description": "A static text resource", "mimeType": "text/plain"},
            {"uri": "test://static-binary", "name": "static-binary",
             "description": "A static binary resource (a 1x1 PNG)", "mimeType": "image/png"}
        ]}))
    }

    /// `resources/templates/list`.
    ///
    /// # Errors
    /// Never in practice (the listing is fixed).
    pub fn list_resource_templates() -> Result<ListResourceTemplatesResult, McpError> {
        complete(json!({"resourceTemplates": [
            {"uriTemplate": "test://template/{id}/data", "name": "template-data",
             "description": "Data for an id", "mimeType": "application/json"}
        ]}))
    }

    /// `resources/read`.
    ///
    /// # Errors
    /// `-32602` with the URI in `data` for a resource that does not exist (SEP-2164).
    pub fn read_resource(
        request: &ReadResourceRequestParams,
    ) -> Result<ReadResourceResponse, McpError> {
        let uri = request.uri.as_str();
        let contents = match uri {
            "test://static-text" => json!({"uri": uri, "mimeType": "text/plain",
                "text": "This is the content of the static text resource."}),
            "test://static-binary" => json!({"uri": uri, "mimeType": "image/png", "blob": PNG_1X1}),
            _ => match uri
                .strip_prefix("test://template/")
                .and_then(|rest| rest.strip_suffix("/data"))
                .filter(|id| !id.is_empty() && !id.contains('/'))
            {
                Some(id) => json!({"uri": uri, "mimeType": "application/json",
                    "text": json!({"id": id, "templateTest": true, "data": format!("Data for ID: {id}")}).to_string()}),
                None => {
                    return Err(McpError::invalid_params(
                        "Resource not found",
                        Some(json!({"uri": uri})),
                    ));
                }
            },
        };
        Ok(complete::<ReadResourceResult>(json!({"contents": [contents]}))?.into())
    }

    /// `completion/complete`: the values of the argument's known choices that start with
    /// what the client typed.
    ///
    /// # Errors
    /// Never in practice.
    pub fn complete(request: &CompleteRequestParams) -> Result<CompleteResult, McpError> {
        const WORDS: [&str; 6] = ["paris", "park", "party", "hello", "world", "123"];
        let typed = request.argument.value.to_lowercase();
        let values: Vec<&str> = WORDS
            .iter()
            .copied()
            .filter(|w| w.starts_with(&typed))
            .collect();
        complete(json!({"completion": {"values": values, "total": values.len(), "hasMore": false}}))
    }
}

impl Default for Fixtures {
    fn default() -> Self {
        Self::new()
    }
}

/// `test_tool_with_progress`: 0, 50 and 100 of 100, 50 ms apart.
async fn progress(context: &RequestContext<RoleServer>) -> CallToolResult {
    let token = context.meta.get_progress_token();
    for (i, step) in [0.0, 50.0, 100.0].into_iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if let Some(token) = &token {
            let mut param = ProgressNotificationParam::new(token.clone(), step);
            param.total = Some(100.0);
            if let Err(error) = context.peer.notify_progress(param).await {
                tracing::debug!(%error, "progress notification not sent");
            }
        }
    }
    text("Progress test completed: 0, 50 and 100 of 100.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_state_opens_only_untouched_and_for_its_subject() {
        let fixtures = Fixtures::new();
        let state = fixtures.seal("tool_a", 2);
        assert_eq!(fixtures.open("tool_a", &state).unwrap(), 2);
        assert!(
            fixtures.open("tool_b", &state).is_err(),
            "bound to its subject"
        );
        let (payload, tag) = state.split_once('.').unwrap();
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode("tool_a:1"));
        assert!(fixtures.open("tool_a", &forged).is_err(), "payload changed");
        let mut bad_tag = tag.to_string();
        bad_tag.replace_range(0..1, if tag.starts_with('A') { "B" } else { "A" });
        assert!(
            fixtures
                .open("tool_a", &format!("{payload}.{bad_tag}"))
                .is_err()
        );
        assert!(fixtures.open("tool_a", "garbage").is_err());
        assert_eq!(
            fixtures.open("tool_a", "garbage").unwrap_err().code.0,
            -32602
        );
        // Another process (another key) does not accept it either.
        assert!(Fixtures::new().open("tool_a", &state).is_err());
    }

    #[test]
    fn resources_read_and_refuse_unknown_uris_with_the_uri() {
        let read = |uri: &str| Fixtures::read_resource(&ReadResourceRequestParams::new(uri));
        let ReadResourceResponse::Complete(result) = read("test://template/123/data").unwrap()
        else {
            panic!("a complete result")
        };
        let contents = serde_json::to_value(&result.contents).unwrap();
        let text: Value = serde_json::from_str(contents[0]["text"].as_str().unwrap()).unwrap();
        assert_eq!(
            text,
            json!({"id": "123", "templateTest": true, "data": "Data for ID: 123"})
        );
        let error = read("test://nonexistent").unwrap_err();
        assert_eq!(error.code.0, -32602);
        assert_eq!(error.data, Some(json!({"uri": "test://nonexistent"})));
        assert!(read("test://template//data").is_err());
    }

    #[test]
    fn prompts_need_their_arguments() {
        let fixtures = Fixtures::new();
        let mut request = GetPromptRequestParams::new("test_prompt_with_arguments");
        assert!(fixtures.get_prompt(&request).is_err());
        let mut args = serde_json::Map::new();
        args.insert("arg1".into(), json!("hello"));
        args.insert("arg2".into(), json!("world"));
        request.arguments = Some(args);
        let GetPromptResponse::Complete(result) = fixtures.get_prompt(&request).unwrap() else {
            panic!("a complete result")
        };
        let value = serde_json::to_value(result).unwrap();
        assert_eq!(
            value["messages"][0]["content"]["text"],
            "Prompt with arguments: arg1='hello', arg2='world'"
        );
    }

    #[test]
    fn the_fixture_tools_do_not_shadow_the_demo_tools() {
        for demo in ["calculator", "weather", "whoami", "admin_status"] {
            assert!(!has_tool(demo));
        }
        assert!(has_tool("test_simple_text"));
    }
}
