//! MCP clients in the simulation: `/mcp`'s ways of surviving a dropped stream, driven through
//! the same code as in production, minus rmcp's HTTP framing.
//!
//! - A **stateless** client (protocol 2026-07-28) starts a call through
//!   [`exaid::mcp::detached::Detached`], may drop its stream mid-call, and later sends the
//!   same request again (joining the running call or getting the kept result), or cancels it
//!   with `notifications/cancelled` first.
//! - A **session** client starts calls through its [`exaid::mcp::local::LocalClient`] (one MCP
//!   session); a stand-in for rmcp's session handler relays each call's events into the real
//!   event store ([`exaid::mcp::events::EventLog`], a priming event first, as rmcp sends), and
//!   the client, after a drop, resumes with `Last-Event-ID` through the store's replay.
//! - A **task** client (the tasks extension) starts a task, polls it (going quiet for a while
//!   now and then), and sometimes cancels it.
//!
//! Each client checks what it sees: exactly one result per call, its own answer, events
//! replayed once and in order, and no call cancelled that the client did not cancel. The run
//! checks that the provider was asked once per call ([`calls_made`] against the calls the
//! daemon accepted).

use std::sync::Arc;
use std::time::Duration;

use exaid::error::ErrorCode;
use exaid::mcp::detached::{Detached, Reached};
use exaid::mcp::events::{EventLog, Store};
use exaid::mcp::handler::tool_result;
use exaid::mcp::local::LocalClient;
use exaid::protocol::ServerFrame;
use exaid::state::Shared;
use futures_util::StreamExt;
use rmcp::model::{
    NumberOrString, ProgressNotification, ProgressNotificationParam, ProgressToken,
    ServerJsonRpcMessage, ServerNotification, ServerResult,
};
use rmcp::transport::common::server_side_http::ServerSseMessage;
use rmcp::transport::streamable_http_server::session::EventStore;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::journal::{Invariant, JournalRef, lock};

/// How a simulated MCP client keeps its calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum McpMode {
    /// 2026-07-28, no session: a dropped call is sent again under its request id.
    Stateless,
    /// A session: a dropped stream is resumed with `Last-Event-ID`.
    Session,
    /// The tasks extension: the call is polled by task id.
    Task,
}

/// One call of a simulated MCP client.
#[derive(Debug, Clone)]
pub struct McpCall {
    /// Its prompt (unique in the run, so the answer can be told apart).
    pub prompt: String,
    /// When it is sent (virtual ms from the start).
    pub send_at_ms: u64,
    /// The stream drops this long after the call was sent, if the call is still running.
    pub drop_after_ms: Option<u64>,
    /// The client comes back this long after the drop.
    pub back_after_ms: u64,
    /// On coming back, cancel the call first (stateless and task clients).
    pub cancel: bool,
}

/// One simulated MCP client.
#[derive(Debug, Clone)]
pub struct McpClientSpec {
    /// Its name in the journal.
    pub name: String,
    /// How it keeps its calls.
    pub mode: McpMode,
    /// Its calls.
    pub calls: Vec<McpCall>,
}

/// Calls the clients will make in all (each must reach the provider's side once: accepted
/// once by the daemon).
pub fn calls_made(clients: &[McpClientSpec]) -> u64 {
    clients.iter().map(|c| c.calls.len() as u64).sum()
}

/// What every client of a run shares.
struct World {
    /// The daemon.
    shared: Arc<Shared>,
    /// The detached calls (stateless and tasks), as `/mcp` keeps them.
    detached: Detached,
    /// The event store, as `/mcp` keeps it.
    events: Store,
    /// The run's journal.
    journal: JournalRef,
}

/// Run every client to its end (on the daemon's node: they are in-process clients).
pub async fn run(shared: Arc<Shared>, clients: Vec<McpClientSpec>, journal: JournalRef) {
    let limits = exaid::mcp::http::event_limits(&shared);
    let world = Arc::new(World {
        detached: Detached::new(shared.clone()),
        events: Store(EventLog::new(shared.rt.clone(), limits)),
        shared,
        journal,
    });
    let mut running = Vec::new();
    for spec in clients {
        let session = match spec.mode {
            McpMode::Session => match LocalClient::open(&world.shared) {
                Ok(client) => Some(Arc::new(client)),
                Err(error) => {
                    world.violate(format!("{}: no session: {}", spec.name, error.message));
                    continue;
                }
            },
            _ => None,
        };
        for (index, call) in spec.calls.iter().cloned().enumerate() {
            let (world, name, session) = (world.clone(), spec.name.clone(), session.clone());
            let id = format!("{name}-{index}");
            let mode = spec.mode;
            running.push(madsim::task::spawn(async move {
                madsim::time::sleep(Duration::from_millis(call.send_at_ms)).await;
                match (mode, session) {
                    (McpMode::Stateless, _) => world.stateless(&id, &call).await,
                    (McpMode::Session, Some(session)) => world.session(&session, &id, &call).await,
                    (McpMode::Task, _) => world.task(&id, &call).await,
                    (McpMode::Session, None) => unreachable!("a session client has its session"),
                }
            }));
        }
    }
    for call in running {
        call.await.expect("an MCP client's call does not panic");
    }
}

/// The arguments of a call asking `prompt`.
fn chat(prompt: &str) -> Map<String, Value> {
    let Value::Object(arguments) = json!({"prompt": prompt}) else {
        unreachable!()
    };
    arguments
}

/// The error code of a terminal frame, `None` for a success.
fn code_of(frame: &ServerFrame) -> Option<ErrorCode> {
    match frame {
        ServerFrame::CallToolRes { ok: true, .. } => None,
        ServerFrame::CallToolRes { error, .. } => {
            Some(error.as_ref().map_or(ErrorCode::InternalError, |e| e.code))
        }
        _ => Some(ErrorCode::InternalError),
    }
}

impl World {
    fn violate(&self, detail: String) {
        lock(&self.journal).violate(Invariant::ExactlyOnce, detail);
    }

    fn cover(&self, tag: &'static str) {
        lock(&self.journal).cover(tag);
    }

    /// The one result of call `id` is `frame`: it answers `call` (its own prompt), and it is
    /// no cancel the client did not ask for.
    fn check(&self, id: &str, call: &McpCall, frame: &ServerFrame, cancelled: bool) {
        let mut journal = lock(&self.journal);
        let code = code_of(frame);
        journal.record(format!("mcp {id} ended {code:?}"));
        journal.count("mcp calls answered", 1);
        match (frame, code) {
            (ServerFrame::CallToolRes { text, .. }, None) if !text.contains(&call.prompt) => {
                journal.violate(
                    Invariant::ExactlyOnce,
                    format!("mcp {id} got another call's answer: {text}"),
                );
            }
            (_, Some(ErrorCode::Cancelled)) if !cancelled => journal.violate(
                Invariant::ExactlyOnce,
                format!("mcp {id} was cancelled though its client only dropped its stream"),
            ),
            _ => {}
        }
    }

    /// A stateless call: drop, then send again (or cancel first).
    async fn stateless(&self, id: &str, call: &McpCall) {
        let started = self
            .detached
            .start_stateless(id, "chat", chat(&call.prompt));
        let mut stream = match started {
            Ok((stream, _)) => stream,
            Err(error) => return self.refused(id, error.code),
        };
        let drop_after = call.drop_after_ms.unwrap_or(u64::MAX / 4);
        tokio::select! {
            biased;
            frame = &mut stream.terminal => {
                let frame = frame.expect("a stateless call's result is always sent");
                return self.check(id, call, &frame, false);
            }
            () = madsim::time::sleep(Duration::from_millis(drop_after)) => {}
        }
        drop(stream);
        self.cover("mcp_stream_dropped_mid_call");
        madsim::time::sleep(Duration::from_millis(call.back_after_ms)).await;
        if call.cancel {
            self.cover("mcp_stateless_cancelled");
            self.detached.cancel_request(id);
        }
        let again = self
            .detached
            .start_stateless(id, "chat", chat(&call.prompt));
        let (mut again, reached) = match again {
            Ok(found) => found,
            Err(error) => {
                let why = format!("mcp {id} sent again was refused: {}", error.message);
                return self.violate(why);
            }
        };
        match reached {
            Reached::Joined => self.cover("mcp_reissue_joined_running"),
            Reached::Stored => self.cover("mcp_reissue_got_stored_result"),
            Reached::Started => {
                return self.violate(format!("mcp {id} sent again started a second call"));
            }
        }
        match (&mut again.terminal).await {
            Ok(frame) => self.check(id, call, &frame, call.cancel),
            Err(_) => self.violate(format!("mcp {id} sent again never got its result")),
        }
    }

    /// A call refused before it started (the daemon is at its cap): not lost, answered.
    fn refused(&self, id: &str, code: ErrorCode) {
        let mut journal = lock(&self.journal);
        journal.record(format!("mcp {id} refused {code:?}"));
        journal.count("mcp calls refused", 1);
    }

    /// A session's call: its events are relayed into the store as rmcp would; the client
    /// drops its stream and resumes with the last event id it saw.
    async fn session(&self, client: &LocalClient, id: &str, call: &McpCall) {
        let started = client.start_call("chat", chat(&call.prompt));
        let started = match started {
            Ok(started) => started,
            Err(error) => return self.refused(id, error.code),
        };
        let (live_tx, mut live) = mpsc::unbounded_channel();
        let stream_name = format!("stream-{id}");
        let relay = relay(
            self.events.0.clone(),
            stream_name,
            id.to_string(),
            started.waiting,
            live_tx,
        );
        let relay = madsim::task::spawn(relay);
        let mut seen = Seen::default();
        let drop_at = madsim::time::Instant::now()
            + Duration::from_millis(call.drop_after_ms.unwrap_or(u64::MAX / 4));
        loop {
            tokio::select! {
                biased;
                event = live.recv() => match event {
                    Some(event) => {
                        if let Some(frame) = seen.take(self, id, &event) {
                            return self.check(id, call, &frame, false);
                        }
                    }
                    None => return self.violate(format!("mcp {id}'s stream ended without its result")),
                },
                () = madsim::time::sleep_until(drop_at) => break,
            }
        }
        drop(live);
        self.cover("mcp_stream_dropped_mid_call");
        madsim::time::sleep(Duration::from_millis(call.back_after_ms)).await;
        let Some(last) = seen.last_id.clone() else {
            return self.violate(format!("mcp {id} dropped before its priming event"));
        };
        let mut replay = match self.events.replay_events_after(&last).await {
            Ok(replay) => replay,
            Err(error) => {
                return self.violate(format!("mcp {id} cannot resume after {last}: {error}"));
            }
        };
        self.cover("mcp_resumed_with_last_event_id");
        while let Some(event) = replay.next().await {
            if let Some(frame) = seen.take(self, id, &event) {
                let _ = relay.await;
                return self.check(id, call, &frame, false);
            }
        }
        self.violate(format!(
            "mcp {id}'s replay after {last} ended without its result"
        ));
    }

    /// A task: polled until it ends, with a quiet spell, and sometimes cancelled.
    async fn task(&self, id: &str, call: &McpCall) {
        let task_id = match self.detached.start_task("chat", chat(&call.prompt)) {
            Ok(view) => view.task_id,
            Err(error) => return self.refused(id, error.code),
        };
        let quiet_from = call.drop_after_ms.map(|ms| now_ms() + ms);
        let mut cancelled = false;
        loop {
            let Some(view) = self.detached.task(&task_id) else {
                return self.violate(format!("mcp task {id} was forgotten while polled"));
            };
            if let Some(frame) = view.peek.frame {
                return self.check(id, call, &frame, cancelled);
            }
            if view.peek.message.is_some() {
                self.cover("mcp_task_status_message");
            }
            if let Some(quiet_from) = quiet_from
                && now_ms() >= quiet_from
                && !cancelled
            {
                self.cover("mcp_task_left_unpolled");
                madsim::time::sleep(Duration::from_millis(call.back_after_ms)).await;
                if call.cancel {
                    self.cover("mcp_task_cancelled");
                    cancelled = self.detached.cancel_task(&task_id);
                    assert!(cancelled, "a task just polled is known");
                }
                if !cancelled {
                    // Quiet once.
                    return self.poll_to_end(id, call, &task_id).await;
                }
            }
            madsim::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
    }

    /// Poll a task until it ends, without further quiet spells.
    async fn poll_to_end(&self, id: &str, call: &McpCall, task_id: &str) {
        loop {
            let Some(view) = self.detached.task(task_id) else {
                return self.violate(format!("mcp task {id} was forgotten while polled"));
            };
            if let Some(frame) = view.peek.frame {
                return self.check(id, call, &frame, false);
            }
            madsim::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
    }
}

/// How often a task client polls (the interval `/mcp` suggests).
const POLL_MS: u64 = 1_000;

fn now_ms() -> u64 {
    crate::journal::now_ms()
}

/// What a session client has seen of one call's stream.
#[derive(Default)]
struct Seen {
    /// The last event id.
    last_id: Option<String>,
    /// Its seq (the second half of the id).
    last_seq: Option<u64>,
}

impl Seen {
    /// Take one event: its id must follow the last one's; a response is the result.
    fn take(&mut self, world: &World, id: &str, event: &ServerSseMessage) -> Option<ServerFrame> {
        if let Some(event_id) = &event.event_id {
            let seq = event_id
                .rsplit_once('-')
                .and_then(|(_, seq)| seq.parse::<u64>().ok())
                .expect("exaid event ids are <stream>-<seq>");
            let expected = self.last_seq.map_or(0, |last| last + 1);
            if seq != expected {
                world.violate(format!(
                    "mcp {id}: event {event_id} after seq {:?}: not replayed once, in order",
                    self.last_seq
                ));
            }
            self.last_id = Some(event_id.clone());
            self.last_seq = Some(seq);
        }
        let message = event.message.as_deref()?;
        let ServerJsonRpcMessage::Response(response) = message else {
            return None;
        };
        let ServerResult::CallToolResult(result) = &response.result else {
            world.violate(format!("mcp {id}: a response that is no tool result"));
            return None;
        };
        Some(frame_of(result))
    }
}

/// The terminal frame a tool result stands for (what the session client checks).
fn frame_of(result: &rmcp::model::CallToolResult) -> ServerFrame {
    let text: String = result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect();
    if result.is_error == Some(true) {
        let (code, message) = text.split_once(": ").unwrap_or(("INTERNAL_ERROR", &text));
        let code: ErrorCode =
            serde_json::from_value(json!(code)).unwrap_or(ErrorCode::InternalError);
        let error = exaid::error::CallError::new(code, message.to_string());
        ServerFrame::call_failed("mcp".into(), error)
    } else {
        ServerFrame::call_succeeded("mcp".into(), text)
    }
}

/// rmcp's session handler, as far as the store sees it: a priming event, each progress frame
/// as a notification, then the response; each stored, then sent live while anyone listens.
async fn relay(
    log: Arc<EventLog>,
    stream: String,
    id: String,
    mut waiting: exaid::mcp::pending::Waiting,
    live: mpsc::UnboundedSender<ServerSseMessage>,
) {
    let store = Store(log);
    let send = |event: ServerSseMessage| {
        let store = &store;
        let (stream, live) = (&stream, &live);
        async move {
            let event_id = store.store_event(stream, &event).await.expect("stored");
            let mut event = event;
            event.event_id = Some(event_id);
            let _ = live.send(event);
        }
    };
    send(ServerSseMessage::priming("0", Duration::from_secs(1))).await;
    let token = ProgressToken(NumberOrString::String(id.clone().into()));
    let mut progress = 0.0;
    loop {
        tokio::select! {
            biased;
            terminal = &mut waiting.terminal => {
                let frame = terminal.expect("a session call's result is sent");
                let result = ServerResult::CallToolResult(tool_result(&frame));
                let message = ServerJsonRpcMessage::response(result, NumberOrString::String(id.into()));
                return send(ServerSseMessage::from_message(message)).await;
            }
            Some(frame) = waiting.progress.recv() => {
                let ServerFrame::Progress { message, .. } = frame else { continue };
                progress += 1.0;
                let param = ProgressNotificationParam::new(token.clone(), progress).with_message(message);
                let note = ServerNotification::ProgressNotification(ProgressNotification::new(param));
                send(ServerSseMessage::from_message(ServerJsonRpcMessage::notification(note))).await;
            }
        }
    }
}
