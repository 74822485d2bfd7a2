//! The daemon's lifecycle: running, draining, closing; and the count of live call tasks.
//!
//! Why a leaf module of its own: connections, the accept loop, the router, calls and the
//! HTTP endpoints all watch the stage, and only `shutdown` moves it; keeping the switch apart
//! from the shutdown sequence keeps every watcher below the state that holds it.

use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};

use tokio::sync::Notify;

/// Where the daemon is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Serving.
    Running = 0,
    /// Not accepting sockets or calls; calls in flight may finish.
    Draining = 1,
    /// Connections flush their outboxes and close with 1001.
    Closing = 2,
}

/// The daemon's lifecycle switch and its count of live call tasks.
///
/// Why an atomic and a `Notify` rather than `tokio::sync::watch`: a watch receiver waits on
/// one of eight internal notifiers picked by tokio's thread-local random generator, which is
/// seeded from a process-wide counter, so the order in which waiters wake would differ between
/// two runs of one seed in the simulator (found by the determinism test on the `shutdown`
/// scenario). `tests/seam.rs` keeps `watch` out of the core.
pub struct Lifecycle {
    /// The stage, as `Stage as u8`.
    stage: AtomicU8,
    /// Wakes everything waiting for a stage change.
    changed: Notify,
    /// Call tasks not yet finished (their terminal frame not yet pushed).
    calls_live: AtomicU32,
}

impl Lifecycle {
    /// A running daemon.
    pub fn new() -> Lifecycle {
        Lifecycle {
            stage: AtomicU8::new(Stage::Running as u8),
            changed: Notify::new(),
            calls_live: AtomicU32::new(0),
        }
    }

    /// The stage now.
    pub fn stage(&self) -> Stage {
        match self.stage.load(Ordering::SeqCst) {
            0 => Stage::Running,
            1 => Stage::Draining,
            _ => Stage::Closing,
        }
    }

    /// Wait until the daemon has reached `stage` (or a later one).
    pub async fn reached(&self, stage: Stage) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Register before looking, so a change between the look and the wait is not lost.
            changed.as_mut().enable();
            if self.stage() as u8 >= stage as u8 {
                return;
            }
            changed.await;
        }
    }

    /// True while the daemon accepts calls (what `/readyz` reports). Never affected by how
    /// many calls are running.
    pub fn is_ready(&self) -> bool {
        self.stage() == Stage::Running
    }

    pub(crate) fn set(&self, stage: Stage) {
        self.stage.fetch_max(stage as u8, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    /// Count a call task in; the guard counts it out when the task ends.
    pub fn call_started(&self) -> CallGuard<'_> {
        self.calls_live.fetch_add(1, Ordering::SeqCst);
        CallGuard { lifecycle: self }
    }

    /// Call tasks still running.
    pub fn calls_live(&self) -> u32 {
        self.calls_live.load(Ordering::SeqCst)
    }
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts one call task as live until dropped.
pub struct CallGuard<'a> {
    /// Whose count.
    lifecycle: &'a Lifecycle,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        self.lifecycle.calls_live.fetch_sub(1, Ordering::SeqCst);
    }
}
