//! Routing for `model: auto`: which model a call starts on (the category's model, on a
//! provider that is not cooling down and has a free permit, when there is a choice), and
//! which models it moves to when its provider cannot answer.
//!
//! Why here and not in the retry loop: the loop keeps one provider, as the permit it holds
//! says. Moving to another provider means giving that permit back and being admitted again
//! (`ToolCtx::switch_to`), which only the call's work can do. A model the caller names is
//! never replaced: routing applies to `auto` alone.

use serde_json::{Value, json};

use crate::error::CallError;
use crate::provider::{ChatRequest, ChatResponse, Providers, Resolved};
use crate::rt::Instant;
use crate::tools::context::{PlanEnv, ToolCtx};
use crate::tools::host::Routing;

/// What `auto` means for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// Simple tools (`chat`): `EXAI_FAST_MODEL`.
    Fast,
    /// Expert analyses, `thinkdeep`, `secaudit`, `consensus`: `EXAI_QUALITY_MODEL`.
    Quality,
}

/// Where a call starts and where it may go.
#[derive(Clone)]
pub struct Route {
    /// The model the call is admitted for.
    pub primary: Resolved,
    /// The models it may move to, in order (empty for a model the caller named).
    pub fallbacks: Vec<Resolved>,
}

/// The route of a call that asked for `asked` (`None`, empty or `auto`: routed) in a
/// conversation whose last answer came from `kept` (an `auto` call keeps that model while
/// some provider still serves it; it may still fail over like any `auto` call).
pub fn plan(
    env: &PlanEnv<'_>,
    asked: Option<&str>,
    category: Category,
    kept: Option<&str>,
) -> Result<Route, CallError> {
    let providers = env.providers();
    let wanted = asked.map(str::trim).unwrap_or("");
    if !(wanted.is_empty() || wanted.eq_ignore_ascii_case("auto")) {
        // A named model is never replaced; another key of its provider is the same model.
        let primary = providers.resolve(wanted)?;
        let fallbacks = providers.siblings(&primary);
        return Ok(Route { primary, fallbacks });
    }
    let routing = env.daemon().routing();
    let mut chain = chain(providers, &routing, category)?;
    if let Some(kept) = kept.and_then(|model| providers.resolve(model).ok()) {
        // First, and not reordered: the conversation's model answers while it can.
        chain.retain(|r| r.model != kept.model);
        let mut siblings = providers.siblings(&kept);
        siblings.append(&mut chain);
        let mut fallbacks = siblings;
        fallbacks.truncate(routing.fallback_attempts_max as usize);
        return Ok(Route {
            primary: kept,
            fallbacks,
        });
    }
    Ok(order(chain, env.now(), routing.fallback_attempts_max))
}

/// Every model `auto` may use for `category`, first the category's own, deduplicated.
fn chain(
    providers: &Providers,
    routing: &Routing,
    category: Category,
) -> Result<Vec<Resolved>, CallError> {
    let (first, configured) = match category {
        Category::Fast => (&routing.fast_model, &routing.fallback_fast),
        Category::Quality => (&routing.quality_model, &routing.fallback_quality),
    };
    let mut chain = vec![providers.resolve(first.as_deref().unwrap_or("auto"))?];
    let others: Vec<String> = if configured.is_empty() {
        providers
            .entries()
            .iter()
            .filter(|e| {
                e.provider.is_configured() && e.provider.name() != crate::provider::offline::NAME
            })
            .map(|e| e.provider.default_model().to_string())
            .collect()
    } else {
        configured.clone()
    };
    for model in others {
        // A configured fallback that no configured provider serves is left out (its
        // provider may simply have no key here).
        if let Ok(resolved) = providers.resolve(&model)
            && !chain.iter().any(|r| r.model == resolved.model)
        {
            chain.push(resolved);
        }
    }
    // Each model's other keys come right after it.
    let mut with_keys = Vec::with_capacity(chain.len());
    for resolved in chain {
        let siblings = providers.siblings(&resolved);
        with_keys.push(resolved);
        with_keys.extend(siblings);
    }
    Ok(with_keys)
}

/// The chain with a provider that is free now first: not cooling down, and with a free
/// permit. The rest keep their order; at most `moves_max` fallbacks.
fn order(mut chain: Vec<Resolved>, now: Instant, moves_max: u32) -> Route {
    assert!(!chain.is_empty());
    let free = |r: &Resolved| {
        let limit = r.entry.limit.snapshot();
        r.entry.cooldown.active_until(now).is_none() && limit.permits_in_use < limit.permits_max
    };
    if !free(&chain[0])
        && let Some(at) = chain.iter().position(free)
    {
        let preferred = chain.remove(at);
        chain.insert(0, preferred);
    }
    let primary = chain.remove(0);
    chain.truncate(moves_max as usize);
    Route {
        primary,
        fallbacks: chain,
    }
}

/// An answer, and the models left on the way to it.
pub struct Answered {
    /// The answer.
    pub response: ChatResponse,
    /// Tool rounds it took (1 without web search).
    pub rounds: u32,
    /// `[{provider, model, reason}]` for each model left; empty when the first answered.
    pub fallback: Vec<Value>,
}

impl Answered {
    /// `metadata.fallback`, when the call moved.
    pub fn metadata(&self) -> Option<Value> {
        (!self.fallback.is_empty()).then(|| json!(self.fallback))
    }
}

/// Ask the call's provider; when it cannot answer in a way another provider may not share
/// (`CallError::failover`), move to the next model of `fallbacks` and ask again, all inside
/// the call's one deadline. Web search (`rounds_max`) and thinking are kept only where the
/// new model's facts allow them.
pub async fn complete(
    ctx: &mut ToolCtx,
    mut request: ChatRequest,
    rounds_max: u32,
    fallbacks: &[Resolved],
) -> Result<Answered, CallError> {
    let mut left = Vec::new();
    let mut next = fallbacks.iter();
    loop {
        let handle = ctx.provider();
        request.model = handle.model().to_string();
        let result = if request.web_search {
            handle
                .complete_with_tool_rounds(request.clone(), rounds_max)
                .await
        } else {
            handle.complete(request.clone()).await.map(|r| (r, 1))
        };
        let error = match result {
            Ok((response, rounds)) => {
                return Ok(Answered {
                    response,
                    rounds,
                    fallback: left,
                });
            }
            Err(error) if error.failover => error,
            Err(error) => return Err(error),
        };
        let Some(target) = next.next() else {
            return Err(error);
        };
        let (provider, model) = (
            handle.provider_name().to_string(),
            handle.model().to_string(),
        );
        ctx.say(format!(
            "{provider} cannot answer ({}); trying {}",
            error.message, target.model
        ));
        tracing::info!(request_id = %ctx.request_id(), from = %model, to = %target.model, reason = %error.message, "failing over");
        left.push(json!({"provider": provider, "model": model, "reason": error.message}));
        let facts = ctx.daemon().providers().model_table().facts(&target.model);
        request.web_search &= facts.web_search;
        if !facts.thinking {
            request.thinking = None;
        }
        request.tool_turns.clear();
        ctx.switch_to(target).await?;
    }
}
