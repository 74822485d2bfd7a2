//! The providers' settings, as a list with one entry per provider.
//!
//! Why a list: per-provider settings used to be eight `kimi_*` / `glm_*` fields, and the
//! limit of a provider was found by matching its name by hand. Now every provider has one
//! [`ProviderSettings`] of the same shape, found by a typed [`ProviderId`] (a misspelt
//! provider does not compile) or by the name a running provider reports.

use std::ops::{Index, IndexMut};

use super::secret::Secret;

/// A provider the configuration knows, in `listmodels` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderId {
    /// Moonshot's Kimi, over its OpenAI-compatible HTTP API.
    Kimi,
    /// Z.ai's GLM, over its OpenAI-compatible HTTP API.
    Glm,
    /// The built-in offline provider: local, deterministic answers.
    Offline,
}

impl ProviderId {
    /// Every provider, in list order.
    pub const ALL: [ProviderId; 3] = [ProviderId::Kimi, ProviderId::Glm, ProviderId::Offline];

    /// Its short name, as `listmodels`, the limits and running providers say it.
    pub fn name(self) -> &'static str {
        match self {
            ProviderId::Kimi => "kimi",
            ProviderId::Glm => "glm",
            ProviderId::Offline => "offline",
        }
    }

    /// Its place in [`ProviderId::ALL`] and in the list.
    fn index(self) -> usize {
        self as usize
    }
}

/// One provider's slice of the configuration. The HTTP fields are empty for the offline
/// provider, which has no API; `latency_ms` is the offline provider's alone.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// Which provider.
    pub id: ProviderId,
    /// Calls in flight to it at once (`EXAI_WS_KIMI_MAX_INFLIGHT`, ...): kept under the
    /// provider's own rate limit, so calls queue here instead of failing there.
    pub inflight_max: u32,
    /// Base URL of its API, without a trailing slash (`KIMI_API_URL`, ...); empty for offline.
    pub api_url: String,
    /// Its API key (`KIMI_API_KEY`, ...); the provider serves only with it. None for offline.
    pub api_key: Option<Secret>,
    /// More keys of more accounts, comma-separated (`KIMI_API_KEYS`, ...): each its own
    /// limit, budgets and cooldown, since providers limit per account.
    pub api_keys: Option<Secret>,
    /// Models it serves, default first (`KIMI_MODELS`, ...); empty for offline, whose
    /// models are built in.
    pub models: Vec<String>,
    /// The longest one attempt may take, connect to last byte (`KIMI_TIMEOUT_SECS`, ...);
    /// 0 for offline, which only the call's deadline bounds.
    pub timeout_ms: u64,
    /// How long the offline provider takes to answer (`EXAI_OFFLINE_LATENCY_MS`); 0 for
    /// the HTTP providers.
    pub latency_ms: u64,
    /// Requests a minute exaid sends it at most (`EXAI_KIMI_RPM`, ...); 0: no budget.
    pub rpm: u32,
    /// Tokens a minute exaid sends it at most, estimated then corrected by reported usage
    /// (`EXAI_KIMI_TPM`, ...); 0: no budget.
    pub tpm: u64,
    /// Tokens it may use in one UTC day, over all its keys (`EXAI_KIMI_TOKENS_PER_DAY`, ...);
    /// 0: no budget.
    pub tokens_per_day: u64,
}

impl ProviderSettings {
    /// Every field empty: what a provider's declarations do not fill.
    pub(super) fn unset(id: ProviderId) -> ProviderSettings {
        ProviderSettings {
            id,
            inflight_max: 0,
            api_url: String::new(),
            api_key: None,
            api_keys: None,
            models: Vec::new(),
            timeout_ms: 0,
            latency_ms: 0,
            rpm: 0,
            tpm: 0,
            tokens_per_day: 0,
        }
    }

    /// Its short name.
    pub fn name(&self) -> &'static str {
        self.id.name()
    }

    /// Every key, `KIMI_API_KEY` first, then each of `KIMI_API_KEYS`, without repeats.
    pub fn keys(&self) -> Vec<Secret> {
        let mut keys: Vec<Secret> = self.api_key.iter().cloned().collect();
        if let Some(more) = &self.api_keys {
            for part in more
                .expose()
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
            {
                if !keys.iter().any(|k| k.expose() == part) {
                    keys.push(Secret::new(part));
                }
            }
        }
        keys
    }
}

/// Every provider's settings, in [`ProviderId::ALL`] order.
#[derive(Debug, Clone)]
pub struct ProviderList([ProviderSettings; ProviderId::ALL.len()]);

impl ProviderList {
    /// The list; entry `i` must be provider `ProviderId::ALL[i]`.
    pub(super) fn new(list: [ProviderSettings; ProviderId::ALL.len()]) -> ProviderList {
        for (entry, id) in list.iter().zip(ProviderId::ALL) {
            assert_eq!(
                entry.id, id,
                "providers are declared in ProviderId::ALL order"
            );
        }
        ProviderList(list)
    }

    /// Every provider, in list order.
    pub fn iter(&self) -> impl Iterator<Item = &ProviderSettings> {
        self.0.iter()
    }

    /// The provider a running provider names itself by (`Provider::name`), if configured.
    pub fn get(&self, name: &str) -> Option<&ProviderSettings> {
        self.0.iter().find(|p| p.name() == name)
    }
}

impl Index<ProviderId> for ProviderList {
    type Output = ProviderSettings;

    fn index(&self, id: ProviderId) -> &ProviderSettings {
        &self.0[id.index()]
    }
}

impl IndexMut<ProviderId> for ProviderList {
    fn index_mut(&mut self, id: ProviderId) -> &mut ProviderSettings {
        &mut self.0[id.index()]
    }
}
