//! The OpenAI-compatible chat-completions provider over HTTP: Kimi (Moonshot) and GLM (Z.ai).
//!
//! Why it looks like this:
//! - One [`HttpProvider`] per provider, each with its own `reqwest::Client`, so connections to
//!   one provider are pooled and reused without ever mixing with the other's.
//! - `complete` makes exactly ONE attempt and reports a typed [`ProviderError`]. Retries, the
//!   shared cooldown after a 429 and the call's deadline live in the core (`call.rs`,
//!   `retry.rs`), the same code the simulator exercises with its simulated providers.
//! - Everything a provider's answer means is decided by pure functions ([`classify_failure`],
//!   [`parse_retry_after`], [`SseDecoder`], [`request_body`]) that tests drive without I/O; the
//!   I/O around them is thin.
//! - Dropping the future returned by `complete` drops the reqwest request or response stream
//!   it owns, which aborts the HTTP exchange: nothing here spawns a task or keeps it alive.
//! - The API key goes only into the `Authorization` header (marked sensitive by reqwest); it
//!   is never logged, and any provider text that echoes it is redacted before it can reach an
//!   error frame.
//!
//! The wall clock is needed only to turn an HTTP-date `Retry-After` into a wait; it comes from
//! the runtime seam (`Rt::unix_time_ms`), never from the system directly.
//!
//! One file per concern, each with its tests; none imports this one, so the wiring here is
//! the only place they meet:
//! - `dialect.rs`: which provider, and its request body with every per-provider quirk;
//! - `io.rs`: sending one request with reqwest, timeouts, bounded body reads, redaction;
//! - `sse.rs`: the server-sent events decoder;
//! - `answer.rs`: the text of a whole answer and of a stream of events;
//! - `classify.rs`: what a failed answer means (status, headers, provider error codes).

mod answer;
mod classify;
mod dialect;
#[cfg(test)]
mod fixtures;
mod io;
mod sse;

use std::sync::Arc;
use std::time::Duration;

pub use answer::completion_text;
pub use classify::{MESSAGE_CHARS_MAX, classify_failure, parse_retry_after};
pub use dialect::{Dialect, request_body};
pub use sse::{SseDecoder, SseEvent};

use crate::config::{Config, ProviderId, ProviderSettings, Secret};
use crate::provider::{ChatRequest, ChatResponse, ChunkSink, Provider, ProviderError};
use crate::rt::{BoxFuture, Rt};
use io::Endpoint;

/// What an [`HttpProvider`] is built from: one provider's slice of the configuration.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Which provider.
    pub dialect: Dialect,
    /// Base URL without a trailing slash; requests go to `{base_url}/chat/completions`.
    pub base_url: String,
    /// The bearer key; without it the provider is listed but not configured.
    pub api_key: Option<Secret>,
    /// Models it serves; the first is its default (what `auto` picks on it).
    pub models: Vec<String>,
    /// The longest one attempt may take, connect to last byte (`KIMI_TIMEOUT_SECS`, ...).
    pub attempt_timeout_ms: u64,
}

impl HttpSettings {
    /// Kimi's settings from the configuration.
    pub fn kimi(config: &Config) -> HttpSettings {
        HttpSettings::of(Dialect::Kimi, &config.providers[ProviderId::Kimi])
    }

    /// GLM's settings from the configuration.
    pub fn glm(config: &Config) -> HttpSettings {
        HttpSettings::of(Dialect::Glm, &config.providers[ProviderId::Glm])
    }

    /// One provider's settings, spoken in `dialect`.
    fn of(dialect: Dialect, provider: &ProviderSettings) -> HttpSettings {
        HttpSettings {
            dialect,
            base_url: provider.api_url.clone(),
            api_key: provider.api_key.clone(),
            models: provider.models.clone(),
            attempt_timeout_ms: provider.timeout_ms,
        }
    }
}

/// An OpenAI-compatible chat-completions provider.
pub struct HttpProvider {
    /// Which provider.
    dialect: Dialect,
    /// Models it serves, default first.
    models: Vec<String>,
    /// The first model, or empty when none is configured.
    default_model: String,
    /// What an attempt needs; `Err` says why the provider cannot serve (no key, or the HTTP
    /// client could not be built), and that reason is what `complete` reports.
    endpoint: Result<Arc<Endpoint>, String>,
}

impl HttpProvider {
    /// A provider from its settings. Without an API key it is listed but not configured; the
    /// HTTP client is built only when there is a key to use it with.
    pub fn new(settings: HttpSettings, rt: Rt) -> HttpProvider {
        let HttpSettings {
            dialect,
            base_url,
            api_key,
            models,
            attempt_timeout_ms,
        } = settings;
        let default_model = models.first().cloned().unwrap_or_default();
        let attempt_timeout = Duration::from_millis(attempt_timeout_ms.max(1));
        let endpoint = match api_key {
            None => Err(format!(
                "provider {} is not configured: set {}",
                dialect.name(),
                dialect.key_name()
            )),
            Some(api_key) => Endpoint::new(dialect, &base_url, api_key, attempt_timeout, rt)
                .map(Arc::new)
                .map_err(|error| {
                    let reason = format!(
                        "provider {} cannot start its HTTP client: {}",
                        dialect.name(),
                        io::error_chain(&error)
                    );
                    tracing::error!(provider = dialect.name(), "{reason}");
                    reason
                }),
        };
        HttpProvider {
            dialect,
            models,
            default_model,
            endpoint,
        }
    }

    /// One provider per key of `id` (`KIMI_API_KEY`, then each of `KIMI_API_KEYS`), in that
    /// order; one not configured when it has no key (listed, `configured: false`).
    pub fn per_key(config: &Config, id: ProviderId, rt: &Rt) -> Vec<HttpProvider> {
        let dialect = match id {
            ProviderId::Kimi => Dialect::Kimi,
            _ => Dialect::Glm,
        };
        let settings = &config.providers[id];
        let keys = settings.keys();
        if keys.is_empty() {
            return vec![HttpProvider::new(
                HttpSettings::of(dialect, settings),
                rt.clone(),
            )];
        }
        keys.into_iter()
            .map(|key| {
                let mut one = HttpSettings::of(dialect, settings);
                one.api_key = Some(key);
                HttpProvider::new(one, rt.clone())
            })
            .collect()
    }

    /// Kimi, from the configuration.
    pub fn kimi(config: &Config, rt: Rt) -> HttpProvider {
        HttpProvider::new(HttpSettings::kimi(config), rt)
    }

    /// GLM, from the configuration.
    pub fn glm(config: &Config, rt: Rt) -> HttpProvider {
        HttpProvider::new(HttpSettings::glm(config), rt)
    }
}

impl Provider for HttpProvider {
    fn name(&self) -> &str {
        self.dialect.name()
    }

    fn models(&self) -> &[String] {
        &self.models
    }

    fn default_model(&self) -> &str {
        &self.default_model
    }

    fn is_configured(&self) -> bool {
        self.endpoint.is_ok()
    }

    fn complete(
        &self,
        request: ChatRequest,
        chunks: Option<ChunkSink>,
    ) -> BoxFuture<'static, Result<ChatResponse, ProviderError>> {
        match &self.endpoint {
            Ok(endpoint) => {
                let endpoint = endpoint.clone();
                Box::pin(async move { endpoint.attempt(request, chunks).await })
            }
            Err(reason) => {
                // Unreachable through `Providers::resolve`, which refuses unconfigured
                // providers; answered plainly anyway. Status 0: no HTTP exchange happened.
                let error = ProviderError::Client {
                    status: 0,
                    message: reason.clone(),
                };
                Box::pin(async move { Err(error) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{request, wall_clock_only};
    use super::*;

    /// 2025-11-06T08:49:37Z, the wall clock of every test here.
    const NOW_MS: u64 = 1_762_418_977_000;

    #[test]
    fn a_provider_without_key_is_listed_but_not_configured() {
        let provider = HttpProvider::new(
            HttpSettings {
                dialect: Dialect::Glm,
                base_url: "http://127.0.0.1:9".into(),
                api_key: None,
                models: vec!["glm-4.6".into(), "glm-4.5".into()],
                attempt_timeout_ms: 1000,
            },
            wall_clock_only(NOW_MS),
        );
        assert_eq!(provider.name(), "glm");
        assert!(!provider.is_configured());
        assert_eq!(provider.default_model(), "glm-4.6");
        assert_eq!(provider.models().len(), 2);
        let refused = futures_util::FutureExt::now_or_never(
            provider.complete(request("glm-4.6", None), None),
        )
        .expect("answers at once");
        match refused {
            Err(ProviderError::Client { message, .. }) => {
                assert!(message.contains("GLM_API_KEY"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }
}
