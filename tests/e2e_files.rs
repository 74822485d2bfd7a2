//! Files a call names reach the model: `chat`'s `files`, a workflow's `relevant_files` on its
//! final step, and `consensus`'s. Real files in a temporary folder, read through the
//! production file system; a provider that records what it was sent stands in for the model.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Client, TOKEN, start_with};
use exaid::provider::offline::OfflineProvider;
use exaid::provider::{ChatRequest, ChatResponse, ChunkSink, Provider, ProviderError};
use exaid::rt::BoxFuture;
use serde_json::{Value, json};

/// The offline provider, keeping every request it was sent.
struct Recording {
    inner: OfflineProvider,
    sent: Arc<Mutex<Vec<ChatRequest>>>,
}

impl Provider for Recording {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn models(&self) -> &[String] {
        self.inner.models()
    }
    fn default_model(&self) -> &str {
        self.inner.default_model()
    }
    fn is_configured(&self) -> bool {
        true
    }
    fn complete(
        &self,
        request: ChatRequest,
        chunks: Option<ChunkSink>,
    ) -> BoxFuture<'static, Result<ChatResponse, ProviderError>> {
        self.sent.lock().unwrap().push(request.clone());
        self.inner.complete(request, chunks)
    }
}

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

/// A daemon whose files may come from `root` only, with a 4 KiB per-file cap.
async fn start_recording(
    root: &std::path::Path,
) -> (common::TestDaemon, Arc<Mutex<Vec<ChatRequest>>>) {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let recorded = sent.clone();
    let root = root.to_path_buf();
    let daemon = start_with(
        move |config| {
            config.file_access.roots = vec![root];
            config.file_access.file_bytes_max = 4096;
        },
        move |config, rt| {
            let inner = OfflineProvider::new(rt.clone(), Duration::ZERO);
            exaid::Daemon::builder(config, TOKEN.to_string(), rt)
                .provider(Arc::new(Recording {
                    inner,
                    sent: recorded,
                }))
                .build()
        },
    )
    .await;
    (daemon, sent)
}

/// Everything the provider was sent last, as one text.
fn last_sent(sent: &Mutex<Vec<ChatRequest>>) -> String {
    let sent = sent.lock().unwrap();
    let request = sent.last().expect("the provider was called");
    request
        .messages
        .iter()
        .map(|m| m.content.as_str())
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
    let (daemon, sent) = start_recording(&root).await;
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
    let text = last_sent(&sent);
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
    let (daemon, sent) = start_recording(&root.join("src")).await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    let escape = root.join("src/../big.txt").display().to_string();
    let cases = [
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
        sent.lock().unwrap().is_empty(),
        "a refused call never reaches the provider"
    );
}

#[tokio::test]
async fn a_final_workflow_step_sends_its_relevant_files_numbered() {
    let dir = project();
    let root = dir.path().canonicalize().unwrap();
    let (daemon, sent) = start_recording(&root).await;
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
        sent.lock().unwrap().is_empty(),
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
    let text = last_sent(&sent);
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
    let (daemon, sent) = start_recording(&root).await;
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
    let text = last_sent(&sent);
    let from_caller: String = {
        let sent = sent.lock().unwrap();
        let request = sent.last().unwrap();
        let user = request
            .messages
            .iter()
            .filter(|m| m.role == exaid::provider::Role::User);
        user.map(|m| m.content.as_str()).collect()
    };
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
    let text = last_sent(&sent);
    assert!(
        text.contains("    43\n"),
        "a changed file is sent again: {text}"
    );
}
