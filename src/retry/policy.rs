//! The retry policy's arithmetic: how many attempts a call gets, and how long it backs off
//! after an error that named no time.
//!
//! Why apart from the loop (`handle`): it is pure (the generator is passed in), so it is
//! tested on its own and the loop only decides when to apply it.

use std::time::Duration;

use crate::config::RetrySettings;
use crate::rt::Rng;

/// How many attempts, and how long to back off without a retry-after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub attempts_max: u32,
    /// The first backoff pause.
    pub backoff_base: Duration,
    /// The longest backoff pause.
    pub backoff_max: Duration,
}

impl RetryPolicy {
    /// The pause after failed attempt number `attempt` (1-based) when the provider named no
    /// time: `base * 2^(attempt-1)` capped at `max`, then "equal jitter": half of it fixed,
    /// half drawn uniformly, so synchronized callers spread out.
    pub fn backoff(&self, attempt: u32, rng: &mut Rng) -> Duration {
        assert!(attempt >= 1, "attempts are 1-based");
        let exponent = (attempt - 1).min(20);
        let full_ms = (self.backoff_base.as_millis() as u64)
            .saturating_mul(1u64 << exponent)
            .min(self.backoff_max.as_millis() as u64)
            .max(1);
        let half_ms = full_ms / 2;
        let pause = Duration::from_millis(full_ms - half_ms + rng.below(half_ms + 1));
        assert!(pause <= self.backoff_max.max(Duration::from_millis(1)));
        pause
    }
}

/// Where the jitter of a backoff is drawn. Why a trait: the draw must come from the daemon's
/// one seeded generator (the one ids come from too), so a simulation seed replays the same
/// pauses; the daemon's shared state implements it, and the retry loop never sees the rest
/// of that state.
pub trait Jitter: Send + Sync + 'static {
    /// [`RetryPolicy::backoff`] for `attempt`, drawn from the daemon's generator.
    fn backoff(&self, policy: &RetryPolicy, attempt: u32) -> Duration;
}

impl From<&RetrySettings> for RetryPolicy {
    fn from(settings: &RetrySettings) -> RetryPolicy {
        RetryPolicy {
            attempts_max: settings.attempts_max,
            backoff_base: Duration::from_millis(settings.backoff_base_ms),
            backoff_max: Duration::from_millis(settings.backoff_max_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let policy = RetryPolicy {
            attempts_max: 5,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(4),
        };
        let mut rng = Rng::from_seed([3; 32]);
        for attempt in 1..=8u32 {
            let full = (500u64 << (attempt - 1)).min(4000);
            for _ in 0..50 {
                let pause = policy.backoff(attempt, &mut rng).as_millis() as u64;
                assert!(
                    pause >= full - full / 2 && pause <= full,
                    "attempt {attempt}: {pause}"
                );
            }
        }
    }
}
