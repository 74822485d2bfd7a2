//! Graceful shutdown: stop accepting, refuse new calls, let calls in flight finish within a
//! grace period, end the rest with `SERVICE_UNAVAILABLE`, deliver every terminal frame to the
//! clients still connected, then close their sockets with 1001 and a reason.
//!
//! Why in the core and not in `main`: a restart must not lose work, and "never silence" is an
//! invariant the simulator checks; the same code runs under both runtimes.

use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use crate::daemon::Shared;
use crate::session::StopReason;

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

/// What a shutdown did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Calls in flight when shutdown began.
    pub calls_in_flight: u32,
    /// Calls that were still running when the grace period ended and were stopped with
    /// `SERVICE_UNAVAILABLE`.
    pub calls_stopped: usize,
    /// Connections still open when the daemon gave up waiting for them to close.
    pub connections_left: u32,
}

/// How often shutdown looks at its counters while it waits.
pub const POLL: Duration = Duration::from_millis(20);
/// How long closing connections may take to flush and close.
pub const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Shut the daemon down gracefully (see the module doc). Runs on the daemon's runtime.
pub async fn run(shared: &Shared, grace: Duration) -> ShutdownReport {
    let rt = &shared.rt;
    shared.lifecycle.set(Stage::Draining);
    let calls_in_flight = shared.lifecycle.calls_live();
    tracing::info!(
        calls_in_flight,
        grace_ms = grace.as_millis() as u64,
        "draining: no new calls; waiting for calls in flight"
    );
    let give_up_at = rt.now() + grace;
    while shared.lifecycle.calls_live() > 0 && rt.now() < give_up_at {
        rt.sleep(POLL).await;
    }
    let mut calls_stopped = 0;
    for session in shared.sessions.all() {
        calls_stopped += session.stop_all_calls(StopReason::Shutdown);
    }
    if calls_stopped > 0 {
        tracing::warn!(
            calls_stopped,
            "grace period over: stopping the calls still running"
        );
    }
    // Stopped calls push their SERVICE_UNAVAILABLE frames within a tick.
    let stop_wait_until = rt.now() + CLOSE_WAIT;
    while shared.lifecycle.calls_live() > 0 && rt.now() < stop_wait_until {
        rt.sleep(POLL).await;
    }
    shared.lifecycle.set(Stage::Closing);
    let close_wait_until = rt.now() + CLOSE_WAIT;
    while shared.connections() > 0 && rt.now() < close_wait_until {
        rt.sleep(POLL).await;
    }
    let report = ShutdownReport {
        calls_in_flight,
        calls_stopped,
        connections_left: shared.connections(),
    };
    tracing::info!(?report, "shut down");
    report
}
