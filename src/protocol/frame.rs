//! Decoding client frames: text in, a typed [`ClientFrame`] or a [`DecodeError`] out.
//!
//! Why by hand over a `serde_json::Value` rather than one `#[serde(tag = "op")]` enum: an
//! error must name the request it belongs to, so `request_id` is read before anything else
//! can fail, and each message names the exact field at fault. Pure function, no I/O, never
//! panics: it is the decoder the property tests and fuzzer hammer.

use serde_json::{Map, Value};

use crate::config::LimitSettings;
use crate::error::ErrorCode;

/// Longest accepted tool name, in bytes: no tool name is longer, and it is echoed in errors.
pub const TOOL_NAME_BYTES_MAX: usize = 128;

/// What the decoder accepts (from `EXAI_WS_JSON_DEPTH_MAX`, `EXAI_WS_REQUEST_ID_BYTES_MAX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Deepest JSON nesting: serde_json itself stops at 128, and no real argument needs more
    /// than a handful of levels.
    pub json_depth_max: usize,
    /// Longest `request_id`, in bytes: ids are keys in per-session maps and echoed on every
    /// frame of the call, so they must stay small.
    pub request_id_bytes_max: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            json_depth_max: 64,
            request_id_bytes_max: 256,
        }
    }
}

impl From<&LimitSettings> for DecodeLimits {
    fn from(limits: &LimitSettings) -> DecodeLimits {
        DecodeLimits {
            json_depth_max: limits.json_depth_max as usize,
            request_id_bytes_max: limits.request_id_bytes_max as usize,
        }
    }
}

/// The first frame of every connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Hello {
    /// The daemon's auth token.
    pub token: Option<String>,
    /// Resume: the session to return to.
    pub session_id: Option<String>,
    /// Resume: the secret that proves the session is ours.
    pub resume_token: Option<String>,
    /// Resume: the last seq the client saw.
    pub last_seq: Option<u64>,
    /// Free-form client description, for logs.
    pub client: Option<Value>,
    /// The client acks what it receives (`"acks": true`): the daemon keeps each frame until
    /// acked. Absent or false (the original's shim, which never acks): a frame written to the
    /// live socket counts as delivered, and a repeated request id is answered from the result
    /// cache. Additive: an old client sends no such field.
    pub acks: bool,
}

/// A decoded client frame.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    /// Handshake (first frame only).
    Hello(Hello),
    /// List enabled tools.
    ListTools {
        /// Echoed on the reply, if given.
        request_id: Option<String>,
    },
    /// Start a tool call.
    CallTool {
        /// The client's id for this call; unique per session while it runs.
        request_id: String,
        /// The tool's name (suffixes like `_EXAI-WS` already accepted by the tool registry).
        name: String,
        /// The tool's arguments, validated later against the tool's schema.
        arguments: Map<String, Value>,
    },
    /// Cancel a running call.
    Cancel {
        /// The call to cancel.
        request_id: String,
    },
    /// The client has every frame up to and including `seq`.
    Ack {
        /// Highest seq received.
        seq: u64,
    },
    /// Application-level liveness check.
    Ping {
        /// Echoed on the pong, if given.
        request_id: Option<String>,
    },
    /// Ask for the daemon's health snapshot.
    Health {
        /// Echoed on the reply, if given.
        request_id: Option<String>,
    },
}

impl ClientFrame {
    /// The frame's `op`, for logs.
    pub fn op(&self) -> &'static str {
        match self {
            ClientFrame::Hello(_) => "hello",
            ClientFrame::ListTools { .. } => "list_tools",
            ClientFrame::CallTool { .. } => "call_tool",
            ClientFrame::Cancel { .. } => "cancel",
            ClientFrame::Ack { .. } => "ack",
            ClientFrame::Ping { .. } => "ping",
            ClientFrame::Health { .. } => "health",
        }
    }
}

/// Why a frame could not be decoded, with the request it named (if one could be read).
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeError {
    /// The frame's `request_id`, when it had a readable one.
    pub request_id: Option<String>,
    /// The frame's `op`, when it had a readable one.
    pub op: Option<String>,
    /// `PROTOCOL_ERROR` for non-JSON, `INVALID_REQUEST` for JSON that is not a valid request.
    pub code: ErrorCode,
    /// Names the field and the problem.
    pub message: String,
}

impl DecodeError {
    /// True when the bytes were not a JSON object at all (the hello stage closes with 4000).
    pub fn is_not_json(&self) -> bool {
        self.code == ErrorCode::ProtocolError
    }
}

/// Decode one text frame with the default limits.
pub fn decode(text: &str) -> Result<ClientFrame, DecodeError> {
    decode_with(text, &DecodeLimits::default())
}

/// Decode one text frame.
pub fn decode_with(text: &str, limits: &DecodeLimits) -> Result<ClientFrame, DecodeError> {
    let value: Value = serde_json::from_str(text).map_err(|err| DecodeError {
        request_id: None,
        op: None,
        code: ErrorCode::ProtocolError,
        message: format!("frame is not valid JSON: {err}"),
    })?;
    let Value::Object(mut object) = value else {
        return Err(DecodeError {
            request_id: None,
            op: None,
            code: ErrorCode::ProtocolError,
            message: "frame must be a JSON object with an \"op\" field".to_string(),
        });
    };
    let depth = json_depth(&object);
    // The request id comes first so that every later error can name it.
    let request_id = match object.get("request_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if id.is_empty() => {
            return Err(invalid(None, None, "request_id must not be empty"));
        }
        Some(Value::String(id)) if id.len() > limits.request_id_bytes_max => {
            return Err(invalid(
                None,
                None,
                format!(
                    "request_id is {} bytes, the limit is {} (EXAI_WS_REQUEST_ID_BYTES_MAX)",
                    id.len(),
                    limits.request_id_bytes_max
                ),
            ));
        }
        Some(Value::String(id)) => Some(id.clone()),
        Some(other) => {
            return Err(invalid(
                None,
                None,
                format!("request_id must be a string, got {}", type_name(other)),
            ));
        }
    };
    let op = match object.get("op") {
        Some(Value::String(op)) => op.clone(),
        Some(other) => {
            return Err(invalid(
                request_id,
                None,
                format!("op must be a string, got {}", type_name(other)),
            ));
        }
        None => return Err(invalid(request_id, None, "missing field \"op\"")),
    };
    if depth > limits.json_depth_max {
        return Err(invalid(
            request_id,
            Some(op),
            format!(
                "frame nests {depth} levels deep, the limit is {} (EXAI_WS_JSON_DEPTH_MAX)",
                limits.json_depth_max
            ),
        ));
    }
    let fail = |message: String| invalid(request_id.clone(), Some(op.clone()), message);
    match op.as_str() {
        "hello" => Ok(ClientFrame::Hello(Hello {
            token: optional_string(&object, "token").map_err(fail)?,
            session_id: optional_string(&object, "session_id").map_err(fail)?,
            resume_token: optional_string(&object, "resume_token").map_err(fail)?,
            last_seq: optional_u64(&object, "last_seq").map_err(fail)?,
            acks: optional_bool(&object, "acks")
                .map_err(fail)?
                .unwrap_or(false),
            client: object.remove("client"),
        })),
        "list_tools" => Ok(ClientFrame::ListTools { request_id }),
        "call_tool" => {
            let Some(id) = request_id.clone() else {
                return Err(fail("call_tool needs a string request_id".to_string()));
            };
            let name = match object.get("name") {
                Some(Value::String(name)) if name.is_empty() => {
                    return Err(fail("name must not be empty".to_string()));
                }
                Some(Value::String(name)) if name.len() > TOOL_NAME_BYTES_MAX => {
                    return Err(fail(format!(
                        "name is {} bytes, the limit is {TOOL_NAME_BYTES_MAX}",
                        name.len()
                    )));
                }
                Some(Value::String(name)) => name.clone(),
                Some(other) => {
                    return Err(fail(format!(
                        "name must be a string, got {}",
                        type_name(other)
                    )));
                }
                None => return Err(fail("call_tool needs a \"name\"".to_string())),
            };
            let arguments = match object.remove("arguments") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(arguments)) => arguments,
                Some(other) => {
                    return Err(fail(format!(
                        "arguments must be an object, got {}",
                        type_name(&other)
                    )));
                }
            };
            Ok(ClientFrame::CallTool {
                request_id: id,
                name,
                arguments,
            })
        }
        "cancel" => match request_id.clone() {
            Some(id) => Ok(ClientFrame::Cancel { request_id: id }),
            None => Err(fail("cancel needs the request_id of the call".to_string())),
        },
        "ack" => match optional_u64(&object, "seq").map_err(fail)? {
            Some(seq) => Ok(ClientFrame::Ack { seq }),
            None => Err(invalid(request_id, Some(op), "ack needs a \"seq\"")),
        },
        "ping" => Ok(ClientFrame::Ping { request_id }),
        "health" => Ok(ClientFrame::Health { request_id }),
        _ => Err(invalid(
            request_id.clone(),
            Some(op.clone()),
            format!(
                "unknown op \"{}\"; expected one of hello, list_tools, call_tool, cancel, ack, ping, health",
                truncate(&op, 64)
            ),
        )),
    }
}

fn invalid(
    request_id: Option<String>,
    op: Option<String>,
    message: impl Into<String>,
) -> DecodeError {
    DecodeError {
        request_id,
        op,
        code: ErrorCode::InvalidRequest,
        message: message.into(),
    }
}

fn optional_string(object: &Map<String, Value>, field: &str) -> Result<Option<String>, String> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(other) => Err(format!(
            "{field} must be a string, got {}",
            type_name(other)
        )),
    }
}

fn optional_bool(object: &Map<String, Value>, field: &str) -> Result<Option<bool>, String> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(value)) => Ok(Some(*value)),
        Some(other) => Err(format!(
            "{field} must be true or false, got {}",
            type_name(other)
        )),
    }
}

fn optional_u64(object: &Map<String, Value>, field: &str) -> Result<Option<u64>, String> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => number
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("{field} must be a non-negative integer, got {number}")),
        Some(other) => Err(format!(
            "{field} must be a non-negative integer, got {}",
            type_name(other)
        )),
    }
}

/// The JSON type of a value, for error messages.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Nesting depth of an object's contents (an empty object is depth 1). Iterative, so a deep
/// value cannot overflow the stack here.
fn json_depth(object: &Map<String, Value>) -> usize {
    let mut depth_max = 1;
    let mut stack: Vec<(&Value, usize)> = object.values().map(|v| (v, 2)).collect();
    while let Some((value, depth)) = stack.pop() {
        match value {
            Value::Array(items) => {
                depth_max = depth_max.max(depth);
                stack.extend(items.iter().map(|v| (v, depth + 1)));
            }
            Value::Object(fields) => {
                depth_max = depth_max.max(depth);
                stack.extend(fields.values().map(|v| (v, depth + 1)));
            }
            _ => {}
        }
    }
    depth_max
}

fn truncate(text: &str, chars_max: usize) -> String {
    text.chars().take(chars_max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_tool_decodes() {
        let frame = decode(
            r#"{"op":"call_tool","request_id":"r1","name":"chat","arguments":{"prompt":"hi"}}"#,
        )
        .unwrap();
        match frame {
            ClientFrame::CallTool {
                request_id,
                name,
                arguments,
            } => {
                assert_eq!(request_id, "r1");
                assert_eq!(name, "chat");
                assert_eq!(arguments["prompt"], "hi");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_request_and_field() {
        let err = decode(r#"{"op":"call_tool","request_id":"r9","name":5}"#).unwrap_err();
        assert_eq!(err.request_id.as_deref(), Some("r9"));
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert!(
            err.message.contains("name must be a string"),
            "{}",
            err.message
        );

        let err = decode(r#"{"op":"warp","request_id":"r2"}"#).unwrap_err();
        assert_eq!(err.request_id.as_deref(), Some("r2"));
        assert!(err.message.contains("unknown op"));

        let err = decode("not json").unwrap_err();
        assert!(err.is_not_json());
        let err = decode("[1,2]").unwrap_err();
        assert!(err.is_not_json());
        let err = decode(r#"{"request_id":"x"}"#).unwrap_err();
        assert!(err.message.contains("missing field \"op\""));
    }

    #[test]
    fn depth_is_limited() {
        let deep = format!(
            r#"{{"op":"call_tool","request_id":"d","name":"chat","arguments":{{"x":{}1{}}}}}"#,
            "[".repeat(70),
            "]".repeat(70)
        );
        let err = decode(&deep).unwrap_err();
        assert!(err.message.contains("levels deep"), "{}", err.message);
        assert_eq!(err.request_id.as_deref(), Some("d"));
    }
}
