//! Simulated clients: each runs on its own sim node and speaks the real protocol over
//! simulated TCP. The supervisor kills the node to disconnect it (madsim resets its sockets)
//! and, if the plan says so, starts a new node that resumes the session with its resume token
//! and last seq.
//!
//! The client checks what only a client can see: every frame's seq is exactly one more than
//! the last (a `gap` frame excepted), nothing is received twice across a resume, and every
//! call it sent ends with exactly one `call_tool_res` carrying its own answer (the tool
//! output's `content` names the question, or every step of a workflow session).
//!
//! Workflow sessions are caller-driven, as with a real agent: the client sends step 1, takes
//! the `continuation_id` from its result, waits a moment (the agent's own work), and sends
//! the next step, up to the final one. The client may be killed between steps; it resumes
//! its session and goes on with the same conversation, and the final analysis must cover
//! every step.
//!
//! When the daemon itself dies (the `crash-restart` scenario), a client's connection breaks
//! under it: it comes back every [`REDIAL_PAUSE`] until the restarted daemon listens, and
//! resumes with its session id, resume token and last seq (invariant 15). A call the dead
//! daemon had accepted ends with `INTERRUPTED` (the call's one terminal frame); the client
//! sends it once more under the same request id and expects a real result. A conversation it
//! holds must go on after the restart unless the simulated disk had not committed it
//! (invariant 16).

mod checks;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use exaid::protocol::{Received, ServerFrame, decode_server};

use crate::journal::{Invariant, JournalRef, lock, now_ms};
use crate::store::SimStore;
use checks::{check_answer, conversation_refused, cover_refusal};

/// How long a client whose connection broke waits before it dials the daemon again.
pub const REDIAL_PAUSE: Duration = Duration::from_millis(500);

/// The error code of the terminal frame a restarted daemon gives a call its dead
/// incarnation had accepted (the wire name of the core's `ErrorCode::Interrupted`).
pub const INTERRUPTED: &str = "INTERRUPTED";

/// How one connection of a client ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The client finished, was closed at shutdown, or met something it will not retry.
    Finished,
    /// The connection could not be made or broke under it (the daemon died): a client that
    /// comes back dials again.
    Broken,
}

/// What an ok answer must show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// A model's answer: the tool output's `content` contains every one of these (the
    /// question's marker; for a workflow's final step, every step's).
    Answer(Vec<String>),
    /// An intermediate workflow step: this status and a continuation offer.
    Pause(String),
    /// A local tool's JSON document.
    Local,
}

/// One call a client will make.
#[derive(Debug, Clone)]
pub struct CallSpec {
    /// Its request id (unique per client).
    pub request_id: String,
    /// The tool.
    pub tool: String,
    /// The arguments (they name the request id, so answers can be checked).
    pub arguments: Value,
    /// When to send it, virtual ms since the run began (ignored for a call sent `after`).
    pub send_at_ms: u64,
    /// When to cancel it, if ever.
    pub cancel_at_ms: Option<u64>,
    /// When to send the same request id again, if ever.
    pub duplicate_at_ms: Option<u64>,
    /// A later workflow step: sent this many ms after the named call's ok result, with that
    /// result's `continuation_id` (never sent if that call failed).
    pub after: Option<(String, u64)>,
    /// What its ok answer must show.
    pub expect: Expect,
    /// It must end ok: an `auto` call while another provider of its chain is healthy
    /// (the failover scenario), a call to a healthy provider while another hangs (isolation).
    pub must_answer: bool,
}

impl CallSpec {
    /// A call answered by a model whose answer must quote `question <request_id>`.
    pub fn question(request_id: String, tool: &str, arguments: Value, send_at_ms: u64) -> CallSpec {
        CallSpec {
            expect: Expect::Answer(vec![format!("question {request_id}")]),
            request_id,
            tool: tool.to_string(),
            arguments,
            send_at_ms,
            cancel_at_ms: None,
            duplicate_at_ms: None,
            after: None,
            must_answer: false,
        }
    }
}

/// A client's script.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    /// For traces.
    pub name: String,
    /// Its calls.
    pub calls: Vec<CallSpec>,
    /// When the supervisor kills its node, if ever.
    pub disconnect_at_ms: Option<u64>,
    /// How long after the kill it comes back and resumes (`None`: it never returns).
    pub resume_after_ms: Option<u64>,
    /// Send `ack` after this many frames (0: never ack, like old clients).
    pub ack_every_frames: u32,
}

impl ClientSpec {
    /// A client that stays connected and never acknowledges: only its calls vary.
    pub fn steady(name: String, calls: Vec<CallSpec>) -> ClientSpec {
        ClientSpec {
            name,
            calls,
            disconnect_at_ms: None,
            resume_after_ms: None,
            ack_every_frames: 0,
        }
    }
}

#[derive(Debug, Clone)]
enum Action {
    Send(usize),
    Cancel(String),
    Duplicate(usize),
}

impl ClientSpec {
    fn actions(&self) -> Vec<(u64, Action)> {
        let mut actions = Vec::new();
        for (index, call) in self.calls.iter().enumerate() {
            if call.after.is_some() {
                continue; // sent when the step before it is answered
            }
            actions.push((call.send_at_ms, Action::Send(index)));
            if let Some(at) = call.cancel_at_ms {
                actions.push((at, Action::Cancel(call.request_id.clone())));
            }
            if let Some(at) = call.duplicate_at_ms {
                actions.push((at, Action::Duplicate(index)));
            }
        }
        // Stable: equal times keep script order.
        actions.sort_by_key(|(at, _)| *at);
        actions
    }
}

/// What a client knows, kept outside its node so it survives a kill.
#[derive(Debug, Default)]
pub struct ClientState {
    /// Session credentials from `hello_ack`.
    pub session_id: Option<String>,
    resume_token: Option<String>,
    /// Highest seq received.
    pub last_seq: u64,
    /// `call_tool_res` frames received per request id.
    pub results: BTreeMap<String, u32>,
    /// Request ids whose `call_tool_ack` arrived.
    acked: BTreeSet<String>,
    /// Request ids sent.
    sent: BTreeSet<String>,
    /// How many times each request id was sent (first send, repeats, resends).
    sends: BTreeMap<String, u32>,
    /// Script actions performed.
    actions_done: usize,
    /// Frames received since the last `ack`.
    frames_since_ack: u32,
    /// Killed and never coming back.
    pub gone: bool,
    /// Finished its script and got every result.
    pub done: bool,
    /// Connections made.
    pub connections: u32,
    /// Results that came back `ok`.
    pub ok_results: u32,
    /// The `continuation_id` of each ok workflow result, by request id.
    continuations: BTreeMap<String, String>,
    /// Later workflow steps due to be sent: (virtual ms, call index), earliest first.
    ready: Vec<(u64, usize)>,
    /// Later workflow steps that will never be sent (an earlier step failed).
    skipped: BTreeSet<String>,
    /// The highest seq it acknowledged.
    last_acked_seq: u64,
    /// The seq of the latest `call_tool_res` of each request id.
    result_seqs: BTreeMap<String, u64>,
    /// When (virtual ms) it got each workflow or chat result's `continuation_id`, by request id.
    continuation_at: BTreeMap<String, u64>,
    /// `INTERRUPTED` results received, by request id (the call's incarnation died).
    interrupted: BTreeMap<String, u32>,
    /// Calls whose result can never come: their session was refused after a restart.
    lost: BTreeSet<String>,
    /// Its last connection broke under it (the daemon died): the next resume follows a crash.
    broken: bool,
    /// The simulated disk, when the daemon keeps its state on one: the witness of what was
    /// committed, to judge a conversation the restarted daemon no longer knows.
    store: Option<SimStore>,
}

impl ClientState {
    /// A client of a daemon that keeps its state on `store` (and may crash).
    pub fn on_disk(store: Option<SimStore>) -> ClientState {
        ClientState {
            store,
            ..ClientState::default()
        }
    }

    /// Results it received (or the daemon pushed past its last ack) that it has not
    /// acknowledged: what a crash now would have to replay.
    pub fn unacked_results(&self) -> usize {
        self.result_seqs
            .values()
            .filter(|seq| **seq > self.last_acked_seq)
            .count()
    }

    /// Which invariant a frame delivered twice or out of order breaks: 3, or 15 once the
    /// daemon has died under this client (then it is a replay across a restart that failed).
    pub fn once_invariant(&self) -> Invariant {
        if self.store.as_ref().is_some_and(|store| store.crashes() > 0) {
            Invariant::ResultsSurviveRestart
        } else {
            Invariant::ExactlyOnce
        }
    }

    fn finished(&self, spec: &ClientSpec, actions_total: usize) -> bool {
        self.actions_done >= actions_total
            && self.ready.is_empty()
            && spec.calls.iter().all(|c| {
                c.after.is_none()
                    || self.sent.contains(&c.request_id)
                    || self.skipped.contains(&c.request_id)
            })
            && self
                .sent
                .iter()
                .all(|id| self.results.get(id).copied().unwrap_or(0) >= 1 || self.lost.contains(id))
    }

    /// Calls the daemon acknowledged (accepted or joined) without a result yet.
    pub fn open_accepted_calls(&self) -> usize {
        self.acked
            .iter()
            .filter(|id| !self.results.contains_key(*id))
            .count()
    }

    /// Workflow conversations this client holds a `continuation_id` of.
    pub fn continuations_held(&self) -> usize {
        self.continuations.len()
    }

    /// Workflow steps waiting for an earlier step or for their send time.
    pub fn steps_pending(&self, spec: &ClientSpec) -> usize {
        spec.calls
            .iter()
            .filter(|c| {
                c.after.is_some()
                    && !self.sent.contains(&c.request_id)
                    && !self.skipped.contains(&c.request_id)
            })
            .count()
    }

    /// Calls sent without a result yet.
    /// The request ids of the calls still waiting for their result.
    pub fn open_call_ids(&self) -> impl Iterator<Item = &String> {
        self.sent
            .iter()
            .filter(|id| !self.results.contains_key(*id) && !self.lost.contains(*id))
    }

    pub fn open_calls(&self) -> usize {
        self.sent
            .iter()
            .filter(|id| !self.results.contains_key(*id) && !self.lost.contains(*id))
            .count()
    }
}

/// Shared handle on a client's state.
pub type ClientRef = Arc<Mutex<ClientState>>;

fn text(frame: Value) -> Message {
    Message::text(frame.to_string())
}

/// One connection of a client: connect, hello (or resume), run the script, read frames,
/// until the script is done and every result is in, or the node is killed.
pub async fn run_connection(
    spec: Arc<ClientSpec>,
    state: ClientRef,
    journal: JournalRef,
    daemon: SocketAddr,
    token: String,
    resume: bool,
) -> Ended {
    connection(spec, state, journal, daemon, token, resume, 10_000).await
}

/// A client from its first connection on. One that `comes_back` dials again, every
/// [`REDIAL_PAUSE`], whenever its connection breaks (the daemon died), and resumes its
/// session; otherwise this is [`run_connection`].
pub async fn run_client(
    spec: Arc<ClientSpec>,
    state: ClientRef,
    journal: JournalRef,
    daemon: SocketAddr,
    token: String,
    resume: bool,
    comes_back: bool,
) {
    if !comes_back {
        run_connection(spec, state, journal, daemon, token, resume).await;
        return;
    }
    let mut resume = resume;
    loop {
        let ended = connection(
            spec.clone(),
            state.clone(),
            journal.clone(),
            daemon,
            token.clone(),
            resume,
            1,
        )
        .await;
        {
            let mut state = state.lock().expect("client lock");
            if ended == Ended::Finished || state.done || state.gone {
                return;
            }
            state.broken = true;
            resume = state.session_id.is_some();
        }
        lock(&journal).count("redials", 1);
        madsim::time::sleep(REDIAL_PAUSE).await;
    }
}

/// One connection, dialling at most `attempts` times (1 ms apart).
/// Invariant 18: with abusers about, a hello is still answered within the bound.
fn served_in_bound(journal: &JournalRef, name: &str, connected_at_ms: u64) {
    let mut journal = lock(journal);
    let Some(bound_ms) = journal.served_within_ms else {
        return;
    };
    let waited_ms = crate::journal::now_ms().saturating_sub(connected_at_ms);
    journal.count("longest hello wait ms", 0);
    let longest = journal
        .counters
        .get_mut("longest hello wait ms")
        .expect("counted");
    *longest = (*longest).max(waited_ms);
    if waited_ms > bound_ms {
        journal.violate(
            Invariant::ServedBesideAbusers,
            format!("{name} waited {waited_ms} ms for its hello_ack beside abusers (bound {bound_ms} ms)"),
        );
    } else {
        journal.cover("served_beside_abusers");
    }
}

async fn connection(
    spec: Arc<ClientSpec>,
    state: ClientRef,
    journal: JournalRef,
    daemon: SocketAddr,
    token: String,
    resume: bool,
    attempts: u32,
) -> Ended {
    let mut stream = None;
    for _ in 0..attempts {
        match madsim::net::TcpStream::connect(daemon).await {
            Ok(connected) => {
                stream = Some(connected);
                break;
            }
            Err(_) => madsim::time::sleep(Duration::from_millis(1)).await,
        }
    }
    let Some(stream) = stream else {
        lock(&journal).record(format!("{} could not connect", spec.name));
        return Ended::Broken;
    };
    let connected_at_ms = crate::journal::now_ms();
    let Ok((ws, _)) = tokio_tungstenite::client_async(format!("ws://{daemon}/"), stream).await
    else {
        lock(&journal).record(format!("{} handshake failed", spec.name));
        return Ended::Broken;
    };
    let (mut sink, mut source) = ws.split();
    let hello = {
        let mut state = state.lock().expect("client lock");
        state.connections += 1;
        if resume {
            json!({"op": "hello", "token": token, "acks": true, "session_id": state.session_id,
                   "resume_token": state.resume_token, "last_seq": state.last_seq})
        } else {
            json!({"op": "hello", "token": token, "acks": true, "client": {"name": spec.name}})
        }
    };
    if sink.send(text(hello)).await.is_err() {
        return Ended::Broken;
    }
    let first = match source.next().await {
        Some(Ok(Message::Text(first))) => first,
        _ => return Ended::Broken,
    };
    let ack = decode_server(&first).map(|received| received.frame);
    let Ok(ServerFrame::HelloAck {
        session_id,
        resume_token,
        resumed,
        last_seq: replay_until,
        ..
    }) = ack
    else {
        lock(&journal).violate(
            Invariant::ExactlyOnce,
            format!("{} got {first} instead of hello_ack", spec.name),
        );
        return Ended::Finished;
    };
    served_in_bound(&journal, &spec.name, connected_at_ms);
    {
        let mut state = state.lock().expect("client lock");
        let mut journal = lock(&journal);
        let refused = !resumed || Some(session_id.as_str()) != state.session_id.as_deref();
        if resume && refused && state.broken {
            // The daemon restarted and forgot the session: every call of it is lost. Go on
            // in the new session, so the rest of the run (conversations) is still checked.
            journal.violate(
                Invariant::ResultsSurviveRestart,
                format!(
                    "{} resumed within the TTL after the daemon restarted, but the daemon refused: {first}",
                    spec.name
                ),
            );
            journal.cover("resume_refused_after_crash");
            let open: Vec<String> = state
                .sent
                .iter()
                .filter(|id| !state.results.contains_key(*id) && !state.lost.contains(*id))
                .cloned()
                .collect();
            for id in open {
                journal.record(format!("{} lost {id} with its session", spec.name));
                state.lost.insert(id.clone());
                schedule_next_steps(&spec, &id, false, &mut state, &mut journal);
            }
            state.session_id = Some(session_id);
            state.resume_token = Some(resume_token);
            state.last_seq = 0;
            state.last_acked_seq = 0;
            state.result_seqs.clear();
            state.broken = false;
        } else if resume {
            if refused {
                journal.violate(
                    Invariant::ExactlyOnce,
                    format!(
                        "{} resumed within the TTL but the daemon refused: {first}",
                        spec.name
                    ),
                );
                return Ended::Finished;
            }
            journal.record(format!(
                "{} resumed at seq {} of {replay_until}",
                spec.name, state.last_seq
            ));
            if replay_until > state.last_seq {
                journal.cover("resume_replayed_frames");
            }
            if state.broken {
                journal.cover("resumed_after_crash");
                state.broken = false;
            }
            journal.count("resumes", 1);
        } else {
            state.session_id = Some(session_id);
            state.resume_token = Some(resume_token);
            journal.record(format!("{} hello", spec.name));
        }
    }
    let actions = spec.actions();
    let mut replay_done = state.lock().expect("client lock").last_seq >= replay_until;
    if resume && replay_done {
        resend_unacknowledged(&spec, &state, &journal, &mut sink).await;
    }
    loop {
        let (next_action_at, next_step_at, finished) = {
            let state = state.lock().expect("client lock");
            (
                actions.get(state.actions_done).map(|(at, _)| *at),
                state.ready.first().map(|(at, _)| *at),
                state.finished(&spec, actions.len()),
            )
        };
        if finished && replay_done {
            let mut state = state.lock().expect("client lock");
            state.done = true;
            lock(&journal).record(format!("{} done", spec.name));
            break;
        }
        let wake_at = next_action_at
            .unwrap_or(u64::MAX)
            .min(next_step_at.unwrap_or(u64::MAX))
            .max(now_ms());
        let sleep_ms = wake_at.saturating_sub(now_ms()).min(1000);
        tokio::select! {
            biased;
            message = source.next() => {
                let Some(Ok(message)) = message else {
                    lock(&journal).record(format!("{} connection ended", spec.name));
                    return Ended::Broken;
                };
                let body = match message {
                    Message::Text(body) => body,
                    Message::Close(Some(frame)) if u16::from(frame.code) == 1001 => {
                        let mut state = state.lock().expect("client lock");
                        let mut journal = lock(&journal);
                        journal.cover("closed_going_away");
                        journal.record(format!("{} closed by the daemon: {}", spec.name, frame.reason));
                        // Shutdown: every call the daemon accepted must be answered before the
                        // close. A call still in flight on the wire was never accepted (no ack):
                        // the client knows to send it again after the restart.
                        let open = state.open_accepted_calls();
                        if open > 0 {
                            journal.violate(
                                Invariant::ExactlyOnce,
                                format!("{} was closed at shutdown with {open} accepted calls unanswered", spec.name),
                            );
                        }
                        if state.open_calls() > 0 {
                            journal.cover("unaccepted_call_in_flight_at_close");
                        }
                        state.done = true;
                        return Ended::Finished;
                    }
                    _ => continue,
                };
                let ack_seq = match decode_server(&body) {
                    Ok(received) => on_frame(&spec, &state, &journal, &received),
                    Err(why) => {
                        lock(&journal).violate(
                            Invariant::ExactlyOnce,
                            format!("{} got a frame it cannot read ({why}): {body}", spec.name),
                        );
                        None
                    }
                };
                if let Some(seq) = ack_seq {
                    let _ = sink.send(text(json!({"op": "ack", "seq": seq}))).await;
                    let mut state = state.lock().expect("client lock");
                    state.last_acked_seq = state.last_acked_seq.max(seq);
                }
                if !replay_done && state.lock().expect("client lock").last_seq >= replay_until {
                    replay_done = true;
                    if resume {
                        resend_unacknowledged(&spec, &state, &journal, &mut sink).await;
                    }
                }
            }
            () = madsim::time::sleep(Duration::from_millis(sleep_ms)) => {
                if next_step_at.is_some_and(|at| at <= now_ms()) && replay_done {
                    let (_, index) = state.lock().expect("client lock").ready.remove(0);
                    send_step(&spec, &state, &journal, &mut sink, index, resume).await;
                } else if next_action_at.is_some_and(|at| at <= now_ms()) && replay_done {
                    let action = actions[state.lock().expect("client lock").actions_done].1.clone();
                    perform(&spec, &state, &journal, &mut sink, action).await;
                    state.lock().expect("client lock").actions_done += 1;
                }
            }
        }
    }
    let _ = sink.close().await;
    Ended::Finished
}

type Sink = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<madsim::net::TcpStream>,
    Message,
>;

/// After a resume replay: calls sent before the kill whose ack never came may never have
/// reached the daemon; send them again under the same request id (a running one is joined).
async fn resend_unacknowledged(
    spec: &ClientSpec,
    state: &ClientRef,
    journal: &JournalRef,
    sink: &mut Sink,
) {
    let lost: Vec<usize> = {
        let state = state.lock().expect("client lock");
        spec.calls
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                state.sent.contains(&c.request_id)
                    && !state.acked.contains(&c.request_id)
                    && !state.results.contains_key(&c.request_id)
                    && !state.lost.contains(&c.request_id)
                    // An interrupted call waiting to be sent again is sent by its schedule;
                    // one already sent again and never acked is resent like any other.
                    && (!state.interrupted.contains_key(&c.request_id)
                        || !state.ready.iter().any(|(_, i)| spec.calls[*i].request_id == c.request_id))
            })
            .map(|(i, _)| i)
            .collect()
    };
    for index in lost {
        let call = &spec.calls[index];
        let frame = {
            let mut state = state.lock().expect("client lock");
            *state.sends.entry(call.request_id.clone()).or_insert(0) += 1;
            call_frame(call, &state)
        };
        lock(journal).record(format!("{} resends {}", spec.name, call.request_id));
        lock(journal).cover("resent_after_resume");
        let _ = sink.send(text(frame)).await;
    }
}

/// The `call_tool` frame of `call`; a later workflow step carries the `continuation_id` its
/// earlier step returned.
fn call_frame(call: &CallSpec, state: &ClientState) -> Value {
    let mut arguments = call.arguments.clone();
    if let Some(id) = call
        .after
        .as_ref()
        .and_then(|(before, _)| state.continuations.get(before))
    {
        arguments["continuation_id"] = json!(id);
    }
    json!({"op": "call_tool", "request_id": call.request_id, "name": call.tool, "arguments": arguments})
}

/// Send the later workflow step `index` (its earlier step was answered).
async fn send_step(
    spec: &ClientSpec,
    state: &ClientRef,
    journal: &JournalRef,
    sink: &mut Sink,
    index: usize,
    resumed_connection: bool,
) {
    let call = &spec.calls[index];
    let (frame, again) = {
        let mut state = state.lock().expect("client lock");
        let again = !state.sent.insert(call.request_id.clone());
        *state.sends.entry(call.request_id.clone()).or_insert(0) += 1;
        (call_frame(call, &state), again)
    };
    if again {
        let mut journal = lock(journal);
        journal.record(format!(
            "{} sends {} again after INTERRUPTED",
            spec.name, call.request_id
        ));
        journal.cover("resent_after_interrupted");
    } else {
        let mut journal = lock(journal);
        journal.record(format!(
            "{} sends step {} {}",
            spec.name, call.request_id, call.tool
        ));
        if resumed_connection {
            journal.cover("workflow_step_after_resume");
        }
    }
    let _ = sink.send(text(frame)).await;
}

async fn perform(
    spec: &ClientSpec,
    state: &ClientRef,
    journal: &JournalRef,
    sink: &mut Sink,
    action: Action,
) {
    match action {
        Action::Send(index) => {
            let call = &spec.calls[index];
            let frame = {
                let mut state = state.lock().expect("client lock");
                state.sent.insert(call.request_id.clone());
                *state.sends.entry(call.request_id.clone()).or_insert(0) += 1;
                call_frame(call, &state)
            };
            lock(journal).record(format!(
                "{} sends {} {}",
                spec.name, call.request_id, call.tool
            ));
            let _ = sink.send(text(frame)).await;
        }
        Action::Cancel(request_id) => {
            lock(journal).record(format!("{} cancels {request_id}", spec.name));
            let _ = sink
                .send(text(json!({"op": "cancel", "request_id": request_id})))
                .await;
        }
        Action::Duplicate(index) => {
            let call = &spec.calls[index];
            let frame = {
                let mut state = state.lock().expect("client lock");
                *state.sends.entry(call.request_id.clone()).or_insert(0) += 1;
                call_frame(call, &state)
            };
            lock(journal).record(format!("{} repeats {}", spec.name, call.request_id));
            let _ = sink.send(text(frame)).await;
        }
    }
}

/// Check and record one frame; returns a seq to ack, if it is time to.
fn on_frame(
    spec: &ClientSpec,
    state: &ClientRef,
    journal: &JournalRef,
    received: &Received,
) -> Option<u64> {
    let mut state = state.lock().expect("client lock");
    let mut journal = lock(journal);
    let frame = &received.frame;
    if let ServerFrame::Gap { to_seq, .. } = frame {
        journal.record(format!("{} gap to {to_seq}", spec.name));
        journal.cover("gap_announced");
        state.last_seq = state.last_seq.max(*to_seq);
        return None;
    }
    let Some(seq) = received.seq else {
        journal.violate(
            Invariant::ExactlyOnce,
            format!("{} got a frame without seq: {frame:?}", spec.name),
        );
        return None;
    };
    if seq != state.last_seq + 1 {
        journal.violate(
            state.once_invariant(),
            format!(
                "{} expected seq {} but got {seq} ({frame:?})",
                spec.name,
                state.last_seq + 1
            ),
        );
    }
    state.last_seq = state.last_seq.max(seq);
    match frame {
        ServerFrame::CallToolAck { request_id, .. } => {
            state.acked.insert(request_id.clone());
        }
        ServerFrame::CallToolRes {
            request_id,
            ok,
            text,
            error,
            repeated,
            ..
        } => {
            state.result_seqs.insert(request_id.clone(), seq);
            let code = error.as_ref().map(|e| e.code.as_str());
            if code == Some(INTERRUPTED) && !*ok {
                on_interrupted(spec, request_id, &mut state, &mut journal);
                return ack_due(spec, &mut state);
            }
            let sends = state.sends.get(request_id).copied().unwrap_or(0);
            let invariant = state.once_invariant();
            let count = state.results.entry(request_id.clone()).or_insert(0);
            *count += 1;
            // One result per send at most: a repeat of a finished id gets the stored result
            // again (marked `repeated`), never a second run.
            if *count > sends.max(1) || (*count > 1 && !*repeated) {
                journal.violate(
                    invariant,
                    format!(
                        "{} received the result of {request_id} {} times for {sends} sends",
                        spec.name, *count
                    ),
                );
            }
            let first_result = *count == 1;
            let refused_conversation = error
                .as_ref()
                .and_then(|e| e.details.as_ref())
                .is_some_and(|details| details["field"] == "continuation_id");
            if refused_conversation {
                journal.cover("continuation_refused");
                let index = spec.calls.iter().position(|c| c.request_id == *request_id);
                if let Some(call) = index.map(|i| &spec.calls[i]) {
                    conversation_refused(spec, call, &state, &mut journal);
                }
            }
            if let Some(message) = error.as_ref().map(|e| e.message.as_str()) {
                cover_refusal(message, &mut journal);
            }
            let index = spec.calls.iter().position(|c| c.request_id == *request_id);
            let must_answer = index.is_some_and(|i| spec.calls[i].must_answer);
            if !*ok && must_answer && first_result {
                journal.violate(
                    Invariant::FailoverAnswers,
                    format!(
                        "{}'s call {request_id} failed though a provider it may use was healthy: {:?}",
                        spec.name,
                        error.as_ref().map(|e| &e.message)
                    ),
                );
            }
            if *ok {
                state.ok_results += 1;
                if let Some(call) = index.map(|i| &spec.calls[i]) {
                    check_answer(spec, call, text, &mut state, &mut journal);
                }
            }
            if first_result {
                schedule_next_steps(spec, request_id, *ok, &mut state, &mut journal);
            }
        }
        ServerFrame::Cancelled { .. } => journal.cover("cancel_won_the_race"),
        ServerFrame::Error { error, .. } if error.message.contains("no running call") => {
            journal.cover("cancel_lost_the_race");
        }
        _ => {}
    }
    ack_due(spec, &mut state)
}

/// Count one more frame; the seq to ack, if it is time to.
fn ack_due(spec: &ClientSpec, state: &mut ClientState) -> Option<u64> {
    state.frames_since_ack += 1;
    if spec.ack_every_frames > 0 && state.frames_since_ack >= spec.ack_every_frames {
        state.frames_since_ack = 0;
        return Some(state.last_seq);
    }
    None
}

/// An `INTERRUPTED` result: the daemon that accepted the call died, and this is the call's
/// one terminal frame. The first time, the client sends it again under the same request id
/// (it runs anew) and waits for that run's result; a second one is the call's end.
fn on_interrupted(
    spec: &ClientSpec,
    request_id: &str,
    state: &mut ClientState,
    journal: &mut crate::journal::Journal,
) {
    journal.record(format!("{} got INTERRUPTED for {request_id}", spec.name));
    journal.cover("interrupted_received");
    if state.results.contains_key(request_id) && journal.not_kept.contains(request_id) {
        // Its result went out before the failing disk kept it (the daemon said so): the
        // crash took the result back, and the daemon ends the call again. Excused.
        journal.record(format!(
            "{} had {request_id}'s result, not kept: this INTERRUPTED is its second end",
            spec.name
        ));
        journal.cover("unkept_result_interrupted");
        return;
    }
    if state.results.contains_key(request_id) {
        journal.violate(
            Invariant::ResultsSurviveRestart,
            format!(
                "{} got INTERRUPTED for {request_id}, which already had its result",
                spec.name
            ),
        );
        return;
    }
    let times = state.interrupted.entry(request_id.to_string()).or_insert(0);
    *times += 1;
    if *times > 1 {
        // Interrupted twice (a second crash hit the run it sent again): that is its end.
        state.results.insert(request_id.to_string(), 1);
        schedule_next_steps(spec, request_id, false, state, journal);
        return;
    }
    if let Some(index) = spec.calls.iter().position(|c| c.request_id == request_id) {
        state.acked.remove(request_id);
        state.ready.push((now_ms(), index));
        state.ready.sort_unstable();
    }
}

/// The continuation `call` carried, and when its client got it: the result of the step
/// before it.
fn continuation_of<'a>(call: &CallSpec, state: &'a ClientState) -> Option<(&'a str, u64)> {
    let (before, _) = call.after.as_ref()?;
    let id = state.continuations.get(before)?;
    let at_ms = state.continuation_at.get(before).copied().unwrap_or(0);
    Some((id.as_str(), at_ms))
}

/// After the first result of `request_id`: its later workflow steps become due (after the
/// agent's pause), or, if it failed, will never be sent (nor anything after them).
fn schedule_next_steps(
    spec: &ClientSpec,
    request_id: &str,
    ok: bool,
    state: &mut ClientState,
    journal: &mut crate::journal::Journal,
) {
    let mut failed: Vec<String> = Vec::new();
    if !ok {
        failed.push(request_id.to_string());
    }
    for (index, call) in spec.calls.iter().enumerate() {
        let Some((before, delay_ms)) = &call.after else {
            continue;
        };
        if before != request_id || state.sent.contains(&call.request_id) {
            continue;
        }
        if ok && state.continuations.contains_key(request_id) {
            state.ready.push((now_ms() + delay_ms, index));
            state.ready.sort_unstable();
        } else {
            failed.push(request_id.to_string());
        }
    }
    // Skip the chain after a failed step, transitively.
    while let Some(failed_id) = failed.pop() {
        for call in &spec.calls {
            let follows = call
                .after
                .as_ref()
                .is_some_and(|(before, _)| *before == failed_id);
            if follows && state.skipped.insert(call.request_id.clone()) {
                journal.record(format!("{} skips {}", spec.name, call.request_id));
                failed.push(call.request_id.clone());
            }
        }
    }
}
