//! The router: one decoded client frame in, its handling out. It decodes, dispatches, starts
//! and cancels calls, and answers everything else from the daemon's state.
//!
//! Why one place: a call from a WebSocket, from the in-process MCP client (`mcp::local`) and
//! from the stdio bridge (through a WebSocket) all start here, so every door goes through the
//! same session, admission, deadline and outbox. The router never awaits: a call runs in its
//! own task (`call`), so one slow call never blocks the next frame.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::call::{self, Accepted};
use crate::config::key;
use crate::error::{CallError, ErrorCode};
use crate::protocol::{ClientFrame, DecodeError, ServerFrame, decode_with};
use crate::session::{Begin, Inbound, Session, StopReason};
use crate::state::Shared;
use crate::tools::{DynTool, Plan, PlanEnv, ToolRegistry};

/// Handle one text frame: decode, then act. Never awaits.
pub fn dispatch(shared: &Arc<Shared>, session: &Arc<Session>, text: &str, verdict: Inbound) {
    let now = shared.rt.now();
    let decoded = decode_with(text, &shared.decode_limits);
    // Over the rate: the frame is not handled, whatever it holds.
    if let Inbound::Refuse(wait) = verdict {
        session.push(refusal(shared, &decoded, wait), now);
        return;
    }
    match decoded {
        Ok(frame) => handle(shared, session, frame),
        Err(err) => {
            session.push(decode_failure(err), now);
        }
    }
}

/// The answer to a frame refused by the session's rate: it names the frame's request when
/// one could be read, so a client waiting on that id is answered (a `call_tool` gets its
/// terminal frame).
fn refusal(
    shared: &Shared,
    decoded: &Result<ClientFrame, DecodeError>,
    wait: Duration,
) -> ServerFrame {
    let retry_after_secs = wait.as_millis().div_ceil(1000).max(1) as u64;
    let error = CallError::new(
        ErrorCode::OverCapacity,
        format!(
            "message rate over {} ({}/s, burst {}): frame not handled; retry in {retry_after_secs} s",
            key::EXAI_WS_SESSION_RATE,
            shared.config.sessions.rate_per_sec,
            shared.config.sessions.burst
        ),
    )
    .with_retry_after_secs(retry_after_secs);
    let (request_id, is_call) = match decoded {
        Ok(ClientFrame::CallTool { request_id, .. }) => (Some(request_id.clone()), true),
        Ok(ClientFrame::Cancel { request_id }) => (Some(request_id.clone()), false),
        Ok(_) => (None, false),
        Err(err) => (
            err.request_id.clone(),
            err.op.as_deref() == Some("call_tool"),
        ),
    };
    match (request_id, is_call) {
        (Some(request_id), true) => ServerFrame::call_failed(request_id, error),
        (request_id, _) => ServerFrame::Error { request_id, error },
    }
}

/// The answer to a frame that did not decode. A broken `call_tool` that named its request
/// gets a terminal frame, so a client waiting on that id is answered.
fn decode_failure(err: DecodeError) -> ServerFrame {
    let error = CallError::new(err.code, err.message);
    match (err.op.as_deref(), err.request_id) {
        (Some("call_tool"), Some(request_id)) => ServerFrame::call_failed(request_id, error),
        (_, request_id) => ServerFrame::Error { request_id, error },
    }
}

/// Act on one decoded frame.
fn handle(shared: &Arc<Shared>, session: &Arc<Session>, frame: ClientFrame) {
    let now = shared.rt.now();
    let reply = match frame {
        ClientFrame::CallTool {
            request_id,
            name,
            arguments,
        } => return start_call(shared, session, request_id, &name, arguments),
        ClientFrame::Cancel { request_id } => return cancel_call(shared, session, request_id),
        ClientFrame::Ack { seq } => return session.ack(seq),
        ClientFrame::Hello(_) => ServerFrame::Error {
            request_id: None,
            error: CallError::new(
                ErrorCode::InvalidRequest,
                "hello was already received on this connection",
            ),
        },
        ClientFrame::ListTools { request_id } => ServerFrame::ListToolsRes {
            request_id,
            tools: shared.tools.infos(),
        },
        ClientFrame::Ping { request_id } => ServerFrame::Pong { request_id },
        ClientFrame::Health { request_id } => {
            let health = crate::health::snapshot(shared);
            ServerFrame::HealthRes {
                request_id,
                ok: health.ok,
                health: serde_json::to_value(&health).expect("health serializes"),
            }
        }
    };
    session.push(reply, now);
}

/// Cancel one running call: `cancelled` goes out first, then the call's own terminal frame
/// (`CANCELLED`); an unknown or finished call gets an error frame naming it. Shared with the
/// in-process client (`mcp::local`), so a cancel from MCP is the same cancel.
pub fn cancel_call(shared: &Shared, session: &Session, request_id: String) {
    let now = shared.rt.now();
    let cancelled = ServerFrame::Cancelled {
        request_id: request_id.clone(),
    };
    if !session.stop_call(&request_id, StopReason::ClientCancel, Some(cancelled), now) {
        let error = CallError::new(
            ErrorCode::InvalidRequest,
            format!(
                "no running call with request_id \"{request_id}\" (it may have finished already)"
            ),
        );
        session.push(
            ServerFrame::Error {
                request_id: Some(request_id),
                error,
            },
            now,
        );
    }
}

/// Validate, register, ack and spawn one call: every call of the daemon starts here, whether
/// it came over a WebSocket or from the in-process client (`mcp::local`), so both go through
/// the same session, admission, deadline and outbox.
pub fn start_call(
    shared: &Arc<Shared>,
    session: &Arc<Session>,
    request_id: String,
    name: &str,
    arguments: Map<String, Value>,
) {
    let now = shared.rt.now();
    // Digested before planning takes the arguments: a kept call's record names them so.
    let arguments_digest = session
        .is_kept()
        .then(|| crate::kept::arguments_digest(&arguments));
    let plan = shared
        .lifecycle
        .is_ready()
        .then_some(())
        .ok_or_else(shutting_down)
        .and_then(|()| plan_call(shared, name, arguments));
    let (tool, plan) = match plan {
        Ok(planned) => planned,
        Err(error) => {
            session.push(ServerFrame::call_failed(request_id, error), now);
            return;
        }
    };
    // A new call reserves its own state on the memory budget before it is accepted, and is
    // refused when that does not fit: nothing already accepted is dropped to make room, and a
    // flood is turned away at the door instead of swelling the daemon. A join or a repeat
    // costs nothing new, and is answered.
    let charge = if session.knows(&request_id, now) {
        None
    } else {
        match shared.memory.reserve(call::STATE_BYTES) {
            Some(charge) => Some(charge),
            None => {
                session.push(
                    ServerFrame::call_failed(request_id, memory_full(shared)),
                    now,
                );
                return;
            }
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
        // The same request id again while it runs is the same call: join it.
        Begin::Running => {
            session.push(ack(true), now);
            return;
        }
        // It already ended: the stored result again, and no second provider call.
        Begin::Finished(terminal) => {
            session.push(terminal, now);
            return;
        }
    };
    session.push_accepted(ack(false), tool.name(), arguments_digest, timeout_ms, now);
    call::spawn(Accepted {
        shared: shared.clone(),
        session: session.clone(),
        request_id,
        tool: tool.name(),
        kind: tool.kind(),
        plan,
        accepted_at: now,
        stop,
        charge,
    });
}

/// The refusal of a new call while the memory budget is full.
fn memory_full(shared: &Shared) -> CallError {
    let stats = shared.memory.stats();
    CallError::new(
        ErrorCode::OverCapacity,
        format!(
            "the daemon's memory budget is full ({} = {} bytes, {} in use by calls in flight, \
             outboxes, results, conversations and records waiting for the state file): no new \
             call until calls finish and clients read or ack what is kept; retry soon",
            key::EXAI_MEMORY_MAX_BYTES,
            stats.max_bytes,
            stats.used_bytes
        ),
    )
    .with_retry_after_secs(1)
}

/// The refusal of a call while the daemon drains.
fn shutting_down() -> CallError {
    CallError::new(
        ErrorCode::ServiceUnavailable,
        "exaid is shutting down and accepts no new calls; retry once it is back",
    )
    .with_retry_after_secs(5)
}

/// Find the tool and plan the call (arguments validated once, model resolved), or say why not.
fn plan_call(
    shared: &Shared,
    name: &str,
    arguments: Map<String, Value>,
) -> Result<(Arc<dyn DynTool>, Plan), CallError> {
    let Some(tool) = shared.tools.get(name).cloned() else {
        return Err(unknown_tool(shared, name, &arguments));
    };
    let plan = tool.prepare(arguments, &PlanEnv::new(shared))?;
    Ok((tool, plan))
}

/// Why no enabled tool answers to `name`: disabled by the profile, or unknown. An over-long
/// argument string is reported first, as for any call.
fn unknown_tool(shared: &Shared, name: &str, arguments: &Map<String, Value>) -> CallError {
    let chars_max = shared.config.limits.arg_string_chars_max as usize;
    if let Err(error) = crate::tools::arguments::check_strings(arguments, chars_max) {
        return error;
    }
    let canonical = ToolRegistry::canonical(name);
    let why = if crate::tools::profile::BUILTIN_TOOL_NAMES.contains(&canonical.as_str()) {
        format!(
            "tool \"{name}\" is disabled here (TOOL_PROFILE={}, ENABLED_TOOLS, DISABLED_TOOLS)",
            shared.config.tools.profile.name()
        )
    } else {
        format!("no tool named \"{name}\"")
    };
    CallError::new(
        ErrorCode::ToolNotFound,
        format!("{why}; available: {}", shared.tools.names().join(", ")),
    )
}
