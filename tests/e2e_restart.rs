//! The real binary killed (`kill -9`) and started again on the same state: what the state file
//! keeps comes back. Also a corrupt state file (moved aside, a fresh one started) and one that
//! cannot be opened (calls served, persistence degraded and said so).

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::Client;
use common::process::{Running, exaid_command, sigterm, wait_exit};
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// A daemon as a user starts it, with `home` as its HOME, and where it listens.
struct Daemon {
    /// The process.
    _running: Running,
    /// Its standard output, kept open: it prints more lines, and a closed pipe would kill it.
    _stdout: BufReader<std::process::ChildStdout>,
    /// Its WebSocket address.
    ws: String,
    /// Its HTTP address.
    http: String,
    /// Its token.
    token: String,
}

/// A free loopback port (the daemon's HTTP port must be known to read `/status`).
fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().port()
}

fn start(home: &Path, extra: &[(&str, &str)]) -> Daemon {
    let http_port = free_port();
    let mut command = exaid_command(home);
    command
        .env("EXAI_HTTP_PORT", http_port.to_string())
        .args(["--port", "0"]);
    for (key, value) in extra {
        command.env(key, value);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let mut first_line = String::new();
    let mut stdout = BufReader::new(stdout);
    stdout.read_line(&mut first_line).unwrap();
    let ws = first_line
        .split("ws://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected start-up line: {first_line}"))
        .to_string();
    let token_path = home.join(".local/state/exaid/token");
    let token = std::fs::read_to_string(token_path)
        .unwrap()
        .trim()
        .to_string();
    Daemon {
        _running: running,
        _stdout: stdout,
        ws,
        http: format!("127.0.0.1:{http_port}"),
        token,
    }
}

impl Daemon {
    async fn client(&self) -> Client {
        let mut client = Client::connect(self.ws.parse().unwrap()).await;
        let hello = json!({"op": "hello", "token": self.token}).to_string();
        client.ws.send(Message::text(hello)).await.unwrap();
        assert_eq!(client.recv().await["op"], "hello_ack");
        client
    }

    async fn get(&self, path: &str) -> Value {
        let url = format!("http://{}{path}", self.http);
        for _ in 0..50 {
            if let Ok(response) = reqwest::get(&url).await {
                return response.json().await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{url} never answered");
    }

    /// Wait until everything changed so far is committed to the state file.
    async fn committed(&self) -> Value {
        for _ in 0..100 {
            let state = self.get("/status").await["state"].clone();
            if state["waiting"] == 0 && state["commits"].as_u64() > Some(0) {
                return state;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the state file never caught up");
    }
}

/// A chat call's output.
async fn chat(client: &mut Client, id: &str, arguments: Value) -> Value {
    client.call(id, "chat", arguments).await;
    let result = client.result(id).await;
    assert_eq!(result["ok"], true, "{result}");
    serde_json::from_str(result["text"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn a_conversation_survives_kill_9_and_continues() {
    let home = tempfile::tempdir().unwrap();
    let daemon = start(home.path(), &[]);
    let mut client = daemon.client().await;
    let first = chat(
        &mut client,
        "r1",
        json!({"prompt": "remember the number 42"}),
    )
    .await;
    let offer = &first["continuation_offer"];
    let id = offer["continuation_id"].as_str().unwrap().to_string();
    let remaining = offer["remaining_turns"].as_u64().unwrap();
    let state = daemon.committed().await;
    assert!(
        state["store"].as_str().unwrap().starts_with("sqlite "),
        "{state}"
    );
    let file = home.path().join(".local/state/exaid/state.db");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the state file is the owner's alone");
    drop(client);
    drop(daemon); // SIGKILL: no shutdown, no flush

    let daemon = start(home.path(), &[]);
    let mut client = daemon.client().await;
    let second = chat(
        &mut client,
        "r2",
        json!({"prompt": "what was the number?", "continuation_id": id}),
    )
    .await;
    let offer = &second["continuation_offer"];
    assert_eq!(offer["continuation_id"], id.as_str(), "{second}");
    assert_eq!(
        offer["remaining_turns"].as_u64().unwrap(),
        remaining - 2,
        "the two turns before the kill are still there: {second}"
    );
}

#[tokio::test]
async fn a_graceful_restart_writes_what_is_queued_before_it_exits() {
    let home = tempfile::tempdir().unwrap();
    let mut daemon = start(home.path(), &[]);
    let mut client = daemon.client().await;
    let first = chat(&mut client, "r1", json!({"prompt": "keep this"})).await;
    let id = first["continuation_offer"]["continuation_id"]
        .as_str()
        .unwrap()
        .to_string();
    // No waiting for the writer: the shutdown must flush it.
    sigterm(&daemon._running.0);
    assert!(wait_exit(&mut daemon._running.0).await.success());
    drop(client);
    drop(daemon);
    let daemon = start(home.path(), &[]);
    let mut client = daemon.client().await;
    let again = json!({"prompt": "and now?", "continuation_id": id});
    let second = chat(&mut client, "r2", again).await;
    assert_eq!(second["continuation_offer"]["continuation_id"], id.as_str());
}

#[tokio::test]
async fn a_corrupt_state_file_is_moved_aside_and_a_bad_path_degrades_without_failing_calls() {
    let home = tempfile::tempdir().unwrap();
    let folder = home.path().join(".local/state/exaid");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("state.db"), b"not a database at all").unwrap();
    let daemon = start(home.path(), &[]);
    let ready = daemon.get("/readyz").await;
    assert_eq!(ready["persistence"], "ok", "a fresh file serves: {ready}");
    let aside: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|name| name.starts_with("state.db.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "moved aside once");
    drop(daemon);

    // A state file under a regular file cannot be created: calls are served, and /readyz,
    // /status and the metrics say persistence is degraded.
    let blocker = home.path().join("a-file");
    std::fs::write(&blocker, b"").unwrap();
    let bad = blocker.join("state.db");
    let daemon = start(home.path(), &[("EXAI_STATE_DB", bad.to_str().unwrap())]);
    let mut client = daemon.client().await;
    chat(&mut client, "r1", json!({"prompt": "still served"})).await;
    let ready = daemon.get("/readyz").await;
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["persistence"], "degraded", "{ready}");
    let problem = ready["persistence_problem"].as_str().unwrap();
    assert!(problem.contains("cannot open the state file"), "{problem}");
    let state = daemon.get("/status").await["state"].clone();
    assert_eq!(state["degraded"], true, "{state}");
    let metrics = reqwest::get(format!("http://{}/metrics", daemon.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("exaid_state_degraded 1"), "{metrics}");
}
