//! A provider handle: the only way a tool reaches a provider, bound to the provider whose
//! permit the call holds, with the retry loop that runs its attempts.
//!
//! Why bound: the call is admitted for one provider (session, that provider's, then global
//! permit). If a tool could name any provider when it asked for a completion, nothing would
//! stop it from calling a provider whose permit it does not hold. A [`ProviderHandle`] owns
//! the permits and the resolved model together, so holding the handle is holding the permit,
//! and dropping it gives the permits back.
//!
//! The loop ([`ProviderHandle::complete`]) applies the policy of this module's parent: wait
//! out a provider cooldown, attempt, on a retryable error pause for the provider's
//! retry-after or a jittered backoff, and end the call at once when a pause would pass its
//! deadline. Every step tells the observer, in a fixed order (the simulator hashes the event
//! log, so the order is part of the behaviour).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::admission::{self, Limit, Permits};
use crate::error::{CallError, ErrorCode};
use crate::observe::{Observer, PauseReason};
use crate::phase::{Phase, PhaseCell};
use crate::provider::{
    ChatRequest, ChatResponse, ChunkSink, ProviderError, RateLimitKind, Resolved,
};
use crate::retry::cooldown::Cooldown;
use crate::retry::policy::{Jitter, RetryPolicy};
use crate::rt::{Instant, Rt};

/// Makes the chunk sink of one streaming attempt (provider name, attempt number). Why a
/// factory from the call: streamed text becomes progress frames in the session outbox, which
/// this module does not know.
pub type ChunkSinks = Arc<dyn Fn(&str, u32) -> ChunkSink + Send + Sync>;

/// The call a provider handle works for: who it is, until when, where its progress goes,
/// how its attempts are retried, and where its permits come from. One per call, shared by
/// every handle the call takes.
pub struct Caller {
    /// The runtime: the clock and sleeps.
    pub rt: Rt,
    /// The call's request id, for logs and the observer.
    pub request_id: String,
    /// The call's session id, for the observer.
    pub session_id: String,
    /// The call's one deadline: no pause may pass it.
    pub deadline: Instant,
    /// The call's phase, for progress frames.
    pub phase: Arc<PhaseCell>,
    /// How errors are retried.
    pub policy: RetryPolicy,
    /// Told about attempts, pauses and admission waits.
    pub observer: Arc<dyn Observer>,
    /// Where backoff jitter is drawn (the daemon's seeded generator).
    pub jitter: Arc<dyn Jitter>,
    /// Streaming attempts send their chunks here; `None` when streaming is off.
    pub chunks: Option<ChunkSinks>,
    /// The call's session limit, taken first.
    pub session_limit: Arc<Limit>,
    /// The global limit, taken second.
    pub global_limit: Arc<Limit>,
    /// How long one admission may wait in queues, at most (the deadline bounds it too).
    pub queue_timeout: Duration,
    /// Provider handles of this call alive now; starts at zero (`HandleCount::default()`).
    pub handles: HandleCount,
}

/// How many provider handles a call has alive: at most one at a time (a call never holds two
/// provider permits), and none once its work is dropped (every permit is back before its
/// terminal frame).
#[derive(Debug, Default)]
pub struct HandleCount {
    /// The count.
    live: AtomicU32,
}

impl HandleCount {
    /// Handles alive now (0 or 1).
    pub fn live(&self) -> u32 {
        self.live.load(Ordering::SeqCst)
    }
}

/// One provider, admitted: the permits of the call's session, the global limit and this
/// provider, held until the handle is dropped, and the model they were taken for.
pub struct ProviderHandle {
    /// The call it works for.
    caller: Arc<Caller>,
    /// The provider and model admitted.
    resolved: Resolved,
    /// Session, provider and global permits, in that order; they go back on drop.
    permits: Permits,
}

impl ProviderHandle {
    /// Admit the call for `resolved`'s provider: take the session, provider and global
    /// permits in that fixed order, waiting at most until `give_up_at` (the caller bounds it
    /// by the queue timeout and the deadline). A refusal gives back what was taken.
    pub async fn admit(
        caller: &Arc<Caller>,
        resolved: Resolved,
        give_up_at: Instant,
    ) -> Result<ProviderHandle, CallError> {
        assert_eq!(
            caller.handles.live(),
            0,
            "a call holds at most one provider handle at a time"
        );
        // Session, then provider, then global: a call waiting for a busy provider holds no
        // global permit that another provider's calls need (measured before: 32 calls hung
        // on Kimi made GLM calls of another session wait 9 s for a global permit). One fixed
        // order for every call, so no two calls can wait on each other.
        let limits = [
            caller.session_limit.clone(),
            resolved.entry.limit.clone(),
            caller.global_limit.clone(),
        ];
        let phase = caller.phase.clone();
        let on_wait = move |limit: &Arc<Limit>| {
            phase.set(Phase::Queued {
                limit: limit.clone(),
            })
        };
        let observer = caller.observer.clone();
        let on_waited =
            move |limit: &Limit, waited: Duration| observer.admission_waited(limit.name(), waited);
        let hooks = admission::WaitHooks {
            on_wait: &on_wait,
            on_waited: &on_waited,
        };
        let permits = admission::admit(&caller.rt, &limits, give_up_at, &hooks).await?;
        Ok(ProviderHandle::bind(caller.clone(), resolved, permits))
    }

    /// The handle over permits just taken; checks they are the ones its provider needs.
    fn bind(caller: Arc<Caller>, resolved: Resolved, permits: Permits) -> ProviderHandle {
        let names = permits.limit_names();
        let provider_limit = resolved.entry.limit.name();
        assert_eq!(
            names,
            [
                caller.session_limit.name(),
                provider_limit,
                caller.global_limit.name()
            ],
            "a provider handle holds the session, its own provider's and the global permit"
        );
        let provider = &resolved.entry.provider;
        assert!(
            provider.models().contains(&resolved.model)
                || provider.default_model() == resolved.model,
            "model {} is one of provider {}'s",
            resolved.model,
            provider.name()
        );
        let previous = caller.handles.live.fetch_add(1, Ordering::SeqCst);
        assert_eq!(previous, 0, "a call holds at most one provider handle");
        ProviderHandle {
            caller,
            resolved,
            permits,
        }
    }

    /// The provider's name (`kimi`, `glm`, `offline`...).
    pub fn provider_name(&self) -> &str {
        self.resolved.entry.provider.name()
    }

    /// The model the call was admitted for, as the provider names it.
    pub fn model(&self) -> &str {
        &self.resolved.model
    }

    /// One chat completion under the retry policy and the call's deadline (the call's select
    /// enforces the deadline; dropping this future aborts the attempt in flight). `request`
    /// must name the model the handle was admitted for.
    pub async fn complete(&self, request: ChatRequest) -> Result<ChatResponse, CallError> {
        self.attempts(&request, None).await
    }

    /// A chat completion that may take tool rounds (the provider's web search): while the
    /// model stops for tool calls, answer them (`provider::rounds`) and ask again, each round
    /// a full run of the retry loop, all under this handle's permits and the call's deadline.
    /// At most `rounds_max` rounds (`EXAI_TOOL_ROUNDS_MAX`); a model that asks for more ends
    /// the call with `PROVIDER_ERROR` naming the key. The answer carries the sources of every
    /// round; the count says how many rounds ran.
    pub async fn complete_with_tool_rounds(
        &self,
        mut request: ChatRequest,
        rounds_max: u32,
    ) -> Result<(ChatResponse, u32), CallError> {
        assert!(rounds_max >= 1, "at least the first round runs");
        let mut sources = Vec::new();
        let mut usage = None;
        for round in 1..=rounds_max {
            let mut response = self.attempts(&request, Some((round, rounds_max))).await?;
            sources.append(&mut response.sources);
            usage = crate::provider::Usage::sum(usage, response.usage);
            if response.tool_calls.is_empty() {
                response.sources = sources;
                response.usage = usage;
                return Ok((response, round));
            }
            request
                .tool_turns
                .extend(crate::provider::rounds::answer_tool_calls(&response));
        }
        Err(CallError::new(
            ErrorCode::ProviderError,
            format!(
                "provider {}: the model still asked for tool calls after {rounds_max} round(s), \
                 the most one call may take ({})",
                self.provider_name(),
                crate::config::key::EXAI_TOOL_ROUNDS_MAX
            ),
        ))
    }

    /// The retry loop for one request (one tool round of `round`, when rounds are counted).
    async fn attempts(
        &self,
        request: &ChatRequest,
        round: Option<(u32, u32)>,
    ) -> Result<ChatResponse, CallError> {
        assert_eq!(
            request.model, self.resolved.model,
            "a provider handle sends only the model it was admitted for"
        );
        assert!(
            self.permits
                .limit_names()
                .contains(&self.resolved.entry.limit.name()),
            "a provider handle holds its provider's permit while it sends"
        );
        let caller = &self.caller;
        let rt = &caller.rt;
        let entry = &self.resolved.entry;
        let policy = caller.policy;
        let name = entry.provider.name().to_string();
        let round = round
            .map(|(round, rounds_max)| format!(", tool round {round} of {rounds_max}"))
            .unwrap_or_default();
        // The common case, no budget, makes no estimate.
        let estimate =
            (entry.budget.is_on() || entry.daily.is_on()).then(|| estimate_tokens(request));
        let mut attempt = 0u32;
        loop {
            self.wait_cooldown(&name, &entry.cooldown).await?;
            let reserved = self.wait_budget(&name, estimate).await?;
            let today = self.reserve_day(&name, estimate)?;
            attempt += 1;
            caller.phase.set(Phase::Running {
                activity: format!(
                    "waiting on provider {name} (model {}){round}, attempt {attempt} of {}",
                    request.model, policy.attempts_max
                ),
            });
            caller
                .observer
                .provider_attempt(&name, &caller.request_id, attempt, rt.now());
            let chunks = caller.chunks.as_ref().map(|sinks| sinks(&name, attempt));
            let attempt_started = rt.now();
            let result = entry.provider.complete(request.clone(), chunks).await;
            caller.observer.provider_attempt_ended(
                &caller.session_id,
                &name,
                &caller.request_id,
                rt.now().saturating_since(attempt_started),
                outcome(&result),
            );
            let error = match result {
                Ok(response) => {
                    let reported = response.usage.map(|usage| usage.total_tokens);
                    if let Some(usage) = response.usage {
                        caller.observer.tokens_used(&name, &response.model, usage);
                        if let Some(id) = reserved {
                            entry.budget.correct(id, usage.total_tokens);
                        }
                    }
                    let used = reported.or(estimate).unwrap_or(0);
                    match today {
                        Some(reservation) => reservation.settle(rt.unix_time_ms(), used),
                        None => entry.daily.count(rt.unix_time_ms(), used),
                    }
                    return Ok(response);
                }
                Err(error) => {
                    // A failed attempt uses nothing: its reservation goes back before any pause.
                    drop(today);
                    error
                }
            };
            self.pause_after(&name, &entry.cooldown, attempt, error)
                .await?;
        }
    }

    /// The provider's rate budget (`retry::budget`): count this attempt in it, waiting until
    /// it fits, or end the call now with `OVER_CAPACITY` naming the budget when it would fit
    /// only after the deadline. `None` when the provider has no budget.
    async fn wait_budget(
        &self,
        name: &str,
        estimate: Option<u64>,
    ) -> Result<Option<u64>, CallError> {
        let caller = &self.caller;
        let rt = &caller.rt;
        let budget = &self.resolved.entry.budget;
        let Some(tokens) = estimate.filter(|_| budget.is_on()) else {
            return Ok(None);
        };
        loop {
            let now = rt.now();
            let (spent, fits_at) = match budget.try_reserve(now, tokens) {
                Ok(id) => return Ok(Some(id)),
                Err(refusal) => refusal,
            };
            let (rpm, tpm) = budget.limits();
            let what = match spent {
                crate::retry::budget::Spent::Requests => format!("{rpm} requests a minute"),
                crate::retry::budget::Spent::Tokens => format!("{tpm} tokens a minute"),
            };
            let wait = fits_at.saturating_since(now);
            if fits_at > caller.deadline {
                let secs = (wait.as_millis() as u64).div_ceil(1000).max(1);
                let message = format!(
                    "provider {name}'s rate budget ({what}, EXAI_{}_{}) is spent for {:.1} s, past the call's deadline",
                    name.to_ascii_uppercase(),
                    if spent == crate::retry::budget::Spent::Requests {
                        "RPM"
                    } else {
                        "TPM"
                    },
                    wait.as_secs_f64()
                );
                return Err(CallError::new(ErrorCode::OverCapacity, message)
                    .with_retry_after_secs(secs)
                    .may_fail_over());
            }
            caller.phase.set(Phase::Running {
                activity: format!(
                    "waiting {:.1} s for provider {name}'s rate budget ({what})",
                    wait.as_secs_f64()
                ),
            });
            rt.sleep_until(fits_at).await;
        }
    }

    /// The provider's daily token budget (`retry::daily`): reserve this attempt's estimate in
    /// today's books, or end the call now with `OVER_CAPACITY` naming the budget and when it
    /// resets. Waiting for midnight would never fit a deadline, so an `auto` call moves on.
    fn reserve_day(
        &self,
        name: &str,
        estimate: Option<u64>,
    ) -> Result<Option<crate::retry::daily::Reservation>, CallError> {
        let daily = &self.resolved.entry.daily;
        let Some(tokens) = estimate.filter(|_| daily.is_on()) else {
            return Ok(None);
        };
        let unix_ms = self.caller.rt.unix_time_ms();
        let spent = match daily.reserve(unix_ms, tokens) {
            Ok(reservation) => return Ok(Some(reservation)),
            Err(spent) => spent,
        };
        let secs = spent
            .resets_at_unix_ms
            .saturating_sub(unix_ms)
            .div_ceil(1000)
            .max(1);
        let resets_at = crate::retry::daily::utc_midnight(
            spent.resets_at_unix_ms / crate::retry::daily::DAY_MS,
        );
        let message = format!(
            "provider {name}'s daily token budget (EXAI_{}_TOKENS_PER_DAY = {}) would be passed: \
             {} tokens used or in flight today (UTC), and this call needs about {}; it resets at \
             {resets_at}, in {secs} s",
            name.to_ascii_uppercase(),
            spent.tokens_per_day,
            spent.tokens_used,
            spent.tokens_needed,
        );
        Err(CallError::new(ErrorCode::OverCapacity, message)
            .with_retry_after_secs(secs)
            .with_details(serde_json::json!({
                "budget": format!("EXAI_{}_TOKENS_PER_DAY", name.to_ascii_uppercase()),
                "tokens_per_day": spent.tokens_per_day,
                "tokens_used_today": spent.tokens_used,
                "resets_at": resets_at,
            }))
            .may_fail_over())
    }

    /// Another call's 429 may have put the provider in cooldown: honor it too, or end the
    /// call now if it lasts past the deadline.
    async fn wait_cooldown(&self, name: &str, cooldown: &Cooldown) -> Result<(), CallError> {
        let caller = &self.caller;
        let rt = &caller.rt;
        while let Some(until) = cooldown.active_until(rt.now()) {
            let now = rt.now();
            if until > caller.deadline {
                return Err(self.give_up(name, until.saturating_since(now), None));
            }
            self.set_paused(name, until, PauseReason::Cooldown);
            let wait = until.saturating_since(now);
            caller.observer.provider_pause(
                name,
                &caller.request_id,
                wait,
                PauseReason::Cooldown,
                now,
            );
            rt.sleep_until(until).await;
        }
        Ok(())
    }

    /// After failed attempt `attempt`: cool the provider down if it named a time, then either
    /// end the call (not retryable, attempts used up, or the pause would pass the deadline)
    /// or pause before the next attempt.
    async fn pause_after(
        &self,
        name: &str,
        cooldown: &Cooldown,
        attempt: u32,
        error: ProviderError,
    ) -> Result<(), CallError> {
        let caller = &self.caller;
        let rt = &caller.rt;
        let policy = caller.policy;
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
            cooldown.extend(now + *after);
        }
        if !error.is_retryable() || attempt >= policy.attempts_max {
            tracing::info!(request_id = %caller.request_id, provider = %name, attempt, error = %error, "provider attempt failed; not retrying");
            // A refused request (4xx) would be refused anywhere; anything else is this
            // provider's trouble, which another may not share.
            let elsewhere = !matches!(error, ProviderError::Client { .. });
            let error = error.into_call_error(name);
            return Err(if elsewhere {
                error.may_fail_over()
            } else {
                error
            });
        }
        let (pause, reason) = match &error {
            ProviderError::RateLimited {
                retry_after: Some(after),
                ..
            } => (*after, PauseReason::RetryAfter),
            _ => (
                caller.jitter.backoff(&policy, attempt),
                PauseReason::Backoff,
            ),
        };
        if now + pause > caller.deadline {
            return Err(self.give_up(name, pause, Some(error)));
        }
        tracing::debug!(request_id = %caller.request_id, provider = %name, attempt, pause_ms = pause.as_millis() as u64, error = %error, "pausing before the next attempt");
        self.set_paused(name, now + pause, reason);
        caller
            .observer
            .provider_pause(name, &caller.request_id, pause, reason, now);
        rt.sleep(pause).await;
        Ok(())
    }

    fn set_paused(&self, provider: &str, until: Instant, reason: PauseReason) {
        self.caller.phase.set(Phase::Paused {
            provider: provider.to_string(),
            until,
            reason,
        });
    }

    /// End the call now: waiting `wait` would pass the deadline.
    fn give_up(&self, provider: &str, wait: Duration, error: Option<ProviderError>) -> CallError {
        let caller = &self.caller;
        let now = caller.rt.now();
        caller
            .observer
            .gave_up_before_deadline(provider, &caller.request_id, wait, now);
        let remaining = caller.deadline.saturating_since(now);
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
        .may_fail_over()
    }
}

impl Drop for ProviderHandle {
    fn drop(&mut self) {
        // The permits field drops right after this: the count and the permits go together.
        let previous = self.caller.handles.live.fetch_sub(1, Ordering::SeqCst);
        assert_eq!(previous, 1, "a provider handle is counted exactly once");
    }
}

/// How an attempt ended, as the observer names it.
fn outcome(result: &Result<ChatResponse, ProviderError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(ProviderError::RateLimited {
            kind: RateLimitKind::Quota,
            ..
        }) => "quota",
        Err(ProviderError::RateLimited { .. }) => "rate_limited",
        Err(_) => "error",
    }
}

/// A request's tokens before it is sent: its text at about 4 bytes a token, plus what the
/// answer may take (`max_tokens`, or 1,024 when the call does not say).
fn estimate_tokens(request: &ChatRequest) -> u64 {
    request.prompt_tokens_estimate() + u64::from(request.max_tokens.unwrap_or(1024))
}
