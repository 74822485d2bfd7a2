//! The real binary killed (`kill -9`) and started again on the same state: what the state file
//! keeps comes back. Also a corrupt state file (moved aside, a fresh one started) and one that
//! cannot be opened (calls served, persistence degraded and said so).

mod common;

use std::collections::BTreeMap;
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
    start_on(home, 0, extra)
}

/// [`start`] on WebSocket port `ws_port` (0: any), so a bridge finds it again after a restart.
///
/// Why it may try more than once: the HTTP port is picked free and then handed to the daemon,
/// and between the two another process may take it (an outgoing connection of a test running
/// beside this one, from the same ephemeral range). The daemon then says so and exits after
/// its WebSocket line, so a start only counts once the HTTP line is read too.
fn start_on(home: &Path, ws_port: u16, extra: &[(&str, &str)]) -> Daemon {
    const ATTEMPTS_MAX: usize = 5;
    for _ in 0..ATTEMPTS_MAX {
        if let Some(daemon) = try_start_on(home, ws_port, extra) {
            return daemon;
        }
    }
    panic!("the daemon did not start in {ATTEMPTS_MAX} attempts");
}

/// One start; `None` when the daemon exited before serving its HTTP port.
fn try_start_on(home: &Path, ws_port: u16, extra: &[(&str, &str)]) -> Option<Daemon> {
    let http_port = free_port();
    let mut command = exaid_command(home);
    command
        .env("EXAI_HTTP_PORT", http_port.to_string())
        .args(["--port", &ws_port.to_string()]);
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
    // Up to the HTTP line: end of output before it means the daemon gave up.
    let mut line = String::new();
    while !line.starts_with("exaid http on") {
        line.clear();
        if stdout.read_line(&mut line).unwrap_or(0) == 0 {
            return None;
        }
    }
    let token_path = home.join(".local/state/exaid/token");
    let token = std::fs::read_to_string(token_path)
        .unwrap()
        .trim()
        .to_string();
    Some(Daemon {
        _running: running,
        _stdout: stdout,
        ws,
        http: format!("127.0.0.1:{http_port}"),
        token,
    })
}

impl Daemon {
    async fn client(&self) -> Client {
        let mut client = Client::connect(self.ws.parse().unwrap()).await;
        let hello = json!({"op": "hello", "token": self.token, "acks": true}).to_string();
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

/// A session as its client knows it.
struct Known {
    session_id: Value,
    resume_token: Value,
}

/// Connect and say hello: a fresh session, or a resume of `known` from `last_seq`.
async fn hello(daemon: &Daemon, known: Option<(&Known, u64)>) -> (Client, Value) {
    let mut client = Client::connect(daemon.ws.parse().unwrap()).await;
    let mut hello = json!({"op": "hello", "token": daemon.token, "acks": true});
    if let Some((known, last_seq)) = known {
        hello["session_id"] = known.session_id.clone();
        hello["resume_token"] = known.resume_token.clone();
        hello["last_seq"] = json!(last_seq);
    }
    client
        .ws
        .send(Message::text(hello.to_string()))
        .await
        .unwrap();
    let ack = client.recv().await;
    assert_eq!(ack["op"], "hello_ack", "{ack}");
    (client, ack)
}

/// A session with one result the client never acked (`r1`, which opened a conversation) and
/// one call still running (`r2`). Returns the session, r1's answer and its conversation.
async fn one_done_one_running(daemon: &Daemon) -> (Client, Known, String, String) {
    let (mut client, ack) = hello(daemon, None).await;
    let known = Known {
        session_id: ack["session_id"].clone(),
        resume_token: ack["resume_token"].clone(),
    };
    let first = chat(
        &mut client,
        "r1",
        json!({"prompt": "remember the number 42"}),
    )
    .await;
    let conversation = first["continuation_offer"]["continuation_id"]
        .as_str()
        .unwrap()
        .to_string();
    let answer = first["content"].as_str().unwrap_or_default().to_string();
    assert!(!answer.is_empty(), "{first}");
    client
        .call("r2", "chat", json!({"prompt": "a slow one"}))
        .await;
    let acked = client
        .recv_until(|f| f["op"] == "call_tool_ack" && f["request_id"] == "r2")
        .await;
    assert_ne!(acked.last().unwrap()["joined"], true, "a new call");
    (client, known, answer, conversation)
}

/// After a restart: the resume gets r1's result again and exactly one `INTERRUPTED` for r2,
/// nothing twice; r2 sent again runs; r1 again is answered from the kept result; the
/// conversation goes on.
async fn resume_finds_everything(daemon: &Daemon, known: &Known, answer: &str, conversation: &str) {
    let (mut client, ack) = hello(daemon, Some((known, 0))).await;
    assert_eq!(ack["resumed"], true, "the session is back: {ack}");
    assert_eq!(ack["resume_token"], known.resume_token);
    let mut results = BTreeMap::new();
    let mut last_seq = 0;
    while results.len() < 2 {
        let frame = client.recv().await;
        last_seq = last_seq.max(frame["seq"].as_u64().unwrap_or(0));
        if frame["op"] == "call_tool_res" {
            let id = frame["request_id"].as_str().unwrap().to_string();
            assert!(
                results.insert(id, frame).is_none(),
                "one terminal frame per call"
            );
        }
    }
    let r1 = &results["r1"];
    assert_eq!(r1["ok"], true, "{r1}");
    let output: Value = serde_json::from_str(r1["text"].as_str().unwrap()).unwrap();
    assert_eq!(output["content"].as_str().unwrap_or_default(), answer);
    let r2 = &results["r2"];
    assert_eq!(r2["error"]["code"], "INTERRUPTED", "{r2}");
    assert_eq!(r2["error"]["retryable"], true, "{r2}");
    drop(client);

    // Resumed again from what it has: nothing is sent twice.
    let (mut client, ack) = hello(daemon, Some((known, last_seq))).await;
    assert_eq!(ack["resumed"], true);
    client.send(json!({"op": "ping", "request_id": "p"})).await;
    let next = client.recv().await;
    assert_eq!(next["op"], "pong", "nothing replayed twice: {next}");

    // The same request id again runs the call; r1 again is its kept result.
    let again = chat(&mut client, "r2", json!({"prompt": "a slow one"})).await;
    assert!(again["content"].is_string(), "{again}");
    client
        .call("r1", "chat", json!({"prompt": "remember the number 42"}))
        .await;
    let repeat = client.result("r1").await;
    assert_eq!(
        repeat["repeated"], true,
        "answered from the kept result: {repeat}"
    );
    let more = json!({"prompt": "what was the number?", "continuation_id": conversation});
    let third = chat(&mut client, "r3", more).await;
    assert_eq!(third["continuation_offer"]["continuation_id"], conversation);
}

#[tokio::test]
async fn after_kill_9_a_resume_gets_its_results_and_one_interrupted_and_goes_on() {
    let home = tempfile::tempdir().unwrap();
    let slow = [("EXAI_OFFLINE_LATENCY_MS", "700")];
    let daemon = start(home.path(), &slow);
    let (client, known, answer, conversation) = one_done_one_running(&daemon).await;
    daemon.committed().await; // r2's acceptance is on disk
    drop(client);
    drop(daemon); // SIGKILL mid-call
    let daemon = start(home.path(), &slow);
    resume_finds_everything(&daemon, &known, &answer, &conversation).await;
}

#[tokio::test]
async fn after_a_graceful_restart_a_resume_finds_the_same() {
    let home = tempfile::tempdir().unwrap();
    let slow = [
        ("EXAI_OFFLINE_LATENCY_MS", "700"),
        ("EXAI_SHUTDOWN_GRACE_SECS", "0.1"),
    ];
    let mut daemon = start(home.path(), &slow);
    let (client, known, answer, conversation) = one_done_one_running(&daemon).await;
    drop(client); // away: the INTERRUPTED end waits in the state file
    sigterm(&daemon._running.0);
    assert!(wait_exit(&mut daemon._running.0).await.success());
    drop(daemon);
    let daemon = start(home.path(), &slow);
    resume_finds_everything(&daemon, &known, &answer, &conversation).await;
}

/// The provider requests the daemon made today, all providers together.
async fn provider_requests(daemon: &Daemon) -> u64 {
    let status = daemon.get("/status").await;
    let usage = status["usage_today"].as_array().unwrap();
    usage.iter().map(|u| u["requests"].as_u64().unwrap()).sum()
}

/// The stdio bridge as an editor runs it (`exaid mcp`), against the daemon on `ws_port`.
async fn editor(
    home: &Path,
    ws_port: u16,
    token: &str,
) -> rmcp::service::RunningService<rmcp::RoleClient, ()> {
    use rmcp::ServiceExt;
    let mut command = tokio::process::Command::new(common::process::BIN);
    command
        .arg("mcp")
        .env_clear()
        .env("HOME", home)
        .env("EXAI_WS_PORT", ws_port.to_string())
        .env("EXAI_WS_TOKEN", token)
        .env("EXAI_HTTP_PORT", "0")
        .env("RUST_LOG", "error")
        .current_dir(home);
    let (transport, _stderr) = rmcp::transport::TokioChildProcess::builder(command)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(15), ().serve(transport))
        .await
        .expect("initialize in time")
        .expect("initialize")
}

#[tokio::test]
async fn the_bridge_sees_one_answer_per_call_across_kill_9_and_no_finished_call_runs_twice() {
    bridge_across_a_restart(false).await;
}

#[tokio::test]
async fn the_bridge_sees_one_answer_per_call_across_a_graceful_restart() {
    bridge_across_a_restart(true).await;
}

/// An editor on the stdio bridge: one call finished, one running when the daemon is killed
/// (or stopped: its grace period is shorter than the call); the daemon is started again on
/// the same port and state. The editor gets one real answer for each.
async fn bridge_across_a_restart(graceful: bool) {
    use rmcp::model::CallToolRequestParams;
    let home = tempfile::tempdir().unwrap();
    let ws_port = free_port();
    let slow = [
        ("EXAI_OFFLINE_LATENCY_MS", "800"),
        ("EXAI_SHUTDOWN_GRACE_SECS", "0.1"),
    ];
    let mut daemon = start_on(home.path(), ws_port, &slow);
    let editor = editor(home.path(), ws_port, &daemon.token).await;
    let ask = |prompt: &str| {
        let arguments = json!({"prompt": prompt}).as_object().unwrap().clone();
        CallToolRequestParams::new("chat").with_arguments(arguments)
    };
    let first = editor.call_tool(ask("the first")).await.unwrap();
    assert_ne!(first.is_error, Some(true), "{first:?}");
    // The second call is running when the daemon is killed.
    let peer = editor.peer().clone();
    let second = tokio::spawn(async move { peer.call_tool(ask("the second")).await });
    for _ in 0..100 {
        let running = daemon.get("/status").await["calls_running"].as_u64();
        if running.unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    daemon.committed().await;
    if graceful {
        // The INTERRUPTED end reaches the bridge live, before the 1001 close.
        sigterm(&daemon._running.0);
        assert!(wait_exit(&mut daemon._running.0).await.success());
    }
    drop(daemon); // SIGKILL mid-call, or already gone
    let daemon = start_on(home.path(), ws_port, &slow);
    let second = tokio::time::timeout(Duration::from_secs(30), second)
        .await
        .expect("the second call is answered after the restart")
        .unwrap()
        .unwrap();
    assert_ne!(second.is_error, Some(true), "one real answer: {second:?}");
    let text = format!("{:?}", second.content);
    assert!(
        !text.contains("INTERRUPTED"),
        "the editor never sees the interruption: {text}"
    );
    assert_eq!(
        provider_requests(&daemon).await,
        1,
        "after the restart only the interrupted call ran again, the finished one never"
    );
    editor.cancel().await.unwrap();
}
