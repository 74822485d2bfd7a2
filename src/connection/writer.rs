//! Writing a connection: draining the session outbox onto the socket, bounded in time, and
//! closing with a code and a reason.
//!
//! Why bounded: a client that stops reading must not hold its connection (and its buffers)
//! forever; its frames wait in the outbox, under the outbox caps, for a resume.
//!
//! A client that did not declare `acks` in its hello never acks: for it, a frame flushed to
//! its socket is delivered, and leaves the outbox (`Session::written`). One that did keeps
//! every frame until its ack.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::Error as WsError;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::read::Source;
use crate::protocol::{ServerFrame, close_code};
use crate::rt::BoxStream;
use crate::session::Session;
use crate::state::Shared;

/// The writing half of a connection.
pub type Sink = futures_util::stream::SplitSink<WebSocketStream<BoxStream>, Message>;

/// Longest close reason the WebSocket protocol allows, in bytes.
const CLOSE_REASON_BYTES_MAX: usize = 123;

/// How a write that did not complete ends the connection: `None` when the socket failed
/// (nothing to say), or a close code and reason when the client stopped reading.
pub type Ending = Option<(u16, String)>;

/// Run a write, but no longer than `EXAI_WS_WRITE_TIMEOUT_SECS`: a client that stops reading
/// is disconnected with a reason instead of holding the connection (and its buffers) forever.
pub async fn bounded<F>(shared: &Shared, write: F) -> Result<(), Ending>
where
    F: std::future::Future<Output = Result<(), WsError>>,
{
    let limit = Duration::from_millis(shared.config.connections.write_timeout_ms);
    let give_up = shared.rt.sleep(limit);
    tokio::select! {
        biased;
        written = write => written.map_err(|_| None),
        () = give_up => Err(Some((
            close_code::SLOW_CONSUMER,
            format!(
                "slow consumer: frames not read for {:.1} s (EXAI_WS_WRITE_TIMEOUT_SECS); resume the session to continue",
                limit.as_secs_f64()
            ),
        ))),
    }
}

/// [`flush`] under the write timeout.
pub async fn flush_bounded(
    shared: &Shared,
    session: &Session,
    sink: &mut Sink,
    cursor: &mut u64,
) -> Result<(), Ending> {
    bounded(shared, flush(shared, session, sink, cursor)).await
}

/// Send every frame after `cursor`, announcing any gap first.
async fn flush(
    shared: &Shared,
    session: &Session,
    sink: &mut Sink,
    cursor: &mut u64,
) -> Result<(), WsError> {
    let batch = session.outbox.frames_after(*cursor, shared.rt.now());
    if batch.evicted > 0 {
        shared.observer.frames_evicted(&session.id, batch.evicted);
    }
    if batch.gap.is_none() && batch.frames.is_empty() {
        return Ok(());
    }
    if let Some(gap) = batch.gap {
        let frame = ServerFrame::Gap {
            from_seq: gap.from_seq,
            to_seq: gap.to_seq,
            reason: format!(
                "frames fell out of the session outbox before delivery (caps: {} frames, {} bytes, {} s; or shed while disconnected to stay within {} = {} bytes)",
                session.outbox.frames_max(),
                session.outbox.bytes_max(),
                shared.config.sessions.ttl_ms / 1000,
                crate::config::key::EXAI_MEMORY_MAX_BYTES,
                shared.config.limits.memory_bytes_max
            ),
        };
        tracing::warn!(session = %session.id, from_seq = gap.from_seq, to_seq = gap.to_seq, "outbox gap");
        shared
            .observer
            .gap_announced(&session.id, gap.to_seq - gap.from_seq + 1);
        sink.feed(Message::text(frame.to_json())).await?;
        *cursor = gap.to_seq;
    }
    for stamped in batch.frames {
        sink.feed(Message::text(stamped.text())).await?;
        *cursor = stamped.seq;
    }
    sink.flush().await?;
    session.written(*cursor);
    Ok(())
}

/// Send a close frame (reason cut to the protocol's limit) and stop. Bounded in time: a peer
/// that does not read cannot hold the task.
pub async fn close(shared: &Shared, sink: &mut Sink, code: u16, reason: &str) {
    let mut cut = reason.len().min(CLOSE_REASON_BYTES_MAX);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason[..cut].to_string().into(),
    };
    let goodbye = async {
        let _ = sink.send(Message::Close(Some(frame))).await;
        let _ = sink.close().await;
    };
    let give_up = shared.rt.sleep(CLOSE_TIMEOUT);
    tokio::select! {
        biased;
        () = goodbye => {}
        () = give_up => {}
    }
}

/// Discard what the peer still sends, until it closes or `CLOSE_TIMEOUT` passes.
pub async fn drain(shared: &Shared, source: &mut Source) {
    let discard = async {
        while let Some(Ok(message)) = source.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    };
    let give_up = shared.rt.sleep(CLOSE_TIMEOUT);
    tokio::select! {
        biased;
        () = discard => {}
        () = give_up => {}
    }
}

/// How long a close frame may take to go out.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
