//! The health snapshot: what the daemon is holding and waiting on, and whether the permit
//! books balance.
//!
//! Why honest: the original reported a "leak" whenever a call was running, because it compared
//! permits in use with an expectation instead of with the calls that hold them (DESIGN.md
//! section 9.2). Here each limit's permits in use are compared with the live permit values
//! (plus permits in transit to a waiter), under the limit's lock, so the comparison is exact at
//! every instant: a running call is not a leak; a mismatch is a bug, reported loudly and never
//! "repaired".

use serde::Serialize;

use crate::admission::LimitSnapshot;
use crate::state::Shared;

/// Health of the whole daemon at one instant.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// True when no limit shows a mismatch or a double release.
    pub ok: bool,
    /// Crate version.
    pub version: &'static str,
    /// Seconds since the daemon started.
    pub uptime_secs: f64,
    /// Global and per-provider limits.
    pub limits: Vec<LimitSnapshot>,
    /// All per-session limits added up.
    pub session_limits: SessionLimitsSummary,
    /// Sessions alive (attached or waiting for their client).
    pub sessions: usize,
    /// Sessions with a connection attached now.
    pub sessions_attached: usize,
    /// Authenticated WebSocket connections open now.
    pub connections: u32,
    /// WebSocket connections that have not said hello yet (`EXAI_WS_MAX_PENDING_HELLOS`).
    pub pending_hellos: u32,
    /// Connections closed before their hello to make room for newer ones, since start.
    pub pending_hellos_evicted: u64,
    /// Calls accepted and not yet ended.
    pub calls_running: usize,
    /// Conversations kept in memory (bounded by `EXAI_CONVERSATIONS_MAX`).
    pub conversations: usize,
    /// Human sentences, one per broken invariant (empty when `ok`).
    pub problems: Vec<String>,
}

/// The per-session limits summed over sessions.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct SessionLimitsSummary {
    /// Permits in use, as the limits' books count them.
    pub permits_in_use: u64,
    /// Live permit values.
    pub holders: u64,
    /// Calls waiting on a session limit.
    pub waiters: u64,
}

/// Take a snapshot; a broken invariant is logged as an error.
pub fn snapshot(shared: &Shared) -> Health {
    let health = take(shared);
    for problem in &health.problems {
        tracing::error!(problem = %problem, "permit accounting is broken");
    }
    health
}

fn take(shared: &Shared) -> Health {
    let mut limits = vec![shared.admission.global.snapshot()];
    limits.extend(
        shared
            .providers
            .entries()
            .iter()
            .map(|e| e.limit.snapshot()),
    );
    let sessions = shared.sessions.all();
    let mut summary = SessionLimitsSummary::default();
    let mut problems = Vec::new();
    let mut calls_running = 0;
    let mut attached = 0;
    for session in &sessions {
        let s = session.limit.snapshot();
        summary.permits_in_use += s.permits_in_use as u64;
        summary.holders += s.holders as u64;
        summary.waiters += s.waiters as u64;
        if s.mismatch() != 0 || s.over_released {
            problems.push(format!(
                "session {}: {} permits in use but {} live holders",
                session.id, s.permits_in_use, s.holders
            ));
        }
        calls_running += session.calls_running();
        attached += usize::from(session.is_attached());
    }
    for limit in &limits {
        if limit.mismatch() != 0 || limit.over_released {
            problems.push(format!(
                "limit {}: {} permits in use but {} live holders{}",
                limit.name,
                limit.permits_in_use,
                limit.holders,
                if limit.over_released {
                    " (released more than taken)"
                } else {
                    ""
                }
            ));
        }
    }
    let now = shared.rt.now();
    let (pending_hellos, pending_hellos_evicted) = shared.connections.pending();
    Health {
        ok: problems.is_empty(),
        version: env!("CARGO_PKG_VERSION"),
        uptime_secs: now.saturating_since(shared.started_at).as_millis() as f64 / 1000.0,
        limits,
        session_limits: summary,
        sessions: sessions.len(),
        sessions_attached: attached,
        connections: shared.connections(),
        pending_hellos,
        pending_hellos_evicted,
        calls_running,
        conversations: shared.conversations.len(),
        problems,
    }
}
