//! Tool profiles as configuration sees them: the profile names, the built-in tool names and
//! which tools each profile holds.
//!
//! Why here: configuration validates `TOOL_PROFILE`, `ENABLED_TOOLS` and `DISABLED_TOOLS`
//! against these lists, and configuration sits at the bottom of the import graph, so the
//! lists live with it (a leaf that imports nothing of the crate). `tools::profile` re-exports
//! them and applies them to the registry.

use std::collections::BTreeSet;

/// Every built-in tool, sorted. Configuration checks tool names against this list; a test
/// checks it equals the registry's built-in set.
pub const BUILTIN_TOOL_NAMES: &[&str] = &[
    "analyze",
    "challenge",
    "chat",
    "codereview",
    "consensus",
    "debug",
    "docgen",
    "listmodels",
    "planner",
    "precommit",
    "refactor",
    "secaudit",
    "status",
    "testgen",
    "thinkdeep",
    "tracer",
    "version",
];

/// Tools no profile or list can turn off.
pub const ALWAYS_ON: &[&str] = &["listmodels", "version"];

/// `lean`: the everyday tools (the original's "essential" and "core" tiers).
const LEAN: &[&str] = &[
    "analyze",
    "chat",
    "codereview",
    "debug",
    "planner",
    "refactor",
    "status",
    "testgen",
    "thinkdeep",
];

/// What `standard` adds to `lean` (the original's "advanced" tier).
const STANDARD_ADDS: &[&str] = &["consensus", "docgen", "precommit", "secaudit", "tracer"];

/// A named set of tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// chat, status, planner, analyze, codereview, debug, refactor, testgen, thinkdeep
    /// (plus version and listmodels).
    Lean,
    /// `lean` plus consensus, docgen, precommit, secaudit, tracer.
    Standard,
    /// Every tool (`standard` plus challenge). The default, so every tool is listed out of
    /// the box.
    Full,
}

/// The names `TOOL_PROFILE` accepts.
pub const PROFILE_NAMES: &[&str] = &["lean", "standard", "full"];

impl Profile {
    /// The profile named `name` (lower case, as configuration stores it).
    pub fn from_name(name: &str) -> Option<Profile> {
        match name {
            "lean" => Some(Profile::Lean),
            "standard" => Some(Profile::Standard),
            "full" => Some(Profile::Full),
            _ => None,
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Lean => "lean",
            Profile::Standard => "standard",
            Profile::Full => "full",
        }
    }

    /// The tools it holds (before the always-on ones are added).
    pub fn members(self) -> BTreeSet<&'static str> {
        match self {
            Profile::Lean => LEAN.iter().copied().collect(),
            Profile::Standard => LEAN.iter().chain(STANDARD_ADDS).copied().collect(),
            Profile::Full => BUILTIN_TOOL_NAMES.iter().copied().collect(),
        }
    }
}
