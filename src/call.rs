//! One tool call, from acceptance to its one terminal frame.
//!
//! Each accepted call runs in its own task (the connection reader never awaits a tool, so a
//! slow call never blocks the next frame). The task races four things, in this order:
//! a stop (client cancel, session expiry), the work (admission, then the tool), the call's
//! one deadline, and the progress tick. Whichever wins, the work future is dropped right there
//! (aborting any provider request) and with it every permit the call held; then exactly one
//! terminal frame goes to the session outbox.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::oneshot;

use crate::admission;
use crate::error::{CallError, ErrorCode};
use crate::observe::PauseReason;
use crate::protocol::{ProgressPhase, ServerFrame};
use crate::provider::{
    ChatRequest, ChatResponse, ChunkSink, ProviderEntry, ProviderError, RateLimitKind, Resolved,
};
use crate::rt::{Instant, Rt};
use crate::session::{Session, StopReason};
use crate::state::Shared;
use crate::tools::Prepared;

/// What a call is doing now, for progress frames.
#[derive(Clone)]
pub enum Phase {
    /// Accepted, not yet asking for permits.
    Accepted,
    /// Waiting for a permit of the named limit.
    Queued {
        /// The limit, to quote its live numbers.
        limit: Arc<admission::Limit>,
    },
    /// Running: the sentence says on what.
    Running {
        /// E.g. "waiting on provider kimi (model kimi-k2), attempt 1".
        activity: String,
    },
    /// Pausing between provider attempts.
    Paused {
        /// The provider.
        provider: String,
        /// When the pause ends.
        until: Instant,
        /// Why: the provider's retry-after, its cooldown, or backoff.
        reason: PauseReason,
    },
}

/// Shared between the call's work and its progress ticker.
pub struct PhaseCell {
    /// The current phase.
    phase: Mutex<Phase>,
}

impl PhaseCell {
    fn new() -> PhaseCell {
        PhaseCell {
            phase: Mutex::new(Phase::Accepted),
        }
    }

    /// Set the phase.
    pub fn set(&self, phase: Phase) {
        *self.phase.lock().expect("phase lock") = phase;
    }

    /// The phase now.
    pub fn get(&self) -> Phase {
        self.phase.lock().expect("phase lock").clone()
    }
}

/// What a running tool can use.
pub struct CallCtx {
    /// The daemon.
    pub shared: Arc<Shared>,
    /// The call's phase, for progress frames.
    pub phase: Arc<PhaseCell>,
    /// The call's one deadline.
    pub deadline: Instant,
    /// The call's request id, for logs.
    pub request_id: String,
    /// The call's session: streamed chunks go to its outbox.
    pub session: Arc<Session>,
    /// When the call was accepted.
    pub accepted_at: Instant,
}

impl CallCtx {
    /// The runtime.
    pub fn rt(&self) -> &Rt {
        &self.shared.rt
    }

    /// One chat completion on `entry`'s provider under the retry policy and the call's
    /// deadline (the caller's select enforces the deadline; dropping this future aborts the
    /// attempt in flight). See `retry` for the rules.
    pub async fn complete(
        &self,
        entry: &ProviderEntry,
        request: ChatRequest,
    ) -> Result<ChatResponse, CallError> {
        let shared = &self.shared;
        let rt = &shared.rt;
        let policy = shared.retry;
        let name = entry.provider.name().to_string();
        let mut attempt = 0u32;
        loop {
            // Another call's 429 may have put the provider in cooldown: honor it too.
            while let Some(until) = entry.cooldown.active_until(rt.now()) {
                let now = rt.now();
                if until > self.deadline {
                    return Err(self.give_up(&name, until.saturating_since(now), None));
                }
                self.pause(&name, until, PauseReason::Cooldown);
                let wait = until.saturating_since(now);
                shared.observer.provider_pause(
                    &name,
                    &self.request_id,
                    wait,
                    PauseReason::Cooldown,
                    now,
                );
                rt.sleep_until(until).await;
            }
            attempt += 1;
            self.phase.set(Phase::Running {
                activity: format!(
                    "waiting on provider {name} (model {}), attempt {attempt} of {}",
                    request.model, policy.attempts_max
                ),
            });
            shared
                .observer
                .provider_attempt(&name, &self.request_id, attempt, rt.now());
            let chunks = shared
                .config
                .tools
                .streaming
                .then(|| self.chunk_sink(&name, attempt));
            let attempt_started = rt.now();
            let result = entry.provider.complete(request.clone(), chunks).await;
            let outcome = match &result {
                Ok(_) => "ok",
                Err(ProviderError::RateLimited {
                    kind: RateLimitKind::Quota,
                    ..
                }) => "quota",
                Err(ProviderError::RateLimited { .. }) => "rate_limited",
                Err(_) => "error",
            };
            shared.observer.provider_attempt_ended(
                &self.session.id,
                &name,
                &self.request_id,
                rt.now().saturating_since(attempt_started),
                outcome,
            );
            let error = match result {
                Ok(response) => return Ok(response),
                Err(error) => error,
            };
            let now = rt.now();
            // Every 429 that names a time cools the provider down for every call, even when
            // this call will not retry: otherwise its freed permit sends the next queued call
            // straight into the wait the provider asked for (found by the simulator:
            // rate-limit-storm seed 4).
            if let ProviderError::RateLimited {
                retry_after: Some(after),
                ..
            } = &error
            {
                entry.cooldown.extend(now + *after);
            }
            if !error.is_retryable() || attempt >= policy.attempts_max {
                tracing::info!(request_id = %self.request_id, provider = %name, attempt, error = %error, "provider attempt failed; not retrying");
                return Err(error.into_call_error(&name));
            }
            let (pause, reason) = match &error {
                ProviderError::RateLimited {
                    retry_after: Some(after),
                    ..
                } => (*after, PauseReason::RetryAfter),
                _ => (
                    shared.with_rng(|rng| policy.backoff(attempt, rng)),
                    PauseReason::Backoff,
                ),
            };
            if now + pause > self.deadline {
                return Err(self.give_up(&name, pause, Some(error)));
            }
            tracing::debug!(request_id = %self.request_id, provider = %name, attempt, pause_ms = pause.as_millis() as u64, error = %error, "pausing before the next attempt");
            self.pause(&name, now + pause, reason);
            shared
                .observer
                .provider_pause(&name, &self.request_id, pause, reason, now);
            rt.sleep(pause).await;
        }
    }

    /// One consultation of `resolved`'s model by a call that holds no permits of its own
    /// (`consensus`, which asks several models): take the session, global and provider
    /// permits in that fixed order, waiting at most the queue timeout (and never past the
    /// call's deadline), run [`CallCtx::complete`], and give the permits back before the
    /// answer returns. Each consultation is admitted on its own, so asking five models never
    /// holds five provider permits at once.
    pub async fn consult(
        &self,
        resolved: &Resolved,
        request: ChatRequest,
    ) -> Result<ChatResponse, CallError> {
        let rt = &self.shared.rt;
        let limits = [
            self.session.limit.clone(),
            self.shared.admission.global.clone(),
            resolved.entry.limit.clone(),
        ];
        let give_up_at = self
            .deadline
            .min(rt.now() + self.shared.admission.queue_timeout);
        let phase = self.phase.clone();
        let on_wait = move |limit: &Arc<admission::Limit>| {
            phase.set(Phase::Queued {
                limit: limit.clone(),
            })
        };
        let observer = self.shared.observer.clone();
        let on_waited = move |limit: &admission::Limit, waited: Duration| {
            observer.admission_waited(limit.name(), waited)
        };
        let hooks = admission::WaitHooks {
            on_wait: &on_wait,
            on_waited: &on_waited,
        };
        let permits = admission::admit(rt, &limits, give_up_at, &hooks).await?;
        let result = self.complete(&resolved.entry, request).await;
        drop(permits);
        result
    }

    /// Streamed text becomes progress frames with `phase: "streaming"` and the chunk.
    fn chunk_sink(&self, provider: &str, attempt: u32) -> ChunkSink {
        let session = self.session.clone();
        let rt = self.shared.rt.clone();
        let request_id = self.request_id.clone();
        let (accepted_at, deadline) = (self.accepted_at, self.deadline);
        let message = format!("streaming from provider {provider}");
        Arc::new(move |chunk: &str| {
            let now = rt.now();
            let frame = ServerFrame::Progress {
                request_id: request_id.clone(),
                message: message.clone(),
                phase: ProgressPhase::Streaming,
                elapsed_secs: round_ms(now.saturating_since(accepted_at)),
                remaining_secs: round_ms(deadline.saturating_since(now)),
                waiting_for: None,
                chunk: Some(chunk.to_string()),
                attempt: Some(attempt),
            };
            session.push(frame, now);
        })
    }

    fn pause(&self, provider: &str, until: Instant, reason: PauseReason) {
        self.phase.set(Phase::Paused {
            provider: provider.to_string(),
            until,
            reason,
        });
    }

    /// End the call now: waiting `wait` would pass the deadline.
    fn give_up(&self, provider: &str, wait: Duration, error: Option<ProviderError>) -> CallError {
        let now = self.shared.rt.now();
        self.shared
            .observer
            .gave_up_before_deadline(provider, &self.request_id, wait, now);
        let remaining = self.deadline.saturating_since(now);
        let retry_after_secs = (wait.as_millis() as u64).div_ceil(1000).max(1);
        let rate_limited = matches!(error, None | Some(ProviderError::RateLimited { .. }));
        let cause = match &error {
            Some(error) => error.to_string(),
            None => "provider is cooling down after a rate limit".to_string(),
        };
        CallError::new(
            if rate_limited { ErrorCode::RateLimited } else { ErrorCode::ProviderError },
            format!(
                "provider {provider}: {cause}; waiting {:.1} s would pass the call's deadline ({:.1} s left), so the call ends now",
                wait.as_secs_f64(),
                remaining.as_secs_f64()
            ),
        )
        .with_retry_after_secs(retry_after_secs)
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
    /// The validated call.
    pub prepared: Prepared,
    /// When it was accepted.
    pub accepted_at: Instant,
    /// Its one deadline.
    pub deadline: Instant,
    /// Fires when the call must stop.
    pub stop: oneshot::Receiver<StopReason>,
}

/// Run an accepted call to its terminal frame.
pub async fn run(call: Accepted) {
    let Accepted {
        shared,
        session,
        request_id,
        tool,
        prepared,
        accepted_at,
        deadline,
        mut stop,
    } = call;
    let rt = shared.rt.clone();
    let _live = shared.lifecycle.call_started();
    let phase = Arc::new(PhaseCell::new());
    let progress_every = Duration::from_millis(shared.config.tools.progress_interval_ms);

    let mut limits = Vec::new();
    if let Some(resolved) = &prepared.provider {
        limits.push(session.limit.clone());
        limits.push(shared.admission.global.clone());
        limits.push(resolved.entry.limit.clone());
    }
    let queue_give_up_at = deadline.min(accepted_at + shared.admission.queue_timeout);
    let ctx = CallCtx {
        shared: shared.clone(),
        phase: phase.clone(),
        deadline,
        request_id: request_id.clone(),
        session: session.clone(),
        accepted_at,
    };
    let work = {
        let rt = rt.clone();
        let phase = phase.clone();
        let shared_for_work = shared.clone();
        async move {
            let on_wait = |limit: &Arc<admission::Limit>| {
                phase.set(Phase::Queued {
                    limit: limit.clone(),
                })
            };
            let observer = shared_for_work.observer.clone();
            let on_waited = move |limit: &admission::Limit, waited: Duration| {
                observer.admission_waited(limit.name(), waited)
            };
            let hooks = admission::WaitHooks {
                on_wait: &on_wait,
                on_waited: &on_waited,
            };
            let permits = admission::admit(&rt, &limits, queue_give_up_at, &hooks).await?;
            phase.set(Phase::Running {
                activity: "running".to_string(),
            });
            let result = (prepared.run)(ctx).await;
            // Permits go back the moment the work is done, before the result is framed.
            drop(permits);
            result
        }
    };
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
                    format!("{tool} did not finish within its deadline of {secs:.3} s ({})", describe(&phase.get(), rt.now())),
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
    let now = rt.now();
    let terminal = match outcome {
        Ok(text) => ServerFrame::call_succeeded(request_id.clone(), text),
        Err(error) => ServerFrame::call_failed(request_id.clone(), error),
    };
    tracing::debug!(request_id = %request_id, tool, elapsed_ms = now.saturating_since(accepted_at).as_millis() as u64, "call ended");
    session.finish_call(&request_id, terminal, now);
}

fn stopped(reason: StopReason) -> CallError {
    match reason {
        StopReason::ClientCancel => CallError::new(ErrorCode::Cancelled, "cancelled by the client"),
        StopReason::SessionExpired => CallError::new(
            ErrorCode::Cancelled,
            "cancelled: the session expired with no client attached",
        ),
        StopReason::Shutdown => CallError::new(
            ErrorCode::ServiceUnavailable,
            "the daemon shut down before the call finished",
        ),
        StopReason::ClientGone => CallError::new(
            ErrorCode::Cancelled,
            "cancelled: the client closed its session",
        ),
    }
}

fn describe(phase: &Phase, now: Instant) -> String {
    match phase {
        Phase::Accepted => "accepted, about to ask for capacity".to_string(),
        Phase::Queued { limit } => {
            let s = limit.snapshot();
            format!(
                "waiting for capacity: limit {} has {}/{} permits in use, {} waiting",
                s.name, s.permits_in_use, s.permits_max, s.waiters
            )
        }
        Phase::Running { activity } => activity.clone(),
        Phase::Paused {
            provider,
            until,
            reason,
        } => {
            let left = until.saturating_since(now).as_secs_f64();
            match reason {
                PauseReason::RetryAfter => format!(
                    "provider {provider} rate-limited the call; pausing {left:.1} s more, as it asked"
                ),
                PauseReason::Cooldown => format!(
                    "provider {provider} is cooling down after a rate limit; {left:.1} s more"
                ),
                PauseReason::Backoff => {
                    format!("provider {provider} failed; backing off {left:.1} s before retrying")
                }
            }
        }
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
        message: describe(phase, now),
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
