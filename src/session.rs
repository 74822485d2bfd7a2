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

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use subtle::ConstantTimeEq;
use tokio::sync::{Notify, oneshot};

use crate::admission::Limit;
use crate::config::Config;
use crate::durable::{Durable, Kept};
use crate::error::ErrorCode;
use crate::kept::{self, CallRecord, KeptSession, SessionRecord};
use crate::observe::Observer;
use crate::outbox::Outbox;
use crate::protocol::ServerFrame;
use crate::rt::Instant;
use crate::rt::store::RecordKind;

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

/// What the state file holds of one call of a kept session.
#[derive(Debug, Clone, Copy)]
struct KeptRecord {
    /// The seq its terminal frame went out with; `None` while the call runs.
    seq: Option<u64>,
    /// Whether the result cache still answers repeats from it.
    cached: bool,
}

/// A frame kept across a restart, delivered by the first resume.
#[derive(Debug)]
struct Replay {
    /// The call.
    request_id: String,
    /// The seq it had before the restart (`None`: never sent, e.g. `INTERRUPTED`).
    seq: Option<u64>,
    /// Whether the result cache answers repeats from it.
    cached: bool,
    /// The terminal frame.
    frame: ServerFrame,
}

/// How a kept session writes its records.
struct Keeping {
    /// The state writer.
    durable: Arc<Durable>,
    /// Calls with a record, by request id.
    records: Mutex<BTreeMap<String, KeptRecord>>,
    /// What the first resume after a restart delivers (`None`: no restart to deliver, or
    /// delivered already).
    replay: Mutex<Option<Vec<Replay>>>,
    /// Set when the session ended: its records are gone, and nothing writes them again.
    forgotten: std::sync::atomic::AtomicBool,
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

    /// The client acked everything up to `seq`: a kept result it has and the result cache
    /// no longer holds leaves the state file.
    pub fn ack(&self, seq: u64) {
        let acked = self.acked_seq.fetch_max(seq, Ordering::SeqCst).max(seq);
        self.outbox.ack(seq);
        if let Some(keeping) = self.keeping() {
            let mut records = keeping.records.lock().expect("records lock");
            let done: Vec<String> = records
                .iter()
                .filter(|(_, r)| !r.cached && r.seq.is_some_and(|s| s <= acked))
                .map(|(id, _)| id.clone())
                .collect();
            for request_id in done {
                records.remove(&request_id);
                let key = kept::call_key(&self.id, &request_id);
                keeping.durable.delete(RecordKind::Call, &key);
            }
        }
    }

    /// True when the session is kept in the state file.
    pub fn is_kept(&self) -> bool {
        self.keeping().is_some()
    }

    /// How the session keeps its records, unless it is not kept or has ended.
    fn keeping(&self) -> Option<&Keeping> {
        self.keeping
            .as_ref()
            .filter(|k| !k.forgotten.load(Ordering::SeqCst))
    }

    /// Push a kept call's `call_tool_ack`, held until its acceptance is committed: if the
    /// daemon dies after the client saw the ack, the client that resumes gets `INTERRUPTED`
    /// for it; if before, the client never saw it and sends the call again. A session that is
    /// not kept pushes the ack as it is.
    pub fn push_accepted(
        self: &Arc<Self>,
        ack: ServerFrame,
        tool: &str,
        arguments: Option<String>,
        timeout_ms: u64,
        now: Instant,
    ) {
        let (Some(keeping), Some(arguments)) = (self.keeping(), arguments) else {
            self.push(ack, now);
            return;
        };
        let request_id = ack.request_id().expect("an ack names its call").to_string();
        let seq = self.push_with(ack, now, true).seq;
        let accepted_unix_ms = keeping.durable.unix_time_ms();
        let body = CallRecord::accepted_body(
            tool,
            arguments,
            accepted_unix_ms,
            accepted_unix_ms + timeout_ms,
        );
        let record = KeptRecord {
            seq: None,
            cached: false,
        };
        let mut records = keeping.records.lock().expect("records lock");
        records.insert(request_id.clone(), record);
        let key = kept::call_key(&self.id, &request_id);
        let release = self.release_when_kept(seq, request_id);
        keeping
            .durable
            .put_then(RecordKind::Call, &key, body, release);
    }

    /// What releases held frame `seq` of call `request_id` once its record is committed, or
    /// once the state file gave up on it (then the observer is told).
    fn release_when_kept(self: &Arc<Self>, seq: u64, request_id: String) -> crate::durable::Done {
        let session = Arc::downgrade(self);
        Box::new(move |kept| {
            let Some(session) = session.upgrade() else {
                return;
            };
            if kept == Kept::No {
                tracing::warn!(session = %session.id, request_id = %request_id, "a frame went out before the state file kept it (persistence degraded)");
                session.observer.frame_not_kept(&session.id, &request_id);
            }
            session.outbox.release(seq);
        })
    }

    /// Write the session's record now and say when it is kept: a new session's `hello_ack`
    /// waits for it, so a client never holds a session id that a crash could forget. `None`
    /// when the session is not kept.
    pub fn when_kept(&self) -> Option<oneshot::Receiver<Kept>> {
        let keeping = self.keeping()?;
        let (tell, told) = oneshot::channel();
        let body = SessionRecord::body(&self.token_sha256, None);
        let done = Box::new(move |kept| {
            let _ = tell.send(kept);
        });
        keeping
            .durable
            .put_then(RecordKind::Session, &self.id, body, done);
        Some(told)
    }

    /// Push a call's terminal frame: for a kept session, held until its record (with the seq
    /// it goes out with) is committed.
    fn push_terminal(
        self: &Arc<Self>,
        request_id: &str,
        terminal: ServerFrame,
        cached: bool,
        now: Instant,
    ) {
        let Some(keeping) = self.keeping() else {
            self.push(terminal, now);
            return;
        };
        let stamped = self.push_with(terminal, now, true);
        let seq = stamped.seq;
        let ended_unix_ms = keeping.durable.unix_time_ms();
        let body = CallRecord::finished_body(Some(seq), cached, ended_unix_ms, stamped.text());
        let record = KeptRecord {
            seq: Some(seq),
            cached,
        };
        let mut records = keeping.records.lock().expect("records lock");
        records.insert(request_id.to_string(), record);
        let key = kept::call_key(&self.id, request_id);
        let release = self.release_when_kept(seq, request_id.to_string());
        keeping
            .durable
            .put_then(RecordKind::Call, &key, body, release);
    }

    /// Results the cache let go: a kept one the client has acked leaves the state file.
    fn uncache(&self, request_ids: Vec<String>) {
        let Some(keeping) = self.keeping() else {
            return;
        };
        let acked = self.acked_seq.load(Ordering::SeqCst);
        let mut records = keeping.records.lock().expect("records lock");
        for request_id in request_ids {
            let Some(record) = records.get_mut(&request_id) else {
                continue;
            };
            record.cached = false;
            if record.seq.is_some_and(|s| s <= acked) {
                records.remove(&request_id);
                let key = kept::call_key(&self.id, &request_id);
                keeping.durable.delete(RecordKind::Call, &key);
            }
        }
    }

    /// Keep whether a connection serves the session (a crash turns "attached" into
    /// "detached since the restart").
    fn keep_presence(&self, detached: bool) {
        let Some(keeping) = self.keeping() else {
            return;
        };
        let detached_unix_ms = detached.then(|| keeping.durable.unix_time_ms());
        let body = SessionRecord::body(&self.token_sha256, detached_unix_ms);
        keeping.durable.put(RecordKind::Session, &self.id, body);
    }

    /// The session ended (expired, closed): its records leave the state file, and nothing it
    /// still does writes them again.
    fn forget(&self) {
        let Some(keeping) = self.keeping() else {
            return;
        };
        keeping.forgotten.store(true, Ordering::SeqCst);
        let records = std::mem::take(&mut *keeping.records.lock().expect("records lock"));
        for request_id in records.keys() {
            let key = kept::call_key(&self.id, request_id);
            keeping.durable.delete(RecordKind::Call, &key);
        }
        keeping.durable.delete(RecordKind::Session, &self.id);
    }

    /// Take back the calls the state file kept: finished ones answer repeats (if cached and
    /// within the result TTL) and wait for the first resume (within the session TTL);
    /// accepted ones end `INTERRUPTED`, recorded now. Returns (results, interrupted).
    fn take_back(&self, mut calls: Vec<kept::KeptCall>, now: Instant) -> (usize, usize) {
        // Oldest first: the result cache evicts in that order.
        calls.sort_by_key(|call| std::cmp::Reverse(call.age));
        let keeping = self.keeping.as_ref().expect("a restored session is kept");
        let ttl = self.outbox_ttl();
        let mut replay = Vec::new();
        let (mut results, mut interrupted) = (0, 0);
        let mut table = self.calls.lock().expect("calls lock");
        let mut records = keeping.records.lock().expect("records lock");
        for call in calls {
            let key = kept::call_key(&self.id, &call.request_id);
            let (seq, cached, frame) = match call.record {
                CallRecord::Finished {
                    seq, cached, frame, ..
                } => (seq, cached && call.age < self.result_ttl, frame),
                accepted @ CallRecord::Accepted { .. } => {
                    let frame = kept::interrupted(&call.request_id, &accepted);
                    // The same record, finished: a second crash delivers this end again.
                    let ended_unix_ms = keeping.durable.unix_time_ms();
                    let body =
                        CallRecord::finished_body(None, false, ended_unix_ms, &frame.to_json());
                    keeping.durable.put(RecordKind::Call, &key, body);
                    interrupted += 1;
                    (None, false, frame)
                }
            };
            if cached {
                let ended_at = Instant::from_epoch(now.since_epoch().saturating_sub(call.age));
                let finished = FinishedCall {
                    terminal: frame.clone(),
                    ended_at,
                };
                table.finished.insert(call.request_id.clone(), finished);
                table.finished_order.push_back(call.request_id.clone());
            }
            let deliver = seq.is_none() || call.age < ttl;
            if deliver {
                results += usize::from(seq.is_some());
                replay.push(Replay {
                    request_id: call.request_id.clone(),
                    seq,
                    cached,
                    frame,
                });
            }
            if deliver || cached {
                records.insert(call.request_id, KeptRecord { seq, cached });
            } else {
                keeping.durable.delete(RecordKind::Call, &key);
            }
        }
        // Sent again in the order they were sent; never-sent ones (`INTERRUPTED`) last.
        replay.sort_by_key(|r| (r.seq.is_none(), r.seq));
        *keeping.replay.lock().expect("replay lock") = Some(replay);
        (results, interrupted)
    }

    /// How long unacked frames are kept.
    fn outbox_ttl(&self) -> Duration {
        self.outbox.ttl()
    }

    /// The first resume after a restart: seqs go on after `client_last_seq`, the client's
    /// last one; every kept frame it has not received is sent again (new seq, same record),
    /// and an `INTERRUPTED` for each call that was running. Later resumes find nothing here.
    pub fn deliver_kept(self: &Arc<Self>, client_last_seq: u64, now: Instant) -> usize {
        let Some(keeping) = self.keeping() else {
            return 0;
        };
        let Some(replay) = keeping.replay.lock().expect("replay lock").take() else {
            return 0;
        };
        // Even with nothing to deliver: no seq the client saw before the restart is reused.
        self.outbox.continue_after(client_last_seq);
        let mut delivered = 0;
        for item in replay {
            let seen = item.seq.is_some_and(|seq| seq <= client_last_seq);
            if seen {
                // The client has it: as good as acked.
                if !item.cached {
                    keeping
                        .records
                        .lock()
                        .expect("records lock")
                        .remove(&item.request_id);
                    let key = kept::call_key(&self.id, &item.request_id);
                    keeping.durable.delete(RecordKind::Call, &key);
                }
                continue;
            }
            // Under the calls lock, as any terminal frame, so a repeat sees it or its end.
            let calls = self.calls.lock().expect("calls lock");
            if calls.running.contains_key(&item.request_id) {
                continue;
            }
            self.push_terminal(&item.request_id, item.frame, item.cached, now);
            drop(calls);
            delivered += 1;
        }
        delivered
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
            let oldest = calls.finished_order.pop_front().expect("front exists");
            calls.finished.remove(&oldest);
            evicted.push(oldest);
        }
        evicted
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
            let previous = calls.finished.insert(
                request_id.to_string(),
                FinishedCall {
                    terminal: terminal.clone(),
                    ended_at: now,
                },
            );
            if previous.is_some() {
                calls.finished_order.retain(|id| id != request_id);
            }
            calls.finished_order.push_back(request_id.to_string());
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
        self.keep_presence(false);
        // A kicked writer may have consumed the outbox's wake-up: re-arm it for the new one.
        self.outbox.wake();
        (generation, kick)
    }

    /// The connection of `generation` left. No effect if a newer one already took over.
    pub fn detach(&self, generation: u64, now: Instant) {
        let mut presence = self.presence.lock().expect("presence lock");
        if presence
            .attached
            .as_ref()
            .is_some_and(|a| a.generation == generation)
        {
            presence.attached = None;
            presence.detached_at = Some(now);
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
        }
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
        let keeping = keep.map(|durable| Keeping {
            durable,
            records: Mutex::new(BTreeMap::new()),
            replay: Mutex::new(None),
            forgotten: std::sync::atomic::AtomicBool::new(false),
        });
        let session = Arc::new(Session {
            limit: Limit::new("session", limits.inflight_max, limits.waiters_max),
            outbox: Outbox::new(
                limits.outbox_frames_max,
                limits.outbox_bytes_max,
                limits.ttl,
            ),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::durable::DurableLimits;
    use crate::error::CallError;
    use crate::rt::Rt;
    use crate::rt::store::{MemoryStore, Store};

    fn limits() -> SessionLimits {
        SessionLimits {
            inflight_max: 4,
            waiters_max: 4,
            outbox_frames_max: 64,
            outbox_bytes_max: 1 << 20,
            ttl: Duration::from_secs(300),
            sessions_max: 8,
            rate_per_sec: 100,
            burst: 100,
            result_cache_max: 8,
            result_ttl: Duration::from_secs(300),
        }
    }

    /// A registry keeping its sessions in `disk`, as a daemon started on it would.
    fn start_on(rt: &Rt, disk: &Arc<MemoryStore>) -> (SessionRegistry, Arc<Durable>) {
        let writer_limits = DurableLimits {
            queue_max: 64,
            batch_max: 16,
            hold: Duration::from_secs(5),
        };
        let durable = Durable::new(rt.clone(), disk.clone(), writer_limits);
        rt.spawn("writer", durable.clone().run());
        let observer = Arc::new(crate::observe::NoObserver);
        let registry = SessionRegistry::new(limits(), observer).with_keep(durable.clone());
        (registry, durable)
    }

    fn kept_sessions(disk: &MemoryStore, rt: &Rt) -> kept::Gathered {
        let sessions = disk.load(RecordKind::Session).unwrap();
        let calls = disk.load(RecordKind::Call).unwrap();
        let ttl = limits().ttl;
        kept::gather(sessions, calls, rt.unix_time_ms(), ttl, ttl)
    }

    fn begin(session: &Arc<Session>, request_id: &str, now: Instant) {
        assert!(matches!(session.begin_call(request_id, now), Begin::New(_)));
        let ack = ServerFrame::CallToolAck {
            request_id: request_id.to_string(),
            accepted: true,
            timeout: 60.0,
            name: "chat".into(),
            joined: false,
        };
        session.push_accepted(ack, "chat", Some("00".into()), 60_000, now);
    }

    #[tokio::test]
    async fn a_kept_session_comes_back_with_its_results_and_interrupted_calls_once() {
        let rt = Rt::new(Arc::new(crate::rt::tokio::TokioRuntime::new()));
        let disk = Arc::new(MemoryStore::as_disk());
        let (registry, durable) = start_on(&rt, &disk);
        let now = rt.now();
        let session = registry.create("s1".into(), "token".into(), now).unwrap();
        begin(&session, "done", now);
        begin(&session, "running", now);
        begin(&session, "acked", now);
        let result = |id: &str| ServerFrame::call_succeeded(id.to_string(), format!("{id}!"));
        session.finish_call("acked", result("acked"), now);
        session.finish_call("done", result("done"), now);
        // Held until committed: nothing reaches a writer before the record is on disk.
        let before = session.outbox.frames_after(0, now).frames.len();
        assert!(durable.flush(Duration::from_secs(5)).await);
        let after = session.outbox.frames_after(0, now).frames;
        assert_eq!(
            (before, after.len()),
            (0, 5),
            "3 acks and 2 results, released by the commit"
        );
        let acked_seq = after
            .iter()
            .find(|f| f.frame.is_terminal() && f.frame.request_id() == Some("acked"))
            .unwrap()
            .seq;
        session.ack(acked_seq);
        assert!(durable.flush(Duration::from_secs(5)).await);
        drop(registry); // the daemon dies; the disk stays

        let (registry, durable) = start_on(&rt, &disk);
        let gathered = kept_sessions(&disk, &rt);
        assert!(gathered.forget.is_empty(), "{:?}", gathered.forget);
        let report = registry.restore(gathered.sessions, rt.now());
        let expected = SessionsRestored {
            sessions: 1,
            results: 2,
            interrupted: 1,
        };
        assert_eq!(report, expected);
        assert!(
            registry.resume("s1", "wrong").is_err(),
            "the token's hash is checked"
        );
        let session = registry.resume("s1", "token").unwrap();
        assert_eq!(session.resume_token(), None, "only its hash was kept");
        // The client has everything up to the acked result: "done" and the INTERRUPTED end
        // come, with seqs after the client's.
        let now = rt.now();
        assert_eq!(session.deliver_kept(acked_seq, now), 2);
        assert_eq!(
            session.deliver_kept(acked_seq, now),
            0,
            "the first resume only"
        );
        assert!(durable.flush(Duration::from_secs(5)).await);
        let frames = session.outbox.frames_after(acked_seq, now).frames;
        let ids: Vec<_> = frames
            .iter()
            .map(|f| f.frame.request_id().unwrap())
            .collect();
        assert_eq!(ids, ["done", "running"]);
        assert!(frames[0].seq > acked_seq);
        let ServerFrame::CallToolRes { error, .. } = &frames[1].frame else {
            panic!("{:?}", frames[1]);
        };
        let error: &CallError = error.as_ref().unwrap();
        assert_eq!(error.code, ErrorCode::Interrupted);
        // A repeat of the finished call is its kept result; of the interrupted one, a new call.
        assert!(matches!(
            session.begin_call("done", now),
            Begin::Finished(_)
        ));
        assert!(matches!(session.begin_call("running", now), Begin::New(_)));
        // The session expires: every record goes.
        registry.close("s1", StopReason::ClientGone);
        assert!(durable.flush(Duration::from_secs(5)).await);
        let left = kept_sessions(&disk, &rt);
        assert!(
            left.sessions.is_empty() && left.forget.is_empty(),
            "{left:?}"
        );
    }
}
