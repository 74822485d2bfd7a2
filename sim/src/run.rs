//! One seed of one scenario, from plan to outcome.
//!
//! The supervisor (madsim's node 0) starts the daemon on its own node with simulated
//! providers and the invariant-checking observer, starts each client on its own node, kills
//! and resumes clients as planned, and samples the daemon's health at random instants and at
//! every call's deadline (so health checks race completions). When the workload is done it
//! stops the faults and checks liveness with a fresh call (invariant 6), then lets every
//! session expire and checks quiescence: every permit back, nothing in flight, nothing left
//! (invariants 2, 3, 7).
//!
//! A plan with crashes keeps the daemon's state on the simulated disk (`store`) and kills the
//! daemon's node at each planned instant: every task of that incarnation is dropped, its
//! pending commit lost. After the planned downtime the node restarts (same address) with a
//! fresh daemon built from the same recipe over the same disk. The health checks and the
//! quiescence checks follow the incarnation serving at the time; each dead one is checked to
//! have left no provider attempt and no permit behind (invariant 17).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use exaid::config::{ProviderId, key};
use exaid::rt::{Instant, Rt};
use exaid::state::Shared;
use serde_json::json;

use crate::client::{CallSpec, ClientRef, ClientSpec, ClientState, run_client, run_connection};
use crate::journal::{Invariant, Journal, JournalRef, lock, now_ms};
use crate::observer::{Expectations, SimObserver};
use crate::provider::Witness;
use crate::restart::{Crash, Health, Recipe};
pub use crate::restart::{DAEMON_ADDR, TOKEN};
use crate::scenario::{Plan, Scenario};
use crate::store::SimStore;

/// Invariant 18's bound: the longest a well-behaved client may wait, socket connected to
/// `hello_ack`, while hostile clients run (the simulated network adds milliseconds per hop).
const SERVED_BESIDE_ABUSERS_MS: u64 = 1_000;
/// What one run produced.
#[derive(Debug)]
pub struct Outcome {
    /// Scenario name.
    pub scenario: &'static str,
    /// The seed.
    pub seed: u64,
    /// Everything recorded.
    pub journal: Journal,
    /// Virtual milliseconds the run covered.
    pub virtual_ms: u64,
    /// The outcome table (deterministic: no wall-clock figures).
    pub table: String,
}

impl Outcome {
    /// True when no invariant broke.
    pub fn passed(&self) -> bool {
        self.journal.violations.is_empty()
    }

    /// The trace hash.
    pub fn trace_hash(&self) -> u64 {
        self.journal.trace_hash()
    }
}

/// Run `scenario` for `seed` on a fresh thread (see `isolate`). A panic anywhere in the run
/// (the daemon's own assertions included) is a failed seed with the trace up to the panic.
pub fn run(scenario: &'static Scenario, seed: u64) -> Outcome {
    let journal: JournalRef = Arc::new(Mutex::new(Journal::default()));
    let inner = journal.clone();
    match crate::isolate::on_fresh_thread_catching(move || run_here(scenario, seed, inner)) {
        Ok(outcome) => outcome,
        Err(panic) => {
            let mut journal = std::mem::take(&mut *lock(&journal));
            journal.violate(Invariant::NoPanic, format!("panicked: {panic}"));
            let table = format!(
                "scenario           {}\nseed               {seed}\nviolations         1\n  invariant        0: panicked: {panic}\ntrace              {:016x}\n",
                scenario.name,
                journal.trace_hash()
            );
            Outcome {
                scenario: scenario.name,
                seed,
                journal,
                virtual_ms: 0,
                table,
            }
        }
    }
}

fn run_here(scenario: &'static Scenario, seed: u64, journal: JournalRef) -> Outcome {
    let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    runtime.block_on(supervise(scenario, seed, journal))
}

async fn supervise(scenario: &'static Scenario, seed: u64, journal: JournalRef) -> Outcome {
    let plan = (scenario.plan)();
    lock(&journal).record(format!(
        "scenario {} seed {seed} variant {}",
        scenario.name, plan.variant
    ));
    lock(&journal).cover(plan.variant);
    let handle = madsim::runtime::Handle::current();
    let daemon_addr: SocketAddr = DAEMON_ADDR.parse().expect("valid address");
    let calm = Arc::new(AtomicBool::new(false));
    // One account per key: `kimi`, `kimi#2`, ..., each with the limit and budgets exaid is
    // told (they are per key).
    let keys: Vec<(String, ProviderId)> = (1..=plan.kimi_keys)
        .map(|i| match i {
            1 => ("kimi".to_string(), ProviderId::Kimi),
            _ => (format!("kimi#{i}"), ProviderId::Kimi),
        })
        .chain([("glm".to_string(), ProviderId::Glm)])
        .collect();
    let limits: Vec<(&str, u32)> = keys
        .iter()
        .map(|(key, id)| (key.as_str(), plan.config.providers[*id].inflight_max))
        .collect();
    let witness = Witness::new(
        &limits,
        plan.config.limits.global_inflight_max,
        journal.clone(),
    );
    for (key, id) in &keys {
        let settings = &plan.config.providers[*id];
        witness.set_budgets(key, settings.rpm, settings.tpm);
    }
    let observer = Arc::new(SimObserver::new(
        journal.clone(),
        Expectations {
            simple_timeout: plan.simple_timeout,
            workflow_timeout: plan.workflow_timeout,
            outbox_frames_max: plan.config.sessions.outbox_frames_max as usize,
            outbox_bytes_max: plan.config.sessions.outbox_bytes_max,
            global_never_waits: limits.iter().map(|(_, limit)| limit).sum::<u32>()
                <= plan.config.limits.global_inflight_max,
        },
    ));
    let health = Arc::new(Health {
        shared: Mutex::new(Weak::new()),
        sampled_at: Mutex::new(Vec::new()),
    });

    // The daemon, on its own node.
    let daemon_node = handle
        .create_node()
        .name("daemon")
        .ip(daemon_addr.ip())
        .build();
    // The files the clients name, and the witness of every read the daemon makes.
    let files = crate::fs::SimFs::for_clients(&plan.clients, &plan.disk);
    for (at_ms, path, change) in plan.disk.changes.clone() {
        let (files, journal) = (files.clone(), journal.clone());
        madsim::task::spawn(async move {
            madsim::time::sleep(Duration::from_millis(at_ms)).await;
            lock(&journal).record(format!("disk: {path} {change:?}"));
            files.change(&path, &change);
        });
    }
    let rules = Arc::new(crate::inspect::Rules::of(
        &plan.config,
        crate::fs::PROJECT_ROOT,
    ));
    let store = plan.store.map(|sync| SimStore::new(sync, journal.clone()));
    let recipe = {
        let mut config = plan.config.clone();
        config.file_access.roots = vec![std::path::PathBuf::from(crate::fs::PROJECT_ROOT)];
        Arc::new(Recipe {
            config,
            fs: files.clone(),
            kimi: plan.kimi.clone(),
            glm: plan.glm.clone(),
            kimi_keys: plan.kimi_keys,
            witness: witness.clone(),
            calm: calm.clone(),
            journal: journal.clone(),
            observer: observer.clone(),
            rules,
            store: store.clone(),
            epoch: Mutex::new(None),
        })
    };
    let shared_rx = recipe.start(&daemon_node, daemon_addr);
    let shared = shared_rx.await.expect("the daemon starts");
    *health.shared.lock().expect("health lock") = Arc::downgrade(&shared);

    // Health checks: at random instants, and at every call's deadline (racing the deadline
    // timer and whatever completes on that instant).
    // (On the daemon's node, unless the daemon may be killed: then the checks must outlive it.)
    let crashes = !plan.crashes.is_empty();
    let spawn_check = |check: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>| {
        if crashes {
            drop(madsim::task::spawn(check));
        } else {
            drop(daemon_node.spawn(check));
        }
    };
    for at_ms in plan.health_checks_ms.clone() {
        let (health, journal) = (health.clone(), journal.clone());
        spawn_check(Box::pin(async move {
            madsim::time::sleep(Duration::from_millis(at_ms)).await;
            check_health(&health, &journal, "random");
        }));
    }
    {
        let deadlines = observer.watch_deadlines();
        let (health, journal, rt) = (health.clone(), journal.clone(), shared.rt.clone());
        spawn_check(Box::pin(async move {
            deadline_checker(rt, deadlines, health, journal).await
        }));
    }

    // Shutdown, if planned: on the daemon's node, like a SIGTERM handler.
    if let Some((at_ms, grace_ms)) = plan.shutdown {
        let (shared, journal, observer) = (shared.clone(), journal.clone(), observer.clone());
        daemon_node.spawn(async move {
            madsim::time::sleep(Duration::from_millis(at_ms)).await;
            lock(&journal).record(format!("shutdown begins, grace {grace_ms} ms"));
            observer.set_draining();
            let report = exaid::shutdown::run(&shared, Duration::from_millis(grace_ms)).await;
            lock(&journal).record(format!("shutdown done: {report:?}"));
        });
    }

    // Hostile clients, each on its own node, killed when the workload is over.
    let mut hostile_nodes = Vec::new();
    if !plan.hostiles.is_empty() {
        lock(&journal).served_within_ms = Some(SERVED_BESIDE_ABUSERS_MS);
    }
    for (index, (kind, at_ms)) in plan.hostiles.iter().copied().enumerate() {
        let ip = format!("10.3.{}.{}", index / 200, 1 + index % 200);
        let node = handle
            .create_node()
            .name(format!("hostile{index}"))
            .ip(ip.parse().expect("ip"))
            .build();
        let journal = journal.clone();
        let max_frame_bytes = plan.config.limits.frame_bytes_max;
        let pending_hellos_max = plan.config.connections.pending_hellos_max;
        node.spawn(async move {
            madsim::time::sleep(Duration::from_millis(at_ms)).await;
            crate::hostile::run(
                kind,
                daemon_addr,
                TOKEN.to_string(),
                journal,
                max_frame_bytes,
                pending_hellos_max,
            )
            .await;
        });
        hostile_nodes.push(node.id());
    }

    // The clients, each on its own node; the supervisor kills and resumes them.
    let mut states: Vec<ClientRef> = Vec::new();
    // Each client's nodes (the first, and the one that resumes), to stop one that can never
    // finish.
    let client_nodes: ClientNodes = Arc::new(Mutex::new(vec![Vec::new(); plan.clients.len()]));
    for (index, spec) in plan.clients.iter().enumerate() {
        let state: ClientRef = Arc::new(Mutex::new(ClientState::on_disk(store.clone())));
        states.push(state.clone());
        let spec = Arc::new(spec.clone());
        let journal = journal.clone();
        let handle = handle.clone();
        let nodes = client_nodes.clone();
        madsim::task::spawn(async move {
            let driven = Driven {
                handle,
                nodes,
                index,
            };
            drive_client(driven, spec, state, journal, daemon_addr, crashes).await;
        });
    }

    // The daemon's crashes, if planned: the supervisor follows the incarnation serving.
    let serving = Arc::new(Mutex::new(Some(shared)));
    let crash_driver = crashes.then(|| {
        let crash = Crash {
            handle: handle.clone(),
            daemon: daemon_node.id(),
            daemon_addr,
            recipe: recipe.clone(),
            health: health.clone(),
            serving: serving.clone(),
            states: states.clone(),
            journal: journal.clone(),
            store: store
                .clone()
                .expect("a plan with crashes keeps its state on a disk"),
        };
        madsim::task::spawn(crash.run(plan.crashes.clone()))
    });
    let shared = serving
        .lock()
        .expect("serving lock")
        .clone()
        .expect("the daemon serves");
    // While the daemon may die, the supervisor holds no strong reference to it.
    let shared = if crashes {
        drop(shared);
        None
    } else {
        Some(shared)
    };

    // The MCP clients, in process on the daemon's node (as `/mcp`'s handlers are).
    let mcp_done = Arc::new(AtomicBool::new(plan.mcp.is_empty()));
    if !plan.mcp.is_empty() {
        let shared = shared.clone().expect("MCP clients run without crashes");
        let (clients, journal) = (plan.mcp.clone(), journal.clone());
        let done = mcp_done.clone();
        daemon_node.spawn(async move {
            crate::mcp::run(shared, clients, journal).await;
            done.store(true, Ordering::SeqCst);
        });
    }

    // Wait for the workload: every client done or gone, within a generous virtual bound.
    let limit_ms = workload_limit_ms(&plan);
    loop {
        madsim::time::sleep(Duration::from_millis(100)).await;
        let finished = states.iter().all(|s| {
            let s = s.lock().expect("client lock");
            s.done || s.gone
        });
        if finished && mcp_done.load(Ordering::SeqCst) {
            mcp_calls_accepted_once(&plan, &journal);
            break;
        }
        if now_ms() > limit_ms {
            let mut forgotten = Vec::new();
            let mut journal = lock(&journal);
            for (index, (spec, state)) in plan.clients.iter().zip(&states).enumerate() {
                let state = state.lock().expect("client lock");
                let excused = state
                    .open_call_ids()
                    .all(|id| journal.not_kept.contains(id));
                if !(state.done || state.gone) && excused {
                    // Only calls whose frames the failing disk never kept: a crash forgot them.
                    // The client can never finish: it goes, so its session can expire.
                    journal.cover("unkept_call_forgotten");
                    forgotten.push(index);
                } else if !(state.done || state.gone) {
                    let invariant = state.once_invariant();
                    journal.violate(
                        invariant,
                        format!(
                            "{} still waits for {} results at {limit_ms} ms",
                            spec.name,
                            state.open_calls()
                        ),
                    );
                }
            }
            if !mcp_done.load(Ordering::SeqCst) {
                let detail = format!("MCP clients still wait for results at {limit_ms} ms");
                journal.violate(Invariant::ExactlyOnce, detail);
            }
            drop(journal);
            for index in forgotten {
                for node in &client_nodes.lock().expect("client nodes lock")[index] {
                    handle.kill(*node);
                }
            }
            break;
        }
    }

    for node in hostile_nodes {
        handle.kill(node);
    }
    if let Some(driver) = crash_driver {
        let _ = driver.await;
    }

    // Liveness: faults stop; once the last retry-after has passed, a fresh call succeeds.
    // (A daemon that was shut down is expected to refuse: nothing to check.)
    calm.store(true, Ordering::SeqCst);
    let mut wait_ms = witness.latest_block_end_ms().saturating_sub(now_ms()) + 1;
    let budgeted = [ProviderId::Kimi, ProviderId::Glm]
        .iter()
        .any(|id| plan.config.providers[*id].rpm > 0);
    if budgeted {
        // A request budget spent by the workload frees a minute after its last request.
        wait_ms += exaid::retry::budget::WINDOW.as_millis() as u64;
    }
    madsim::time::sleep(Duration::from_millis(wait_ms)).await;
    if plan.shutdown.is_none() {
        liveness(&handle, &journal, daemon_addr, plan.simple_timeout).await;
    }

    // Quiescence: every session expires, then nothing may be held.
    let ttl = Duration::from_millis(plan.config.sessions.ttl_ms);
    madsim::time::sleep(ttl + Duration::from_secs(2)).await;
    let shared = shared.unwrap_or_else(|| {
        let serving = serving.lock().expect("serving lock").take();
        serving.expect("an incarnation serves at quiescence")
    });
    quiescence(
        &shared,
        &witness,
        &observer,
        &journal,
        &health,
        plan.shutdown.is_some(),
        store.as_ref(),
    );
    files_within_roots(&files, &journal);
    let virtual_ms = now_ms();
    drop(shared);
    let journal = std::mem::take(&mut *lock(&journal));
    let table = table(
        scenario,
        seed,
        &plan,
        &journal,
        &witness,
        store.as_ref(),
        virtual_ms,
    );
    Outcome {
        scenario: scenario.name,
        seed,
        journal,
        virtual_ms,
        table,
    }
}

/// Each MCP call reached the daemon once, however often its client dropped and came back:
/// the daemon accepted exactly as many calls as the MCP clients made (in a run of MCP
/// clients only; a refused call was never accepted).
fn mcp_calls_accepted_once(plan: &Plan, journal: &JournalRef) {
    if plan.mcp.is_empty() || !plan.clients.is_empty() {
        return;
    }
    let mut journal = lock(journal);
    let counter =
        |j: &crate::journal::Journal, name: &str| j.counters.get(name).copied().unwrap_or(0);
    let accepted = counter(&journal, "calls accepted");
    let expected = crate::mcp::calls_made(&plan.mcp) - counter(&journal, "mcp calls refused");
    if accepted != expected {
        journal.violate(
            Invariant::ExactlyOnce,
            format!("the daemon accepted {accepted} calls for {expected} MCP calls"),
        );
    }
}

fn workload_limit_ms(plan: &Plan) -> u64 {
    let last_send = plan
        .clients
        .iter()
        .flat_map(|c| c.calls.iter().map(|call| call.send_at_ms))
        .max()
        .unwrap_or(0);
    let last_return = plan
        .clients
        .iter()
        .filter_map(|c| Some(c.disconnect_at_ms? + c.resume_after_ms?))
        .max()
        .unwrap_or(0);
    // Later workflow steps wait for the agent's pause after each earlier step.
    let steps_delay = plan
        .clients
        .iter()
        .map(|c| {
            c.calls
                .iter()
                .filter_map(|call| call.after.as_ref().map(|(_, ms)| *ms))
                .sum::<u64>()
        })
        .max()
        .unwrap_or(0);
    let mcp_last = plan
        .mcp
        .iter()
        .flat_map(|c| c.calls.iter())
        .map(|call| call.send_at_ms + call.drop_after_ms.unwrap_or(0) + call.back_after_ms)
        .max()
        .unwrap_or(0);
    let deadline = plan.simple_timeout.max(plan.workflow_timeout).as_millis() as u64;
    // A crash stops the clock on every call for its downtime, and may send calls again.
    let last_crash = plan
        .crashes
        .iter()
        .map(|(at_ms, down_ms)| at_ms + down_ms)
        .max()
        .unwrap_or(0);
    let downtime: u64 = plan.crashes.iter().map(|(_, down_ms)| down_ms).sum();
    let crash_delay = if plan.crashes.is_empty() {
        0
    } else {
        downtime + deadline
    };
    last_send.max(last_return).max(mcp_last).max(last_crash)
        + steps_delay
        + deadline
        + crash_delay
        + 60_000
}

/// The node ids of each client, by client index.
type ClientNodes = Arc<Mutex<Vec<Vec<madsim::task::NodeId>>>>;

/// Where a client is driven from: the simulation, its index, and where its nodes are listed.
struct Driven {
    /// The simulation.
    handle: madsim::runtime::Handle,
    /// Every client's nodes.
    nodes: ClientNodes,
    /// This client's index.
    index: usize,
}

async fn drive_client(
    driven: Driven,
    spec: Arc<ClientSpec>,
    state: ClientRef,
    journal: JournalRef,
    daemon: SocketAddr,
    comes_back: bool,
) {
    let Driven {
        handle,
        nodes,
        index,
    } = driven;
    let ip = format!("10.1.{}.{}", index / 200, 1 + index % 200);
    let node = handle
        .create_node()
        .name(&spec.name)
        .ip(ip.parse().expect("ip"))
        .build();
    nodes.lock().expect("client nodes lock")[index].push(node.id());
    node.spawn(run_client(
        spec.clone(),
        state.clone(),
        journal.clone(),
        daemon,
        TOKEN.to_string(),
        false,
        comes_back,
    ));
    let Some(disconnect_at_ms) = spec.disconnect_at_ms else {
        return;
    };
    madsim::time::sleep(Duration::from_millis(
        disconnect_at_ms.saturating_sub(now_ms()),
    ))
    .await;
    {
        let mut state = state.lock().expect("client lock");
        if state.done {
            return;
        }
        let mut journal = lock(&journal);
        journal.record(format!("kill {}", spec.name));
        journal.count("disconnects", 1);
        if state.open_calls() > 0 {
            journal.cover("disconnect_during_call");
        }
        if state.steps_pending(&spec) > 0 && state.continuations_held() > 0 {
            journal.cover("disconnect_mid_workflow");
        }
        handle.kill(node.id());
        if spec.resume_after_ms.is_none() {
            state.gone = true;
            return;
        }
    }
    let resume_after_ms = spec.resume_after_ms.expect("checked above");
    madsim::time::sleep(Duration::from_millis(resume_after_ms)).await;
    let ip = format!("10.2.{}.{}", index / 200, 1 + index % 200);
    let node = handle
        .create_node()
        .name(format!("{}-again", spec.name))
        .ip(ip.parse().expect("ip"))
        .build();
    nodes.lock().expect("client nodes lock")[index].push(node.id());
    node.spawn(run_client(
        spec,
        state,
        journal,
        daemon,
        TOKEN.to_string(),
        true,
        comes_back,
    ));
}

/// Sample health at each accepted call's deadline, on the very instant its timer fires.
async fn deadline_checker(
    rt: Rt,
    mut deadlines: tokio::sync::mpsc::UnboundedReceiver<Instant>,
    health: Arc<Health>,
    journal: JournalRef,
) {
    while let Some(deadline) = deadlines.recv().await {
        let (rt, health, journal) = (rt.clone(), health.clone(), journal.clone());
        madsim::task::spawn(async move {
            rt.sleep_until(deadline).await;
            check_health(&health, &journal, "deadline");
        });
    }
}

fn check_health(health: &Health, journal: &JournalRef, why: &str) {
    let Some(shared) = health.shared.lock().expect("health lock").upgrade() else {
        return;
    };
    let snapshot = exaid::health::snapshot(&shared);
    health
        .sampled_at
        .lock()
        .expect("health lock")
        .push(shared.rt.now());
    let mut journal = lock(journal);
    if !snapshot.ok {
        journal.violate(
            Invariant::PermitsBalanced,
            format!("health ({why}): {}", snapshot.problems.join("; ")),
        );
    }
    for limit in &snapshot.limits {
        if limit.permits_in_use > limit.permits_max {
            journal.violate(
                Invariant::LimitsHeld,
                format!(
                    "limit {} has {} of {} permits in use",
                    limit.name, limit.permits_in_use, limit.permits_max
                ),
            );
        }
    }
    if snapshot.sessions > shared.config.sessions.sessions_max as usize {
        journal.violate(
            Invariant::MemoryBounded,
            format!("{} sessions alive", snapshot.sessions),
        );
    }
    if snapshot.conversations > shared.config.conversations.conversations_max as usize {
        journal.violate(
            Invariant::MemoryBounded,
            format!(
                "{} conversations kept, {} {}",
                snapshot.conversations,
                key::EXAI_CONVERSATIONS_MAX,
                shared.config.conversations.conversations_max
            ),
        );
    }
    let memory = shared.memory.stats();
    if memory.over_total == 0 && memory.peak_bytes > memory.max_bytes {
        journal.violate(
            Invariant::MemoryBounded,
            format!(
                "the memory budget counted {} bytes, {} {}, with frames to shed",
                memory.peak_bytes,
                key::EXAI_MEMORY_MAX_BYTES,
                memory.max_bytes
            ),
        );
    }
    if snapshot.calls_running > 0 {
        journal.cover("health_during_call");
    }
}

async fn liveness(
    handle: &madsim::runtime::Handle,
    journal: &JournalRef,
    daemon: SocketAddr,
    simple_timeout: Duration,
) {
    let spec = Arc::new(ClientSpec {
        name: "liveness".to_string(),
        calls: vec![CallSpec::question(
            "live-1".to_string(),
            "chat",
            json!({"prompt": "question live-1"}),
            now_ms(),
        )],
        disconnect_at_ms: None,
        resume_after_ms: None,
        ack_every_frames: 1,
    });
    let state: ClientRef = Arc::new(Mutex::new(ClientState::default()));
    let node = handle
        .create_node()
        .name("liveness")
        .ip("10.9.9.9".parse().expect("ip"))
        .build();
    let task = node.spawn(run_connection(
        spec,
        state.clone(),
        journal.clone(),
        daemon,
        TOKEN.to_string(),
        false,
    ));
    let bound = simple_timeout + Duration::from_secs(5);
    let finished = madsim::time::timeout(bound, task).await.is_ok();
    let state = state.lock().expect("client lock");
    let ok = state.ok_results == 1;
    if !finished || !ok {
        lock(journal).violate(
            Invariant::Liveness,
            format!("after the faults stopped, a fresh call did not succeed (finished {finished}, ok {ok})"),
        );
    }
    handle.kill(node.id());
}

/// Invariant 9: every file the daemon read lies under the project root, its only root.
fn files_within_roots(files: &crate::fs::SimFs, journal: &JournalRef) {
    let root = std::path::Path::new(crate::fs::PROJECT_ROOT);
    for path in files.reads() {
        if !path.starts_with(root) {
            lock(journal).violate(
                Invariant::FilesWithinRoots,
                format!(
                    "the daemon read {}, outside its root {}",
                    path.display(),
                    root.display()
                ),
            );
        }
    }
}

fn quiescence(
    shared: &Arc<Shared>,
    witness: &Witness,
    observer: &SimObserver,
    journal: &JournalRef,
    health: &Health,
    was_shut_down: bool,
    store: Option<&SimStore>,
) {
    let snapshot = exaid::health::snapshot(shared);
    observer.check_all_ended(store);
    let mut journal = lock(journal);
    if !snapshot.ok {
        journal.violate(
            Invariant::PermitsBalanced,
            format!("at quiescence: {}", snapshot.problems.join("; ")),
        );
    }
    for limit in &snapshot.limits {
        if limit.permits_in_use != 0 || limit.holders != 0 || limit.waiters != 0 {
            journal.violate(
                Invariant::PermitsBalanced,
                format!(
                    "at quiescence limit {} still has {} in use, {} holders, {} waiters",
                    limit.name, limit.permits_in_use, limit.holders, limit.waiters
                ),
            );
        }
    }
    // After a shutdown the sessions of closed clients wait out their TTL like any other.
    if snapshot.calls_running != 0 || (snapshot.sessions != 0 && !was_shut_down) {
        journal.violate(
            Invariant::MemoryBounded,
            format!(
                "at quiescence {} calls still run and {} sessions are still held",
                snapshot.calls_running, snapshot.sessions
            ),
        );
    }
    // With every session gone only the conversations and the records still waiting for the
    // state file are counted: the count never drifts.
    let used = shared.memory.used();
    let held = shared.conversations.charged_bytes() + shared.durable.charged_bytes();
    if snapshot.sessions == 0 && used != held {
        journal.violate(
            Invariant::MemoryBounded,
            format!(
                "at quiescence the memory budget counts {used} bytes, the conversations and \
                 the records waiting for the state file {held}"
            ),
        );
    }
    if witness.in_flight() != 0 {
        journal.violate(
            Invariant::LimitsHeld,
            format!(
                "at quiescence providers still see {} attempts",
                witness.in_flight()
            ),
        );
    }
    let sampled = health.sampled_at.lock().expect("health lock");
    if sampled.iter().any(|at| observer.terminal_at(*at)) {
        journal.cover("health_raced_completion");
    }
    if observer.queue_timeout_raced_release() {
        journal.cover("queue_timeout_raced_release");
    }
    journal.record(format!(
        "quiescent; {} calls accepted",
        observer.accepted_total()
    ));
}

fn table(
    scenario: &Scenario,
    seed: u64,
    plan: &Plan,
    journal: &Journal,
    witness: &Witness,
    store: Option<&SimStore>,
    virtual_ms: u64,
) -> String {
    let counter = |name: &str| journal.counters.get(name).copied().unwrap_or(0);
    let ended: Vec<String> = journal
        .counters
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("ended ").map(|code| format!("{code} {v}")))
        .collect();
    let peaks: Vec<String> = witness
        .peaks()
        .into_iter()
        .map(|(name, peak, limit)| format!("{name} {peak}/{limit}"))
        .collect();
    let mut rows = vec![
        ("scenario", scenario.name.to_string()),
        ("seed", seed.to_string()),
        ("variant", plan.variant.to_string()),
        ("clients", plan.clients.len().to_string()),
        ("calls accepted", counter("calls accepted").to_string()),
        ("ended", ended.join(", ")),
        (
            "provider attempts",
            format!(
                "kimi {}, glm {} (429s {}, aborted {})",
                counter("attempts kimi"),
                counter("attempts glm"),
                counter("429s"),
                counter("attempts aborted")
            ),
        ),
        (
            "peak in flight",
            format!(
                "{}, all {}/{}",
                peaks.join(", "),
                witness.total_peak(),
                plan.config.limits.global_inflight_max
            ),
        ),
        (
            "disconnects",
            format!(
                "{} (resumed {}, sessions expired {})",
                counter("disconnects"),
                counter("resumes"),
                counter("sessions expired")
            ),
        ),
        (
            "outbox peak",
            format!("{} frames", counter("outbox peak frames")),
        ),
        (
            "virtual time",
            format!("{:.3} s", virtual_ms as f64 / 1000.0),
        ),
        (
            "coverage",
            journal
                .coverage
                .iter()
                .copied()
                .collect::<Vec<_>>()
                .join(" "),
        ),
        ("violations", journal.violations.len().to_string()),
    ];
    if let Some(store) = store.filter(|_| !plan.crashes.is_empty()) {
        let stats = store.stats();
        let crashes = format!(
            "{} (disk commits {}, failed syncs {}, lost pending {}, changes {}; redials {})",
            plan.crashes.len(),
            stats.commits,
            stats.failed,
            stats.lost_in_crash,
            stats.changes,
            counter("redials")
        );
        rows.insert(9, ("crashes", crashes));
    }
    if !plan.mcp.is_empty() {
        let mcp = format!(
            "{} ({} calls: answered {}, refused {})",
            plan.mcp.len(),
            crate::mcp::calls_made(&plan.mcp),
            counter("mcp calls answered"),
            counter("mcp calls refused")
        );
        rows.insert(4, ("mcp clients", mcp));
    }
    for violation in &journal.violations {
        rows.push((
            "  invariant",
            format!(
                "{} at {} ms: {}",
                violation.invariant as u8, violation.at_ms, violation.detail
            ),
        ));
    }
    rows.push(("trace", format!("{:016x}", journal.trace_hash())));
    rows.iter().map(|(k, v)| format!("{k:<18} {v}\n")).collect()
}
