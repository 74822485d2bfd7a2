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
/// Its one model.
pub const MODEL: &str = "exaid-offline";
/// How much of the prompt the answer quotes back.
const QUOTE_CHARS_MAX: usize = 200;

/// The offline provider.
pub struct OfflineProvider {
    /// For the optional simulated latency.
    rt: Rt,
    /// How long each answer takes (`EXAI_OFFLINE_LATENCY_MS`): lets a user or a test see
    /// progress frames, deadlines and cancels without a real provider.
    latency: Duration,
    /// `[MODEL]`.
    models: Vec<String>,
}

impl OfflineProvider {
    /// An offline provider answering after `latency`.
    pub fn new(rt: Rt, latency: Duration) -> OfflineProvider {
        OfflineProvider {
            rt,
            latency,
            models: vec![MODEL.to_string()],
        }
    }
}

/// The deterministic answer to a request: labelled, quoting the last user message, with a
/// stable fingerprint of the whole conversation so a client can tell answers apart.
pub fn answer(request: &ChatRequest) -> String {
    let last_user = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(|m| m.content.as_str())
        .unwrap_or("");
    let quoted: String = last_user.chars().take(QUOTE_CHARS_MAX).collect();
    let ellipsis = if last_user.chars().count() > QUOTE_CHARS_MAX {
        "..."
    } else {
        ""
    };
    // FNV-1a over every message: deterministic across runs and platforms.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for message in &request.messages {
        for byte in message.content.bytes() {
            hash ^= byte as u64;
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!(
        "[offline] This answer comes from exaid's built-in offline provider, not a language model: \
         no provider is configured.\n\
         Received {} message(s); last prompt ({} chars): \"{quoted}{ellipsis}\"\n\
         Fingerprint: {hash:016x}",
        request.messages.len(),
        last_user.chars().count(),
    )
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
                model: MODEL.to_string(),
            })
        })
    }
}
