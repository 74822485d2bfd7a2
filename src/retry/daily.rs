//! The daily token budget: how many tokens a provider may use in one UTC day
//! (`EXAI_KIMI_TOKENS_PER_DAY`, ...), and what it used today, for `/status`.
//!
//! Why a day and why here: a per-minute budget keeps the provider from answering 429, but
//! spending is what an account owner caps, and providers bill by the token. A call that would
//! pass the day's budget is refused before the provider sees it, naming the budget and when
//! it resets (UTC midnight), and an `auto` call moves to another provider instead.
//!
//! The day is read from the seam's wall clock (`Rt::unix_time_ms`), so the simulator decides
//! when midnight comes. Tokens in flight are reserved by their estimate, so calls running at
//! once cannot all slip past the budget; the reported usage replaces the estimate when the
//! answer is in (a failed attempt costs nothing).

use std::sync::{Arc, Mutex};

use serde::Serialize;

/// Milliseconds in a UTC day (no leap seconds: Unix time has none).
pub const DAY_MS: u64 = 86_400_000;

/// One day's books.
#[derive(Debug, Default, Clone, Copy)]
struct Books {
    /// Days since the Unix epoch, UTC, that these books are for.
    day: u64,
    /// Tokens the provider reported (or, without a report, the estimate) for answers today.
    tokens_used: u64,
    /// Estimates of the requests in flight now.
    tokens_reserved: u64,
    /// Answers counted today.
    requests: u64,
}

impl Books {
    /// The books for `day`: a new day starts from zero, keeping what is in flight.
    fn roll_to(&mut self, day: u64) {
        if day > self.day {
            *self = Books {
                day,
                tokens_reserved: self.tokens_reserved,
                ..Books::default()
            };
        }
    }
}

/// A request's share of the day, held while it is in flight. Dropping it gives the share
/// back (the attempt failed, or the call was cancelled or timed out mid-attempt: nothing is
/// used); [`Reservation::settle`] turns it into what the answer used.
#[derive(Debug)]
pub struct Reservation {
    /// The books it belongs to.
    budget: Arc<DailyBudget>,
    /// Its estimated tokens.
    tokens: u64,
}

impl Reservation {
    /// The answer is in, having used `tokens` (the report, or the estimate without one).
    pub fn settle(self, unix_ms: u64, tokens: u64) {
        self.budget.count(unix_ms, tokens);
        // Drop gives back the estimate.
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut books = self.budget.books.lock().expect("daily budget lock");
        assert!(
            books.tokens_reserved >= self.tokens,
            "a reservation is given back once"
        );
        books.tokens_reserved -= self.tokens;
    }
}

/// Why a request does not fit today.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaySpent {
    /// The budget (`EXAI_<PROVIDER>_TOKENS_PER_DAY`).
    pub tokens_per_day: u64,
    /// Used and reserved so far today.
    pub tokens_used: u64,
    /// What the request needs, estimated.
    pub tokens_needed: u64,
    /// When the budget resets: the next UTC midnight, in Unix milliseconds.
    pub resets_at_unix_ms: u64,
}

/// Today's usage of one provider, as `/status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Today {
    /// The UTC date, `YYYY-MM-DD`.
    pub date: String,
    /// Tokens used by answers today.
    pub tokens_used: u64,
    /// Tokens reserved by requests in flight.
    pub tokens_in_flight: u64,
    /// Answers counted today.
    pub requests: u64,
    /// The budget, when one is set.
    pub tokens_per_day: Option<u64>,
    /// When today's count resets (the next UTC midnight), RFC 3339.
    pub resets_at: String,
}

/// One provider's daily books; shared by all its keys, since the budget caps the provider.
#[derive(Debug, Default)]
pub struct DailyBudget {
    /// Tokens a day; 0: no budget (usage is still counted for `/status`).
    tokens_per_day: u64,
    /// Today's books.
    books: Mutex<Books>,
}

impl DailyBudget {
    /// A budget of `tokens_per_day` (0: none).
    pub fn new(tokens_per_day: u64) -> DailyBudget {
        DailyBudget {
            tokens_per_day,
            books: Mutex::new(Books::default()),
        }
    }

    /// Whether a budget is set.
    pub fn is_on(&self) -> bool {
        self.tokens_per_day > 0
    }

    /// The budget, in tokens a day.
    pub fn tokens_per_day(&self) -> u64 {
        self.tokens_per_day
    }

    fn books(&self, unix_ms: u64) -> std::sync::MutexGuard<'_, Books> {
        let mut books = self.books.lock().expect("daily budget lock");
        books.roll_to(unix_ms / DAY_MS);
        books
    }

    /// Reserve `tokens` (an estimate) for a request sent at `unix_ms`, or say why it does not
    /// fit. The first request of a day always fits, however large, so a budget smaller than
    /// one request still lets one through a day rather than none.
    pub fn reserve(self: &Arc<Self>, unix_ms: u64, tokens: u64) -> Result<Reservation, DaySpent> {
        assert!(self.is_on(), "only a budget reserves");
        let mut books = self.books(unix_ms);
        let committed = books.tokens_used + books.tokens_reserved;
        if committed > 0 && committed.saturating_add(tokens) > self.tokens_per_day {
            return Err(DaySpent {
                tokens_per_day: self.tokens_per_day,
                tokens_used: committed,
                tokens_needed: tokens,
                resets_at_unix_ms: (books.day + 1) * DAY_MS,
            });
        }
        books.tokens_reserved += tokens;
        Ok(Reservation {
            budget: self.clone(),
            tokens,
        })
    }

    /// Count an answer of `tokens` at `unix_ms` (with or without a budget: `/status` shows
    /// today's usage either way).
    pub fn count(&self, unix_ms: u64, tokens: u64) {
        let mut books = self.books(unix_ms);
        books.tokens_used = books.tokens_used.saturating_add(tokens);
        books.requests += 1;
    }

    /// Today's usage at `unix_ms`.
    pub fn today(&self, unix_ms: u64) -> Today {
        let books = *self.books(unix_ms);
        Today {
            date: utc_date(books.day),
            tokens_used: books.tokens_used,
            tokens_in_flight: books.tokens_reserved,
            requests: books.requests,
            tokens_per_day: self.is_on().then_some(self.tokens_per_day),
            resets_at: utc_midnight(books.day + 1),
        }
    }
}

/// `YYYY-MM-DD` of a day counted from the Unix epoch (the civil-from-days algorithm of the
/// proleptic Gregorian calendar, as in Howard Hinnant's "chrono-compatible low-level date
/// algorithms").
pub fn utc_date(days: u64) -> String {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// RFC 3339 of the midnight that starts `days` (UTC).
pub fn utc_midnight(days: u64) -> String {
    format!("{}T00:00:00Z", utc_date(days))
}

/// RFC 3339 (UTC, to the millisecond) of an instant of the wall clock, in ms since the Unix
/// epoch: how a report states when something happened (an MCP task's `createdAt`).
pub fn utc_timestamp(unix_ms: u64) -> String {
    let (days, ms_of_day) = (unix_ms / DAY_MS, unix_ms % DAY_MS);
    let secs = ms_of_day / 1_000;
    format!(
        "{}T{:02}:{:02}:{:02}.{:03}Z",
        utc_date(days),
        secs / 3_600,
        secs / 60 % 60,
        secs % 60,
        ms_of_day % 1_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-02T10:00:00Z.
    const MORNING_MS: u64 = 1_796_205_600_000;

    #[test]
    fn dates_are_the_calendar_s() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(MORNING_MS / DAY_MS), "2026-12-02");
        assert_eq!(utc_date(11_016), "2000-02-29", "a leap day");
        assert_eq!(
            utc_midnight(MORNING_MS / DAY_MS + 1),
            "2026-12-03T00:00:00Z"
        );
        assert_eq!(
            utc_timestamp(MORNING_MS + 3_723_045),
            "2026-12-02T11:02:03.045Z"
        );
    }

    #[test]
    fn a_day_s_budget_counts_reservations_then_usage_and_resets_at_midnight() {
        let budget = Arc::new(DailyBudget::new(1_000));
        let first = budget
            .reserve(MORNING_MS, 5_000)
            .expect("the first always fits");
        let spent = budget.reserve(MORNING_MS, 10).unwrap_err();
        assert_eq!(spent.tokens_used, 5_000, "in flight counts");
        assert_eq!(spent.resets_at_unix_ms, (MORNING_MS / DAY_MS + 1) * DAY_MS);
        // The answer reports less than estimated: the rest of the day is free again.
        first.settle(MORNING_MS, 600);
        let second = budget.reserve(MORNING_MS, 300).unwrap();
        assert!(budget.reserve(MORNING_MS, 300).is_err(), "600 + 300 + 300");
        drop(second);
        let today = budget.today(MORNING_MS);
        assert_eq!(
            (today.tokens_used, today.requests, today.tokens_in_flight),
            (600, 1, 0)
        );
        assert_eq!(today.tokens_per_day, Some(1_000));
        // Midnight: a new day, from zero.
        let tomorrow = MORNING_MS + DAY_MS;
        assert!(budget.reserve(tomorrow, 900).is_ok());
        assert_eq!(budget.today(tomorrow).date, "2026-12-03");
    }

    #[test]
    fn without_a_budget_usage_is_still_counted() {
        let books = DailyBudget::new(0);
        assert!(!books.is_on());
        books.count(MORNING_MS, 42);
        let today = books.today(MORNING_MS);
        assert_eq!((today.tokens_used, today.tokens_per_day), (42, None));
    }
}
