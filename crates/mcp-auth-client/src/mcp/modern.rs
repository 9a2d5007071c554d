//! The 2026-07-28 ("modern") wire of MCP over Streamable HTTP.
//!
//! No `initialize` handshake: every request carries its protocol version, the client's
//! identity and capabilities in `params._meta` (`io.modelcontextprotocol/*`, SEP-2575),
//! and on HTTP the `MCP-Protocol-Version` header plus the standard request headers
//! `Mcp-Method` and `Mcp-Name` and, for a tool whose `inputSchema` marks parameters
//! with `x-mcp-header`, one `Mcp-Param-{Name}` header per marked value (SEP-2243).
//! Header values that are not plain visible ASCII travel Base64-encoded between the
//! sentinels `=?base64?` and `?=`.
//!
//! A server that does not speak the requested version answers
//! `UnsupportedProtocolVersionError` (-32022) listing the versions it does; a legacy
//! server answers with anything else, and the session falls back to `initialize`
//! (basic/versioning, transports/streamable-http "Backward Compatibility").

use base64::Engine as _;
use serde_json::{Map, Value, json};

/// The modern protocol versions this client speaks, most preferred first.
pub const MODERN_PROTOCOL_VERSIONS: &[&str] = &["2026-07-28"];

/// The legacy (handshake) versions this client negotiates with `initialize`, most
/// preferred first.
pub const LEGACY_PROTOCOL_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26"];

/// `HeaderMismatch`: the headers do not match the body, or a required one is missing.
pub const HEADER_MISMATCH: i64 = -32020;
/// `MissingRequiredClientCapabilityError`.
pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;
/// `UnsupportedProtocolVersionError`: `data.supported` lists the server's versions.
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

/// Whether a JSON-RPC error code is one only a modern server sends: it identifies the
/// server as modern, so the client corrects its request instead of falling back.
#[must_use]
pub fn is_modern_error(code: i64) -> bool {
    matches!(
        code,
        HEADER_MISMATCH | MISSING_REQUIRED_CLIENT_CAPABILITY | UNSUPPORTED_PROTOCOL_VERSION
    )
}

/// The `_meta` keys of a modern request.
const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";

/// The request methods whose `Mcp-Name` header mirrors a body field.
fn name_source(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    }
}

/// Puts the per-request protocol fields into `params._meta` of a request, keeping any
/// `_meta` members already there.
pub fn add_request_meta(msg: &mut Value, version: &str) {
    let Some(obj) = msg.as_object_mut() else {
        return;
    };
    let params = obj
        .entry("params")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(params) = params else {
        return;
    };
    let meta = params
        .entry("_meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(meta) = meta {
        meta.insert(META_PROTOCOL_VERSION.to_owned(), json!(version));
        meta.insert(
            META_CLIENT_INFO.to_owned(),
            json!({"name": "mcp-client", "version": env!("CARGO_PKG_VERSION")}),
        );
        // This client answers no server requests of its own accord (sampling, roots,
        // elicitation): it declares none.
        meta.insert(META_CLIENT_CAPABILITIES.to_owned(), json!({}));
    }
}

/// The standard request headers of a message: `Mcp-Method` always, `Mcp-Name` for
/// `tools/call`, `prompts/get` (`params.name`) and `resources/read` (`params.uri`).
#[must_use]
pub fn standard_headers(msg: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Some(method) = msg.get("method").and_then(Value::as_str) else {
        return out;
    };
    out.push(("Mcp-Method".to_owned(), encode_header_value(method)));
    if let Some(field) = name_source(method)
        && let Some(name) = msg
            .pointer(&format!("/params/{field}"))
            .and_then(Value::as_str)
    {
        out.push(("Mcp-Name".to_owned(), encode_header_value(name)));
    }
    out
}

/// A header value as the transport carries it: as is when it is visible ASCII and
/// spaces with no leading or trailing whitespace, else `=?base64?{UTF-8 as Base64}?=`
/// (also for a plain value that looks like the sentinel, so that it cannot be taken
/// for an encoded one).
#[must_use]
pub fn encode_header_value(value: &str) -> String {
    let plain = value
        .bytes()
        .all(|b| b == b' ' || (0x21..=0x7e).contains(&b))
        && value.trim() == value
        && !(value.starts_with("=?base64?") && value.ends_with("?="));
    if plain {
        value.to_owned()
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(value.as_bytes())
        )
    }
}

/// One `x-mcp-header` designation of a tool: the header name part and the property
/// path (a chain of `properties` keys) whose value it mirrors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamHeader {
    /// `Region` for `Mcp-Param-Region`.
    pub name: String,
    /// The keys from the arguments object down to the value.
    pub path: Vec<String>,
}

/// The `x-mcp-header` designations of a tool definition, or why the definition is
/// invalid (an empty or non-token name, a duplicate, a non-primitive parameter, or a
/// designation not reachable through `properties` alone). A client on HTTP must leave
/// such a tool out of its tool list.
pub fn param_headers(tool: &Value) -> Result<Vec<ParamHeader>, String> {
    let mut found = Vec::new();
    if let Some(schema) = tool.get("inputSchema") {
        walk(schema, &mut Vec::new(), true, &mut found)?;
    }
    let mut seen = std::collections::HashSet::new();
    for h in &found {
        if !seen.insert(h.name.to_ascii_lowercase()) {
            return Err(format!(
                "x-mcp-header \"{}\" is used more than once (names are case-insensitive)",
                h.name
            ));
        }
    }
    Ok(found)
}

/// Walks a schema. `reachable`: whether the path to here is a chain of `properties`
/// keys from the root (only there may `x-mcp-header` appear).
fn walk(
    schema: &Value,
    path: &mut Vec<String>,
    reachable: bool,
    found: &mut Vec<ParamHeader>,
) -> Result<(), String> {
    match schema {
        Value::Object(obj) => {
            if let Some(h) = obj.get("x-mcp-header") {
                if !reachable || path.is_empty() {
                    return Err(
                        "x-mcp-header is only allowed on a property reached through \"properties\" alone"
                            .to_owned(),
                    );
                }
                let name = h
                    .as_str()
                    .ok_or_else(|| "x-mcp-header is not a string".to_owned())?;
                check_header_name(name)?;
                check_primitive(obj, name)?;
                found.push(ParamHeader {
                    name: name.to_owned(),
                    path: path.clone(),
                });
            }
            for (key, sub) in obj {
                if key == "properties"
                    && let Value::Object(props) = sub
                {
                    for (prop, prop_schema) in props {
                        path.push(prop.clone());
                        walk(prop_schema, path, reachable, found)?;
                        path.pop();
                    }
                } else if key != "x-mcp-header" {
                    // Any other keyword (items, oneOf, $defs, if/then, ...) leaves the
                    // statically reachable part of the schema.
                    walk(sub, path, false, found)?;
                }
            }
            Ok(())
        }
        Value::Array(items) => {
            for item in items {
                walk(item, path, false, found)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// RFC 9110 `token`: one or more `tchar`.
fn check_header_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("x-mcp-header is empty".to_owned());
    }
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if let Some(bad) = name.chars().find(|c| !tchar(*c)) {
        return Err(format!(
            "x-mcp-header {name:?} is not an HTTP field name token ({bad:?} is not allowed)"
        ));
    }
    Ok(())
}

/// Only `string`, `integer` and `boolean` parameters may be mirrored (`null` may be
/// allowed beside one of them: a null value is simply not mirrored).
fn check_primitive(schema: &Map<String, Value>, name: &str) -> Result<(), String> {
    let ok = |t: &str| matches!(t, "string" | "integer" | "boolean");
    let fine = match schema.get("type") {
        Some(Value::String(t)) => ok(t),
        Some(Value::Array(ts)) => {
            let named: Vec<&str> = ts.iter().filter_map(Value::as_str).collect();
            named.len() == ts.len()
                && named.iter().any(|t| ok(t))
                && named.iter().all(|t| ok(t) || *t == "null")
        }
        _ => false,
    };
    if fine {
        Ok(())
    } else {
        Err(format!(
            "x-mcp-header {name:?} is on a parameter that is not a string, integer or boolean"
        ))
    }
}

/// The `Mcp-Param-*` headers of a call with `arguments`: one per designation whose
/// value is present and not null. A value of another type than the schema allows is
/// an error (the server would refuse the call as a header mismatch anyway).
pub fn call_param_headers(
    designations: &[ParamHeader],
    arguments: &Value,
) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for d in designations {
        let mut v = arguments;
        let mut present = true;
        for key in &d.path {
            match v.get(key) {
                Some(next) => v = next,
                None => {
                    present = false;
                    break;
                }
            }
        }
        if !present {
            continue;
        }
        let text = match v {
            Value::Null => continue,
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
            Value::Number(n) => match n.as_f64() {
                // 42.0 is the integer 42.
                Some(f) if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
                    format!("{f:.0}")
                }
                _ => {
                    return Err(format!(
                        "the value of {} is not an integer",
                        d.path.join(".")
                    ));
                }
            },
            _ => {
                return Err(format!(
                    "the value of {} is not a string, integer or boolean",
                    d.path.join(".")
                ));
            }
        };
        out.push((format!("Mcp-Param-{}", d.name), encode_header_value(&text)));
    }
    Ok(out)
}

/// The versions of an `UnsupportedProtocolVersionError`'s `data.supported`.
#[must_use]
pub fn supported_versions(data: Option<&Value>) -> Vec<String> {
    data.and_then(|d| d.get("supported"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The most preferred modern version this client shares with `supported`.
#[must_use]
pub fn choose_modern(supported: &[String]) -> Option<&'static str> {
    MODERN_PROTOCOL_VERSIONS
        .iter()
        .copied()
        .find(|v| supported.iter().any(|s| s == v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_only_what_is_not_plain() {
        assert_eq!(encode_header_value("us-west1"), "us-west1");
        assert_eq!(encode_header_value("a b"), "a b");
        assert_eq!(
            encode_header_value("Hello, 世界"),
            "=?base64?SGVsbG8sIOS4lueVjA==?="
        );
        assert_eq!(encode_header_value(" padded "), "=?base64?IHBhZGRlZCA=?=");
        assert_eq!(
            encode_header_value("line1\nline2"),
            "=?base64?bGluZTEKbGluZTI=?="
        );
        assert_eq!(
            encode_header_value("=?base64?literal?="),
            "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="
        );
        assert_eq!(encode_header_value("a\tb"), "=?base64?YQli?=");
        assert_eq!(encode_header_value(""), "");
    }

    #[test]
    fn meta_and_standard_headers() {
        let mut m = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "get weather", "arguments": {}}});
        add_request_meta(&mut m, "2026-07-28");
        assert_eq!(
            m["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"],
            "2026-07-28"
        );
        assert!(m["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"].is_object());
        assert_eq!(
            m["params"]["_meta"]["io.modelcontextprotocol/clientInfo"]["name"],
            "mcp-client"
        );
        assert_eq!(
            standard_headers(&m),
            vec![
                ("Mcp-Method".to_owned(), "tools/call".to_owned()),
                ("Mcp-Name".to_owned(), "get weather".to_owned())
            ]
        );
        let mut l = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
        add_request_meta(&mut l, "2026-07-28");
        assert_eq!(
            standard_headers(&l),
            vec![("Mcp-Method".to_owned(), "tools/list".to_owned())]
        );
        let r = json!({"method": "resources/read", "params": {"uri": "file:///a b"}});
        assert_eq!(standard_headers(&r)[1].1, "file:///a b");
    }

    fn tool(props: Value) -> Value {
        json!({"name": "t", "inputSchema": {"type": "object", "properties": props}})
    }

    #[test]
    fn validates_designations() {
        let ok = tool(json!({
            "region": {"type": "string", "x-mcp-header": "Region"},
            "opts": {"type": "object", "properties": {
                "n": {"type": "integer", "x-mcp-header": "N"}}},
            "f": {"type": "number"}
        }));
        let d = param_headers(&ok).unwrap();
        assert_eq!(d.len(), 2);
        assert!(d.contains(&ParamHeader {
            name: "N".into(),
            path: vec!["opts".into(), "n".into()]
        }));
        for bad in [
            json!({"v": {"type": "string", "x-mcp-header": ""}}),
            json!({"v": {"type": "string", "x-mcp-header": "My Region"}}),
            json!({"v": {"type": "string", "x-mcp-header": "Region:1"}}),
            json!({"v": {"type": "string", "x-mcp-header": "Région"}}),
            json!({"v": {"type": "string", "x-mcp-header": "Region\t1"}}),
            json!({"v": {"type": "object", "x-mcp-header": "V"}}),
            json!({"v": {"type": "array", "x-mcp-header": "V"}}),
            json!({"v": {"type": "null", "x-mcp-header": "V"}}),
            json!({"v": {"type": "number", "x-mcp-header": "V"}}),
            json!({"a": {"type": "string", "x-mcp-header": "X"},
                   "b": {"type": "string", "x-mcp-header": "x"}}),
            json!({"v": {"type": "array", "items": {"type": "string", "x-mcp-header": "V"}}}),
            json!({"v": {"oneOf": [{"type": "string", "x-mcp-header": "V"}]}}),
        ] {
            assert!(param_headers(&tool(bad.clone())).is_err(), "{bad}");
        }
        assert!(param_headers(&json!({"name": "plain"})).unwrap().is_empty());
    }

    #[test]
    fn mirrors_present_values() {
        let d = param_headers(&tool(json!({
            "region": {"type": "string", "x-mcp-header": "Region"},
            "verbose": {"type": "boolean", "x-mcp-header": "Verbose"},
            "n": {"type": "integer", "x-mcp-header": "N"},
            "gone": {"type": ["string", "null"], "x-mcp-header": "Gone"}
        })))
        .unwrap();
        let mut h = call_param_headers(
            &d,
            &json!({"region": "Hello, 世界", "verbose": false, "n": 42.0, "gone": null}),
        )
        .unwrap();
        h.sort();
        assert_eq!(
            h,
            vec![
                ("Mcp-Param-N".to_owned(), "42".to_owned()),
                (
                    "Mcp-Param-Region".to_owned(),
                    "=?base64?SGVsbG8sIOS4lueVjA==?=".to_owned()
                ),
                ("Mcp-Param-Verbose".to_owned(), "false".to_owned()),
            ]
        );
        assert!(call_param_headers(&d, &json!({"n": 1.5})).is_err());
    }

    #[test]
    fn chooses_a_shared_version() {
        let s = supported_versions(Some(&json!({"supported": ["2025-11-25", "2026-07-28"]})));
        assert_eq!(choose_modern(&s), Some("2026-07-28"));
        assert_eq!(choose_modern(&["2025-11-25".to_owned()]), None);
        assert!(is_modern_error(-32022));
        assert!(!is_modern_error(-32601));
    }
}
