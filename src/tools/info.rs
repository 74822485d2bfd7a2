//! Local tools that answer from the daemon itself, with no provider and no permits:
//! `version`, `listmodels`, `status`.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::CallError;
use crate::tools::context::PlanEnv;
use crate::tools::output::{ContentType, ToolOutput};
use crate::tools::tool::{Plan, Tool, ToolKind};

/// Arguments of the local tools: none.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct NoArgs {}

/// The tool output around a JSON document: `content_type` "json", `content` the document.
fn envelope(tool: &str, value: &Value) -> String {
    let document = serde_json::to_string_pretty(value).expect("JSON values always serialize");
    ToolOutput::new(tool, "success", document, ContentType::Json).render()
}

/// `version`: exaid's version, protocol and configured providers.
pub struct Version;

/// `listmodels`: every provider, its models and their facts (context window, vision, web
/// search, thinking, and whether the facts are built in, configured or the default), and
/// whether it is configured.
pub struct ListModels;

/// `status`: the daemon's health snapshot: limits, permits, sessions.
pub struct Status;

impl Tool for Version {
    type Args = NoArgs;
    const NAME: &'static str = "version";
    const DESCRIPTION: &'static str = "Show exaid's version, protocol version and providers.";
    const KIND: ToolKind = ToolKind::Simple;
    const TITLE: &'static str = "exaid version";
    const ASKS_A_MODEL: bool = false;

    fn plan(&self, _args: NoArgs, env: &PlanEnv<'_>) -> Result<Plan, CallError> {
        let providers = env.providers();
        let listed: Vec<Value> = providers
            .entries()
            .iter()
            .map(|e| json!({ "name": e.provider.name(), "configured": e.provider.is_configured() }))
            .collect();
        let daemon = env.daemon();
        Ok(Plan::answer(envelope(
            Self::NAME,
            &json!({
                "name": "exaid",
                "version": env!("CARGO_PKG_VERSION"),
                "protocol": 1,
                "default_provider": providers.default_entry().provider.name(),
                "providers": listed,
                "tool_profile": daemon.tool_profile(),
                "tools": daemon.tool_names(),
            }),
        )))
    }
}

impl Tool for ListModels {
    type Args = NoArgs;
    const NAME: &'static str = "listmodels";
    const DESCRIPTION: &'static str = "List every provider, its models with their context window and whether they take images, search the web and think, whether it is configured, and what `auto` picks.";
    const KIND: ToolKind = ToolKind::Simple;
    const TITLE: &'static str = "List models";
    const ASKS_A_MODEL: bool = false;

    fn plan(&self, _args: NoArgs, env: &PlanEnv<'_>) -> Result<Plan, CallError> {
        let providers = env.providers();
        let default = providers.default_entry();
        let table = providers.model_table();
        let facts_of = |model: &String| {
            let (facts, source) = table.lookup(model);
            json!({
                "model": model,
                "context_tokens": facts.context_tokens,
                "vision": facts.vision,
                "web_search": facts.web_search,
                "thinking": facts.thinking,
                "facts": source,
            })
        };
        let listed: Vec<Value> = providers
            .entries()
            .iter()
            .map(|e| {
                json!({
                    "provider": e.provider.name(),
                    "configured": e.provider.is_configured(),
                    "models": e.provider.models(),
                    "model_facts": e.provider.models().iter().map(facts_of).collect::<Vec<Value>>(),
                    "default_model": e.provider.default_model(),
                    "max_inflight": e.limit.permits_max(),
                })
            })
            .collect();
        let routed = |category| {
            let route = crate::tools::route::plan(env, None, category, None)?;
            let chain: Vec<&str> = route.fallbacks.iter().map(|r| r.model.as_str()).collect();
            Ok::<Value, CallError>(json!({
                "provider": route.primary.entry.provider.name(),
                "model": route.primary.model,
                "fallbacks": chain,
            }))
        };
        use crate::tools::route::Category;
        Ok(Plan::answer(envelope(
            Self::NAME,
            &json!({
                "auto": { "provider": default.provider.name(), "model": default.provider.default_model() },
                "auto_by_task": {
                    "fast": routed(Category::Fast)?,
                    "quality": routed(Category::Quality)?,
                    "fast_tools": ["chat"],
                    "quality_tools": "the expert analysis of every workflow tool (thinkdeep, secaudit and the final steps of the others)",
                },
                "providers": listed,
            }),
        )))
    }
}

impl Tool for Status {
    type Args = NoArgs;
    const NAME: &'static str = "status";
    const DESCRIPTION: &'static str =
        "Show the daemon's health: limits, permits in use against live holders, waiters, sessions.";
    const KIND: ToolKind = ToolKind::Simple;
    const TITLE: &'static str = "Daemon status";
    const ASKS_A_MODEL: bool = false;

    fn plan(&self, _args: NoArgs, _env: &PlanEnv<'_>) -> Result<Plan, CallError> {
        // The snapshot is taken when the call runs, not when it is accepted.
        Ok(Plan::work(None, |ctx| async move {
            Ok(envelope("status", &ctx.daemon().health()))
        }))
    }
}
