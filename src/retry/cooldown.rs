//! Provider cooldowns: when a provider that answered 429 with a retry-after may be called
//! again, shared by every call to it.
//!
//! Why shared: if each call only honored its own 429, a storm would be multiplied by the
//! number of calls waiting on the provider; one instant per provider makes every call wait
//! for what the provider asked.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::rt::Instant;

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
