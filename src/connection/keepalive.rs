//! Keep-alive: pings a silent peer and declares it dead past the ping timeout. Pure
//! bookkeeping on the seam's clock, so the simulator drives it like production does.

use std::time::Duration;

use crate::rt::Instant;

/// Keep-alive bookkeeping: when the peer was last heard from, and whether a ping is out.
///
/// Why: a peer that vanished without closing (laptop lid, dead network) would otherwise hold
/// its connection until TCP gives up, many minutes later; the session must be freed for resume
/// and its frames kept in the outbox instead.
pub struct KeepAlive {
    /// Last instant any frame (data, ping or pong) arrived.
    heard_at: Instant,
    /// When the outstanding ping was sent, if one is.
    ping_sent_at: Option<Instant>,
}

/// What the keep-alive timer decided.
pub enum Tick {
    /// Silent past the ping timeout: close.
    Dead,
    /// Send a ping now; look again at the instant given.
    Ping(Instant),
    /// Heard recently: look again at the instant given.
    Wait(Instant),
}

impl KeepAlive {
    pub fn new(now: Instant) -> KeepAlive {
        KeepAlive {
            heard_at: now,
            ping_sent_at: None,
        }
    }

    pub fn heard(&mut self, now: Instant) {
        self.heard_at = now;
        self.ping_sent_at = None;
    }

    pub fn on_timer(&mut self, now: Instant, ping_every: Duration, ping_timeout: Duration) -> Tick {
        if let Some(sent_at) = self.ping_sent_at {
            if now.saturating_since(sent_at) >= ping_timeout {
                return Tick::Dead;
            }
            return Tick::Wait(sent_at + ping_timeout);
        }
        if now.saturating_since(self.heard_at) >= ping_every {
            self.ping_sent_at = Some(now);
            return Tick::Ping(now + ping_timeout);
        }
        Tick::Wait(self.heard_at + ping_every)
    }
}
