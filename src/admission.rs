//! Admission: where permits are taken, held and given back.
//!
//! A call holds up to three permits: its session's, the global one, and its provider's,
//! always taken in that one fixed order (so two calls can never each hold what the other waits
//! for). Each permit is an owned value moved into the call's task and dropped exactly once
//! when the task ends, by whatever path: success, error, timeout, cancel or panic. Nothing
//! else ever releases a permit; there is no "recovery" (DESIGN.md section 9.2).
//!
//! Waiting is bounded twice: by queue length (a full queue refuses at once) and by time (the
//! queue timeout, itself inside the call's deadline). Both end the call with `OVER_CAPACITY`
//! and a `retry_after_secs` estimate.
//!
//! Health compares two independent counts per limit: permits in use as the semaphore sees
//! them, and live [`Permit`] values (holders). They differ only if a permit was released twice
//! or leaked, which is a bug to report, never to repair.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use crate::error::{CallError, ErrorCode};
use crate::rt::{Instant, Rt};

/// Upper bound of a `retry_after_secs` estimate: past an hour the estimate means nothing.
const RETRY_AFTER_SECS_MAX: u64 = 3600;

/// One concurrency limit: global, one provider's, or one session's.
pub struct Limit {
    /// Name in errors, health and metrics: `global`, `provider:kimi`, `session`.
    name: String,
    /// How many permits exist.
    permits_max: u32,
    /// The permits. Only [`Permit`] drops give them back.
    semaphore: Arc<Semaphore>,
    /// Live [`Permit`] values: counted on their own, to check the semaphore against.
    holders: AtomicU32,
    /// Calls waiting on this limit now.
    waiters: AtomicU32,
    /// How many calls may wait at once; the next one is refused at once.
    waiters_max: u32,
    /// Moving average of how long a permit is held, in ms: feeds `retry_after_secs`.
    hold_ms_avg: AtomicU64,
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
            semaphore: Arc::new(Semaphore::new(permits_max as usize)),
            holders: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            waiters_max,
            hold_ms_avg: AtomicU64::new(1000),
            refused_total: AtomicU64::new(0),
        })
    }

    /// The limit's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Permits in use as the semaphore sees them.
    pub fn permits_in_use(&self) -> u32 {
        let available = self.semaphore.available_permits() as u64;
        (self.permits_max as u64).saturating_sub(available) as u32
    }

    /// Live permit holders as counted by the permits themselves.
    pub fn holders(&self) -> u32 {
        self.holders.load(Ordering::SeqCst)
    }

    /// Calls waiting now.
    pub fn waiters(&self) -> u32 {
        self.waiters.load(Ordering::SeqCst)
    }

    /// The number of permits.
    pub fn permits_max(&self) -> u32 {
        self.permits_max
    }

    /// A snapshot for health output.
    pub fn snapshot(&self) -> LimitSnapshot {
        // Read holders first: a permit is counted as a holder only after the semaphore handed
        // it out and stops being one before it goes back, so `in_use >= holders` at any
        // instant, and equality is the healthy state once no acquire is mid-flight.
        let holders = self.holders();
        let available = self.semaphore.available_permits() as u64;
        let permits_in_use = (self.permits_max as u64).saturating_sub(available) as u32;
        LimitSnapshot {
            name: self.name.clone(),
            permits_max: self.permits_max,
            permits_in_use,
            holders,
            waiters: self.waiters(),
            over_released: available > self.permits_max as u64,
            refused_total: self.refused_total.load(Ordering::Relaxed),
        }
    }

    /// How long a refused caller should wait before trying again: the average hold time
    /// times the queue ahead of it, spread over the permits.
    fn retry_after_secs(&self) -> u64 {
        let hold_ms = self.hold_ms_avg.load(Ordering::Relaxed);
        let ahead = self.waiters() as u64 + 1;
        let wait_ms = hold_ms.saturating_mul(ahead) / self.permits_max as u64;
        wait_ms.div_ceil(1000).clamp(1, RETRY_AFTER_SECS_MAX)
    }

    fn refuse(&self, why: &str) -> CallError {
        self.refused_total.fetch_add(1, Ordering::Relaxed);
        let retry_after_secs = self.retry_after_secs();
        CallError::new(
            ErrorCode::OverCapacity,
            format!(
                "limit {} is full ({} of {} permits in use, {} waiting): {why}; retry in about {retry_after_secs} s",
                self.name,
                self.permits_in_use(),
                self.permits_max,
                self.waiters()
            ),
        )
        .with_retry_after_secs(retry_after_secs)
        .with_details(serde_json::json!({
            "limit": self.name,
            "permits_max": self.permits_max,
            "waiters_max": self.waiters_max,
        }))
    }
}

/// One limit's numbers at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitSnapshot {
    /// The limit's name.
    pub name: String,
    /// Permits that exist.
    pub permits_max: u32,
    /// Permits the semaphore counts as taken.
    pub permits_in_use: u32,
    /// Live permit values.
    pub holders: u32,
    /// Calls waiting.
    pub waiters: u32,
    /// True if the semaphore holds more permits than exist: a double release.
    pub over_released: bool,
    /// Calls refused so far.
    pub refused_total: u64,
}

impl LimitSnapshot {
    /// `permits_in_use - holders`: 0 when healthy. Positive: a leak or an acquire in flight;
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
    /// The semaphore's own permit: released when this struct's fields drop, right after
    /// `Drop::drop` has uncounted the holder.
    _inner: OwnedSemaphorePermit,
}

impl Permit {
    fn new(limit: Arc<Limit>, inner: OwnedSemaphorePermit, rt: &Rt) -> Permit {
        let holders = limit.holders.fetch_add(1, Ordering::SeqCst) + 1;
        assert!(
            holders <= limit.permits_max,
            "limit {}: {holders} holders of {} permits",
            limit.name,
            limit.permits_max
        );
        Permit {
            taken_at: rt.now(),
            rt: rt.clone(),
            limit,
            _inner: inner,
        }
    }

    /// The limit this permit belongs to.
    pub fn limit(&self) -> &Limit {
        &self.limit
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let held_ms = self.rt.now().saturating_since(self.taken_at).as_millis() as u64;
        // Exponential moving average with weight 1/8: cheap and smooth enough for a hint.
        let previous = self.limit.hold_ms_avg.load(Ordering::Relaxed);
        let next = (previous * 7 + held_ms) / 8;
        self.limit.hold_ms_avg.store(next, Ordering::Relaxed);
        let before = self.limit.holders.fetch_sub(1, Ordering::SeqCst);
        assert!(
            before > 0,
            "limit {}: holder count underflow",
            self.limit.name
        );
    }
}

/// Counts a waiter for as long as it lives, so an abandoned wait (deadline, cancel) uncounts
/// itself.
struct WaiterGuard<'a> {
    limit: &'a Limit,
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.limit.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Take one permit of `limit`, waiting at most until `give_up_at`. `on_wait` is told when the
/// call starts waiting (for progress frames).
pub async fn acquire(
    rt: &Rt,
    limit: &Arc<Limit>,
    give_up_at: Instant,
    on_wait: &(dyn Fn(&Arc<Limit>) + Send + Sync),
) -> Result<Permit, CallError> {
    match limit.semaphore.clone().try_acquire_owned() {
        Ok(inner) => return Ok(Permit::new(limit.clone(), inner, rt)),
        Err(TryAcquireError::Closed) => {
            return Err(CallError::new(
                ErrorCode::ServiceUnavailable,
                format!(
                    "limit {} is closed: the daemon is shutting down",
                    limit.name
                ),
            ));
        }
        Err(TryAcquireError::NoPermits) => {}
    }
    // Full: join the queue if it has room, else refuse at once.
    let waiters_before = limit.waiters.fetch_add(1, Ordering::SeqCst);
    let _guard = WaiterGuard { limit };
    if waiters_before >= limit.waiters_max {
        return Err(limit.refuse(&format!(
            "its queue is full ({} waiting)",
            limit.waiters_max
        )));
    }
    on_wait(limit);
    let acquire = limit.semaphore.clone().acquire_owned();
    let give_up = rt.sleep_until(give_up_at);
    tokio::select! {
        biased;
        acquired = acquire => match acquired {
            Ok(inner) => Ok(Permit::new(limit.clone(), inner, rt)),
            Err(_) => Err(CallError::new(
                ErrorCode::ServiceUnavailable,
                format!("limit {} is closed: the daemon is shutting down", limit.name),
            )),
        },
        () = give_up => Err(limit.refuse("waited the whole queue timeout")),
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
    on_wait: &(dyn Fn(&Arc<Limit>) + Send + Sync),
) -> Result<Permits, CallError> {
    let mut held = Vec::with_capacity(limits.len());
    for limit in limits {
        held.push(acquire(rt, limit, give_up_at, on_wait).await?);
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
        assert_eq!(limit.retry_after_secs(), 1);
    }
}
