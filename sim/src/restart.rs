//! The daemon's deaths and restarts in a plan with crashes: how an incarnation is built
//! (`Recipe`, the same for the first and every later one, over the same simulated disk), and
//! the driver that kills the daemon's node at each planned instant, checks the dead
//! incarnation left nothing behind (invariant 17), and starts the next one (`Crash`).

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use exaid::rt::{Instant, Rt};
use exaid::state::Shared;

use crate::client::ClientRef;
use crate::journal::{Invariant, JournalRef, lock, now_ms};
use crate::observer::SimObserver;
use crate::provider::{SimProvider, Witness};
use crate::rt::{SimListener, SimRuntime};
use crate::scenario::{GLM_MODELS, KIMI_MODELS};
use crate::store::SimStore;

/// The daemon's simulated address.
pub const DAEMON_ADDR: &str = "10.0.0.1:8079";
/// The token of the simulated daemon.
pub const TOKEN: &str = "sim-token-0123456789abcdef";

/// Health-check state shared with the checker tasks.
pub(crate) struct Health {
    /// The incarnation serving now, once it started (weak: the daemon owns the observer
    /// that owns this; empty while a crashed daemon is down).
    pub(crate) shared: Mutex<Weak<Shared>>,
    /// Instants at which health was sampled.
    pub(crate) sampled_at: Mutex<Vec<Instant>>,
}

/// Everything a daemon incarnation is built from: the first and every restarted one are
/// built alike, over the same disk, providers' fault mix, witness and observer.
pub(crate) struct Recipe {
    /// The configuration (the project root its only root).
    pub(crate) config: exaid::config::Config,
    /// The simulated file system.
    pub(crate) fs: crate::fs::SimFs,
    /// The simulated Kimi's fault mix.
    pub(crate) kimi: crate::provider::Faults,
    /// The simulated GLM's fault mix.
    pub(crate) glm: crate::provider::Faults,
    /// How many Kimi keys.
    pub(crate) kimi_keys: u32,
    /// The providers' witness (outlives incarnations).
    pub(crate) witness: Arc<Witness>,
    /// Set when the faults stop.
    pub(crate) calm: Arc<AtomicBool>,
    /// The run's journal.
    pub(crate) journal: JournalRef,
    /// The observer (outlives incarnations).
    pub(crate) observer: Arc<SimObserver>,
    /// What every provider request must obey.
    pub(crate) rules: Arc<crate::inspect::Rules>,
    /// The simulated disk, when the plan has crashes (else the daemon's in-memory store).
    pub(crate) store: Option<SimStore>,
    /// The first incarnation's clock epoch, which later ones keep (see `SimRuntime`).
    pub(crate) epoch: Mutex<Option<madsim::time::Instant>>,
}

impl Recipe {
    /// Start an incarnation on `node`, listening on `addr`: the receiver resolves to its
    /// state once it listens.
    pub(crate) fn start(
        self: &Arc<Self>,
        node: &madsim::runtime::NodeHandle,
        addr: SocketAddr,
    ) -> tokio::sync::oneshot::Receiver<Arc<Shared>> {
        let (shared_tx, shared_rx) = tokio::sync::oneshot::channel::<Arc<Shared>>();
        let recipe = self.clone();
        node.spawn(async move {
            let runtime = {
                let mut epoch = recipe.epoch.lock().expect("epoch lock");
                match *epoch {
                    Some(since) => SimRuntime::with_fs_since(recipe.fs.clone(), since),
                    None => {
                        let runtime = SimRuntime::with_fs(recipe.fs.clone());
                        *epoch = Some(runtime.epoch());
                        runtime
                    }
                }
            };
            let rt = Rt::new(Arc::new(runtime));
            let mut builder = exaid::Daemon::builder(recipe.config.clone(), TOKEN.to_string(), rt);
            for index in 1..=recipe.kimi_keys {
                let kimi = SimProvider::new(
                    "kimi",
                    &KIMI_MODELS,
                    recipe.kimi.clone(),
                    recipe.witness.clone(),
                    recipe.calm.clone(),
                    recipe.journal.clone(),
                    recipe.rules.clone(),
                );
                builder = builder.provider(Arc::new(kimi.keyed(index)));
            }
            let glm = SimProvider::new(
                "glm",
                &GLM_MODELS,
                recipe.glm.clone(),
                recipe.witness.clone(),
                recipe.calm.clone(),
                recipe.journal.clone(),
                recipe.rules.clone(),
            );
            if let Some(store) = &recipe.store {
                builder = builder.store(Arc::new(store.clone()));
            }
            let daemon = builder
                .provider(Arc::new(glm))
                .observer(recipe.observer.clone())
                .build();
            // Which deadline each tool must get is the daemon's own registry's answer.
            recipe.observer.learn_tools(&daemon.shared().tools);
            let listener = SimListener::bind(addr)
                .await
                .expect("bind in the simulator");
            let _ = shared_tx.send(daemon.shared().clone());
            drop(recipe);
            let _ = daemon.serve(Box::new(listener)).await;
        });
        shared_rx
    }
}

/// The supervisor's side of the daemon's crashes: kills the node at each planned instant,
/// checks what the dead incarnation left, and starts the next one after the downtime.
pub(crate) struct Crash {
    /// The simulation.
    pub(crate) handle: madsim::runtime::Handle,
    /// The daemon's node (restarted in place: same id, same address).
    pub(crate) daemon: madsim::task::NodeId,
    /// Where the daemon listens.
    pub(crate) daemon_addr: SocketAddr,
    /// How to build an incarnation.
    pub(crate) recipe: Arc<Recipe>,
    /// The health checks, pointed at the incarnation serving.
    pub(crate) health: Arc<Health>,
    /// The incarnation serving (strong; emptied before each kill, so a dead incarnation's
    /// state is held by nothing of the supervisor).
    pub(crate) serving: Arc<Mutex<Option<Arc<Shared>>>>,
    /// The clients, to see what a crash catches them holding.
    pub(crate) states: Vec<ClientRef>,
    /// The run's journal.
    pub(crate) journal: JournalRef,
    /// The simulated disk.
    pub(crate) store: SimStore,
}

impl Crash {
    /// Each crash, in order: (virtual ms it happens at, ms the daemon stays down).
    pub(crate) async fn run(self, crashes: Vec<(u64, u64)>) {
        let observer = self.recipe.observer.clone();
        for (at_ms, down_ms) in crashes {
            madsim::time::sleep(Duration::from_millis(at_ms.saturating_sub(now_ms()))).await;
            let in_flight = observer.open_calls();
            let unacked: usize = self
                .states
                .iter()
                .map(|s| s.lock().expect("client lock").unacked_results())
                .sum();
            {
                let mut journal = lock(&self.journal);
                journal.record(format!(
                    "crash: the daemon dies with {in_flight} calls running, {unacked} results unacked; down {down_ms} ms"
                ));
                journal.count("crashes", 1);
                journal.cover("daemon_crashed");
                if in_flight > 0 {
                    journal.cover("crash_during_call");
                }
                if unacked > 0 {
                    journal.cover("crash_with_unacked_result");
                }
            }
            observer.daemon_died();
            self.store.crashed(now_ms());
            let dead = std::mem::take(&mut *self.health.shared.lock().expect("health lock"));
            drop(self.serving.lock().expect("serving lock").take());
            self.handle.kill(self.daemon);
            madsim::time::sleep(Duration::from_millis(down_ms)).await;
            self.check_dead(&dead);
            drop(dead);
            self.handle.restart(self.daemon);
            let node = self
                .handle
                .get_node(self.daemon)
                .expect("the daemon's node");
            let incarnation = observer.daemon_restarted();
            let shared = self
                .recipe
                .start(&node, self.daemon_addr)
                .await
                .expect("the daemon starts again");
            *self.health.shared.lock().expect("health lock") = Arc::downgrade(&shared);
            *self.serving.lock().expect("serving lock") = Some(shared);
            lock(&self.journal).record(format!("daemon restarted: incarnation {incarnation}"));
        }
    }

    /// Invariant 17: once the dead incarnation's tasks are dropped, the providers see none
    /// of its attempts, and its limits (if anything still holds its state) no permit.
    pub(crate) fn check_dead(&self, dead: &Weak<Shared>) {
        let attempts = self.recipe.witness.in_flight();
        let mut journal = lock(&self.journal);
        if attempts != 0 {
            journal.violate(
                Invariant::PermitsPerIncarnation,
                format!("a dead incarnation left {attempts} provider attempts in flight"),
            );
        }
        let Some(shared) = dead.upgrade() else {
            return;
        };
        let snapshot = exaid::health::snapshot(&shared);
        for limit in &snapshot.limits {
            if limit.permits_in_use != 0 || limit.holders != 0 {
                journal.violate(
                    Invariant::PermitsPerIncarnation,
                    format!(
                        "the dead incarnation's limit {} still has {} in use, {} holders",
                        limit.name, limit.permits_in_use, limit.holders
                    ),
                );
            }
        }
    }
}
