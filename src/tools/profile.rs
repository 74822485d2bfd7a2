//! Tool profiles: which built-in tools a daemon lists and serves.
//!
//! Why: every tool's description and schema costs the client's model context, so the
//! original let an operator trim the list (`TOOL_PROFILE`, `ENABLED_TOOLS`, `DISABLED_TOOLS`)
//! and kept the same names; an existing EXAI `.env` therefore works unchanged. The rules, in
//! order, as in the original:
//! 1. `ENABLED_TOOLS` (a comma list), if set, is exactly the base set; else `TOOL_PROFILE`'s;
//! 2. `version` and `listmodels` are always on (diagnostics must stay reachable);
//! 3. `DISABLED_TOOLS` removes tools (never `version` or `listmodels`).
//!
//! Names are checked at start-up by the configuration (an unknown name stops the daemon,
//! naming it), so a typo never silently hides or exposes a tool.

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

/// The built-in tools to serve, by the rules in the module doc. Names not in
/// [`BUILTIN_TOOL_NAMES`] are ignored here (configuration refuses them before).
pub fn selected(
    profile: Profile,
    enabled: &[String],
    disabled: &[String],
) -> BTreeSet<&'static str> {
    let mut active: BTreeSet<&'static str> = if enabled.is_empty() {
        profile.members()
    } else {
        BUILTIN_TOOL_NAMES
            .iter()
            .copied()
            .filter(|name| enabled.iter().any(|e| e == name))
            .collect()
    };
    active.extend(ALWAYS_ON);
    active.retain(|name| ALWAYS_ON.contains(name) || !disabled.iter().any(|d| d == name));
    active
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn profiles_nest_and_always_on_stays_on() {
        let lean = selected(Profile::Lean, &[], &[]);
        let standard = selected(Profile::Standard, &[], &[]);
        let full = selected(Profile::Full, &[], &[]);
        assert!(lean.is_subset(&standard) && standard.is_subset(&full));
        assert!(!lean.contains("secaudit") && standard.contains("secaudit"));
        assert!(!standard.contains("challenge") && full.contains("challenge"));
        assert_eq!(full.len(), BUILTIN_TOOL_NAMES.len());
        for set in [&lean, &standard, &full] {
            assert!(set.contains("version") && set.contains("listmodels"));
        }
        let only = selected(Profile::Lean, &names(&["debug"]), &names(&["version"]));
        assert_eq!(
            only.into_iter().collect::<Vec<_>>(),
            ["debug", "listmodels", "version"]
        );
        let without = selected(Profile::Full, &[], &names(&["chat", "consensus"]));
        assert!(!without.contains("chat") && !without.contains("consensus"));
        let sorted: Vec<&str> = {
            let mut v = BUILTIN_TOOL_NAMES.to_vec();
            v.sort_unstable();
            v
        };
        assert_eq!(sorted, BUILTIN_TOOL_NAMES);
    }
}
