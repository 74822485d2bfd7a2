//! The simulated disk: a [`Store`] that keeps only what a commit finished writing.
//!
//! Why: "nothing lost when the daemon dies" is a claim about what was committed, so the
//! simulator needs a disk that loses exactly what a real one loses. A batch here becomes
//! durable only at the very end of its commit future, after a sync latency drawn from the
//! run's seeded generator and slept on madsim's clock. When the daemon's node is killed while
//! a commit is pending, madsim drops the future before it applies: that batch, and whatever
//! the writer had not yet taken, is lost, with no code of its own. A planned fraction of
//! commits fail (a failed sync: nothing applied, [`StoreError`] returned) so the daemon's
//! degraded mode is exercised.
//!
//! The committed records live behind an `Arc` that the supervisor keeps outside the daemon's
//! node, so they outlive every incarnation; the next one loads them back. The store is also
//! the witness of what was durable: it counts commits, failed syncs, changes and commits lost
//! to a crash, and keeps a copy of the committed state at each crash, which the invariants
//! compare with what the restarted daemon remembers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use exaid::rt::BoxFuture;
use exaid::rt::store::{Change, MemoryStore, Record, RecordKind, Store, StoreError};
use madsim::rand::{Rng, thread_rng};

use crate::journal::{JournalRef, lock};

/// How the simulated disk syncs: drawn per scenario.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyncPlan {
    /// The latency of one commit (its write and sync), inclusive range of virtual ms.
    pub latency_ms: (u64, u64),
    /// The fraction of commits whose sync fails (0.0 to 1.0).
    pub fail_fraction: f64,
}

/// What the disk has seen, for the invariants and the outcome table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Commits that completed and were applied.
    pub commits: u64,
    /// Commits whose sync failed (nothing applied).
    pub failed: u64,
    /// Changes applied by completed commits.
    pub changes: u64,
    /// Commits still pending when a crash dropped them (nothing applied).
    pub lost_in_crash: u64,
}

/// Records by kind and key (a `BTreeMap`: loads come back in one order).
type Records = BTreeMap<(RecordKind, String), Record>;

/// The disk's contents and its witness, shared by every incarnation of the daemon.
#[derive(Debug, Default)]
struct Disk {
    /// The committed records.
    records: Records,
    /// The counters.
    stats: StoreStats,
    /// The committed state at each crash: (virtual ms of the crash, the records then).
    at_crashes: Vec<(u64, Records)>,
}

/// The simulated disk. Cheap to clone: every clone is the same disk.
#[derive(Clone)]
pub struct SimStore {
    /// The disk, outside any daemon node.
    disk: Arc<Mutex<Disk>>,
    /// How it syncs.
    plan: SyncPlan,
    /// Where failed syncs and lost commits are recorded.
    journal: JournalRef,
}

impl std::fmt::Debug for SimStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimStore")
            .field("stats", &self.stats())
            .finish()
    }
}

impl SimStore {
    /// An empty disk syncing as `plan` says.
    pub fn new(plan: SyncPlan, journal: JournalRef) -> SimStore {
        assert!(plan.latency_ms.0 <= plan.latency_ms.1);
        assert!((0.0..=1.0).contains(&plan.fail_fraction));
        SimStore {
            disk: Arc::new(Mutex::new(Disk::default())),
            plan,
            journal,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Disk> {
        self.disk
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The counters so far.
    pub fn stats(&self) -> StoreStats {
        self.lock().stats
    }

    /// The daemon dies now: remember what was durable at this instant (what the next
    /// incarnation must find, and may not find more of).
    pub fn crashed(&self, at_ms: u64) {
        let mut disk = self.lock();
        let records = disk.records.clone();
        disk.at_crashes.push((at_ms, records));
    }

    /// The latest crash so far (virtual ms) and the body then committed under (`kind`,
    /// `key`), if the record was durable at that instant.
    pub fn last_crash(&self, kind: RecordKind, key: &str) -> Option<(u64, Option<String>)> {
        let disk = self.lock();
        let (at_ms, records) = disk.at_crashes.last()?;
        let body = records
            .get(&(kind, key.to_string()))
            .map(|record| record.body.clone());
        Some((*at_ms, body))
    }

    /// The body of the record under (`kind`, `key`) the disk held at crash `n` (0: the first,
    /// the one that ended incarnation `n`), if any.
    pub fn body_at_crash(&self, n: usize, kind: RecordKind, key: &str) -> Option<String> {
        let disk = self.lock();
        let target = (kind, key.to_string());
        disk.at_crashes
            .get(n)
            .and_then(|(_, records)| records.get(&target))
            .map(|record| record.body.clone())
    }

    /// Crashes the disk has lived through.
    pub fn crashes(&self) -> usize {
        self.lock().at_crashes.len()
    }
}

/// Counts a commit that a crash dropped before it applied.
struct Pending {
    /// The disk whose witness counts it.
    store: SimStore,
    /// Set when the commit ran to its end (applied or failed).
    ended: bool,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.ended {
            self.store.lock().stats.lost_in_crash += 1;
            let mut journal = lock(&self.store.journal);
            journal.cover("crash_lost_pending_commit");
            journal.count("commits lost in a crash", 1);
        }
    }
}

impl Store for SimStore {
    fn load(&self, kind: RecordKind) -> Result<BTreeMap<String, Record>, StoreError> {
        let disk = self.lock();
        Ok(disk
            .records
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|((_, key), record)| (key.clone(), record.clone()))
            .collect())
    }

    fn commit(&self, batch: Arc<[Change]>) -> BoxFuture<'_, Result<(), StoreError>> {
        let latency = Duration::from_millis(
            thread_rng().gen_range(self.plan.latency_ms.0..=self.plan.latency_ms.1),
        );
        let fails = self.plan.fail_fraction > 0.0 && thread_rng().gen_bool(self.plan.fail_fraction);
        let pending = Pending {
            store: self.clone(),
            ended: false,
        };
        Box::pin(async move {
            // Moved in whole (not only its field): dropped with the future, as in a crash.
            let mut pending = pending;
            madsim::time::sleep(latency).await;
            pending.ended = true;
            if fails {
                self.lock().stats.failed += 1;
                let mut journal = lock(&self.journal);
                journal.record(format!("disk: sync failed ({} changes)", batch.len()));
                journal.cover("failed_sync");
                return Err(StoreError("simulated failed sync".to_string()));
            }
            let mut disk = self.lock();
            MemoryStore::apply(&mut disk.records, batch.iter().cloned());
            disk.stats.commits += 1;
            disk.stats.changes += batch.len() as u64;
            Ok(())
        })
    }

    fn describe(&self) -> String {
        "simulated disk".to_string()
    }
}
