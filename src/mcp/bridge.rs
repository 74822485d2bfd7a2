//! The stdio bridge's way to the daemon: one EXAI WebSocket session that carries every MCP
//! call, and outlives the socket under it.
//!
//! Why one session and not a socket per call: the session is what the daemon keeps for a
//! client that went away (its outbox, its running calls, its result cache), so a bridge that
//! loses its socket can resume with `session_id`, `resume_token` and `last_seq`, receive every
//! frame it missed exactly once, and its MCP client never sees the blip. Concurrent MCP calls
//! are told apart by the protocol's `request_id` (`mcp-N`, one per MCP call).
//!
//! State, not commands: each call is an entry of the door's [`PendingCalls`] table whose
//! [`CallState`] says what the daemon has
//! confirmed about it (nothing, sent, acked) and whether a cancel is owed. Whichever
//! connection is current sends what is missing; when a connection drops, what it had sent but
//! the daemon had not acked is marked unsent, so the next connection sends it again under the
//! same request id and the daemon joins the running call or answers from its result cache.
//! Frames are deduplicated here by request id: a call's first terminal frame ends it, later
//! ones (a repeated result) are ignored.
//!
//! Limits: pending calls ([`BridgeConfig::calls_pending_max`]), pending tool listings,
//! reconnect attempts with jittered exponential backoff, connect and hello timeouts, and a
//! keep-alive that declares a silent socket dead. When a whole round of attempts fails, every
//! waiting call ends with an error result saying why, and the next call starts a new round.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::backend::{Backend, CallStream};
use super::pending::{PendingCalls, Routed};
use crate::error::{CallError, ErrorCode};
use crate::protocol::reply::ToolInfo;
use crate::protocol::{Received, ServerFrame, close_code, decode_server};
use crate::rt::{BoxFuture, Dialer, Rng, Rt};

/// Where the bridge's token comes from.
#[derive(Clone)]
pub enum TokenSource {
    /// Given (`EXAI_WS_TOKEN`, or the random token of `--standalone`).
    Fixed(String),
    /// Read from the daemon's token file before each connection, so a daemon started after
    /// the bridge (which writes the file on its first start) is still found.
    File(PathBuf),
}

impl TokenSource {
    fn resolve(&self) -> Result<String, String> {
        match self {
            TokenSource::Fixed(token) => Ok(token.clone()),
            TokenSource::File(path) => crate::auth::read(path),
        }
    }
}

impl fmt::Debug for TokenSource {
    /// Never prints the token itself.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::Fixed(_) => f.write_str("Fixed(<redacted>)"),
            TokenSource::File(path) => write!(f, "File({})", path.display()),
        }
    }
}

/// How the bridge reaches the daemon, and its limits.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// The token for `hello`.
    pub token: TokenSource,
    /// MCP calls waiting for their result at once; the next one is refused with
    /// `OVER_CAPACITY` at once.
    pub calls_pending_max: usize,
    /// `tools/list` requests waiting at once.
    pub listings_pending_max: usize,
    /// Connection attempts in a row before waiting calls are failed.
    pub reconnect_attempts_max: u32,
    /// First backoff between attempts (doubling, jittered).
    pub backoff_base: Duration,
    /// Longest backoff between attempts.
    pub backoff_max: Duration,
    /// Longest wait for the TCP connection and the WebSocket upgrade.
    pub connect_timeout: Duration,
    /// Longest wait for `hello_ack`.
    pub hello_timeout: Duration,
    /// Longest wait for a `tools/list` answer, reconnects included.
    pub list_tools_timeout: Duration,
    /// After this long without a frame the bridge pings; after twice this long it reconnects.
    pub keepalive_idle: Duration,
    /// Largest frame accepted from the daemon.
    pub frame_bytes_max: usize,
}

impl BridgeConfig {
    /// The defaults, with the given token.
    pub fn new(token: TokenSource) -> BridgeConfig {
        BridgeConfig {
            token,
            calls_pending_max: 256,
            listings_pending_max: 16,
            reconnect_attempts_max: 10,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(5),
            hello_timeout: Duration::from_secs(10),
            list_tools_timeout: Duration::from_secs(20),
            keepalive_idle: Duration::from_secs(20),
            frame_bytes_max: 64 << 20,
        }
    }
}

/// Frames acknowledged to the daemon at least this often (and after every terminal frame), so
/// its outbox can forget what the bridge already has.
const ACK_EVERY_FRAMES: u64 = 32;

/// The bridge: a [`Backend`] over one resumable EXAI session. Cloning shares it.
#[derive(Clone)]
pub struct Bridge {
    /// Shared with the connection task.
    inner: Arc<Inner>,
}

/// State shared by the MCP handler and the connection task.
struct Inner {
    /// Time, spawning, randomness.
    rt: Rt,
    /// Opens sockets to the daemon.
    dialer: Arc<dyn Dialer>,
    /// Limits and timeouts.
    config: BridgeConfig,
    /// Calls, listings, the session.
    state: Mutex<State>,
    /// Tells the connection task there is something to send.
    wake: Notify,
    /// Jitter for backoff.
    rng: Mutex<Rng>,
}

/// What the bridge knows, behind one lock.
struct State {
    /// Calls waiting for their terminal frame, by request id.
    calls: PendingCalls<CallState>,
    /// `tools/list` requests waiting for `list_tools_res`, by request id.
    listings: BTreeMap<String, Listing>,
    /// Request ids handed out so far.
    ids_issued: u64,
    /// The session to resume, once the daemon gave one.
    session: Option<Resume>,
    /// Why the daemon cannot be reached, while it cannot.
    down: Option<String>,
}

/// The session the bridge resumes after a dropped socket.
struct Resume {
    /// Its id.
    session_id: String,
    /// Its secret (never logged).
    resume_token: String,
    /// The last seq received: a resume asks for everything after it.
    last_seq: u64,
    /// The last seq acked to the daemon.
    acked_seq: u64,
}

/// How far the daemon has confirmed a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// To be sent (new, or its connection dropped before the ack).
    Unsent,
    /// Sent on the current connection, not acked yet.
    Sent,
    /// The daemon accepted it (`call_tool_ack`): its frames will come, even after a resume.
    Acked,
}

/// Whether a cancel is owed to the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cancel {
    /// Not cancelled.
    No,
    /// To be sent.
    Owed,
    /// Sent on the current connection.
    Sent,
}

/// What the daemon has confirmed about one MCP call, until its terminal frame.
struct CallState {
    /// What the daemon confirmed.
    delivery: Delivery,
    /// True once `call_tool` was written to any socket: only then can a cancel matter.
    ever_sent: bool,
    /// Whether a cancel is owed.
    cancel: Cancel,
    /// Interrupted ends taken so far (see [`Inner::send_again`]), at most [`INTERRUPTS_MAX`].
    interrupts: u32,
    /// Not sent again before this instant: the daemon's `retry_after_secs`. A daemon that is
    /// shutting down closes the socket meanwhile, so the call goes to the daemon that is back.
    not_before: Option<crate::rt::Instant>,
}

/// Interrupted ends of one call the bridge answers by sending the call again; the next one
/// reaches the editor. A daemon that dies on every attempt of a call must not loop forever.
const INTERRUPTS_MAX: u32 = 3;

/// One `tools/list`, until `list_tools_res`.
struct Listing {
    /// Sent on the current connection.
    sent: bool,
    /// Where the answer goes.
    reply: Option<oneshot::Sender<Result<Vec<ToolInfo>, String>>>,
}

/// Why a connection ended before it was up.
enum Failure {
    /// Worth retrying (refused, reset, timeout, too many connections).
    Transient(String),
    /// Not worth retrying until something changes (the daemon refused the token).
    Fatal(ErrorCode, String),
}

impl Bridge {
    /// A bridge to the daemon behind `dialer`; its connection task starts at once (the first
    /// `tools/list` then finds the session ready).
    pub fn start(rt: Rt, dialer: Arc<dyn Dialer>, config: BridgeConfig) -> Bridge {
        let inner = Arc::new(Inner {
            rng: Mutex::new(rt.rng()),
            rt,
            dialer,
            state: Mutex::new(State {
                calls: PendingCalls::new(config.calls_pending_max.max(1)),
                listings: BTreeMap::new(),
                ids_issued: 0,
                session: None,
                down: None,
            }),
            config,
            wake: Notify::new(),
        });
        inner.rt.spawn("mcp-bridge", supervise(inner.clone()));
        Bridge { inner }
    }

    /// The session the bridge holds (`None` before the first `hello_ack`), for tests.
    pub fn session_id(&self) -> Option<String> {
        let state = self.inner.state.lock().expect("bridge lock");
        state.session.as_ref().map(|s| s.session_id.clone())
    }
}

impl Backend for Bridge {
    fn list_tools(&self) -> BoxFuture<'_, Result<Vec<ToolInfo>, String>> {
        Box::pin(async move {
            let inner = &self.inner;
            let (request_id, reply) = {
                let mut state = inner.state.lock().expect("bridge lock");
                if state.listings.len() >= inner.config.listings_pending_max {
                    return Err(format!(
                        "{} tools/list requests are already waiting for the daemon",
                        inner.config.listings_pending_max
                    ));
                }
                state.ids_issued += 1;
                let request_id = format!("mcp-list-{}", state.ids_issued);
                let (tx, rx) = oneshot::channel();
                state.listings.insert(
                    request_id.clone(),
                    Listing {
                        sent: false,
                        reply: Some(tx),
                    },
                );
                (request_id, rx)
            };
            inner.wake.notify_one();
            let _forget = ForgetListing {
                inner,
                request_id: &request_id,
            };
            let timeout = inner.config.list_tools_timeout;
            tokio::select! {
                biased;
                answer = reply => answer.unwrap_or_else(|_| Err("the bridge stopped".to_string())),
                () = inner.rt.sleep(timeout) => {
                    let why = inner.state.lock().expect("bridge lock").down.clone();
                    Err(match why {
                        Some(why) => why,
                        None => format!("the daemon did not list its tools within {} s", timeout.as_secs()),
                    })
                }
            }
        })
    }

    fn start_call(
        &self,
        name: &str,
        arguments: Map<String, Value>,
    ) -> Result<CallStream, CallError> {
        let inner = &self.inner;
        let (request_id, waiting) = {
            let mut state = inner.state.lock().expect("bridge lock");
            let full = || {
                CallError::new(
                    ErrorCode::OverCapacity,
                    format!(
                        "the MCP bridge already has {} calls waiting for exaid; retry when some have ended",
                        inner.config.calls_pending_max
                    ),
                )
            };
            if state.calls.len() >= inner.config.calls_pending_max {
                return Err(full());
            }
            state.ids_issued += 1;
            let request_id = format!("mcp-{}", state.ids_issued);
            let fresh = CallState {
                delivery: Delivery::Unsent,
                ever_sent: false,
                cancel: Cancel::No,
                interrupts: 0,
                not_before: None,
            };
            let waiting = state
                .calls
                .register(request_id.clone(), name, arguments, fresh)
                .ok_or_else(full)?;
            (request_id, waiting)
        };
        inner.wake.notify_one();
        let weak = Arc::downgrade(inner);
        Ok(CallStream::new(waiting, move || {
            if let Some(inner) = weak.upgrade() {
                inner.cancel(&request_id);
            }
        }))
    }
}

/// Removes a `tools/list` entry when its waiter stops waiting (answered, timed out, dropped).
struct ForgetListing<'a> {
    /// The bridge.
    inner: &'a Inner,
    /// The listing's request id.
    request_id: &'a str,
}

impl Drop for ForgetListing<'_> {
    fn drop(&mut self) {
        let mut state = self.inner.state.lock().expect("bridge lock");
        state.listings.remove(self.request_id);
    }
}

impl Inner {
    /// The MCP client cancelled `request_id` (or stopped waiting for it).
    fn cancel(&self, request_id: &str) {
        let mut state = self.state.lock().expect("bridge lock");
        let Some(call) = state.calls.get_mut(request_id) else {
            return; // already ended
        };
        if !call.state.ever_sent {
            // The daemon never heard of it: nothing to stop there.
            state.calls.remove(request_id);
            return;
        }
        call.forget_caller();
        if call.state.cancel == Cancel::No {
            call.state.cancel = Cancel::Owed;
        }
        drop(state);
        self.wake.notify_one();
    }

    /// True when something waits for the daemon.
    fn has_demand(&self) -> bool {
        let state = self.state.lock().expect("bridge lock");
        !state.calls.is_empty() || !state.listings.is_empty()
    }

    /// Frames owed to the daemon on the current connection, marked as sent.
    fn owed_frames(&self) -> Vec<String> {
        let now = self.rt.now();
        let mut state = self.state.lock().expect("bridge lock");
        let mut frames = Vec::new();
        for (request_id, call) in state.calls.iter_mut() {
            if call.state.not_before.is_some_and(|at| at > now) {
                continue;
            }
            if call.state.cancel == Cancel::Owed {
                frames.push(json!({"op": "cancel", "request_id": request_id}).to_string());
                call.state.cancel = Cancel::Sent;
            } else if call.state.cancel == Cancel::No && call.state.delivery == Delivery::Unsent {
                if call.state.ever_sent {
                    tracing::info!(
                        request_id,
                        "sending the call again: the daemon joins it or answers from its result cache"
                    );
                }
                frames.push(
                    json!({"op": "call_tool", "request_id": request_id, "name": call.name,
                           "arguments": call.arguments})
                    .to_string(),
                );
                call.state.delivery = Delivery::Sent;
                call.state.ever_sent = true;
            }
        }
        for (request_id, listing) in &mut state.listings {
            if !listing.sent {
                frames.push(json!({"op": "list_tools", "request_id": request_id}).to_string());
                listing.sent = true;
            }
        }
        frames
    }

    /// The earliest instant a call waits for before it is sent again, if one does.
    fn next_resend(&self) -> Option<crate::rt::Instant> {
        let now = self.rt.now();
        let mut state = self.state.lock().expect("bridge lock");
        state
            .calls
            .iter_mut()
            .filter_map(|(_, call)| call.state.not_before)
            .filter(|at| *at > now)
            .min()
    }

    /// The connection dropped: what it sent but the daemon did not confirm is owed again.
    fn connection_lost(&self) {
        let mut state = self.state.lock().expect("bridge lock");
        for (_, call) in state.calls.iter_mut() {
            if call.state.delivery == Delivery::Sent {
                call.state.delivery = Delivery::Unsent;
            }
            if call.state.cancel == Cancel::Sent {
                call.state.cancel = Cancel::Owed;
            }
        }
        for listing in state.listings.values_mut() {
            listing.sent = false;
        }
    }

    /// Every call is owed again, acked or not: after a gap in the frames (a terminal frame
    /// may be among the lost ones) or when the daemon no longer knows the session.
    fn resend_all(&self) {
        let mut state = self.state.lock().expect("bridge lock");
        for (_, call) in state.calls.iter_mut() {
            call.state.delivery = Delivery::Unsent;
        }
    }

    /// Give up on everything waiting: the daemon cannot be reached (or refused us).
    fn fail_all(&self, code: ErrorCode, why: &str) {
        let mut state = self.state.lock().expect("bridge lock");
        let error = CallError::new(code, why);
        state
            .calls
            .fail_all(|request_id| ServerFrame::call_failed(request_id, error.clone()));
        for listing in state.listings.values_mut() {
            if let Some(reply) = listing.reply.take() {
                let _ = reply.send(Err(why.to_string()));
            }
        }
        state.down = Some(why.to_string());
    }

    /// Handle one frame from the daemon. Returns the seq to ack now, if one is due.
    fn on_frame(&self, received: &Received) -> Option<u64> {
        let mut state = self.state.lock().expect("bridge lock");
        let frame = &received.frame;
        let now = self.rt.now();
        let terminal = if Self::send_again(&mut state, frame, now) {
            self.wake.notify_one();
            true
        } else {
            state.calls.route(frame) == Routed::Terminal
        };
        match frame {
            ServerFrame::CallToolAck { request_id, .. } => {
                if let Some(call) = state.calls.get_mut(request_id) {
                    call.state.delivery = Delivery::Acked;
                }
            }
            ServerFrame::ListToolsRes {
                request_id: Some(id),
                tools,
            } => {
                if let Some(listing) = state.listings.get_mut(id)
                    && let Some(reply) = listing.reply.take()
                {
                    let _ = reply.send(Ok(tools.clone()));
                }
            }
            ServerFrame::Error {
                request_id: Some(id),
                error,
            } => {
                if let Some(listing) = state.listings.get_mut(id)
                    && let Some(reply) = listing.reply.take()
                {
                    let message = &error.message;
                    let _ = reply.send(Err(format!("the daemon refused list_tools: {message}")));
                } else if state
                    .calls
                    .get_mut(id)
                    .is_some_and(|call| call.state.cancel == Cancel::Sent)
                {
                    // A cancel for a call the daemon no longer runs: nothing more will come.
                    state.calls.remove(id);
                } else {
                    tracing::debug!(request_id = %id, error = %error, "error frame from the daemon");
                }
            }
            ServerFrame::Gap { to_seq, .. } => {
                tracing::warn!(
                    to_seq,
                    "the daemon lost frames before the bridge saw them; asking again for every waiting call"
                );
                if let Some(session) = state.session.as_mut() {
                    session.last_seq = session.last_seq.max(*to_seq);
                }
                drop(state);
                self.resend_all();
                self.wake.notify_one();
                return None;
            }
            _ => {} // progress and terminal frames were routed; cancelled, pong, health_res
        }
        let session = state.session.as_mut()?;
        if let Some(seq) = received.seq {
            session.last_seq = session.last_seq.max(seq);
        }
        let due = terminal || session.last_seq >= session.acked_seq + ACK_EVERY_FRAMES;
        if due && session.last_seq > session.acked_seq {
            session.acked_seq = session.last_seq;
            return Some(session.last_seq);
        }
        None
    }

    /// An interrupted end: `INTERRUPTED` (the daemon stopped while the call ran, nothing of it
    /// was kept), or `SERVICE_UNAVAILABLE` (a call sent again reached a daemon still shutting
    /// down). The call is owed again under the same request id after the daemon's
    /// `retry_after_secs`, so the editor sees the one real answer, and the provider is asked
    /// once for it. True when the frame was taken so.
    fn send_again(state: &mut State, frame: &ServerFrame, now: crate::rt::Instant) -> bool {
        let ServerFrame::CallToolRes {
            request_id,
            error: Some(error),
            ..
        } = frame
        else {
            return false;
        };
        if !matches!(
            error.code,
            ErrorCode::Interrupted | ErrorCode::ServiceUnavailable
        ) {
            return false;
        }
        let Some(call) = state.calls.get_mut(request_id) else {
            return false;
        };
        if call.state.cancel != Cancel::No || call.state.interrupts >= INTERRUPTS_MAX {
            return false;
        }
        call.state.interrupts += 1;
        call.state.delivery = Delivery::Unsent;
        let wait = Duration::from_secs(error.retry_after_secs.unwrap_or(1).clamp(1, 30));
        call.state.not_before = Some(now + wait);
        tracing::info!(
            request_id = %request_id,
            interrupts = call.state.interrupts,
            "the daemon stopped while the call ran; sending it again under the same request id"
        );
        true
    }

    /// The `hello` for the next connection: a resume when there is a session.
    fn hello(&self, token: &str) -> String {
        let state = self.state.lock().expect("bridge lock");
        let client = json!({"name": "exaid-mcp-bridge", "version": env!("CARGO_PKG_VERSION")});
        match &state.session {
            // The bridge acks every frame it reads: the daemon keeps each until then.
            Some(session) => json!({"op": "hello", "token": token, "client": client, "acks": true,
                "session_id": session.session_id, "resume_token": session.resume_token,
                "last_seq": session.last_seq}),
            None => json!({"op": "hello", "token": token, "client": client, "acks": true}),
        }
        .to_string()
    }

    /// Take in a `hello_ack`. A session the daemon no longer knows (it restarted, or the
    /// session expired) means every waiting call must be sent again in the new one.
    fn on_hello_ack(&self, ack: &ServerFrame) -> Result<(), Failure> {
        let ServerFrame::HelloAck {
            session_id,
            resume_token,
            resumed,
            resume_refused,
            ..
        } = ack
        else {
            // Only the op: the frame itself might carry a secret.
            return Err(Failure::Transient(format!(
                "the daemon's first frame was not a hello_ack with a session (op {:?})",
                frame_op(ack)
            )));
        };
        let (session_id, resumed) = (session_id.as_str(), *resumed);
        let mut state = self.state.lock().expect("bridge lock");
        let had_session = state.session.is_some();
        if !resumed {
            state.session = Some(Resume {
                session_id: session_id.to_string(),
                resume_token: resume_token.to_string(),
                last_seq: 0,
                acked_seq: 0,
            });
        }
        state.down = None;
        drop(state);
        if had_session && !resumed {
            let why = resume_refused.as_deref().unwrap_or("unknown");
            tracing::warn!(
                session = session_id,
                why,
                "the daemon could not resume the session; sending waiting calls again in a new one"
            );
            self.resend_all();
        } else if resumed {
            tracing::info!(session = session_id, "session resumed");
        } else {
            tracing::info!(session = session_id, "session opened");
        }
        Ok(())
    }

    /// The backoff before the next attempt, after `failures` in a row.
    fn backoff(&self, failures: u32) -> Duration {
        let mut rng = self.rng.lock().expect("rng lock");
        backoff(
            self.config.backoff_base,
            self.config.backoff_max,
            failures,
            &mut rng,
        )
    }
}

/// Doubling from `base` with each failure, capped at `max`, drawn from the upper half so that
/// many bridges cut off at once do not reconnect in step.
fn backoff(base: Duration, max: Duration, failures: u32, rng: &mut Rng) -> Duration {
    let base_ms = base.as_millis() as u64;
    let max_ms = max.as_millis() as u64;
    let full_ms = base_ms
        .saturating_mul(1u64 << failures.saturating_sub(1).min(20))
        .min(max_ms)
        .max(1);
    let jitter_ms = rng.below(full_ms / 2 + 1);
    Duration::from_millis(full_ms - full_ms / 2 + jitter_ms)
}

/// The connection task: connect, serve, reconnect, forever.
async fn supervise(inner: Arc<Inner>) {
    let attempts_max = inner.config.reconnect_attempts_max.max(1);
    let mut failures = 0u32;
    loop {
        if failures > 0 {
            inner.rt.sleep(inner.backoff(failures)).await;
        }
        match connect_and_serve(&inner).await {
            // The connection was up and dropped: reconnect after the shortest backoff (a
            // daemon that accepts and drops at once must not be hammered).
            Ok(()) => failures = 1,
            Err(Failure::Transient(why)) => {
                failures += 1;
                tracing::warn!(
                    attempt = failures,
                    attempts_max,
                    "cannot reach exaid: {why}"
                );
                if failures >= attempts_max {
                    let why = format!(
                        "cannot reach the exaid daemon at {} after {attempts_max} attempts: {why} (is it running? start it with `exaid`, or use `exaid mcp --standalone`)",
                        inner.dialer.peer()
                    );
                    give_up(&inner, ErrorCode::ServiceUnavailable, &why).await;
                    failures = 0;
                }
            }
            Err(Failure::Fatal(code, why)) => {
                tracing::error!("exaid refused the bridge: {why}");
                give_up(&inner, code, &why).await;
                failures = 0;
            }
        }
    }
}

/// Fail everything waiting, then wait until something new needs the daemon.
async fn give_up(inner: &Inner, code: ErrorCode, why: &str) {
    inner.fail_all(code, why);
    loop {
        inner.wake.notified().await;
        if inner.has_demand() {
            return;
        }
    }
}

/// One connection: dial, upgrade, hello, then serve until it drops. `Ok` once it had been up.
async fn connect_and_serve(inner: &Inner) -> Result<(), Failure> {
    let token = inner.config.token.resolve().map_err(Failure::Transient)?;
    let peer = inner.dialer.peer();
    let connect = async {
        let stream = inner
            .dialer
            .dial()
            .await
            .map_err(|err| format!("connect to {peer}: {err}"))?;
        let ws_config = WebSocketConfig::default()
            .max_message_size(Some(inner.config.frame_bytes_max))
            .max_frame_size(Some(inner.config.frame_bytes_max));
        tokio_tungstenite::client_async_with_config(
            format!("ws://{peer}/"),
            stream,
            Some(ws_config),
        )
        .await
        .map(|(ws, _)| ws)
        .map_err(|err| format!("websocket upgrade with {peer}: {err}"))
    };
    let ws = tokio::select! {
        biased;
        ws = connect => ws.map_err(Failure::Transient)?,
        () = inner.rt.sleep(inner.config.connect_timeout) => {
            return Err(Failure::Transient(format!("no connection to {peer} within {} s", inner.config.connect_timeout.as_secs())));
        }
    };
    let (mut sink, mut source) = ws.split();
    sink.send(Message::text(inner.hello(&token)))
        .await
        .map_err(|err| Failure::Transient(format!("send hello: {err}")))?;
    drop(token);
    let first = tokio::select! {
        biased;
        first = next_text(&mut source) => first?,
        () = inner.rt.sleep(inner.config.hello_timeout) => {
            return Err(Failure::Transient(format!("no hello_ack within {} s", inner.config.hello_timeout.as_secs())));
        }
    };
    let ack = decode_server(&first).map_err(|err| {
        Failure::Transient(format!(
            "the daemon's first frame was not a hello_ack with a session: {}",
            truncate(&err, 120)
        ))
    })?;
    inner.on_hello_ack(&ack.frame)?;
    serve(inner, &mut sink, &mut source).await;
    inner.connection_lost();
    Ok(())
}

type Sink = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<crate::rt::BoxStream>,
    Message,
>;
type Source =
    futures_util::stream::SplitStream<tokio_tungstenite::WebSocketStream<crate::rt::BoxStream>>;

/// The next text frame before the session is up; a close says why the daemon refused.
async fn next_text(source: &mut Source) -> Result<String, Failure> {
    loop {
        match source.next().await {
            Some(Ok(Message::Text(text))) => return Ok(text.to_string()),
            Some(Ok(Message::Close(Some(frame)))) => {
                let code = u16::from(frame.code);
                let why = format!(
                    "the daemon closed the connection ({code}: {})",
                    frame.reason
                );
                return Err(if code == close_code::BAD_TOKEN {
                    Failure::Fatal(
                        ErrorCode::Unauthorized,
                        format!(
                            "{why}: EXAI_WS_TOKEN or the token file does not match the daemon's token"
                        ),
                    )
                } else {
                    Failure::Transient(why)
                });
            }
            Some(Ok(Message::Close(None))) | None => {
                return Err(Failure::Transient(
                    "the daemon closed the connection".to_string(),
                ));
            }
            Some(Ok(_)) => continue,
            Some(Err(err)) => return Err(Failure::Transient(format!("read: {err}"))),
        }
    }
}

/// Serve an established session until its socket drops.
async fn serve(inner: &Inner, sink: &mut Sink, source: &mut Source) {
    let idle = inner.config.keepalive_idle;
    let mut keepalive = inner.rt.sleep(idle);
    let mut heard = true;
    let mut silent_ticks = 0u32;
    loop {
        for frame in inner.owed_frames() {
            if let Err(err) = sink.send(Message::text(frame)).await {
                tracing::warn!(error = %err, "lost the connection to exaid while sending; reconnecting");
                return;
            }
        }
        let resend_at = inner.next_resend();
        let resend = async {
            match resend_at {
                Some(at) => inner.rt.sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = inner.wake.notified() => {}
            () = resend => {}
            message = source.next() => {
                heard = true;
                let text = match message {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(frame))) => {
                        let why = frame.map(|f| format!("{}: {}", u16::from(f.code), f.reason)).unwrap_or_default();
                        tracing::warn!(close = %why, "exaid closed the connection; resuming the session");
                        return;
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(err)) => {
                        tracing::warn!(error = %err, "lost the connection to exaid; resuming the session");
                        return;
                    }
                    None => {
                        tracing::warn!("lost the connection to exaid; resuming the session");
                        return;
                    }
                };
                let frame = match decode_server(&text) {
                    Ok(frame) => frame,
                    Err(err) => {
                        tracing::warn!(error = %err, "a frame from exaid could not be read; ignored");
                        continue;
                    }
                };
                if let Some(seq) = inner.on_frame(&frame) {
                    let ack = json!({"op": "ack", "seq": seq}).to_string();
                    if sink.send(Message::text(ack)).await.is_err() {
                        return;
                    }
                }
            }
            () = &mut keepalive => {
                keepalive = inner.rt.sleep(idle);
                if std::mem::take(&mut heard) {
                    silent_ticks = 0;
                    continue;
                }
                silent_ticks += 1;
                if silent_ticks >= 2 {
                    tracing::warn!(silent_secs = (idle * 2).as_secs(), "exaid went silent; reconnecting");
                    return;
                }
                if sink.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// A frame's `op`, for a log line that must not print the frame (it may carry a secret).
fn frame_op(frame: &ServerFrame) -> String {
    let json = serde_json::to_value(frame).unwrap_or(Value::Null);
    truncate(json["op"].as_str().unwrap_or("?"), 32)
}

fn truncate(text: &str, chars_max: usize) -> String {
    text.chars().take(chars_max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_its_bounds() {
        let mut rng = Rng::from_seed([3; 32]);
        let (base, max) = (Duration::from_millis(100), Duration::from_secs(3));
        for failures in 1..=30u32 {
            let full = (100u64 << (failures - 1).min(20)).min(3_000);
            for _ in 0..50 {
                let wait = backoff(base, max, failures, &mut rng).as_millis() as u64;
                assert!(
                    wait >= full - full / 2 && wait <= full,
                    "{failures}: {wait}"
                );
            }
        }
    }

    #[test]
    fn token_source_debug_hides_the_token() {
        let shown = format!("{:?}", TokenSource::Fixed("secret-token".to_string()));
        assert!(!shown.contains("secret"), "{shown}");
    }
}
