//! One memory budget for the whole daemon (`EXAI_MEMORY_MAX_BYTES`): the session outboxes,
//! the result caches and the conversations are counted against it together, on top of their
//! own caps.
//!
//! Why one budget: each of those has a per-session or per-conversation cap, but caps per
//! owner multiply by the number of owners. Under a flood of clients that never ack and go
//! away, ten thousand sessions each within its 16 MiB cap are far more memory than the machine
//! has (measured on `exaid bench`: 562 to 709 MiB resident). The budget bounds the sum.
//!
//! How it is kept: like [`crate::admission::Limit`], bytes are counted in by the owner when it
//! keeps something (a frame pushed, a result cached, a conversation turn stored) and counted
//! out by the same owner when it lets it go, each owner remembering what it charged, so the
//! count never drifts; an owner gives back everything it still holds when it is dropped.
//!
//! What happens when it is reached: a charge first makes room by shedding the oldest frames
//! of disconnected sessions, across sessions, oldest first ([`Shed`]); those frames are
//! announced to a resuming client as a `gap`, like any other frame that fell out of an
//! outbox. What cannot be shed (every session is live) is still charged: a terminal frame of
//! an accepted call is never dropped to stay within the budget. Instead, a new call first
//! reserves its own state ([`MemoryBudget::reserve`], a [`Charge`] held until its terminal
//! frame) and is refused with `OVER_CAPACITY` naming the key when that does not fit, so the
//! overshoot is bounded by what the calls already accepted produce.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// Something that holds frames the budget may take back: the outbox of a session nobody is
/// attached to.
pub trait Shed: Send + Sync {
    /// The budget stamp ([`MemoryBudget::stamp`]) of the oldest frame it could shed now.
    fn oldest_stamp(&self) -> Option<u64>;
    /// Drop its oldest frame (its bytes are counted out by its owner); false if it had none.
    fn shed_oldest(&self) -> bool;
}

/// What the budget has seen, for `/status`, metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MemoryStats {
    /// Bytes counted now.
    pub used_bytes: usize,
    /// The budget.
    pub max_bytes: usize,
    /// The most bytes ever counted at once.
    pub peak_bytes: usize,
    /// Frames of disconnected sessions shed to stay within the budget, all time.
    pub frames_shed_total: u64,
    /// Charges that went past the budget because nothing could be shed, all time.
    pub over_total: u64,
    /// Sessions whose frames may be shed now (nobody attached).
    pub sheddable_sessions: usize,
}

/// Bytes reserved on the budget by one owner, given back when it is dropped: an accepted
/// call's own state (its task, its plan, its provider request and response), counted from
/// acceptance to its terminal frame so that a flood is refused at the door rather than
/// swelling the daemon with calls it cannot hold.
#[derive(Debug)]
pub struct Charge {
    /// The budget it is counted on.
    budget: Arc<MemoryBudget>,
    /// What it counts.
    bytes: usize,
}

impl Charge {
    /// The bytes it counts.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

/// The daemon's memory budget: an atomic byte count with a maximum.
pub struct MemoryBudget {
    /// The maximum, in bytes.
    max: usize,
    /// Bytes counted now.
    used: AtomicUsize,
    /// The most bytes ever counted at once.
    peak: AtomicUsize,
    /// The next stamp: charges are numbered so "oldest first" holds across sessions.
    stamps: AtomicU64,
    /// Frames shed, all time.
    shed_total: AtomicU64,
    /// Charges past the maximum, all time.
    over_total: AtomicU64,
    /// Who may be shed now, by session id (a `BTreeMap`: the order of a tie is stable).
    sheddable: Mutex<BTreeMap<String, Weak<dyn Shed>>>,
}

impl std::fmt::Debug for MemoryBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBudget")
            .field("max", &self.max)
            .field("used", &self.used())
            .finish_non_exhaustive()
    }
}

impl MemoryBudget {
    /// A budget of `max` bytes, nothing counted yet.
    pub fn new(max: usize) -> Arc<MemoryBudget> {
        assert!(max > 0, "a memory budget must be positive");
        Arc::new(MemoryBudget {
            max,
            used: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            stamps: AtomicU64::new(1),
            shed_total: AtomicU64::new(0),
            over_total: AtomicU64::new(0),
            sheddable: Mutex::new(BTreeMap::new()),
        })
    }

    /// A budget that is never reached: for owners built outside a daemon (unit tests).
    pub fn unbounded() -> Arc<MemoryBudget> {
        MemoryBudget::new(usize::MAX)
    }

    /// The next stamp, increasing: a frame's age across sessions.
    pub fn stamp(&self) -> u64 {
        self.stamps.fetch_add(1, Ordering::Relaxed)
    }

    /// Count `bytes` in, shedding frames of disconnected sessions first if they would not
    /// fit. Past the maximum only when nothing can be shed: the caller keeps what it was
    /// given (a result is never lost to the budget).
    pub fn charge(&self, bytes: usize) {
        if self.try_charge(bytes) {
            return;
        }
        if self.make_room(bytes) && self.try_charge(bytes) {
            return;
        }
        let used = self.used.fetch_add(bytes, Ordering::SeqCst) + bytes;
        self.peak.fetch_max(used, Ordering::SeqCst);
        self.over_total.fetch_add(1, Ordering::Relaxed);
    }

    /// Count `bytes` in if they fit under the maximum.
    fn try_charge(&self, bytes: usize) -> bool {
        let fitted = self
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                used.checked_add(bytes).filter(|after| *after <= self.max)
            });
        match fitted {
            Ok(before) => {
                self.peak.fetch_max(before + bytes, Ordering::SeqCst);
                true
            }
            Err(_) => false,
        }
    }

    /// Count `bytes` out: the owner lets go of what it charged.
    pub fn release(&self, bytes: usize) {
        let before = self.used.fetch_sub(bytes, Ordering::SeqCst);
        assert!(before >= bytes, "released more than was charged");
    }

    /// Move an owner's count from `before` to `after` bytes (an owner that recounts itself).
    pub fn adjust(&self, before: usize, after: usize) {
        if after > before {
            self.charge(after - before);
        } else {
            self.release(before - after);
        }
    }

    /// Shed the oldest frames of disconnected sessions, oldest first across sessions, until
    /// `bytes` more fit. False if it could not make that room.
    fn make_room(&self, bytes: usize) -> bool {
        let fits = |budget: &MemoryBudget| {
            budget
                .used()
                .checked_add(bytes)
                .is_some_and(|after| after <= budget.max)
        };
        let mut sheddable = self.sheddable.lock().expect("budget lock");
        sheddable.retain(|_, who| who.strong_count() > 0);
        let mut oldest: BinaryHeap<Reverse<(u64, String)>> = sheddable
            .iter()
            .filter_map(|(id, who)| Some(Reverse((who.upgrade()?.oldest_stamp()?, id.clone()))))
            .collect();
        while !fits(self) {
            let Some(Reverse((_, id))) = oldest.pop() else {
                return false;
            };
            let Some(who) = sheddable.get(&id).and_then(Weak::upgrade) else {
                continue;
            };
            if who.shed_oldest() {
                self.shed_total.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(next) = who.oldest_stamp() {
                oldest.push(Reverse((next, id)));
            }
        }
        true
    }

    /// Count `bytes` in for as long as the returned [`Charge`] lives, if they fit (shedding
    /// frames of disconnected sessions to make room); `None` when they cannot fit. For what
    /// may be refused: a new call's own state, reserved before it is accepted.
    pub fn reserve(self: &Arc<Self>, bytes: usize) -> Option<Charge> {
        let fitted = self.try_charge(bytes) || (self.make_room(bytes) && self.try_charge(bytes));
        fitted.then(|| Charge {
            budget: self.clone(),
            bytes,
        })
    }

    /// Count `bytes` in for as long as the returned [`Charge`] lives, whether or not they fit
    /// (shedding first, like [`MemoryBudget::charge`]): for what is kept whatever the budget
    /// says, such as a record waiting to be written to the state file.
    pub fn hold(self: &Arc<Self>, bytes: usize) -> Charge {
        self.charge(bytes);
        Charge {
            budget: self.clone(),
            bytes,
        }
    }

    /// Session `id` has nobody attached: its frames may be shed.
    pub fn sheddable(&self, id: &str, who: Weak<dyn Shed>) {
        let mut sheddable = self.sheddable.lock().expect("budget lock");
        sheddable.insert(id.to_string(), who);
    }

    /// Session `id` is served again, or gone: its frames are no longer shed.
    pub fn not_sheddable(&self, id: &str) {
        self.sheddable.lock().expect("budget lock").remove(id);
    }

    /// True when the budget is reached: new calls are refused until it frees.
    pub fn is_full(&self) -> bool {
        self.used() >= self.max
    }

    /// Bytes counted now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }

    /// The maximum.
    pub fn max(&self) -> usize {
        self.max
    }

    /// What the budget has seen.
    pub fn stats(&self) -> MemoryStats {
        MemoryStats {
            used_bytes: self.used(),
            max_bytes: self.max,
            peak_bytes: self.peak.load(Ordering::SeqCst),
            frames_shed_total: self.shed_total.load(Ordering::Relaxed),
            over_total: self.over_total.load(Ordering::Relaxed),
            sheddable_sessions: self.sheddable.lock().expect("budget lock").len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for a detached outbox: frames of `bytes` each, with their stamps.
    struct Frames {
        budget: Arc<MemoryBudget>,
        stamps: Mutex<std::collections::VecDeque<(u64, usize)>>,
    }

    impl Frames {
        fn push(&self, bytes: usize) -> u64 {
            self.budget.charge(bytes);
            let stamp = self.budget.stamp();
            self.stamps.lock().unwrap().push_back((stamp, bytes));
            stamp
        }
    }

    impl Shed for Frames {
        fn oldest_stamp(&self) -> Option<u64> {
            self.stamps.lock().unwrap().front().map(|f| f.0)
        }
        fn shed_oldest(&self) -> bool {
            let oldest = self.stamps.lock().unwrap().pop_front();
            oldest
                .inspect(|(_, bytes)| self.budget.release(*bytes))
                .is_some()
        }
    }

    fn frames(budget: &Arc<MemoryBudget>) -> Arc<Frames> {
        Arc::new(Frames {
            budget: budget.clone(),
            stamps: Mutex::default(),
        })
    }

    #[test]
    fn charges_and_releases_balance() {
        let budget = MemoryBudget::new(100);
        budget.charge(60);
        budget.adjust(60, 80);
        assert_eq!(budget.used(), 80);
        budget.adjust(80, 10);
        budget.release(10);
        assert_eq!(budget.used(), 0);
        assert_eq!(budget.stats().peak_bytes, 80);
    }

    #[test]
    fn the_oldest_frames_of_detached_owners_are_shed_first_across_owners() {
        let budget = MemoryBudget::new(100);
        let (a, b, live) = (frames(&budget), frames(&budget), frames(&budget));
        let a1 = a.push(20);
        let b1 = b.push(20);
        let _live1 = live.push(20);
        let a2 = a.push(20);
        let b2 = b.push(20);
        assert_eq!(budget.used(), 100);
        budget.sheddable("a", Arc::downgrade(&a) as Weak<dyn Shed>);
        budget.sheddable("b", Arc::downgrade(&b) as Weak<dyn Shed>);
        // 30 more: a1 then b1 go (40 freed), oldest first across owners; the live owner keeps
        // its frame although it is older than a2 and b2.
        live.push(30);
        assert!(budget.used() <= 100, "{budget:?}");
        assert_eq!(a.oldest_stamp(), Some(a2));
        assert_eq!(b.oldest_stamp(), Some(b2));
        assert!(a1 < b1 && b1 < a2);
        assert_eq!(live.stamps.lock().unwrap().len(), 2);
        assert_eq!(budget.stats().frames_shed_total, 2);
        assert_eq!(budget.stats().over_total, 0);
    }

    #[test]
    fn what_cannot_be_shed_is_kept_and_the_budget_says_it_is_full() {
        let budget = MemoryBudget::new(50);
        let live = frames(&budget);
        live.push(40);
        assert!(!budget.is_full());
        live.push(40);
        assert_eq!(budget.used(), 80, "nothing accepted is dropped");
        assert!(budget.is_full());
        assert_eq!(budget.stats().over_total, 1);
        budget.sheddable("live", Arc::downgrade(&live) as Weak<dyn Shed>);
        budget.not_sheddable("live");
        live.push(1);
        assert_eq!(live.stamps.lock().unwrap().len(), 3);
        while live.shed_oldest() {}
        assert_eq!(budget.used(), 0);
    }
}
