//! The daemon: its shared state, and how it is built and served.
//!
//! [`Shared`] is everything connections and calls need, behind one `Arc`. [`Daemon`] builds it
//! from a [`Config`], a runtime and a token, and serves a listener. Both production (`main`)
//! and the simulator build the daemon the same way; only the runtime and listener differ.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use subtle::ConstantTimeEq;

use crate::admission::{Admission, Limit};
use crate::config::Config;
use crate::conversation::{ConversationLimits, ConversationStore};
use crate::metrics::Metrics;
use crate::observe::{NoObserver, Observer};
use crate::provider::offline::OfflineProvider;
use crate::provider::openai::HttpProvider;
use crate::provider::{Provider, ProviderEntry, Providers};
use crate::retry::{Cooldown, RetryPolicy};
use crate::rt::{Instant, Listener, Rng, Rt};
use crate::session::{SessionLimits, SessionRegistry};
use crate::shutdown::{self, Lifecycle, ShutdownReport};
use crate::tools::{Tool, ToolRegistry, profile};

/// Everything connections and calls share.
pub struct Shared {
    /// The validated configuration.
    pub config: Config,
    /// The runtime seam.
    pub rt: Rt,
    /// The auth token clients must present in `hello`; compared in constant time.
    token: String,
    /// Global admission.
    pub admission: Admission,
    /// Providers by model.
    pub providers: Providers,
    /// Enabled tools.
    pub tools: ToolRegistry,
    /// Sessions by id.
    pub sessions: SessionRegistry,
    /// Conversation memory, by `continuation_id`.
    pub conversations: ConversationStore,
    /// How provider errors are retried.
    pub retry: RetryPolicy,
    /// Told about calls, frames and provider attempts.
    pub observer: Arc<dyn Observer>,
    /// Prometheus metrics, when the daemon keeps them (production does; the simulator
    /// watches through its own observer instead).
    pub metrics: Option<Arc<Metrics>>,
    /// Running, draining or closing.
    pub lifecycle: Lifecycle,
    /// Ids, tokens and jitter come from here (seeded by the runtime).
    rng: Mutex<Rng>,
    /// When the daemon started.
    pub started_at: Instant,
    /// WebSocket connections open now.
    connections: AtomicU32,
    /// Connections open now per peer address (entries removed at zero, so it stays bounded
    /// by the connection limit).
    connections_per_ip: Mutex<std::collections::HashMap<std::net::IpAddr, u32>>,
    /// Decoder limits from the configuration.
    pub decode_limits: crate::protocol::DecodeLimits,
}

impl Shared {
    /// Whether `presented` is the daemon's token, in constant time.
    pub fn token_matches(&self, presented: &str) -> bool {
        self.token.as_bytes().ct_eq(presented.as_bytes()).into()
    }

    /// `n_bytes` of randomness as hex.
    pub fn random_hex(&self, n_bytes: usize) -> String {
        self.rng.lock().expect("rng lock").hex(n_bytes)
    }

    /// Run `f` with the daemon's seeded generator.
    pub fn with_rng<T>(&self, f: impl FnOnce(&mut Rng) -> T) -> T {
        f(&mut self.rng.lock().expect("rng lock"))
    }

    /// Connections open now.
    pub fn connections(&self) -> u32 {
        self.connections.load(Ordering::SeqCst)
    }

    /// Count a connection from `ip` in, if under `EXAI_WS_MAX_CONNECTIONS` and
    /// `EXAI_WS_MAX_CONNECTIONS_PER_IP`. The guard counts it out. `Err` names the limit.
    pub fn try_count_connection(
        self: &Arc<Self>,
        ip: std::net::IpAddr,
    ) -> Result<ConnectionSlot, String> {
        let before = self.connections.fetch_add(1, Ordering::SeqCst);
        let from_ip = {
            let mut per_ip = self.connections_per_ip.lock().expect("per-ip lock");
            let count = per_ip.entry(ip).or_insert(0);
            *count += 1;
            *count
        };
        // From here the slot counts itself out when dropped, refused or not.
        let slot = ConnectionSlot {
            shared: self.clone(),
            ip,
        };
        if before >= self.config.max_connections {
            return Err(format!(
                "too many connections (EXAI_WS_MAX_CONNECTIONS={})",
                self.config.max_connections
            ));
        }
        if from_ip > self.config.max_connections_per_ip {
            return Err(format!(
                "too many connections from one address (EXAI_WS_MAX_CONNECTIONS_PER_IP={})",
                self.config.max_connections_per_ip
            ));
        }
        Ok(slot)
    }
}

/// One counted connection; uncounted on drop.
pub struct ConnectionSlot {
    /// Whose counter.
    shared: Arc<Shared>,
    /// The peer's address.
    ip: std::net::IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.shared.connections.fetch_sub(1, Ordering::SeqCst);
        let mut per_ip = self.shared.connections_per_ip.lock().expect("per-ip lock");
        if let Some(count) = per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// The concurrency limit configured for a provider name.
fn provider_permits_max(config: &Config, name: &str) -> u32 {
    match name {
        "kimi" => config.kimi_max_inflight,
        "glm" => config.glm_max_inflight,
        "offline" => config.offline_max_inflight,
        _ => config.global_max_inflight,
    }
}

/// A built daemon, ready to serve listeners.
pub struct Daemon {
    /// Its shared state.
    shared: Arc<Shared>,
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
    extra_tools: Vec<Arc<dyn Tool>>,
    /// The witness.
    observer: Arc<dyn Observer>,
    /// Metrics, if kept (they are then also the observer).
    metrics: Option<Arc<Metrics>>,
}

impl DaemonBuilder {
    /// Add a provider.
    pub fn provider(mut self, provider: Arc<dyn Provider>) -> DaemonBuilder {
        self.providers.push(provider);
        self
    }

    /// Add a tool beyond the built-in set.
    pub fn tool(mut self, tool: Arc<dyn Tool>) -> DaemonBuilder {
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
        } = self;
        assert!(!token.is_empty(), "the daemon needs a token");
        if providers.is_empty() {
            providers.push(Arc::new(OfflineProvider::new(
                rt.clone(),
                Duration::from_millis(config.offline_latency_ms),
            )));
        }
        let entries = providers
            .into_iter()
            .map(|provider| {
                let permits_max = provider_permits_max(&config, provider.name());
                let limit = Limit::new(
                    format!("provider:{}", provider.name()),
                    permits_max,
                    config.queue_max_waiters,
                );
                Arc::new(ProviderEntry {
                    provider,
                    limit,
                    cooldown: Cooldown::default(),
                })
            })
            .collect();
        let sessions = SessionRegistry::new(
            SessionLimits {
                inflight_max: config.session_max_inflight,
                waiters_max: config.queue_max_waiters,
                outbox_frames_max: config.outbox_max_frames as usize,
                outbox_bytes_max: config.outbox_max_bytes,
                ttl: Duration::from_millis(config.session_ttl_ms),
                sessions_max: config.max_sessions as usize,
                rate_per_sec: config.session_rate_per_sec,
                burst: config.session_burst,
                result_cache_max: config.result_cache_max as usize,
                result_ttl: Duration::from_millis(config.result_ttl_ms),
            },
            observer.clone(),
        );
        let selected = profile::selected(
            config.tool_profile,
            &config.enabled_tools,
            &config.disabled_tools,
        );
        let mut tools: Vec<Arc<dyn Tool>> = ToolRegistry::builtin_tools()
            .into_iter()
            .filter(|tool| selected.contains(tool.name()))
            .collect();
        tools.extend(extra_tools);
        let conversations = ConversationStore::new(ConversationLimits {
            conversations_max: config.conversations_max as usize,
            turns_max: config.conversation_turns_max as usize,
            bytes_max: config.conversation_bytes_max,
            ttl: Duration::from_millis(config.conversation_ttl_ms),
        });
        let shared = Shared {
            admission: Admission::new(
                config.global_max_inflight,
                config.queue_max_waiters,
                Duration::from_millis(config.queue_timeout_ms),
            ),
            providers: Providers::new(entries),
            tools: ToolRegistry::new(tools),
            sessions,
            conversations,
            retry: RetryPolicy {
                attempts_max: config.retry_attempts_max,
                backoff_base: Duration::from_millis(config.retry_backoff_base_ms),
                backoff_max: Duration::from_millis(config.retry_backoff_max_ms),
            },
            observer,
            metrics,
            lifecycle: Lifecycle::new(),
            rng: Mutex::new(rt.rng()),
            started_at: rt.now(),
            connections: AtomicU32::new(0),
            connections_per_ip: Mutex::new(std::collections::HashMap::new()),
            decode_limits: crate::protocol::DecodeLimits {
                json_depth_max: config.json_depth_max as usize,
                request_id_bytes_max: config.request_id_bytes_max as usize,
            },
            token,
            config,
            rt,
        };
        Daemon {
            shared: Arc::new(shared),
        }
    }
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
        }
    }

    /// A daemon with the production providers, in `listmodels` order: Kimi and GLM over HTTP
    /// (always registered, so `listmodels` shows them, `configured: false` without their key),
    /// then the offline provider; with Prometheus metrics. `auto` picks the first configured HTTP provider, else offline.
    pub fn new(config: Config, token: String, rt: Rt) -> Daemon {
        let kimi = HttpProvider::kimi(&config, rt.clone());
        let glm = HttpProvider::glm(&config, rt.clone());
        let offline =
            OfflineProvider::new(rt.clone(), Duration::from_millis(config.offline_latency_ms));
        Daemon::builder(config, token, rt)
            .provider(Arc::new(kimi))
            .provider(Arc::new(glm))
            .provider(Arc::new(offline))
            .metrics()
            .build()
    }

    /// The shared state (tests and the status endpoint read it).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
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
        let every = Duration::from_millis((shared.config.session_ttl_ms / 4).clamp(10, 1000));
        let rt = shared.rt.clone();
        rt.clone().spawn("session-reaper", async move {
            loop {
                rt.sleep(every).await;
                shared.sessions.expire(rt.now());
            }
        });
    }
}
