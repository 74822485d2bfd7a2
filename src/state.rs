//! The daemon's shared state: everything connections, the router and calls need, behind one
//! `Arc`.
//!
//! Why here, below everything that uses it: the router, calls, connections, the shutdown
//! sequence and the operator endpoints all read this state, so it may import none of them
//! (only the concepts it is made of: admission, sessions, providers, tools, conversations,
//! the lifecycle and the seam). `daemon` builds it; nothing else does.

use std::sync::{Arc, Mutex};

use subtle::ConstantTimeEq;

use crate::admission::Admission;
use crate::config::Config;
use crate::connection::slots::ConnectionSlots;
use crate::conversation::ConversationStore;
use crate::durable::Durable;
use crate::lifecycle::Lifecycle;
use crate::memory::MemoryBudget;
use crate::observe::Observer;
use crate::protocol::DecodeLimits;
use crate::provider::Providers;
use crate::retry::RetryPolicy;
use crate::rt::{Instant, Rng, Rt};
use crate::session::SessionRegistry;
use crate::tools::ToolRegistry;

/// Everything connections and calls share.
pub struct Shared {
    /// The validated configuration.
    pub config: Config,
    /// The runtime seam.
    pub rt: Rt,
    /// The auth token clients must present in `hello`; compared in constant time.
    pub(crate) token: String,
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
    /// The one memory budget the outboxes, result caches and conversations count against
    /// (`EXAI_MEMORY_MAX_BYTES`); new calls are refused while it is full.
    pub memory: Arc<MemoryBudget>,
    /// The writer of what outlives the process (conversations), and its health.
    pub durable: Arc<Durable>,
    /// How provider errors are retried.
    pub retry: RetryPolicy,
    /// Told about calls, frames and provider attempts (the metrics in production, the
    /// invariant checker in the simulator).
    pub observer: Arc<dyn Observer>,
    /// Running, draining or closing.
    pub lifecycle: Lifecycle,
    /// Ids, tokens and jitter come from here (seeded by the runtime).
    pub(crate) rng: Mutex<Rng>,
    /// When the daemon started.
    pub started_at: Instant,
    /// WebSocket connections open now, against their limits.
    pub connections: Arc<ConnectionSlots>,
    /// Decoder limits from the configuration.
    pub decode_limits: DecodeLimits,
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
        self.connections.open()
    }
}
