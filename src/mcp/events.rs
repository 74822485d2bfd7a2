//! The event store of `/mcp`: every SSE event a call's stream carries is kept here, bounded,
//! so a client whose HTTP stream dropped gets the rest with `Last-Event-ID` instead of losing
//! the result.
//!
//! Why our own and not rmcp's in-memory cache: rmcp without a store cancels a stateless call
//! whose stream drops, and replays nothing to a session client that reconnects. With this
//! store rmcp keeps each stream's events (stateless streams are then not tied to the client's
//! connection), and on `GET` with `Last-Event-ID` asks us for what followed. It is the MCP
//! door's outbox: events numbered per stream in order, the id `<stream>-<seq>` derived from
//! that number, caps on events and bytes per stream (`EXAI_OUTBOX_MAX_FRAMES`,
//! `EXAI_OUTBOX_MAX_BYTES`), on streams (`EXAI_WS_MAX_SESSIONS`), on all bytes together
//! (`EXAI_MCP_EVENTS_BYTES_MAX`), and a stream is kept `EXAI_SESSION_TTL_SECS` after its last
//! event. A replay that asks for events already dropped is refused, naming the cap, rather
//! than answered with a hole.
//!
//! A replay does not stop at what is stored: it follows the stream until the call's response
//! (its terminal event), so a client that reconnects mid-call gets the result when it comes.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::ServerJsonRpcMessage;
use rmcp::transport::common::server_side_http::ServerSseMessage;
use rmcp::transport::streamable_http_server::session::{
    EventId, EventStore, EventStoreError, EventStream,
};
use tokio::sync::Notify;

use crate::rt::{Instant, Rt};

/// The store's bounds, from configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventLimits {
    /// Streams kept at once; the oldest is dropped first.
    pub streams_max: usize,
    /// Events kept per stream; the oldest are dropped first.
    pub events_max: usize,
    /// Bytes kept per stream (JSON of the messages).
    pub stream_bytes_max: usize,
    /// Bytes kept in all streams together.
    pub bytes_max: usize,
    /// How long a stream is kept after its last event.
    pub ttl: Duration,
}

/// One kept event.
struct Kept {
    /// Its number in the stream, from 0.
    seq: u64,
    /// The event, its id set.
    event: ServerSseMessage,
    /// Its size, as counted against the caps.
    bytes: usize,
}

/// One SSE stream's events.
struct Stream {
    /// rmcp's name of the stream.
    name: String,
    /// Kept events, oldest first, contiguous in `seq`.
    kept: VecDeque<Kept>,
    /// The next event's number.
    next_seq: u64,
    /// Bytes of `kept`.
    bytes: usize,
    /// The call's response was stored: nothing follows.
    ended: bool,
    /// When the last event was stored.
    touched_at: Instant,
    /// Wakes replays that follow the stream: an event was stored, or the stream went.
    wake: Arc<Notify>,
}

/// The store's books, under one lock.
#[derive(Default)]
struct Books {
    /// Streams by our number (the first half of an event id); ascending is oldest first.
    streams: BTreeMap<u64, Stream>,
    /// Our number of each rmcp stream name.
    numbers: std::collections::HashMap<String, u64>,
    /// The next stream's number.
    next_stream: u64,
    /// Bytes kept in every stream.
    bytes: usize,
}

/// The event store.
pub struct EventLog {
    /// The clock (the seam).
    rt: Rt,
    /// The caps.
    limits: EventLimits,
    /// The books.
    books: Mutex<Books>,
}

/// Why a replay cannot be served.
#[derive(Debug)]
struct ReplayError(String);

impl std::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ReplayError {}

impl EventLog {
    /// An empty store.
    pub fn new(rt: Rt, limits: EventLimits) -> Arc<EventLog> {
        assert!(limits.streams_max > 0 && limits.events_max > 0);
        Arc::new(EventLog {
            rt,
            limits,
            books: Mutex::new(Books::default()),
        })
    }

    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        self.books.lock().expect("event log lock")
    }

    /// Store `event` on stream `name` and return its id.
    fn store(&self, name: &str, event: &ServerSseMessage) -> EventId {
        let now = self.rt.now();
        let mut books = self.books();
        self.expire(&mut books, now);
        let number = match books.numbers.get(name) {
            Some(number) => *number,
            None => self.open(&mut books, name, now),
        };
        let bytes = event.message.as_ref().map_or(16, |m| {
            serde_json::to_vec(m.as_ref()).map_or(16, |v| v.len())
        });
        let stream = books
            .streams
            .get_mut(&number)
            .expect("numbered streams exist");
        let seq = stream.next_seq;
        let id = format!("{number}-{seq}");
        let mut kept = event.clone();
        kept.event_id = Some(id.clone());
        let terminal = matches!(
            kept.message.as_deref(),
            Some(ServerJsonRpcMessage::Response(_) | ServerJsonRpcMessage::Error(_))
        );
        stream.kept.push_back(Kept {
            seq,
            event: kept,
            bytes,
        });
        stream.next_seq += 1;
        stream.bytes += bytes;
        stream.ended |= terminal;
        stream.touched_at = now;
        let mut freed = 0;
        while stream.kept.len() > self.limits.events_max
            || (stream.bytes > self.limits.stream_bytes_max && stream.kept.len() > 1)
        {
            let dropped = stream.kept.pop_front().expect("over a cap is not empty");
            stream.bytes -= dropped.bytes;
            freed += dropped.bytes;
        }
        stream.wake.notify_waiters();
        books.bytes = books.bytes + bytes - freed;
        self.shrink(&mut books, number);
        assert!(books.streams.len() <= self.limits.streams_max);
        id
    }

    /// Number a new stream, dropping the oldest when there are too many.
    fn open(&self, books: &mut Books, name: &str, now: Instant) -> u64 {
        while books.streams.len() >= self.limits.streams_max {
            let oldest = *books.streams.keys().next().expect("full is not empty");
            Self::remove(books, oldest);
        }
        let number = books.next_stream;
        books.next_stream += 1;
        books.numbers.insert(name.to_string(), number);
        books.streams.insert(
            number,
            Stream {
                name: name.to_string(),
                kept: VecDeque::new(),
                next_seq: 0,
                bytes: 0,
                ended: false,
                touched_at: now,
                wake: Arc::new(Notify::new()),
            },
        );
        number
    }

    /// Drop streams untouched for the TTL.
    fn expire(&self, books: &mut Books, now: Instant) {
        let stale: Vec<u64> = books
            .streams
            .iter()
            .filter(|(_, s)| now.saturating_since(s.touched_at) >= self.limits.ttl)
            .map(|(number, _)| *number)
            .collect();
        for number in stale {
            Self::remove(books, number);
        }
    }

    /// Drop the oldest streams (never `keep`, the one just written) while all bytes are over
    /// the cap.
    fn shrink(&self, books: &mut Books, keep: u64) {
        while books.bytes > self.limits.bytes_max {
            let Some(oldest) = books.streams.keys().copied().find(|n| *n != keep) else {
                break;
            };
            Self::remove(books, oldest);
        }
    }

    fn remove(books: &mut Books, number: u64) {
        if let Some(stream) = books.streams.remove(&number) {
            books.numbers.remove(&stream.name);
            books.bytes -= stream.bytes;
            // Replays following it wake, find it gone and end.
            stream.wake.notify_waiters();
        }
    }

    /// What wakes the replays of stream `number`.
    fn waker(&self, number: u64) -> Option<Arc<Notify>> {
        self.books().streams.get(&number).map(|s| s.wake.clone())
    }

    /// The events of stream `number` from `seq` on that are kept now, and whether the stream
    /// has ended; or why not.
    fn read_from(&self, number: u64, seq: u64) -> Result<(Vec<ServerSseMessage>, bool), String> {
        let books = self.books();
        let stream = books.streams.get(&number).ok_or_else(|| {
            format!(
                "stream {number} is not kept (never seen, or dropped after EXAI_SESSION_TTL_SECS \
                 or under EXAI_MCP_EVENTS_BYTES_MAX)"
            )
        })?;
        let first = stream.kept.front().map_or(stream.next_seq, |k| k.seq);
        if seq < first {
            return Err(format!(
                "events {seq} to {} of stream {number} were dropped (EXAI_OUTBOX_MAX_FRAMES / \
                 EXAI_OUTBOX_MAX_BYTES)",
                first - 1
            ));
        }
        let events = stream
            .kept
            .iter()
            .filter(|k| k.seq >= seq)
            .map(|k| k.event.clone())
            .collect();
        Ok((events, stream.ended))
    }

    /// Events after `last_event_id`, following the stream until its end.
    fn replay(self: &Arc<Self>, last_event_id: &str) -> Result<EventStream, String> {
        let (number, seq) = parse_id(last_event_id)?;
        // Check now, so a bad id is refused instead of answered with an empty stream.
        self.read_from(number, seq.saturating_add(1))?;
        let state = (
            self.clone(),
            number,
            seq.saturating_add(1),
            VecDeque::new(),
            false,
        );
        let stream = futures_util::stream::unfold(
            state,
            |(log, number, mut next, mut ready, mut done)| async move {
                loop {
                    if let Some(event) = ready.pop_front() {
                        return Some((event, (log, number, next, ready, done)));
                    }
                    if done {
                        return None;
                    }
                    // Armed before reading, so an event stored in between still wakes us.
                    let wake = log.waker(number)?;
                    let woken = wake.notified();
                    let mut woken = std::pin::pin!(woken);
                    woken.as_mut().enable();
                    let (events, ended) = log.read_from(number, next).ok()?;
                    next += events.len() as u64;
                    ready.extend(events);
                    done = ended;
                    if ready.is_empty() && !done {
                        woken.await;
                    }
                }
            },
        );
        Ok(Box::pin(stream))
    }
}

/// `<stream>-<seq>` into its numbers.
fn parse_id(id: &str) -> Result<(u64, u64), String> {
    let (stream, seq) = id
        .split_once('-')
        .ok_or_else(|| format!("Last-Event-ID {id:?} is not an exaid event id (<stream>-<seq>)"))?;
    match (stream.parse(), seq.parse()) {
        (Ok(stream), Ok(seq)) => Ok((stream, seq)),
        _ => Err(format!(
            "Last-Event-ID {id:?} is not an exaid event id (<stream>-<seq>)"
        )),
    }
}

/// rmcp's store interface over the log.
pub struct Store(pub Arc<EventLog>);

#[async_trait::async_trait]
impl EventStore for Store {
    async fn store_event(
        &self,
        stream_id: &str,
        event: &ServerSseMessage,
    ) -> Result<EventId, EventStoreError> {
        Ok(self.0.store(stream_id, event))
    }

    async fn replay_events_after(
        &self,
        last_event_id: &str,
    ) -> Result<EventStream, EventStoreError> {
        self.0
            .replay(last_event_id)
            .map_err(|why| Box::new(ReplayError(why)) as EventStoreError)
    }
}

#[cfg(test)]
mod tests;
