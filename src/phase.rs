//! What a call is doing now: the one sentence its progress frames and its timeout error quote.
//!
//! Why a module of its own: the call task (`call`) reads the phase on every progress tick and
//! when the deadline wins, while the provider attempts (`retry`) and admission write it. Kept
//! below both, it lets each see the phase without importing the other.

use std::sync::{Arc, Mutex};

use crate::admission;
use crate::observe::PauseReason;
use crate::rt::Instant;

/// What a call is doing now, for progress frames.
#[derive(Clone)]
pub enum Phase {
    /// Accepted, not yet asking for permits.
    Accepted,
    /// Waiting for a permit of the named limit.
    Queued {
        /// The limit, to quote its live numbers.
        limit: Arc<admission::Limit>,
    },
    /// Running: the sentence says on what.
    Running {
        /// E.g. "waiting on provider kimi (model kimi-k2), attempt 1".
        activity: String,
    },
    /// Pausing between provider attempts.
    Paused {
        /// The provider.
        provider: String,
        /// When the pause ends.
        until: Instant,
        /// Why: the provider's retry-after, its cooldown, or backoff.
        reason: PauseReason,
    },
}

impl Phase {
    /// The phase as a sentence, with live numbers as of `now`.
    pub fn describe(&self, now: Instant) -> String {
        match self {
            Phase::Accepted => "accepted, about to ask for capacity".to_string(),
            Phase::Queued { limit } => {
                let s = limit.snapshot();
                format!(
                    "waiting for capacity: limit {} has {}/{} permits in use, {} waiting",
                    s.name, s.permits_in_use, s.permits_max, s.waiters
                )
            }
            Phase::Running { activity } => activity.clone(),
            Phase::Paused {
                provider,
                until,
                reason,
            } => {
                let left = until.saturating_since(now).as_secs_f64();
                match reason {
                    PauseReason::RetryAfter => format!(
                        "provider {provider} rate-limited the call; pausing {left:.1} s more, as it asked"
                    ),
                    PauseReason::Cooldown => format!(
                        "provider {provider} is cooling down after a rate limit; {left:.1} s more"
                    ),
                    PauseReason::Backoff => {
                        format!(
                            "provider {provider} failed; backing off {left:.1} s before retrying"
                        )
                    }
                }
            }
        }
    }
}

/// Shared between the call's work and its progress ticker.
pub struct PhaseCell {
    /// The current phase.
    phase: Mutex<Phase>,
}

impl PhaseCell {
    /// A cell for a call just accepted.
    pub fn new() -> PhaseCell {
        PhaseCell {
            phase: Mutex::new(Phase::Accepted),
        }
    }

    /// Set the phase.
    pub fn set(&self, phase: Phase) {
        *self.phase.lock().expect("phase lock") = phase;
    }

    /// The phase now.
    pub fn get(&self) -> Phase {
        self.phase.lock().expect("phase lock").clone()
    }
}

impl Default for PhaseCell {
    fn default() -> Self {
        Self::new()
    }
}
