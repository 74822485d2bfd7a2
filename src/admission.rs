//! Admission: where permits are taken, held and given back.
//!
//! A call holds up to three permits: its session's, its provider's, and the global one,
//! always taken in that one fixed order (so two calls can never each hold what the other waits
//! for). Each permit is an owned value moved into the call's task and dropped exactly once
//! when the task ends, by whatever path: success, error, timeout, cancel or panic. Nothing
//! else ever releases a permit; there is no "recovery" (DESIGN.md section 9.2).
//!
//! Waiting is bounded three times: by queue length (a full queue refuses at once), by time
//! (the queue timeout, itself inside the call's deadline), and by foresight: a call whose
//! estimated wait (its place in the queue times the measured hold time, spread over the
//! permits) cannot end before it would give up is refused at once instead of waiting the
//! whole timeout for nothing. All three end the call with `OVER_CAPACITY` and a
//! `retry_after_secs` from the same estimate.
//!
//! Health compares two independent counts per limit: permits in use as the semaphore sees
//! them, and live [`Permit`] values (holders). They differ only if a permit was released twice
//! or leaked, which is a bug to report, never to repair.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::oneshot;

use crate::config::LimitSettings;
use crate::error::{CallError, ErrorCode};
use crate::rt::{Instant, Rt};

/// Upper bound of a `retry_after_secs` estimate: past an hour the estimate means nothing.
const RETRY_AFTER_SECS_MAX: u64 = 3600;

/// A permit on its way from a releasing call to the first waiter: it exists (and is counted)
/// from the instant it leaves one holder until the waiter takes it or gives it back.
struct Grant;

/// A limit's books, all under one lock so that every snapshot is exact.
struct Books {
    /// Permits free to take.
    available: u32,
    /// Live [`Permit`] values.
    permits_live: u32,
    /// Grants sent to a waiter that has not picked them up yet.
    grants_in_transit: u32,
    /// Waiters in arrival order (FIFO: no waiter starves behind later arrivals).
    queue: VecDeque<oneshot::Sender<Grant>>,
    /// Set at shutdown: nobody new gets a permit.
    closed: bool,
}

impl Books {
    /// Waiters still waiting (a waiter that gave up leaves a closed sender until pruned).
    fn waiters(&self) -> u32 {
        self.queue.iter().filter(|tx| !tx.is_closed()).count() as u32
    }
}

/// One concurrency limit: global, one provider's, or one session's.
///
/// Why our own and not tokio's `Semaphore`: tokio hands a released permit to the next waiter
/// before that waiter runs, and nothing outside can see the permit in between, so "permits in
/// use" and "live holders" would disagree for a moment at every handoff. A health check landing
/// in that moment reported a leak (found by the simulator: rate-limit-storm seed 15). Here a
/// permit in transit is a counted [`Grant`], and the books balance at every instant.
pub struct Limit {
    /// Name in errors, health and metrics: `global`, `provider:kimi`, `session`.
    name: String,
    /// How many permits exist.
    permits_max: u32,
    /// How many calls may wait at once; the next one is refused at once.
    waiters_max: u32,
    /// The books.
    books: Mutex<Books>,
    /// Moving average of how long a permit is held, in ms: feeds `retry_after_secs` and the
    /// early refusal.
    hold_ms_avg: AtomicU64,
    /// Hold times measured so far: no early refusal until one is, since a guess of the hold
    /// time must never turn a call away.
    hold_samples: AtomicU64,
    /// Total calls refused by this limit (queue full or queue timeout).
    refused_total: AtomicU64,
}

impl Limit {
    /// A limit of `permits_max` permits with room for `waiters_max` waiters.
    pub fn new(name: impl Into<String>, permits_max: u32, waiters_max: u32) -> Arc<Limit> {
        assert!(permits_max > 0, "a limit needs at least one permit");
        Arc::new(Limit {
            name: name.into(),
            permits_max,
            waiters_max,
            books: Mutex::new(Books {
                available: permits_max,
                permits_live: 0,
                grants_in_transit: 0,
                queue: VecDeque::new(),
                closed: false,
            }),
            hold_ms_avg: AtomicU64::new(1000),
            hold_samples: AtomicU64::new(0),
            refused_total: AtomicU64::new(0),
        })
    }

    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        self.books.lock().expect("limit books lock")
    }

    /// The limit's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The number of permits.
    pub fn permits_max(&self) -> u32 {
        self.permits_max
    }

    /// Calls waiting now.
    pub fn waiters(&self) -> u32 {
        self.books().waiters()
    }

    /// A snapshot for health output, exact: taken under the books' lock.
    pub fn snapshot(&self) -> LimitSnapshot {
        let books = self.books();
        LimitSnapshot {
            name: self.name.clone(),
            permits_max: self.permits_max,
            permits_in_use: self.permits_max.saturating_sub(books.available),
            holders: books.permits_live + books.grants_in_transit,
            waiters: books.waiters(),
            over_released: books.available > self.permits_max,
            refused_total: self.refused_total.load(Ordering::Relaxed),
        }
    }

    /// Stop handing out permits (shutdown): waiters are refused, holders keep theirs.
    pub fn close(&self) {
        let mut books = self.books();
        books.closed = true;
        books.queue.clear();
    }

    /// A permit comes back: hand it to the first waiter still waiting, else free it.
    fn release(&self, from_live_permit: bool) {
        let mut books = self.books();
        if from_live_permit {
            assert!(
                books.permits_live > 0,
                "limit {}: permit released twice",
                self.name
            );
            books.permits_live -= 1;
        } else {
            assert!(
                books.grants_in_transit > 0,
                "limit {}: grant returned twice",
                self.name
            );
            books.grants_in_transit -= 1;
        }
        while let Some(waiter) = books.queue.pop_front() {
            if waiter.send(Grant).is_ok() {
                books.grants_in_transit += 1;
                return;
            }
        }
        books.available += 1;
        assert!(
            books.available <= self.permits_max,
            "limit {}: more permits free than exist",
            self.name
        );
    }

    /// How long a call behind `waiters` others is expected to wait for a permit: the average
    /// hold time times its place in the queue, spread over the permits.
    fn wait_ms_estimate(&self, waiters: u32) -> u64 {
        let hold_ms = self.hold_ms_avg.load(Ordering::Relaxed);
        hold_ms.saturating_mul(waiters as u64 + 1) / self.permits_max as u64
    }

    /// How long a refused caller should wait before trying again: the same estimate, in
    /// whole seconds.
    fn retry_after_secs(&self, waiters: u32) -> u64 {
        self.wait_ms_estimate(waiters)
            .div_ceil(1000)
            .clamp(1, RETRY_AFTER_SECS_MAX)
    }

    /// Learn one hold time: the first sets the average, later ones move it by 1/8 (cheap,
    /// and smooth enough for an estimate).
    fn learn_hold_ms(&self, held_ms: u64) {
        let previous = self.hold_ms_avg.load(Ordering::Relaxed);
        let average = if self.hold_samples.fetch_add(1, Ordering::Relaxed) == 0 {
            held_ms
        } else {
            (previous.saturating_mul(7).saturating_add(held_ms)) / 8
        };
        self.hold_ms_avg.store(average, Ordering::Relaxed);
    }

    /// Whether a call that would queue behind `waiters` others, with `left_ms` before it
    /// gives up, can be seen now to wait in vain. Only once a hold time was measured.
    fn wait_is_hopeless(&self, waiters: u32, left_ms: u64) -> bool {
        self.hold_samples.load(Ordering::Relaxed) > 0 && self.wait_ms_estimate(waiters) > left_ms
    }

    fn refuse(&self, why: &str, permits_in_use: u32, waiters: u32) -> CallError {
        self.refused_total.fetch_add(1, Ordering::Relaxed);
        let retry_after_secs = self.retry_after_secs(waiters);
        CallError::new(
            ErrorCode::OverCapacity,
            format!(
                "limit {} is full ({permits_in_use} of {} permits in use, {waiters} waiting): {why}; retry in about {retry_after_secs} s",
                self.name, self.permits_max
            ),
        )
        .with_retry_after_secs(retry_after_secs)
        .with_details(serde_json::json!({
            "limit": self.name,
            "permits_max": self.permits_max,
            "waiters_max": self.waiters_max,
        }))
    }

    fn closed_error(&self) -> CallError {
        CallError::new(
            ErrorCode::ServiceUnavailable,
            format!("limit {} is closed: the daemon is shutting down", self.name),
        )
    }
}

/// One limit's numbers at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitSnapshot {
    /// The limit's name.
    pub name: String,
    /// Permits that exist.
    pub permits_max: u32,
    /// Permits not free: `permits_max - available`.
    pub permits_in_use: u32,
    /// Live permit values plus permits in transit to a waiter.
    pub holders: u32,
    /// Calls waiting.
    pub waiters: u32,
    /// True if more permits are free than exist: a double release.
    pub over_released: bool,
    /// Calls refused so far.
    pub refused_total: u64,
}

impl LimitSnapshot {
    /// `permits_in_use - holders`: 0 when healthy, at every instant. Positive: a leak;
    /// negative: a double release.
    pub fn mismatch(&self) -> i64 {
        self.permits_in_use as i64 - self.holders as i64
    }
}

/// An owned permit of one limit. Dropping it is the only way the permit goes back.
pub struct Permit {
    /// The limit it belongs to.
    limit: Arc<Limit>,
    /// When it was taken, to learn hold times.
    taken_at: Instant,
    /// The runtime, to read the clock when the permit goes back.
    rt: Rt,
}

impl Permit {
    /// The limit this permit belongs to.
    pub fn limit(&self) -> &Limit {
        &self.limit
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let held_ms = self.rt.now().saturating_since(self.taken_at).as_millis() as u64;
        self.limit.learn_hold_ms(held_ms);
        self.limit.release(true);
    }
}

/// A waiter's place in the queue. If the wait is abandoned (queue timeout, deadline, cancel:
/// the future is dropped) after a grant was already sent, the guard gives the grant back, so
/// a permit can never be lost in transit.
struct Waiting<'a> {
    /// The limit waited on.
    limit: &'a Limit,
    /// The channel the grant arrives on; `None` once the grant was taken.
    receiver: Option<oneshot::Receiver<Grant>>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let Some(mut receiver) = self.receiver.take() else {
            return;
        };
        receiver.close();
        if receiver.try_recv().is_ok() {
            // A grant arrived as we gave up: pass it on.
            self.limit.release(false);
        } else {
            // Nothing arrived: leave the queue now, so waiter counts stay exact.
            self.limit.books().queue.retain(|tx| !tx.is_closed());
        }
    }
}

/// Told when a call has to wait for a permit, and how long it waited once it got one.
pub struct WaitHooks<'a> {
    /// The call starts waiting on this limit (for progress frames).
    pub on_wait: &'a (dyn Fn(&Arc<Limit>) + Send + Sync),
    /// The call got a permit after waiting this long (for metrics).
    pub on_waited: &'a (dyn Fn(&Limit, Duration) + Send + Sync),
}

/// Take one permit of `limit`, waiting at most until `give_up_at`.
pub async fn acquire(
    rt: &Rt,
    limit: &Arc<Limit>,
    give_up_at: Instant,
    hooks: &WaitHooks<'_>,
) -> Result<Permit, CallError> {
    let receiver = {
        let mut books = limit.books();
        if books.closed {
            return Err(limit.closed_error());
        }
        if books.available > 0 {
            books.available -= 1;
            books.permits_live += 1;
            return Ok(Permit {
                limit: limit.clone(),
                taken_at: rt.now(),
                rt: rt.clone(),
            });
        }
        let waiters = books.waiters();
        if waiters >= limit.waiters_max {
            let in_use = limit.permits_max - books.available;
            drop(books);
            return Err(limit.refuse(
                &format!("its queue is full ({} waiting)", limit.waiters_max),
                in_use,
                waiters,
            ));
        }
        let left_ms = give_up_at.saturating_since(rt.now()).as_millis() as u64;
        if limit.wait_is_hopeless(waiters, left_ms) {
            let in_use = limit.permits_max - books.available;
            drop(books);
            let why = format!(
                "the wait is estimated at {:.1} s ({waiters} ahead, {} ms average hold), \
                 past the {:.1} s this call may wait",
                limit.wait_ms_estimate(waiters) as f64 / 1000.0,
                limit.hold_ms_avg.load(Ordering::Relaxed),
                left_ms as f64 / 1000.0
            );
            return Err(limit.refuse(&why, in_use, waiters));
        }
        let (sender, receiver) = oneshot::channel();
        books.queue.push_back(sender);
        receiver
    };
    let mut waiting = Waiting {
        limit,
        receiver: Some(receiver),
    };
    let waiting_since = rt.now();
    (hooks.on_wait)(limit);
    let give_up = rt.sleep_until(give_up_at);
    let receiver = waiting
        .receiver
        .as_mut()
        .expect("receiver present until taken");
    tokio::select! {
        biased;
        grant = receiver => {
            waiting.receiver = None;
            match grant {
                Ok(Grant) => {
                    let mut books = limit.books();
                    books.grants_in_transit -= 1;
                    books.permits_live += 1;
                    drop(books);
                    (hooks.on_waited)(limit, rt.now().saturating_since(waiting_since));
                    Ok(Permit { limit: limit.clone(), taken_at: rt.now(), rt: rt.clone() })
                }
                Err(_) => Err(limit.closed_error()),
            }
        }
        () = give_up => {
            drop(waiting);
            let snapshot = limit.snapshot();
            Err(limit.refuse("waited the whole queue timeout", snapshot.permits_in_use, snapshot.waiters))
        }
    }
}

/// The permits one call holds, in the order they were taken.
pub struct Permits {
    /// Held permits; dropped together when the call ends.
    held: Vec<Permit>,
}

impl Permits {
    /// Names of the limits held, for traces.
    pub fn limit_names(&self) -> Vec<&str> {
        self.held.iter().map(|p| p.limit().name()).collect()
    }
}

/// Take every permit in `limits` in order. On any refusal, the permits already taken drop
/// here, at once.
pub async fn admit(
    rt: &Rt,
    limits: &[Arc<Limit>],
    give_up_at: Instant,
    hooks: &WaitHooks<'_>,
) -> Result<Permits, CallError> {
    let mut held = Vec::with_capacity(limits.len());
    for limit in limits {
        held.push(acquire(rt, limit, give_up_at, hooks).await?);
    }
    Ok(Permits { held })
}

/// The daemon-wide limits: global and one per provider.
pub struct Admission {
    /// The global limit.
    pub global: Arc<Limit>,
    /// How long a call may wait in queues, at most (also bounded by its deadline).
    pub queue_timeout: Duration,
}

impl Admission {
    /// Global admission from config values.
    pub fn new(global_max: u32, waiters_max: u32, queue_timeout: Duration) -> Admission {
        Admission {
            global: Limit::new("global", global_max, waiters_max),
            queue_timeout,
        }
    }
}

impl From<&LimitSettings> for Admission {
    /// The global limit, its queue and the queue timeout of `config.limits`.
    fn from(limits: &LimitSettings) -> Admission {
        Admission::new(
            limits.global_inflight_max,
            limits.queue_waiters_max,
            Duration::from_millis(limits.queue_timeout_ms),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_counts_match() {
        let limit = Limit::new("t", 3, 2);
        let snapshot = limit.snapshot();
        assert_eq!(snapshot.permits_in_use, 0);
        assert_eq!(snapshot.mismatch(), 0);
        assert!(!snapshot.over_released);
        assert_eq!(limit.retry_after_secs(0), 1);
    }

    #[test]
    fn a_wait_is_hopeless_only_once_a_hold_time_is_measured_and_past_what_is_left() {
        let limit = Limit::new("t", 2, 8);
        assert!(!limit.wait_is_hopeless(100, 0), "a guess never refuses");
        limit.learn_hold_ms(2_000);
        assert_eq!(
            limit.hold_ms_avg.load(Ordering::Relaxed),
            2_000,
            "first sets"
        );
        // Behind 3 others on 2 permits: 2 s x 4 / 2 = 4 s.
        assert_eq!(limit.wait_ms_estimate(3), 4_000);
        assert!(limit.wait_is_hopeless(3, 3_999));
        assert!(!limit.wait_is_hopeless(3, 4_000));
        assert_eq!(
            limit.retry_after_secs(3),
            4,
            "the refusal says the same wait"
        );
        limit.learn_hold_ms(10_000);
        assert_eq!(
            limit.hold_ms_avg.load(Ordering::Relaxed),
            3_000,
            "then by 1/8"
        );
    }

    #[test]
    fn a_release_hands_over_to_the_first_waiter_and_the_books_balance() {
        let limit = Limit::new("t", 1, 4);
        {
            let mut books = limit.books();
            books.available -= 1;
            books.permits_live += 1;
        }
        let (first_tx, mut first_rx) = oneshot::channel();
        let (second_tx, _second_rx) = oneshot::channel();
        limit.books().queue.push_back(first_tx);
        limit.books().queue.push_back(second_tx);
        assert_eq!(limit.waiters(), 2);
        limit.release(true);
        // Handed over: still in use, and counted as a holder while in transit.
        let snapshot = limit.snapshot();
        assert_eq!(
            (snapshot.permits_in_use, snapshot.holders, snapshot.waiters),
            (1, 1, 1)
        );
        assert!(first_rx.try_recv().is_ok());
    }
}
