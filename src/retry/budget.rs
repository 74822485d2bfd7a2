//! Rate budgets: the requests and tokens per minute a provider allows, kept by exaid before
//! the provider sees a request, so a busy minute waits here instead of coming back as 429s.
//!
//! Why a sliding window of what was sent: providers count requests and tokens over the last
//! minute, per account. Keeping the same window on the seam's clock lets the daemon know, for
//! each request, whether it fits now or when it will; the retry loop then waits (never past
//! the deadline) or ends the call with `OVER_CAPACITY` naming the budget. A token estimate is
//! replaced by the usage the provider reports once the answer is in.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use crate::rt::Instant;

/// The window providers count over.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Most requests the window remembers: bounds memory whatever the budgets.
pub const ENTRIES_MAX: usize = 10_000;

/// One request counted in the window.
#[derive(Debug, Clone, Copy)]
struct Sent {
    /// When it was sent.
    at: Instant,
    /// Its tokens: the estimate, then the reported usage.
    tokens: u64,
    /// Which reservation it is, to correct its tokens.
    id: u64,
}

/// What was sent in the last minute.
#[derive(Debug, Default)]
struct Window {
    /// Oldest first.
    sent: VecDeque<Sent>,
    /// The next reservation's id.
    next_id: u64,
}

/// Which budget a request does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spent {
    /// Requests per minute.
    Requests,
    /// Tokens per minute.
    Tokens,
}

/// One provider's budgets; `0` turns a budget off.
#[derive(Debug, Default)]
pub struct RateBudget {
    /// Requests per minute (`EXAI_<PROVIDER>_RPM`).
    rpm: u32,
    /// Tokens per minute (`EXAI_<PROVIDER>_TPM`).
    tpm: u64,
    /// The window.
    window: Mutex<Window>,
}

impl RateBudget {
    /// Budgets of `rpm` requests and `tpm` tokens a minute (0: no such budget).
    pub fn new(rpm: u32, tpm: u64) -> RateBudget {
        RateBudget {
            rpm,
            tpm,
            window: Mutex::new(Window::default()),
        }
    }

    /// Whether any budget is set.
    pub fn is_on(&self) -> bool {
        self.rpm > 0 || self.tpm > 0
    }

    /// The configured budgets, for messages: (requests, tokens) per minute.
    pub fn limits(&self) -> (u32, u64) {
        (self.rpm, self.tpm)
    }

    /// Count a request of `tokens` (estimated) sent at `now`, and return its id; or, when it
    /// does not fit, which budget is spent and the instant it will fit (a request larger than
    /// the whole token budget is let through alone once the window is empty).
    pub fn try_reserve(&self, now: Instant, tokens: u64) -> Result<u64, (Spent, Instant)> {
        let mut window = self.window.lock().expect("budget lock");
        while window
            .sent
            .front()
            .is_some_and(|s| now.saturating_since(s.at) >= WINDOW)
        {
            window.sent.pop_front();
        }
        let full = window.sent.len() >= ENTRIES_MAX
            || (self.rpm > 0 && window.sent.len() >= self.rpm as usize);
        if full {
            let oldest = window.sent.front().expect("a full window is not empty");
            return Err((Spent::Requests, oldest.at + WINDOW));
        }
        if self.tpm > 0 && !window.sent.is_empty() {
            let used: u64 = window.sent.iter().map(|s| s.tokens).sum();
            if used.saturating_add(tokens) > self.tpm {
                // It fits once enough of the oldest requests have left the window.
                let mut freed = 0;
                let over = used.saturating_add(tokens) - self.tpm;
                let mut at = now;
                for sent in &window.sent {
                    freed += sent.tokens;
                    at = sent.at + WINDOW;
                    if freed >= over {
                        break;
                    }
                }
                return Err((Spent::Tokens, at));
            }
        }
        let id = window.next_id;
        window.next_id += 1;
        window.sent.push_back(Sent {
            at: now,
            tokens,
            id,
        });
        assert!(window.sent.len() <= ENTRIES_MAX);
        Ok(id)
    }

    /// Replace reservation `id`'s estimate with the tokens the provider reported.
    pub fn correct(&self, id: u64, tokens: u64) {
        let mut window = self.window.lock().expect("budget lock");
        if let Some(sent) = window.sent.iter_mut().find(|s| s.id == id) {
            sent.tokens = tokens;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_epoch(Duration::from_millis(ms))
    }

    #[test]
    fn requests_fit_until_the_minute_is_full_then_when_the_oldest_leaves() {
        let budget = RateBudget::new(2, 0);
        assert!(budget.try_reserve(at(0), 10).is_ok());
        assert!(budget.try_reserve(at(1_000), 10).is_ok());
        assert_eq!(
            budget.try_reserve(at(2_000), 10),
            Err((Spent::Requests, at(60_000)))
        );
        assert!(budget.try_reserve(at(60_000), 10).is_ok(), "the first left");
    }

    #[test]
    fn tokens_fit_by_estimate_then_by_reported_usage() {
        let budget = RateBudget::new(0, 1_000);
        let first = budget.try_reserve(at(0), 800).unwrap();
        assert_eq!(
            budget.try_reserve(at(10), 300),
            Err((Spent::Tokens, at(60_000)))
        );
        budget.correct(first, 100);
        assert!(
            budget.try_reserve(at(20), 300).is_ok(),
            "usage replaced the estimate"
        );
        let alone = RateBudget::new(0, 100);
        assert!(
            alone.try_reserve(at(0), 5_000).is_ok(),
            "a huge request goes alone"
        );
        assert!(!RateBudget::new(0, 0).is_on());
    }
}
