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
//! naming it), so a typo never silently hides or exposes a tool. The profiles and tool names
//! themselves live in `config::profile`, below configuration, and are re-exported here.

use std::collections::BTreeSet;

pub use crate::config::profile::{ALWAYS_ON, BUILTIN_TOOL_NAMES, PROFILE_NAMES, Profile};

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
