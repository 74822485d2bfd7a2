//! One WebSocket connection: the hello handshake, then reading frames and draining the
//! session outbox.
//!
//! The reader never awaits a tool: `call_tool` validates, registers the call, acks it and
//! spawns its task; every reply goes into the session outbox, which this same loop drains.
//! When the socket goes, the session stays (calls run on, frames wait); a newer connection to
//! the same session kicks this one out with close code 4004.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::{WebSocketConfig, frame::coding::CloseCode};

use crate::call::{self, Accepted};
use crate::daemon::Shared;
use crate::error::{CallError, ErrorCode};
use crate::protocol::reply::ServerInfo;
use crate::protocol::{ClientFrame, DecodeError, Hello, ServerFrame, close_code, decode_with};
use crate::rt::{BoxStream, Instant};
use crate::session::{Begin, Inbound, Session, StopReason};
use crate::shutdown::Stage;
use crate::tools::PlanEnv;

type Sink = futures_util::stream::SplitSink<WebSocketStream<BoxStream>, Message>;
type Source = futures_util::stream::SplitStream<WebSocketStream<BoxStream>>;

/// Bytes written to the socket in one go.
const WRITE_BUFFER_BYTES: usize = 128 * 1024;

/// Bytes read from the socket in one go. Why not tungstenite's default (128 KiB): it zero-fills
/// its read buffer up to this size before every read, so the default cost a 128 KiB memset
/// per frame received (7% of the daemon's CPU under load, measured with `exaid bench` and
/// perf), and idle connections kept the whole buffer resident. Frames larger than this are
/// still read whole, in several reads; `EXAI_WS_MAX_BYTES` is what bounds them.
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// Longest close reason the WebSocket protocol allows, in bytes.
const CLOSE_REASON_BYTES_MAX: usize = 123;

/// Serve one accepted byte stream until it closes.
pub async fn serve(shared: Arc<Shared>, stream: BoxStream, peer: SocketAddr) {
    let _slot = match shared.try_count_connection(peer.ip()) {
        Ok(slot) => slot,
        Err(reason) => {
            tracing::info!(%peer, "refused: {reason}");
            if let Some((mut sink, _)) = handshake(&shared, stream).await {
                close(&shared, &mut sink, close_code::POLICY, &reason).await;
            }
            return;
        }
    };
    let Some((mut sink, mut source)) = handshake(&shared, stream).await else {
        return;
    };
    let Some(hello) = read_hello(&shared, &mut sink, &mut source).await else {
        return;
    };
    if !hello
        .token
        .as_deref()
        .is_some_and(|t| shared.token_matches(t))
    {
        let reason = if hello.token.is_none() {
            "hello has no token"
        } else {
            "bad token"
        };
        tracing::info!(%peer, "refused: {reason}");
        close(&shared, &mut sink, close_code::BAD_TOKEN, reason).await;
        return;
    }
    let (session, resumed, resume_refused, mut cursor) = match open_session(&shared, &hello) {
        Ok(opened) => opened,
        Err(reason) => {
            close(&shared, &mut sink, close_code::POLICY, &reason).await;
            return;
        }
    };
    let (generation, kick) = session.attach();
    let ack = ServerFrame::HelloAck {
        ok: true,
        session_id: session.id.clone(),
        resume_token: session.resume_token().to_string(),
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

/// The WebSocket upgrade, with the frame-size limit applied.
async fn handshake(shared: &Shared, stream: BoxStream) -> Option<(Sink, Source)> {
    let max_bytes = shared.config.max_frame_bytes;
    // The write buffer is bounded too: a client that stops reading cannot make the daemon
    // buffer without limit (its frames wait in the outbox, under the outbox caps).
    let config = WebSocketConfig::default()
        .max_message_size(Some(max_bytes))
        .max_frame_size(Some(max_bytes))
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(max_bytes.saturating_add(WRITE_BUFFER_BYTES * 2));
    let handshake_timeout = Duration::from_millis(shared.config.hello_timeout_ms);
    let accept = tokio_tungstenite::accept_async_with_config(stream, Some(config));
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
async fn read_hello(shared: &Shared, sink: &mut Sink, source: &mut Source) -> Option<Hello> {
    let hello_timeout = Duration::from_millis(shared.config.hello_timeout_ms);
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
fn open_session(
    shared: &Shared,
    hello: &Hello,
) -> Result<(Arc<Session>, bool, Option<String>, u64), String> {
    let mut resume_refused = None;
    if let Some(session_id) = &hello.session_id {
        let token = hello.resume_token.as_deref().unwrap_or("");
        match shared.sessions.resume(session_id, token) {
            Ok(session) => {
                let last_seq = session.outbox.stats().last_seq;
                let cursor = hello.last_seq.unwrap_or(0).min(last_seq);
                session.ack(cursor);
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
        Some(session) => Ok((session, false, resume_refused, 0)),
        None => Err(format!(
            "too many sessions (EXAI_WS_MAX_SESSIONS={})",
            shared.config.max_sessions
        )),
    }
}

/// What one read produced.
enum Data {
    /// A text frame.
    Text(String),
    /// A binary frame (not part of the protocol).
    Binary,
    /// A frame over `EXAI_WS_MAX_BYTES`.
    TooBig,
    /// A WebSocket ping or pong: the peer is alive, nothing to handle.
    Heartbeat,
    /// The peer closed or the socket failed.
    Closed,
}

async fn next_data(source: &mut Source) -> Data {
    loop {
        match source.next().await {
            None => return Data::Closed,
            Some(Ok(Message::Text(text))) => return Data::Text(text.to_string()),
            Some(Ok(Message::Binary(_))) => return Data::Binary,
            Some(Ok(Message::Close(_))) => return Data::Closed,
            // Pings are answered by tungstenite itself; both prove the peer is alive.
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => return Data::Heartbeat,
            Some(Ok(Message::Frame(_))) => continue,
            Some(Err(WsError::Capacity(CapacityError::MessageTooLong { .. }))) => {
                return Data::TooBig;
            }
            Some(Err(err)) => {
                tracing::debug!(error = %err, "websocket read failed");
                return Data::Closed;
            }
        }
    }
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
    let ping_every = Duration::from_millis(shared.config.ping_interval_ms);
    let ping_timeout = Duration::from_millis(shared.config.ping_timeout_ms);
    let mut keep_alive = KeepAlive::new(rt.now());
    let idle_timeout = Duration::from_millis(shared.config.idle_timeout_ms);
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
                    match session.inbound(now, shared.config.session_burst) {
                        Inbound::Close => return Some((close_code::POLICY, flood_reason(shared))),
                        verdict => handle_text(shared, session, &text, verdict),
                    }
                }
                Data::Binary => {
                    let now = rt.now();
                    keep_alive.heard(now);
                    last_frame_at = now;
                    if session.inbound(now, shared.config.session_burst) == Inbound::Close {
                        return Some((close_code::POLICY, flood_reason(shared)));
                    }
                    let error = CallError::new(ErrorCode::ProtocolError, "binary frames are not part of the protocol; send JSON text frames");
                    session.push(&ServerFrame::Error { request_id: None, error }, now);
                }
                Data::TooBig => return Some((close_code::TOO_BIG, too_big_reason(shared))),
                Data::Closed => return None,
            },
        }
    }
}

/// Keep-alive bookkeeping: when the peer was last heard from, and whether a ping is out.
///
/// Why: a peer that vanished without closing (laptop lid, dead network) would otherwise hold
/// its connection until TCP gives up, many minutes later; the session must be freed for resume
/// and its frames kept in the outbox instead.
struct KeepAlive {
    /// Last instant any frame (data, ping or pong) arrived.
    heard_at: Instant,
    /// When the outstanding ping was sent, if one is.
    ping_sent_at: Option<Instant>,
}

/// What the keep-alive timer decided.
enum Tick {
    /// Silent past the ping timeout: close.
    Dead,
    /// Send a ping now; look again at the instant given.
    Ping(Instant),
    /// Heard recently: look again at the instant given.
    Wait(Instant),
}

impl KeepAlive {
    fn new(now: Instant) -> KeepAlive {
        KeepAlive {
            heard_at: now,
            ping_sent_at: None,
        }
    }

    fn heard(&mut self, now: Instant) {
        self.heard_at = now;
        self.ping_sent_at = None;
    }

    fn on_timer(&mut self, now: Instant, ping_every: Duration, ping_timeout: Duration) -> Tick {
        if let Some(sent_at) = self.ping_sent_at {
            if now.saturating_since(sent_at) >= ping_timeout {
                return Tick::Dead;
            }
            return Tick::Wait(sent_at + ping_timeout);
        }
        if now.saturating_since(self.heard_at) >= ping_every {
            self.ping_sent_at = Some(now);
            return Tick::Ping(now + ping_timeout);
        }
        Tick::Wait(self.heard_at + ping_every)
    }
}

/// How a write that did not complete ends the connection: `None` when the socket failed
/// (nothing to say), or a close code and reason when the client stopped reading.
type Ending = Option<(u16, String)>;

/// Run a write, but no longer than `EXAI_WS_WRITE_TIMEOUT_SECS`: a client that stops reading
/// is disconnected with a reason instead of holding the connection (and its buffers) forever.
async fn bounded<F>(shared: &Shared, write: F) -> Result<(), Ending>
where
    F: std::future::Future<Output = Result<(), WsError>>,
{
    let limit = Duration::from_millis(shared.config.write_timeout_ms);
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
async fn flush_bounded(
    shared: &Shared,
    session: &Session,
    sink: &mut Sink,
    cursor: &mut u64,
) -> Result<(), Ending> {
    bounded(shared, flush(shared, session, sink, cursor)).await
}

fn flood_reason(shared: &Shared) -> String {
    format!(
        "message rate exceeded again and again (EXAI_WS_SESSION_RATE={}/s, EXAI_WS_SESSION_BURST={})",
        shared.config.session_rate_per_sec, shared.config.session_burst
    )
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
                "frames fell out of the session outbox before delivery (caps: {} frames, {} bytes, {} s)",
                session.outbox.frames_max(),
                session.outbox.bytes_max(),
                shared.config.session_ttl_ms / 1000
            ),
        };
        tracing::warn!(session = %session.id, from_seq = gap.from_seq, to_seq = gap.to_seq, "outbox gap");
        shared
            .observer
            .gap_announced(&session.id, gap.to_seq - gap.from_seq + 1);
        sink.feed(Message::text(frame.to_json())).await?;
        *cursor = gap.to_seq;
    }
    for (seq, text) in batch.frames {
        sink.feed(Message::text(text.to_string())).await?;
        *cursor = seq;
    }
    sink.flush().await
}

/// Handle one text frame: decode, then act. Never awaits.
fn handle_text(shared: &Arc<Shared>, session: &Arc<Session>, text: &str, verdict: Inbound) {
    let now = shared.rt.now();
    let decoded = decode_with(text, &shared.decode_limits);
    // Over the rate: the frame is not handled, whatever it holds; the refusal names its
    // request when one could be read, so a client waiting on that id is answered.
    if let Inbound::Refuse(wait) = verdict {
        let retry_after_secs = wait.as_millis().div_ceil(1000).max(1) as u64;
        let error = CallError::new(
            ErrorCode::OverCapacity,
            format!(
                "message rate over EXAI_WS_SESSION_RATE ({}/s, burst {}): frame not handled; retry in {retry_after_secs} s",
                shared.config.session_rate_per_sec, shared.config.session_burst
            ),
        )
        .with_retry_after_secs(retry_after_secs);
        let reply = match decoded {
            Ok(ClientFrame::CallTool { request_id, .. }) => {
                ServerFrame::call_failed(request_id, error)
            }
            Ok(ClientFrame::Cancel { request_id }) => ServerFrame::Error {
                request_id: Some(request_id),
                error,
            },
            Err(DecodeError {
                op: Some(op),
                request_id: Some(request_id),
                ..
            }) if op == "call_tool" => ServerFrame::call_failed(request_id, error),
            Err(DecodeError { request_id, .. }) => ServerFrame::Error { request_id, error },
            Ok(_) => ServerFrame::Error {
                request_id: None,
                error,
            },
        };
        session.push(&reply, now);
        return;
    }
    let frame = match decoded {
        Ok(frame) => frame,
        Err(err) => {
            let error = CallError::new(err.code, err.message);
            // A broken call_tool that named its request gets a terminal frame, so a client
            // waiting on that id is answered.
            let reply = match (err.op.as_deref(), err.request_id) {
                (Some("call_tool"), Some(request_id)) => {
                    ServerFrame::call_failed(request_id, error)
                }
                (_, request_id) => ServerFrame::Error { request_id, error },
            };
            session.push(&reply, now);
            return;
        }
    };
    match frame {
        ClientFrame::Hello(_) => {
            let error = CallError::new(
                ErrorCode::InvalidRequest,
                "hello was already received on this connection",
            );
            session.push(
                &ServerFrame::Error {
                    request_id: None,
                    error,
                },
                now,
            );
        }
        ClientFrame::ListTools { request_id } => {
            let tools = shared.tools.infos();
            session.push(&ServerFrame::ListToolsRes { request_id, tools }, now);
        }
        ClientFrame::CallTool {
            request_id,
            name,
            arguments,
        } => start_call(shared, session, request_id, &name, arguments),
        ClientFrame::Cancel { request_id } => cancel_call(shared, session, request_id),
        ClientFrame::Ack { seq } => session.ack(seq),
        ClientFrame::Ping { request_id } => {
            session.push(&ServerFrame::Pong { request_id }, now);
        }
        ClientFrame::Health { request_id } => {
            let health = crate::health::snapshot(shared);
            let ok = health.ok;
            let health = serde_json::to_value(&health).expect("health serializes");
            session.push(
                &ServerFrame::HealthRes {
                    request_id,
                    ok,
                    health,
                },
                now,
            );
        }
    }
}

/// Cancel one running call: `cancelled` goes out first, then the call's own terminal frame
/// (`CANCELLED`); an unknown or finished call gets an error frame naming it. Shared with the
/// in-process client (`local`), so a cancel from MCP is the same cancel.
pub(crate) fn cancel_call(shared: &Shared, session: &Session, request_id: String) {
    let now = shared.rt.now();
    let cancelled = ServerFrame::Cancelled {
        request_id: request_id.clone(),
    };
    if !session.stop_call(&request_id, StopReason::ClientCancel, Some(&cancelled), now) {
        let error = CallError::new(
            ErrorCode::InvalidRequest,
            format!(
                "no running call with request_id \"{request_id}\" (it may have finished already)"
            ),
        );
        session.push(
            &ServerFrame::Error {
                request_id: Some(request_id),
                error,
            },
            now,
        );
    }
}

/// Validate, register, ack and spawn one call: every call of the daemon starts here, whether
/// it came over a WebSocket or from the in-process client (`local`, used by the MCP endpoint),
/// so both go through the same session, admission, deadline and outbox.
///
/// Find the tool, let it validate and plan the call (`DynTool::prepare`), register it with
/// the session (new, joined or repeated), ack it with its timeout, and hand it to `call`,
/// which owns its deadline and its one terminal frame.
pub(crate) fn start_call(
    shared: &Arc<Shared>,
    session: &Arc<Session>,
    request_id: String,
    name: &str,
    arguments: serde_json::Map<String, serde_json::Value>,
) {
    let now = shared.rt.now();
    if !shared.lifecycle.is_ready() {
        let error = CallError::new(
            ErrorCode::ServiceUnavailable,
            "exaid is shutting down and accepts no new calls; retry once it is back",
        )
        .with_retry_after_secs(5);
        session.push(&ServerFrame::call_failed(request_id, error), now);
        return;
    }
    let Some(tool) = shared.tools.get(name).cloned() else {
        let error = unknown_tool(shared, name, &arguments);
        session.push(&ServerFrame::call_failed(request_id, error), now);
        return;
    };
    let plan = match tool.prepare(arguments, &PlanEnv::new(shared.as_ref())) {
        Ok(plan) => plan,
        Err(error) => {
            session.push(&ServerFrame::call_failed(request_id, error), now);
            return;
        }
    };
    let timeout_ms = call::timeout_ms(tool.kind(), &shared.config);
    let ack = |joined: bool| ServerFrame::CallToolAck {
        request_id: request_id.clone(),
        accepted: true,
        timeout: timeout_ms as f64 / 1000.0,
        name: tool.name().to_string(),
        joined,
    };
    let stop = match session.begin_call(&request_id, now) {
        Begin::New(stop) => stop,
        Begin::Running => {
            // The same request id again while it runs is the same call: join it.
            session.push(&ack(true), now);
            return;
        }
        Begin::Finished(terminal) => {
            // It already ended: the stored result again, and no second provider call.
            session.push(&terminal, now);
            return;
        }
    };
    session.push(&ack(false), now);
    call::spawn(Accepted {
        shared: shared.clone(),
        session: session.clone(),
        request_id,
        tool: tool.name(),
        kind: tool.kind(),
        plan,
        accepted_at: now,
        stop,
    });
}

/// Why no tool answers to `name`: disabled by the profile, or unknown. An over-long string in
/// the arguments is named first, as for any call.
fn unknown_tool(
    shared: &Shared,
    name: &str,
    arguments: &serde_json::Map<String, serde_json::Value>,
) -> CallError {
    let chars_max = shared.config.arg_string_chars_max as usize;
    if let Err(error) = crate::tools::arguments::check_strings(arguments, chars_max) {
        return error;
    }
    let canonical = crate::tools::ToolRegistry::canonical(name);
    let why = if crate::tools::profile::BUILTIN_TOOL_NAMES.contains(&canonical.as_str()) {
        format!(
            "tool \"{name}\" is disabled here (TOOL_PROFILE={}, ENABLED_TOOLS, DISABLED_TOOLS)",
            shared.config.tool_profile.name()
        )
    } else {
        format!("no tool named \"{name}\"")
    };
    CallError::new(
        ErrorCode::ToolNotFound,
        format!("{why}; available: {}", shared.tools.names().join(", ")),
    )
}

fn too_big_reason(shared: &Shared) -> String {
    format!(
        "frame exceeds EXAI_WS_MAX_BYTES ({} bytes)",
        shared.config.max_frame_bytes
    )
}

/// Send a close frame (reason cut to the protocol's limit) and stop. Bounded in time: a peer
/// that does not read cannot hold the task.
async fn close(shared: &Shared, sink: &mut Sink, code: u16, reason: &str) {
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
async fn drain(shared: &Shared, source: &mut Source) {
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
