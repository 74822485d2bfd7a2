//! Which OpenAI-compatible provider is spoken to, and the request body it accepts: every
//! per-provider quirk of a request lives here, with the documentation it comes from.
//!
//! Why a file of its own: the quirks change when a provider changes its API, independently of
//! how a request is sent or how an answer is read; keeping them pure (a [`ChatRequest`] in, a
//! JSON body out) lets tests pin each one without I/O.

use serde_json::{Value, json};

use crate::config::key;
use crate::provider::ChatRequest;

/// Which provider's dialect of the OpenAI API is spoken: they differ in error codes and in the
/// request parameters they accept (see [`request_body`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Kimi, by Moonshot AI (`https://api.moonshot.ai/v1`).
    Kimi,
    /// GLM, by Zhipu AI / Z.ai (`https://api.z.ai/api/paas/v4`).
    Glm,
}

impl Dialect {
    /// The provider's short name, as `listmodels` and the limits show it.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Kimi => "kimi",
            Dialect::Glm => "glm",
        }
    }

    /// The configuration key that holds this provider's API key, for messages.
    pub(super) fn key_name(self) -> &'static str {
        match self {
            Dialect::Kimi => key::KIMI_API_KEY,
            Dialect::Glm => key::GLM_API_KEY,
        }
    }
}

/// The JSON body of a chat-completions request, adapted to what `dialect` accepts. Every
/// per-provider quirk of the request lives here, and only here.
///
/// - Kimi (Moonshot): `temperature` must lie in [0, 1] ("temperature ... between 0 and 1",
///   Moonshot's chat API reference, platform.moonshot.ai/docs/api/chat), so larger values are
///   clamped. The kimi-k2.5 family fixes its sampling parameters ("cannot be modified",
///   platform.kimi.ai/docs/api/models-overview) and refuses a request that sets them, so no
///   temperature is sent for those models.
/// - GLM (Z.ai): `temperature` must lie in [0.0, 1.0] (docs.z.ai/api-reference/llm/chat-completion),
///   so larger values are clamped.
/// - Both: `stream: true` only when the answer is streamed (both end the stream with
///   `data: [DONE]`).
/// - Thinking (`request.thinking`, set only for a model whose facts say it thinks): GLM's
///   `thinking: {"type": "enabled" | "disabled"}` (docs.z.ai, "GLM-4.5", "Thinking mode");
///   Kimi's listed models have no such switch, so nothing is sent to Kimi.
/// - Web search (`request.web_search`), see [`web_search_tool`]; the earlier tool rounds of
///   the call (`request.tool_turns`) follow the conversation's messages.
pub fn request_body(dialect: Dialect, request: &ChatRequest, stream: bool) -> Value {
    let mut messages = serde_json::to_value(&request.messages).expect("messages serialize");
    if let Some(list) = messages.as_array_mut() {
        list.extend(request.tool_turns.iter().cloned());
    }
    let mut body = json!({
        "model": request.model,
        "messages": messages,
    });
    if request.web_search {
        body["tools"] = json!([web_search_tool(dialect)]);
    }
    let temperature = request
        .temperature
        .filter(|t| t.is_finite())
        .and_then(|t| match dialect {
            Dialect::Kimi if kimi_sampling_is_fixed(&request.model) => None,
            Dialect::Kimi | Dialect::Glm => Some(t.clamp(0.0, 1.0)),
        });
    if let Some(temperature) = temperature {
        body["temperature"] = json!(temperature);
    }
    if let Some(max_tokens) = request.max_tokens {
        body["max_tokens"] = json!(max_tokens);
    }
    if let (Dialect::Glm, Some(on)) = (dialect, request.thinking) {
        body["thinking"] = json!({"type": if on { "enabled" } else { "disabled" }});
    }
    if stream {
        body["stream"] = json!(true);
    }
    body
}

/// The provider's built-in web search, as a tool of the request.
///
/// - Kimi: the builtin function `$web_search`, declared without parameters
///   (<https://platform.moonshot.ai/docs/guide/use-web-search>); Moonshot runs the search,
///   and the model stops with `finish_reason: "tool_calls"` until each call is handed back
///   (`provider::rounds`).
/// - GLM: the `web_search` tool of chat completions
///   (<https://docs.z.ai/api-reference/llm/chat-completion>; the engine `search-prime` is
///   Z.ai's, <https://docs.z.ai/api-reference/tools/web-search>), answered in one round;
///   `search_result: true` asks for the pages searched, returned in the answer's top-level
///   `web_search` list.
pub fn web_search_tool(dialect: Dialect) -> Value {
    match dialect {
        Dialect::Kimi => json!({
            "type": "builtin_function",
            "function": {"name": "$web_search"},
        }),
        Dialect::Glm => json!({
            "type": "web_search",
            "web_search": {"enable": true, "search_engine": "search-prime", "search_result": true},
        }),
    }
}

/// Kimi models whose sampling parameters are fixed by the provider (see [`request_body`]).
fn kimi_sampling_is_fixed(model: &str) -> bool {
    let model = model.to_ascii_lowercase();
    ["kimi-k2.5", "kimi-k2.6"]
        .iter()
        .any(|prefix| model.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::request;
    use super::*;

    #[test]
    fn request_bodies_follow_each_provider() {
        let body = request_body(Dialect::Kimi, &request("moonshot-v1-8k", Some(1.7)), false);
        assert_eq!(
            body,
            json!({
                "model": "moonshot-v1-8k",
                "messages": [{"role": "user", "content": "hi"}],
                "temperature": 1.0,
                "max_tokens": 64,
            })
        );
        let body = request_body(Dialect::Kimi, &request("kimi-k2.5", Some(0.3)), true);
        assert_eq!(body.get("temperature"), None);
        assert_eq!(body["stream"], true);
        let body = request_body(Dialect::Glm, &request("glm-4.6", Some(1.5)), true);
        assert_eq!(body["temperature"], 1.0);
        assert_eq!(body["stream"], true);
        let body = request_body(Dialect::Glm, &request("glm-4.6", Some(0.2)), false);
        assert_eq!(body["temperature"], 0.2);
        assert_eq!(body.get("stream"), None);
        let body = request_body(Dialect::Glm, &request("glm-4.6", None), false);
        assert_eq!(body.get("temperature"), None);
        assert_eq!(body.get("tools"), None);
    }

    #[test]
    fn web_search_is_each_providers_tool_and_earlier_rounds_follow_the_messages() {
        let mut searching = request("kimi-k2-0905-preview", None);
        searching.web_search = true;
        searching.tool_turns = vec![json!({"role": "tool", "tool_call_id": "c1"})];
        let body = request_body(Dialect::Kimi, &searching, false);
        assert_eq!(
            body["tools"],
            json!([{"type": "builtin_function", "function": {"name": "$web_search"}}])
        );
        assert_eq!(
            body["messages"][1],
            json!({"role": "tool", "tool_call_id": "c1"})
        );
        let body = request_body(Dialect::Glm, &searching, false);
        assert_eq!(body["tools"][0]["type"], "web_search");
        assert_eq!(body["tools"][0]["web_search"]["enable"], true);
    }
}
