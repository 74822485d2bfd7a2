//! Hostile clients for the `hostile-client` scenario: each runs on its own sim node beside
//! well-behaved clients and records what the daemon answered. The invariants are the usual
//! ones, checked on the well-behaved clients (every call answered once, within its deadline)
//! and on the daemon (outboxes under their caps, permits back at the end).

use std::net::SocketAddr;
use std::time::Duration;

use exaid::ErrorCode;
use exaid::protocol::{ServerFrame, decode_server};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::journal::{JournalRef, lock};

/// What a hostile client does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostileKind {
    /// Says hello, then sends frames far faster than the session rate.
    Flood,
    /// Says hello, then sends malformed JSON, wrong types and binary frames.
    Garbage,
    /// Says hello, then sends a frame over `EXAI_WS_MAX_BYTES`.
    Oversized,
    /// Says hello, asks for many answers, and never reads one.
    NeverReads,
    /// Opens a WebSocket and never says hello.
    NoHello,
    /// Keeps opening sockets that never say hello (raw TCP and WebSocket), past twice the
    /// pending-hello pool, and holds them all.
    HelloFlood,
}

type Ws = tokio_tungstenite::WebSocketStream<madsim::net::TcpStream>;

async fn connect(daemon: SocketAddr) -> Option<Ws> {
    for _ in 0..10_000 {
        if let Ok(stream) = madsim::net::TcpStream::connect(daemon).await {
            return tokio_tungstenite::client_async(format!("ws://{daemon}/"), stream)
                .await
                .ok()
                .map(|(ws, _)| ws);
        }
        madsim::time::sleep(Duration::from_millis(1)).await;
    }
    None
}

/// The error code a frame carries, if it is an error (a failed call or a frame error).
fn error_code(text: &str) -> Option<ErrorCode> {
    match decode_server(text).ok()?.frame {
        ServerFrame::CallToolRes {
            error: Some(error), ..
        }
        | ServerFrame::Error { error, .. } => Some(error.code),
        _ => None,
    }
}

/// Read until the daemon closes; returns its close code (0 if the socket just ended) and how
/// many frames carried each error code of interest.
async fn read_to_close(ws: &mut Ws) -> (u16, u32, u32) {
    let (mut over_capacity, mut errors) = (0, 0);
    while let Some(message) = ws.next().await {
        match message {
            Ok(Message::Text(text)) => match error_code(&text) {
                Some(ErrorCode::OverCapacity) => over_capacity += 1,
                Some(_) => errors += 1,
                None => {}
            },
            Ok(Message::Close(Some(frame))) => {
                return (u16::from(frame.code), over_capacity, errors);
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    (0, over_capacity, errors)
}

/// Run one hostile client.
pub async fn run(
    kind: HostileKind,
    daemon: SocketAddr,
    token: String,
    journal: JournalRef,
    max_frame_bytes: usize,
    pending_hellos_max: u32,
) {
    if kind == HostileKind::HelloFlood {
        hello_flood(daemon, journal, pending_hellos_max).await;
        return;
    }
    let Some(mut ws) = connect(daemon).await else {
        return;
    };
    lock(&journal).record(format!("hostile {kind:?} connected"));
    if kind == HostileKind::NoHello {
        let (code, _, _) = read_to_close(&mut ws).await;
        let mut journal = lock(&journal);
        journal.record(format!("hostile NoHello closed {code}"));
        if code == 4002 {
            journal.cover("hostile_no_hello_closed");
        }
        return;
    }
    let hello = json!({"op": "hello", "token": token}).to_string();
    if ws.send(Message::text(hello)).await.is_err() {
        return;
    }
    match kind {
        HostileKind::Flood => {
            // Twice the largest burst the scenario draws (400), plus room: enough to be refused
            // and then closed, without burning wall time on frames that prove nothing more.
            for i in 0..1_200u32 {
                let frame = if i % 2 == 0 {
                    format!("{{flood {i}")
                } else {
                    json!({"op": "ping"}).to_string()
                };
                if ws.feed(Message::text(frame)).await.is_err() {
                    break;
                }
            }
            let _ = ws.flush().await;
            let (code, over_capacity, _) = read_to_close(&mut ws).await;
            let mut journal = lock(&journal);
            journal.record(format!(
                "hostile Flood closed {code} after {over_capacity} refusals"
            ));
            if over_capacity > 0 {
                journal.cover("hostile_flood_refused");
            }
            if code == 1008 {
                journal.cover("hostile_flood_closed");
            }
        }
        HostileKind::Garbage => {
            let garbage = [
                "{not json".to_string(),
                "[1,2,3]".to_string(),
                json!({"op": 7}).to_string(),
                json!({"op": "call_tool", "request_id": {"x": 1}, "name": "chat"}).to_string(),
                json!({"op": "call_tool", "request_id": "g", "name": "chat", "arguments": "nope"})
                    .to_string(),
                json!({"op": "teleport", "request_id": "g2"}).to_string(),
                format!("{}{}", "[".repeat(300), "]".repeat(300)),
            ];
            for text in &garbage {
                let _ = ws.send(Message::text(text.clone())).await;
            }
            let _ = ws.send(Message::binary(vec![0u8, 159, 146, 150])).await;
            let _ = ws
                .send(Message::text(
                    json!({"op": "ping", "request_id": "still-alive"}).to_string(),
                ))
                .await;
            let mut errors = 0;
            while let Some(Ok(message)) = ws.next().await {
                if let Message::Text(text) = message {
                    if error_code(&text).is_some() {
                        errors += 1;
                    }
                    let frame = decode_server(&text).map(|received| received.frame);
                    if matches!(frame, Ok(ServerFrame::Pong { .. })) {
                        break;
                    }
                }
            }
            let mut journal = lock(&journal);
            journal.record(format!("hostile Garbage got {errors} errors, then a pong"));
            if errors as usize == garbage.len() + 1 {
                journal.cover("hostile_garbage_answered");
            }
        }
        HostileKind::Oversized => {
            let _ = ws
                .send(Message::text("x".repeat(max_frame_bytes + 1)))
                .await;
            let (code, _, _) = read_to_close(&mut ws).await;
            let mut journal = lock(&journal);
            journal.record(format!("hostile Oversized closed {code}"));
            if code == 1009 {
                journal.cover("hostile_oversized_closed");
            }
        }
        HostileKind::NeverReads => {
            // Each tool list is tens of kilobytes: more than the outbox caps the scenario draws.
            for i in 0..80u32 {
                let frame = json!({"op": "list_tools", "request_id": format!("n{i}")}).to_string();
                if ws.send(Message::text(frame)).await.is_err() {
                    break;
                }
            }
            lock(&journal).cover("hostile_never_reads");
            // Never read: hold the socket until the node is killed.
            std::future::pending::<()>().await;
        }
        HostileKind::NoHello | HostileKind::HelloFlood => unreachable!("handled above"),
    }
}

/// Open twice the pending pool's worth of sockets (and two more) that never say hello, a few
/// milliseconds apart, and hold them; the first WebSocket must be closed to make room, with
/// a close code naming the limit.
async fn hello_flood(daemon: SocketAddr, journal: JournalRef, pending_hellos_max: u32) {
    let mut raw = Vec::new();
    let mut sockets = Vec::new();
    for i in 0..pending_hellos_max * 2 + 2 {
        if i % 2 == 0 {
            if let Ok(stream) = madsim::net::TcpStream::connect(daemon).await {
                raw.push(stream);
            }
        } else if let Some(ws) = connect(daemon).await {
            sockets.push(ws);
        }
        madsim::time::sleep(Duration::from_millis(2)).await;
    }
    lock(&journal).record(format!(
        "hostile HelloFlood holds {} raw and {} websocket sockets",
        raw.len(),
        sockets.len()
    ));
    let Some(first) = sockets.first_mut() else {
        return;
    };
    let (code, _, _) = read_to_close(first).await;
    {
        let mut journal = lock(&journal);
        journal.record(format!("hostile HelloFlood first socket closed {code}"));
        if code == 1008 {
            journal.cover("hostile_hello_flood_evicted");
        }
    }
    // Hold the rest until the node is killed.
    std::future::pending::<()>().await;
}
