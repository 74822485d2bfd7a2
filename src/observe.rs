//! Observation hooks: what the daemon tells an outside witness as it works.
//!
//! Why: the simulator checks invariants while a run happens (every terminal frame before its
//! deadline plus a bound, outboxes under their caps, retry pauses as the provider asked), and
//! metrics (Prometheus) want the same events. The core calls an [`Observer`] at each event;
//! production passes [`NoObserver`] until metrics land. Observers must be cheap and must
//! never block: they run inline on the daemon's tasks.

use std::time::Duration;

use crate::outbox::OutboxStats;
use crate::protocol::ServerFrame;
use crate::rt::Instant;

/// Why a call paused between provider attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseReason {
    /// The provider said when to come back (429 with retry-after); the pause is exactly that.
    RetryAfter,
    /// Another call's 429 put the provider in cooldown.
    Cooldown,
    /// Backoff with jitter after an error that named no time.
    Backoff,
}

/// Receives the daemon's events. Every method has a no-op default.
pub trait Observer: Send + Sync + 'static {
    /// A call was accepted with this deadline.
    fn call_accepted(
        &self,
        _session: &str,
        _request_id: &str,
        _tool: &str,
        _at: Instant,
        _deadline: Instant,
    ) {
    }

    /// A frame was stamped with `seq` and stored in a session's outbox.
    fn frame_pushed(
        &self,
        _session: &str,
        _seq: u64,
        _frame: &ServerFrame,
        _at: Instant,
        _outbox: OutboxStats,
    ) {
    }

    /// A provider attempt is about to start.
    fn provider_attempt(&self, _provider: &str, _request_id: &str, _attempt: u32, _at: Instant) {}

    /// A call pauses before its next attempt.
    fn provider_pause(
        &self,
        _provider: &str,
        _request_id: &str,
        _pause: Duration,
        _reason: PauseReason,
        _at: Instant,
    ) {
    }

    /// A provider attempt ended after `elapsed`; `outcome` is `ok`, `rate_limited`, `quota` or
    /// `error`.
    fn provider_attempt_ended(
        &self,
        _session: &str,
        _provider: &str,
        _request_id: &str,
        _elapsed: Duration,
        _outcome: &'static str,
    ) {
    }

    /// A call waited `waited` for a permit of `limit` and got it.
    fn admission_waited(&self, _limit: &str, _waited: Duration) {}

    /// An answer of `provider`'s `model` reported what it cost.
    fn tokens_used(&self, _provider: &str, _model: &str, _usage: crate::provider::Usage) {}

    /// An answer of `provider`'s `model` cost `usd` by the configured prices.
    fn cost_incurred(&self, _provider: &str, _model: &str, _usd: f64) {}

    /// A client resumed `session`; `frames_replayed` frames were sent again.
    fn session_resumed(&self, _session: &str, _frames_replayed: u64) {}

    /// Frames fell out of a session's outbox before delivery (announced as a gap).
    fn gap_announced(&self, _session: &str, _frames_lost: u64) {}

    /// Unacked frames were evicted from an outbox by a cap or the TTL.
    fn frames_evicted(&self, _session: &str, _frames: u64) {}

    /// A frame of call `request_id` of a kept session went out without its record: the
    /// state file kept failing past `EXAI_STATE_HOLD_SECS`, or its queue was full. A crash now
    /// may end the call again (`INTERRUPTED`) after its result.
    fn frame_not_kept(&self, _session: &str, _request_id: &str) {}

    /// A session expired with no client attached; `calls_stopped` calls were cancelled.
    fn session_expired(&self, _session: &str, _calls_stopped: usize, _at: Instant) {}

    /// A call gave up on a provider error because waiting would not fit in its deadline.
    fn gave_up_before_deadline(
        &self,
        _provider: &str,
        _request_id: &str,
        _wait: Duration,
        _at: Instant,
    ) {
    }
}

/// The observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObserver;

impl Observer for NoObserver {}
