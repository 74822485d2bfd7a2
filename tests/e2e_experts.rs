//! Expert-grade answers, end to end against the OpenAI-compatible mock provider over real
//! HTTP: each tool's own system prompt reaches the provider, the expert's JSON answer comes
//! back parsed (fenced, prefaced or broken), `files_required_to_continue` becomes the
//! result's status, and the original's workflow rules hold: `certain` and nothing to analyse
//! finish locally, a step past `total_steps` raises it, step 1 names what it needs, a pause
//! carries the next call. Also `thinking_mode`, reasoning as progress, and answers cut at the
//! token limit or stopped by a content filter.

mod common;

use std::time::Duration;

use common::mock::{Mock, Reply, completion};
use common::{Client, TestDaemon, start};
use exaid::tools::chat::CHAT_PROMPT;
use exaid::tools::investigate::{ANALYZE, CODEREVIEW};
use serde_json::{Value, json};

/// A daemon with Kimi and GLM both pointed at `mock`, files allowed under `root`.
async fn start_mocked(mock: &Mock, root: &std::path::Path) -> TestDaemon {
    let root = root.to_path_buf();
    start(move |config| {
        config.file_access.roots = vec![root];
        mock.both(config);
    })
    .await
}

/// A project with one source file; its path.
fn project() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().canonicalize().unwrap().join("lib.rs");
    std::fs::write(&file, "pub fn answer() -> u32 {\n    42\n}\n").unwrap();
    (dir, file.display().to_string())
}

/// The tool output of an ok result.
fn output(result: &Value) -> Value {
    assert_eq!(result["ok"], true, "{result}");
    serde_json::from_str(result["text"].as_str().unwrap()).unwrap()
}

/// A one-step final `codereview` of `file`.
fn final_review(file: &str, extra: Value) -> Value {
    let mut step = json!({"step": "Review answer()", "step_number": 1, "total_steps": 1,
                          "next_step_required": false, "findings": "answer is hard-coded",
                          "relevant_files": [file]});
    for (key, value) in extra.as_object().unwrap() {
        step[key] = value.clone();
    }
    step
}

/// A whole completion with this text and finish reason.
fn answer_json(text: &str, finish_reason: &str) -> Reply {
    let mut body = completion(text, "kimi-k2-0905-preview");
    body["choices"][0]["finish_reason"] = json!(finish_reason);
    Reply::Json(body)
}

const REVIEW: &str = r#"{"status": "analysis_complete", "summary": "One real problem.",
  "overall_quality": "needs_work",
  "issues": [{"severity": "medium", "location": "lib.rs:2", "title": "Magic number",
              "why": "42 is unexplained", "fix": "name the constant"}], "positives": []}"#;

#[tokio::test]
async fn the_expert_gets_its_tool_s_prompt_and_its_json_comes_back_parsed() {
    let (_dir, file) = project();
    let mock = Mock::start(vec![
        Reply::Text(format!("Here is the review:\n```json\n{REVIEW}\n```")),
        Reply::Text("Not JSON at all, just prose.".into()),
    ])
    .await;
    let daemon = start_mocked(&mock, std::path::Path::new(&file).parent().unwrap()).await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    client
        .call("e1", "codereview", final_review(&file, json!({})))
        .await;
    let out = output(&client.result("e1").await);
    let body = &mock.arrivals()[0].body;
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(
        body["messages"][0]["content"],
        CODEREVIEW.expert_prompt.unwrap()
    );
    let analysis = &out["expert_analysis"];
    assert_eq!(analysis["status"], "analysis_complete", "{out}");
    assert_eq!(analysis["parsed"]["issues"][0]["location"], "lib.rs:2");
    assert!(
        analysis["raw_analysis"]
            .as_str()
            .unwrap()
            .starts_with("Here is the review")
    );
    assert_eq!(out["status"], "calling_expert_analysis");
    client
        .call("e2", "codereview", final_review(&file, json!({})))
        .await;
    let out = output(&client.result("e2").await);
    let analysis = &out["expert_analysis"];
    assert_eq!(analysis["raw_analysis"], "Not JSON at all, just prose.");
    assert!(
        analysis["parse_error"]
            .as_str()
            .unwrap()
            .contains("no complete JSON"),
        "{out}"
    );
}

#[tokio::test]
async fn an_expert_asking_for_files_makes_that_the_result_s_status() {
    let (_dir, file) = project();
    let wanted = r#"{"status": "files_required_to_continue", "files_needed": ["/src/main.rs"],
                    "mandatory_instructions": "Send main.rs: answer() is called there."}"#;
    let mock = Mock::start(vec![Reply::Text(wanted.into())]).await;
    let daemon = start_mocked(&mock, std::path::Path::new(&file).parent().unwrap()).await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    client
        .call("f1", "codereview", final_review(&file, json!({})))
        .await;
    let out = output(&client.result("f1").await);
    assert_eq!(out["status"], "files_required_to_continue", "{out}");
    assert_eq!(out["files_needed"], json!(["/src/main.rs"]));
    assert!(
        out["mandatory_instructions"]
            .as_str()
            .unwrap()
            .contains("main.rs")
    );
    assert!(
        out["next_steps"]
            .as_str()
            .unwrap()
            .contains("relevant_files")
    );
    assert_eq!(out["codereview_complete"], false);
}

#[tokio::test]
async fn certain_confidence_and_nothing_to_analyse_finish_without_a_provider() {
    let (_dir, file) = project();
    let mock = Mock::start(Vec::new()).await;
    let daemon = start_mocked(&mock, std::path::Path::new(&file).parent().unwrap()).await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    client
        .call(
            "c1",
            "codereview",
            final_review(&file, json!({"confidence": "certain"})),
        )
        .await;
    let out = output(&client.result("c1").await);
    assert_eq!(out["status"], "codereview_complete", "{out}");
    assert_eq!(
        out["expert_analysis"]["status"],
        "skipped_due_to_certain_confidence"
    );
    // refactor also skips at almost_certain.
    let refactor = final_review(&file, json!({"confidence": "almost_certain"}));
    client.call("c2", "refactor", refactor).await;
    let out = output(&client.result("c2").await);
    assert_eq!(
        out["expert_analysis"]["status"],
        "skipped_due_to_certain_confidence"
    );
    // debug with one finding and no files: nothing for an expert.
    let debug = json!({"step": "Why?", "step_number": 1, "total_steps": 1,
                       "next_step_required": false, "findings": "it crashes"});
    client.call("c3", "debug", debug).await;
    let out = output(&client.result("c3").await);
    assert_eq!(
        out["expert_analysis"]["status"], "skipped_nothing_to_analyse",
        "{out}"
    );
    assert!(
        out["next_steps"]
            .as_str()
            .unwrap()
            .contains("nothing for an expert")
    );
    assert!(mock.arrivals().is_empty(), "no provider call, no permits");
    // analyze never skips for confidence.
    let analyze = final_review(&file, json!({"confidence": "certain"}));
    client.call("c4", "analyze", analyze).await;
    let out = output(&client.result("c4").await);
    assert_eq!(out["status"], "calling_expert_analysis", "{out}");
    let body = &mock.arrivals()[0].body;
    assert_eq!(
        body["messages"][0]["content"],
        ANALYZE.expert_prompt.unwrap()
    );
}

#[tokio::test]
async fn steps_past_total_raise_it_step_one_names_its_needs_and_pauses_say_what_next() {
    let (_dir, file) = project();
    let mock = Mock::start(Vec::new()).await;
    let daemon = start_mocked(&mock, std::path::Path::new(&file).parent().unwrap()).await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    let step = |n: u64, total: u64, more: bool| {
        json!({"step": format!("step {n}"), "step_number": n, "total_steps": total,
               "next_step_required": more, "findings": format!("finding {n}"),
               "relevant_files": [file]})
    };
    client.call("s1", "debug", step(1, 1, true)).await;
    let first = output(&client.result("s1").await);
    let id = first["continuation_id"].as_str().unwrap().to_string();
    let next = &first["next_call"];
    assert_eq!(next["tool"], "debug");
    assert_eq!(next["arguments"]["step_number"], 2);
    assert_eq!(next["arguments"]["total_steps"], 2);
    assert_eq!(next["arguments"]["continuation_id"], id.as_str());
    let mut second = step(2, 1, true);
    second["continuation_id"] = json!(id);
    client.call("s2", "debug", second).await;
    let out = output(&client.result("s2").await);
    assert_eq!(out["total_steps"], 2, "{out}");
    assert_eq!(out["total_steps_adjusted"]["from"], 1);
    // Step-1 requirements of the original, each naming its field.
    for (id, tool, field) in [
        ("r1", "codereview", "relevant_files"),
        ("r2", "precommit", "path"),
    ] {
        let bare = json!({"step": "start", "step_number": 1, "total_steps": 2,
                          "next_step_required": true, "findings": "none yet"});
        client.call(id, tool, bare).await;
        let result = client.result(id).await;
        assert_eq!(result["error"]["code"], "VALIDATION_ERROR", "{result}");
        assert_eq!(result["error"]["details"]["field"], field, "{result}");
    }
}

#[tokio::test]
async fn thinking_mode_reaches_glm_and_is_declined_for_kimi_with_a_reason() {
    let mock = Mock::start(vec![
        Reply::Sse(vec![
            (Duration::ZERO, format!("data: {}\n\n", json!({"model": "glm-4.6",
                "choices": [{"index": 0, "delta": {"reasoning_content": "thinking it over"}}]}))),
            (Duration::ZERO, format!("data: {}\n\n", json!({"model": "glm-4.6",
                "choices": [{"index": 0, "delta": {"content": "Forty-two."}, "finish_reason": "stop"}]}))),
            (Duration::ZERO, "data: [DONE]\n\n".to_string()),
        ]),
        Reply::Text("plain".into()),
    ])
    .await;
    let daemon = start_mocked(&mock, &std::env::temp_dir()).await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    let ask = json!({"prompt": "Why 42?", "model": "glm-4.6", "thinking_mode": "high",
                     "use_websearch": false});
    client.call("t1", "chat", ask).await;
    let frames = client.until_result("t1").await;
    let reasoning: Vec<&Value> = frames
        .iter()
        .filter(|f| f["op"] == "progress" && f["phase"] == "reasoning")
        .collect();
    assert_eq!(reasoning.len(), 1, "{frames:?}");
    assert_eq!(reasoning[0]["chunk"], "thinking it over");
    let out = output(frames.last().unwrap());
    assert_eq!(
        out["content"], "Forty-two.",
        "reasoning stays out of the answer"
    );
    assert_eq!(out["metadata"]["thinking"]["applied"], true);
    assert_eq!(
        mock.arrivals()[0].body["thinking"],
        json!({"type": "enabled"})
    );
    let ask = json!({"prompt": "Why?", "model": "kimi-k2-0905-preview", "thinking_mode": "max"});
    client.call("t2", "chat", ask).await;
    let out = output(&client.result("t2").await);
    assert_eq!(out["metadata"]["thinking"]["applied"], false, "{out}");
    assert!(mock.arrivals()[1].body.get("thinking").is_none());
    // The default system prompt comes first, the caller's after it.
    let system = mock.arrivals()[1].body["messages"][0]["content"].clone();
    assert_eq!(system, CHAT_PROMPT);
}

#[tokio::test]
async fn cut_answers_are_marked_and_filtered_ones_are_errors() {
    let mock = Mock::start(vec![
        answer_json("The answer is cut sh", "length"),
        answer_json("", "content_filter"),
    ])
    .await;
    let daemon = start_mocked(&mock, &std::env::temp_dir()).await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    let ask = json!({"prompt": "Explain", "system_prompt": "Be brief."});
    client.call("l1", "chat", ask).await;
    let out = output(&client.result("l1").await);
    assert_eq!(out["metadata"]["truncated"], true, "{out}");
    assert!(
        out["metadata"]["truncated_note"]
            .as_str()
            .unwrap()
            .contains("max_tokens")
    );
    let system = mock.arrivals()[0].body["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        system.starts_with(CHAT_PROMPT) && system.ends_with("Be brief."),
        "{system}"
    );
    client
        .call("l2", "chat", json!({"prompt": "Explain"}))
        .await;
    let result = client.result("l2").await;
    assert_eq!(result["ok"], false, "{result}");
    assert!(
        result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("content filter"),
        "{result}"
    );
    assert_eq!(mock.arrivals().len(), 2, "a filtered answer is not retried");
}
