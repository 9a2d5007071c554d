//! JSON-RPC 2.0 messages as MCP uses them.
//!
//! Just enough to build requests and notifications and to sort what comes back:
//! a response to one of our requests, or a request or notification from the server
//! (which this client does not serve; they are shown in the trace and skipped).
//!
//! The `params` of the requests this client makes are rmcp's model types
//! (`rmcp::model`, without rmcp's client or server side). The envelope and the results
//! stay `serde_json::Value`: the envelope carries whatever method the caller names, and
//! results are read leniently (a server that leaves out a required member of
//! `InitializeResult` or a tool's `inputSchema` is still understood), where rmcp's
//! result types would refuse the whole message.

use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, Implementation, InitializeRequestParams,
    PaginatedRequestParams, ProtocolVersion,
};
use serde_json::{Value, json};

use crate::error::{ClientError, Result};

/// The protocol version this client asks for first.
pub const LATEST_PROTOCOL_VERSION: &str = "2025-11-25";

/// A request message.
#[must_use]
pub fn request(id: u64, method: &str, params: Option<Value>) -> Value {
    let mut m = json!({"jsonrpc": "2.0", "id": id, "method": method});
    if let Some(p) = params {
        m["params"] = p;
    }
    m
}

/// A notification message.
#[must_use]
pub fn notification(method: &str, params: Option<Value>) -> Value {
    let mut m = json!({"jsonrpc": "2.0", "method": method});
    if let Some(p) = params {
        m["params"] = p;
    }
    m
}

/// The `params` of `initialize`: this client's name and version, no capabilities.
#[must_use]
pub fn initialize_params() -> Value {
    let params = InitializeRequestParams::new(
        ClientCapabilities::default(),
        Implementation::new("mcp-client", env!("CARGO_PKG_VERSION")),
    )
    .with_protocol_version(ProtocolVersion::V_2025_11_25);
    to_value(&params)
}

/// The `params` of `tools/list`: none for the first page, the cursor for the next ones.
#[must_use]
pub fn list_tools_params(cursor: Option<&str>) -> Option<Value> {
    let cursor = cursor?.to_owned();
    Some(to_value(
        &PaginatedRequestParams::default().with_cursor(Some(cursor)),
    ))
}

/// The `params` of `tools/call`.
///
/// # Errors
/// [`ClientError::Config`] when `arguments` is not a JSON object, which is all
/// `tools/call` takes.
pub fn call_tool_params(name: &str, arguments: &Value) -> Result<Value> {
    let Value::Object(arguments) = arguments else {
        return Err(ClientError::Config(format!(
            "the arguments of the tool {name} must be a JSON object, not {arguments}"
        )));
    };
    let params = CallToolRequestParams::new(name.to_owned()).with_arguments(arguments.clone());
    Ok(to_value(&params))
}

/// A model type as JSON. Serialising these types (strings, maps, derived `Serialize`)
/// cannot fail.
fn to_value(params: &impl serde::Serialize) -> Value {
    serde_json::to_value(params).unwrap_or_default()
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// The error code.
    pub code: i64,
    /// The message.
    pub message: String,
    /// The error's `data`, if any (an `UnsupportedProtocolVersionError` lists the
    /// server's versions there).
    pub data: Option<Value>,
}

/// What an incoming message is.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A response (result or error) to the request with this id.
    Response {
        /// The id.
        id: Value,
        /// The result or the error.
        outcome: Result<Value, RpcError>,
    },
    /// A request or notification from the server.
    ServerMessage {
        /// Its method.
        method: String,
    },
    /// Anything else.
    Invalid,
}

/// Sorts one incoming message.
#[must_use]
pub fn classify(msg: &Value) -> Incoming {
    if let Some(method) = msg.get("method").and_then(Value::as_str) {
        return Incoming::ServerMessage {
            method: method.to_owned(),
        };
    }
    let Some(id) = msg.get("id").cloned() else {
        return Incoming::Invalid;
    };
    if let Some(result) = msg.get("result") {
        return Incoming::Response {
            id,
            outcome: Ok(result.clone()),
        };
    }
    if let Some(err) = msg.get("error") {
        return Incoming::Response {
            id,
            outcome: Err(RpcError {
                code: err.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: err
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                data: err.get("data").cloned(),
            }),
        };
    }
    Incoming::Invalid
}

/// Finds the response to request `id` in a message or a batch.
#[must_use]
pub fn find_response(msg: &Value, id: u64) -> Option<Result<Value, RpcError>> {
    let items: Vec<&Value> = match msg {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    items.into_iter().find_map(|m| match classify(m) {
        Incoming::Response { id: rid, outcome } if rid.as_u64() == Some(id) => Some(outcome),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_params_as_on_the_wire() {
        assert_eq!(
            initialize_params(),
            json!({
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "mcp-client", "version": env!("CARGO_PKG_VERSION")}
            })
        );
        assert_eq!(
            initialize_params()["protocolVersion"],
            LATEST_PROTOCOL_VERSION
        );
        assert_eq!(list_tools_params(None), None);
        assert_eq!(list_tools_params(Some("p2")), Some(json!({"cursor": "p2"})));
        assert_eq!(
            call_tool_params("echo", &json!({"text": "hi", "n": 2})).unwrap(),
            json!({"name": "echo", "arguments": {"text": "hi", "n": 2}})
        );
        assert_eq!(
            call_tool_params("echo", &json!({})).unwrap(),
            json!({"name": "echo", "arguments": {}})
        );
        assert!(matches!(
            call_tool_params("echo", &json!(["a"])),
            Err(ClientError::Config(_))
        ));
    }

    #[test]
    fn classifies_messages() {
        assert_eq!(
            find_response(&json!({"jsonrpc":"2.0","id":3,"result":{"a":1}}), 3),
            Some(Ok(json!({"a":1})))
        );
        assert_eq!(
            find_response(
                &json!({"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"no"}}),
                3
            ),
            Some(Err(RpcError {
                code: -32601,
                message: "no".into(),
                data: None,
            }))
        );
        assert_eq!(
            find_response(&json!({"jsonrpc":"2.0","id":4,"result":{}}), 3),
            None
        );
        assert_eq!(
            classify(&json!({"jsonrpc":"2.0","method":"notifications/message"})),
            Incoming::ServerMessage {
                method: "notifications/message".into()
            }
        );
        assert_eq!(
            request(1, "ping", None),
            json!({"jsonrpc":"2.0","id":1,"method":"ping"})
        );
    }
}
