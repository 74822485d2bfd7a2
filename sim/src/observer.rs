//! The simulator's observer inside the daemon: it checks, as each event happens, that every
//! accepted call gets exactly one terminal frame (invariant 3), no later than its deadline
//! plus a bound (invariant 4), that each deadline is the configured one (the incident's
//! "180 s from .env, not a built-in 300 s"), and that outboxes stay under their caps
//! (invariant 7). It also marks coverage tags.
//!
//! It outlives the daemon: one observer watches every incarnation of a daemon that crashes
//! and restarts. A call the dead incarnation accepted and never ended is *orphaned* at the
//! crash: no code of that incarnation can end it any more, so its one terminal frame must
//! come from the next incarnation, as `INTERRUPTED` (invariant 15). A result the dead
//! incarnation pushed and the next one pushes again (an unacked terminal frame replayed) is a
//! replay, not a second ending; that the client receives it only once is the client's check.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use exaid::observe::{Observer, PauseReason};
use exaid::outbox::OutboxStats;
use exaid::protocol::{ProgressPhase, ServerFrame};
use exaid::rt::Instant;
use exaid::tools::{ToolKind, ToolRegistry};

use crate::journal::{Invariant, JournalRef, lock};

/// How late after its deadline a terminal frame may be pushed: timers in the simulator fire
/// on the dot, so this only absorbs the scheduling of the call's task.
pub const DEADLINE_SLACK: Duration = Duration::from_millis(5);

/// Two events count as "the same instant" within this: madsim fires every timer due at a
/// tick together, 50 ns after its deadline, and the protocol's clock resolution is 1 ms.
pub const SAME_INSTANT: Duration = Duration::from_millis(1);

fn same_instant(a: Instant, b: Instant) -> bool {
    a.saturating_since(b) < SAME_INSTANT && b.saturating_since(a) < SAME_INSTANT
}

/// One accepted call, as the observer tracks it.
#[derive(Debug, Clone)]
struct Accepted {
    /// The tool.
    tool: String,
    /// Its deadline.
    deadline: Instant,
    /// Terminal frames pushed for it so far (must end at exactly 1).
    terminals: u32,
    /// The daemon incarnation that accepted it (0: the first).
    incarnation: u32,
    /// Its incarnation died before it ended: only the next one can end it (`INTERRUPTED`).
    orphaned: bool,
    /// The incarnation that replayed its terminal frame after a restart, if one did.
    replayed_in: Option<u32>,
    /// An orphan whose client sent the call again and a later incarnation accepted it anew:
    /// its own acceptance was never kept (the client never saw its ack), so it never ends.
    superseded: bool,
}

/// What the observer expects of the daemon.
#[derive(Debug, Clone)]
pub struct Expectations {
    /// The deadline every simple tool call must get, from acceptance.
    pub simple_timeout: Duration,
    /// The deadline every workflow tool call must get (the incident: 180 s from `.env`).
    pub workflow_timeout: Duration,
    /// Outbox frame cap.
    pub outbox_frames_max: usize,
    /// Outbox byte cap.
    pub outbox_bytes_max: usize,
    /// The global limit is at least the provider limits together: then no call may ever
    /// wait for it (invariant 14).
    pub global_never_waits: bool,
}

/// The observer.
pub struct SimObserver {
    /// Where findings go.
    journal: JournalRef,
    /// What must hold.
    expect: Expectations,
    /// Calls by (session, request id); a finished id may be reused, hence the list.
    calls: Mutex<BTreeMap<(String, String), Vec<Accepted>>>,
    /// Instants at which a terminal frame was pushed (for "health raced a completion").
    terminal_instants: Mutex<Vec<Instant>>,
    /// Instants at which a call was refused after its queue timeout, and at which a call
    /// finished ok (for "acquisition timeout raced a release").
    queue_timeouts: Mutex<Vec<Instant>>,
    /// Set when the daemon starts shutting down.
    draining: std::sync::atomic::AtomicBool,
    /// Where each accepted call's deadline is sent, so a health check can land on it.
    deadlines: Mutex<Option<tokio::sync::mpsc::UnboundedSender<Instant>>>,
    /// Each served tool's kind, from the daemon's registry: which deadline a call must get.
    tool_kinds: Mutex<BTreeMap<String, ToolKind>>,
    /// The daemon incarnation serving now (0: the first; one more after each restart).
    incarnation: std::sync::atomic::AtomicU32,
}

impl SimObserver {
    /// An observer writing to `journal`.
    pub fn new(journal: JournalRef, expect: Expectations) -> SimObserver {
        SimObserver {
            journal,
            expect,
            calls: Mutex::new(BTreeMap::new()),
            terminal_instants: Mutex::new(Vec::new()),
            queue_timeouts: Mutex::new(Vec::new()),
            deadlines: Mutex::new(None),
            draining: std::sync::atomic::AtomicBool::new(false),
            tool_kinds: Mutex::new(BTreeMap::new()),
            incarnation: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// The daemon is killed now: every call it accepted and has not ended is orphaned (only
    /// the next incarnation can end it). Returns how many were.
    pub fn daemon_died(&self) -> usize {
        let mut calls = self.calls.lock().expect("observer lock");
        let mut orphaned = 0;
        for record in calls.values_mut().flatten() {
            if record.terminals == 0 && !record.orphaned {
                record.orphaned = true;
                orphaned += 1;
            }
        }
        orphaned
    }

    /// A new incarnation of the daemon starts serving now; returns its number.
    pub fn daemon_restarted(&self) -> u32 {
        self.incarnation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1
    }

    fn current_incarnation(&self) -> u32 {
        self.incarnation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Calls accepted and not yet ended (orphans included).
    pub fn open_calls(&self) -> usize {
        let calls = self.calls.lock().expect("observer lock");
        calls
            .values()
            .flatten()
            .filter(|r| r.terminals == 0)
            .count()
    }

    /// Learn every served tool's kind from the daemon's registry (before calls arrive).
    pub fn learn_tools(&self, registry: &ToolRegistry) {
        let mut kinds = self.tool_kinds.lock().expect("observer lock");
        for name in registry.names() {
            if let Some(kind) = registry.kind_of(name) {
                kinds.insert(name.to_string(), kind);
            }
        }
    }

    /// The daemon begins to shut down now.
    pub fn set_draining(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Receive every accepted call's deadline from now on.
    pub fn watch_deadlines(&self) -> tokio::sync::mpsc::UnboundedReceiver<Instant> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        *self.deadlines.lock().expect("observer lock") = Some(tx);
        rx
    }

    /// At quiescence: every accepted call must have ended exactly once. A call orphaned by
    /// a crash before its acceptance was on the disk is not one the daemon accepted for good:
    /// its `call_tool_ack` was held back until that commit, so its client never saw it and
    /// sends the call again.
    pub fn check_all_ended(&self, store: Option<&crate::store::SimStore>) {
        let calls = self.calls.lock().expect("observer lock");
        let mut journal = lock(&self.journal);
        for ((session, request_id), records) in calls.iter() {
            for record in records {
                // Durable when its incarnation died (not later: the client may have sent the
                // call again, and that run's record is a different one). A finished record
                // under the same request id is an earlier run's (this one never finished):
                // the run sent again after an INTERRUPTED was not kept.
                let kept = |store: &crate::store::SimStore| {
                    let key = exaid::kept::call_key(session, request_id);
                    let crash = record.incarnation as usize;
                    store
                        .body_at_crash(crash, exaid::rt::store::RecordKind::Call, &key)
                        .is_some_and(|body| {
                            !matches!(
                                serde_json::from_str(&body),
                                Ok(exaid::kept::CallRecord::Finished { .. })
                            )
                        })
                };
                if record.orphaned && record.terminals == 0 && !store.is_some_and(kept) {
                    journal.record(format!(
                        "call {request_id} died with its incarnation before its acceptance was kept (its ack was never sent)"
                    ));
                    journal.cover("crash_before_acceptance_kept");
                } else if record.orphaned && record.terminals == 0 {
                    journal.violate(
                        Invariant::ResultsSurviveRestart,
                        format!(
                            "call {request_id} ({}) in session {}, accepted by incarnation {} which died, never got a terminal frame (no INTERRUPTED from the next one)",
                            record.tool,
                            short(session),
                            record.incarnation
                        ),
                    );
                } else if record.terminals != 1 {
                    journal.violate(
                        Invariant::ExactlyOnce,
                        format!(
                            "call {request_id} ({}) in session {} ended with {} terminal frames",
                            record.tool,
                            short(session),
                            record.terminals
                        ),
                    );
                }
            }
        }
    }

    /// Calls accepted so far.
    pub fn accepted_total(&self) -> usize {
        self.calls
            .lock()
            .expect("observer lock")
            .values()
            .map(Vec::len)
            .sum()
    }

    /// Whether a terminal frame was pushed on the same instant as `at`.
    pub fn terminal_at(&self, at: Instant) -> bool {
        self.terminal_instants
            .lock()
            .expect("observer lock")
            .iter()
            .any(|t| same_instant(*t, at))
    }

    /// Whether some call ended ok at the very instant another was refused after its queue
    /// timeout.
    pub fn queue_timeout_raced_release(&self) -> bool {
        let timeouts = self.queue_timeouts.lock().expect("observer lock");
        let terminals = self.terminal_instants.lock().expect("observer lock");
        timeouts
            .iter()
            .any(|t| terminals.iter().filter(|x| same_instant(**x, *t)).count() > 1)
    }
}

fn short(session: &str) -> &str {
    &session[..session.len().min(8)]
}

impl Observer for SimObserver {
    fn frame_not_kept(&self, session: &str, request_id: &str) {
        let mut journal = lock(&self.journal);
        journal.record(format!(
            "frame of {request_id} in {} sent before the state file kept it",
            short(session)
        ));
        journal.cover("frame_not_kept");
        journal.not_kept.insert(request_id.to_string());
    }

    fn admission_waited(&self, limit: &str, waited: Duration) {
        if limit == "global" && self.expect.global_never_waits {
            lock(&self.journal).violate(
                Invariant::ProvidersIsolated,
                format!(
                    "a call waited {} ms for a global permit, though the provider limits fit under it",
                    waited.as_millis()
                ),
            );
        }
    }

    fn call_accepted(
        &self,
        session: &str,
        request_id: &str,
        tool: &str,
        at: Instant,
        deadline: Instant,
    ) {
        let mut journal = lock(&self.journal);
        journal.record(format!("accept {} {request_id} {tool}", short(session)));
        journal.count("calls accepted", 1);
        let kind = self
            .tool_kinds
            .lock()
            .expect("observer lock")
            .get(tool)
            .copied();
        let expected = match kind {
            Some(ToolKind::Workflow) => self.expect.workflow_timeout,
            Some(ToolKind::Simple) => self.expect.simple_timeout,
            None => {
                journal.violate(
                    Invariant::DeadlineHonored,
                    format!(
                        "call {request_id} accepted for {tool}, which the registry does not know"
                    ),
                );
                self.expect.simple_timeout
            }
        };
        if let Some(tx) = self.deadlines.lock().expect("observer lock").as_ref() {
            let _ = tx.send(deadline);
        }
        let given = deadline.saturating_since(at);
        if given != expected {
            journal.violate(
                Invariant::DeadlineHonored,
                format!(
                    "call {request_id} ({tool}) got a deadline of {:.3} s, configured {:.3} s",
                    given.as_secs_f64(),
                    expected.as_secs_f64()
                ),
            );
        }
        drop(journal);
        let mut calls = self.calls.lock().expect("observer lock");
        let records = calls
            .entry((session.to_string(), request_id.to_string()))
            .or_default();
        for orphan in records
            .iter_mut()
            .filter(|r| r.orphaned && r.terminals == 0)
        {
            orphan.superseded = true;
        }
        if records.iter().any(|r| r.terminals == 0 && !r.superseded) {
            lock(&self.journal).violate(
                Invariant::ExactlyOnce,
                format!("call {request_id} accepted again while it was still running"),
            );
        }
        records.push(Accepted {
            tool: tool.to_string(),
            deadline,
            terminals: 0,
            incarnation: self.current_incarnation(),
            orphaned: false,
            replayed_in: None,
            superseded: false,
        });
    }

    fn frame_pushed(
        &self,
        session: &str,
        seq: u64,
        frame: &ServerFrame,
        at: Instant,
        outbox: OutboxStats,
    ) {
        let mut journal = lock(&self.journal);
        if outbox.frames > self.expect.outbox_frames_max
            || (outbox.bytes > self.expect.outbox_bytes_max && outbox.frames > 1)
        {
            journal.violate(
                Invariant::MemoryBounded,
                format!(
                    "session {} outbox holds {} frames / {} bytes, caps {} / {}",
                    short(session),
                    outbox.frames,
                    outbox.bytes,
                    self.expect.outbox_frames_max,
                    self.expect.outbox_bytes_max
                ),
            );
        }
        journal.count_max("outbox peak frames", outbox.frames as u64);
        match frame {
            ServerFrame::Progress {
                request_id,
                phase,
                message,
                ..
            } => {
                if message.contains("rate budget") {
                    journal.cover("budget_waited");
                }
                journal.record(format!(
                    "push {} #{seq} progress {request_id} {phase}",
                    short(session)
                ));
                journal.cover("progress_sent");
                match *phase {
                    ProgressPhase::Queued => journal.cover("progress_while_queued"),
                    ProgressPhase::RateLimited => journal.cover("progress_while_rate_limited"),
                    _ => {}
                }
            }
            ServerFrame::CallToolRes {
                request_id,
                repeated: true,
                ..
            } => {
                journal.record(format!(
                    "push {} #{seq} repeated result {request_id}",
                    short(session)
                ));
                journal.cover("finished_result_repeated");
            }
            ServerFrame::CallToolRes {
                request_id,
                ok,
                error,
                ..
            } => {
                let code = error.as_ref().map_or("OK", |e| e.code.as_str());
                journal.record(format!(
                    "push {} #{seq} result {request_id} {code}",
                    short(session)
                ));
                journal.count(format!("ended {code}"), 1);
                let message = error.as_ref().map(|e| e.message.as_str()).unwrap_or("");
                let draining = self.draining.load(std::sync::atomic::Ordering::SeqCst);
                match code {
                    "OK" if draining => journal.cover("finished_while_draining"),
                    "SERVICE_UNAVAILABLE" if message.contains("accepts no new calls") => {
                        journal.cover("refused_while_draining")
                    }
                    "INTERRUPTED" if draining => journal.cover("stopped_at_shutdown"),
                    "OK" => journal.cover("call_ok"),
                    "TIMEOUT" => journal.cover("deadline_hit"),
                    "CANCELLED" if message.contains("session expired") => {
                        journal.cover("call_stopped_by_session_expiry")
                    }
                    "CANCELLED" => journal.cover("call_cancelled"),
                    "RATE_LIMITED" => journal.cover("rate_limited_result"),
                    "OVER_CAPACITY"
                        if self.expect.global_never_waits && message.contains("limit global ") =>
                    {
                        journal.violate(
                            Invariant::ProvidersIsolated,
                            format!("call {request_id} refused by the global limit: {message}"),
                        );
                    }
                    "OVER_CAPACITY" if message.contains("queue is full") => {
                        journal.cover("refused_queue_full")
                    }
                    "OVER_CAPACITY" if message.contains("the wait is estimated") => {
                        journal.cover("refused_wait_hopeless")
                    }
                    "OVER_CAPACITY" => {
                        journal.cover("refused_queue_timeout");
                        self.queue_timeouts.lock().expect("observer lock").push(at);
                    }
                    "PROVIDER_ERROR" if message.contains("Quota") => {
                        journal.cover("quota_not_retried")
                    }
                    "PROVIDER_ERROR" => journal.cover("provider_error_result"),
                    _ => {}
                }
                drop(journal);
                self.terminal_instants
                    .lock()
                    .expect("observer lock")
                    .push(at);
                let mut calls = self.calls.lock().expect("observer lock");
                let key = (session.to_string(), request_id.clone());
                let incarnation = self.current_incarnation();
                let records = calls.entry(key).or_default();
                let open = records
                    .iter()
                    .position(|r| r.terminals == 0 && !r.superseded);
                // A terminal frame a dead incarnation pushed, pushed again by a later one
                // (unacked, kept in the store): a replay, once per incarnation.
                let replay = records.iter().position(|r| {
                    r.terminals == 1
                        && r.incarnation < incarnation
                        && r.replayed_in != Some(incarnation)
                });
                let mut journal = lock(&self.journal);
                if let Some(index) = open {
                    let record = &records[index];
                    if code == "INTERRUPTED" && !record.orphaned && !draining {
                        journal.violate(
                            Invariant::ResultsSurviveRestart,
                            format!("call {request_id} ended INTERRUPTED though the incarnation that accepted it still serves"),
                        );
                    } else if code == "INTERRUPTED" {
                        journal.cover("interrupted_delivered");
                    }
                } else if let Some(index) = replay {
                    records[index].replayed_in = Some(incarnation);
                    journal.cover("result_replayed_after_restart");
                    journal.record(format!(
                        "replay of {request_id}'s terminal frame after a restart"
                    ));
                    return;
                }
                let open = open.map(|index| &mut records[index]);
                match open {
                    Some(record) => {
                        record.terminals += 1;
                        // An orphan's deadline ran on a clock that died with it.
                        if !record.orphaned && at > record.deadline + DEADLINE_SLACK {
                            journal.violate(
                                Invariant::DeadlineHonored,
                                format!(
                                    "call {request_id} ended {:.3} s after its deadline",
                                    at.saturating_since(record.deadline).as_secs_f64()
                                ),
                            );
                        }
                        if same_instant(at, record.deadline) {
                            journal.cover("ended_on_the_deadline_instant");
                        }
                    }
                    None => {
                        let refused_before_acceptance = matches!(
                            code,
                            "VALIDATION_ERROR"
                                | "TOOL_NOT_FOUND"
                                | "INVALID_REQUEST"
                                | "PROTOCOL_ERROR"
                        ) || (code == "SERVICE_UNAVAILABLE"
                            && message.contains("accepts no new calls"));
                        if !refused_before_acceptance || *ok {
                            journal.violate(
                                Invariant::ExactlyOnce,
                                format!("terminal frame {code} for {request_id} with no running call (a second ending?)"),
                            );
                        }
                    }
                }
            }
            ServerFrame::Cancelled { request_id } => {
                journal.record(format!(
                    "push {} #{seq} cancelled {request_id}",
                    short(session)
                ));
            }
            ServerFrame::CallToolAck {
                request_id, joined, ..
            } => {
                journal.record(format!(
                    "push {} #{seq} ack {request_id} joined={joined}",
                    short(session)
                ));
                if *joined {
                    journal.cover("duplicate_joined");
                }
            }
            other => {
                let op = serde_json::to_value(other)
                    .ok()
                    .and_then(|v| v["op"].as_str().map(String::from));
                journal.record(format!(
                    "push {} #{seq} {}",
                    short(session),
                    op.unwrap_or_default()
                ));
            }
        }
    }

    fn provider_attempt(&self, provider: &str, request_id: &str, attempt: u32, _at: Instant) {
        let mut journal = lock(&self.journal);
        journal.record(format!("attempt {provider} {request_id} #{attempt}"));
        if attempt > 1 {
            journal.cover("retried_attempt");
        }
    }

    fn provider_pause(
        &self,
        provider: &str,
        request_id: &str,
        pause: Duration,
        reason: PauseReason,
        _at: Instant,
    ) {
        let mut journal = lock(&self.journal);
        journal.record(format!(
            "pause {provider} {request_id} {reason:?} {} ms",
            pause.as_millis()
        ));
        journal.cover(match reason {
            PauseReason::RetryAfter => "retry_after_honored",
            PauseReason::Cooldown => "cooldown_waited",
            PauseReason::Backoff => "backoff",
        });
    }

    fn session_expired(&self, session: &str, calls_stopped: usize, _at: Instant) {
        let mut journal = lock(&self.journal);
        journal.record(format!(
            "expired {} stopped={calls_stopped}",
            short(session)
        ));
        journal.cover("session_expired");
        journal.count("sessions expired", 1);
    }

    fn gave_up_before_deadline(
        &self,
        provider: &str,
        request_id: &str,
        wait: Duration,
        _at: Instant,
    ) {
        let mut journal = lock(&self.journal);
        journal.record(format!(
            "give-up {provider} {request_id} wait {} ms",
            wait.as_millis()
        ));
        journal.cover("failed_fast_instead_of_sleeping");
    }
}
