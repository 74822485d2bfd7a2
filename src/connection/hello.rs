//! The start of a connection: the WebSocket upgrade, the `hello` frame, and the session it
//! opens or resumes. Every failure here closes with the protocol's code (4000-4003, 1008).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::read::{Data, Source, next_data};
use super::writer::{Sink, close};
use crate::config::key;
use crate::config::origin::{self, OriginCheck};
use crate::protocol::{ClientFrame, Hello, close_code, decode_with};
use crate::rt::BoxStream;
use crate::session::Session;
use crate::state::Shared;

/// Bytes written to the socket in one go.
const WRITE_BUFFER_BYTES: usize = 128 * 1024;

/// Bytes read from the socket in one go. Why not tungstenite's default (128 KiB): it zero-fills
/// its read buffer up to this size before every read, so the default cost a 128 KiB memset
/// per frame received (7% of the daemon's CPU under load, measured with `exaid bench` and
/// perf), and idle connections kept the whole buffer resident. Frames larger than this are
/// still read whole, in several reads; `EXAI_WS_MAX_BYTES` is what bounds them.
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// The WebSocket upgrade, with the frame-size limit applied.
pub async fn handshake(shared: &Shared, stream: BoxStream) -> Option<(Sink, Source)> {
    let max_bytes = shared.config.limits.frame_bytes_max;
    // The write buffer is bounded too: a client that stops reading cannot make the daemon
    // buffer without limit (its frames wait in the outbox, under the outbox caps).
    let config = WebSocketConfig::default()
        .max_message_size(Some(max_bytes))
        .max_frame_size(Some(max_bytes))
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(max_bytes.saturating_add(WRITE_BUFFER_BYTES * 2));
    let handshake_timeout = Duration::from_millis(shared.config.connections.hello_timeout_ms);
    let allowed = origin::allowed(&shared.config.server.http_allowed_origins);
    // A browser's page may not open a socket to the daemon (a web page on any site could
    // otherwise try tokens against it): its Origin is refused with 403 before the upgrade.
    // Non-browser clients send no Origin.
    // The refusal's size is tungstenite's callback type, not a choice made here.
    #[allow(clippy::result_large_err)]
    let check_origin = move |request: &Request, response: Response| {
        let header = request
            .headers()
            .get("origin")
            .map(|value| value.to_str().unwrap_or("(not text)"));
        match origin::check(header, &allowed) {
            OriginCheck::Allowed => Ok(response),
            OriginCheck::Forbidden(why) => {
                tracing::info!("websocket refused: {why}");
                let mut refusal = ErrorResponse::new(Some(format!("{why}\n")));
                *refusal.status_mut() = StatusCode::FORBIDDEN;
                Err(refusal)
            }
        }
    };
    let accept =
        tokio_tungstenite::accept_hdr_async_with_config(stream, check_origin, Some(config));
    let give_up = shared.rt.sleep(handshake_timeout);
    let ws = tokio::select! {
        biased;
        ws = accept => ws,
        () = give_up => return None,
    };
    match ws {
        Ok(ws) => Some(ws.split()),
        Err(err) => {
            tracing::debug!(error = %err, "websocket handshake failed");
            None
        }
    }
}

/// Wait for the first frame and insist it is a `hello`. On any failure, the connection is
/// closed with the protocol's code and `None` is returned.
pub async fn read_hello(shared: &Shared, sink: &mut Sink, source: &mut Source) -> Option<Hello> {
    let hello_timeout = Duration::from_millis(shared.config.connections.hello_timeout_ms);
    let mut give_up = shared.rt.sleep(hello_timeout);
    let first = loop {
        tokio::select! {
            biased;
            data = next_data(source) => match data {
                Data::Heartbeat => continue,
                data => break data,
            },
            () = &mut give_up => {
                let reason = format!("no hello within {:.1} s (EXAI_WS_HELLO_TIMEOUT)", hello_timeout.as_secs_f64());
                close(shared, sink, close_code::HELLO_TIMEOUT, &reason).await;
                return None;
            }
        }
    };
    let text = match first {
        Data::Text(text) => text,
        Data::Binary => {
            close(
                shared,
                sink,
                close_code::BAD_JSON,
                "hello must be a JSON text frame, got a binary frame",
            )
            .await;
            return None;
        }
        Data::TooBig => {
            close(shared, sink, close_code::TOO_BIG, &too_big_reason(shared)).await;
            return None;
        }
        Data::Closed | Data::Heartbeat => return None,
    };
    match decode_with(&text, &shared.decode_limits) {
        Ok(ClientFrame::Hello(hello)) => Some(hello),
        Ok(other) => {
            let reason = format!("first frame must be op \"hello\", got \"{}\"", other.op());
            close(shared, sink, close_code::NOT_HELLO, &reason).await;
            None
        }
        Err(err) if err.is_not_json() => {
            close(
                shared,
                sink,
                close_code::BAD_JSON,
                &format!("hello is not JSON: {}", err.message),
            )
            .await;
            None
        }
        Err(err) => {
            close(
                shared,
                sink,
                close_code::NOT_HELLO,
                &format!("not a valid hello: {}", err.message),
            )
            .await;
            None
        }
    }
}

/// A fresh or resumed session for this hello: `(session, resumed, why a resume was refused,
/// cursor)`. The cursor is the last seq the client has; frames after it are sent first.
pub fn open_session(
    shared: &Shared,
    hello: &Hello,
) -> Result<(Arc<Session>, bool, Option<String>, u64), String> {
    let mut resume_refused = None;
    if let Some(session_id) = &hello.session_id {
        let token = hello.resume_token.as_deref().unwrap_or("");
        match shared.sessions.resume(session_id, token) {
            Ok(session) => {
                // After a restart: what the client has not received, and INTERRUPTED for
                // what was running, with seqs after the client's own.
                let client_last_seq = hello.last_seq.unwrap_or(0);
                let delivered = session.deliver_kept(client_last_seq, shared.rt.now());
                if delivered > 0 {
                    tracing::info!(session = %session.id, frames = delivered, "kept frames delivered after a restart");
                }
                let last_seq = session.outbox.stats().last_seq;
                let cursor = client_last_seq.min(last_seq);
                session.ack(cursor);
                session.set_acks(hello.acks);
                return Ok((session, true, None, cursor));
            }
            Err(_) => {
                resume_refused =
                    Some("unknown or expired session, or wrong resume_token".to_string());
            }
        }
    }
    let id = shared.random_hex(16);
    let resume_token = shared.random_hex(32);
    match shared.sessions.create(id, resume_token, shared.rt.now()) {
        Some(session) => {
            session.set_acks(hello.acks);
            Ok((session, false, resume_refused, 0))
        }
        None => Err(format!(
            "too many sessions ({}={})",
            key::EXAI_WS_MAX_SESSIONS,
            shared.config.sessions.sessions_max
        )),
    }
}

pub fn too_big_reason(shared: &Shared) -> String {
    format!(
        "frame exceeds {} ({} bytes)",
        key::EXAI_WS_MAX_BYTES,
        shared.config.limits.frame_bytes_max
    )
}
