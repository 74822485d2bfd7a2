//! The retry policy and provider cooldowns: how a call treats a provider that says "not now".
//!
//! Why here, in the core: the seed incident's trigger was a provider answering 429 while a tool
//! waited 300 s. The policy is runtime-agnostic so the simulator exercises exactly the code
//! production runs:
//! - a 429 with retry-after is honored exactly, and puts the provider in cooldown for every
//!   call, so a storm is not multiplied by the number of waiting calls;
//! - other retryable errors back off exponentially with jitter from the seeded generator;
//! - a pause that would not fit in what is left of the call's deadline ends the call now
//!   (`RATE_LIMITED` with `retry_after_secs`), instead of sleeping into a timeout;
//! - attempts are bounded.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::config::RetrySettings;
use crate::rt::{Instant, Rng};

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

impl From<&RetrySettings> for RetryPolicy {
    fn from(settings: &RetrySettings) -> RetryPolicy {
        RetryPolicy {
            attempts_max: settings.attempts_max,
            backoff_base: Duration::from_millis(settings.backoff_base_ms),
            backoff_max: Duration::from_millis(settings.backoff_max_ms),
        }
    }
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

/// When a provider may be called again, shared by every call to it.
#[derive(Debug, Default)]
pub struct Cooldown {
    /// Nanoseconds since the runtime's epoch before which no attempt may start; 0 = none.
    until_nanos: AtomicU64,
}

impl Cooldown {
    /// No attempt before `until`. Only ever extends: a shorter retry-after from a later answer
    /// does not cut short what an earlier one asked.
    pub fn extend(&self, until: Instant) {
        let nanos = until.since_epoch().as_nanos() as u64;
        self.until_nanos.fetch_max(nanos, Ordering::SeqCst);
    }

    /// The instant attempts may resume, if it is after `now`.
    pub fn active_until(&self, now: Instant) -> Option<Instant> {
        let nanos = self.until_nanos.load(Ordering::SeqCst);
        let until = Instant::from_epoch(Duration::from_nanos(nanos));
        (until > now).then_some(until)
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

    #[test]
    fn cooldown_only_extends() {
        let cooldown = Cooldown::default();
        let t = |ms| Instant::from_epoch(Duration::from_millis(ms));
        assert_eq!(cooldown.active_until(t(0)), None);
        cooldown.extend(t(500));
        cooldown.extend(t(200));
        assert_eq!(cooldown.active_until(t(100)), Some(t(500)));
        assert_eq!(cooldown.active_until(t(500)), None);
    }
}
