//! The built-in offline provider: deterministic local answers, clearly labelled.
//!
//! Why: `cargo run` on a fresh machine with no network and no API key must still serve real
//! tool calls end to end (admission, deadline, outbox), so a user can try exaid and a test can
//! exercise every path. Its answers say plainly that no model produced them.

use std::time::Duration;

use crate::provider::{ChatRequest, ChatResponse, ChunkSink, Provider, ProviderError, Role};
use crate::rt::{BoxFuture, Rt};

/// The provider's name.
pub const NAME: &str = "offline";
/// Its default model.
pub const MODEL: &str = "exaid-offline";
/// Its second model, so tools that consult several models (`consensus`) work offline too.
pub const MODEL_MINI: &str = "exaid-offline-mini";
/// How much of the last prompt the answer quotes back (enough for a workflow summary).
const QUOTE_CHARS_MAX: usize = 2_000;
/// How much of each earlier message the answer quotes back.
const EARLIER_QUOTE_CHARS_MAX: usize = 200;
/// How many earlier messages the answer lists (the most recent ones).
const EARLIER_MESSAGES_MAX: usize = 16;

/// The offline provider.
pub struct OfflineProvider {
    /// For the optional simulated latency.
    rt: Rt,
    /// How long each answer takes (`EXAI_OFFLINE_LATENCY_MS`): lets a user or a test see
    /// progress frames, deadlines and cancels without a real provider.
    latency: Duration,
    /// `[MODEL, MODEL_MINI]`.
    models: Vec<String>,
}

impl OfflineProvider {
    /// An offline provider answering after `latency`.
    pub fn new(rt: Rt, latency: Duration) -> OfflineProvider {
        OfflineProvider {
            rt,
            latency,
            models: vec![MODEL.to_string(), MODEL_MINI.to_string()],
        }
    }
}

/// `text` cut to `max` characters, quoted, with `...` when cut.
fn quote(text: &str, max: usize) -> String {
    let cut: String = text.chars().take(max).collect();
    let ellipsis = if text.chars().count() > max {
        "..."
    } else {
        ""
    };
    format!("\"{cut}{ellipsis}\"")
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

/// The deterministic answer to a request: labelled offline and with the model, quoting the
/// last user message and the start of each earlier message (so a caller can see what the
/// "model" was shown: continued conversations, workflow summaries), with a stable
/// fingerprint of the whole conversation so a client can tell answers apart.
pub fn answer(request: &ChatRequest) -> String {
    let last_user_index = request.messages.iter().rposition(|m| m.role == Role::User);
    let last_user = last_user_index
        .map(|i| request.messages[i].content.as_str())
        .unwrap_or("");
    // FNV-1a over every message: deterministic across runs and platforms.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for message in &request.messages {
        for byte in message.content.bytes() {
            hash ^= byte as u64;
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    let mut text = format!(
        "[offline] Model {}: this answer comes from exaid's built-in offline provider, not a language model: \
         no provider is configured.\n\
         Received {} message(s); last prompt ({} chars): {}",
        request.model,
        request.messages.len(),
        last_user.chars().count(),
        quote(last_user, QUOTE_CHARS_MAX),
    );
    let earlier: Vec<(usize, &crate::provider::ChatMessage)> = request
        .messages
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != last_user_index)
        .collect();
    if !earlier.is_empty() {
        text.push_str("\nEarlier messages:");
        let skipped = earlier.len().saturating_sub(EARLIER_MESSAGES_MAX);
        if skipped > 0 {
            text.push_str(&format!("\n  ({skipped} earlier not shown)"));
        }
        for (index, message) in earlier.iter().skip(skipped) {
            text.push_str(&format!(
                "\n  {}. {} ({} chars): {}",
                index + 1,
                role_name(message.role),
                message.content.chars().count(),
                quote(&message.content, EARLIER_QUOTE_CHARS_MAX)
            ));
        }
    }
    text.push_str(&format!("\nFingerprint: {hash:016x}"));
    text
}

impl Provider for OfflineProvider {
    fn name(&self) -> &str {
        NAME
    }

    fn models(&self) -> &[String] {
        &self.models
    }

    fn default_model(&self) -> &str {
        MODEL
    }

    fn is_configured(&self) -> bool {
        true
    }

    fn complete(
        &self,
        request: ChatRequest,
        _chunks: Option<ChunkSink>,
    ) -> BoxFuture<'static, Result<ChatResponse, ProviderError>> {
        let sleep = (!self.latency.is_zero()).then(|| self.rt.sleep(self.latency));
        Box::pin(async move {
            if let Some(sleep) = sleep {
                sleep.await;
            }
            Ok(ChatResponse {
                text: answer(&request),
                model: request.model.clone(),
                ..Default::default()
            })
        })
    }
}
