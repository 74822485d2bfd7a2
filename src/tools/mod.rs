//! Tools: what a `call_tool` can name, with their schemas, validation and execution.
//!
//! A tool is prepared in two steps. `prepare` runs on the connection's reader: it validates
//! the arguments against the tool's schema and resolves the model to a provider, so a bad
//! call is refused at once and admission knows which provider limit to take. The returned
//! [`Prepared::run`] then runs in the call's own task, under its deadline and permits.

pub mod challenge;
pub mod chat;
pub mod consensus;
pub mod info;
pub mod investigate;
pub mod output;
pub mod planner;
pub mod profile;
pub mod schema;
pub mod workflow;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::call::CallCtx;
use crate::error::{CallError, ErrorCode};
use crate::protocol::reply::ToolInfo;
use crate::provider::Resolved;
use crate::rt::BoxFuture;
use crate::state::Shared;

/// Which deadline a tool runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolKind {
    /// One provider round trip or less: `SIMPLE_TOOL_TIMEOUT_SECS`.
    Simple,
    /// Expert analysis over many steps: `WORKFLOW_TOOL_TIMEOUT_SECS`.
    Workflow,
}

/// The body of a prepared call: runs once, in the call's task.
pub type RunFn = Box<dyn FnOnce(CallCtx) -> BoxFuture<'static, Result<String, CallError>> + Send>;

/// A validated call, ready for admission.
pub struct Prepared {
    /// The provider and model the call will use; `None` for local tools, which need no
    /// permits (`version`, `status`...).
    pub provider: Option<Resolved>,
    /// The work.
    pub run: RunFn,
}

/// One tool.
pub trait Tool: Send + Sync + 'static {
    /// Canonical name.
    fn name(&self) -> &'static str;
    /// One paragraph for the model choosing tools.
    fn description(&self) -> &'static str;
    /// Simple or workflow (which deadline applies).
    fn kind(&self) -> ToolKind;
    /// JSON Schema of the arguments, generated from the argument type.
    fn input_schema(&self) -> &Value;
    /// Validate and plan a call.
    fn prepare(
        &self,
        arguments: Map<String, Value>,
        shared: &Arc<Shared>,
    ) -> Result<Prepared, CallError>;
}

/// The schema of an argument type, as JSON.
pub fn schema_of<T: schemars::JsonSchema>() -> Value {
    schemars::schema_for!(T).to_value()
}

/// Check `arguments` against `schema`, then decode them into `T`. Errors are
/// `VALIDATION_ERROR` and name the field.
pub fn parse_arguments<T: DeserializeOwned>(
    tool: &str,
    schema: &Value,
    arguments: Map<String, Value>,
) -> Result<T, CallError> {
    let value = Value::Object(arguments);
    if let Err(violation) = schema::validate(schema, &value) {
        return Err(CallError::new(
            ErrorCode::ValidationError,
            format!("{tool}: argument {} {}", violation.path, violation.message),
        )
        .with_details(serde_json::json!({ "field": violation.path })));
    }
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        CallError::new(
            ErrorCode::ValidationError,
            format!("{tool}: argument {path}: {}", err.inner()),
        )
        .with_details(serde_json::json!({ "field": path }))
    })
}

/// Suffixes the original daemon's clients append to tool names (`chat_EXAI-WS`); accepted
/// and ignored so existing setups keep working.
const NAME_SUFFIXES: [&str; 2] = ["_exai-ws", "-exai-ws"];

/// The enabled tools, by name.
pub struct ToolRegistry {
    /// Tools by canonical name; a `BTreeMap` so `list_tools` has a stable order.
    tools: BTreeMap<&'static str, Arc<dyn Tool>>,
}

impl ToolRegistry {
    /// A registry of `tools`.
    pub fn new(tools: Vec<Arc<dyn Tool>>) -> ToolRegistry {
        let mut by_name = BTreeMap::new();
        for tool in tools {
            let previous = by_name.insert(tool.name(), tool);
            assert!(previous.is_none(), "two tools share a name");
        }
        ToolRegistry { tools: by_name }
    }

    /// The built-in tool set (every name in [`profile::BUILTIN_TOOL_NAMES`]); the profile
    /// decides which of them a daemon serves.
    pub fn builtin_tools() -> Vec<Arc<dyn Tool>> {
        let mut tools: Vec<Arc<dyn Tool>> = vec![
            Arc::new(chat::Chat::new()),
            Arc::new(challenge::Challenge::new()),
            Arc::new(consensus::Consensus::new()),
            planner::tool(),
            Arc::new(info::Version::new()),
            Arc::new(info::ListModels::new()),
            Arc::new(info::Status::new()),
        ];
        tools.extend(investigate::tools());
        tools
    }

    /// A tool name as clients may send it, reduced to its canonical form: lower case, the
    /// original's suffixes removed.
    pub fn canonical(name: &str) -> String {
        let mut base = name.to_ascii_lowercase();
        for suffix in NAME_SUFFIXES {
            if let Some(stripped) = base.strip_suffix(suffix) {
                base = stripped.to_string();
            }
        }
        base
    }

    /// Find a tool by name, case-insensitively, ignoring the original's suffixes.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.get(Self::canonical(name).as_str())
    }

    /// The kind of an enabled tool (which deadline its calls get).
    pub fn kind_of(&self, name: &str) -> Option<ToolKind> {
        self.get(name).map(|tool| tool.kind())
    }

    /// What `list_tools` shows.
    pub fn infos(&self) -> Vec<ToolInfo> {
        self.tools
            .values()
            .map(|tool| ToolInfo {
                name: tool.name().to_string(),
                description: tool.description().to_string(),
                input_schema: tool.input_schema().clone(),
            })
            .collect()
    }

    /// Names of every tool, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.tools.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_tools_match_the_profile_names_and_kinds() {
        let registry = ToolRegistry::new(ToolRegistry::builtin_tools());
        assert_eq!(registry.names(), profile::BUILTIN_TOOL_NAMES);
        let simple = ["challenge", "chat", "listmodels", "status", "version"];
        for name in registry.names() {
            let expected = if simple.contains(&name) {
                ToolKind::Simple
            } else {
                ToolKind::Workflow
            };
            assert_eq!(registry.kind_of(name), Some(expected), "{name}");
            let tool = registry.get(name).unwrap();
            assert_eq!(tool.input_schema()["type"], "object", "{name}");
        }
        let debug = registry.get("debug_EXAI-WS").unwrap().input_schema();
        let required: Vec<&str> = debug["required"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for field in [
            "step",
            "step_number",
            "total_steps",
            "next_step_required",
            "findings",
        ] {
            assert!(required.contains(&field), "{required:?}");
        }
        assert!(debug["properties"]["hypothesis"].is_object());
        let review = registry.get("codereview").unwrap().input_schema();
        assert!(review["properties"]["review_type"].is_object(), "{review}");
        let planner = registry.get("planner").unwrap().input_schema();
        assert!(planner["properties"].get("findings").is_none());
        assert!(planner["properties"]["branch_id"].is_object());
    }
}
