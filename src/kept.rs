//! What a WebSocket session keeps in the state file, so a client that resumes after the
//! daemon restarted finds its session, its unacked results and the calls it was waiting on.
//!
//! Two kinds of record (DESIGN.md section 10): one per session (a hash of its resume token,
//! and since when nobody is attached) and one per call, keyed `<session id>/<request id>`.
//! A call's record is written when it is accepted and written again, in place, when it
//! finishes: one record, so no crash can leave a call with neither its acceptance nor its
//! end. A fast call's two writes usually meet in the writer's queue and reach the disk once.
//!
//! This module is the records and their reading back, kept apart from `session` (which
//! decides when to write them) the way a decoder is kept apart from its handler.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::error::{CallError, ErrorCode};
use crate::protocol::ServerFrame;
use crate::rt::store::{Record, RecordKind};

/// The SHA-256 of a resume token: what the state file keeps instead of the token, so a copy
/// of the file does not let anyone resume a session.
pub fn token_sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A digest of a call's arguments (first 16 bytes of SHA-256, hex): enough to tell, in the
/// state file and the `INTERRUPTED` details, which call it was, without keeping its text.
pub fn arguments_digest(arguments: &Map<String, Value>) -> String {
    let text = serde_json::to_vec(arguments).expect("a JSON map serializes");
    Sha256::digest(&text)[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The key of a call's record. Session ids are hex, so the first `/` ends the session id.
pub fn call_key(session_id: &str, request_id: &str) -> String {
    debug_assert!(!session_id.contains('/'));
    format!("{session_id}/{request_id}")
}

/// A session's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// SHA-256 of the resume token, hex.
    pub token_sha256: String,
    /// Since when nobody is attached (ms since the Unix epoch); `None` while a connection
    /// serves it, which a crash turns into "since the restart".
    pub detached_unix_ms: Option<u64>,
}

impl SessionRecord {
    /// The record's body.
    pub fn body(token_sha256: &[u8; 32], detached_unix_ms: Option<u64>) -> String {
        let record = SessionRecord {
            token_sha256: hex(token_sha256),
            detached_unix_ms,
        };
        serde_json::to_string(&record).expect("a session record serializes")
    }
}

/// A call's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CallRecord {
    /// Accepted, not finished: if the daemon dies now, the call ends `INTERRUPTED`.
    Accepted {
        /// The tool's canonical name.
        tool: String,
        /// [`arguments_digest`] of its arguments.
        arguments: String,
        /// When it was accepted (ms since the Unix epoch).
        accepted_unix_ms: u64,
        /// Its deadline (ms since the Unix epoch).
        deadline_unix_ms: u64,
    },
    /// Finished: its terminal frame, until the client acked it and the result cache let it go.
    Finished {
        /// The seq it was sent with, if it was sent: a resuming client whose `last_seq` is at
        /// or past it has it already.
        seq: Option<u64>,
        /// Whether it answers a repeat of its request id (`INTERRUPTED` never does: a repeat
        /// runs the call).
        cached: bool,
        /// When it ended (ms since the Unix epoch), for the TTLs.
        ended_unix_ms: u64,
        /// The terminal frame.
        frame: ServerFrame,
    },
}

impl CallRecord {
    /// The body of an accepted call's record.
    pub fn accepted_body(
        tool: &str,
        arguments: String,
        accepted_unix_ms: u64,
        deadline_unix_ms: u64,
    ) -> String {
        let record = CallRecord::Accepted {
            tool: tool.to_string(),
            arguments,
            accepted_unix_ms,
            deadline_unix_ms,
        };
        serde_json::to_string(&record).expect("a call record serializes")
    }

    /// The body of a finished call's record, around the frame's text as the outbox rendered
    /// it (its `seq` field is ignored when read back): the frame is not serialized twice.
    pub fn finished_body(
        seq: Option<u64>,
        cached: bool,
        ended_unix_ms: u64,
        frame_text: &str,
    ) -> String {
        debug_assert!(frame_text.starts_with('{'));
        let seq = seq.map_or_else(|| "null".to_string(), |seq| seq.to_string());
        format!(
            "{{\"state\":\"finished\",\"seq\":{seq},\"cached\":{cached},\"ended_unix_ms\":{ended_unix_ms},\"frame\":{frame_text}}}"
        )
    }
}

/// The terminal frame of a call that was accepted when the daemon stopped.
pub fn interrupted(request_id: &str, call: &CallRecord) -> ServerFrame {
    let CallRecord::Accepted {
        tool,
        arguments,
        accepted_unix_ms,
        ..
    } = call
    else {
        unreachable!("only an accepted call is interrupted");
    };
    let error = CallError::new(
        ErrorCode::Interrupted,
        format!(
            "the daemon restarted while this {tool} call ran, and nothing of it was kept; send \
             the same request_id again to run it"
        ),
    )
    .with_retry_after_secs(1)
    .with_details(json!({
        "tool": tool,
        "arguments_digest": arguments,
        "accepted_unix_ms": accepted_unix_ms,
    }));
    ServerFrame::call_failed(request_id.to_string(), error)
}

/// One call of a session as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptCall {
    /// Its request id.
    pub request_id: String,
    /// Its record.
    pub record: CallRecord,
    /// How long ago its record was written.
    pub age: Duration,
}

/// One session as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptSession {
    /// Its id.
    pub id: String,
    /// SHA-256 of its resume token.
    pub token_sha256: [u8; 32],
    /// How long nobody has been attached (zero for a session attached at the crash).
    pub detached_for: Duration,
    /// Its calls, by request id.
    pub calls: Vec<KeptCall>,
}

/// What the state file held, sorted out.
#[derive(Debug, Default)]
pub struct Gathered {
    /// Sessions still within their TTL, with their calls.
    pub sessions: Vec<KeptSession>,
    /// Records to delete: expired, orphaned, past their TTL, or unreadable.
    pub forget: Vec<(RecordKind, String)>,
    /// How many records could not be read (a newer or damaged writer).
    pub unreadable: usize,
}

/// Sort the records read at start-up: sessions detached longer than `ttl` are over, a call
/// record without its session is an orphan, a finished call older than both `ttl` and
/// `result_ttl` is over. Everything over is to be deleted.
pub fn gather(
    sessions: BTreeMap<String, Record>,
    calls: BTreeMap<String, Record>,
    now_unix_ms: u64,
    ttl: Duration,
    result_ttl: Duration,
) -> Gathered {
    let mut gathered = Gathered::default();
    let mut alive: BTreeMap<String, KeptSession> = BTreeMap::new();
    for (id, record) in sessions {
        let Some(session) = read_session(&id, &record, now_unix_ms) else {
            gathered.unreadable += 1;
            gathered.forget.push((RecordKind::Session, id));
            continue;
        };
        if session.detached_for >= ttl {
            gathered.forget.push((RecordKind::Session, id));
        } else {
            alive.insert(id, session);
        }
    }
    let kept_for = ttl.max(result_ttl);
    for (key, record) in calls {
        let Some((session_id, request_id)) = key.split_once('/') else {
            gathered.unreadable += 1;
            gathered.forget.push((RecordKind::Call, key));
            continue;
        };
        let Ok(call) = serde_json::from_str::<CallRecord>(&record.body) else {
            gathered.unreadable += 1;
            gathered.forget.push((RecordKind::Call, key));
            continue;
        };
        let age = Duration::from_millis(now_unix_ms.saturating_sub(record.written_unix_ms));
        let over = matches!(call, CallRecord::Finished { .. }) && age >= kept_for;
        match alive.get_mut(session_id) {
            Some(session) if !over => session.calls.push(KeptCall {
                request_id: request_id.to_string(),
                record: call,
                age,
            }),
            _ => gathered.forget.push((RecordKind::Call, key)),
        }
    }
    gathered.sessions = alive.into_values().collect();
    gathered
}

fn read_session(id: &str, record: &Record, now_unix_ms: u64) -> Option<KeptSession> {
    let body: SessionRecord = serde_json::from_str(&record.body).ok()?;
    let token_sha256 = unhex(&body.token_sha256)?;
    let detached_for = body
        .detached_unix_ms
        .map_or(0, |at| now_unix_ms.saturating_sub(at));
    (!id.is_empty() && !id.contains('/')).then(|| KeptSession {
        id: id.to_string(),
        token_sha256,
        detached_for: Duration::from_millis(detached_for),
        calls: Vec::new(),
    })
}

fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[index * 2..index * 2 + 2], 16).ok()?;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(body: String, written_unix_ms: u64) -> Record {
        Record {
            body,
            written_unix_ms,
        }
    }

    #[test]
    fn records_read_back_and_what_is_over_is_forgotten() {
        let token = token_sha256("secret");
        let ttl = Duration::from_secs(300);
        let now = 1_000_000;
        let sessions = BTreeMap::from([
            (
                "aa".to_string(),
                record(SessionRecord::body(&token, None), 1),
            ),
            (
                "bb".to_string(),
                record(SessionRecord::body(&token, Some(now - 400_000)), 1),
            ),
            ("cc".to_string(), record("{not json".into(), 1)),
        ]);
        let finished = ServerFrame::call_succeeded("r1".into(), "done".into());
        let frame_text = format!("{{\"seq\":7,{}", &finished.to_json()[1..]);
        let calls = BTreeMap::from([
            (
                "aa/r1".to_string(),
                record(
                    CallRecord::finished_body(Some(7), true, now - 10, &frame_text),
                    now - 10,
                ),
            ),
            (
                "aa/r2".to_string(),
                record(
                    CallRecord::accepted_body("chat", "00".into(), 5, 9),
                    now - 10,
                ),
            ),
            (
                "bb/r3".to_string(),
                record(CallRecord::accepted_body("chat", "00".into(), 5, 9), 1),
            ),
            ("nokey".to_string(), record("{}".into(), 1)),
        ]);
        let gathered = gather(sessions, calls, now, ttl, ttl);
        assert_eq!(gathered.sessions.len(), 1, "{gathered:?}");
        let session = &gathered.sessions[0];
        assert_eq!((session.id.as_str(), session.token_sha256), ("aa", token));
        assert_eq!(
            session.detached_for,
            Duration::ZERO,
            "attached at the crash"
        );
        let CallRecord::Finished {
            seq, cached, frame, ..
        } = &session.calls[0].record
        else {
            panic!("{session:?}");
        };
        assert_eq!(
            (*seq, *cached, frame),
            (Some(7), true, &finished),
            "seq is read from the record"
        );
        let interrupted = interrupted("r2", &session.calls[1].record);
        let ServerFrame::CallToolRes {
            error: Some(error), ..
        } = &interrupted
        else {
            panic!("{interrupted:?}");
        };
        assert_eq!(error.code, ErrorCode::Interrupted);
        assert!(error.retryable && error.message.contains("same request_id"));
        let forgotten: Vec<&str> = gathered
            .forget
            .iter()
            .map(|(_, key)| key.as_str())
            .collect();
        assert_eq!(forgotten, ["bb", "cc", "bb/r3", "nokey"]);
        assert_eq!(gathered.unreadable, 2);
    }
}
