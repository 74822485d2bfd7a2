//! What tools may ask of the daemon that hosts them.
//!
//! Why a trait: a tool that received the daemon's whole shared state could reach anything
//! (sessions, admission, the token), and every tool file importing it tied the tools and the
//! daemon into one import circle. Tools see the daemon only through [`Host`]: the providers
//! (to resolve a model, and for `version` and `listmodels`), conversation memory, fresh ids,
//! the few settings they read, and what `version` and `status` report. The daemon's shared
//! state implements it.

use serde_json::Value;

use crate::conversation::ConversationStore;
use crate::provider::Providers;
use crate::rt::Instant;

/// The configuration values tools read, copied out of the daemon's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToolSettings {
    /// Longest string any argument may hold, in characters (`EXAI_ARG_STRING_CHARS_MAX`).
    pub arg_string_chars_max: usize,
    /// Most models one `consensus` call may consult (`EXAI_CONSENSUS_MODELS_MAX`).
    pub consensus_models_max: usize,
    /// Whether a call that does not say `use_websearch` searches (`EXAI_WEBSEARCH_DEFAULT`);
    /// `None`: each tool's own default.
    pub websearch_default: Option<bool>,
    /// Tool rounds one provider call may take (`EXAI_TOOL_ROUNDS_MAX`).
    pub tool_rounds_max: u32,
}

/// The routing settings: what `auto` means and where an `auto` call fails over to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routing {
    /// `EXAI_FAST_MODEL`; `None`: the default provider's default model.
    pub fast_model: Option<String>,
    /// `EXAI_QUALITY_MODEL`; `None`: the default provider's default model.
    pub quality_model: Option<String>,
    /// `EXAI_FALLBACK_MODELS_FAST`; empty: every other configured provider's default model.
    pub fallback_fast: Vec<String>,
    /// `EXAI_FALLBACK_MODELS_QUALITY`; likewise.
    pub fallback_quality: Vec<String>,
    /// `EXAI_FALLBACK_ATTEMPTS_MAX`.
    pub fallback_attempts_max: u32,
}

/// The daemon, as tools see it.
pub trait Host: Send + Sync + 'static {
    /// The runtime's clock.
    fn now(&self) -> Instant;
    /// Every provider, and which one `auto` means.
    fn providers(&self) -> &Providers;
    /// Conversation memory, by `continuation_id`.
    fn conversations(&self) -> &ConversationStore;
    /// `n_bytes` of the daemon's seeded randomness as hex (conversation ids).
    fn random_hex(&self, n_bytes: usize) -> String;
    /// The settings tools read.
    fn tool_settings(&self) -> ToolSettings;
    /// The tool profile's name (`TOOL_PROFILE`), for `version`.
    fn tool_profile(&self) -> &'static str;
    /// The names of the tools served, in `list_tools` order, for `version`.
    fn tool_names(&self) -> Vec<&'static str>;
    /// The health snapshot as JSON, for `status` (taken when called).
    fn health(&self) -> Value;
    /// What a call to `model` may embed from the files it names: the roots and caps, and a
    /// byte budget derived from the model's context window.
    fn file_limits(&self, model: &str) -> crate::files::Limits;
    /// What `auto` means and where `auto` calls fail over to.
    fn routing(&self) -> Routing;
    /// What `usage` of `provider`'s `model` cost in US dollars, when the model's prices are
    /// configured; counted in the metrics (`exaid_cost_usd_total`).
    fn cost_usd(&self, provider: &str, model: &str, usage: crate::provider::Usage) -> Option<f64>;
}
