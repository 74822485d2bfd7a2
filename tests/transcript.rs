//! One protocol transcript, pinned with insta (in `snapshots/`): a session's frames for a
//! hello, a tool list query, a chat call, an unknown tool, a bad frame, a ping and a cancel
//! of nothing. Ids and secrets are redacted; everything else is exact.

mod common;

use common::{Client, start};
use serde_json::{Value, json};

fn redact(mut frame: Value) -> Value {
    for key in ["session_id", "resume_token"] {
        if frame.get(key).is_some() {
            frame[key] = json!("[redacted]");
        }
    }
    if frame["op"] == "hello_ack" {
        frame["server"]["version"] = json!("[version]");
    }
    if frame["op"] == "call_tool_res" && frame["ok"] == true {
        // The conversation id is random: redact it inside the tool output, then pin the rest.
        let text = frame["text"].as_str().unwrap_or("");
        let mut output: Value = serde_json::from_str(text).expect("tool output is JSON");
        if output.get("continuation_offer").is_some() {
            output["continuation_offer"]["continuation_id"] = json!("[redacted]");
            let note = output["continuation_offer"]["note"].as_str().unwrap_or("");
            let id = text
                .split("\"continuation_id\": \"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or("");
            output["continuation_offer"]["note"] = json!(note.replace(id, "[redacted]"));
        }
        let redacted = serde_json::to_string_pretty(&output).unwrap();
        frame["text"] = json!(redacted);
        frame["outputs"][0]["text"] = json!(redacted);
    }
    if frame["op"] == "list_tools_res" {
        // The schemas have their own tests; the transcript pins the names.
        let names: Vec<Value> = frame["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].clone())
            .collect();
        frame["tools"] = Value::Array(names);
    }
    frame
}

#[tokio::test]
async fn protocol_transcript() {
    let daemon = start(|_| {}).await;
    let (mut client, ack) = Client::ready(daemon.addr).await;
    let mut transcript = vec![redact(ack)];
    client
        .send(json!({"op": "list_tools", "request_id": "t-1"}))
        .await;
    transcript.push(redact(client.recv().await));
    client
        .call(
            "c-1",
            "chat",
            json!({"prompt": "Say hello", "model": "auto"}),
        )
        .await;
    transcript.extend(client.until_result("c-1").await.into_iter().map(redact));
    client.call("c-2", "nope", json!({})).await;
    transcript.push(redact(client.recv().await));
    client.send_text("{\"op\": \"call_tool\"").await;
    transcript.push(redact(client.recv().await));
    client
        .send(json!({"op": "cancel", "request_id": "c-9"}))
        .await;
    transcript.push(redact(client.recv().await));
    client
        .send(json!({"op": "ping", "request_id": "p-1"}))
        .await;
    transcript.push(redact(client.recv().await));
    let text: Vec<String> = transcript.iter().map(|f| f.to_string()).collect();
    insta::with_settings!({
        snapshot_path => "../snapshots",
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_snapshot!("protocol_transcript", text.join("\n"));
    });
}
