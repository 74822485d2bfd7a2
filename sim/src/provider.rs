//! The simulated provider, and the witness that watches every provider from outside the
//! daemon.
//!
//! The provider answers each attempt by a behaviour drawn from the run's fault mix: success
//! after a latency, 429 with retry-after in seconds or milliseconds or none, quota errors that
//! must never be retried, 5xx, resets, and hangs that never answer.
//!
//! The [`Witness`] is independent of the daemon's own accounting: it counts attempts in flight
//! per provider and in total (invariant 1), and remembers until when each provider asked not
//! to be called (invariant 5). It learns of an attempt's end when the daemon drops or finishes
//! the attempt's future, exactly as a real server sees a connection close.

use std::collections::BTreeMap;
use std::future::pending;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use exaid::provider::{
    ChatRequest, ChatResponse, ChunkSink, Provider, ProviderError, RateLimitKind, Role, Usage,
};
use exaid::rt::BoxFuture;
use madsim::rand::{Rng, thread_rng};

use crate::inspect::Rules;
use crate::journal::{Invariant, JournalRef, lock, now_ms};

/// Relative weights of each behaviour: one attempt draws one.
#[derive(Debug, Clone, Copy, Default)]
pub struct Weights {
    /// Answer normally.
    pub ok: u32,
    /// 429 with `Retry-After` in whole seconds.
    pub rate_limit_secs: u32,
    /// 429 with `retry-after-ms`.
    pub rate_limit_ms: u32,
    /// 429 with no retry hint.
    pub rate_limit_bare: u32,
    /// Quota / arrears: never retryable.
    pub quota: u32,
    /// 5xx.
    pub server_error: u32,
    /// Connection reset mid-answer.
    pub reset: u32,
    /// Never answer.
    pub hang: u32,
}

/// One provider's fault mix for a run.
#[derive(Debug, Clone)]
pub struct Faults {
    /// Answer latency range, milliseconds (inclusive).
    pub latency_ms: (u64, u64),
    /// Behaviour weights outside storms.
    pub calm: Weights,
    /// Behaviour weights inside a storm window.
    pub storm: Weights,
    /// Storm windows, virtual milliseconds `[start, end)`.
    pub storms_ms: Vec<(u64, u64)>,
    /// Retry-after range, milliseconds (inclusive), for 429s that carry one.
    pub retry_after_ms: (u64, u64),
}

impl Faults {
    /// A provider that always answers after `latency_ms`.
    pub fn healthy(latency_ms: (u64, u64)) -> Faults {
        let calm = Weights {
            ok: 1,
            ..Weights::default()
        };
        Faults {
            latency_ms,
            calm,
            storm: calm,
            storms_ms: Vec::new(),
            retry_after_ms: (1000, 1000),
        }
    }
}

/// What one attempt will do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Ok,
    RateLimited(Option<Duration>),
    Quota,
    ServerError,
    Reset,
    Hang,
}

fn draw(weights: &Weights, retry_after_ms: (u64, u64)) -> Behaviour {
    let table = [
        (weights.ok, 0u8),
        (weights.rate_limit_secs, 1),
        (weights.rate_limit_ms, 2),
        (weights.rate_limit_bare, 3),
        (weights.quota, 4),
        (weights.server_error, 5),
        (weights.reset, 6),
        (weights.hang, 7),
    ];
    let total: u32 = table.iter().map(|(w, _)| w).sum();
    assert!(total > 0, "a fault mix needs at least one behaviour");
    let mut pick = thread_rng().gen_range(0..total);
    let mut kind = 0;
    for (weight, id) in table {
        if pick < weight {
            kind = id;
            break;
        }
        pick -= weight;
    }
    let after_ms = || thread_rng().gen_range(retry_after_ms.0..=retry_after_ms.1);
    match kind {
        0 => Behaviour::Ok,
        // HTTP `Retry-After` is whole seconds: round up, at least 1.
        1 => Behaviour::RateLimited(Some(Duration::from_secs(after_ms().div_ceil(1000).max(1)))),
        2 => Behaviour::RateLimited(Some(Duration::from_millis(after_ms().max(1)))),
        3 => Behaviour::RateLimited(None),
        4 => Behaviour::Quota,
        5 => Behaviour::ServerError,
        6 => Behaviour::Reset,
        _ => Behaviour::Hang,
    }
}

/// What the witness knows about one provider.
#[derive(Debug, Default)]
struct ProviderView {
    /// Attempts in flight now.
    in_flight: u32,
    /// Most attempts ever in flight at once.
    in_flight_max: u32,
    /// The provider's configured limit.
    limit: u32,
    /// Virtual ms before which the provider asked not to be called (0: none).
    blocked_until_ms: u64,
    /// Nanosecond-precise version of the same, for exact comparisons.
    blocked_until: Option<madsim::time::Instant>,
    /// The requests a minute the provider's account allows, and exaid is configured to keep
    /// (`EXAI_*_RPM`); 0: none.
    rpm: u32,
    /// The tokens a minute the account allows (`EXAI_*_TPM`); 0: none.
    tpm: u64,
    /// When each request of the last minute arrived, and the tokens it used (what the
    /// provider reports as its usage), oldest first. Bounded: at most `rpm` entries when
    /// there is a request budget, and entries leave after a minute.
    recent: std::collections::VecDeque<(madsim::time::Instant, u64)>,
}

impl ProviderView {
    /// Count a request of `tokens` arriving `now` in the account's minute, or, when the
    /// account would pass its budget, say which and how long until it fits: the provider
    /// answers 429 then, as a real one does, and never counts what it refused.
    fn over_budget(
        &mut self,
        now: madsim::time::Instant,
        tokens: u64,
    ) -> Option<(String, Duration)> {
        let minute = Duration::from_secs(60);
        while self
            .recent
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) >= minute)
        {
            self.recent.pop_front();
        }
        if self.rpm == 0 && self.tpm == 0 {
            return None;
        }
        let wait = |at: madsim::time::Instant| (at + minute).duration_since(now);
        if self.rpm > 0 && self.recent.len() >= self.rpm as usize {
            let oldest = self.recent.front().expect("a full minute is not empty").0;
            return Some((
                format!("its budget of {} requests a minute", self.rpm),
                wait(oldest),
            ));
        }
        let used: u64 = self.recent.iter().map(|(_, t)| t).sum();
        if self.tpm > 0 && used + tokens > self.tpm {
            let oldest = self.recent.front().map_or(now, |(at, _)| *at);
            return Some((
                format!(
                    "its budget of {} tokens a minute ({used} used, {tokens} more)",
                    self.tpm
                ),
                wait(oldest),
            ));
        }
        self.recent.push_back((now, tokens));
        None
    }
}

/// The independent witness of every simulated provider.
pub struct Witness {
    /// Per provider.
    providers: Mutex<BTreeMap<String, ProviderView>>,
    /// Attempts in flight across every provider.
    total_in_flight: Mutex<(u32, u32)>,
    /// The global limit.
    global_limit: u32,
    /// Where violations and coverage go.
    journal: JournalRef,
}

impl Witness {
    /// A witness checking `limits` (provider name -> limit) and the global limit.
    pub fn new(limits: &[(&str, u32)], global_limit: u32, journal: JournalRef) -> Arc<Witness> {
        let providers = limits
            .iter()
            .map(|(name, limit)| {
                (
                    name.to_string(),
                    ProviderView {
                        limit: *limit,
                        ..ProviderView::default()
                    },
                )
            })
            .collect();
        Arc::new(Witness {
            providers: Mutex::new(providers),
            total_in_flight: Mutex::new((0, 0)),
            global_limit,
            journal,
        })
    }

    /// The account behind key `key` (`kimi`, `kimi#2`) allows `rpm` requests and `tpm`
    /// tokens a minute, as exaid is told (0: none).
    pub fn set_budgets(&self, key: &str, rpm: u32, tpm: u64) {
        let mut providers = self.providers.lock().expect("witness lock");
        let view = providers.get_mut(key).expect("known provider key");
        (view.rpm, view.tpm) = (rpm, tpm);
    }

    /// An attempt of `tokens` arrives at key `provider`; with the wait the account asks for
    /// when it is over its budget (exaid's budgets should never let that happen).
    fn arrive(self: &Arc<Self>, provider: &str, tokens: u64) -> (Ticket, Option<Duration>) {
        let now = madsim::time::Instant::now();
        let mut providers = self.providers.lock().expect("witness lock");
        let view = providers.get_mut(provider).expect("known provider");
        view.in_flight += 1;
        view.in_flight_max = view.in_flight_max.max(view.in_flight);
        let mut journal = lock(&self.journal);
        let over = view.over_budget(now, tokens);
        if let Some((budget, _)) = &over {
            journal.violate(
                Invariant::BudgetsKept,
                format!("provider key {provider} receives a request past {budget}"),
            );
        } else if view.rpm > 0 || view.tpm > 0 {
            journal.cover("budget_held_at_provider");
        }
        if view.in_flight > view.limit {
            journal.violate(
                Invariant::LimitsHeld,
                format!(
                    "provider {provider} sees {} attempts at once, limit {}",
                    view.in_flight, view.limit
                ),
            );
        }
        if let Some(until) = view.blocked_until {
            if now < until {
                journal.violate(
                    Invariant::RetryAfterHonored,
                    format!(
                        "provider {provider} called at {} ms, before its retry-after ended at {} ms",
                        now_ms(),
                        view.blocked_until_ms
                    ),
                );
            } else {
                journal.cover("called_again_after_retry_after");
            }
        }
        let mut total = self.total_in_flight.lock().expect("witness lock");
        total.0 += 1;
        total.1 = total.1.max(total.0);
        if total.0 > self.global_limit {
            journal.violate(
                Invariant::LimitsHeld,
                format!(
                    "providers see {} attempts at once, global limit {}",
                    total.0, self.global_limit
                ),
            );
        }
        let name = provider
            .split('#')
            .next()
            .expect("a key starts with its provider");
        journal.count(format!("attempts {name}"), 1);
        let ticket = Ticket {
            witness: self.clone(),
            provider: provider.to_string(),
            finished: false,
        };
        (ticket, over.map(|(_, wait)| wait))
    }

    fn depart(&self, provider: &str, finished: bool) {
        let mut providers = self.providers.lock().expect("witness lock");
        let view = providers.get_mut(provider).expect("known provider");
        assert!(
            view.in_flight > 0,
            "witness saw more departures than arrivals"
        );
        view.in_flight -= 1;
        self.total_in_flight.lock().expect("witness lock").0 -= 1;
        if !finished {
            let mut journal = lock(&self.journal);
            journal.cover("attempt_aborted");
            journal.count("attempts aborted", 1);
        }
    }

    fn block(&self, provider: &str, after: Duration) {
        let mut providers = self.providers.lock().expect("witness lock");
        let view = providers.get_mut(provider).expect("known provider");
        let until = madsim::time::Instant::now() + after;
        if view.blocked_until.is_none_or(|previous| until > previous) {
            view.blocked_until = Some(until);
            view.blocked_until_ms = now_ms() + after.as_millis() as u64;
        }
    }

    /// Attempts in flight now, all providers (must be 0 at quiescence).
    pub fn in_flight(&self) -> u32 {
        self.total_in_flight.lock().expect("witness lock").0
    }

    /// (provider, most in flight at once, limit), for the outcome table.
    pub fn peaks(&self) -> Vec<(String, u32, u32)> {
        let providers = self.providers.lock().expect("witness lock");
        providers
            .iter()
            .map(|(name, view)| (name.clone(), view.in_flight_max, view.limit))
            .collect()
    }

    /// Most attempts in flight at once across providers.
    pub fn total_peak(&self) -> u32 {
        self.total_in_flight.lock().expect("witness lock").1
    }

    /// Virtual ms of the latest retry-after end across providers.
    pub fn latest_block_end_ms(&self) -> u64 {
        let providers = self.providers.lock().expect("witness lock");
        providers
            .values()
            .map(|v| v.blocked_until_ms)
            .max()
            .unwrap_or(0)
    }
}

/// One attempt in flight, as the witness counts it: it departs when dropped.
struct Ticket {
    witness: Arc<Witness>,
    provider: String,
    finished: bool,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.witness.depart(&self.provider, self.finished);
    }
}

/// A simulated OpenAI-compatible provider.
pub struct SimProvider {
    /// `kimi`, `glm`.
    name: String,
    /// Which key (account) of the provider this is, as the witness counts it: the name for
    /// the first, `kimi#2` for the second, as exaid names its limits.
    key: String,
    /// What every request it receives must obey (`inspect`).
    rules: Arc<Rules>,
    /// Its models.
    models: Vec<String>,
    /// The fault mix.
    faults: Faults,
    /// The witness.
    witness: Arc<Witness>,
    /// Set when the faults stop (the liveness phase).
    calm: Arc<AtomicBool>,
    /// Where events go.
    journal: JournalRef,
}

/// What a simulated provider reports it used: the prompt at 4 bytes a token (as exaid
/// estimates it), and an answer of at most the request's `max_tokens` (1,024 unsaid). Never
/// more than exaid's estimate, as a real provider's count never is when `max_tokens` holds.
fn usage_of(request: &ChatRequest) -> Usage {
    let prompt_tokens = request.prompt_tokens_estimate();
    let answer_bytes = answer_text("kimi", request).len() as u64;
    let completion_tokens = answer_bytes
        .div_ceil(4)
        .min(u64::from(request.max_tokens.unwrap_or(1024)));
    Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: prompt_tokens + completion_tokens,
    }
}

impl SimProvider {
    /// The same provider answering for its key number `index` (1-based; the first key keeps
    /// the bare name).
    pub fn keyed(mut self, index: u32) -> SimProvider {
        assert!(index >= 1);
        if index > 1 {
            self.key = format!("{}#{index}", self.name);
        }
        self
    }

    /// A provider named `name` serving `models`.
    pub fn new(
        name: &str,
        models: &[&str],
        faults: Faults,
        witness: Arc<Witness>,
        calm: Arc<AtomicBool>,
        journal: JournalRef,
        rules: Arc<Rules>,
    ) -> SimProvider {
        SimProvider {
            name: name.to_string(),
            key: name.to_string(),
            rules,
            models: models.iter().map(|m| m.to_string()).collect(),
            faults,
            witness,
            calm,
            journal,
        }
    }
}

/// The answer a simulated provider gives: names the provider and quotes the prompt, so a
/// client can check it got the answer to its own question.
pub fn answer_text(provider: &str, request: &ChatRequest) -> String {
    let prompt = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(|m| m.content.as_str())
        .unwrap_or("");
    format!("sim {provider}/{} answers: {prompt}", request.model)
}

/// A stable hash of a text (FNV-1a): how a simulated model decides, without drawing from
/// the run's generator, how many search rounds a question needs.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A successful attempt's answer. Without web search: the text. With it, as each provider
/// documents: Kimi stops for `$web_search` calls until the question has had its rounds (0 to
/// the limit, so some questions ask once too often), GLM answers at once with its sources.
fn answer(
    provider: &str,
    request: &ChatRequest,
    rounds_max: u32,
    journal: &JournalRef,
) -> ChatResponse {
    let mut response = ChatResponse {
        text: answer_text(provider, request),
        model: request.model.clone(),
        ..Default::default()
    };
    if asks_for_json(request) {
        structure(&mut response);
    }
    if !request.web_search {
        return response;
    }
    let rounds_done = request
        .tool_turns
        .iter()
        .filter(|t| t["role"] == "assistant")
        .count() as u64;
    if rounds_done > 0 {
        lock(journal).cover("tool_round_answered");
    }
    if provider != "kimi" {
        response.sources = vec![serde_json::json!({
            "title": "simulated page", "link": format!("https://sim.invalid/{}", fnv(&response.text) % 1000), "media": "sim"
        })];
        return response;
    }
    let wanted = fnv(&response.text) % (u64::from(rounds_max) + 1);
    if rounds_done < wanted {
        let arguments =
            serde_json::json!({"search_result": {"search_id": format!("sim-{rounds_done}")}});
        response.text = String::new();
        response.tool_calls = vec![serde_json::json!({
            "id": format!("call-{rounds_done}"), "type": "builtin_function",
            "function": {"name": "$web_search", "arguments": arguments.to_string()},
        })];
    }
    response
}

/// Whether the request is a workflow expert's, whose prompt asks for one JSON object.
fn asks_for_json(request: &ChatRequest) -> bool {
    request
        .messages
        .first()
        .is_some_and(|m| m.role == Role::System && m.content.contains("files_required_to_continue"))
}

/// The expert's answer in one of the shapes real models give, chosen by the text's hash (no
/// draw from the run's generator): a JSON object, one in a code fence after a sentence, prose
/// that is no JSON, or an object cut at the token limit. The answer text stays in every shape,
/// so the client can still check it answers its own question.
fn structure(response: &mut ChatResponse) {
    let said = std::mem::take(&mut response.text);
    let object = serde_json::json!({"status": "analysis_complete", "summary": said});
    response.text = match fnv(&said) % 4 {
        0 => object.to_string(),
        1 => format!("Here is my analysis.\n```json\n{object:#}\n```"),
        2 => format!("{said}\n(no JSON this time)"),
        _ => {
            response.truncated = true;
            let whole = object.to_string();
            whole[..whole.len() - 2].to_string()
        }
    };
}

impl Provider for SimProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn models(&self) -> &[String] {
        &self.models
    }

    fn default_model(&self) -> &str {
        &self.models[0]
    }

    fn is_configured(&self) -> bool {
        true
    }

    fn complete(
        &self,
        request: ChatRequest,
        _chunks: Option<ChunkSink>,
    ) -> BoxFuture<'static, Result<ChatResponse, ProviderError>> {
        let usage = usage_of(&request);
        let (mut ticket, over_budget) = self.witness.arrive(&self.key, usage.total_tokens);
        for (invariant, why) in self.rules.inspect(&request) {
            lock(&self.journal)
                .violate(invariant, format!("provider {} received {why}", self.name));
        }
        let now = now_ms();
        let in_storm = self
            .faults
            .storms_ms
            .iter()
            .any(|(start, end)| (*start..*end).contains(&now));
        let behaviour = if let Some(wait) = over_budget {
            // The account enforces its own budget, as a real one does.
            Behaviour::RateLimited(Some(wait))
        } else if self.calm.load(Ordering::SeqCst) {
            Behaviour::Ok
        } else if in_storm {
            draw(&self.faults.storm, self.faults.retry_after_ms)
        } else {
            draw(&self.faults.calm, self.faults.retry_after_ms)
        };
        let latency = Duration::from_millis(
            thread_rng().gen_range(self.faults.latency_ms.0..=self.faults.latency_ms.1),
        );
        lock(&self.journal).record(format!(
            "provider {} attempt -> {behaviour:?} after {} ms",
            self.key,
            latency.as_millis()
        ));
        let name = self.name.clone();
        let key = self.key.clone();
        let rounds_max = self.rules.rounds_max;
        let witness = self.witness.clone();
        let journal = self.journal.clone();
        Box::pin(async move {
            if behaviour == Behaviour::Hang {
                lock(&journal).cover("provider_hang");
                pending::<()>().await;
            }
            madsim::time::sleep(latency).await;
            ticket.finished = true;
            let result = match behaviour {
                Behaviour::Ok => {
                    let mut response = answer(&name, &request, rounds_max, &journal);
                    response.usage = Some(usage);
                    Ok(response)
                }
                Behaviour::RateLimited(after) => {
                    if let Some(after) = after {
                        // The daemon receives this now: from here on it must wait.
                        witness.block(&key, after);
                    }
                    lock(&journal).count("429s", 1);
                    Err(ProviderError::RateLimited {
                        retry_after: after,
                        kind: RateLimitKind::Frequency,
                    })
                }
                Behaviour::Quota => Err(ProviderError::RateLimited {
                    retry_after: None,
                    kind: RateLimitKind::Quota,
                }),
                Behaviour::ServerError => Err(ProviderError::Server {
                    status: 503,
                    message: "simulated overload".to_string(),
                }),
                Behaviour::Reset => Err(ProviderError::Transport(
                    "connection reset by peer (simulated)".to_string(),
                )),
                Behaviour::Hang => unreachable!("hangs never get here"),
            };
            drop(ticket);
            result
        })
    }
}
