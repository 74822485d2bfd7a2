//! Tool rounds: what the daemon answers when a model stops for tool calls.
//!
//! Why: Kimi's built-in `$web_search` is run by Moonshot, but the model still stops with
//! `finish_reason: "tool_calls"` and waits for the caller to hand each call back. Moonshot
//! documents the answer (<https://platform.moonshot.ai/docs/guide/use-web-search>): append the
//! assistant message with its `tool_calls`, then one message per call with `role: "tool"`,
//! its `tool_call_id`, its function `name`, and as `content` the call's `arguments` exactly as
//! received; then ask again. Pure, so tests pin the shape without a server.

use serde_json::{Value, json};

use crate::provider::ChatResponse;

/// The messages that answer `response`'s tool calls: the assistant message that made them,
/// then one `tool` message per call echoing its arguments.
pub fn answer_tool_calls(response: &ChatResponse) -> Vec<Value> {
    assert!(
        !response.tool_calls.is_empty(),
        "only an answer that stopped for tool calls is answered"
    );
    let mut turns = vec![json!({
        "role": "assistant",
        "content": response.text,
        "tool_calls": response.tool_calls,
    })];
    for call in &response.tool_calls {
        let function = call.get("function");
        let text = |key: &str| {
            function
                .and_then(|f| f.get(key))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        turns.push(json!({
            "role": "tool",
            "tool_call_id": call.get("id").and_then(Value::as_str).unwrap_or(""),
            "name": text("name"),
            "content": text("arguments"),
        }));
    }
    turns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_call_is_answered_with_its_own_arguments() {
        let response = ChatResponse {
            tool_calls: vec![json!({
                "id": "call-1", "type": "builtin_function",
                "function": {"name": "$web_search", "arguments": "{\"search_result\":{\"search_id\":\"s1\"}}"}
            })],
            ..ChatResponse::default()
        };
        let turns = answer_tool_calls(&response);
        assert_eq!(turns.len(), 2);
        assert_eq!(turns[0]["role"], "assistant");
        assert_eq!(turns[0]["tool_calls"][0]["id"], "call-1");
        assert_eq!(
            turns[1],
            json!({"role": "tool", "tool_call_id": "call-1", "name": "$web_search",
                   "content": "{\"search_result\":{\"search_id\":\"s1\"}}"})
        );
    }
}
