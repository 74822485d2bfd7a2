//! Files and images a call names reach the model: `chat`'s `files` and `images`, a workflow's
//! `relevant_files` on its final step. Real files in a temporary folder, read through the
//! production file system; the OpenAI-compatible mock provider (`common::mock`) receives the
//! requests over real HTTP, so what is checked is the body a provider would receive.

mod common;

use std::path::Path;

use base64::Engine as _;
use common::mock::Mock;
use common::{Client, TestDaemon, start};
use serde_json::{Value, json};

/// A vision model of each provider (`provider::models`).
const KIMI_VISION: &str = "moonshot-v1-8k-vision-preview";
const GLM_VISION: &str = "glm-4.5v";

/// The first bytes of a PNG file: what the image check recognises.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

/// A folder with a source file, a nested one, a hidden one, a binary one and a large one.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("src/inner")).unwrap();
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::write(
        root.join("src/lib.rs"),
        "pub fn answer() -> u32 {\n    42\n}\n",
    )
    .unwrap();
    std::fs::write(root.join("src/inner/util.rs"), "// MARKER-UTIL\n").unwrap();
    std::fs::write(root.join(".git/config"), "MARKER-HIDDEN\n").unwrap();
    std::fs::write(root.join("src/blob.bin"), [0u8, 1, 2, 3]).unwrap();
    std::fs::write(root.join("big.txt"), "x".repeat(5000)).unwrap();
    dir
}

/// A daemon whose files may come from `root` only, with a 4 KiB per-file cap, Kimi and GLM
/// both pointed at a fresh mock (`auto` is Kimi's default model).
async fn start_mocked(root: &Path) -> (TestDaemon, Mock) {
    let mock = Mock::start(Vec::new()).await;
    let root = root.to_path_buf();
    let daemon = start(|config| {
        config.file_access.roots = vec![root];
        config.file_access.file_bytes_max = 4096;
        mock.both(config);
    })
    .await;
    (daemon, mock)
}

/// The text of a message's content: a string, or the `text` parts of a list.
fn words(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        other => panic!("content is a string or a list of parts: {other}"),
    }
}

/// The body of the last request the mock received.
fn last_body(mock: &Mock) -> Value {
    let arrivals = mock.arrivals();
    arrivals
        .last()
        .expect("the provider was called")
        .body
        .clone()
}

/// Every message the provider was sent last, as one text.
fn last_sent(mock: &Mock) -> String {
    let body = last_body(mock);
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| words(&m["content"]))
        .collect::<Vec<_>>()
        .join("\n")
}

fn output(result: &Value) -> Value {
    assert_eq!(result["ok"], true, "{result}");
    serde_json::from_str(result["text"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn chat_files_reach_the_provider_and_folders_expand() {
    let dir = project();
    let root = dir.path().canonicalize().unwrap();
    let (daemon, mock) = start_mocked(&root).await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    let files = json!([
        root.join("src").display().to_string(),
        root.join("big.txt").display().to_string()
    ]);
    client
        .call(
            "c1",
            "chat",
            json!({"prompt": "What does answer return?", "files": files}),
        )
        .await;
    let out = output(&client.result("c1").await);
    let text = last_sent(&mock);
    let lib = root.join("src/lib.rs").display().to_string();
    assert!(text.contains(&format!("--- BEGIN FILE: {lib} (")), "{text}");
    assert!(
        text.contains("pub fn answer() -> u32 {\n    42\n}"),
        "{text}"
    );
    assert!(text.contains("MARKER-UTIL"), "{text}");
    assert!(!text.contains("MARKER-HIDDEN"), "{text}");
    assert!(text.contains("What does answer return?"), "{text}");
    let meta = &out["metadata"]["files"];
    let embedded: Vec<&str> = meta["embedded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(embedded.len(), 2, "{meta}");
    assert!(
        embedded[0].ends_with("src/inner/util.rs") && embedded[1].ends_with("src/lib.rs"),
        "{meta}"
    );
    let skipped: Vec<&str> = meta["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(skipped.iter().any(|p| p.ends_with("big.txt")), "{meta}");
    assert!(skipped.iter().any(|p| p.ends_with("blob.bin")), "{meta}");
    assert!(
        text.contains("big.txt"),
        "the skip is named to the model too: {text}"
    );
}

#[tokio::test]
async fn paths_outside_the_roots_relative_or_missing_are_refused_naming_them() {
    let dir = project();
    let root = dir.path().canonicalize().unwrap();
    let (daemon, mock) = start_mocked(&root.join("src")).await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    let escape = root.join("src/../big.txt").display().to_string();
    std::os::unix::fs::symlink(root.join("big.txt"), root.join("src/link.txt")).unwrap();
    let link = root.join("src/link.txt").display().to_string();
    let cases = [
        ("r4", json!([link]), "files[0]", "outside"),
        ("r1", json!(["src/lib.rs"]), "files[0]", "absolute"),
        (
            "r2",
            json!([root.join("src/lib.rs").display().to_string(), escape]),
            "files[1]",
            "outside",
        ),
        (
            "r3",
            json!([root.join("src/nope.rs").display().to_string()]),
            "files[0]",
            "does not exist",
        ),
    ];
    for (id, files, field, why) in cases {
        client
            .call(id, "chat", json!({"prompt": "hi", "files": files}))
            .await;
        let result = client.result(id).await;
        assert_eq!(result["ok"], false, "{result}");
        assert_eq!(result["error"]["code"], "VALIDATION_ERROR", "{result}");
        assert_eq!(result["error"]["details"]["field"], field, "{result}");
        let message = result["error"]["message"].as_str().unwrap();
        assert!(message.contains(why), "{message}");
    }
    assert!(
        mock.arrivals().is_empty(),
        "a refused call never reaches the provider"
    );
}

#[tokio::test]
async fn a_final_workflow_step_sends_its_relevant_files_numbered() {
    let dir = project();
    let root = dir.path().canonicalize().unwrap();
    let (daemon, mock) = start_mocked(&root).await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    let lib = root.join("src/lib.rs").display().to_string();
    client
        .call(
            "w1",
            "codereview",
            json!({"step": "Review answer()", "step_number": 1, "total_steps": 2,
                   "next_step_required": true, "findings": "answer is hard-coded",
                   "relevant_files": [lib]}),
        )
        .await;
    let first = output(&client.result("w1").await);
    assert!(
        mock.arrivals().is_empty(),
        "an intermediate step reads and sends nothing"
    );
    let id = first["continuation_id"].as_str().unwrap().to_string();
    client
        .call(
            "w2",
            "codereview",
            json!({"step": "Done", "step_number": 2, "total_steps": 2,
                   "next_step_required": false, "findings": "no tests",
                   "continuation_id": id}),
        )
        .await;
    let second = output(&client.result("w2").await);
    // The body as the provider received it (shown with `--nocapture`; the closing note of
    // the files issue quotes it).
    eprintln!(
        "{}",
        serde_json::to_string_pretty(&last_body(&mock)).unwrap()
    );
    let text = last_sent(&mock);
    assert!(text.contains(&format!("--- BEGIN FILE: {lib} (")), "{text}");
    assert!(
        text.contains("    2 |     42\n"),
        "numbered for file:line: {text}"
    );
    assert_eq!(
        second["metadata"]["files"]["embedded"][0]["path"],
        lib.as_str(),
        "{second}"
    );
}

#[tokio::test]
async fn a_continued_conversation_refers_to_an_unchanged_file_and_resends_a_changed_one() {
    let dir = project();
    let root = dir.path().canonicalize().unwrap();
    let (daemon, mock) = start_mocked(&root).await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    let lib = root.join("src/lib.rs").display().to_string();
    client
        .call("k1", "chat", json!({"prompt": "Read this", "files": [lib]}))
        .await;
    let first = output(&client.result("k1").await);
    let id = first["continuation_offer"]["continuation_id"]
        .as_str()
        .unwrap()
        .to_string();
    let ask_again = |_: &str| json!({"prompt": "And now?", "files": [lib], "continuation_id": id});
    client.call("k2", "chat", ask_again("k2")).await;
    let second = output(&client.result("k2").await);
    let text = last_sent(&mock);
    let from_caller: String = last_body(&mock)["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| words(&m["content"]))
        .collect();
    assert_eq!(
        from_caller.matches("pub fn answer()").count(),
        1,
        "sent once, in the earlier turn: {from_caller}"
    );
    assert!(
        text.contains("unchanged, its contents are in an earlier message"),
        "{text}"
    );
    assert_eq!(
        second["metadata"]["files"]["embedded"][0]["referred_to_earlier_turn"], true,
        "{second}"
    );
    std::fs::write(
        root.join("src/lib.rs"),
        "pub fn answer() -> u32 {\n    43\n}\n",
    )
    .unwrap();
    client.call("k3", "chat", ask_again("k3")).await;
    output(&client.result("k3").await);
    let text = last_sent(&mock);
    assert!(
        text.contains("    43\n"),
        "a changed file is sent again: {text}"
    );
}

/// A project with a PNG screenshot and a text file posing as one.
fn pictures() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("shot.png"), PNG).unwrap();
    std::fs::write(dir.path().join("fake.png"), "not an image").unwrap();
    dir
}

#[tokio::test]
async fn images_reach_a_vision_model_as_image_parts() {
    let dir = pictures();
    let root = dir.path().canonicalize().unwrap();
    let (daemon, mock) = start_mocked(&root).await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    let shot = root.join("shot.png").display().to_string();
    let encoded = base64::engine::general_purpose::STANDARD.encode(PNG);
    let inline = format!("data:image/png;base64,{encoded}");
    for (id, model) in [("v1", KIMI_VISION), ("v2", GLM_VISION)] {
        let arguments = json!({"prompt": "What is on the screen?", "model": model,
                               "images": [shot, inline]});
        client.call(id, "chat", arguments).await;
        let out = output(&client.result(id).await);
        let body = last_body(&mock);
        assert_eq!(body["model"], model);
        let asked = body["messages"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(asked["role"], "user");
        let parts = asked["content"].as_array().expect("a list of parts");
        assert_eq!(parts[0]["type"], "text");
        assert!(
            parts[0]["text"]
                .as_str()
                .unwrap()
                .contains("What is on the screen?")
        );
        let url = format!("data:image/png;base64,{encoded}");
        for part in &parts[1..] {
            assert_eq!(part["type"], "image_url", "{part}");
            assert_eq!(part["image_url"]["url"], url.as_str(), "{part}");
        }
        assert_eq!(parts.len(), 3, "{asked}");
        let images = &out["metadata"]["images"];
        assert_eq!(images[0]["source"], shot.as_str(), "{out}");
        assert_eq!(images[1]["source"], "data:image/png", "{out}");
        assert_eq!(images[0]["bytes"], PNG.len(), "{out}");
    }
    let paths: Vec<&str> = mock
        .arrivals()
        .iter()
        .map(|a| a.path.clone())
        .map(|p| {
            if p.starts_with("/kimi") {
                "kimi"
            } else {
                "glm"
            }
        })
        .collect();
    assert_eq!(paths, ["kimi", "glm"]);
}

#[tokio::test]
async fn images_are_refused_for_a_model_without_vision_and_when_they_are_not_images() {
    let dir = pictures();
    let root = dir.path().canonicalize().unwrap();
    let (daemon, mock) = start_mocked(&root).await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    let shot = root.join("shot.png").display().to_string();
    let fake = root.join("fake.png").display().to_string();
    let cases = [
        (
            "n1",
            "kimi-k2-0905-preview",
            json!([shot]),
            "images",
            "does not take images",
        ),
        ("n2", "auto", json!([shot]), "images", KIMI_VISION),
        (
            "n3",
            KIMI_VISION,
            json!([shot, fake]),
            "images[1]",
            "is not a PNG, JPEG, GIF or WebP",
        ),
        (
            "n4",
            KIMI_VISION,
            json!(["/etc/hostname"]),
            "images[0]",
            "outside the allowed roots",
        ),
    ];
    for (id, model, images, field, why) in cases {
        let arguments = json!({"prompt": "hi", "model": model, "images": images});
        client.call(id, "chat", arguments).await;
        let result = client.result(id).await;
        assert_eq!(result["ok"], false, "{result}");
        assert_eq!(result["error"]["code"], "VALIDATION_ERROR", "{result}");
        assert_eq!(result["error"]["details"]["field"], field, "{result}");
        let message = result["error"]["message"].as_str().unwrap();
        assert!(message.contains(why), "{message}");
    }
    // A workflow's expert is checked at every step, so the mismatch shows at step 1.
    let step = json!({"step": "Look at the layout", "step_number": 1, "total_steps": 2,
                      "next_step_required": true, "findings": "overlap", "images": [shot],
                      "relevant_files": [shot],
                      "model": "glm-4.6"});
    client.call("n5", "analyze", step).await;
    let result = client.result("n5").await;
    assert_eq!(result["error"]["details"]["field"], "images", "{result}");
    assert!(
        mock.arrivals().is_empty(),
        "no refused call reaches the provider"
    );
}
