//! Operating exaid, end to end: `/metrics` after calls, `/readyz` and `/status` while a call
//! runs, and SIGTERM against the real binary with a call in flight.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::process::{sigterm, wait_exit};
use common::{Client, start, wait_permits_back};
use exaid::config::ProviderId;
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

/// A minimal HTTP/1.1 GET: (status, body).
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let status: u16 = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

async fn serve_http(daemon: &common::TestDaemon) -> SocketAddr {
    exaid::rt::tokio::serve_http(
        "127.0.0.1:0".parse().unwrap(),
        daemon.routes.clone(),
        exaid::operator::http::limits(&daemon.shared.config.server),
        std::future::pending(),
    )
    .await
    .unwrap()
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn metrics_move_with_calls() {
    let daemon = start(|_| {}).await;
    let http = serve_http(&daemon).await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    for i in 0..3 {
        client
            .call(&format!("m{i}"), "chat", json!({"prompt": "count me"}))
            .await;
        client.result(&format!("m{i}")).await;
    }
    client.call("bad", "chat", json!({"prompt": 1})).await;
    client.result("bad").await;
    let (status, text) = get(http, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(
        metric(&text, "exaid_calls_total{tool=\"chat\",outcome=\"OK\"}"),
        3.0
    );
    assert_eq!(
        metric(
            &text,
            "exaid_calls_total{tool=\"-\",outcome=\"VALIDATION_ERROR\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(&text, "exaid_provider_attempts_total{provider=\"offline\"}"),
        3.0
    );
    assert_eq!(
        metric(&text, "exaid_call_duration_seconds_count{tool=\"chat\"}"),
        3.0
    );
    assert_eq!(
        metric(&text, "exaid_call_overhead_seconds_count{tool=\"chat\"}"),
        3.0
    );
    assert_eq!(
        metric(&text, "exaid_permit_mismatch{limit=\"global\"}"),
        0.0
    );
    assert_eq!(metric(&text, "exaid_permits_limit{limit=\"global\"}"), 24.0);
    assert_eq!(metric(&text, "exaid_sessions"), 1.0);
    assert_eq!(metric(&text, "exaid_connections"), 1.0);
    for series in [
        "exaid_permit_waiters{limit=\"provider:offline\"}",
        "exaid_outbox_frames",
        "exaid_resumes_total",
        "exaid_gaps_total",
    ] {
        metric(&text, series);
    }
    assert!(text.trim_end().ends_with("# EOF"));
}

#[tokio::test]
async fn ready_and_honest_while_a_call_runs_then_unready_while_draining() {
    let daemon = start(|c| c.providers[ProviderId::Offline].latency_ms = 1_500).await;
    let http = serve_http(&daemon).await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    client
        .call("busy", "chat", json!({"prompt": "hold on"}))
        .await;
    assert_eq!(client.recv().await["op"], "call_tool_ack");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, body) = get(http, "/readyz").await;
    assert_eq!(
        status, 200,
        "a running call never makes the daemon unready: {body}"
    );
    let (status, body) = get(http, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, body) = get(http, "/status").await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["ok"], true, "{doc}");
    assert_eq!(doc["calls_running"], 1);
    assert_eq!(doc["sessions"], 1);
    assert_eq!(doc["connections"], 1);
    let global = &doc["limits"][0];
    assert_eq!(
        (
            global["name"].as_str(),
            global["in_use"].as_u64(),
            global["holders"].as_u64()
        ),
        (Some("global"), Some(1), Some(1))
    );
    assert_eq!(global["mismatch"], 0);
    assert_eq!(doc["provider_cooldowns"][0]["cooling_down"], false);
    assert!(doc["uptime_secs"].as_f64().unwrap() > 0.0);
    // Draining: unready at once, the running call still completes.
    let shared = daemon.shared.clone();
    let shutdown =
        tokio::spawn(async move { exaid::shutdown::run(&shared, Duration::from_secs(10)).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (status, body) = get(http, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("shutting down"));
    client
        .call("late", "chat", json!({"prompt": "too late"}))
        .await;
    let refused = client.result("late").await;
    assert_eq!(refused["error"]["code"], "SERVICE_UNAVAILABLE");
    let result = client.result("busy").await;
    assert_eq!(
        result["ok"], true,
        "the call in flight finishes within the grace: {result}"
    );
    let (code, reason) = client.expect_close().await;
    assert_eq!(code, 1001, "{reason}");
    let report = shutdown.await.unwrap();
    assert_eq!((report.calls_in_flight, report.calls_stopped), (1, 0));
    wait_permits_back(&daemon.shared).await;
}

/// Start the real binary; returns the child and the WebSocket address.
fn spawn_binary(home: &std::path::Path, env: &[(&str, &str)]) -> (std::process::Child, SocketAddr) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_exaid"));
    command
        .current_dir(home)
        .env_clear()
        .env("HOME", home)
        .env("EXAI_WS_TOKEN", common::TOKEN)
        .env("EXAI_HTTP_PORT", "0")
        .env("RUST_LOG", "warn")
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("ws://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    (child, addr)
}

#[tokio::test]
async fn sigterm_lets_the_call_in_flight_finish_and_exits_zero() {
    let home = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn_binary(home.path(), &[("EXAI_OFFLINE_LATENCY_MS", "800")]);
    let (mut client, _) = Client::ready(addr).await;
    client
        .call("inflight", "chat", json!({"prompt": "finish me"}))
        .await;
    assert_eq!(client.recv().await["op"], "call_tool_ack");
    sigterm(&child);
    let result = client.result("inflight").await;
    assert_eq!(result["ok"], true, "{result}");
    let (code, reason) = client.expect_close().await;
    assert_eq!(code, 1001, "{reason}");
    let status = wait_exit(&mut child).await;
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn past_the_grace_period_calls_end_with_service_unavailable_never_silence() {
    let home = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn_binary(
        home.path(),
        &[
            ("EXAI_OFFLINE_LATENCY_MS", "30000"),
            ("EXAI_SHUTDOWN_GRACE_SECS", "0.3"),
        ],
    );
    let (mut client, _) = Client::ready(addr).await;
    client
        .ws
        .send(Message::text(json!({"op": "call_tool", "request_id": "long", "name": "chat", "arguments": {"prompt": "too long"}}).to_string()))
        .await
        .unwrap();
    assert_eq!(client.recv().await["op"], "call_tool_ack");
    sigterm(&child);
    let result = client.result("long").await;
    assert_eq!(result["error"]["code"], "INTERRUPTED", "{result}");
    assert_eq!(result["error"]["retryable"], true, "{result}");
    assert_eq!(client.expect_close().await.0, 1001);
    assert_eq!(wait_exit(&mut child).await.code(), Some(0));
}
