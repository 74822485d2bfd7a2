//! The journal of one run: the event log (whose hash must repeat for a seed), the invariant
//! violations, the coverage tags reached, and counters for the outcome table.
//!
//! Everything in a run (the simulated provider, the observer inside the daemon, the clients,
//! the health checker) writes here. The simulation is single-threaded, so one mutex is enough.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

/// The invariants of DESIGN.md section 8, numbered as there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// 0: nothing panics (the daemon's own assertions included): a panic ends the run.
    NoPanic = 0,
    /// 1: no limit is ever exceeded, as seen by the simulated provider.
    LimitsHeld = 1,
    /// 2: every permit comes back; in-use always equals live holders.
    PermitsBalanced = 2,
    /// 3: exactly one terminal frame per accepted call; resume replays every frame once, in order.
    ExactlyOnce = 3,
    /// 4: no terminal frame later than the call's deadline plus a small bound.
    DeadlineHonored = 4,
    /// 5: after a 429 with retry-after, that provider is not called before it.
    RetryAfterHonored = 5,
    /// 6: after the faults stop, a fresh call succeeds.
    Liveness = 6,
    /// 7: outboxes, queues and sessions stay under their caps.
    MemoryBounded = 7,
    /// 8: the same seed gives the same trace (checked by running seeds twice).
    Determinism = 8,
    /// 9: no file outside the daemon's roots is ever read (the simulated file system is the
    /// witness).
    FilesWithinRoots = 9,
    /// 10: the files a provider receives in a call's message are well formed (each between
    /// a BEGIN and an END marker, its declared size its real one) and together within the
    /// call's budget (the configured share of the model's context window); the provider is
    /// the witness.
    EmbeddedWithinBudget = 10,
    /// 11: a tool-call loop never exceeds its round limit, each round answers the previous
    /// round's calls as the provider documents, and rounds run only where web search was
    /// offered (the loop's end inside the deadline is invariant 4's).
    ToolRoundsBounded = 11,
    /// 12: a call that has a healthy provider is answered, inside its deadline: an `auto`
    /// call however the other provider of its chain fails (the failover scenario), a call to
    /// a healthy provider however another hangs (the isolation scenario).
    FailoverAnswers = 12,
    /// 13: exaid's request budget (`EXAI_*_RPM`) keeps the provider from ever seeing more
    /// requests in a minute than its account allows; the simulated provider counts.
    BudgetsKept = 13,
    /// 14: a call waiting for one provider holds no capacity another provider's calls need:
    /// when the global limit is at least the provider limits together, no call ever waits
    /// for, or is refused by, the global limit (so a hung provider never delays another's
    /// calls).
    ProvidersIsolated = 14,
    /// 15: a daemon that dies loses no answer: every call it accepted gets exactly one
    /// terminal frame (its result, or `INTERRUPTED` from the next incarnation), delivered to a
    /// client that resumes its session within the TTL across the restart, and nothing is
    /// delivered twice (no seq, no second terminal frame for a request id).
    ResultsSurviveRestart = 15,
    /// 16: a conversation loses at most its uncommitted tail: after a restart, a
    /// `continuation_id` the client holds goes on with every turn the simulated disk had
    /// committed at the crash, and is refused only if the disk had not committed it.
    ConversationsSurviveRestart = 16,
    /// 17: permits never leak across a crash: once a killed incarnation's tasks are dropped,
    /// the providers see none of its attempts and its limits hold no permit; the incarnation
    /// serving at quiescence gives every permit back (invariant 2, per incarnation).
    PermitsPerIncarnation = 17,
    /// 18: abusers never lock a well-behaved client out: while floods, sockets that never say
    /// hello and clients that never read run, a well-behaved client's hello is answered
    /// within `Journal::served_within_ms` of its socket connecting.
    ServedBesideAbusers = 18,
}

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant.
    pub invariant: Invariant,
    /// Virtual milliseconds since the run began.
    pub at_ms: u64,
    /// What happened.
    pub detail: String,
}

/// The run's journal.
#[derive(Debug, Default)]
pub struct Journal {
    /// Event lines, each stamped with virtual milliseconds.
    lines: Vec<String>,
    /// Broken invariants.
    pub violations: Vec<Violation>,
    /// Coverage tags reached ("a 429 was retried", "a disconnect hit a running call"...).
    pub coverage: BTreeSet<&'static str>,
    /// Named counters for the outcome table.
    pub counters: BTreeMap<String, u64>,
    /// Calls a frame of which went out before the state file kept its record (the disk kept
    /// failing past `EXAI_STATE_HOLD_SECS`): a crash may end them again, or forget them, and
    /// the daemon says so in `/status` and its log. Invariant 15 excuses exactly these.
    pub not_kept: BTreeSet<String>,
    /// Invariant 18's bound, set when the run has hostile clients: the longest a well-behaved
    /// client may wait from its socket connecting to its `hello_ack`.
    pub served_within_ms: Option<u64>,
}

/// Virtual milliseconds since the simulation started.
pub fn now_ms() -> u64 {
    madsim::time::TimeHandle::try_current()
        .map(|t| t.elapsed().as_millis() as u64)
        .unwrap_or(0)
}

impl Journal {
    /// Record an event.
    pub fn record(&mut self, event: impl AsRef<str>) {
        self.lines
            .push(format!("{:>9} {}", now_ms(), event.as_ref()));
    }

    /// Record a broken invariant (also in the event log).
    pub fn violate(&mut self, invariant: Invariant, detail: impl Into<String>) {
        let detail = detail.into();
        self.record(format!("VIOLATION invariant {} {detail}", invariant as u8));
        self.violations.push(Violation {
            invariant,
            at_ms: now_ms(),
            detail,
        });
    }

    /// Mark a coverage tag as reached.
    pub fn cover(&mut self, tag: &'static str) {
        self.coverage.insert(tag);
    }

    /// Add to a counter.
    pub fn count(&mut self, name: impl Into<String>, by: u64) {
        *self.counters.entry(name.into()).or_insert(0) += by;
    }

    /// Raise a counter to at least `value`.
    pub fn count_max(&mut self, name: impl Into<String>, value: u64) {
        let entry = self.counters.entry(name.into()).or_insert(0);
        *entry = (*entry).max(value);
    }

    /// The event log.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// A stable hash of the event log (SipHash with fixed keys).
    pub fn trace_hash(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        self.lines.hash(&mut hasher);
        hasher.finish()
    }
}

/// The journal shared by every part of a run.
pub type JournalRef = Arc<Mutex<Journal>>;

/// Lock the journal (the simulation is single-threaded: this never contends).
/// After a panic the lock may be poisoned; the journal is still what was recorded.
pub fn lock(journal: &JournalRef) -> std::sync::MutexGuard<'_, Journal> {
    journal
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
