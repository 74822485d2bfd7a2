//! The JSON every tool answers with: the original's `ToolOutput` shape.
//!
//! Why: clients of the original read the `call_tool_res` text as a JSON object with `status`,
//! `content`, `content_type`, `metadata` (tool, provider, model) and, where the conversation
//! can go on, `continuation_offer` with the `continuation_id`. Workflow tools add their own
//! fields at the top level (`step_number`, `required_actions`, `expert_analysis`...), as the
//! original's workflow responses did. One builder keeps every tool's output in that shape.

use serde_json::{Map, Value, json};

use crate::conversation::History;
use crate::provider::offline;

/// How `content` is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    /// Plain text (a model's answer, guidance).
    Text,
    /// A JSON document serialized into the `content` string.
    Json,
}

impl ContentType {
    fn as_str(self) -> &'static str {
        match self {
            ContentType::Text => "text",
            ContentType::Json => "json",
        }
    }
}

/// One tool answer under construction.
#[derive(Debug, Clone)]
pub struct ToolOutput {
    /// `success`, `continuation_available`, `pause_for_debug`, ...
    status: String,
    /// The main content.
    content: String,
    /// How to read `content`.
    content_type: ContentType,
    /// `tool_name`, `provider_used`, `model_used`, ...
    metadata: Map<String, Value>,
    /// Top-level fields beyond the envelope (workflow state, continuation offer...).
    fields: Map<String, Value>,
}

impl ToolOutput {
    /// An answer of `tool` with this status and content.
    pub fn new(
        tool: &str,
        status: impl Into<String>,
        content: impl Into<String>,
        content_type: ContentType,
    ) -> ToolOutput {
        let mut metadata = Map::new();
        metadata.insert("tool_name".to_string(), json!(tool));
        ToolOutput {
            status: status.into(),
            content: content.into(),
            content_type,
            metadata,
            fields: Map::new(),
        }
    }

    /// Say which provider and model answered (both the original's names and short ones);
    /// answers of the offline provider are marked `offline: true`.
    pub fn model(mut self, provider: &str, model: &str) -> ToolOutput {
        for (key, value) in [
            ("provider_used", provider),
            ("model_used", model),
            ("provider", provider),
            ("model", model),
        ] {
            self.metadata.insert(key.to_string(), json!(value));
        }
        if provider == offline::NAME {
            self.metadata.insert("offline".to_string(), json!(true));
        }
        self
    }

    /// Add a metadata entry.
    pub fn meta(mut self, key: &str, value: Value) -> ToolOutput {
        self.metadata.insert(key.to_string(), value);
        self
    }

    /// `metadata.files`, when the call named files.
    pub fn files(self, files: Option<Value>) -> ToolOutput {
        match files {
            Some(files) => self.meta("files", files),
            None => self,
        }
    }

    /// Replace the status.
    pub fn status(mut self, status: &str) -> ToolOutput {
        self.status = status.to_string();
        self
    }

    /// `metadata.thinking`, when the call asked for a thinking mode.
    pub fn thinking(self, thinking: Option<Value>) -> ToolOutput {
        match thinking {
            Some(thinking) => self.meta("thinking", thinking),
            None => self,
        }
    }

    /// `metadata.truncated` and a note, when the answer stopped at the token limit.
    pub fn truncated(self, truncated: bool) -> ToolOutput {
        if !truncated {
            return self;
        }
        self.meta("truncated", json!(true)).meta(
            "truncated_note",
            json!("The model stopped at its output token limit: the answer is cut short. Ask again with a larger max_tokens, or a narrower question."),
        )
    }

    /// `total_steps_adjusted`, when a step's number was past `total_steps` (raised to it).
    pub fn adjusted(self, from: Option<u32>) -> ToolOutput {
        match from {
            Some(from) => self.field(
                "total_steps_adjusted",
                json!({"from": from, "raised": true}),
            ),
            None => self,
        }
    }

    /// `metadata.fallback`, when an `auto` call moved to another model.
    pub fn fallback(self, fallback: Option<Value>) -> ToolOutput {
        match fallback {
            Some(fallback) => self.meta("fallback", fallback),
            None => self,
        }
    }

    /// `metadata.usage`, when the provider reported what the answer cost.
    pub fn usage(self, usage: Option<crate::provider::Usage>) -> ToolOutput {
        match usage {
            Some(usage) => self.meta("usage", json!(usage)),
            None => self,
        }
    }

    /// `metadata.cost_usd`, when the model's prices are configured.
    pub fn cost(self, usd: Option<f64>) -> ToolOutput {
        match usd {
            Some(usd) => self.meta("cost_usd", json!(usd)),
            None => self,
        }
    }

    /// `metadata.images`, when the call sent images.
    pub fn images(self, images: Option<Value>) -> ToolOutput {
        match images {
            Some(images) => self.meta("images", images),
            None => self,
        }
    }

    /// `metadata.web_search` (`{rounds, sources}`), when the call offered the provider's web
    /// search.
    pub fn web_search(self, offered: bool, rounds: u32, sources: &[Value]) -> ToolOutput {
        if !offered {
            return self;
        }
        self.meta(
            "web_search",
            serde_json::json!({ "rounds": rounds, "sources": sources }),
        )
    }

    /// Add a top-level field.
    pub fn field(mut self, key: &str, value: Value) -> ToolOutput {
        self.fields.insert(key.to_string(), value);
        self
    }

    /// Offer to continue conversation `id`, saying how much room is left and whether older
    /// turns were dropped (never silently).
    pub fn continuation(mut self, id: &str, history: History) -> ToolOutput {
        let mut note = format!(
            "Pass continuation_id \"{id}\" to any tool to continue this conversation \
             ({} more turn(s) before the oldest are dropped).",
            history.remaining_turns()
        );
        if let Some(truncated) = history.truncation_note() {
            note.push(' ');
            note.push_str(&truncated);
            note.push('.');
            self.fields
                .insert("history_truncated".to_string(), json!(truncated));
        }
        self.metadata.insert(
            "conversation".to_string(),
            serde_json::to_value(history).expect("history serializes"),
        );
        self.fields.insert(
            "continuation_offer".to_string(),
            json!({
                "continuation_id": id,
                "note": note,
                "remaining_turns": history.remaining_turns(),
            }),
        );
        self
    }

    /// The JSON text of the answer.
    pub fn render(self) -> String {
        let mut object = self.fields;
        object.insert("status".to_string(), json!(self.status));
        object.insert("content".to_string(), json!(self.content));
        object.insert(
            "content_type".to_string(),
            json!(self.content_type.as_str()),
        );
        object.insert("metadata".to_string(), Value::Object(self.metadata));
        serde_json::to_string_pretty(&Value::Object(object)).expect("JSON values serialize")
    }
}

/// JSON Schema of every tool's output: the envelope above (MCP's `outputSchema`; each
/// result's `structuredContent` is the same object as its text). One schema for all tools,
/// since every tool answers with this envelope; tools add top-level fields (workflow state,
/// the continuation offer) and metadata entries, which the schema allows and names where
/// they are shared. A failed call's structured result has status `error`.
pub fn schema() -> Value {
    let text = |description: &str| json!({"type": "string", "description": description});
    json!({
        "type": "object",
        "description": "An exaid tool answer: status, content and metadata (the EX-AI shape).",
        "required": ["status", "content", "content_type", "metadata"],
        "properties": {
            "status": text("success, continuation_available, a workflow's pause_for_<tool> or \
                            <tool>_complete, ..., or error for a failed call"),
            "content": text("the answer: the model's text, a document, or a failed call's code and message"),
            "content_type": {"enum": ["text", "json"], "description": "how to read content"},
            "metadata": {
                "type": "object",
                "properties": {
                    "tool_name": text("the tool that answered"),
                    "provider_used": text("the provider that answered"),
                    "model_used": text("the model that answered"),
                    "usage": {
                        "type": "object",
                        "properties": {
                            "prompt_tokens": {"type": "integer"},
                            "completion_tokens": {"type": "integer"},
                            "total_tokens": {"type": "integer"}
                        }
                    },
                    "cost_usd": {"type": "number"},
                    "fallback": {"type": "array", "description": "each model left, and why"},
                    "error_code": text("a failed call's code, e.g. RATE_LIMITED"),
                    "retry_after_secs": {"type": "integer", "description": "when a retry may succeed"}
                },
                "additionalProperties": true
            },
            "continuation_offer": {
                "type": "object",
                "properties": {
                    "continuation_id": text("pass it to any tool to continue the conversation"),
                    "note": {"type": "string"},
                    "remaining_turns": {"type": "integer"}
                }
            }
        },
        "additionalProperties": true
    })
}

/// A failed call as the same envelope: status `error`, the code and message as content.
pub fn error_envelope(error: &crate::error::CallError, text: &str) -> Value {
    let mut metadata = Map::new();
    metadata.insert("error_code".to_string(), json!(error.code.as_str()));
    if let Some(secs) = error.retry_after_secs {
        metadata.insert("retry_after_secs".to_string(), json!(secs));
    }
    if let Some(details) = &error.details {
        metadata.insert("details".to_string(), details.clone());
    }
    json!({"status": "error", "content": text, "content_type": "text", "metadata": metadata})
}

/// A rendered answer with `metadata.ignored_arguments` set to `names`: the arguments the call
/// sent that the tool accepts and does not use. Why after rendering: it is one shared step for
/// every tool (in `tool::Registered`), whatever builds the tool's answer.
pub fn with_ignored_arguments(text: &str, names: &[&str]) -> String {
    let mut value: Value = serde_json::from_str(text).expect("a tool answers with its JSON output");
    let metadata = value
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .expect("a tool's output has metadata");
    metadata.insert("ignored_arguments".to_string(), json!(names));
    serde_json::to_string_pretty(&value).expect("JSON values serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_original_shape() {
        let history = History {
            turns: 2,
            turns_max: 10,
            bytes: 5,
            turns_dropped: 1,
        };
        let text = ToolOutput::new("chat", "continuation_available", "hi", ContentType::Text)
            .model("offline", "exaid-offline")
            .continuation("abc", history)
            .render();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["status"], "continuation_available");
        assert_eq!(value["content"], "hi");
        assert_eq!(value["content_type"], "text");
        assert_eq!(value["metadata"]["tool_name"], "chat");
        assert_eq!(value["metadata"]["offline"], true);
        assert_eq!(value["continuation_offer"]["continuation_id"], "abc");
        assert_eq!(value["continuation_offer"]["remaining_turns"], 8);
        assert!(
            value["continuation_offer"]["note"]
                .as_str()
                .unwrap()
                .contains("dropped")
        );
        assert!(value["history_truncated"].is_string());
    }

    #[test]
    fn ignored_arguments_are_added_to_the_metadata() {
        let text = ToolOutput::new("chat", "success", "hi", ContentType::Text)
            .model("offline", "exaid-offline")
            .render();
        let marked = with_ignored_arguments(&text, &["files", "images"]);
        let value: Value = serde_json::from_str(&marked).unwrap();
        assert_eq!(
            value["metadata"]["ignored_arguments"],
            json!(["files", "images"])
        );
        assert_eq!(value["metadata"]["tool_name"], "chat");
        assert_eq!(value["content"], "hi");
    }
}
