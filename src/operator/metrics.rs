//! Prometheus metrics (`/metrics`), fed by the observer hooks and, for gauges, read from the
//! daemon's live state at scrape time.
//!
//! Why gauges at scrape time: permits in use, waiters, sessions and connections already live
//! in the daemon's books; copying them into gauges on every change would be a second set of
//! books that could drift. The one derived gauge, `exaid_permit_mismatch`, is "in use minus
//! live holders" per limit and should always read 0: anything else is a bug.
//!
//! Label values are bounded sets (tool names, outcome codes, provider and limit names), never
//! ids, tokens or prompts.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::observe::{Observer, PauseReason};
use crate::outbox::OutboxStats;
use crate::protocol::ServerFrame;
use crate::rt::Instant;
use crate::state::Shared;

/// Calls by tool and how they ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    /// Canonical tool name.
    tool: String,
    /// `OK` or the error code.
    outcome: String,
}

/// Per tool.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabels {
    /// Canonical tool name.
    tool: String,
}

/// Per provider.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    /// Provider name.
    provider: String,
}

/// Per provider and pause reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PauseLabels {
    /// Provider name.
    provider: String,
    /// `retry_after`, `cooldown` or `backoff`.
    reason: String,
}

/// Per provider and model.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    /// Provider name.
    provider: String,
    /// The model that answered.
    model: String,
}

/// Per provider, model and kind of token.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    /// Provider name.
    provider: String,
    /// The model that answered.
    model: String,
    /// `prompt` or `completion`.
    kind: String,
}

/// Per limit.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    /// Limit name (`global`, `provider:kimi`, `session` summed over sessions).
    limit: String,
}

/// Timing of one call in flight, to split its duration into provider time and overhead.
#[derive(Debug, Clone, Copy)]
struct Timing {
    /// When it was accepted.
    accepted_at: Instant,
    /// Time spent inside provider attempts so far.
    provider_time: Duration,
}

/// Upper bound on calls whose timing is tracked at once; past it new calls are not timed
/// (their count is still exact). Bounded like everything else.
const TIMINGS_MAX: usize = 100_000;

/// The daemon's metrics.
pub struct Metrics {
    /// Everything registered, for encoding.
    registry: Registry,
    /// `exaid_calls_total{tool,outcome}`.
    calls: Family<CallLabels, Counter>,
    /// `exaid_call_duration_seconds{tool}`: acceptance to terminal frame.
    call_seconds: Family<ToolLabels, Histogram>,
    /// `exaid_call_overhead_seconds{tool}`: duration minus time inside provider attempts.
    overhead_seconds: Family<ToolLabels, Histogram>,
    /// `exaid_provider_attempts_total{provider}`.
    attempts: Family<ProviderLabels, Counter>,
    /// `exaid_provider_rate_limited_total{provider}`: 429s and rate-limit business codes.
    rate_limited: Family<ProviderLabels, Counter>,
    /// `exaid_provider_retries_total{provider}`: attempts after the first.
    retries: Family<ProviderLabels, Counter>,
    /// `exaid_provider_pause_seconds_total{provider,reason}`: time calls spent pausing.
    pause_seconds: Family<PauseLabels, Counter<f64, AtomicU64>>,
    /// `exaid_admission_wait_seconds{limit}`: how long calls that had to wait waited.
    admission_wait: Family<LimitLabels, Histogram>,
    /// `exaid_permits_in_use{limit}`, set at scrape.
    permits_in_use: Family<LimitLabels, Gauge>,
    /// `exaid_permits_limit{limit}`, set at scrape.
    permits_limit: Family<LimitLabels, Gauge>,
    /// `exaid_permit_waiters{limit}`, set at scrape.
    waiters: Family<LimitLabels, Gauge>,
    /// `exaid_permit_mismatch{limit}`: in use minus live holders; must read 0.
    mismatch: Family<LimitLabels, Gauge>,
    /// `exaid_outbox_frames`: frames held in all outboxes, set at scrape.
    outbox_frames: Gauge,
    /// `exaid_memory_used_bytes` and `exaid_memory_max_bytes`: the memory budget's count
    /// and its maximum (`EXAI_MEMORY_MAX_BYTES`), set at scrape.
    memory_used: Gauge,
    /// See `memory_used`.
    memory_max: Gauge,
    /// `exaid_memory_frames_shed`: frames of disconnected sessions shed to stay within the
    /// budget, all time, set at scrape from the budget's own count.
    memory_frames_shed: Gauge,
    /// `exaid_frames_replayed_total`: frames sent again on resume.
    frames_replayed: Counter,
    /// `exaid_frames_expired_total`: frames evicted by an outbox cap or the TTL.
    frames_expired: Counter,
    /// `exaid_frames_not_kept_total`: frames of kept sessions sent before the state file
    /// kept their record (it kept failing past `EXAI_STATE_HOLD_SECS`).
    frames_not_kept: Counter,
    /// `exaid_gaps_total`: gaps announced to clients.
    gaps: Counter,
    /// `exaid_connections`, set at scrape.
    connections: Gauge,
    /// `exaid_state_*`: the state file's writer.
    state: StateMetrics,
    /// `exaid_sessions`, set at scrape.
    sessions: Gauge,
    /// `exaid_resumes_total`.
    resumes: Counter,
    /// `exaid_sessions_expired_total`.
    sessions_expired: Counter,
    /// `exaid_provider_cooldown_seconds{provider}`: cooldown left, set at scrape.
    cooldown_left: Family<ProviderLabels, Gauge<f64, AtomicU64>>,
    /// `exaid_tokens_total{provider,model,kind}`: tokens providers reported.
    tokens: Family<TokenLabels, Counter>,
    /// `exaid_cost_usd_total{provider,model}`: what they cost by the configured prices.
    cost: Family<ModelLabels, Counter<f64, AtomicU64>>,
    /// Calls in flight: accepted time and provider time, by (session, request id).
    timings: Mutex<HashMap<(String, String), Timing>>,
    /// Tool of each call in flight, for the terminal frame's labels.
    tools: Mutex<HashMap<(String, String), String>>,
}

fn seconds_buckets() -> Histogram {
    // 1 ms to ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

fn overhead_buckets() -> Histogram {
    // 10 µs to ~1.3 s: the daemon's own cost should sit at the low end.
    Histogram::new(exponential_buckets(0.000_01, 2.0, 18))
}

impl Metrics {
    /// Every metric, registered under the `exaid` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("exaid");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "calls",
            "Calls by tool and outcome (OK or error code)",
            calls.clone(),
        );
        let call_seconds = Family::<ToolLabels, Histogram>::new_with_constructor(
            seconds_buckets as fn() -> Histogram,
        );
        registry.register(
            "call_duration_seconds",
            "Call duration from acceptance to terminal frame",
            call_seconds.clone(),
        );
        let overhead_seconds = Family::<ToolLabels, Histogram>::new_with_constructor(
            overhead_buckets as fn() -> Histogram,
        );
        registry.register(
            "call_overhead_seconds",
            "Call duration minus time spent inside provider attempts: exaid's own cost, queueing and pauses included",
            overhead_seconds.clone(),
        );
        let attempts = Family::<ProviderLabels, Counter>::default();
        registry.register(
            "provider_attempts",
            "Provider attempts started",
            attempts.clone(),
        );
        let rate_limited = Family::<ProviderLabels, Counter>::default();
        registry.register(
            "provider_rate_limited",
            "Provider attempts answered with a rate limit",
            rate_limited.clone(),
        );
        let retries = Family::<ProviderLabels, Counter>::default();
        registry.register(
            "provider_retries",
            "Provider attempts after a call's first",
            retries.clone(),
        );
        let pause_seconds = Family::<PauseLabels, Counter<f64, AtomicU64>>::default();
        registry.register(
            "provider_pause_seconds",
            "Seconds calls paused before an attempt, by reason",
            pause_seconds.clone(),
        );
        let admission_wait = Family::<LimitLabels, Histogram>::new_with_constructor(
            seconds_buckets as fn() -> Histogram,
        );
        registry.register(
            "admission_wait_seconds",
            "How long calls waited for a permit, when they had to",
            admission_wait.clone(),
        );
        let permits_in_use = Family::<LimitLabels, Gauge>::default();
        registry.register(
            "permits_in_use",
            "Permits in use per limit",
            permits_in_use.clone(),
        );
        let permits_limit = Family::<LimitLabels, Gauge>::default();
        registry.register(
            "permits_limit",
            "Permits that exist per limit",
            permits_limit.clone(),
        );
        let waiters = Family::<LimitLabels, Gauge>::default();
        registry.register(
            "permit_waiters",
            "Calls waiting for a permit per limit",
            waiters.clone(),
        );
        let mismatch = Family::<LimitLabels, Gauge>::default();
        registry.register(
            "permit_mismatch",
            "Permits in use minus live holders per limit; anything but 0 is a bug",
            mismatch.clone(),
        );
        let outbox_frames = Gauge::default();
        registry.register(
            "outbox_frames",
            "Frames held in session outboxes",
            outbox_frames.clone(),
        );
        let memory_used = Gauge::default();
        registry.register(
            "memory_used_bytes",
            "Bytes outboxes, result caches and conversations hold, as the memory budget counts them",
            memory_used.clone(),
        );
        let memory_max = Gauge::default();
        registry.register(
            "memory_max_bytes",
            "The memory budget (EXAI_MEMORY_MAX_BYTES)",
            memory_max.clone(),
        );
        let memory_frames_shed = Gauge::default();
        registry.register(
            "memory_frames_shed",
            "Frames of disconnected sessions shed to stay within the memory budget, since start",
            memory_frames_shed.clone(),
        );
        let frames_replayed = Counter::default();
        registry.register(
            "frames_replayed",
            "Frames sent again to resuming clients",
            frames_replayed.clone(),
        );
        let frames_expired = Counter::default();
        registry.register(
            "frames_expired",
            "Unacked frames evicted by an outbox cap or the TTL",
            frames_expired.clone(),
        );
        let frames_not_kept = Counter::default();
        registry.register(
            "frames_not_kept",
            "Frames sent before the state file kept their record (it kept failing)",
            frames_not_kept.clone(),
        );
        let gaps = Counter::default();
        registry.register("gaps", "Gaps announced to clients", gaps.clone());
        let connections = Gauge::default();
        registry.register(
            "connections",
            "WebSocket connections open",
            connections.clone(),
        );
        let state = StateMetrics::register(&mut registry);
        let sessions = Gauge::default();
        registry.register(
            "sessions",
            "Sessions alive, attached or awaiting resume",
            sessions.clone(),
        );
        let resumes = Counter::default();
        registry.register("resumes", "Sessions resumed", resumes.clone());
        let sessions_expired = Counter::default();
        registry.register(
            "sessions_expired",
            "Sessions expired with no client",
            sessions_expired.clone(),
        );
        let cooldown_left = Family::<ProviderLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "provider_cooldown_seconds",
            "Seconds before a rate-limited provider may be called again",
            cooldown_left.clone(),
        );
        let tokens = Family::<TokenLabels, Counter>::default();
        registry.register(
            "tokens",
            "Tokens the providers reported per answer, by provider, model and kind (prompt, completion)",
            tokens.clone(),
        );
        let cost = Family::<ModelLabels, Counter<f64, AtomicU64>>::default();
        registry.register(
            "cost_usd",
            "US dollars the answers cost by the prices configured in EXAI_MODEL_FACTS",
            cost.clone(),
        );
        Metrics {
            registry,
            tokens,
            cost,
            calls,
            call_seconds,
            overhead_seconds,
            attempts,
            rate_limited,
            retries,
            pause_seconds,
            admission_wait,
            permits_in_use,
            permits_limit,
            waiters,
            mismatch,
            outbox_frames,
            memory_used,
            memory_max,
            memory_frames_shed,
            frames_replayed,
            frames_expired,
            frames_not_kept,
            gaps,
            connections,
            state,
            sessions,
            resumes,
            sessions_expired,
            cooldown_left,
            timings: Mutex::new(HashMap::new()),
            tools: Mutex::new(HashMap::new()),
        }
    }

    /// Refresh the gauges from the daemon's state and encode everything (OpenMetrics text).
    pub fn render(&self, shared: &Shared) -> String {
        let health = crate::health::snapshot(shared);
        let mut limits = health.limits.clone();
        limits.push(crate::admission::LimitSnapshot {
            name: "session".to_string(),
            permits_max: 0,
            permits_in_use: health.session_limits.permits_in_use as u32,
            holders: health.session_limits.holders as u32,
            waiters: health.session_limits.waiters as u32,
            over_released: false,
            refused_total: 0,
        });
        for limit in &limits {
            let labels = LimitLabels {
                limit: limit.name.clone(),
            };
            self.permits_in_use
                .get_or_create(&labels)
                .set(limit.permits_in_use as i64);
            if limit.permits_max > 0 {
                self.permits_limit
                    .get_or_create(&labels)
                    .set(limit.permits_max as i64);
            }
            self.waiters
                .get_or_create(&labels)
                .set(limit.waiters as i64);
            self.mismatch.get_or_create(&labels).set(limit.mismatch());
        }
        let outbox_frames: usize = shared
            .sessions
            .all()
            .iter()
            .map(|s| s.outbox.stats().frames)
            .sum();
        self.outbox_frames.set(outbox_frames as i64);
        let memory = shared.memory.stats();
        self.memory_used.set(memory.used_bytes as i64);
        self.memory_max.set(memory.max_bytes as i64);
        self.memory_frames_shed
            .set(i64::try_from(memory.frames_shed_total).unwrap_or(i64::MAX));
        self.connections.set(health.connections as i64);
        self.state.refresh(&shared.durable.stats());
        self.sessions.set(health.sessions as i64);
        let now = shared.rt.now();
        for entry in shared.providers.entries() {
            let left = entry
                .cooldown
                .active_until(now)
                .map_or(0.0, |until| until.saturating_since(now).as_secs_f64());
            self.cooldown_left
                .get_or_create(&ProviderLabels {
                    provider: entry.provider.name().to_string(),
                })
                .set(left);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("encoding into a String cannot fail");
        text
    }
}

/// The state writer's series. Its counts live in `durable::Durable` (the core keeps no
/// metrics types); the counters here advance by what changed since the last scrape.
struct StateMetrics {
    /// `exaid_state_degraded`: 1 while persistence is degraded.
    degraded: Gauge,
    /// `exaid_state_waiting`: records waiting to be written.
    waiting: Gauge,
    /// `exaid_state_commits_total`.
    commits: Counter,
    /// `exaid_state_changes_total`: changes written (a batch is one commit).
    changes: Counter,
    /// `exaid_state_failures_total`: commits that failed.
    failures: Counter,
    /// `exaid_state_dropped_total`: changes dropped with the queue full.
    dropped: Counter,
    /// The counts at the last scrape.
    seen: Mutex<crate::durable::DurableStats>,
}

impl StateMetrics {
    fn register(registry: &mut Registry) -> StateMetrics {
        let metrics = StateMetrics {
            degraded: Gauge::default(),
            waiting: Gauge::default(),
            commits: Counter::default(),
            changes: Counter::default(),
            failures: Counter::default(),
            dropped: Counter::default(),
            seen: Mutex::new(crate::durable::DurableStats::default()),
        };
        let gauges = [
            (
                "state_degraded",
                "1 while persistence is degraded (see /status)",
                &metrics.degraded,
            ),
            (
                "state_waiting",
                "Records waiting to be written to the state file",
                &metrics.waiting,
            ),
        ];
        for (name, help, gauge) in gauges {
            registry.register(name, help, gauge.clone());
        }
        let counters = [
            (
                "state_commits",
                "Commits to the state file",
                &metrics.commits,
            ),
            (
                "state_changes",
                "Changes written to the state file",
                &metrics.changes,
            ),
            (
                "state_failures",
                "Commits to the state file that failed",
                &metrics.failures,
            ),
            (
                "state_dropped",
                "Changes dropped: the state writer's queue was full",
                &metrics.dropped,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        metrics
    }

    fn refresh(&self, now: &crate::durable::DurableStats) {
        self.degraded.set(i64::from(now.degraded));
        self.waiting.set(now.waiting as i64);
        let mut seen = self.seen.lock().expect("state metrics lock");
        self.commits
            .inc_by(now.commits.saturating_sub(seen.commits));
        self.changes
            .inc_by(now.changes.saturating_sub(seen.changes));
        self.failures
            .inc_by(now.failures.saturating_sub(seen.failures));
        self.dropped
            .inc_by(now.dropped.saturating_sub(seen.dropped));
        *seen = now.clone();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn key(session: &str, request_id: &str) -> (String, String) {
    (session.to_string(), request_id.to_string())
}

impl Observer for Metrics {
    fn call_accepted(
        &self,
        session: &str,
        request_id: &str,
        tool: &str,
        at: Instant,
        _deadline: Instant,
    ) {
        let mut timings = self.timings.lock().expect("metrics lock");
        if timings.len() < TIMINGS_MAX {
            timings.insert(
                key(session, request_id),
                Timing {
                    accepted_at: at,
                    provider_time: Duration::ZERO,
                },
            );
            self.tools
                .lock()
                .expect("metrics lock")
                .insert(key(session, request_id), tool.to_string());
        }
    }

    fn frame_pushed(
        &self,
        session: &str,
        _seq: u64,
        frame: &ServerFrame,
        at: Instant,
        _outbox: OutboxStats,
    ) {
        let ServerFrame::CallToolRes {
            request_id,
            error,
            repeated: false,
            ..
        } = frame
        else {
            return;
        };
        let key = key(session, request_id);
        let timing = self.timings.lock().expect("metrics lock").remove(&key);
        let tool = self.tools.lock().expect("metrics lock").remove(&key);
        let outcome = error.as_ref().map_or("OK", |e| e.code.as_str()).to_string();
        // Calls refused before acceptance (unknown tool, bad arguments) have no timing and
        // are counted under tool "-": their names come from the client and are unbounded.
        let tool = tool.unwrap_or_else(|| "-".to_string());
        self.calls
            .get_or_create(&CallLabels {
                tool: tool.clone(),
                outcome,
            })
            .inc();
        if let Some(timing) = timing {
            let total = at.saturating_since(timing.accepted_at);
            let overhead = total.saturating_sub(timing.provider_time);
            let labels = ToolLabels { tool };
            self.call_seconds
                .get_or_create(&labels)
                .observe(total.as_secs_f64());
            self.overhead_seconds
                .get_or_create(&labels)
                .observe(overhead.as_secs_f64());
        }
    }

    fn provider_attempt(&self, provider: &str, _request_id: &str, attempt: u32, _at: Instant) {
        let labels = ProviderLabels {
            provider: provider.to_string(),
        };
        self.attempts.get_or_create(&labels).inc();
        if attempt > 1 {
            self.retries.get_or_create(&labels).inc();
        }
    }

    fn tokens_used(&self, provider: &str, model: &str, usage: crate::provider::Usage) {
        for (kind, count) in [
            ("prompt", usage.prompt_tokens),
            ("completion", usage.completion_tokens),
        ] {
            let labels = TokenLabels {
                provider: provider.to_string(),
                model: model.to_string(),
                kind: kind.to_string(),
            };
            self.tokens.get_or_create(&labels).inc_by(count);
        }
    }

    fn cost_incurred(&self, provider: &str, model: &str, usd: f64) {
        let labels = ModelLabels {
            provider: provider.to_string(),
            model: model.to_string(),
        };
        self.cost.get_or_create(&labels).inc_by(usd);
    }

    fn provider_attempt_ended(
        &self,
        session: &str,
        provider: &str,
        request_id: &str,
        elapsed: Duration,
        outcome: &'static str,
    ) {
        if outcome == "rate_limited" || outcome == "quota" {
            self.rate_limited
                .get_or_create(&ProviderLabels {
                    provider: provider.to_string(),
                })
                .inc();
        }
        if let Some(timing) = self
            .timings
            .lock()
            .expect("metrics lock")
            .get_mut(&key(session, request_id))
        {
            timing.provider_time += elapsed;
        }
    }

    fn provider_pause(
        &self,
        provider: &str,
        _request_id: &str,
        pause: Duration,
        reason: PauseReason,
        _at: Instant,
    ) {
        let reason = match reason {
            PauseReason::RetryAfter => "retry_after",
            PauseReason::Cooldown => "cooldown",
            PauseReason::Backoff => "backoff",
        };
        self.pause_seconds
            .get_or_create(&PauseLabels {
                provider: provider.to_string(),
                reason: reason.to_string(),
            })
            .inc_by(pause.as_secs_f64());
    }

    fn admission_waited(&self, limit: &str, waited: Duration) {
        // Session limits are many; one series for all of them.
        let limit = if limit.starts_with("provider:") || limit == "global" {
            limit
        } else {
            "session"
        };
        self.admission_wait
            .get_or_create(&LimitLabels {
                limit: limit.to_string(),
            })
            .observe(waited.as_secs_f64());
    }

    fn session_resumed(&self, _session: &str, frames_replayed: u64) {
        self.resumes.inc();
        self.frames_replayed.inc_by(frames_replayed);
    }

    fn gap_announced(&self, _session: &str, _frames_lost: u64) {
        self.gaps.inc();
    }

    fn frames_evicted(&self, _session: &str, frames: u64) {
        self.frames_expired.inc_by(frames);
    }

    fn frame_not_kept(&self, _session: &str, _request_id: &str) {
        self.frames_not_kept.inc();
    }

    fn session_expired(&self, _session: &str, _calls_stopped: usize, _at: Instant) {
        self.sessions_expired.inc();
    }
}
