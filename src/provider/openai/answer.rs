//! What a successful answer says: the text of a whole JSON completion, and the text a stream
//! of events builds up, with the errors a provider sometimes sends inside a 200.
//!
//! Why apart from the I/O: reading an answer is pure (a body or a sequence of events in, a
//! [`ChatResponse`] or a typed [`ProviderError`] out), so tests drive it without a server.

use serde_json::Value;

use super::classify::{MESSAGE_CHARS_MAX, classify_failure, truncate};
use super::sse::SseEvent;
use crate::provider::{ChatResponse, Chunk, ChunkSink, ProviderError};

/// What a `finish_reason` says of the answer it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// A whole answer (`stop`), or one that waits for tool calls (`tool_calls`).
    Whole,
    /// Cut at the output token limit (`length`).
    Truncated,
}

/// Read a `finish_reason`: a content filter's stop (`content_filter` in OpenAI's API,
/// `sensitive` in GLM's, docs.z.ai chat-completion) is an error that says so, since what
/// came before it is not the answer.
fn ending(reason: Option<&str>) -> Result<Ending, ProviderError> {
    match reason {
        Some("length") => Ok(Ending::Truncated),
        Some(reason @ ("content_filter" | "sensitive")) => Err(ProviderError::Client {
            status: 200,
            message: format!(
                "the provider's content filter stopped the answer (finish_reason: {reason})"
            ),
        }),
        _ => Ok(Ending::Whole),
    }
}

/// The text of a whole (non-streaming) answer, or why there is none. Some providers answer
/// 200 with an error object in the body; that is classified like any other failure.
pub fn completion_text(
    status: u16,
    body: &str,
    model: &str,
    now_unix_ms: u64,
) -> Result<ChatResponse, ProviderError> {
    let value: Value = serde_json::from_str(body).map_err(|error| ProviderError::Server {
        status,
        message: format!(
            "the provider's answer is not JSON ({error}): {}",
            truncate(body.trim(), MESSAGE_CHARS_MAX)
        ),
    })?;
    let content = value
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str);
    let tool_calls = stopped_for_tool_calls(&value);
    if content.is_some() || !tool_calls.is_empty() {
        let reason = value
            .pointer("/choices/0/finish_reason")
            .and_then(Value::as_str);
        return Ok(ChatResponse {
            text: content.unwrap_or("").to_string(),
            model: answered_model(&value, model),
            tool_calls,
            sources: sources(&value),
            truncated: ending(reason)? == Ending::Truncated,
            usage: crate::provider::Usage::from_json(&value),
        });
    }
    if value.get("error").is_some() {
        return Err(classify_failure(status, None, None, body, now_unix_ms));
    }
    Err(ProviderError::Server {
        status,
        message: format!(
            "the provider's answer has no choices[0].message.content: {}",
            truncate(body.trim(), MESSAGE_CHARS_MAX)
        ),
    })
}

/// The tool calls an answer stopped for: `choices[0].message.tool_calls` when
/// `finish_reason` is `tool_calls` (Moonshot's `$web_search` round,
/// <https://platform.moonshot.ai/docs/guide/use-web-search>). GLM lists its finished
/// `web_search` in `tool_calls` too, with `finish_reason: stop`: that is no request to answer.
fn stopped_for_tool_calls(value: &Value) -> Vec<Value> {
    let stopped = value
        .pointer("/choices/0/finish_reason")
        .and_then(Value::as_str)
        == Some("tool_calls");
    match value.pointer("/choices/0/message/tool_calls") {
        Some(Value::Array(calls)) if stopped => calls.clone(),
        _ => Vec::new(),
    }
}

/// The pages a provider searched, where it lists them: GLM's top-level `web_search` list
/// (title, link, media, content, ...; <https://docs.z.ai/api-reference/llm/chat-completion>),
/// each kept to its title, link and media so metadata stays small.
fn sources(value: &Value) -> Vec<Value> {
    let Some(Value::Array(pages)) = value.get("web_search") else {
        return Vec::new();
    };
    pages
        .iter()
        .take(SOURCES_MAX)
        .map(|page| {
            let mut kept = serde_json::Map::new();
            for key in ["title", "link", "media"] {
                if let Some(Value::String(text)) = page.get(key) {
                    kept.insert(
                        key.to_string(),
                        Value::String(truncate(text, MESSAGE_CHARS_MAX)),
                    );
                }
            }
            Value::Object(kept)
        })
        .collect()
}

/// Most tool calls one streamed answer may piece together (a bound on a hostile stream).
const TOOL_CALLS_MAX: usize = 16;

/// Most sources one answer reports in metadata.
const SOURCES_MAX: usize = 50;

/// The model the provider says answered, else the one asked for.
fn answered_model(value: &Value, asked: &str) -> String {
    value
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .unwrap_or(asked)
        .to_string()
}

/// What a stream has produced so far.
pub(super) struct StreamState {
    /// The text so far.
    text: String,
    /// The model that answers (from the first event that names it).
    model: String,
    /// Whether an event carried a `finish_reason`: a stream that then ends without
    /// `[DONE]` is complete all the same.
    pub(super) finished: bool,
    /// Tool calls pieced together from `delta.tool_calls` (by `index`: the id, type and name
    /// come once, the arguments in pieces), kept only if the stream stops for them.
    tool_calls: Vec<Value>,
    /// Whether the `finish_reason` was `tool_calls`.
    stopped_for_tools: bool,
    /// The pages searched, from the event that lists them (GLM's `web_search`).
    sources: Vec<Value>,
    /// Whether the `finish_reason` was `length`.
    truncated: bool,
    /// The usage an event reported (the last one, where the provider sends it).
    usage: Option<crate::provider::Usage>,
}

impl StreamState {
    /// Nothing yet; `model` (the one asked for) stands until an event names another.
    pub(super) fn new(model: &str) -> StreamState {
        StreamState {
            text: String::new(),
            model: model.to_string(),
            finished: false,
            tool_calls: Vec::new(),
            stopped_for_tools: false,
            sources: Vec::new(),
            truncated: false,
            usage: None,
        }
    }

    /// Add one `delta.tool_calls` piece to the call at its `index`.
    fn add_tool_call_piece(&mut self, piece: &Value) {
        let index = piece.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
        if index >= TOOL_CALLS_MAX {
            return;
        }
        while self.tool_calls.len() <= index {
            self.tool_calls
                .push(serde_json::json!({"id": "", "type": "function", "function": {"name": "", "arguments": ""}}));
        }
        let call = &mut self.tool_calls[index];
        for key in ["id", "type"] {
            if let Some(Value::String(text)) = piece.get(key) {
                call[key] = Value::String(text.clone());
            }
        }
        if let Some(Value::String(name)) = piece.pointer("/function/name") {
            call["function"]["name"] = Value::String(name.clone());
        }
        if let Some(Value::String(more)) = piece.pointer("/function/arguments") {
            let so_far = call["function"]["arguments"]
                .as_str()
                .unwrap_or("")
                .to_string();
            call["function"]["arguments"] = Value::String(so_far + more);
        }
    }

    /// Take one event; `Ok(true)` when the stream is done.
    pub(super) fn apply(
        &mut self,
        event: SseEvent,
        sink: &ChunkSink,
        now_unix_ms: u64,
    ) -> Result<bool, ProviderError> {
        let data = match event {
            SseEvent::Done => return Ok(true),
            SseEvent::Data(data) => data,
        };
        let value: Value = serde_json::from_str(&data).map_err(|error| {
            ProviderError::Transport(format!(
                "a stream event is not JSON ({error}): {}",
                truncate(&data, MESSAGE_CHARS_MAX)
            ))
        })?;
        if value.get("error").is_some() {
            // An error in the middle of a stream (GLM sends its business codes this way).
            return Err(classify_failure(200, None, None, &data, now_unix_ms));
        }
        if let Some(model) = value
            .get("model")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
        {
            model.clone_into(&mut self.model);
        }
        if let Some(piece) = value
            .pointer("/choices/0/delta/content")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
        {
            sink(Chunk::Text(piece));
            self.text.push_str(piece);
        }
        if let Some(thought) = value
            .pointer("/choices/0/delta/reasoning_content")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
        {
            sink(Chunk::Reasoning(thought));
        }
        if let Some(Value::Array(pieces)) = value.pointer("/choices/0/delta/tool_calls") {
            for piece in pieces {
                self.add_tool_call_piece(piece);
            }
        }
        if value.get("web_search").is_some() {
            self.sources = sources(&value);
        }
        if let Some(usage) = crate::provider::Usage::from_json(&value) {
            self.usage = Some(usage);
        }
        if let Some(reason) = value
            .pointer("/choices/0/finish_reason")
            .and_then(Value::as_str)
        {
            self.finished = true;
            self.stopped_for_tools = reason == "tool_calls";
            self.truncated = ending(Some(reason))? == Ending::Truncated;
        }
        Ok(false)
    }

    /// The answer: the text so far and the model that gave it.
    pub(super) fn into_response(self) -> ChatResponse {
        ChatResponse {
            text: self.text,
            model: self.model,
            tool_calls: if self.stopped_for_tools {
                self.tool_calls
            } else {
                Vec::new()
            },
            sources: self.sources,
            truncated: self.truncated,
            usage: self.usage,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::fixtures::{NOW_MS, rate_limited};
    use super::*;
    use crate::provider::RateLimitKind;

    #[test]
    fn whole_answers() {
        let body = r#"{"id":"x","model":"kimi-k2","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}]}"#;
        let answer = completion_text(200, body, "asked", NOW_MS).unwrap();
        assert_eq!(answer.text, "Hello");
        assert_eq!(answer.model, "kimi-k2");
        assert!(answer.tool_calls.is_empty() && answer.sources.is_empty());
        let stopped = r#"{"choices":[{"finish_reason":"tool_calls","message":{"role":"assistant","content":null,
            "tool_calls":[{"id":"c1","type":"builtin_function","function":{"name":"$web_search","arguments":"{}"}}]}}]}"#;
        let answer = completion_text(200, stopped, "asked", NOW_MS).unwrap();
        assert_eq!((answer.text.as_str(), answer.tool_calls.len()), ("", 1));
        let searched = r#"{"choices":[{"finish_reason":"stop","message":{"content":"Found",
            "tool_calls":[{"id":"w","type":"web_search"}]}}],
            "web_search":[{"title":"T","link":"https://example.org","media":"M","content":"long"}]}"#;
        let answer = completion_text(200, searched, "asked", NOW_MS).unwrap();
        assert!(
            answer.tool_calls.is_empty(),
            "GLM's finished search is no round"
        );
        assert_eq!(
            answer.sources,
            vec![serde_json::json!({"title": "T", "link": "https://example.org", "media": "M"})]
        );
        let error = completion_text(200, r#"{"choices":[]}"#, "asked", NOW_MS).unwrap_err();
        assert!(
            matches!(error, ProviderError::Server { status: 200, .. }),
            "{error:?}"
        );
        let error = completion_text(200, "not json", "asked", NOW_MS).unwrap_err();
        assert!(error.to_string().contains("not JSON"), "{error}");
        let error = completion_text(
            200,
            r#"{"error":{"code":"1302","message":"busy"}}"#,
            "asked",
            NOW_MS,
        )
        .unwrap_err();
        assert_eq!(rate_limited(&error).1, RateLimitKind::Concurrency);
    }

    #[test]
    fn stream_state_concatenates_deltas() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let sink: ChunkSink = {
            let seen = seen.clone();
            Arc::new(move |chunk: Chunk<'_>| {
                if let Chunk::Text(text) = chunk {
                    seen.lock().unwrap().push(text.to_string());
                }
            })
        };
        let mut state = StreamState::new("asked");
        let events = [
            r#"{"model":"glm-4.6","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"Hel"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"reasoning_content":"hmm"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}"#,
        ];
        for data in events {
            assert!(
                !state
                    .apply(SseEvent::Data(data.into()), &sink, NOW_MS)
                    .unwrap()
            );
        }
        assert!(state.finished);
        assert!(state.apply(SseEvent::Done, &sink, NOW_MS).unwrap());
        let answer = state.into_response();
        assert_eq!(answer.text, "Hello");
        assert_eq!(answer.model, "glm-4.6");
        assert_eq!(*seen.lock().unwrap(), vec!["Hel", "lo"]);

        let mut state = StreamState::new("asked");
        let events = [
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","type":"builtin_function","function":{"name":"$web_search","arguments":"{\"q\":"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]},"finish_reason":"tool_calls"}]}"#,
        ];
        for data in events {
            state
                .apply(SseEvent::Data(data.into()), &sink, NOW_MS)
                .unwrap();
        }
        let answer = state.into_response();
        assert_eq!(
            answer.tool_calls,
            vec![serde_json::json!({"id": "c1", "type": "builtin_function",
                                    "function": {"name": "$web_search", "arguments": "{\"q\":1}"}})]
        );

        let mut state = StreamState::new("asked");
        let error = state
            .apply(
                SseEvent::Data(r#"{"error":{"code":"1303","message":"slow down"}}"#.into()),
                &sink,
                NOW_MS,
            )
            .unwrap_err();
        assert_eq!(rate_limited(&error).1, RateLimitKind::Frequency);
        let error = state
            .apply(SseEvent::Data("{oops".into()), &sink, NOW_MS)
            .unwrap_err();
        assert!(matches!(error, ProviderError::Transport(_)), "{error:?}");
    }
}
