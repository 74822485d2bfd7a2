//! What tools and the retry loop may ask of the daemon, answered from its shared state.
//!
//! Why a file of its own: tools see the daemon only through `tools::Host`, and the retry loop
//! draws its jitter through `retry::Jitter`, so neither imports the state. These impls sit
//! above the state, the tools and the health snapshot; nothing imports this file (Rust finds
//! trait impls by themselves), so it closes no import circle.

use std::time::Duration;

use crate::conversation::ConversationStore;
use crate::provider::Providers;
use crate::retry::{Jitter, RetryPolicy};
use crate::rt::Instant;
use crate::state::Shared;
use crate::tools::{Host, ToolSettings};

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
}

impl Jitter for Shared {
    fn backoff(&self, policy: &RetryPolicy, attempt: u32) -> Duration {
        self.with_rng(|rng| policy.backoff(attempt, rng))
    }
}
