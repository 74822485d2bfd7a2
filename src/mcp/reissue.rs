//! `/mcp` calls that outlive the request that started them, daemon-wide: stateless calls
//! (protocol 2026-07-28) found again by request id, and tasks (the tasks extension) found by
//! task id. A stateless client whose stream dropped sends the same request again, and joins
//! the running call or gets its stored result, as a WebSocket client does with a repeated
//! request id; a task's client polls it. The provider is never asked twice.
//!
//! Why a daemon-wide table: a stateless request has no session; each one reaches a handler of
//! its own, which is gone when its stream goes. So a stateless call runs on a core session of
//! its own, owned by the call's task instead of the handler, and is found again here. The key
//! is the request id together with a digest of the tool and its arguments: request ids are
//! only unique per client, and a client sending the same id with other arguments is asking
//! something else. Only `notifications/cancelled` naming the request id cancels such a call;
//! a dropped stream never does. A task is keyed by its task id (`task:<id>`; a request's key
//! always holds a `/`, so the two never meet), and only `tasks/cancel` cancels it.
//!
//! The table is plain data under one lock, with no clock of its own: callers pass the
//! instant ([`When`]), so it runs the same in the simulator.
//!
//! Bounded: calls running at once by `EXAI_WS_MAX_SESSIONS` (each is a core session), results
//! kept by `EXAI_RESULT_CACHE_MAX` and for `EXAI_RESULT_TTL_SECS`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use crate::config::key;
use crate::error::{CallError, ErrorCode};
use crate::protocol::ServerFrame;
use crate::rt::Instant;

/// The table's bounds, from configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReissueLimits {
    /// Calls running at once.
    pub running_max: usize,
    /// Finished results kept.
    pub results_max: usize,
    /// How long a finished result is kept.
    pub result_ttl: Duration,
}

/// How to cancel a running call.
pub type Cancel = Box<dyn FnOnce() + Send>;

/// An instant as the table records it: on the seam's monotonic clock (for the TTL) and on its
/// wall clock (what a task reports as `createdAt` and `lastUpdatedAt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct When {
    /// The monotonic instant.
    pub at: Instant,
    /// Milliseconds since the Unix epoch.
    pub unix_ms: u64,
}

/// What a task's poller learns of one call: when it started and last changed, what it is
/// doing, and its terminal frame once it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Peek {
    /// When it started (Unix ms).
    pub created_ms: u64,
    /// When it last changed: started, reported progress, or ended (Unix ms).
    pub updated_ms: u64,
    /// Its latest progress message ("waiting for capacity", ...), if any.
    pub message: Option<String>,
    /// Its terminal frame, once it ended.
    pub frame: Option<ServerFrame>,
}

/// Where one call is.
enum State {
    /// Running: who waits for its terminal frame, and how to cancel it.
    Running {
        /// The waiters: the first request, and every one sent again since.
        waiters: Vec<oneshot::Sender<ServerFrame>>,
        /// Taken by the first cancel.
        cancel: Option<Cancel>,
    },
    /// Finished at `at`.
    Done {
        /// Its terminal frame.
        frame: ServerFrame,
        /// When it finished.
        at: Instant,
    },
}

/// One call.
struct Entry {
    /// The JSON-RPC request id, as `notifications/cancelled` names it; `None` for a task,
    /// which only `tasks/cancel` cancels.
    request_id: Option<String>,
    /// When it started (Unix ms).
    created_ms: u64,
    /// When it last changed (Unix ms).
    updated_ms: u64,
    /// Its latest progress message.
    message: Option<String>,
    /// Where it is.
    state: State,
}

/// What a request found: the call it joined (running, or finished and kept), or the one it
/// started. Either way its terminal frame arrives on the receiver.
pub enum Found {
    /// Sent again while it runs: it joins.
    Joined(oneshot::Receiver<ServerFrame>),
    /// Sent again after it ended: its kept result.
    Stored(oneshot::Receiver<ServerFrame>),
    /// The first: the call was started.
    Started(oneshot::Receiver<ServerFrame>),
}

/// The table.
pub struct Reissued {
    /// Its bounds.
    limits: ReissueLimits,
    /// Calls by key, under one lock.
    entries: Mutex<BTreeMap<String, Entry>>,
}

impl Reissued {
    /// An empty table.
    pub fn new(limits: ReissueLimits) -> Reissued {
        Reissued {
            limits,
            entries: Mutex::new(BTreeMap::new()),
        }
    }

    /// The key of request `request_id` calling `name` with `arguments` (whose keys are
    /// sorted: `serde_json::Map` is ordered, so equal arguments give equal keys).
    pub fn key(request_id: &str, name: &str, arguments: &Map<String, Value>) -> String {
        let mut digest = Sha256::new();
        digest.update(name.as_bytes());
        digest.update([0]);
        digest.update(Value::Object(arguments.clone()).to_string().as_bytes());
        let hex: String = digest
            .finalize()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{request_id}/{hex}")
    }

    /// The key of a task.
    pub fn task_key(task_id: &str) -> String {
        format!("task:{task_id}")
    }

    /// Join the call under `key` if there is one (a result past its TTL is forgotten), else
    /// `start` it and record it. One lock around both, so two copies of one request sent at
    /// once start one call. Refused when `EXAI_WS_MAX_SESSIONS` such calls already run.
    pub fn join_or_start(
        &self,
        key: String,
        request_id: Option<&str>,
        now: When,
        start: impl FnOnce() -> Result<Cancel, CallError>,
    ) -> Result<Found, CallError> {
        let mut entries = self.entries.lock().expect("reissue lock");
        self.prune(&mut entries, now.at);
        let (sender, receiver) = oneshot::channel();
        if let Some(entry) = entries.get_mut(&key) {
            return Ok(match &mut entry.state {
                State::Running { waiters, .. } => {
                    waiters.push(sender);
                    Found::Joined(receiver)
                }
                State::Done { frame, .. } => {
                    let _ = sender.send(frame.clone());
                    Found::Stored(receiver)
                }
            });
        }
        let running = entries
            .values()
            .filter(|e| matches!(e.state, State::Running { .. }))
            .count();
        if running >= self.limits.running_max {
            return Err(CallError::new(
                ErrorCode::OverCapacity,
                format!(
                    "{running} stateless MCP calls and tasks already run ({}); retry when some have ended",
                    key::EXAI_WS_MAX_SESSIONS
                ),
            ));
        }
        let cancel = start()?;
        let entry = Entry {
            request_id: request_id.map(str::to_string),
            created_ms: now.unix_ms,
            updated_ms: now.unix_ms,
            message: None,
            state: State::Running {
                waiters: vec![sender],
                cancel: Some(cancel),
            },
        };
        let previous = entries.insert(key, entry);
        assert!(previous.is_none(), "a key is recorded once");
        Ok(Found::Started(receiver))
    }

    /// The call under `key` ended with `frame`: every waiter gets it, and it is kept.
    pub fn finish(&self, key: &str, frame: ServerFrame, now: When) {
        let mut entries = self.entries.lock().expect("reissue lock");
        let entry = entries.get_mut(key).expect("a running call is registered");
        entry.updated_ms = now.unix_ms;
        let done = State::Done {
            frame: frame.clone(),
            at: now.at,
        };
        let State::Running { waiters, .. } = std::mem::replace(&mut entry.state, done) else {
            panic!("a call finishes once");
        };
        for waiter in waiters {
            // A waiter whose stream went is no reason to stop telling the others.
            let _ = waiter.send(frame.clone());
        }
        self.prune(&mut entries, now.at);
    }

    /// The running call under `key` reported progress: its message is what a poller sees.
    pub fn note(&self, key: &str, message: &str, now: When) {
        let mut entries = self.entries.lock().expect("reissue lock");
        if let Some(entry) = entries.get_mut(key)
            && matches!(entry.state, State::Running { .. })
        {
            entry.message = Some(message.to_string());
            entry.updated_ms = now.unix_ms;
        }
    }

    /// What is known of the call under `key` now; `None` when there is none (never started,
    /// or its result was forgotten after the TTL or beyond the cap).
    pub fn peek(&self, key: &str, now: Instant) -> Option<Peek> {
        let mut entries = self.entries.lock().expect("reissue lock");
        self.prune(&mut entries, now);
        let entry = entries.get(key)?;
        Some(Peek {
            created_ms: entry.created_ms,
            updated_ms: entry.updated_ms,
            message: entry.message.clone(),
            frame: match &entry.state {
                State::Running { .. } => None,
                State::Done { frame, .. } => Some(frame.clone()),
            },
        })
    }

    /// Cancel the call under `key` if it still runs. Returns whether there is such a call at
    /// all (running, or ended and kept): cancelling an ended one is no error, and changes
    /// nothing.
    pub fn cancel_key(&self, key: &str) -> bool {
        let cancel = {
            let mut entries = self.entries.lock().expect("reissue lock");
            let Some(entry) = entries.get_mut(key) else {
                return false;
            };
            match &mut entry.state {
                State::Running { cancel, .. } => cancel.take(),
                State::Done { .. } => None,
            }
        };
        if let Some(cancel) = cancel {
            cancel();
        }
        true
    }

    /// `notifications/cancelled` for `request_id`: cancel every running call it names.
    /// Returns how many.
    pub fn cancel(&self, request_id: &str) -> usize {
        let cancels: Vec<Cancel> = {
            let mut entries = self.entries.lock().expect("reissue lock");
            entries
                .values_mut()
                .filter(|e| e.request_id.as_deref() == Some(request_id))
                .filter_map(|e| match &mut e.state {
                    State::Running { cancel, .. } => cancel.take(),
                    State::Done { .. } => None,
                })
                .collect()
        };
        let count = cancels.len();
        for cancel in cancels {
            cancel();
        }
        count
    }

    /// Forget results past their TTL, and the oldest beyond the cap.
    fn prune(&self, entries: &mut BTreeMap<String, Entry>, now: Instant) {
        let ttl = self.limits.result_ttl;
        entries.retain(|_, e| match e.state {
            State::Done { at, .. } => now.saturating_since(at) < ttl,
            State::Running { .. } => true,
        });
        let mut done: Vec<(Instant, String)> = entries
            .iter()
            .filter_map(|(k, e)| match e.state {
                State::Done { at, .. } => Some((at, k.clone())),
                State::Running { .. } => None,
            })
            .collect();
        if done.len() > self.limits.results_max {
            done.sort();
            let excess = done.len() - self.limits.results_max;
            for (_, k) in done.into_iter().take(excess) {
                entries.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    const LIMITS: ReissueLimits = ReissueLimits {
        running_max: 2,
        results_max: 1,
        result_ttl: Duration::from_secs(300),
    };

    fn at(secs: u64) -> When {
        When {
            at: Instant::from_epoch(Duration::from_secs(secs)),
            unix_ms: 1_000 * secs,
        }
    }

    fn start(
        table: &Reissued,
        key: &str,
        request_id: &str,
        now: When,
        cancel: Cancel,
    ) -> Result<Found, CallError> {
        table.join_or_start(key.into(), Some(request_id), now, move || Ok(cancel))
    }

    #[test]
    fn keys_tell_arguments_apart_and_ignore_their_order() {
        let a: Map<String, Value> = serde_json::from_str(r#"{"x":1,"y":2}"#).unwrap();
        let b: Map<String, Value> = serde_json::from_str(r#"{"y":2,"x":1}"#).unwrap();
        let c: Map<String, Value> = serde_json::from_str(r#"{"x":1,"y":3}"#).unwrap();
        assert_eq!(
            Reissued::key("7", "chat", &a),
            Reissued::key("7", "chat", &b)
        );
        assert_ne!(
            Reissued::key("7", "chat", &a),
            Reissued::key("7", "chat", &c)
        );
        assert_ne!(
            Reissued::key("7", "chat", &a),
            Reissued::key("8", "chat", &a)
        );
    }

    #[test]
    fn a_request_sent_again_joins_the_running_call_then_gets_its_result() {
        let table = Reissued::new(LIMITS);
        let Ok(Found::Started(mut first)) = start(&table, "k", "7", at(0), Box::new(|| {})) else {
            panic!("starts");
        };
        let Ok(Found::Joined(mut second)) = start(&table, "k", "7", at(1), Box::new(|| {})) else {
            panic!("joins");
        };
        let frame = ServerFrame::call_succeeded("r".into(), "done".into());
        table.finish("k", frame.clone(), at(2));
        assert_eq!(first.try_recv().unwrap(), frame);
        assert_eq!(second.try_recv().unwrap(), frame);
        let Ok(Found::Stored(mut third)) = start(&table, "k", "7", at(3), Box::new(|| {})) else {
            panic!("stored");
        };
        assert_eq!(third.try_recv().unwrap(), frame);
        assert!(
            matches!(
                start(&table, "k", "7", at(400), Box::new(|| {})),
                Ok(Found::Started(_))
            ),
            "forgotten after the TTL"
        );
    }

    #[test]
    fn only_a_cancel_naming_the_request_id_cancels_and_running_calls_are_bounded() {
        let table = Reissued::new(LIMITS);
        let cancelled = Arc::new(AtomicUsize::new(0));
        let count = cancelled.clone();
        let counting: Cancel = Box::new(move || {
            count.fetch_add(1, Ordering::SeqCst);
        });
        let _first = start(&table, "a", "7", at(0), counting).unwrap();
        let _second = start(&table, "b", "8", at(0), Box::new(|| {})).unwrap();
        let Err(refused) = start(&table, "c", "9", at(0), Box::new(|| {})) else {
            panic!("bounded");
        };
        assert!(
            refused.message.contains("EXAI_WS_MAX_SESSIONS"),
            "{refused:?}"
        );
        assert_eq!(table.cancel("nobody"), 0);
        assert_eq!(table.cancel("7"), 1);
        assert_eq!(table.cancel("7"), 0, "once");
        assert_eq!(cancelled.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_task_is_peeked_and_cancelled_by_its_key_only() {
        let table = Reissued::new(LIMITS);
        let cancelled = Arc::new(AtomicUsize::new(0));
        let count = cancelled.clone();
        let key = Reissued::task_key("abc");
        let started = table.join_or_start(key.clone(), None, at(1), move || {
            Ok(Box::new(move || {
                count.fetch_add(1, Ordering::SeqCst);
            }))
        });
        assert!(matches!(started, Ok(Found::Started(_))));
        let running = table.peek(&key, at(1).at).unwrap();
        assert_eq!((running.created_ms, running.frame), (1_000, None));
        table.note(&key, "waiting for capacity", at(2));
        let noted = table.peek(&key, at(2).at).unwrap();
        assert_eq!(noted.message.as_deref(), Some("waiting for capacity"));
        assert_eq!(noted.updated_ms, 2_000);
        assert_eq!(table.cancel("abc"), 0, "a request id never names a task");
        assert!(table.cancel_key(&key));
        assert!(!table.cancel_key("task:nobody"));
        assert_eq!(cancelled.load(Ordering::SeqCst), 1);
        let frame = ServerFrame::call_succeeded("r".into(), "done".into());
        table.finish(&key, frame.clone(), at(3));
        assert_eq!(table.peek(&key, at(3).at).unwrap().frame, Some(frame));
        assert!(table.cancel_key(&key), "an ended task is still known");
        assert_eq!(
            cancelled.load(Ordering::SeqCst),
            1,
            "and not cancelled again"
        );
        assert!(
            table.peek(&key, at(400).at).is_none(),
            "forgotten after the TTL"
        );
    }
}
