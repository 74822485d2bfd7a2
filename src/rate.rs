//! A token bucket: how many frames a session may send, on average and at once.
//!
//! Why generous defaults: the original's per-session and per-IP message buckets refused 50 to
//! 88% of legitimate calls (DESIGN.md section 9.11). This bucket exists to stop floods, not to
//! shape normal traffic: 500 frames/s with a burst of 1000 is far above what an editor sends.

use std::time::Duration;

use crate::rt::Instant;

/// A token bucket measured in thousandths of a frame, so refills need no floating point.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Tokens now, in thousandths.
    tokens_milli: u64,
    /// When tokens were last added.
    refilled_at: Instant,
    /// Frames per second, on average.
    rate_per_sec: u64,
    /// Most tokens the bucket holds, in thousandths.
    capacity_milli: u64,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate_per_sec: u32, burst: u32, now: Instant) -> TokenBucket {
        assert!(
            rate_per_sec > 0 && burst > 0,
            "a bucket needs a rate and a size"
        );
        let capacity_milli = burst as u64 * 1000;
        TokenBucket {
            tokens_milli: capacity_milli,
            refilled_at: now,
            rate_per_sec: rate_per_sec as u64,
            capacity_milli,
        }
    }

    /// Take one token; `Err` says how long until one is there.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed_micros = now.saturating_since(self.refilled_at).as_micros() as u64;
        // rate tokens/s = rate * 1000 milli-tokens per 1_000_000 µs.
        let refill_milli = elapsed_micros.saturating_mul(self.rate_per_sec) / 1000;
        if refill_milli > 0 {
            self.tokens_milli = (self.tokens_milli + refill_milli).min(self.capacity_milli);
            self.refilled_at = now;
        }
        if self.tokens_milli >= 1000 {
            self.tokens_milli -= 1000;
            return Ok(());
        }
        let missing_milli = 1000 - self.tokens_milli;
        Err(Duration::from_micros(
            (missing_milli * 1000).div_ceil(self.rate_per_sec),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let t0 = Instant::EPOCH;
        let mut bucket = TokenBucket::new(10, 3, t0);
        for _ in 0..3 {
            assert!(bucket.take(t0).is_ok());
        }
        let wait = bucket.take(t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        assert!(bucket.take(t0 + Duration::from_millis(100)).is_ok());
        assert!(bucket.take(t0 + Duration::from_millis(150)).is_err());
        // Idle for long: refills only up to the burst.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(bucket.take(later).is_ok());
        }
        assert!(bucket.take(later).is_err());
    }
}
