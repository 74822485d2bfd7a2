//! What a simulated client checks in the answers it gets: an expert's answer against the
//! steps it was given and the files it named, refusals covered by name, and after a crash
//! whether a conversation lost only what the disk had not committed (invariant 16).

use exaid::rt::store::RecordKind;
use serde_json::Value;

use super::{CallSpec, ClientSpec, ClientState, Expect, continuation_of};
use crate::journal::{Invariant, now_ms};

/// Invariant 16, a refused `continuation_id`: after a crash, allowed only if the simulated
/// disk had not committed the conversation when the daemon died.
pub(super) fn conversation_refused(
    spec: &ClientSpec,
    call: &CallSpec,
    state: &ClientState,
    journal: &mut crate::journal::Journal,
) {
    let (Some(store), Some((id, got_at_ms))) = (&state.store, continuation_of(call, state)) else {
        return;
    };
    match store.last_crash(RecordKind::Conversation, id) {
        Some((crash_ms, Some(_))) if crash_ms >= got_at_ms => journal.violate(
            Invariant::ConversationsSurviveRestart,
            format!(
                "{}'s conversation {id} was committed when the daemon died at {crash_ms} ms, but the restarted daemon refused {}",
                spec.name, call.request_id
            ),
        ),
        Some((crash_ms, None)) if crash_ms >= got_at_ms => {
            journal.cover("uncommitted_conversation_refused");
        }
        _ => {}
    }
}

/// Invariant 16, an answer that lacks earlier turns: after a crash, only the turns the
/// simulated disk had not committed when the daemon died may be gone. Returns whether every
/// missing marker is such an uncommitted turn (then the answer is right).
pub(super) fn lost_only_uncommitted(
    spec: &ClientSpec,
    call: &CallSpec,
    missing: &[&String],
    state: &ClientState,
    journal: &mut crate::journal::Journal,
) -> bool {
    let (Some(store), Some((id, got_at_ms))) = (&state.store, continuation_of(call, state)) else {
        return false;
    };
    let Some((crash_ms, body)) = store.last_crash(RecordKind::Conversation, id) else {
        return false;
    };
    if crash_ms < got_at_ms {
        return false;
    }
    let body = body.unwrap_or_default();
    let committed: Vec<&&String> = missing
        .iter()
        .filter(|m| body.contains(m.as_str()))
        .collect();
    if committed.is_empty() {
        journal.cover("uncommitted_turns_lost");
        return true;
    }
    journal.violate(
        Invariant::ConversationsSurviveRestart,
        format!(
            "{}'s {} lacks turns {committed:?} of conversation {id}, committed when the daemon died at {crash_ms} ms",
            spec.name, call.request_id
        ),
    );
    true
}

/// An expert's answer as the simulated provider shaped it (`provider::structure`): a parsed
/// object carries the call's own marker in its summary; a parse failure is returned only for
/// text that holds no complete object; a cut answer is marked.
pub(super) fn check_expert(
    call: &CallSpec,
    analysis: &Value,
    metadata: &Value,
    journal: &mut crate::journal::Journal,
) -> Result<(), String> {
    let raw = analysis["raw_analysis"].as_str().unwrap_or("");
    let own = match &call.expect {
        Expect::Answer(markers) => markers.last().cloned().unwrap_or_default(),
        _ => String::new(),
    };
    if let Some(parsed) = analysis.get("parsed") {
        let summary = parsed["summary"].as_str().unwrap_or("");
        if !summary.contains(&own) || parsed["status"] != analysis["status"] {
            return Err(format!("its parsed analysis lost the answer: {analysis}"));
        }
        journal.cover(if raw.starts_with("Here is") {
            "expert_fenced_json_parsed"
        } else {
            "expert_json_parsed"
        });
    } else if analysis.get("parse_error").is_some() {
        if serde_json::from_str::<Value>(raw).is_ok_and(|v| v.get("status").is_some()) {
            return Err(format!("a whole JSON answer was not parsed: {analysis}"));
        }
        journal.cover("expert_parse_error_returned");
    } else {
        return Err(format!(
            "an analysis neither parsed nor refused: {analysis}"
        ));
    }
    if metadata["truncated"] == true {
        journal.cover("answer_truncated_marked");
    }
    Ok(())
}

/// Coverage of the refusals the files-and-search scenario must reach.
pub(super) fn cover_refusal(message: &str, journal: &mut crate::journal::Journal) {
    if message.contains("while it was read") {
        journal.cover("file_changed_mid_call_refused");
    }
    if message.contains("outside the allowed roots") {
        journal.cover("file_outside_roots_refused");
    }
    if message.contains(exaid::config::key::EXAI_TOOL_ROUNDS_MAX) {
        journal.cover("tool_rounds_exhausted");
    }
    if message.contains("rate budget") {
        journal.cover("budget_refused");
    }
}

/// Check an ok answer against what its call expects; remember a workflow's
/// `continuation_id`.
pub(super) fn check_answer(
    spec: &ClientSpec,
    call: &CallSpec,
    text: &str,
    state: &mut ClientState,
    journal: &mut crate::journal::Journal,
) {
    let output: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let content = output["content"].as_str().unwrap_or("");
    let status = output["status"].as_str().unwrap_or("");
    let mut wrong = |why: String| {
        journal.violate(
            Invariant::ExactlyOnce,
            format!(
                "{} got a wrong answer for {}: {why}",
                spec.name, call.request_id
            ),
        );
    };
    match &call.expect {
        Expect::Local => {
            if output["content_type"] != "json" {
                wrong(format!("expected a JSON document: {text}"));
            }
        }
        Expect::Pause(expected) => {
            if status != expected {
                wrong(format!("expected status {expected}: {text}"));
            } else {
                journal.cover("workflow_paused");
            }
        }
        Expect::Answer(markers) => {
            let missing: Vec<&String> = markers.iter().filter(|m| !content.contains(*m)).collect();
            // Earlier steps may be gone only if the answer says history was dropped; the
            // answered call's own marker is always there.
            let own_missing = markers.last().is_some_and(|own| missing.contains(&own));
            let announced = output
                .get("history_truncated")
                .is_some_and(Value::is_string);
            let lost_in_crash = !own_missing
                && !missing.is_empty()
                && !announced
                && lost_only_uncommitted(spec, call, &missing, state, journal);
            let mut wrong = |why: String| {
                journal.violate(
                    Invariant::ExactlyOnce,
                    format!(
                        "{} got a wrong answer for {}: {why}",
                        spec.name, call.request_id
                    ),
                );
            };
            if own_missing || (!missing.is_empty() && !announced && !lost_in_crash) {
                wrong(format!("its content lacks {missing:?}: {text}"));
            } else if !missing.is_empty() {
                if announced {
                    journal.cover("history_truncated_announced");
                }
            } else if markers.len() > 1 {
                journal.cover("workflow_completed");
            }
            if call.tool == "consensus" {
                journal.cover("consensus_answered");
            }
        }
    }
    let analysis = output
        .get("expert_analysis")
        .filter(|a| a.get("raw_analysis").is_some());
    if let Some(Err(why)) = analysis.map(|a| check_expert(call, a, &output["metadata"], journal)) {
        let detail = format!(
            "{} got a wrong answer for {}: {why}",
            spec.name, call.request_id
        );
        journal.violate(Invariant::ExactlyOnce, detail);
    }
    let metadata = &output["metadata"];
    if metadata["files"]["skipped"]
        .as_array()
        .is_some_and(|s| !s.is_empty())
    {
        journal.cover("file_skipped_named");
    }
    if metadata["fallback"]
        .as_array()
        .is_some_and(|f| !f.is_empty())
    {
        journal.cover("failed_over");
    } else if call.must_answer && metadata["provider_used"] == "glm" {
        journal.cover("routed_to_free_provider");
    }
    if metadata["web_search"]["sources"]
        .as_array()
        .is_some_and(|s| !s.is_empty())
    {
        journal.cover("web_search_sources");
    }
    if let Some(id) = output["continuation_offer"]["continuation_id"].as_str() {
        state
            .continuations
            .insert(call.request_id.clone(), id.to_string());
        state
            .continuation_at
            .insert(call.request_id.clone(), now_ms());
    }
}
