//! LLM providers: the `Provider` trait (one attempt of a chat completion, typed errors) and
//! the registry that maps a model name to the provider that serves it.
//!
//! Why a trait: reqwest and hyper cannot run inside madsim, so the HTTP providers live behind
//! it in production while the simulator plugs in simulated ones. The core's retry policy,
//! deadline and admission code never knows which it talks to.

pub mod models;
pub mod offline;
pub mod openai;
pub mod rounds;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::admission::Limit;
use crate::error::{CallError, ErrorCode};
use crate::rt::BoxFuture;
use models::ModelTable;

/// Who said a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions.
    System,
    /// The user's words.
    User,
    /// The model's words (earlier turns).
    Assistant,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// Who said it.
    pub role: Role,
    /// What was said.
    pub content: String,
    /// Images sent with the words, each a `data:` URL (`files::image`); only ever set for a
    /// model whose facts say it takes images.
    pub images: Vec<String>,
}

impl ChatMessage {
    /// A message of words only.
    pub fn new(role: Role, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role,
            content: content.into(),
            images: Vec::new(),
        }
    }

    /// The same message with `images` (data URLs) after its words.
    pub fn with_images(mut self, images: Vec<String>) -> ChatMessage {
        self.images = images;
        self
    }
}

/// As the OpenAI-compatible APIs take it: `content` a string, or, with images, a list of
/// parts (the words as a `text` part, each image as an `image_url` part), the shape Moonshot's
/// vision guide (platform.moonshot.ai, "Use the Kimi Vision Model") and Z.ai's GLM-4.5V use.
impl Serialize for ChatMessage {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut message = serializer.serialize_struct("ChatMessage", 2)?;
        message.serialize_field("role", &self.role)?;
        if self.images.is_empty() {
            message.serialize_field("content", &self.content)?;
        } else {
            let mut parts = vec![serde_json::json!({"type": "text", "text": self.content})];
            parts.extend(
                self.images
                    .iter()
                    .map(|url| serde_json::json!({"type": "image_url", "image_url": {"url": url}})),
            );
            message.serialize_field("content", &parts)?;
        }
        message.end()
    }
}

/// One chat-completion attempt's input.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChatRequest {
    /// The model, as the provider names it.
    pub model: String,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Sampling temperature as the client asked; each provider adapts it to what it accepts
    /// (`openai::request_body`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Cap on generated tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Offer the provider's built-in web search (only for a model whose facts say it may;
    /// `provider::models`). Providers without one ignore it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub web_search: bool,
    /// The earlier tool rounds of this call, as the provider's own messages (an assistant
    /// message with its tool calls, then one `tool` message per call), sent after `messages`
    /// (`rounds::answer_tool_calls`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_turns: Vec<serde_json::Value>,
    /// The model's thinking switch (`tools::thinking`): `Some(on)` only for a model whose
    /// facts say it has one; `None` sends nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<bool>,
}

impl ChatRequest {
    /// The prompt's tokens before it is sent: its text (messages and earlier tool rounds) at
    /// about 4 bytes a token. An estimate: rate budgets reserve it, then correct it by the
    /// usage the provider reports.
    pub fn prompt_tokens_estimate(&self) -> u64 {
        let messages: usize = self.messages.iter().map(|m| m.content.len()).sum();
        let rounds: usize = self.tool_turns.iter().map(|t| t.to_string().len()).sum();
        ((messages + rounds) as u64).div_ceil(4)
    }
}

/// The tokens an answer cost, as the provider reported them (`usage` of OpenAI-compatible
/// answers, in the final stream event for a streamed one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Tokens of the request: messages, files, earlier tool rounds.
    pub prompt_tokens: u64,
    /// Tokens of the answer (reasoning included where the provider counts it there).
    pub completion_tokens: u64,
    /// Both, as the provider summed them.
    pub total_tokens: u64,
}

impl Usage {
    /// The `usage` object of an answer, if it has one with numbers.
    pub fn from_json(value: &serde_json::Value) -> Option<Usage> {
        let usage = value.get("usage")?;
        let count = |key: &str| usage.get(key).and_then(serde_json::Value::as_u64);
        let prompt_tokens = count("prompt_tokens")?;
        let completion_tokens = count("completion_tokens").unwrap_or(0);
        let total_tokens = count("total_tokens").unwrap_or(prompt_tokens + completion_tokens);
        Some(Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens,
        })
    }

    /// Two answers' usage together (a tool-call loop, a consensus).
    pub fn plus(self, other: Usage) -> Usage {
        Usage {
            prompt_tokens: self.prompt_tokens.saturating_add(other.prompt_tokens),
            completion_tokens: self
                .completion_tokens
                .saturating_add(other.completion_tokens),
            total_tokens: self.total_tokens.saturating_add(other.total_tokens),
        }
    }

    /// `a` and `b` together, either possibly unknown.
    pub fn sum(a: Option<Usage>, b: Option<Usage>) -> Option<Usage> {
        match (a, b) {
            (Some(a), Some(b)) => Some(a.plus(b)),
            (a, b) => a.or(b),
        }
    }
}

/// A successful completion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatResponse {
    /// The generated text.
    pub text: String,
    /// The model that answered.
    pub model: String,
    /// The tool calls the model stopped for (`finish_reason: tool_calls`), as the provider
    /// sent them; empty when the answer is final.
    pub tool_calls: Vec<serde_json::Value>,
    /// The web pages the provider searched, where it returns them (GLM's `web_search`).
    pub sources: Vec<serde_json::Value>,
    /// The answer stopped at the output token limit (`finish_reason: length`): it is cut
    /// short, and the result says so.
    pub truncated: bool,
    /// What it cost, when the provider said.
    pub usage: Option<Usage>,
}

/// What kind of rate limit a provider reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitKind {
    /// Too many requests in flight (GLM 1302).
    Concurrency,
    /// Too many requests per time window (GLM 1303, a plain 429).
    Frequency,
    /// Out of quota or in arrears (GLM 1113, OpenAI `insufficient_quota`): never retried.
    Quota,
}

/// Why one attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderError {
    /// The provider said slow down; `retry_after` is what it asked for, if it said.
    RateLimited {
        /// How long the provider asked us to wait.
        retry_after: Option<Duration>,
        /// Which limit.
        kind: RateLimitKind,
    },
    /// The provider is overloaded (503 and friends): retryable.
    Overloaded(String),
    /// The attempt took longer than the provider's per-attempt timeout.
    Timeout,
    /// The connection failed or reset: retryable.
    Transport(String),
    /// 5xx: retryable.
    Server {
        /// HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// 4xx other than rate limits: the request is wrong, retrying will not help.
    Client {
        /// HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },
}

impl ProviderError {
    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::RateLimited { kind, .. } => *kind != RateLimitKind::Quota,
            ProviderError::Overloaded(_)
            | ProviderError::Timeout
            | ProviderError::Transport(_)
            | ProviderError::Server { .. } => true,
            ProviderError::Client { .. } => false,
        }
    }

    /// The error a call ends with when this attempt is its last.
    pub fn into_call_error(self, provider: &str) -> CallError {
        match self {
            ProviderError::RateLimited { retry_after, kind } => {
                let secs = retry_after.map(|d| d.as_millis().div_ceil(1000) as u64);
                let mut error = CallError::new(
                    if kind == RateLimitKind::Quota {
                        ErrorCode::ProviderError
                    } else {
                        ErrorCode::RateLimited
                    },
                    format!("provider {provider} refused the call: {kind:?} limit"),
                );
                if let Some(secs) = secs {
                    error = error.with_retry_after_secs(secs.max(1));
                }
                error
            }
            other => CallError::new(
                ErrorCode::ProviderError,
                format!("provider {provider}: {other}"),
            ),
        }
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProviderError::RateLimited { retry_after, kind } => {
                write!(f, "rate limited ({kind:?})")?;
                if let Some(after) = retry_after {
                    write!(f, ", retry after {} ms", after.as_millis())?;
                }
                Ok(())
            }
            ProviderError::Overloaded(message) => write!(f, "overloaded: {message}"),
            ProviderError::Timeout => f.write_str("attempt timed out"),
            ProviderError::Transport(message) => write!(f, "transport error: {message}"),
            ProviderError::Server { status, message } => {
                write!(f, "server error {status}: {message}")
            }
            ProviderError::Client { status, message } => {
                write!(f, "request refused {status}: {message}")
            }
        }
    }
}

/// One piece of a streamed answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk<'a> {
    /// Answer text: it is also part of the final answer.
    Text(&'a str),
    /// The model's reasoning (GLM's `reasoning_content` when thinking is on): shown as
    /// progress, never part of the answer.
    Reasoning(&'a str),
}

/// Where a streaming attempt sends each chunk as it arrives (the call turns them into
/// progress frames). Called on the attempt's own task; must not block.
pub type ChunkSink = Arc<dyn Fn(Chunk<'_>) + Send + Sync>;

/// One LLM provider.
pub trait Provider: Send + Sync + 'static {
    /// Short name: `offline`, `kimi`, `glm`.
    fn name(&self) -> &str;
    /// Models it serves.
    fn models(&self) -> &[String];
    /// The model `auto` picks on this provider.
    fn default_model(&self) -> &str;
    /// True when it has what it needs to serve (an API key, or nothing for offline).
    fn is_configured(&self) -> bool;
    /// One attempt. Dropping the future abandons the attempt (and aborts its HTTP request).
    /// With `chunks`, a provider that can stream sends each piece of text there as it
    /// arrives; the response still carries the whole text. Providers that cannot stream
    /// ignore it.
    fn complete(
        &self,
        request: ChatRequest,
        chunks: Option<ChunkSink>,
    ) -> BoxFuture<'static, Result<ChatResponse, ProviderError>>;
}

/// A provider and the concurrency limit that guards it.
pub struct ProviderEntry {
    /// The provider.
    pub provider: Arc<dyn Provider>,
    /// Its limit (`provider:<name>`).
    pub limit: Arc<Limit>,
    /// When it may be called again after a 429 with retry-after, for every call.
    pub cooldown: crate::retry::cooldown::Cooldown,
    /// Its requests and tokens a minute, kept before it sees a request.
    pub budget: crate::retry::budget::RateBudget,
    /// Its tokens today, and the daily budget: one for all keys of the provider.
    pub daily: Arc<crate::retry::daily::DailyBudget>,
}

/// All providers, and which one `auto` means.
pub struct Providers {
    /// In registration order: the order `listmodels` shows.
    entries: Vec<Arc<ProviderEntry>>,
    /// Index of the provider `auto` resolves to.
    default_index: usize,
    /// What each model can do (context window, vision, web search, thinking).
    models: ModelTable,
}

/// A model resolved to its provider.
#[derive(Clone)]
pub struct Resolved {
    /// The provider entry.
    pub entry: Arc<ProviderEntry>,
    /// The model name to send.
    pub model: String,
}

impl Providers {
    /// A registry. `auto` resolves to the first configured provider that is not offline,
    /// else to the first configured one.
    pub fn new(entries: Vec<Arc<ProviderEntry>>) -> Providers {
        assert!(
            !entries.is_empty(),
            "at least one provider (offline) must exist"
        );
        let default_index = entries
            .iter()
            .position(|e| e.provider.is_configured() && e.provider.name() != offline::NAME)
            .or_else(|| entries.iter().position(|e| e.provider.is_configured()))
            .unwrap_or(0);
        Providers {
            entries,
            default_index,
            models: ModelTable::default(),
        }
    }

    /// The registry with the model table corrected by the configuration
    /// (`EXAI_MODEL_FACTS`); without it, the built-in table.
    pub fn with_model_table(self, models: ModelTable) -> Providers {
        Providers { models, ..self }
    }

    /// The model table: what each model can do.
    pub fn model_table(&self) -> &ModelTable {
        &self.models
    }

    /// Every provider, in order.
    pub fn entries(&self) -> &[Arc<ProviderEntry>] {
        &self.entries
    }

    /// The provider `auto` picks.
    pub fn default_entry(&self) -> &Arc<ProviderEntry> {
        &self.entries[self.default_index]
    }

    /// Which provider serves `model` (`auto` or empty: the default). The provider is chosen
    /// from the model, never from the tool's name (DESIGN.md section 9.4).
    pub fn resolve(&self, model: &str) -> Result<Resolved, CallError> {
        let wanted = model.trim();
        if wanted.is_empty() || wanted.eq_ignore_ascii_case("auto") {
            let entry = self.default_entry().clone();
            let model = entry.provider.default_model().to_string();
            return Ok(self.freest(Resolved { entry, model }));
        }
        for entry in &self.entries {
            if let Some(found) = entry
                .provider
                .models()
                .iter()
                .find(|m| m.eq_ignore_ascii_case(wanted))
            {
                if !entry.provider.is_configured() {
                    return Err(CallError::new(
                        ErrorCode::ValidationError,
                        format!(
                            "model {wanted} belongs to provider {}, which is not configured (set its API key)",
                            entry.provider.name()
                        ),
                    ));
                }
                return Ok(self.freest(Resolved {
                    entry: entry.clone(),
                    model: found.clone(),
                }));
            }
        }
        let known: Vec<&str> = self
            .entries
            .iter()
            .filter(|e| e.provider.is_configured())
            .flat_map(|e| e.provider.models().iter().map(String::as_str))
            .collect();
        Err(CallError::new(
            ErrorCode::ValidationError,
            format!(
                "model: unknown model \"{wanted}\"; available: auto, {}",
                known.join(", ")
            ),
        )
        .with_details(serde_json::json!({ "field": "model" })))
    }

    /// The other keys of `resolved`'s provider that serve its model (several keys of one
    /// provider are several entries), in registration order.
    pub fn siblings(&self, resolved: &Resolved) -> Vec<Resolved> {
        self.entries
            .iter()
            .filter(|e| !Arc::ptr_eq(e, &resolved.entry))
            .filter(|e| e.provider.name() == resolved.entry.provider.name())
            .filter(|e| e.provider.is_configured())
            .filter(|e| e.provider.models().contains(&resolved.model))
            .map(|entry| Resolved {
                entry: entry.clone(),
                model: resolved.model.clone(),
            })
            .collect()
    }

    /// Of `resolved` and its siblings, the key with the most free permits (the first on a
    /// tie): calls go to a key with capacity.
    fn freest(&self, resolved: Resolved) -> Resolved {
        let free = |r: &Resolved| {
            let limit = r.entry.limit.snapshot();
            limit.permits_max.saturating_sub(limit.permits_in_use)
        };
        let mut best = resolved.clone();
        for sibling in self.siblings(&resolved) {
            if free(&sibling) > free(&best) {
                best = sibling;
            }
        }
        best
    }
}
