//! One WebSocket connection: the hello handshake, then reading frames and draining the
//! session outbox.
//!
//! The reader never awaits a tool: `call_tool` validates, registers the call, acks it and
//! spawns its task; every reply goes into the session outbox, which this same loop drains.
//! When the socket goes, the session stays (calls run on, frames wait); a newer connection to
//! the same session kicks this one out with close code 4004.
//!
//! Files: `hello` (upgrade, hello, session), `read` and `writer` (the two halves of the
//! socket), `keepalive` (pings), `slots` (connection counts). Decoding and handling of what
//! the client sends live in `router`.

pub mod hello;
pub mod keepalive;
pub mod read;
pub mod slots;
pub mod writer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

use crate::config::key;
use crate::error::{CallError, ErrorCode};
use crate::lifecycle::Stage;
use crate::protocol::Hello;
use crate::protocol::reply::ServerInfo;
use crate::protocol::{ServerFrame, close_code};
use crate::router;
use crate::rt::BoxStream;
use crate::session::{Inbound, Session};
use crate::state::Shared;
use hello::{handshake, open_session, read_hello, too_big_reason};
use keepalive::{KeepAlive, Tick};
use read::{Data, Source, next_data};
use slots::PendingSlot;
use writer::{Sink, bounded, close, drain, flush_bounded};

/// Serve one accepted byte stream until it closes.
pub async fn serve(shared: Arc<Shared>, stream: BoxStream, peer: SocketAddr) {
    // Until its token is verified a connection holds only a place in the pending pool, which
    // may close it to make room; only then does it take a connection slot.
    let pending = shared.connections.enter_pending();
    let Some((mut sink, mut source, hello)) = greet(&shared, &pending, stream, peer).await else {
        return;
    };
    let _slot = match shared.connections.try_take(peer.ip()) {
        Ok(slot) => slot,
        Err(reason) => {
            tracing::info!(%peer, "refused: {reason}");
            close(&shared, &mut sink, close_code::POLICY, &reason).await;
            return;
        }
    };
    drop(pending);
    let (session, resumed, resume_refused, mut cursor) = match open_session(&shared, &hello) {
        Ok(opened) => opened,
        Err(reason) => {
            close(&shared, &mut sink, close_code::POLICY, &reason).await;
            return;
        }
    };
    let (generation, kick) = session.attach();
    // A new kept session is on disk before its client learns its id (the state writer tells
    // within EXAI_STATE_HOLD_SECS, kept or not).
    if !resumed && let Some(kept) = session.when_kept() {
        let _ = kept.await;
    }
    let ack = ServerFrame::HelloAck {
        ok: true,
        session_id: session.id.clone(),
        // A session kept across a restart has only its token's hash: the client that just
        // proved it has the token gets it back.
        resume_token: session
            .resume_token()
            .or(hello.resume_token.as_deref())
            .unwrap_or_default()
            .to_string(),
        resumed,
        last_seq: session.outbox.stats().last_seq,
        server: ServerInfo::current(),
        resume_refused,
    };
    tracing::info!(%peer, session = %session.id, resumed, "hello");
    let mut ending = None;
    if sink.send(Message::text(ack.to_json())).await.is_ok() {
        ending = run(
            &shared,
            &session,
            &mut sink,
            &mut source,
            &kick,
            &mut cursor,
            resumed,
        )
        .await;
    }
    // The session is free for a resume the moment this connection stops serving it.
    session.detach(generation, shared.rt.now());
    if let Some((code, reason)) = ending {
        close(&shared, &mut sink, code, &reason).await;
        // Read what the peer still sends until it answers the close (or briefly): closing
        // a socket with unread data resets it, and the close frame would be lost.
        drain(&shared, &mut source).await;
    }
    tracing::debug!(%peer, session = %session.id, "connection closed");
}

/// The upgrade, the hello and the token check, each raced against the pending pool closing
/// this connection to make room. `None`: the connection is already closed or refused.
async fn greet(
    shared: &Shared,
    pending: &PendingSlot,
    stream: BoxStream,
    peer: SocketAddr,
) -> Option<(Sink, Source, Hello)> {
    let (mut sink, mut source) = tokio::select! {
        biased;
        () = pending.evicted() => return None,
        ws = handshake(shared, stream) => ws?,
    };
    let hello = tokio::select! {
        biased;
        () = pending.evicted() => None,
        hello = read_hello(shared, &mut sink, &mut source) => Some(hello?),
    };
    let Some(hello) = hello else {
        let reason = format!(
            "too many connections waiting for their hello ({}={}); the oldest is closed first, so say hello promptly",
            key::EXAI_WS_MAX_PENDING_HELLOS,
            shared.config.connections.pending_hellos_max
        );
        tracing::info!(%peer, "closed before hello: {reason}");
        close(shared, &mut sink, close_code::POLICY, &reason).await;
        return None;
    };
    if hello
        .token
        .as_deref()
        .is_some_and(|t| shared.token_matches(t))
    {
        return Some((sink, source, hello));
    }
    let reason = if hello.token.is_none() {
        "hello has no token"
    } else {
        "bad token"
    };
    tracing::info!(%peer, "refused: {reason}");
    close(shared, &mut sink, close_code::BAD_TOKEN, reason).await;
    None
}

/// The connection's main loop. Returns the close code and reason to send, if any.
async fn run(
    shared: &Arc<Shared>,
    session: &Arc<Session>,
    sink: &mut Sink,
    source: &mut Source,
    kick: &tokio::sync::Notify,
    cursor: &mut u64,
    resumed: bool,
) -> Option<(u16, String)> {
    // Replay whatever the client has not seen yet (everything after `last_seq` on resume).
    let before = *cursor;
    if let Err(ending) = flush_bounded(shared, session, sink, cursor).await {
        return ending;
    }
    if resumed {
        shared
            .observer
            .session_resumed(&session.id, *cursor - before);
    }
    let rt = &shared.rt;
    let ping_every = Duration::from_millis(shared.config.connections.ping_interval_ms);
    let ping_timeout = Duration::from_millis(shared.config.connections.ping_timeout_ms);
    let mut keep_alive = KeepAlive::new(rt.now());
    let idle_timeout = Duration::from_millis(shared.config.connections.idle_timeout_ms);
    let mut last_frame_at = rt.now();
    let mut ping_timer = rt.sleep(ping_every);
    loop {
        tokio::select! {
            biased;
            () = shared.lifecycle.reached(Stage::Closing) => {
                // Every terminal frame is in the outbox by now: deliver, then say goodbye.
                let _ = flush_bounded(shared, session, sink, cursor).await;
                return Some((close_code::GOING_AWAY, "exaid is shutting down; resume after it restarts".to_string()));
            }
            () = kick.notified() => {
                // Let the newer connection's writer have the outbox's wake-up.
                session.outbox.wake();
                return Some((close_code::SUPERSEDED, "superseded: a newer connection resumed this session".to_string()));
            }
            () = session.outbox.notified() => {
                if let Err(ending) = flush_bounded(shared, session, sink, cursor).await {
                    return ending;
                }
            }
            () = &mut ping_timer => {
                let now = rt.now();
                let idle = now.saturating_since(last_frame_at);
                if idle >= idle_timeout {
                    let reason = format!(
                        "idle for {:.0} s (EXAI_WS_IDLE_TIMEOUT_SECS); resume the session to continue",
                        idle.as_secs_f64()
                    );
                    return Some((close_code::IDLE, reason));
                }
                match keep_alive.on_timer(now, ping_every, ping_timeout) {
                    Tick::Dead => {
                        let reason = format!(
                            "no answer to ping within {:.1} s (EXAI_WS_PING_TIMEOUT); resume the session to continue",
                            ping_timeout.as_secs_f64()
                        );
                        return Some((close_code::PING_TIMEOUT, reason));
                    }
                    Tick::Ping(next) => {
                        let ping = async { sink.send(Message::Ping(Vec::new().into())).await };
                        if let Err(ending) = bounded(shared, ping).await {
                            return ending;
                        }
                        ping_timer = rt.sleep_until(next.min(last_frame_at + idle_timeout));
                    }
                    Tick::Wait(next) => ping_timer = rt.sleep_until(next.min(last_frame_at + idle_timeout)),
                }
            }
            data = next_data(source) => match data {
                Data::Heartbeat => keep_alive.heard(rt.now()),
                Data::Text(text) => {
                    let now = rt.now();
                    keep_alive.heard(now);
                    last_frame_at = now;
                    match session.inbound(now, shared.config.sessions.burst) {
                        Inbound::Close => return Some((close_code::POLICY, flood_reason(shared))),
                        verdict => router::dispatch(shared, session, &text, verdict),
                    }
                }
                Data::Binary => {
                    let now = rt.now();
                    keep_alive.heard(now);
                    last_frame_at = now;
                    if session.inbound(now, shared.config.sessions.burst) == Inbound::Close {
                        return Some((close_code::POLICY, flood_reason(shared)));
                    }
                    let error = CallError::new(ErrorCode::ProtocolError, "binary frames are not part of the protocol; send JSON text frames");
                    session.push(ServerFrame::Error { request_id: None, error }, now);
                }
                Data::TooBig => return Some((close_code::TOO_BIG, too_big_reason(shared))),
                Data::Closed => return None,
            },
        }
    }
}

fn flood_reason(shared: &Shared) -> String {
    format!(
        "message rate exceeded again and again ({}={}/s, {}={})",
        key::EXAI_WS_SESSION_RATE,
        shared.config.sessions.rate_per_sec,
        key::EXAI_WS_SESSION_BURST,
        shared.config.sessions.burst
    )
}
