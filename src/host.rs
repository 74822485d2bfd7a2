//! What tools and the retry loop may ask of the daemon, answered from its shared state.
//!
//! Why a file of its own: tools see the daemon only through `tools::Host`, and the retry loop
//! draws its jitter through `retry::Jitter`, so neither imports the state. These impls sit
//! above the state, the tools and the health snapshot; nothing imports this file (Rust finds
//! trait impls by themselves), so it closes no import circle.

use std::time::Duration;

use crate::conversation::ConversationStore;
use crate::files::Limits;
use crate::provider::Providers;
use crate::retry::{Jitter, RetryPolicy};
use crate::rt::Instant;
use crate::state::Shared;
use crate::tools::{Host, ToolSettings};

/// Bytes per token when estimating: about 4 for English and code (a common rule of thumb
/// for BPE tokenizers); an estimate, so the budget keeps a margin through its share.
const BYTES_PER_TOKEN: u64 = 4;

impl Host for Shared {
    fn now(&self) -> Instant {
        self.rt.now()
    }

    fn providers(&self) -> &Providers {
        &self.providers
    }

    fn conversations(&self) -> &ConversationStore {
        &self.conversations
    }

    fn random_hex(&self, n_bytes: usize) -> String {
        Shared::random_hex(self, n_bytes)
    }

    fn tool_settings(&self) -> ToolSettings {
        ToolSettings {
            arg_string_chars_max: self.config.limits.arg_string_chars_max as usize,
            consensus_models_max: self.config.tools.consensus_models_max as usize,
            websearch_default: match self.config.tools.websearch_default.as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            },
            tool_rounds_max: self.config.tools.tool_rounds_max,
        }
    }

    fn tool_profile(&self) -> &'static str {
        self.config.tools.profile.name()
    }

    fn tool_names(&self) -> Vec<&'static str> {
        self.tools.names()
    }

    fn health(&self) -> serde_json::Value {
        serde_json::to_value(crate::health::snapshot(self)).expect("health serializes")
    }

    fn cost_usd(&self, provider: &str, model: &str, usage: crate::provider::Usage) -> Option<f64> {
        let cost = self.providers.model_table().facts(model).cost_usd(usage)?;
        self.observer.cost_incurred(provider, model, cost);
        Some(cost)
    }

    fn routing(&self) -> crate::tools::host::Routing {
        let routing = &self.config.routing;
        crate::tools::host::Routing {
            fast_model: routing.fast_model.first().cloned(),
            quality_model: routing.quality_model.first().cloned(),
            fallback_fast: routing.fallback_fast.clone(),
            fallback_quality: routing.fallback_quality.clone(),
            fallback_attempts_max: routing.fallback_attempts_max,
        }
    }

    fn file_limits(&self, model: &str) -> Limits {
        let settings = &self.config.file_access;
        let tokens = self.providers.model_table().facts(model).context_tokens;
        let budget_bytes =
            tokens * u64::from(settings.context_share_percent) / 100 * BYTES_PER_TOKEN;
        assert!(budget_bytes > 0, "every model leaves room for files");
        Limits::from_config(settings, budget_bytes)
    }
}

impl Jitter for Shared {
    fn backoff(&self, policy: &RetryPolicy, attempt: u32) -> Duration {
        self.with_rng(|rng| policy.backoff(attempt, rng))
    }
}
