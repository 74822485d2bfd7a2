//! The writer of durable state: changes leave the hot path through a bounded queue, and one
//! task commits them to the [`Store`] in groups.
//!
//! Why a queue and one writer: a commit is a transaction and a sync, milliseconds on a real
//! disk. A call that waited for its own would pay that on every turn; with one writer, the
//! changes of every call that arrive while a commit runs go together in the next one (group
//! commit), and a record changed twice in that time is written once (the queue keeps the last
//! change per record). A failing store never fails a call: the daemon goes on serving with
//! persistence degraded, says so in `/readyz` and `/status`, counts the failures, and tries
//! the changes again.
//!
//! Bounded: at most `EXAI_STATE_QUEUE_MAX` records wait (past it a change is dropped, counted
//! and logged, and persistence is degraded), at most `EXAI_STATE_BATCH_MAX` go in one commit.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Notify;

use crate::config::key;
use crate::memory::{Charge, MemoryBudget};
use crate::rt::Rt;
use crate::rt::store::{Change, RecordKind, Store};

/// How long the writer waits before trying a failed commit again.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// The writer's bounds, from configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurableLimits {
    /// Records waiting to be committed, at most.
    pub queue_max: usize,
    /// Changes in one commit, at most.
    pub batch_max: usize,
    /// How long what waits for a change (a held frame) waits through failing commits before
    /// it goes on unkept.
    pub hold: Duration,
}

/// Run once a change is committed ([`Kept::Yes`]), or once it is clear it will not be soon
/// ([`Kept::No`]: the queue was full, or the store has been failing for longer than
/// `EXAI_STATE_HOLD_SECS`): what waits for durability (a frame held back from its client)
/// never waits on a failing disk for long, since a failing disk degrades persistence, not
/// service.
pub type Done = Box<dyn FnOnce(Kept) + Send>;

/// Whether a change reached the store, for what waited on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// Committed: a crash no longer loses it.
    Yes,
    /// Not committed, and not waited for any longer: served, not kept.
    No,
}

/// A change waiting, with whatever waits for it.
struct Waiting {
    /// The last change of its record.
    change: Change,
    /// Run after the commit that carries it (every earlier change of the record it replaced
    /// is carried by it too).
    done: Vec<Done>,
    /// Its bytes on the memory budget, until it is committed: when the store falls behind,
    /// what waits for it is counted, and new calls are refused before it swells the daemon.
    charge: Charge,
}

/// What one change weighs while it waits: its body and key, and its entry.
fn change_bytes(change: &Change) -> usize {
    const ENTRY_BYTES: usize = 128;
    let (_, key) = change.target();
    let body = match change {
        Change::Put { record, .. } => record.body.len(),
        Change::Delete { .. } => 0,
    };
    ENTRY_BYTES + 2 * key.len() + body
}

/// What `/status` says of the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DurableStats {
    /// What the store is (`sqlite <path>`, `memory`).
    pub store: String,
    /// Whether the last commit failed or a change was dropped since the last success: what
    /// is kept may be behind what is served.
    pub degraded: bool,
    /// Why, when degraded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub degraded_because: Option<String>,
    /// Commits made.
    pub commits: u64,
    /// Changes committed.
    pub changes: u64,
    /// The largest batch committed.
    pub batch_max_seen: u64,
    /// Commits that failed.
    pub failures: u64,
    /// Changes dropped because the queue was full.
    pub dropped: u64,
    /// Records waiting now.
    pub waiting: u64,
}

/// The writer.
pub struct Durable {
    /// The seam's clocks (wall time stamps the records) and spawner.
    rt: Rt,
    /// Where changes go.
    store: Arc<dyn Store>,
    /// The bounds.
    limits: DurableLimits,
    /// What waiting changes are counted on.
    budget: Arc<MemoryBudget>,
    /// Changes waiting, the last one per record.
    waiting: Mutex<BTreeMap<(RecordKind, String), Waiting>>,
    /// Wakes the writer: a change arrived.
    wake: Notify,
    /// Wakes flushers: a commit ended.
    committed: Notify,
    /// A commit is running.
    committing: AtomicBool,
    /// Bytes of the batch being committed, counted on the memory budget until it ends.
    committing_bytes: AtomicUsize,
    /// Why persistence is degraded, if it is (cleared by the next successful commit).
    degraded: Mutex<Option<String>>,
    /// Since when commits fail, while they do.
    failing_since: Mutex<Option<crate::rt::Instant>>,
    /// Why persistence is degraded for the life of the process, if it is: the state file
    /// could not be opened or read, so a commit that succeeds (to memory) changes nothing.
    degraded_for_good: Mutex<Option<String>>,
    /// Counters for `/status`.
    commits: AtomicU64,
    changes: AtomicU64,
    batch_max_seen: AtomicU64,
    failures: AtomicU64,
    dropped: AtomicU64,
}

impl Durable {
    /// A writer to `store`; start it with [`Durable::run`].
    pub fn new(rt: Rt, store: Arc<dyn Store>, limits: DurableLimits) -> Arc<Durable> {
        Durable::with_budget(rt, store, limits, MemoryBudget::unbounded())
    }

    /// A writer to `store` whose waiting changes are counted on the daemon's memory `budget`.
    pub fn with_budget(
        rt: Rt,
        store: Arc<dyn Store>,
        limits: DurableLimits,
        budget: Arc<MemoryBudget>,
    ) -> Arc<Durable> {
        assert!(limits.queue_max > 0 && limits.batch_max > 0);
        Arc::new(Durable {
            rt,
            store,
            limits,
            budget,
            waiting: Mutex::new(BTreeMap::new()),
            wake: Notify::new(),
            committed: Notify::new(),
            committing: AtomicBool::new(false),
            committing_bytes: AtomicUsize::new(0),
            degraded: Mutex::new(None),
            failing_since: Mutex::new(None),
            degraded_for_good: Mutex::new(None),
            commits: AtomicU64::new(0),
            changes: AtomicU64::new(0),
            batch_max_seen: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        })
    }

    /// The wall clock the records are stamped with (ms since the Unix epoch).
    pub fn unix_time_ms(&self) -> u64 {
        self.rt.unix_time_ms()
    }

    /// The store, for start-up's loads.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Keep `body` under (`kind`, `key`), stamped with the wall clock.
    pub fn put(&self, kind: RecordKind, key: &str, body: String) {
        self.submit(Change::put(kind, key, body, self.rt.unix_time_ms()), None);
    }

    /// Keep `body` under (`kind`, `key`), and run `done` once it is committed (or once the
    /// store has failed it: see [`Done`]).
    pub fn put_then(&self, kind: RecordKind, key: &str, body: String, done: Done) {
        let change = Change::put(kind, key, body, self.rt.unix_time_ms());
        self.submit(change, Some(done));
    }

    /// Forget (`kind`, `key`).
    pub fn delete(&self, kind: RecordKind, key: &str) {
        let key = key.to_string();
        self.submit(Change::Delete { kind, key }, None);
    }

    /// Queue a change, replacing any change of the same record still waiting.
    fn submit(&self, change: Change, done: Option<Done>) {
        let (kind, key) = change.target();
        let target = (kind, key.to_string());
        // Counted before the lock is taken: making room sheds outbox frames, which must never
        // wait on this queue's lock.
        let charge = self.budget.hold(change_bytes(&change));
        {
            let mut waiting = self.waiting.lock().expect("durable lock");
            let known = waiting.contains_key(&target);
            if !known && waiting.len() >= self.limits.queue_max {
                drop(waiting);
                self.dropped.fetch_add(1, Ordering::Relaxed);
                let why = format!(
                    "{} changes wait to be written ({}): the store is slower than the daemon",
                    self.limits.queue_max,
                    key::EXAI_STATE_QUEUE_MAX
                );
                tracing::error!(record = %target.1, kind = kind.name(), "persistence degraded: change dropped: {why}");
                self.degrade(why);
                if let Some(done) = done {
                    done(Kept::No);
                }
                return;
            }
            match waiting.entry(target) {
                std::collections::btree_map::Entry::Occupied(mut entry) => {
                    let entry = entry.get_mut();
                    entry.change = change;
                    entry.charge = charge;
                    entry.done.extend(done);
                }
                std::collections::btree_map::Entry::Vacant(entry) => {
                    entry.insert(Waiting {
                        change,
                        done: done.into_iter().collect(),
                        charge,
                    });
                }
            }
            assert!(waiting.len() <= self.limits.queue_max);
        }
        self.wake.notify_one();
    }

    /// Persistence is degraded for the life of the process (the state file could not be
    /// opened or read): said in `/readyz`, `/status` and the metrics until the daemon stops.
    pub fn degraded_for_good(&self, why: String) {
        *self.degraded_for_good.lock().expect("durable lock") = Some(why);
    }

    fn degrade(&self, why: String) {
        *self.degraded.lock().expect("durable lock") = Some(why);
    }

    /// The next batch: at most `batch_max` changes, taken from the queue, each with what
    /// waits for it.
    fn take(&self) -> (Vec<Change>, Vec<Vec<Done>>, Vec<Charge>) {
        let mut waiting = self.waiting.lock().expect("durable lock");
        let keys: Vec<_> = waiting
            .keys()
            .take(self.limits.batch_max)
            .cloned()
            .collect();
        let mut batch = Vec::with_capacity(keys.len());
        let mut done = Vec::with_capacity(keys.len());
        let mut charges = Vec::with_capacity(keys.len());
        for target in &keys {
            let taken = waiting.remove(target).expect("the key was just listed");
            batch.push(taken.change);
            done.push(taken.done);
            charges.push(taken.charge);
        }
        if !batch.is_empty() {
            self.committing.store(true, Ordering::SeqCst);
        }
        assert!(batch.len() <= self.limits.batch_max);
        assert_eq!(batch.len(), done.len());
        (batch, done, charges)
    }

    /// Put a failed batch back, each change with what still waits for it, unless a newer
    /// change of the same record came meanwhile (then what waits goes with the newer one,
    /// whose commit carries it too). What cannot be queued again is told it was not kept.
    fn requeue(&self, batch: &[Change], done: Vec<Vec<Done>>) {
        let mut not_kept = Vec::new();
        // Counted before the lock, as in `submit`.
        let mut charges: Vec<_> = batch
            .iter()
            .map(|change| Some(self.budget.hold(change_bytes(change))))
            .collect();
        let mut waiting = self.waiting.lock().expect("durable lock");
        let mut done = done.into_iter();
        for (change, charge) in batch.iter().zip(charges.iter_mut()) {
            let done = done.next().unwrap_or_default();
            let (kind, key) = change.target();
            let target = (kind, key.to_string());
            if waiting.len() < self.limits.queue_max || waiting.contains_key(&target) {
                let entry = waiting.entry(target).or_insert_with(|| Waiting {
                    change: change.clone(),
                    done: Vec::new(),
                    charge: charge.take().expect("one charge per change"),
                });
                entry.done.extend(done);
            } else {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                not_kept.extend(done);
            }
        }
        drop(waiting);
        for done in not_kept {
            done(Kept::No);
        }
    }

    /// A commit failed: true while what waits on it may go on waiting (the store has been
    /// failing for less than the hold).
    fn still_holding(&self) -> bool {
        let now = self.rt.now();
        let mut since = self.failing_since.lock().expect("durable lock");
        let since = *since.get_or_insert(now);
        now.saturating_since(since) < self.limits.hold
    }

    /// The writer's loop: commit what waits, group by group, for as long as the daemon runs.
    pub async fn run(self: Arc<Self>) {
        loop {
            let woken = self.wake.notified();
            let mut woken = std::pin::pin!(woken);
            woken.as_mut().enable();
            // The batch stays counted on the memory budget until its commit ends.
            let (batch, done, charges) = self.take();
            let committing_bytes: usize = charges.iter().map(Charge::bytes).sum();
            self.committing_bytes
                .store(committing_bytes, Ordering::SeqCst);
            if batch.is_empty() {
                self.committed.notify_waiters();
                woken.await;
                continue;
            }
            let size = batch.len() as u64;
            let batch: Arc<[Change]> = batch.into();
            let result = self.store.commit(batch.clone()).await;
            let failed = result.is_err();
            match result {
                Ok(()) => {
                    *self.failing_since.lock().expect("durable lock") = None;
                    for done in done.into_iter().flatten() {
                        done(Kept::Yes);
                    }
                    self.commits.fetch_add(1, Ordering::Relaxed);
                    self.changes.fetch_add(size, Ordering::Relaxed);
                    self.batch_max_seen.fetch_max(size, Ordering::Relaxed);
                    let was = self.degraded.lock().expect("durable lock").take();
                    if was.is_some() {
                        tracing::warn!(store = %self.store.describe(), "persistence recovered");
                    }
                }
                Err(error) => {
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(store = %self.store.describe(), %error, changes = size, "persistence degraded: commit failed; trying again");
                    self.degrade(format!("the last commit failed: {error}"));
                    if self.still_holding() {
                        self.requeue(&batch, done);
                    } else {
                        self.requeue(&batch, Vec::new());
                        for done in done.into_iter().flatten() {
                            done(Kept::No);
                        }
                    }
                }
            }
            drop(charges);
            self.committing_bytes.store(0, Ordering::SeqCst);
            self.committing.store(false, Ordering::SeqCst);
            self.committed.notify_waiters();
            if failed {
                self.rt.sleep(RETRY_PAUSE).await;
            }
        }
    }

    /// Wait until everything queued before now is committed, or `timeout` passed (graceful
    /// shutdown). Returns whether the queue is empty.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let deadline = self.rt.now() + timeout;
        loop {
            let done = self.committed.notified();
            let mut done = std::pin::pin!(done);
            done.as_mut().enable();
            let empty = self.waiting.lock().expect("durable lock").is_empty();
            if empty && !self.committing.load(Ordering::SeqCst) {
                return true;
            }
            self.wake.notify_one();
            tokio::select! {
                biased;
                () = done => {}
                () = self.rt.sleep_until(deadline) => return false,
            }
        }
    }

    /// Bytes counted on the memory budget now: the changes waiting and the batch being
    /// committed.
    pub fn charged_bytes(&self) -> usize {
        let waiting: usize = (self.waiting.lock().expect("durable lock").values())
            .map(|waiting| waiting.charge.bytes())
            .sum();
        waiting + self.committing_bytes.load(Ordering::SeqCst)
    }

    /// What `/status` says.
    pub fn stats(&self) -> DurableStats {
        let for_good = self.degraded_for_good.lock().expect("durable lock").clone();
        let degraded_because =
            for_good.or_else(|| self.degraded.lock().expect("durable lock").clone());
        DurableStats {
            store: self.store.describe(),
            degraded: degraded_because.is_some(),
            degraded_because,
            commits: self.commits.load(Ordering::Relaxed),
            changes: self.changes.load(Ordering::Relaxed),
            batch_max_seen: self.batch_max_seen.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            waiting: self.waiting.lock().expect("durable lock").len() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::rt::BoxFuture;
    use crate::rt::store::{MemoryStore, Record, StoreError};

    /// A store that records each batch, and fails while told to.
    #[derive(Default)]
    struct Disk {
        /// What was committed.
        inner: MemoryStore,
        /// The size of each commit that went through.
        batches: Mutex<Vec<usize>>,
        /// Commits to fail from now on.
        failing: AtomicUsize,
    }

    impl Store for Disk {
        fn load(&self, kind: RecordKind) -> Result<BTreeMap<String, Record>, StoreError> {
            self.inner.load(kind)
        }
        fn commit(&self, batch: Arc<[Change]>) -> BoxFuture<'_, Result<(), StoreError>> {
            let failing = self.failing.load(Ordering::SeqCst);
            if failing > 0 {
                self.failing.store(failing - 1, Ordering::SeqCst);
                return Box::pin(std::future::ready(Err(StoreError("disk full".into()))));
            }
            self.batches.lock().unwrap().push(batch.len());
            self.inner.commit(batch)
        }
        fn describe(&self) -> String {
            "test disk".into()
        }
    }

    fn writer(disk: &Arc<Disk>, queue_max: usize, hold: Duration) -> Arc<Durable> {
        let rt = Rt::new(Arc::new(crate::rt::tokio::TokioRuntime::new()));
        let limits = DurableLimits {
            queue_max,
            batch_max: 2,
            hold,
        };
        Durable::new(rt, disk.clone(), limits)
    }

    fn body(disk: &Disk, key: &str) -> Option<String> {
        let records = disk.load(RecordKind::Conversation).unwrap();
        records.get(key).map(|r| r.body.clone())
    }

    #[tokio::test]
    async fn waiting_changes_are_counted_on_the_memory_budget_until_committed() {
        let disk = Arc::new(Disk::default());
        let rt = Rt::new(Arc::new(crate::rt::tokio::TokioRuntime::new()));
        let limits = DurableLimits {
            queue_max: 16,
            batch_max: 2,
            hold: Duration::ZERO,
        };
        let budget = MemoryBudget::new(1 << 20);
        let durable = Durable::with_budget(rt.clone(), disk.clone(), limits, budget.clone());
        durable.put(RecordKind::Conversation, "a", "x".repeat(1000));
        let one = budget.used();
        assert!(one >= 1000, "the body is counted: {one}");
        // A newer change of the same record replaces the older one's count, it does not add.
        durable.put(RecordKind::Conversation, "a", "y".repeat(1000));
        assert_eq!(budget.used(), one);
        durable.put(RecordKind::Conversation, "b", "z".repeat(3000));
        assert!(budget.used() >= one + 3000);
        rt.spawn("writer", durable.clone().run());
        assert!(durable.flush(Duration::from_secs(5)).await);
        assert_eq!(budget.used(), 0, "nothing counted once it is committed");
        assert_eq!(body(&disk, "a").as_deref(), Some("y".repeat(1000).as_str()));
    }

    #[tokio::test]
    async fn changes_are_grouped_coalesced_and_flushed() {
        let disk = Arc::new(Disk::default());
        let durable = writer(&disk, 16, Duration::ZERO);
        // Queued before the writer runs: one record changed three times is written once.
        for n in 0..3 {
            durable.put(RecordKind::Conversation, "a", format!("a{n}"));
        }
        durable.put(RecordKind::Conversation, "b", "b0".into());
        durable.put(RecordKind::Conversation, "c", "c0".into());
        durable.delete(RecordKind::Conversation, "c");
        assert_eq!(durable.stats().waiting, 3);
        let rt = durable.rt.clone();
        rt.spawn("writer", durable.clone().run());
        assert!(durable.flush(Duration::from_secs(5)).await);
        assert_eq!(body(&disk, "a").as_deref(), Some("a2"));
        assert_eq!(body(&disk, "b").as_deref(), Some("b0"));
        assert_eq!(body(&disk, "c"), None);
        let stats = durable.stats();
        assert_eq!((stats.changes, stats.batch_max_seen), (3, 2), "{stats:?}");
        assert_eq!(
            *disk.batches.lock().unwrap(),
            [2, 1],
            "at most EXAI_STATE_BATCH_MAX"
        );
        assert!(!stats.degraded);
    }

    #[tokio::test]
    async fn a_failing_disk_degrades_then_recovers_and_a_full_queue_drops_and_says_so() {
        let disk = Arc::new(Disk::default());
        disk.failing.store(1, Ordering::SeqCst);
        let durable = writer(&disk, 2, Duration::from_secs(5));
        let told: Arc<Mutex<Vec<(&str, Kept)>>> = Arc::default();
        let tell = |key: &'static str| -> Done {
            let told = told.clone();
            Box::new(move |kept| told.lock().unwrap().push((key, kept)))
        };
        durable.put_then(RecordKind::Conversation, "a", "kept".into(), tell("a"));
        durable.put(RecordKind::Conversation, "b", "kept".into());
        // Dropped (the queue is full): what waits for it is told at once, never left waiting.
        durable.put_then(RecordKind::Conversation, "c", "dropped".into(), tell("c"));
        assert_eq!(*told.lock().unwrap(), [("c", Kept::No)]);
        let stats = durable.stats();
        assert_eq!((stats.dropped, stats.degraded), (1, true), "{stats:?}");
        assert!(
            stats
                .degraded_because
                .unwrap()
                .contains("EXAI_STATE_QUEUE_MAX")
        );
        let rt = durable.rt.clone();
        rt.spawn("writer", durable.clone().run());
        // The first commit fails (degraded, counted), the retry a second later succeeds: what
        // waited on "a" waited through the failure (within the hold) and is told it is kept.
        assert!(durable.flush(Duration::from_secs(5)).await);
        assert_eq!(*told.lock().unwrap(), [("c", Kept::No), ("a", Kept::Yes)]);
        let stats = durable.stats();
        assert_eq!((stats.failures, stats.commits), (1, 1), "{stats:?}");
        assert!(!stats.degraded, "a successful commit clears it: {stats:?}");
        assert_eq!(body(&disk, "a").as_deref(), Some("kept"));
        assert_eq!(body(&disk, "c"), None);
    }

    #[tokio::test]
    async fn past_the_hold_what_waits_goes_on_unkept_and_the_change_is_still_retried() {
        let disk = Arc::new(Disk::default());
        disk.failing.store(1, Ordering::SeqCst);
        let durable = writer(&disk, 4, Duration::ZERO);
        let told: Arc<Mutex<Vec<Kept>>> = Arc::default();
        let tell = told.clone();
        let done: Done = Box::new(move |kept| tell.lock().unwrap().push(kept));
        durable.put_then(RecordKind::Conversation, "a", "late".into(), done);
        let rt = durable.rt.clone();
        rt.spawn("writer", durable.clone().run());
        assert!(durable.flush(Duration::from_secs(5)).await);
        assert_eq!(*told.lock().unwrap(), [Kept::No], "told once, not kept");
        assert_eq!(
            body(&disk, "a").as_deref(),
            Some("late"),
            "kept at the retry"
        );
    }
}
