//! The enabled tools, by name: what `list_tools` shows and what a `call_tool` can name.
//!
//! Why a `BTreeMap` of canonical names: `list_tools` has a stable order, and the names
//! clients of the original send (any case, `_EXAI-WS` suffixes) find the same tool.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::protocol::reply::{ToolHints, ToolInfo};
use crate::tools::challenge::Challenge;
use crate::tools::chat::Chat;
use crate::tools::consensus::Consensus;
use crate::tools::info::{ListModels, Status, Version};
use crate::tools::investigate;
use crate::tools::planner;
use crate::tools::tool::{DynTool, ToolKind, register};

/// Suffixes the original daemon's clients append to tool names (`chat_EXAI-WS`); accepted
/// and ignored so existing setups keep working.
const NAME_SUFFIXES: [&str; 2] = ["_exai-ws", "-exai-ws"];

/// The enabled tools, by name.
pub struct ToolRegistry {
    /// Tools by canonical name; a `BTreeMap` so `list_tools` has a stable order.
    tools: BTreeMap<&'static str, Arc<dyn DynTool>>,
}

impl ToolRegistry {
    /// A registry of `tools`.
    pub fn new(tools: Vec<Arc<dyn DynTool>>) -> ToolRegistry {
        let mut by_name = BTreeMap::new();
        for tool in tools {
            let previous = by_name.insert(tool.name(), tool);
            assert!(previous.is_none(), "two tools share a name");
        }
        ToolRegistry { tools: by_name }
    }

    /// The built-in tool set (every name in `profile::BUILTIN_TOOL_NAMES`); the profile
    /// decides which of them a daemon serves.
    pub fn builtin_tools() -> Vec<Arc<dyn DynTool>> {
        let mut tools = vec![
            register(Chat),
            register(Challenge),
            register(Consensus),
            planner::tool(),
            register(Version),
            register(ListModels),
            register(Status),
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
    pub fn get(&self, name: &str) -> Option<&Arc<dyn DynTool>> {
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
                title: Some(tool.title().to_string()),
                annotations: Some(ToolHints {
                    read_only_hint: true,
                    open_world_hint: tool.asks_a_model(),
                }),
                output_schema: Some(crate::tools::output::schema()),
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
    use serde_json::Value;

    use super::*;
    use crate::tools::profile;

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
        // The planner has no findings: the original's is accepted, shown as unused.
        let findings = planner["properties"]["findings"]["description"].as_str();
        assert!(findings.unwrap().contains("not used yet"), "{planner}");
        assert!(
            !planner["required"]
                .as_array()
                .unwrap()
                .contains(&"findings".into())
        );
        assert!(planner["properties"]["branch_id"].is_object());
    }

    #[test]
    fn shared_step_fields_keep_each_tool_s_required_list_and_wording() {
        let registry = ToolRegistry::new(ToolRegistry::builtin_tools());
        let schema = |name: &str| registry.get(name).unwrap().input_schema().clone();
        let step = ["step", "step_number", "total_steps", "next_step_required"];
        let with_findings = [&step[..], &["findings"]].concat();
        for (name, required) in [
            ("debug", &with_findings[..]),
            ("tracer", &with_findings[..]),
            ("consensus", &with_findings[..]),
            ("planner", &step[..]),
        ] {
            let schema = schema(name);
            assert_eq!(schema["required"], serde_json::json!(required), "{name}");
            for field in step.iter().chain(["continuation_id"].iter()) {
                assert!(schema["properties"][field].is_object(), "{name}.{field}");
            }
        }
        let described = |name: &str, field: &str| {
            schema(name)["properties"][field]["description"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(described("consensus", "total_steps"), "Steps in all.");
        assert_eq!(
            described("planner", "total_steps"),
            "Estimated steps in all (may change as the plan evolves)."
        );
        assert!(described("debug", "total_steps").contains("at least `step_number`"));
        assert!(described("debug", "continuation_id").contains("started by another tool"));
        assert!(!described("planner", "continuation_id").contains("another tool"));
        assert_eq!(
            described("consensus", "next_step_required"),
            "False on the step that consults the models."
        );
        assert_eq!(
            schema("debug")["description"],
            "Arguments of one debug step."
        );
        assert_eq!(schema("debug")["title"], "InvestigationArgs");
    }

    /// One row of the README's "Arguments of the original" table, as the code says it.
    fn readme_row(name: &str, tool: &dyn DynTool) -> String {
        let unused = crate::tools::ignored::of(name);
        let mut implemented: Vec<&str> = tool.input_schema()["properties"]
            .as_object()
            .map(|p| p.keys().map(String::as_str).collect())
            .unwrap_or_default();
        implemented.retain(|arg| !unused.iter().any(|entry| entry.name == *arg));
        implemented.sort();
        let mut ignored: Vec<&str> = unused.iter().map(|entry| entry.name).collect();
        ignored.sort();
        let quote = |names: &[&str]| {
            if names.is_empty() {
                "none".to_string()
            } else {
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        format!(
            "| `{name}` | {} | {} |",
            quote(&implemented),
            quote(&ignored)
        )
    }

    #[test]
    fn the_readme_lists_each_tool_s_arguments_as_the_code_does() {
        let readme = include_str!("../../README.md");
        let registry = ToolRegistry::new(ToolRegistry::builtin_tools());
        let expected: Vec<String> = registry
            .names()
            .into_iter()
            .map(|name| readme_row(name, registry.get(name).unwrap().as_ref()))
            .collect();
        let missing: Vec<&String> = expected
            .iter()
            .filter(|row| !readme.lines().any(|line| line == row.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "README.md's \"Arguments of the original\" table lacks these rows (or has them \
             otherwise):\n{}",
            missing
                .iter()
                .map(|row| row.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
