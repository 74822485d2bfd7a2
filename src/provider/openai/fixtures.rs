//! What the provider's unit tests share: a one-message request, and a runtime that answers
//! only the wall clock (these tests never sleep or spawn).

use std::sync::Arc;
use std::time::Duration;

use crate::provider::{ChatMessage, ChatRequest, ProviderError, RateLimitKind, Role};
use crate::rt::memory::MemoryFs;
use crate::rt::{BoxFuture, FileSystem, Instant, Rt, Runtime};

/// A request of one user message "hi", capped at 64 tokens.
pub fn request(model: &str, temperature: Option<f64>) -> ChatRequest {
    ChatRequest {
        model: model.into(),
        messages: vec![ChatMessage::new(Role::User, "hi")],
        temperature,
        max_tokens: Some(64),
        ..Default::default()
    }
}

/// A runtime whose wall clock reads `unix_time_ms` and that is asked nothing else.
struct WallClockOnly {
    /// What `unix_time_ms` answers.
    unix_time_ms: u64,
}

impl Runtime for WallClockOnly {
    fn now(&self) -> Instant {
        Instant::EPOCH
    }
    fn sleep_until(&self, _: Instant) -> BoxFuture<'static, ()> {
        Box::pin(std::future::pending())
    }
    fn spawn(&self, _: &'static str, _: BoxFuture<'static, ()>) {}
    fn seed(&self) -> [u8; 32] {
        [0; 32]
    }
    fn unix_time_ms(&self) -> u64 {
        self.unix_time_ms
    }
    fn fs(&self) -> Arc<dyn FileSystem> {
        Arc::new(MemoryFs::new())
    }
}

/// The seam over [`WallClockOnly`].
pub fn wall_clock_only(unix_time_ms: u64) -> Rt {
    Rt::new(Arc::new(WallClockOnly { unix_time_ms }))
}

/// 2025-11-06T08:49:37Z, the wall clock of the tests that read HTTP dates.
pub const NOW_MS: u64 = 1_762_418_977_000;

/// The retry-after and kind of a rate-limit error; any other error fails the test.
pub fn rate_limited(error: &ProviderError) -> (Option<Duration>, RateLimitKind) {
    match error {
        ProviderError::RateLimited { retry_after, kind } => (*retry_after, *kind),
        other => panic!("expected a rate limit, got {other:?}"),
    }
}
