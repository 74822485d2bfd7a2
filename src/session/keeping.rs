//! A session kept in the state file: the records it writes (its own, and one per call:
//! accepted, then finished), the frames it holds in the outbox until their record is
//! committed, its calls taken back at start-up, and what its first resume after a restart
//! delivers (`INTERRUPTED` for what was running).
//!
//! Why apart from the rest of `session`: a session works the same with or without the state
//! file; this is the part that exists only when it is kept, and every method here does
//! nothing for a session that is not.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use super::{FinishedCall, Session};
use crate::durable::{Done, Durable, Kept};
use crate::kept::{self, CallRecord, SessionRecord};
use crate::protocol::ServerFrame;
use crate::rt::Instant;
use crate::rt::store::RecordKind;

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
pub(super) struct Keeping {
    /// The state writer.
    durable: Arc<Durable>,
    /// Calls with a record, by request id.
    records: Mutex<BTreeMap<String, KeptRecord>>,
    /// What the first resume after a restart delivers (`None`: no restart to deliver, or
    /// delivered already).
    replay: Mutex<Option<Vec<Replay>>>,
    /// Set when the session ended: its records are gone, and nothing writes them again.
    forgotten: AtomicBool,
}

impl Keeping {
    /// Nothing written yet, through `durable`.
    pub(super) fn new(durable: Arc<Durable>) -> Keeping {
        Keeping {
            durable,
            records: Mutex::new(BTreeMap::new()),
            replay: Mutex::new(None),
            forgotten: AtomicBool::new(false),
        }
    }
}

impl Session {
    /// True when the session is kept in the state file.
    pub fn is_kept(&self) -> bool {
        self.keeping().is_some()
    }

    /// How the session keeps its records, unless it is not kept or has ended.
    pub(super) fn keeping(&self) -> Option<&Keeping> {
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
    pub(super) fn release_when_kept(self: &Arc<Self>, seq: u64, request_id: String) -> Done {
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
    pub(super) fn push_terminal(
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
    pub(super) fn uncache(&self, request_ids: Vec<String>) {
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
    pub(super) fn keep_presence(&self, detached: bool) {
        let Some(keeping) = self.keeping() else {
            return;
        };
        let detached_unix_ms = detached.then(|| keeping.durable.unix_time_ms());
        let body = SessionRecord::body(&self.token_sha256, detached_unix_ms);
        keeping.durable.put(RecordKind::Session, &self.id, body);
    }

    /// The session ended (expired, closed): its records leave the state file, and nothing it
    /// still does writes them again.
    pub(super) fn forget(&self) {
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
    pub(super) fn take_back(&self, mut calls: Vec<kept::KeptCall>, now: Instant) -> (usize, usize) {
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
                let finished = FinishedCall::new(frame.clone(), ended_at);
                table.cache(&call.request_id, finished, &self.budget);
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
    pub(super) fn outbox_ttl(&self) -> Duration {
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

    /// The client has everything up to `acked`: kept results it has that the result cache no
    /// longer holds leave the state file.
    pub(super) fn forget_acked(&self, acked: u64) {
        let Some(keeping) = self.keeping() else {
            return;
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::durable::DurableLimits;
    use crate::error::CallError;
    use crate::error::ErrorCode;
    use crate::rt::Rt;
    use crate::rt::store::{MemoryStore, Store};
    use crate::session::{Begin, SessionLimits, SessionRegistry, SessionsRestored, StopReason};

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
