use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::StreamExt;
use rmcp::model::{NumberOrString, ServerResult};

use super::*;
use crate::rt::{BoxFuture, FileSystem, Runtime};

/// A runtime whose clock the test moves; it is asked nothing else.
struct ManualClock {
    /// Milliseconds since the epoch.
    now_ms: AtomicU64,
}

impl Runtime for ManualClock {
    fn now(&self) -> Instant {
        Instant::from_epoch(Duration::from_millis(self.now_ms.load(Ordering::SeqCst)))
    }
    fn sleep_until(&self, _deadline: Instant) -> BoxFuture<'static, ()> {
        unreachable!("the event log never sleeps")
    }
    fn spawn(&self, _name: &'static str, _task: BoxFuture<'static, ()>) {
        unreachable!("the event log never spawns")
    }
    fn seed(&self) -> [u8; 32] {
        [0; 32]
    }
    fn unix_time_ms(&self) -> u64 {
        0
    }
    fn fs(&self) -> Arc<dyn FileSystem> {
        Arc::new(crate::rt::memory::MemoryFs::new())
    }
}

const LIMITS: EventLimits = EventLimits {
    streams_max: 4,
    events_max: 8,
    stream_bytes_max: 1 << 20,
    bytes_max: 1 << 20,
    ttl: Duration::from_secs(300),
};

fn log(limits: EventLimits) -> (Arc<EventLog>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock {
        now_ms: AtomicU64::new(0),
    });
    (EventLog::new(Rt::new(clock.clone()), limits), clock)
}

fn response(id: i64) -> ServerSseMessage {
    ServerSseMessage::from_message(ServerJsonRpcMessage::response(
        ServerResult::empty(()),
        NumberOrString::Number(id),
    ))
}

fn priming() -> ServerSseMessage {
    ServerSseMessage::retry(Duration::from_secs(3))
}

#[tokio::test]
async fn a_replay_gives_every_later_event_once_in_order_and_ends_at_the_response() {
    let (log, _) = log(LIMITS);
    let first = log.store("s", &priming());
    let second = log.store("s", &priming());
    let last = log.store("s", &response(7));
    assert_eq!(
        (first.as_str(), second.as_str(), last.as_str()),
        ("0-0", "0-1", "0-2")
    );
    let replayed: Vec<ServerSseMessage> = log.replay(&first).unwrap().collect().await;
    let ids: Vec<_> = replayed
        .iter()
        .map(|e| e.event_id.clone().unwrap())
        .collect();
    assert_eq!(ids, [second, last.clone()]);
    let after_end: Vec<ServerSseMessage> = log.replay(&last).unwrap().collect().await;
    assert!(after_end.is_empty(), "nothing follows the response");
}

#[tokio::test]
async fn a_replay_mid_call_follows_the_stream_until_the_result_arrives() {
    let (log, _) = log(LIMITS);
    let first = log.store("s", &priming());
    log.store("other", &priming());
    let mut replay = log.replay(&first).unwrap();
    // The replay waits first (nothing after `first`), then the result is stored.
    let (event, stored) =
        futures_util::future::join(replay.next(), async { log.store("s", &response(1)) }).await;
    assert_eq!(event.unwrap().event_id, Some(stored));
    assert!(replay.next().await.is_none());
}

#[tokio::test]
async fn dropped_events_unknown_ids_and_expired_streams_are_refused_naming_why() {
    let (log, clock) = log(EventLimits {
        events_max: 2,
        ..LIMITS
    });
    let first = log.store("s", &priming());
    for _ in 0..3 {
        log.store("s", &priming());
    }
    let error = log.replay(&first).err().unwrap();
    assert!(error.contains("EXAI_OUTBOX_MAX_FRAMES"), "{error}");
    let error = log.replay("nonsense").err().unwrap();
    assert!(error.contains("not an exaid event id"), "{error}");
    clock.now_ms.store(301_000, Ordering::SeqCst);
    log.store("t", &priming());
    let error = log.replay("0-3").err().unwrap();
    assert!(error.contains("EXAI_SESSION_TTL_SECS"), "{error}");
}

#[tokio::test]
async fn streams_and_bytes_stay_under_their_caps() {
    let (log, _) = log(EventLimits {
        streams_max: 2,
        ..LIMITS
    });
    for name in ["a", "b", "c"] {
        log.store(name, &response(1));
    }
    assert_eq!(log.books().streams.len(), 2, "the oldest went");
    assert!(log.replay("0-0").is_err() && log.replay("2-0").is_ok());
    let (small, _) = log_with_bytes(100);
    for name in ["a", "b", "c"] {
        small.store(name, &response(1));
    }
    let books = small.books();
    assert!(books.bytes <= 100, "{}", books.bytes);
    assert_eq!(
        books.bytes,
        books.streams.values().map(|s| s.bytes).sum::<usize>()
    );
}

fn log_with_bytes(bytes_max: usize) -> (Arc<EventLog>, Arc<ManualClock>) {
    log(EventLimits {
        bytes_max,
        ..LIMITS
    })
}
