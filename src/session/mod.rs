//! Sessions: what outlives a connection.
//!
//! A session owns its outbox (every frame it sends, stamped with seq), its running calls (so
//! `cancel` and duplicate request ids find them), and its own concurrency limit. A connection
//! only attaches to a session for a while: when the socket drops, calls keep running and
//! their frames wait in the outbox until the client resumes or the session expires.
//!
//! Why sessions are keyed by a random id and a secret resume token, not by `ip:port`: a
//! reconnect comes from a new port (DESIGN.md section 9.3), and anyone on the machine can
//! guess an address.
//!
//! A WebSocket session is kept in the state file too (`kept`): its record, and one record per
//! call, accepted then finished. Its terminal frames are held in the outbox until their record
//! is committed, so a result a client received survives a crash. After a restart the session
//! comes back detached; the first resume delivers what the client had not received, and an
//! `INTERRUPTED` terminal frame for each call that was running when the daemon stopped.
//!
//! Every session counts its outbox and its result cache against the daemon's memory budget
//! (`memory`). While nobody is attached, the budget may shed its oldest frames (announced
//! as a `gap` on resume). How long a frame stays depends on the client: one that declared
//! `acks` in its hello keeps frames until it acks them; one that did not (the original's
//! shim) has a frame counted as delivered once it is written to its live socket, and gets a
//! repeated request id answered from the result cache instead.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use subtle::ConstantTimeEq;
use tokio::sync::{Notify, oneshot};

use crate::admission::Limit;
use crate::config::Config;
use crate::durable::Durable;
use crate::error::ErrorCode;
use crate::kept::{self, KeptSession};
use crate::memory::{MemoryBudget, Shed};
use crate::observe::Observer;
use crate::outbox::Outbox;
use crate::protocol::ServerFrame;
use crate::rt::Instant;

mod keeping;

use keeping::Keeping;

/// Why a running call is being stopped from outside its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The client sent `cancel`.
    ClientCancel,
    /// The session expired with nobody attached.
    SessionExpired,
    /// The daemon is shutting down past its grace period.
    Shutdown,
    /// An in-process client (the MCP endpoint) closed its session: nobody is left to read
    /// the result, and nobody can resume the session.
    ClientGone,
}

/// A call that is running (queued or executing) in this session.
struct RunningCall {
    /// Fires the call's stop branch.
    stop: oneshot::Sender<StopReason>,
}

/// A call that ended, kept for a repeated request id.
struct FinishedCall {
    /// Its terminal frame.
    terminal: ServerFrame,
    /// When it ended (for the result TTL).
    ended_at: Instant,
    /// What it is counted as against the memory budget.
    charged: usize,
}

impl FinishedCall {
    /// A finished call to keep, counted as its terminal frame's size.
    fn new(terminal: ServerFrame, ended_at: Instant) -> FinishedCall {
        let charged = terminal.held_bytes();
        FinishedCall {
            terminal,
            ended_at,
            charged,
        }
    }
}

/// The session's calls: running ones, and recently finished ones by request id.
#[derive(Default)]
struct CallTable {
    /// Calls running now (ordered: stopping them all must not depend on hash order).
    running: BTreeMap<String, RunningCall>,
    /// Finished calls' terminal frames, for repeats.
    finished: HashMap<String, FinishedCall>,
    /// Finished request ids, oldest first (eviction order).
    finished_order: VecDeque<String>,
    /// Sum of the finished calls' charges against the memory budget.
    charged: usize,
}

impl CallTable {
    /// Keep `finished` for repeats of `request_id`, counted in; one it replaces is counted
    /// out. True if it replaced one.
    fn cache(&mut self, request_id: &str, finished: FinishedCall, budget: &MemoryBudget) -> bool {
        budget.charge(finished.charged);
        self.charged += finished.charged;
        let previous = self.finished.insert(request_id.to_string(), finished);
        if let Some(previous) = &previous {
            self.charged -= previous.charged;
            budget.release(previous.charged);
            self.finished_order.retain(|id| id != request_id);
        }
        self.finished_order.push_back(request_id.to_string());
        debug_assert_eq!(self.finished.len(), self.finished_order.len());
        previous.is_some()
    }

    /// Forget the oldest finished call, counted out; its request id.
    fn uncache_oldest(&mut self, budget: &MemoryBudget) -> Option<String> {
        let oldest = self.finished_order.pop_front()?;
        if let Some(finished) = self.finished.remove(&oldest) {
            self.charged -= finished.charged;
            budget.release(finished.charged);
        }
        debug_assert!(!self.finished.is_empty() || self.charged == 0);
        Some(oldest)
    }
}

/// What a `call_tool` with this request id should do.
pub enum Begin {
    /// A new call: run it; it stops when this fires.
    New(oneshot::Receiver<StopReason>),
    /// Already running: the client joins it.
    Running,
    /// Already finished within the result TTL: send its terminal frame again.
    Finished(ServerFrame),
}

/// The connection currently serving a session.
struct Attachment {
    /// Increases with every attach, so a stale connection can tell it was replaced.
    generation: u64,
    /// Kicks the attached connection when a newer one takes over.
    kick: Arc<Notify>,
}

/// Attachment state of a session.
struct Presence {
    /// Who serves the session now, if anyone.
    attached: Option<Attachment>,
    /// Generations handed out so far.
    generations: u64,
    /// When the last connection left (None while attached).
    detached_at: Option<Instant>,
}

/// One client session.
pub struct Session {
    /// Public id, sent in `hello_ack`.
    pub id: String,
    /// Secret proving ownership on resume, for a session this process opened (a session
    /// kept across a restart has only its hash); never logged.
    resume_token: Option<String>,
    /// SHA-256 of the resume token: what a resume is compared with, in constant time.
    token_sha256: [u8; 32],
    /// For a session kept in the state file: how it writes its records.
    keeping: Option<Keeping>,
    /// Every frame the session sends.
    pub outbox: Outbox,
    /// The per-session concurrency limit.
    pub limit: Arc<Limit>,
    /// Calls running and recently finished, by request id.
    calls: Mutex<CallTable>,
    /// Finished results kept at most, and for how long.
    result_cache_max: usize,
    /// How long a finished result is kept.
    result_ttl: Duration,
    /// Who is attached.
    presence: Mutex<Presence>,
    /// Highest seq the client acked.
    acked_seq: AtomicU64,
    /// Told about every frame pushed.
    observer: Arc<dyn Observer>,
    /// The daemon's memory budget: the outbox and the result cache count against it, and
    /// it may shed the outbox while nobody is attached.
    budget: Arc<MemoryBudget>,
    /// Whether the client attached now declared `acks` in its hello: frames then stay until
    /// acked; otherwise a frame written to its socket counts as delivered.
    acks: AtomicBool,
    /// How fast the client may send frames.
    inbound: Mutex<crate::rate::TokenBucket>,
    /// Frames refused in a row by the bucket: a client that keeps flooding is closed.
    refused_in_a_row: AtomicU64,
}

/// What the inbound bucket says about one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    /// Handle it.
    Accept,
    /// Refuse it: retry after this long.
    Refuse(Duration),
    /// Refused too often in a row: close the connection.
    Close,
}

impl Session {
    /// Count one frame from the client against its rate.
    pub fn inbound(&self, now: Instant, burst: u32) -> Inbound {
        match self.inbound.lock().expect("bucket lock").take(now) {
            Ok(()) => {
                self.refused_in_a_row.store(0, Ordering::SeqCst);
                Inbound::Accept
            }
            Err(wait) => {
                let refused = self.refused_in_a_row.fetch_add(1, Ordering::SeqCst) + 1;
                if refused > burst as u64 {
                    Inbound::Close
                } else {
                    Inbound::Refuse(wait)
                }
            }
        }
    }

    /// The secret resume token (only `hello_ack` may send it anywhere); `None` for a session
    /// kept across a restart, whose client already has it.
    pub fn resume_token(&self) -> Option<&str> {
        self.resume_token.as_deref()
    }

    /// Push a frame into the outbox.
    pub fn push(&self, frame: ServerFrame, now: Instant) -> u64 {
        self.push_with(frame, now, false).seq
    }

    fn push_with(
        &self,
        frame: ServerFrame,
        now: Instant,
        held: bool,
    ) -> Arc<crate::outbox::Stamped> {
        let (stamped, evicted) = if held {
            self.outbox.push_held(frame, now)
        } else {
            self.outbox.push(frame, now)
        };
        if evicted > 0 {
            self.observer.frames_evicted(&self.id, evicted);
        }
        self.observer.frame_pushed(
            &self.id,
            stamped.seq,
            &stamped.frame,
            now,
            self.outbox.stats(),
        );
        stamped
    }

    /// The client attached now declared (or not) that it acks what it receives.
    pub fn set_acks(&self, acks: bool) {
        self.acks.store(acks, Ordering::SeqCst);
    }

    /// Whether frames stay until acked (the client declared `acks`).
    pub fn acks(&self) -> bool {
        self.acks.load(Ordering::SeqCst)
    }

    /// Frames up to `seq` were written to the client's live socket: for a client that does
    /// not ack, that is delivery, and they leave the outbox (as if acked). A client that
    /// declared `acks` keeps them until it acks.
    pub fn written(&self, seq: u64) {
        if !self.acks() {
            self.ack(seq);
        }
    }

    /// The client acked everything up to `seq`: a kept result it has and the result cache
    /// no longer holds leaves the state file.
    pub fn ack(&self, seq: u64) {
        let acked = self.acked_seq.fetch_max(seq, Ordering::SeqCst).max(seq);
        self.outbox.ack(seq);
        self.forget_acked(acked);
    }

    /// Begin a call with `request_id`, atomically with respect to calls ending: a new call
    /// is registered; a running one is joined; a finished one (within the result TTL) is
    /// answered from its stored terminal frame, so the provider is never called twice.
    pub fn begin_call(&self, request_id: &str, now: Instant) -> Begin {
        let mut calls = self.calls.lock().expect("calls lock");
        if calls.running.contains_key(request_id) {
            return Begin::Running;
        }
        let evicted = self.evict_finished(&mut calls, now);
        let begin = if let Some(finished) = calls.finished.get(request_id) {
            Begin::Finished(finished.terminal.as_repeat())
        } else {
            let (stop, stopped) = oneshot::channel();
            calls
                .running
                .insert(request_id.to_string(), RunningCall { stop });
            Begin::New(stopped)
        };
        drop(calls);
        self.uncache(evicted);
        begin
    }

    /// Drop finished results past the TTL or the cap; returns their request ids.
    fn evict_finished(&self, calls: &mut CallTable, now: Instant) -> Vec<String> {
        let mut evicted = Vec::new();
        while let Some(oldest) = calls.finished_order.front() {
            let expired = calls
                .finished
                .get(oldest)
                .is_none_or(|f| now.saturating_since(f.ended_at) >= self.result_ttl);
            if !expired && calls.finished_order.len() <= self.result_cache_max {
                break;
            }
            let oldest = calls.uncache_oldest(&self.budget).expect("front exists");
            evicted.push(oldest);
        }
        evicted
    }

    /// True when `request_id` is running, or finished with its result still kept: a call
    /// with this id costs nothing new (it joins, or is answered from the cache).
    pub fn knows(&self, request_id: &str, now: Instant) -> bool {
        let calls = self.calls.lock().expect("calls lock");
        calls.running.contains_key(request_id)
            || calls
                .finished
                .get(request_id)
                .is_some_and(|f| now.saturating_since(f.ended_at) < self.result_ttl)
    }

    /// True when `request_id` is running.
    pub fn is_running(&self, request_id: &str) -> bool {
        self.calls
            .lock()
            .expect("calls lock")
            .running
            .contains_key(request_id)
    }

    /// Stop one call. Pushes `before` (e.g. `cancelled`) first, so it precedes the call's
    /// terminal frame. False if no such call is running.
    pub fn stop_call(
        &self,
        request_id: &str,
        reason: StopReason,
        before: Option<ServerFrame>,
        now: Instant,
    ) -> bool {
        let mut calls = self.calls.lock().expect("calls lock");
        let Some(call) = calls.running.remove(request_id) else {
            return false;
        };
        if let Some(frame) = before {
            self.push(frame, now);
        }
        // The call may have finished an instant ago; its task then ignores the stop.
        let _ = call.stop.send(reason);
        true
    }

    /// Stop every running call (session expiry, shutdown).
    pub fn stop_all_calls(&self, reason: StopReason) -> usize {
        let mut calls = self.calls.lock().expect("calls lock");
        let stopped = calls.running.len();
        for (_, call) in std::mem::take(&mut calls.running) {
            let _ = call.stop.send(reason);
        }
        stopped
    }

    /// The call ended: unregister it and push its terminal frame, atomically with respect to
    /// `begin_call`, so a repeated request id sees either the running call or its end. An
    /// `INTERRUPTED` end is not cached: the same request id again runs the call.
    pub fn finish_call(self: &Arc<Self>, request_id: &str, terminal: ServerFrame, now: Instant) {
        assert!(terminal.is_terminal());
        assert_eq!(terminal.request_id(), Some(request_id));
        let mut calls = self.calls.lock().expect("calls lock");
        calls.running.remove(request_id);
        let cached = self.result_cache_max > 0 && !is_interrupted(&terminal);
        let mut evicted = Vec::new();
        if cached {
            let finished = FinishedCall::new(terminal.clone(), now);
            calls.cache(request_id, finished, &self.budget);
            evicted = self.evict_finished(&mut calls, now);
        }
        let cached = cached && calls.finished.contains_key(request_id);
        self.push_terminal(request_id, terminal, cached, now);
        drop(calls);
        self.uncache(evicted);
    }

    /// Calls running now.
    pub fn calls_running(&self) -> usize {
        self.calls.lock().expect("calls lock").running.len()
    }

    /// Finished results kept for repeats.
    pub fn results_kept(&self) -> usize {
        self.calls.lock().expect("calls lock").finished.len()
    }

    /// Attach a connection; the previous one (if any) is kicked. Returns the generation and
    /// the kick the new connection must watch.
    pub fn attach(&self) -> (u64, Arc<Notify>) {
        let mut presence = self.presence.lock().expect("presence lock");
        if let Some(previous) = presence.attached.take() {
            previous.kick.notify_one();
        }
        presence.generations += 1;
        let generation = presence.generations;
        let kick = Arc::new(Notify::new());
        presence.attached = Some(Attachment {
            generation,
            kick: kick.clone(),
        });
        presence.detached_at = None;
        self.budget.not_sheddable(&self.id);
        self.keep_presence(false);
        // A kicked writer may have consumed the outbox's wake-up: re-arm it for the new one.
        self.outbox.wake();
        (generation, kick)
    }

    /// The connection of `generation` left. No effect if a newer one already took over.
    /// Its frames may now be shed by the memory budget.
    pub fn detach(self: &Arc<Self>, generation: u64, now: Instant) {
        let mut presence = self.presence.lock().expect("presence lock");
        if presence
            .attached
            .as_ref()
            .is_some_and(|a| a.generation == generation)
        {
            presence.attached = None;
            presence.detached_at = Some(now);
            self.sheddable();
            self.keep_presence(true);
        }
    }

    /// True while a connection serves the session.
    pub fn is_attached(&self) -> bool {
        self.presence
            .lock()
            .expect("presence lock")
            .attached
            .is_some()
    }

    fn expired(&self, now: Instant, ttl: Duration) -> bool {
        let presence = self.presence.lock().expect("presence lock");
        presence.attached.is_none()
            && presence
                .detached_at
                .is_some_and(|at| now.saturating_since(at) >= ttl)
    }
}

impl Session {
    /// Let the memory budget shed this session's frames (nobody is attached).
    fn sheddable(self: &Arc<Self>) {
        let weak: Weak<Session> = Arc::downgrade(self);
        self.budget.sheddable(&self.id, weak);
    }
}

impl Shed for Session {
    fn oldest_stamp(&self) -> Option<u64> {
        self.outbox.oldest_stamp()
    }

    fn shed_oldest(&self) -> bool {
        let shed = self.outbox.shed_oldest();
        if shed {
            self.observer.frames_evicted(&self.id, 1);
        }
        shed
    }
}

impl Drop for Session {
    /// The result cache leaves with the session: its charge goes back to the budget (the
    /// outbox gives back its own).
    fn drop(&mut self) {
        let calls = self.calls.get_mut().unwrap_or_else(|e| e.into_inner());
        self.budget.release(calls.charged);
    }
}

/// True for an `INTERRUPTED` terminal frame (never cached: a repeat runs the call).
fn is_interrupted(frame: &ServerFrame) -> bool {
    matches!(frame, ServerFrame::CallToolRes { error: Some(error), .. } if error.code == ErrorCode::Interrupted)
}

/// Why a resume was refused. Deliberately coarse: a wrong token and an unknown session look
/// the same from outside, so the refusal leaks nothing about other sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeRefused {
    /// No such session (never existed or expired), or the token does not match.
    UnknownOrWrongToken,
}

/// Caps and timings every new session gets.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Calls in flight per session.
    pub inflight_max: u32,
    /// Calls queued per session beyond those in flight.
    pub waiters_max: u32,
    /// Outbox frame cap.
    pub outbox_frames_max: usize,
    /// Outbox byte cap.
    pub outbox_bytes_max: usize,
    /// How long unacked frames and detached sessions are kept.
    pub ttl: Duration,
    /// Sessions alive at once.
    pub sessions_max: usize,
    /// Frames per second a session may send, on average.
    pub rate_per_sec: u32,
    /// Frames a session may send at once.
    pub burst: u32,
    /// Finished results kept per session for repeated request ids.
    pub result_cache_max: usize,
    /// How long a finished result is kept.
    pub result_ttl: Duration,
}

impl From<&Config> for SessionLimits {
    /// The limits of `config.sessions`, waiting as long as every queue may
    /// (`config.limits.queue_waiters_max`).
    fn from(config: &Config) -> SessionLimits {
        let sessions = &config.sessions;
        SessionLimits {
            inflight_max: sessions.inflight_max,
            waiters_max: config.limits.queue_waiters_max,
            outbox_frames_max: sessions.outbox_frames_max as usize,
            outbox_bytes_max: sessions.outbox_bytes_max,
            ttl: Duration::from_millis(sessions.ttl_ms),
            sessions_max: sessions.sessions_max as usize,
            rate_per_sec: sessions.rate_per_sec,
            burst: sessions.burst,
            result_cache_max: sessions.result_cache_max as usize,
            result_ttl: Duration::from_millis(sessions.result_ttl_ms),
        }
    }
}

/// All sessions, by id.
pub struct SessionRegistry {
    /// Sessions by id. A `BTreeMap` so iteration order (expiry, health) is deterministic.
    sessions: Mutex<BTreeMap<String, Arc<Session>>>,
    /// What new sessions get.
    limits: SessionLimits,
    /// Handed to every session.
    observer: Arc<dyn Observer>,
    /// Where WebSocket sessions are kept, when the state outlives the process.
    keep: Option<Arc<Durable>>,
    /// The daemon's memory budget, handed to every session.
    budget: Arc<MemoryBudget>,
}

/// What start-up found of the sessions kept in the state file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionsRestored {
    /// Sessions back, waiting for their client.
    pub sessions: usize,
    /// Results (terminal frames) back, to be delivered or to answer repeats.
    pub results: usize,
    /// Calls that were running when the daemon stopped: each gets `INTERRUPTED`.
    pub interrupted: usize,
}

impl SessionRegistry {
    /// An empty registry.
    pub fn new(limits: SessionLimits, observer: Arc<dyn Observer>) -> SessionRegistry {
        SessionRegistry {
            sessions: Mutex::new(BTreeMap::new()),
            limits,
            observer,
            keep: None,
            budget: MemoryBudget::unbounded(),
        }
    }

    /// The same (empty) registry, its sessions counted against `budget`.
    pub fn with_budget(mut self, budget: Arc<MemoryBudget>) -> SessionRegistry {
        assert_eq!(self.count(), 0, "a registry changes budgets only empty");
        self.budget = budget;
        self
    }

    /// The memory budget sessions count against.
    pub fn budget(&self) -> &Arc<MemoryBudget> {
        &self.budget
    }

    /// The same registry, keeping WebSocket sessions through `durable`.
    pub fn with_keep(mut self, durable: Arc<Durable>) -> SessionRegistry {
        self.keep = Some(durable);
        self
    }

    /// The limits new sessions get.
    pub fn limits(&self) -> &SessionLimits {
        &self.limits
    }

    /// Create a session with the given random id and token, kept in the state file when the
    /// registry keeps sessions. `None` when the registry is full.
    pub fn create(&self, id: String, resume_token: String, now: Instant) -> Option<Arc<Session>> {
        let keep = self.keep.clone();
        let session = self.insert(id, Some(resume_token), None, keep, now)?;
        session.keep_presence(false);
        Some(session)
    }

    /// Create a session for an in-process client (`mcp::local`): never kept, since its
    /// token never leaves the process and nobody could resume it after a restart.
    pub fn create_in_process(
        &self,
        id: String,
        resume_token: String,
        now: Instant,
    ) -> Option<Arc<Session>> {
        self.insert(id, Some(resume_token), None, None, now)
    }

    /// Bring back the sessions the state file kept, detached as they were (a session that
    /// was attached at the crash counts as detached since the restart). Their running calls
    /// end `INTERRUPTED`, recorded at once so another crash keeps that end too.
    pub fn restore(&self, kept: Vec<KeptSession>, now: Instant) -> SessionsRestored {
        let mut report = SessionsRestored::default();
        let Some(durable) = self.keep.clone() else {
            return report;
        };
        for kept in kept {
            let id = kept.id.clone();
            let detached_at =
                Instant::from_epoch(now.since_epoch().saturating_sub(kept.detached_for));
            let Some(session) = self.insert(
                id,
                None,
                Some(kept.token_sha256),
                Some(durable.clone()),
                now,
            ) else {
                tracing::warn!(session = %kept.id, "a kept session was not brought back: EXAI_WS_MAX_SESSIONS reached");
                continue;
            };
            session.presence.lock().expect("presence lock").detached_at = Some(detached_at);
            session.sheddable();
            report.sessions += 1;
            let (results, interrupted) = session.take_back(kept.calls, now);
            report.results += results;
            report.interrupted += interrupted;
        }
        report
    }

    fn insert(
        &self,
        id: String,
        resume_token: Option<String>,
        token_sha256: Option<[u8; 32]>,
        keep: Option<Arc<Durable>>,
        now: Instant,
    ) -> Option<Arc<Session>> {
        let limits = self.limits;
        let token_sha256 = token_sha256
            .or_else(|| resume_token.as_deref().map(kept::token_sha256))
            .expect("a session has a token or its hash");
        let keeping = keep.map(Keeping::new);
        let session = Arc::new(Session {
            limit: Limit::new("session", limits.inflight_max, limits.waiters_max),
            outbox: Outbox::new(
                limits.outbox_frames_max,
                limits.outbox_bytes_max,
                limits.ttl,
            )
            .with_budget(self.budget.clone()),
            id: id.clone(),
            resume_token,
            token_sha256,
            keeping,
            calls: Mutex::new(CallTable::default()),
            result_cache_max: limits.result_cache_max,
            result_ttl: limits.result_ttl,
            presence: Mutex::new(Presence {
                attached: None,
                generations: 0,
                detached_at: None,
            }),
            acked_seq: AtomicU64::new(0),
            observer: self.observer.clone(),
            budget: self.budget.clone(),
            acks: AtomicBool::new(false),
            inbound: Mutex::new(crate::rate::TokenBucket::new(
                limits.rate_per_sec,
                limits.burst,
                now,
            )),
            refused_in_a_row: AtomicU64::new(0),
        });
        let mut sessions = self.sessions.lock().expect("sessions lock");
        if sessions.len() >= limits.sessions_max {
            return None;
        }
        sessions.insert(id, session.clone());
        Some(session)
    }

    /// Find a session for resume, checking its token in constant time.
    pub fn resume(&self, id: &str, resume_token: &str) -> Result<Arc<Session>, ResumeRefused> {
        let session = self
            .sessions
            .lock()
            .expect("sessions lock")
            .get(id)
            .cloned();
        let Some(session) = session else {
            return Err(ResumeRefused::UnknownOrWrongToken);
        };
        let matches: bool = session
            .token_sha256
            .ct_eq(&kept::token_sha256(resume_token))
            .into();
        if matches {
            Ok(session)
        } else {
            Err(ResumeRefused::UnknownOrWrongToken)
        }
    }

    /// Remove sessions detached for longer than the TTL, stopping their calls. Returns how
    /// many expired.
    pub fn expire(&self, now: Instant) -> usize {
        let ttl = self.limits.ttl;
        let expired: Vec<Arc<Session>> = {
            let mut sessions = self.sessions.lock().expect("sessions lock");
            let ids: Vec<String> = sessions
                .iter()
                .filter(|(_, s)| s.expired(now, ttl))
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| sessions.remove(id)).collect()
        };
        for session in &expired {
            self.budget.not_sheddable(&session.id);
            session.forget();
            let stopped = session.stop_all_calls(StopReason::SessionExpired);
            self.observer.session_expired(&session.id, stopped, now);
            tracing::info!(session = %session.id, calls_stopped = stopped, "session expired");
        }
        expired.len()
    }

    /// Remove a session at once, stopping its calls (an in-process client that closed: its
    /// resume token never left the process, so it cannot come back). Returns how many calls
    /// were stopped, or `None` for an unknown session.
    pub fn close(&self, id: &str, reason: StopReason) -> Option<usize> {
        let session = self.sessions.lock().expect("sessions lock").remove(id)?;
        self.budget.not_sheddable(&session.id);
        session.forget();
        Some(session.stop_all_calls(reason))
    }

    /// Sessions alive now.
    pub fn count(&self) -> usize {
        self.sessions.lock().expect("sessions lock").len()
    }

    /// Every session, in id order.
    pub fn all(&self) -> Vec<Arc<Session>> {
        self.sessions
            .lock()
            .expect("sessions lock")
            .values()
            .cloned()
            .collect()
    }
}
