//! The real `exaid` binary as a separate process, the way a user runs it: embedded defaults,
//! a generated owner-only token file, `exaid config` (and `--explain`), and start-up refusing a
//! bad value.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use common::Client;
use common::process::{Running, exaid_command};
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

fn command(home: &std::path::Path) -> Command {
    let mut command = exaid_command(home);
    // Tests share the machine: never depend on the fixed default HTTP port being free.
    command.env("EXAI_HTTP_PORT", "0");
    command
}

#[tokio::test]
async fn serves_a_chat_call_on_embedded_defaults() {
    let home = tempfile::tempdir().unwrap();
    let mut child = command(home.path())
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _running = Running(child);
    let mut first_line = String::new();
    BufReader::new(stdout).read_line(&mut first_line).unwrap();
    // "exaid 0.1.0 listening on ws://127.0.0.1:PORT (token: ... generated one into PATH ...)"
    let addr = first_line
        .split("ws://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected start-up line: {first_line}"));
    assert!(first_line.contains("generated"), "{first_line}");
    let token_path = home.path().join(".local/state/exaid/token");
    let mode = std::fs::metadata(&token_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "token file must be owner-only");
    let token = std::fs::read_to_string(&token_path)
        .unwrap()
        .trim()
        .to_string();
    assert!(
        !first_line.contains(&token),
        "the token itself must never be printed"
    );

    let mut client = Client::connect(addr.parse().unwrap()).await;
    client
        .ws
        .send(Message::text(
            json!({"op": "hello", "token": token}).to_string(),
        ))
        .await
        .unwrap();
    assert_eq!(client.recv().await["op"], "hello_ack");
    client
        .call("b1", "chat", json!({"prompt": "from outside"}))
        .await;
    let result = client.result("b1").await;
    assert_eq!(result["ok"], true, "{result}");
    let output: serde_json::Value = serde_json::from_str(result["text"].as_str().unwrap()).unwrap();
    assert!(
        output["content"].as_str().unwrap().starts_with("[offline]"),
        "{output}"
    );
    assert_eq!(output["metadata"]["offline"], true);
    // A workflow tool works out of the box too.
    client
        .call(
            "b2",
            "debug",
            json!({"step": "why", "step_number": 1, "total_steps": 1,
                   "next_step_required": false, "findings": "from outside",
                   "issues_found": [{"severity": "low", "description": "odd"}]}),
        )
        .await;
    let result = client.result("b2").await;
    assert_eq!(result["ok"], true, "{result}");
    assert!(
        result["text"]
            .as_str()
            .unwrap()
            .contains("calling_expert_analysis")
    );
}

#[test]
fn config_prints_every_value_with_its_source() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join(".env"),
        "WORKFLOW_TOOL_TIMEOUT_SECS=180\nEXAI_WS_TOKEN=from-dotenv-secret-123456\n",
    )
    .unwrap();
    let output = command(home.path())
        .env("SIMPLE_TOOL_TIMEOUT_SECS", "45")
        .args(["config", "--set", "EXAI_WS_GLOBAL_MAX_INFLIGHT=12"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let line = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{key} ")))
            .unwrap_or_else(|| panic!("{key} missing from:\n{text}"))
            .to_string()
    };
    assert!(
        line("WORKFLOW_TOOL_TIMEOUT_SECS").contains("dotenv file"),
        "{text}"
    );
    assert!(
        line("SIMPLE_TOOL_TIMEOUT_SECS").contains("45")
            && line("SIMPLE_TOOL_TIMEOUT_SECS").contains("environment")
    );
    assert!(
        line("EXAI_WS_GLOBAL_MAX_INFLIGHT").contains("12")
            && line("EXAI_WS_GLOBAL_MAX_INFLIGHT").contains("flag")
    );
    assert!(line("EXAI_WS_PORT").contains("8079") && line("EXAI_WS_PORT").contains("default"));
    for key in [
        "EXAI_CONVERSATIONS_MAX",
        "EXAI_CONVERSATION_TURNS_MAX",
        "EXAI_CONVERSATION_BYTES_MAX",
        "EXAI_CONVERSATION_TTL_SECS",
        "EXAI_CONSENSUS_MODELS_MAX",
        "ENABLED_TOOLS",
        "DISABLED_TOOLS",
    ] {
        line(key);
    }
    assert!(line("TOOL_PROFILE").contains("full"), "{text}");
    assert!(!text.contains("from-dotenv-secret"), "secrets never print");
}

#[test]
fn config_explain_documents_one_key_and_suggests_on_a_typo() {
    let home = tempfile::tempdir().unwrap();
    let output = command(home.path())
        .env("EXAI_WS_TOKEN", "from-env-secret-1234567")
        .args(["config", "--explain", "exai_ws_token"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.starts_with("EXAI_WS_TOKEN\n  Shared secret"), "{text}");
    assert!(text.contains("  field:   config.server.token\n"), "{text}");
    assert!(
        text.contains("  value:   <set, 23 chars> (from environment)\n"),
        "{text}"
    );
    assert!(!text.contains("from-env-secret"), "secrets never print");

    let output = command(home.path())
        .args(["config", "--explain", "EXAI_WS_MAX_SESION"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("unknown key EXAI_WS_MAX_SESION: did you mean EXAI_WS_MAX_SESSIONS?"),
        "{stderr}"
    );
}

#[test]
fn a_bad_value_stops_start_up_naming_key_value_and_source() {
    let home = tempfile::tempdir().unwrap();
    let output = command(home.path())
        .env("EXAI_WS_SESSION_MAX_INFLIGHT", "lots")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("EXAI_WS_SESSION_MAX_INFLIGHT"), "{stderr}");
    assert!(stderr.contains("lots"), "{stderr}");
    assert!(stderr.contains("environment"), "{stderr}");
}

#[test]
fn an_unknown_tool_name_stops_start_up_naming_it() {
    let home = tempfile::tempdir().unwrap();
    let output = command(home.path())
        .env("DISABLED_TOOLS", "chat,teleport")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("DISABLED_TOOLS"), "{stderr}");
    assert!(stderr.contains("\"teleport\""), "{stderr}");
}

#[tokio::test]
async fn a_short_token_from_an_old_env_starts_on_loopback_with_a_warning_and_is_refused_beyond() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".env"), "EXAI_WS_TOKEN=oldtoken\n").unwrap();
    let mut child = command(home.path())
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _running = Running(child);
    // The log (stdout here) warns before the start-up line.
    let mut stdout = BufReader::new(stdout);
    let mut lines = Vec::new();
    while !lines
        .last()
        .is_some_and(|l: &String| l.contains("listening on ws://"))
    {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "exited: {lines:?}"
        );
        lines.push(line);
    }
    let warned = lines
        .iter()
        .any(|l| l.contains("EXAI_WS_TOKEN has only 8 characters"));
    assert!(warned, "a loud warning: {lines:?}");
    let addr = lines
        .last()
        .unwrap()
        .split("ws://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_string();
    let mut client = Client::connect(addr.parse().unwrap()).await;
    let hello = json!({"op": "hello", "token": "oldtoken"}).to_string();
    client.ws.send(Message::text(hello)).await.unwrap();
    assert_eq!(
        client.recv().await["op"],
        "hello_ack",
        "the old token works"
    );

    let output = command(home.path())
        .args(["--host", "0.0.0.0", "--port", "0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("not a loopback address, with a 8-character EXAI_WS_TOKEN"),
        "{stderr}"
    );
}
