//! The original daemon's arguments that exaid accepts and does not use yet, one table per
//! tool, declared here once.
//!
//! Why: nothing a client sends is dropped in silence. An argument a tool knows is either
//! implemented (its `Args` type reads it) or listed here; anything else is a
//! `VALIDATION_ERROR` naming it (`arguments::parse`). An argument listed here is accepted (so
//! clients of the original keep working), shown in the tool's `inputSchema` as not yet used,
//! and named in the result's `metadata.ignored_arguments` whenever a call sends it. When a
//! later change implements one, it moves from here into the tool's `Args` type (the registry
//! refuses a name that is in both unless the table says the `Args` type ignores it).
//! The README's "Arguments of the original" table says the same per tool, and a test holds
//! the two together.

use serde_json::{Value, json};

/// What a client may send for an ignored argument: checked as the original typed it, so a
/// client that sends it is valid and a wrong shape is still refused, naming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A string.
    Text,
    /// A boolean.
    Flag,
    /// An integer.
    Integer,
    /// A number.
    Number,
    /// A list of strings (paths, data URLs).
    Texts,
    /// A list of objects.
    Objects,
}

/// Most items an ignored list argument may hold (the original's own list bound).
pub const ITEMS_MAX: u64 = 1000;

impl Shape {
    /// The JSON Schema of the argument, `null` allowed as the original's optional fields did.
    pub fn schema(self) -> Value {
        let description = "Accepted for compatibility with the original daemon and not used yet \
                           by exaid: a call that sends it names it in metadata.ignored_arguments.";
        let mut schema = match self {
            Shape::Text => json!({"type": ["string", "null"]}),
            Shape::Flag => json!({"type": ["boolean", "null"]}),
            Shape::Integer => json!({"type": ["integer", "null"]}),
            Shape::Number => json!({"type": ["number", "null"]}),
            Shape::Texts => json!({
                "type": ["array", "null"], "items": {"type": "string"}, "maxItems": ITEMS_MAX
            }),
            Shape::Objects => json!({
                "type": ["array", "null"], "items": {"type": "object"}, "maxItems": ITEMS_MAX
            }),
        };
        schema["description"] = json!(description);
        schema
    }
}

/// One accepted, unused argument: its name and shape. `in_args` marks one the tool's `Args`
/// type declares (shared with tools that use it) while this tool does nothing with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ignored {
    /// The argument's name, as the original spelled it.
    pub name: &'static str,
    /// Its shape, for the schema (unused when `in_args`: the `Args` type's schema stands).
    pub shape: Shape,
    /// Whether the tool's `Args` type declares it (and this tool leaves it unused).
    pub in_args: bool,
}

const fn new(name: &'static str, shape: Shape) -> Ignored {
    Ignored {
        name,
        shape,
        in_args: false,
    }
}

const fn in_args(name: &'static str, shape: Shape) -> Ignored {
    Ignored {
        name,
        shape,
        in_args: true,
    }
}

/// `chat`.
pub const CHAT: &[Ignored] = &[
    new("stream", Shape::Flag),
    new("kimi_thinking", Shape::Text),
];

/// `challenge` (it calls no model).
pub const CHALLENGE: &[Ignored] = &[
    new("model", Shape::Text),
    new("temperature", Shape::Number),
    new("thinking_mode", Shape::Text),
    new("use_websearch", Shape::Flag),
    new("continuation_id", Shape::Text),
    new("images", Shape::Texts),
];

/// The investigation tools that end with an expert analysis.
pub const INVESTIGATION: &[Ignored] = &[];

/// `docgen` and `tracer`: they complete locally, so the model choice is unused too.
pub const LOCAL_INVESTIGATION: &[Ignored] = &[
    in_args("images", Shape::Texts),
    in_args("thinking_mode", Shape::Text),
    in_args("use_websearch", Shape::Flag),
    in_args("model", Shape::Text),
    in_args("temperature", Shape::Number),
    in_args("use_assistant_model", Shape::Flag),
];

/// `planner` (it asks no model; the original accepted the workflow fields and excluded them).
pub const PLANNER: &[Ignored] = &[
    in_args("model", Shape::Text),
    new("findings", Shape::Text),
    new("files_checked", Shape::Texts),
    new("relevant_files", Shape::Texts),
    new("relevant_context", Shape::Texts),
    new("issues_found", Shape::Objects),
    new("confidence", Shape::Text),
    new("hypothesis", Shape::Text),
    new("backtrack_from_step", Shape::Integer),
    new("temperature", Shape::Number),
    new("thinking_mode", Shape::Text),
    new("use_websearch", Shape::Flag),
    new("use_assistant_model", Shape::Flag),
    new("images", Shape::Texts),
];

/// `consensus` (the original's internal bookkeeping fields included).
pub const CONSENSUS: &[Ignored] = &[
    new("model", Shape::Text),
    new("current_model_index", Shape::Integer),
    new("model_responses", Shape::Objects),
    new("images", Shape::Texts),
    new("temperature", Shape::Number),
    new("thinking_mode", Shape::Text),
    new("use_websearch", Shape::Flag),
    new("use_assistant_model", Shape::Flag),
    new("files_checked", Shape::Texts),
    new("relevant_context", Shape::Texts),
    new("issues_found", Shape::Objects),
    new("confidence", Shape::Text),
    new("hypothesis", Shape::Text),
    new("backtrack_from_step", Shape::Integer),
];

/// `version` and `listmodels`.
pub const INFO: &[Ignored] = &[new("model", Shape::Text)];

/// `status` (the original's log tail and probes).
pub const STATUS: &[Ignored] = &[
    new("tail_lines", Shape::Integer),
    new("include_tools", Shape::Flag),
    new("doctor", Shape::Flag),
    new("probe", Shape::Flag),
];

/// Every tool's table, by canonical name; a tool not named here ignores nothing.
pub const BY_TOOL: &[(&str, &[Ignored])] = &[
    ("analyze", INVESTIGATION),
    ("challenge", CHALLENGE),
    ("chat", CHAT),
    ("codereview", INVESTIGATION),
    ("consensus", CONSENSUS),
    ("debug", INVESTIGATION),
    ("docgen", LOCAL_INVESTIGATION),
    ("listmodels", INFO),
    ("planner", PLANNER),
    ("precommit", INVESTIGATION),
    ("refactor", INVESTIGATION),
    ("secaudit", INVESTIGATION),
    ("status", STATUS),
    ("testgen", INVESTIGATION),
    ("thinkdeep", INVESTIGATION),
    ("tracer", LOCAL_INVESTIGATION),
    ("version", INFO),
];

/// The table of `tool`.
pub fn of(tool: &str) -> &'static [Ignored] {
    BY_TOOL
        .iter()
        .find(|(name, _)| *name == tool)
        .map_or(&[], |(_, table)| *table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::profile::BUILTIN_TOOL_NAMES;

    #[test]
    fn every_table_is_a_built_in_tool_s_once_with_distinct_names() {
        let tools: Vec<&str> = BY_TOOL.iter().map(|(name, _)| *name).collect();
        let mut sorted = tools.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(tools, sorted, "sorted, each tool once");
        for (tool, table) in BY_TOOL {
            assert!(BUILTIN_TOOL_NAMES.contains(tool), "{tool}");
            let mut names: Vec<&str> = table.iter().map(|entry| entry.name).collect();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), table.len(), "{tool} names an argument twice");
        }
        assert!(of("nonesuch").is_empty());
        assert_eq!(of("chat"), CHAT);
    }
}
