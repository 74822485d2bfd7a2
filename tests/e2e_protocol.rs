//! End-to-end protocol tests on real tokio over a real WebSocket: close codes, tools, errors
//! that name their request, concurrency, capacity, deadlines and cancels.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Client, TOKEN, start, wait_permits_back};
use exaid::config::ProviderId;
use futures_util::SinkExt;
use serde_json::{Value, json};

#[tokio::test]
async fn close_4000_when_hello_is_not_json() {
    let daemon = start(|_| {}).await;
    let mut client = Client::connect(daemon.addr).await;
    client.send_text("{not json").await;
    let (code, reason) = client.expect_close().await;
    assert_eq!(code, 4000, "{reason}");
    assert!(reason.contains("not JSON"), "{reason}");
}

#[tokio::test]
async fn close_4001_when_first_frame_is_not_hello() {
    let daemon = start(|_| {}).await;
    let mut client = Client::connect(daemon.addr).await;
    client.send(json!({"op": "list_tools"})).await;
    let (code, reason) = client.expect_close().await;
    assert_eq!(code, 4001, "{reason}");
    assert!(reason.contains("list_tools"), "{reason}");
}

#[tokio::test]
async fn close_4002_when_no_hello_in_time() {
    let daemon = start(|c| c.connections.hello_timeout_ms = 200).await;
    let mut client = Client::connect(daemon.addr).await;
    let (code, reason) = client.expect_close().await;
    assert_eq!(code, 4002, "{reason}");
    assert!(reason.contains("EXAI_WS_HELLO_TIMEOUT"), "{reason}");
}

#[tokio::test]
async fn close_4003_on_bad_or_missing_token() {
    let daemon = start(|_| {}).await;
    let mut client = Client::connect(daemon.addr).await;
    client
        .send(json!({"op": "hello", "token": "wrong-token-wrong-token"}))
        .await;
    assert_eq!(client.expect_close().await.0, 4003);
    let mut client = Client::connect(daemon.addr).await;
    client.send(json!({"op": "hello"})).await;
    let (code, reason) = client.expect_close().await;
    assert_eq!(code, 4003);
    assert!(reason.contains("no token"), "{reason}");
}

#[tokio::test]
async fn hello_ack_gives_session_and_secret() {
    let daemon = start(|_| {}).await;
    let (_client, ack) = Client::ready(daemon.addr).await;
    assert_eq!(ack["resumed"], false);
    assert_eq!(ack["session_id"].as_str().unwrap().len(), 32);
    assert_eq!(ack["resume_token"].as_str().unwrap().len(), 64);
    assert_eq!(ack["server"]["name"], "exaid");
}

#[tokio::test]
async fn list_tools_has_schemas() {
    let daemon = start(|_| {}).await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    client
        .send(json!({"op": "list_tools", "request_id": "lt"}))
        .await;
    let reply = client.recv().await;
    assert_eq!(reply["op"], "list_tools_res");
    assert_eq!(reply["request_id"], "lt");
    let tools = reply["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    for name in ["chat", "listmodels", "status", "version"] {
        assert!(names.contains(&name), "{names:?}");
    }
    let chat = tools.iter().find(|t| t["name"] == "chat").unwrap();
    assert_eq!(chat["inputSchema"]["type"], "object");
    assert_eq!(chat["inputSchema"]["required"], json!(["prompt"]));
    assert_eq!(
        chat["inputSchema"]["properties"]["prompt"]["maxLength"],
        100000
    );
}

#[tokio::test]
async fn chat_is_answered_by_the_offline_provider() {
    let daemon = start(|_| {}).await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    client
        .call("c1", "chat", json!({"prompt": "What is exaid?"}))
        .await;
    let frames = client.until_result("c1").await;
    assert_eq!(frames[0]["op"], "call_tool_ack");
    assert_eq!(frames[0]["accepted"], true);
    assert_eq!(frames[0]["timeout"], 60.0);
    let result = frames.last().unwrap();
    assert_eq!(result["ok"], true, "{result}");
    // The text is the original's tool output: a JSON object with the answer in `content`.
    let output: Value = serde_json::from_str(result["text"].as_str().unwrap()).unwrap();
    assert_eq!(output["status"], "continuation_available");
    assert_eq!(output["content_type"], "text");
    assert_eq!(output["metadata"]["tool_name"], "chat");
    assert_eq!(output["metadata"]["provider_used"], "offline");
    assert!(output["continuation_offer"]["continuation_id"].is_string());
    let text = output["content"].as_str().unwrap();
    assert!(text.starts_with("[offline]"), "{text}");
    assert!(text.contains("What is exaid?"), "{text}");
    assert_eq!(result["outputs"][0]["type"], "text");
    assert_eq!(result["outputs"][0]["text"], result["text"]);
    // Every frame of the session carries an increasing seq.
    let seqs: Vec<u64> = frames.iter().map(|f| f["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    // The original's name suffix is accepted.
    client
        .call("c2", "chat_EXAI-WS", json!({"prompt": "again"}))
        .await;
    assert_eq!(client.result("c2").await["ok"], true);
}

#[tokio::test]
async fn unknown_tool_names_the_request() {
    let daemon = start(|_| {}).await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    client.call("u1", "teleport", json!({})).await;
    let result = client.recv().await;
    assert_eq!(result["op"], "call_tool_res");
    assert_eq!(result["request_id"], "u1");
    assert_eq!(result["ok"], false);
    assert_eq!(result["error"]["code"], "TOOL_NOT_FOUND");
    assert!(
        result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("teleport")
    );
}

#[tokio::test]
async fn validation_errors_name_the_field() {
    let daemon = start(|_| {}).await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    client.call("v1", "chat", json!({"prompt": 5})).await;
    let result = client.result("v1").await;
    assert_eq!(result["error"]["code"], "VALIDATION_ERROR");
    assert_eq!(result["error"]["details"]["field"], "prompt");
    client
        .call("v2", "chat", json!({"prompt": "x", "temperature": 9}))
        .await;
    let result = client.result("v2").await;
    assert_eq!(result["error"]["details"]["field"], "temperature");
    client.call("v3", "chat", json!({})).await;
    let result = client.result("v3").await;
    assert!(
        result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("prompt is required"),
        "{result}"
    );
    client
        .call("v4", "chat", json!({"prompt": "x", "model": "gpt-99"}))
        .await;
    let result = client.result("v4").await;
    assert_eq!(result["error"]["code"], "VALIDATION_ERROR");
    assert!(
        result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("gpt-99")
    );
}

#[tokio::test]
async fn bad_frames_get_errors_and_the_connection_goes_on() {
    let daemon = start(|_| {}).await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    client.send_text("{oops").await;
    let error = client.recv().await;
    assert_eq!(error["op"], "error");
    assert_eq!(error["error"]["code"], "PROTOCOL_ERROR");
    client
        .send(json!({"op": "teleport", "request_id": "t1"}))
        .await;
    let error = client.recv().await;
    assert_eq!(error["op"], "error");
    assert_eq!(error["request_id"], "t1");
    assert_eq!(error["error"]["code"], "INVALID_REQUEST");
    client
        .send(json!({"op": "call_tool", "request_id": "t2"}))
        .await;
    let error = client.recv().await;
    assert_eq!(error["op"], "call_tool_res");
    assert_eq!(error["request_id"], "t2");
    client
        .ws
        .send(tokio_tungstenite::tungstenite::Message::binary(vec![
            1u8, 2, 3,
        ]))
        .await
        .unwrap();
    let error = client.recv().await;
    assert_eq!(error["error"]["code"], "PROTOCOL_ERROR");
    client.send(json!({"op": "ping", "request_id": "p"})).await;
    let pong = client.recv().await;
    assert_eq!(pong["op"], "pong");
    assert_eq!(pong["request_id"], "p");
}

#[tokio::test]
async fn oversized_frame_closes_1009() {
    let daemon = start(|c| c.limits.frame_bytes_max = 1024).await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    client
        .call("big", "chat", json!({"prompt": "x".repeat(4000)}))
        .await;
    let (code, reason) = client.expect_close().await;
    assert_eq!(code, 1009, "{reason}");
    assert!(reason.contains("EXAI_WS_MAX_BYTES"), "{reason}");
}

#[tokio::test]
async fn forty_concurrent_calls_each_answered_exactly_once() {
    let daemon = start(|c| c.providers[ProviderId::Offline].latency_ms = 50).await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    for i in 0..40 {
        client
            .call(
                &format!("r{i}"),
                "chat",
                json!({"prompt": format!("question {i}")}),
            )
            .await;
    }
    let mut terminal: BTreeMap<String, Value> = BTreeMap::new();
    let mut acks = 0;
    while terminal.len() < 40 {
        let frame = client.recv().await;
        match frame["op"].as_str().unwrap() {
            "call_tool_ack" => acks += 1,
            "call_tool_res" => {
                let id = frame["request_id"].as_str().unwrap().to_string();
                assert!(
                    terminal.insert(id.clone(), frame).is_none(),
                    "{id} answered twice"
                );
            }
            _ => {}
        }
    }
    assert_eq!(acks, 40);
    for (id, frame) in &terminal {
        assert_eq!(frame["ok"], true, "{id}: {frame}");
        let n = id.trim_start_matches('r');
        assert!(
            frame["text"]
                .as_str()
                .unwrap()
                .contains(&format!("question {n}"))
        );
    }
    // Nothing else arrives for these ids: ping and see the pong come next.
    client.send(json!({"op": "ping"})).await;
    let next = client.recv_until(|f| f["op"] == "pong").await;
    assert!(next.iter().all(|f| f["op"] != "call_tool_res"), "{next:?}");
    let health = wait_permits_back(&daemon.shared).await;
    assert!(health.ok, "{:?}", health.problems);
}

#[tokio::test]
async fn a_slow_call_never_blocks_the_next_frame() {
    let daemon = start(|c| c.providers[ProviderId::Offline].latency_ms = 3_000).await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    client.call("slow", "chat", json!({"prompt": "slow"})).await;
    client
        .send(json!({"op": "ping", "request_id": "fast"}))
        .await;
    let frames = client.recv_until(|f| f["op"] == "pong").await;
    assert!(frames.iter().all(|f| f["op"] != "call_tool_res"));
}

#[tokio::test]
async fn over_capacity_is_immediate_when_the_queue_is_full() {
    let daemon = start(|c| {
        c.providers[ProviderId::Offline].latency_ms = 2_000;
        c.providers[ProviderId::Offline].inflight_max = 1;
        c.limits.queue_waiters_max = 0;
    })
    .await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    client.call("a", "chat", json!({"prompt": "a"})).await;
    client.call("b", "chat", json!({"prompt": "b"})).await;
    let started = std::time::Instant::now();
    let result = client.result("b").await;
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "refusal must not wait"
    );
    assert_eq!(result["error"]["code"], "OVER_CAPACITY", "{result}");
    assert!(result["error"]["retry_after_secs"].as_u64().unwrap() >= 1);
    assert!(
        result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("provider:offline")
    );
    assert_eq!(client.result("a").await["ok"], true);
}

#[tokio::test]
async fn over_capacity_after_the_queue_timeout() {
    let daemon = start(|c| {
        c.providers[ProviderId::Offline].latency_ms = 5_000;
        c.limits.global_inflight_max = 1;
        c.limits.queue_timeout_ms = 300;
        c.tools.progress_interval_ms = 100;
    })
    .await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    client.call("a", "chat", json!({"prompt": "a"})).await;
    client.call("b", "chat", json!({"prompt": "b"})).await;
    let frames = client.until_result("b").await;
    let result = frames.last().unwrap();
    assert_eq!(result["error"]["code"], "OVER_CAPACITY", "{result}");
    assert!(
        result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("global")
    );
    // While it waited, progress said what for.
    let queued = frames
        .iter()
        .find(|f| f["op"] == "progress" && f["request_id"] == "b")
        .expect("a progress frame while queued");
    assert_eq!(queued["phase"], "queued");
    assert_eq!(queued["waiting_for"], "global");
}

#[tokio::test]
async fn deadline_ends_the_call_and_returns_permits() {
    let daemon = start(|c| {
        c.providers[ProviderId::Offline].latency_ms = 60_000;
        c.tools.simple_timeout_ms = 300;
        c.limits.queue_timeout_ms = 300;
        c.tools.progress_interval_ms = 100;
    })
    .await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    let started = std::time::Instant::now();
    client.call("d", "chat", json!({"prompt": "never"})).await;
    let frames = client.until_result("d").await;
    let elapsed = started.elapsed();
    let result = frames.last().unwrap();
    assert_eq!(result["error"]["code"], "TIMEOUT", "{result}");
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    let running = frames
        .iter()
        .find(|f| f["op"] == "progress")
        .expect("progress while running");
    assert_eq!(running["phase"], "running");
    assert!(
        running["message"]
            .as_str()
            .unwrap()
            .contains("provider offline")
    );
    let health = wait_permits_back(&daemon.shared).await;
    assert!(health.ok);
    assert_eq!(health.calls_running, 0);
}

#[tokio::test]
async fn cancel_really_stops_the_work() {
    let daemon = start(|c| c.providers[ProviderId::Offline].latency_ms = 60_000).await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    client.call("k", "chat", json!({"prompt": "long"})).await;
    assert_eq!(client.recv().await["op"], "call_tool_ack");
    client
        .send(json!({"op": "cancel", "request_id": "k"}))
        .await;
    let cancelled = client.recv().await;
    assert_eq!(cancelled["op"], "cancelled");
    assert_eq!(cancelled["request_id"], "k");
    let result = client.result("k").await;
    assert_eq!(result["error"]["code"], "CANCELLED");
    let health = wait_permits_back(&daemon.shared).await;
    assert_eq!(health.calls_running, 0);
    // Cancelling it again names the request and says why.
    client
        .send(json!({"op": "cancel", "request_id": "k"}))
        .await;
    let error = client.recv().await;
    assert_eq!(error["op"], "error");
    assert_eq!(error["request_id"], "k");
}

#[tokio::test]
async fn health_reports_running_calls_without_a_leak() {
    let daemon = start(|c| c.providers[ProviderId::Offline].latency_ms = 2_000).await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    client.call("h", "chat", json!({"prompt": "hold"})).await;
    assert_eq!(client.recv().await["op"], "call_tool_ack");
    tokio::time::sleep(Duration::from_millis(100)).await;
    client
        .send(json!({"op": "health", "request_id": "hh"}))
        .await;
    let health = client
        .recv_until(|f| f["op"] == "health_res")
        .await
        .pop()
        .unwrap();
    assert_eq!(health["ok"], true, "{health}");
    assert_eq!(health["health"]["calls_running"], 1);
    let global = &health["health"]["limits"][0];
    assert_eq!(global["name"], "global");
    assert_eq!(global["permits_in_use"], 1);
    assert_eq!(global["holders"], 1);
}

#[tokio::test]
async fn same_request_id_while_running_is_joined() {
    let daemon = start(|c| c.providers[ProviderId::Offline].latency_ms = 300).await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    client.call("j", "chat", json!({"prompt": "once"})).await;
    client.call("j", "chat", json!({"prompt": "once"})).await;
    let frames = client.until_result("j").await;
    let acks: Vec<&Value> = frames
        .iter()
        .filter(|f| f["op"] == "call_tool_ack")
        .collect();
    assert_eq!(acks.len(), 2);
    assert_eq!(acks[1]["joined"], true);
    client.send(json!({"op": "ping"})).await;
    let rest = client.recv_until(|f| f["op"] == "pong").await;
    assert!(
        rest.iter().all(|f| f["op"] != "call_tool_res"),
        "answered twice: {rest:?}"
    );
}

#[tokio::test]
async fn local_tools_answer() {
    let daemon = start(|_| {}).await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    // Local tools answer in the tool-output shape, with a JSON document as content.
    let document = |result: &Value| -> Value {
        let output: Value = serde_json::from_str(result["text"].as_str().unwrap()).unwrap();
        assert_eq!(output["status"], "success", "{output}");
        assert_eq!(output["content_type"], "json");
        serde_json::from_str(output["content"].as_str().unwrap()).unwrap()
    };
    for tool in ["version", "listmodels", "status"] {
        client.call(tool, tool, json!({})).await;
        let result = client.result(tool).await;
        assert_eq!(result["ok"], true, "{result}");
        assert!(document(&result).is_object());
    }
    client.call("lm", "listmodels", json!({})).await;
    let parsed = document(&client.result("lm").await);
    // Kimi and GLM are always listed; with no key they are not configured and `auto` is offline.
    let providers: Vec<(&str, bool)> = parsed["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["provider"].as_str().unwrap(),
                p["configured"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        providers,
        vec![("kimi", false), ("glm", false), ("offline", true)]
    );
    assert_eq!(parsed["auto"]["provider"], "offline");
    assert_eq!(
        parsed["providers"][2]["models"],
        json!(["exaid-offline", "exaid-offline-mini"])
    );
    let _ = TOKEN;
}
