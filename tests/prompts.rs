//! Every system prompt exaid sends, pinned: `chat`'s default, each consultation of
//! `consensus`, and each workflow expert's (`src/tools/prompts/`). A change to a prompt shows
//! here as a diff, and each stays within the size the tools are written for.

use exaid::tools::chat::CHAT_PROMPT;
use exaid::tools::consensus::CONSENSUS_PROMPT;
use exaid::tools::investigate::{
    ANALYZE, CODEREVIEW, DEBUG, PRECOMMIT, REFACTOR, SECAUDIT, TESTGEN, THINKDEEP,
};

/// Smallest and largest prompt, in bytes: enough to say what the expert receives, the
/// evidence rule and the output contract; small enough to leave the window to the code.
const PROMPT_BYTES: std::ops::RangeInclusive<usize> = 1_500..=5_000;

fn prompts() -> Vec<(&'static str, &'static str)> {
    let mut all = vec![("chat", CHAT_PROMPT), ("consensus", CONSENSUS_PROMPT)];
    for spec in [
        &ANALYZE,
        &CODEREVIEW,
        &DEBUG,
        &PRECOMMIT,
        &REFACTOR,
        &SECAUDIT,
        &TESTGEN,
        &THINKDEEP,
    ] {
        all.push((
            spec.name,
            spec.expert_prompt.expect("an expert tool has a prompt"),
        ));
    }
    all
}

#[test]
fn every_prompt_is_pinned_and_sized() {
    for (tool, prompt) in prompts() {
        assert!(
            PROMPT_BYTES.contains(&prompt.len()),
            "{tool}'s prompt is {} bytes, outside {PROMPT_BYTES:?}",
            prompt.len()
        );
        insta::with_settings!({
            snapshot_path => "../snapshots",
            prepend_module_to_snapshot => false,
            omit_expression => true,
        }, {
            insta::assert_snapshot!(format!("prompt_{tool}"), prompt);
        });
    }
}

#[test]
fn every_expert_prompt_states_the_contract() {
    for (tool, prompt) in prompts().into_iter().skip(2) {
        for needed in [
            "\"status\"",
            "analysis_complete",
            "files_required_to_continue",
            "files_needed",
            "mandatory_instructions",
            "BEGIN FILE",
            "path:line",
        ] {
            assert!(prompt.contains(needed), "{tool}'s prompt lacks {needed}");
        }
    }
}
