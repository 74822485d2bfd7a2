//! One tool call, from acceptance to its one terminal frame.
//!
//! Each accepted call runs in its own task (the connection reader never awaits a tool, so a
//! slow call never blocks the next frame). The call owns its one deadline, set from the
//! acceptance instant and the tool's kind ([`timeout_ms`], which the `call_tool_ack` quotes
//! too). The task races four things, in this order: a stop (client cancel, session expiry),
//! the work (admission for the plan's provider, then the tool), the deadline, and the
//! progress tick. Whichever wins, the work future is dropped right there (aborting any
//! provider request) and with it every permit the call held; then exactly one terminal frame
//! goes to the session outbox.
//!
//! The path goes one way: this module admits the call and hands the tool a `ToolCtx` with the
//! provider handle it was admitted for; the tool asks that handle for completions, and the
//! retry loop behind it (`retry::handle`) never calls back here. Streamed chunks reach the
//! session outbox through a sink factory made here.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::oneshot;

use crate::config::Config;
use crate::error::{CallError, ErrorCode};
use crate::memory::Charge;
use crate::observe::PauseReason;
use crate::phase::{Phase, PhaseCell};
use crate::protocol::{ProgressPhase, ServerFrame};
use crate::provider::Chunk;
use crate::retry::handle::{Caller, ChunkSinks, HandleCount, ProviderHandle};
use crate::rt::{Instant, Rt};
use crate::session::{Session, StopReason};
use crate::state::Shared;
use crate::tools::context::ToolCtx;
use crate::tools::tool::{Plan, ToolKind};

/// How long a call of a tool of `kind` may take, from acceptance, in milliseconds
/// (`SIMPLE_TOOL_TIMEOUT_SECS`, `WORKFLOW_TOOL_TIMEOUT_SECS`).
pub fn timeout_ms(kind: ToolKind, config: &Config) -> u64 {
    match kind {
        ToolKind::Simple => config.tools.simple_timeout_ms,
        ToolKind::Workflow => config.tools.workflow_timeout_ms,
    }
}

/// Everything needed to run one accepted call.
pub struct Accepted {
    /// The daemon.
    pub shared: Arc<Shared>,
    /// The call's session.
    pub session: Arc<Session>,
    /// The client's id for the call.
    pub request_id: String,
    /// The tool's canonical name.
    pub tool: &'static str,
    /// The tool's kind: which deadline the call gets.
    pub kind: ToolKind,
    /// The validated, planned call.
    pub plan: Plan,
    /// When it was accepted: its deadline counts from here.
    pub accepted_at: Instant,
    /// Fires when the call must stop.
    pub stop: oneshot::Receiver<StopReason>,
    /// Its own state's reservation on the memory budget, given back when the call's task
    /// ends (`None` for a call that joined a running one: it holds nothing new).
    pub charge: Option<Charge>,
}

/// What one accepted call holds in memory until its terminal frame, reserved on the memory
/// budget at acceptance (see [`Charge`]): its task and futures, its plan and messages, the
/// provider request and response and their HTTP state. Measured with `exaid bench` at 10,000
/// offered calls/s: resident memory grew by about this much per call in flight (BENCHMARKS.md).
pub const STATE_BYTES: usize = 48 * 1024;

impl Accepted {
    /// The call's one deadline.
    pub fn deadline(&self) -> Instant {
        self.accepted_at + Duration::from_millis(timeout_ms(self.kind, &self.shared.config))
    }
}

/// Tell the observer the call was accepted, then run it in its own task, in a tracing span
/// naming its session, request, tool, provider and model.
pub fn spawn(call: Accepted) {
    let shared = call.shared.clone();
    let deadline = call.deadline();
    shared.observer.call_accepted(
        &call.session.id,
        &call.request_id,
        call.tool,
        call.accepted_at,
        deadline,
    );
    let provider = call.plan.provider.as_ref();
    let span = tracing::info_span!(
        "call",
        session = %call.session.id,
        request_id = %call.request_id,
        tool = call.tool,
        provider = provider.map(|p| p.entry.provider.name()).unwrap_or("-"),
        model = provider.map(|p| p.model.as_str()).unwrap_or("-"),
    );
    shared
        .rt
        .spawn("call", tracing::Instrument::instrument(run(call), span));
}

/// Run an accepted call to its terminal frame.
pub async fn run(call: Accepted) {
    let deadline = call.deadline();
    let Accepted {
        shared,
        session,
        request_id,
        tool,
        plan,
        accepted_at,
        mut stop,
        charge,
        ..
    } = call;
    let rt = shared.rt.clone();
    let _live = shared.lifecycle.call_started();
    let phase = Arc::new(PhaseCell::new());
    let progress_every = Duration::from_millis(shared.config.tools.progress_interval_ms);
    let caller = Arc::new(caller(
        &shared,
        &session,
        &request_id,
        &phase,
        (accepted_at, deadline),
    ));
    let queue_give_up_at = deadline.min(accepted_at + shared.admission.queue_timeout);
    let work = work(shared.clone(), caller.clone(), plan, queue_give_up_at);
    let mut work = Box::pin(AssertUnwindSafe(work).catch_unwind());
    let mut deadline_sleep = rt.sleep_until(deadline);
    let mut next_tick_at = accepted_at + progress_every;
    let mut tick = rt.sleep_until(next_tick_at);

    let outcome: Result<String, CallError> = loop {
        tokio::select! {
            biased;
            reason = &mut stop => {
                break Err(stopped(reason.unwrap_or(StopReason::SessionExpired)));
            }
            finished = &mut work => {
                break finished.unwrap_or_else(|panic| {
                    let what = panic_message(panic.as_ref());
                    tracing::error!(request_id = %request_id, tool, panic = %what, "call panicked");
                    Err(CallError::new(ErrorCode::InternalError, format!("the {tool} call failed inside exaid: {what}")))
                });
            }
            () = &mut deadline_sleep => {
                let secs = deadline.saturating_since(accepted_at).as_secs_f64();
                break Err(CallError::new(
                    ErrorCode::Timeout,
                    format!("{tool} did not finish within its deadline of {secs:.3} s ({})", phase.get().describe(rt.now())),
                ));
            }
            () = &mut tick => {
                let now = rt.now();
                session.push(progress_frame(&request_id, &phase.get(), accepted_at, deadline, now), now);
                next_tick_at = next_tick_at + progress_every;
                tick = rt.sleep_until(next_tick_at);
            }
        }
    };
    // Drop the work first: this aborts the provider attempt and returns every permit, even
    // when the deadline or a cancel won the race.
    drop(work);
    assert_eq!(
        caller.handles.live(),
        0,
        "every permit of a call is back before its terminal frame"
    );
    let ending = Ending {
        session,
        request_id,
        tool,
        accepted_at,
    };
    ending.finish(&rt, outcome);
    // The terminal frame is counted by the outbox now: the call's own state goes back.
    drop(charge);
}

/// The call's side of its provider attempts (see [`Caller`]).
fn caller(
    shared: &Arc<Shared>,
    session: &Arc<Session>,
    request_id: &str,
    phase: &Arc<PhaseCell>,
    (accepted_at, deadline): (Instant, Instant),
) -> Caller {
    let chunks = shared.config.tools.streaming.then(|| {
        chunk_sinks(
            session.clone(),
            shared.rt.clone(),
            request_id.to_string(),
            (accepted_at, deadline),
        )
    });
    Caller {
        rt: shared.rt.clone(),
        request_id: request_id.to_string(),
        session_id: session.id.clone(),
        deadline,
        phase: phase.clone(),
        policy: shared.retry,
        observer: shared.observer.clone(),
        jitter: shared.clone(),
        chunks,
        session_limit: session.limit.clone(),
        global_limit: shared.admission.global.clone(),
        queue_timeout: shared.admission.queue_timeout,
        handles: HandleCount::default(),
    }
}

/// The call's work: admission for the plan's provider (none for a plan that names none),
/// then the tool, with the handle it was admitted for. The permits go back the moment the
/// tool's work ends (its context, and the handle in it, drop with it), before the result is
/// framed.
async fn work(
    shared: Arc<Shared>,
    caller: Arc<Caller>,
    plan: Plan,
    queue_give_up_at: Instant,
) -> Result<String, CallError> {
    let Plan { provider, work } = plan;
    let handle = match provider {
        Some(resolved) => {
            let name = resolved.entry.provider.name().to_string();
            let handle = ProviderHandle::admit(&caller, resolved, queue_give_up_at).await?;
            assert_eq!(
                handle.provider_name(),
                name,
                "a call holds the permit of the provider its plan named"
            );
            Some(handle)
        }
        None => None,
    };
    caller.phase.set(Phase::Running {
        activity: "running".to_string(),
    });
    let ctx = ToolCtx::new(shared, caller, handle);
    work(ctx).await
}

/// Streamed text becomes progress frames with `phase: "streaming"` and the chunk.
fn chunk_sinks(
    session: Arc<Session>,
    rt: Rt,
    request_id: String,
    (accepted_at, deadline): (Instant, Instant),
) -> ChunkSinks {
    Arc::new(move |provider: &str, attempt: u32| {
        let session = session.clone();
        let rt = rt.clone();
        let request_id = request_id.clone();
        let message = format!("streaming from provider {provider}");
        Arc::new(move |chunk: Chunk<'_>| {
            let now = rt.now();
            let (phase, chunk) = match chunk {
                Chunk::Text(text) => (ProgressPhase::Streaming, text),
                Chunk::Reasoning(thought) => (ProgressPhase::Reasoning, thought),
            };
            let frame = ServerFrame::Progress {
                request_id: request_id.clone(),
                message: message.clone(),
                phase,
                elapsed_secs: round_ms(now.saturating_since(accepted_at)),
                remaining_secs: round_ms(deadline.saturating_since(now)),
                waiting_for: None,
                chunk: Some(chunk.to_string()),
                attempt: Some(attempt),
            };
            session.push(frame, now);
        })
    })
}

/// The end of a call: consumed by its one terminal frame, so a call cannot end twice.
struct Ending {
    /// The call's session, whose outbox gets the frame.
    session: Arc<Session>,
    /// The call's request id.
    request_id: String,
    /// The tool, for the log.
    tool: &'static str,
    /// When the call was accepted, for the log.
    accepted_at: Instant,
}

impl Ending {
    /// Unregister the call and push its one terminal frame.
    fn finish(self, rt: &Rt, outcome: Result<String, CallError>) {
        let now = rt.now();
        let terminal = match outcome {
            Ok(text) => ServerFrame::call_succeeded(self.request_id.clone(), text),
            Err(error) => ServerFrame::call_failed(self.request_id.clone(), error),
        };
        assert!(terminal.is_terminal(), "a call ends with a terminal frame");
        tracing::debug!(request_id = %self.request_id, tool = self.tool, elapsed_ms = now.saturating_since(self.accepted_at).as_millis() as u64, "call ended");
        self.session.finish_call(&self.request_id, terminal, now);
    }
}

fn stopped(reason: StopReason) -> CallError {
    match reason {
        StopReason::ClientCancel => CallError::new(ErrorCode::Cancelled, "cancelled by the client"),
        StopReason::SessionExpired => CallError::new(
            ErrorCode::Cancelled,
            "cancelled: the session expired with no client attached",
        ),
        // Retryable, and never cached: the same request id sent again (to this daemon once
        // it is back) runs the call.
        StopReason::Shutdown => CallError::new(
            ErrorCode::Interrupted,
            "the daemon shut down before the call finished; send the same request_id again once it is back",
        )
        .with_retry_after_secs(1),
        StopReason::ClientGone => CallError::new(
            ErrorCode::Cancelled,
            "cancelled: the client closed its session",
        ),
    }
}

fn progress_frame(
    request_id: &str,
    phase: &Phase,
    accepted_at: Instant,
    deadline: Instant,
    now: Instant,
) -> ServerFrame {
    let (name, waiting_for) = match phase {
        Phase::Accepted => (ProgressPhase::Accepted, None),
        Phase::Queued { limit } => (ProgressPhase::Queued, Some(limit.name().to_string())),
        Phase::Running { .. } => (ProgressPhase::Running, None),
        Phase::Paused {
            provider, reason, ..
        } => (
            if *reason == PauseReason::Backoff {
                ProgressPhase::Backoff
            } else {
                ProgressPhase::RateLimited
            },
            Some(format!("provider:{provider}")),
        ),
    };
    ServerFrame::Progress {
        request_id: request_id.to_string(),
        message: phase.describe(now),
        phase: name,
        elapsed_secs: round_ms(now.saturating_since(accepted_at)),
        remaining_secs: round_ms(deadline.saturating_since(now)),
        waiting_for,
        chunk: None,
        attempt: None,
    }
}

fn round_ms(duration: Duration) -> f64 {
    duration.as_millis() as f64 / 1000.0
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic".to_string()
    }
}
