//! The daemon: how it is built and started.
//!
//! [`Daemon`] builds the shared state ([`Shared`], in `state`) from a [`Config`], a runtime and
//! a token, and serves a listener. Both production (`main`) and the simulator build the daemon
//! the same way; only the runtime, the listener and the providers differ. Nothing here runs a
//! call: this file only wires and starts.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::admission::{Admission, Limit};
use crate::config::{Config, ProviderId};
use crate::connection::slots::{ConnectionSlots, SlotLimits};
use crate::conversation::{ConversationLimits, ConversationStore};
use crate::durable::{Durable, DurableLimits};
use crate::kept;
use crate::lifecycle::Lifecycle;
use crate::memory::MemoryBudget;
use crate::observe::{NoObserver, Observer};
use crate::operator::metrics::Metrics;
use crate::provider::models::ModelTable;
use crate::provider::offline::OfflineProvider;
use crate::provider::openai::HttpProvider;
use crate::provider::{Provider, ProviderEntry, Providers};
use crate::retry::budget::RateBudget;
use crate::retry::daily::DailyBudget;
use crate::retry::{Cooldown, RetryPolicy};
use crate::rt::store::{MemoryStore, RecordKind, Store};
use crate::rt::{Listener, Rt};
use crate::session::{SessionLimits, SessionRegistry};
use crate::shutdown::{self, ShutdownReport};
use crate::state::Shared;
use crate::tools::{DynTool, ToolRegistry, profile};

/// A built daemon, ready to serve listeners.
pub struct Daemon {
    /// Its shared state.
    shared: Arc<Shared>,
    /// Its Prometheus metrics, when it keeps them (served on `/metrics`).
    metrics: Option<Arc<Metrics>>,
}

/// Builds a [`Daemon`]: production adds the configured providers; the simulator adds
/// simulated providers, extra tools and an invariant-checking observer.
pub struct DaemonBuilder {
    /// The configuration.
    config: Config,
    /// The auth token.
    token: String,
    /// The runtime seam.
    rt: Rt,
    /// Providers, in `listmodels` order.
    providers: Vec<Arc<dyn Provider>>,
    /// Tools beyond the built-in set (always served, whatever the profile).
    extra_tools: Vec<Arc<dyn DynTool>>,
    /// The witness.
    observer: Arc<dyn Observer>,
    /// Metrics, if kept (they are then also the observer).
    metrics: Option<Arc<Metrics>>,
    /// Where state outlives the process (memory unless set: tests and the simulator).
    store: Arc<dyn Store>,
}

impl DaemonBuilder {
    /// Keep state in `store` (production: the SQLite state file), and load back what it
    /// kept.
    pub fn store(mut self, store: Arc<dyn Store>) -> DaemonBuilder {
        self.store = store;
        self
    }

    /// Add a provider.
    pub fn provider(mut self, provider: Arc<dyn Provider>) -> DaemonBuilder {
        self.providers.push(provider);
        self
    }

    /// Add a tool beyond the built-in set.
    pub fn tool(mut self, tool: Arc<dyn DynTool>) -> DaemonBuilder {
        self.extra_tools.push(tool);
        self
    }

    /// Set the observer.
    pub fn observer(mut self, observer: Arc<dyn Observer>) -> DaemonBuilder {
        self.observer = observer;
        self
    }

    /// Keep Prometheus metrics (they observe the daemon).
    pub fn metrics(mut self) -> DaemonBuilder {
        let metrics = Arc::new(Metrics::new());
        self.observer = metrics.clone();
        self.metrics = Some(metrics);
        self
    }

    /// Build. With no provider added, the offline provider serves.
    pub fn build(self) -> Daemon {
        let DaemonBuilder {
            config,
            token,
            rt,
            mut providers,
            extra_tools,
            observer,
            metrics,
            store,
        } = self;
        assert!(!token.is_empty(), "the daemon needs a token");
        if providers.is_empty() {
            providers.push(Arc::new(OfflineProvider::new(
                rt.clone(),
                Duration::from_millis(config.providers[ProviderId::Offline].latency_ms),
            )));
        }
        let mut seen: Vec<String> = Vec::new();
        // One day's books per provider, whatever its number of keys.
        let mut days: Vec<(String, Arc<DailyBudget>)> = Vec::new();
        let entries = providers
            .into_iter()
            .map(|provider| {
                // Several keys of one provider are several entries: each its own limit,
                // budgets and cooldown, named by index (`provider:kimi#2`), never by key.
                let index = seen.iter().filter(|n| *n == provider.name()).count();
                seen.push(provider.name().to_string());
                let limit_name = if index == 0 {
                    format!("provider:{}", provider.name())
                } else {
                    format!("provider:{}#{}", provider.name(), index + 1)
                };
                // A provider the configuration does not know (a test's) gets the global limit.
                let settings = config.providers.get(provider.name());
                let permits_max =
                    settings.map_or(config.limits.global_inflight_max, |p| p.inflight_max);
                let budget =
                    settings.map_or_else(RateBudget::default, |p| RateBudget::new(p.rpm, p.tpm));
                let limit = Limit::new(limit_name, permits_max, config.limits.queue_waiters_max);
                let daily = match days.iter().find(|(n, _)| n == provider.name()) {
                    Some((_, daily)) => daily.clone(),
                    None => {
                        let daily =
                            Arc::new(DailyBudget::new(settings.map_or(0, |p| p.tokens_per_day)));
                        days.push((provider.name().to_string(), daily.clone()));
                        daily
                    }
                };
                Arc::new(ProviderEntry {
                    provider,
                    limit,
                    cooldown: Cooldown::default(),
                    budget,
                    daily,
                })
            })
            .collect();
        let selected = profile::selected(
            config.tools.profile,
            &config.tools.enabled,
            &config.tools.disabled,
        );
        let mut tools: Vec<Arc<dyn DynTool>> = ToolRegistry::builtin_tools()
            .into_iter()
            .filter(|tool| selected.contains(tool.name()))
            .collect();
        tools.extend(extra_tools);
        let memory = MemoryBudget::new(config.limits.memory_bytes_max);
        let durable = Durable::with_budget(
            rt.clone(),
            store,
            DurableLimits {
                queue_max: config.state.queue_max as usize,
                batch_max: config.state.batch_max as usize,
                hold: Duration::from_millis(config.state.hold_ms),
            },
            memory.clone(),
        );
        let conversations = restore_conversations(&config, &rt, &durable, &memory);
        let sessions = restore_sessions(&config, &rt, &durable, observer.clone(), &memory);
        rt.spawn("state-writer", durable.clone().run());
        let shared = Shared {
            admission: Admission::from(&config.limits),
            providers: Providers::new(entries)
                .with_model_table(ModelTable::new(&config.models.facts)),
            tools: ToolRegistry::new(tools),
            sessions,
            conversations,
            memory,
            durable,
            retry: RetryPolicy::from(&config.retry),
            observer,
            lifecycle: Lifecycle::new(),
            rng: Mutex::new(rt.rng()),
            started_at: rt.now(),
            connections: Arc::new(ConnectionSlots::new(SlotLimits {
                open_max: config.connections.connections_max,
                per_ip_max: config.connections.per_ip_max,
                per_loopback_max: config.connections.per_loopback_max,
                pending_max: config.connections.pending_hellos_max,
            })),
            decode_limits: crate::protocol::DecodeLimits::from(&config.limits),
            token,
            config,
            rt,
        };
        Daemon {
            shared: Arc::new(shared),
            metrics,
        }
    }
}

/// The conversation store, with what the state file kept loaded back. A store that cannot be
/// read leaves the daemon serving with no past conversations, degraded and saying why.
fn restore_conversations(
    config: &Config,
    rt: &Rt,
    durable: &Arc<Durable>,
    memory: &Arc<MemoryBudget>,
) -> ConversationStore {
    let conversations = ConversationStore::new(ConversationLimits::from(&config.conversations))
        .with_durable(durable.clone())
        .with_budget(memory.clone());
    match durable.store().load(RecordKind::Conversation) {
        Ok(records) => {
            let report = conversations.restore(records, rt.now(), rt.unix_time_ms());
            if report.restored + report.forgotten + report.unreadable > 0 {
                tracing::info!(
                    restored = report.restored,
                    forgotten = report.forgotten,
                    unreadable = report.unreadable,
                    store = %durable.store().describe(),
                    "conversations loaded back"
                );
            }
        }
        Err(error) => {
            tracing::error!(%error, store = %durable.store().describe(), "persistence degraded: the kept conversations cannot be read");
            durable.degraded_for_good(format!("the kept conversations cannot be read: {error}"));
        }
    }
    conversations
}

/// The session registry, keeping WebSocket sessions when the store outlives the process,
/// with the sessions it kept brought back. A store that cannot be read leaves the daemon
/// serving with no past sessions, degraded and saying why.
fn restore_sessions(
    config: &Config,
    rt: &Rt,
    durable: &Arc<Durable>,
    observer: Arc<dyn Observer>,
    memory: &Arc<MemoryBudget>,
) -> SessionRegistry {
    let limits = SessionLimits::from(config);
    let registry = SessionRegistry::new(limits, observer).with_budget(memory.clone());
    if !durable.store().outlives_process() {
        return registry;
    }
    let registry = registry.with_keep(durable.clone());
    let store = durable.store();
    let loaded = store
        .load(RecordKind::Session)
        .and_then(|sessions| Ok((sessions, store.load(RecordKind::Call)?)));
    let (sessions, calls) = match loaded {
        Ok(loaded) => loaded,
        Err(error) => {
            tracing::error!(%error, store = %store.describe(), "persistence degraded: the kept sessions cannot be read");
            durable.degraded_for_good(format!("the kept sessions cannot be read: {error}"));
            return registry;
        }
    };
    let gathered = kept::gather(
        sessions,
        calls,
        rt.unix_time_ms(),
        limits.ttl,
        limits.result_ttl,
    );
    for (kind, key) in &gathered.forget {
        durable.delete(*kind, key);
    }
    let report = registry.restore(gathered.sessions, rt.now());
    if report.sessions + gathered.forget.len() > 0 {
        tracing::info!(
            sessions = report.sessions,
            results = report.results,
            interrupted = report.interrupted,
            forgotten = gathered.forget.len(),
            unreadable = gathered.unreadable,
            store = %store.describe(),
            "sessions loaded back"
        );
    }
    registry
}

impl Daemon {
    /// Start building a daemon.
    pub fn builder(config: Config, token: String, rt: Rt) -> DaemonBuilder {
        DaemonBuilder {
            config,
            token,
            rt,
            providers: Vec::new(),
            extra_tools: Vec::new(),
            observer: Arc::new(NoObserver),
            metrics: None,
            store: Arc::new(MemoryStore::new()),
        }
    }

    /// A daemon with the production providers, in `listmodels` order: Kimi and GLM over HTTP
    /// (always registered, so `listmodels` shows them, `configured: false` without their key),
    /// then the offline provider; with Prometheus metrics. `auto` picks the first configured HTTP provider, else offline.
    pub fn new(config: Config, token: String, rt: Rt) -> Daemon {
        Daemon::with_store(config, token, rt, Arc::new(MemoryStore::new()))
    }

    /// [`Daemon::new`], keeping state in `store` (the state file) and loading back what it
    /// kept.
    pub fn with_store(config: Config, token: String, rt: Rt, store: Arc<dyn Store>) -> Daemon {
        let kimi = HttpProvider::per_key(&config, ProviderId::Kimi, &rt);
        let glm = HttpProvider::per_key(&config, ProviderId::Glm, &rt);
        let offline = OfflineProvider::new(
            rt.clone(),
            Duration::from_millis(config.providers[ProviderId::Offline].latency_ms),
        );
        let mut builder = Daemon::builder(config, token, rt);
        for provider in kimi.into_iter().chain(glm) {
            builder = builder.provider(Arc::new(provider));
        }
        builder
            .provider(Arc::new(offline))
            .store(store)
            .metrics()
            .build()
    }

    /// The shared state (tests and the status endpoint read it).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Its Prometheus metrics, when it keeps them.
    pub fn metrics(&self) -> Option<&Arc<Metrics>> {
        self.metrics.as_ref()
    }

    /// The HTTP port's routes (`/healthz`, `/readyz`, `/status`, `/metrics`, `/mcp`), bound to
    /// this daemon; serving them is the production side of the seam.
    pub fn http_routes(&self) -> axum::Router {
        crate::operator::http::router(self.shared.clone(), self.metrics.clone())
    }

    /// Serve `listener` until it fails. Also starts the session reaper.
    pub async fn serve(&self, listener: Box<dyn Listener>) -> io::Result<()> {
        self.spawn_reaper();
        crate::server::accept_loop(self.shared.clone(), listener).await
    }

    /// Shut down gracefully (see `shutdown`): stop accepting, let calls in flight finish
    /// within `grace`, stop the rest with `SERVICE_UNAVAILABLE`, deliver every terminal frame
    /// to connected clients, close their sockets with 1001.
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        shutdown::run(&self.shared, grace).await
    }

    /// Expire detached sessions periodically.
    fn spawn_reaper(&self) {
        let shared = self.shared.clone();
        let every = Duration::from_millis((shared.config.sessions.ttl_ms / 4).clamp(10, 1000));
        let rt = shared.rt.clone();
        rt.clone().spawn("session-reaper", async move {
            loop {
                rt.sleep(every).await;
                shared.sessions.expire(rt.now());
            }
        });
    }
}
