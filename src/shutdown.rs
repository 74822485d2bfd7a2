//! Graceful shutdown: stop accepting, refuse new calls, let calls in flight finish within a
//! grace period, end the rest with `INTERRUPTED` (retryable: the same request id runs the
//! call once the daemon is back), deliver every terminal frame to the clients still connected,
//! then close their sockets with 1001 and a reason, and bring the state file up to date. A
//! client that was away resumes after the restart and finds its results kept.
//!
//! Why in the core and not in `main`: a restart must not lose work, and "never silence" is an
//! invariant the simulator checks; the same code runs under both runtimes.

use std::time::Duration;

use crate::lifecycle::Stage;
use crate::session::StopReason;
use crate::state::Shared;

/// What a shutdown did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Calls in flight when shutdown began.
    pub calls_in_flight: u32,
    /// Calls that were still running when the grace period ended and were stopped with
    /// `INTERRUPTED`.
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
    // Stopped calls push their INTERRUPTED frames within a tick.
    let stop_wait_until = rt.now() + CLOSE_WAIT;
    while shared.lifecycle.calls_live() > 0 && rt.now() < stop_wait_until {
        rt.sleep(POLL).await;
    }
    // A kept session's terminal frames wait for their records: commit them, so they go out
    // before the sockets close.
    shared.durable.flush(CLOSE_WAIT).await;
    shared.lifecycle.set(Stage::Closing);
    let close_wait_until = rt.now() + CLOSE_WAIT;
    while shared.connections() > 0 && rt.now() < close_wait_until {
        rt.sleep(POLL).await;
    }
    // What the calls changed is written before the process goes (conversations).
    let flushed = shared.durable.flush(CLOSE_WAIT).await;
    let state = shared.durable.stats();
    if flushed {
        tracing::info!(store = %state.store, commits = state.commits, changes = state.changes, batch_max_seen = state.batch_max_seen, failures = state.failures, "state file up to date");
    } else {
        tracing::error!(
            ?state,
            "the state file could not be brought up to date before exit"
        );
    }
    let report = ShutdownReport {
        calls_in_flight,
        calls_stopped,
        connections_left: shared.connections(),
    };
    tracing::info!(?report, "shut down");
    report
}
