//! Layered configuration for exaid.
//!
//! Layers, lowest to highest precedence: built-in defaults < TOML config file <
//! `.env` file < process environment < command-line flags.
//!
//! Why this shape: the daemon sits between clients and rate-limited providers, so a
//! wrong limit silently costs money or stalls every client. Every value is therefore
//! validated at the layer that supplied it (a bad value stops start-up even if a higher
//! layer overrides it), every effective value remembers where it came from (so
//! `exaid config` and the start-up log can answer "why is this 4?"), and secrets are
//! never echoed anywhere.
//!
//! Each key is declared once, in `keys.rs`: its name, doc, default, rule and the typed
//! field it fills. The key table, the typed sections of [`Config`] (`config.server`,
//! `config.limits`, ..., `config.providers`), the name constants in [`key`] and the code
//! that fills the fields are generated from those declarations (`declare.rs`).
//!
//! Files, each below the ones that use it: `profile`, `secret`, `source`, `facts` (leaves);
//! `value` (kinds, parsing, typed conversion); `providers` (the provider list); `declare`
//! (the declaration macro); `keys` (the declarations); `error`; `layers` (reading each
//! layer); `relations` (cross-key rules); `explain` (`exaid config --explain`).
//!
//! This module never reads the process environment or any file other than the two
//! named in [`Layers`]; `main.rs` gathers those inputs and passes them in. It imports
//! nothing else of the crate, so everything can depend on it.

mod declare;
mod error;
mod explain;
mod facts;
mod keys;
mod layers;
pub mod origin;
pub mod profile;
mod providers;
mod relations;
mod secret;
mod source;
#[cfg(test)]
mod tests;
mod value;

pub use error::ConfigError;
pub use facts::FactsOverride;
pub use keys::{
    Config, ConnectionSettings, ConversationSettings, FileAccessSettings, FileSettings,
    LimitSettings, ModelSettings, RetrySettings, RoutingSettings, ServerSettings, SessionSettings,
    ToolSettings, key,
};
pub use layers::Layers;
pub use providers::{ProviderId, ProviderList, ProviderSettings};
pub use secret::Secret;
pub use source::Source;

/// The result of a successful load: the configuration plus non-fatal findings
/// (unknown keys and the like) for main to log once the logger is up.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated, merged configuration.
    pub config: Config,
    /// Human-readable warnings, in the order they were found.
    pub warnings: Vec<String>,
}

impl Config {
    /// Every key at its default, all sources `Default`. Never fails.
    pub fn defaults() -> Config {
        Config::from_merged(&layers::Values::defaults().map)
    }

    /// Reads the layers in precedence order, validating every value at the layer
    /// that supplied it, then checks cross-key relations.
    pub fn load(layers: &Layers) -> Result<Loaded, ConfigError> {
        let mut warnings = Vec::new();
        let values = layers::merge(layers, &mut warnings)?;
        let config = Config::from_merged(&values.map);
        relations::check(&config)?;
        warnings.extend(relations::warnings(&config));
        Ok(Loaded { config, warnings })
    }

    /// Human table for `exaid config`: one line per key, sorted by key,
    /// `KEY  VALUE  SOURCE` in aligned columns; secrets redacted.
    pub fn render(&self) -> String {
        let rows = self.entries();
        let kw = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
        let vw = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
        let mut out = String::new();
        for (k, v, s) in rows {
            out.push_str(&format!("{k:<kw$}  {v:<vw$}  {s}\n"));
        }
        out
    }

    /// Machine-readable form: (key, display value, source display) in key order,
    /// secrets redacted as in `render`.
    pub fn entries(&self) -> Vec<(&'static str, String, String)> {
        self.shown
            .iter()
            .map(|(k, (v, s))| (*k, v.clone(), s.to_string()))
            .collect()
    }

    /// The source of one key (for start-up logs).
    pub fn source_of(&self, key: &str) -> Option<&Source> {
        self.shown.get(key).map(|(_, s)| s)
    }

    /// `exaid config --explain KEY`: the key's doc, default, accepted values, unit, field
    /// and effective value with its source (secrets redacted). An unknown key is an error
    /// that names the closest key.
    pub fn explain(&self, key: &str) -> Result<String, String> {
        explain::explain(self, key)
    }
}
