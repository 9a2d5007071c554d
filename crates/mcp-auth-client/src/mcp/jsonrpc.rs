//! JSON-RPC 2.0 messages as MCP uses them.
//!
//! Just enough to build requests and notifications and to sort what comes back:
//! a response to one of our requests, or a request or notification from the server
//! (which this client does not serve; they are shown in the trace and skipped).

use serde_json::{Value, json};

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
    json!({
        "protocolVersion": LATEST_PROTOCOL_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "mcp-client", "version": env!("CARGO_PKG_VERSION")}
    })
}

/// The `params` of `tools/list`: none for the first page, the cursor for the next ones.
#[must_use]
pub fn list_tools_params(cursor: Option<&str>) -> Option<Value> {
    cursor.map(|c| json!({"cursor": c}))
}

/// The `params` of `tools/call`.
#[must_use]
pub fn call_tool_params(name: &str, arguments: &Value) -> Value {
    json!({"name": name, "arguments": arguments})
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
        assert_eq!(list_tools_params(None), None);
        assert_eq!(list_tools_params(Some("p2")), Some(json!({"cursor": "p2"})));
        assert_eq!(
            call_tool_params("echo", &json!({"text": "hi", "n": 2})),
            json!({"name": "echo", "arguments": {"text": "hi", "n": 2}})
        );
        assert_eq!(
            call_tool_params("echo", &json!({})),
            json!({"name": "echo", "arguments": {}})
        );
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
