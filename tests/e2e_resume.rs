//! Disconnect-proof delivery, end to end on real tokio: resume after a dropped socket, wrong
//! resume tokens, superseding connections, repeated request ids, session expiry, keep-alive.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{Client, TOKEN, start, start_with, wait_permits_back};
use exaid::config::ProviderId;
use exaid::provider::{ChatRequest, ChatResponse, ChunkSink, Provider, ProviderError};
use exaid::rt::BoxFuture;
use serde_json::{Value, json};

/// A provider that answers after a delay and counts how often it was called.
struct Counting {
    calls: Arc<AtomicU32>,
    delay: Duration,
    models: Vec<String>,
}

impl Provider for Counting {
    fn name(&self) -> &str {
        "offline"
    }
    fn models(&self) -> &[String] {
        &self.models
    }
    fn default_model(&self) -> &str {
        &self.models[0]
    }
    fn is_configured(&self) -> bool {
        true
    }
    fn complete(
        &self,
        request: ChatRequest,
        _chunks: Option<ChunkSink>,
    ) -> BoxFuture<'static, Result<ChatResponse, ProviderError>> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let delay = self.delay;
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            Ok(ChatResponse {
                text: format!(
                    "answer #{n} to {}",
                    request.messages.last().unwrap().content
                ),
                model: request.model,
                ..Default::default()
            })
        })
    }
}

fn seq(frame: &Value) -> u64 {
    frame["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("no seq in {frame}"))
}

#[tokio::test]
async fn a_result_survives_a_dropped_socket_and_arrives_once_on_resume() {
    let daemon = start(|c| {
        c.providers[ProviderId::Offline].latency_ms = 400;
        c.tools.progress_interval_ms = 100;
    })
    .await;
    let (mut first, hello) = Client::ready(daemon.addr).await;
    first
        .call("slow-1", "chat", json!({"prompt": "survive the drop"}))
        .await;
    let ack = first.recv().await;
    assert_eq!(ack["op"], "call_tool_ack");
    let last_seen = seq(&ack);
    drop(first); // the editor loses its socket mid-call
    tokio::time::sleep(Duration::from_millis(700)).await; // the call finishes meanwhile

    let (mut second, resumed) = Client::resume(
        daemon.addr,
        &hello["session_id"],
        &hello["resume_token"],
        last_seen,
    )
    .await;
    assert_eq!(resumed["resumed"], true, "{resumed}");
    assert_eq!(resumed["session_id"], hello["session_id"]);
    let replay_until = resumed["last_seq"].as_u64().unwrap();
    assert!(replay_until > last_seen);
    let frames = second.recv_until(|f| f["op"] == "call_tool_res").await;
    // Every frame after last_seq, in order, exactly once: progress frames, then the result.
    let seqs: Vec<u64> = frames.iter().map(seq).collect();
    let expected: Vec<u64> = (last_seen + 1..=seqs[seqs.len() - 1]).collect();
    assert_eq!(
        seqs, expected,
        "replay must be contiguous from last_seq + 1"
    );
    let result = frames.last().unwrap();
    assert_eq!(result["ok"], true, "{result}");
    assert!(
        result["text"]
            .as_str()
            .unwrap()
            .contains("survive the drop")
    );
    // Nothing more for that call: a ping's pong is next.
    second
        .send(json!({"op": "ping", "request_id": "after"}))
        .await;
    let rest = second.recv_until(|f| f["op"] == "pong").await;
    assert!(rest.iter().all(|f| f["op"] != "call_tool_res"), "{rest:?}");
}

#[tokio::test]
async fn acked_frames_are_not_replayed() {
    let daemon = start(|_| {}).await;
    let (mut first, hello) = Client::ready(daemon.addr).await;
    first.call("a", "version", json!({})).await;
    let frames = first.until_result("a").await;
    let last = seq(frames.last().unwrap());
    first.send(json!({"op": "ack", "seq": last})).await;
    first.send(json!({"op": "ping"})).await;
    let pong = first.recv().await;
    drop(first);
    let (mut second, resumed) = Client::resume(
        daemon.addr,
        &hello["session_id"],
        &hello["resume_token"],
        seq(&pong),
    )
    .await;
    assert_eq!(resumed["resumed"], true);
    second.send(json!({"op": "ping", "request_id": "p2"})).await;
    let next = second.recv().await;
    assert_eq!(
        next["op"], "pong",
        "nothing already seen is replayed: {next}"
    );
    assert_eq!(seq(&next), seq(&pong) + 1);
}

#[tokio::test]
async fn a_wrong_resume_token_never_reaches_the_session() {
    let daemon = start(|c| c.providers[ProviderId::Offline].latency_ms = 100).await;
    let (mut owner, hello) = Client::ready(daemon.addr).await;
    owner
        .call("secret-call", "chat", json!({"prompt": "private"}))
        .await;
    owner.result("secret-call").await;
    let (mut intruder, ack) = Client::resume(
        daemon.addr,
        &hello["session_id"],
        &json!("not-the-token"),
        0,
    )
    .await;
    assert_eq!(ack["resumed"], false);
    assert_ne!(ack["session_id"], hello["session_id"]);
    assert!(
        ack["resume_refused"]
            .as_str()
            .unwrap()
            .contains("resume_token")
    );
    intruder
        .send(json!({"op": "ping", "request_id": "p"}))
        .await;
    let next = intruder.recv().await;
    assert_eq!(next["op"], "pong", "no frame of the other session: {next}");
    assert_eq!(seq(&next), 1);
    // Without any token at all: same.
    let mut client = Client::connect(daemon.addr).await;
    client
        .send(json!({"op": "hello", "token": TOKEN, "session_id": hello["session_id"]}))
        .await;
    let ack = client.recv().await;
    assert_eq!(ack["resumed"], false);
}

#[tokio::test]
async fn a_second_connection_supersedes_the_first_and_the_session_stays() {
    let daemon = start(|c| c.providers[ProviderId::Offline].latency_ms = 300).await;
    let (mut first, hello) = Client::ready(daemon.addr).await;
    first
        .call("keep", "chat", json!({"prompt": "still running"}))
        .await;
    let ack = first.recv().await;
    let (mut second, resumed) = Client::resume(
        daemon.addr,
        &hello["session_id"],
        &hello["resume_token"],
        seq(&ack),
    )
    .await;
    assert_eq!(resumed["resumed"], true);
    let (code, reason) = first.expect_close().await;
    assert_eq!(code, 4004, "{reason}");
    assert!(reason.contains("superseded"), "{reason}");
    let result = second.result("keep").await;
    assert_eq!(result["ok"], true);
}

#[tokio::test]
async fn a_repeated_request_id_after_completion_gets_the_result_without_a_second_provider_call() {
    let calls = Arc::new(AtomicU32::new(0));
    let provider_calls = calls.clone();
    let daemon = start_with(
        |_| {},
        move |config, rt| {
            exaid::Daemon::builder(config, TOKEN.to_string(), rt)
                .provider(Arc::new(Counting {
                    calls: provider_calls,
                    delay: Duration::from_millis(50),
                    models: vec!["counting".to_string()],
                }))
                .build()
        },
    )
    .await;
    let (mut client, _) = Client::ready(daemon.addr).await;
    client
        .call("once", "chat", json!({"prompt": "only once"}))
        .await;
    let first = client.result("once").await;
    assert_eq!(first["ok"], true);
    client
        .call("once", "chat", json!({"prompt": "only once"}))
        .await;
    let again = client.recv().await;
    assert_eq!(again["op"], "call_tool_res");
    assert_eq!(again["repeated"], true);
    assert_eq!(again["text"], first["text"]);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the provider must not be called twice"
    );
    // While running, a repeat joins instead.
    client
        .call("twice", "chat", json!({"prompt": "joined"}))
        .await;
    client
        .call("twice", "chat", json!({"prompt": "joined"}))
        .await;
    let frames = client.until_result("twice").await;
    assert_eq!(frames.iter().filter(|f| f["joined"] == true).count(), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_client_that_never_returns_is_cleaned_up_after_the_ttl() {
    let daemon = start(|c| {
        c.providers[ProviderId::Offline].latency_ms = 60_000;
        c.sessions.ttl_ms = 300;
    })
    .await;
    let (mut client, hello) = Client::ready(daemon.addr).await;
    client
        .call("abandoned", "chat", json!({"prompt": "nobody waits"}))
        .await;
    assert_eq!(client.recv().await["op"], "call_tool_ack");
    drop(client);
    let health = wait_permits_back(&daemon.shared).await;
    assert_eq!(
        health.calls_running, 0,
        "the expired session's call was cancelled"
    );
    for _ in 0..100 {
        if exaid::health::snapshot(&daemon.shared).sessions == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(exaid::health::snapshot(&daemon.shared).sessions, 0);
    let (_late, ack) =
        Client::resume(daemon.addr, &hello["session_id"], &hello["resume_token"], 0).await;
    assert_eq!(
        ack["resumed"], false,
        "an expired session cannot be resumed"
    );
}

#[tokio::test]
async fn keep_alive_closes_a_silent_peer_and_keeps_a_live_one() {
    let daemon = start(|c| {
        c.connections.ping_interval_ms = 150;
        c.connections.ping_timeout_ms = 150;
    })
    .await;
    // A live client keeps reading and talking (tungstenite answers the daemon's pings while
    // it reads) and stays connected across several ping timeouts.
    let (mut live, _) = Client::ready(daemon.addr).await;
    // A silent client never reads again, so it never answers a ping.
    let (silent, _) = Client::ready(daemon.addr).await;
    for round in 0..7 {
        live.send(json!({"op": "ping", "request_id": format!("round-{round}")}))
            .await;
        live.recv_until(|f| f["op"] == "pong").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    live.send(json!({"op": "ping", "request_id": "still-here"}))
        .await;
    let pong = live.recv_until(|f| f["op"] == "pong").await.pop().unwrap();
    assert_eq!(pong["request_id"], "still-here");
    let health = exaid::health::snapshot(&daemon.shared);
    assert_eq!(
        health.sessions, 2,
        "the silent client's session is kept for resume"
    );
    assert_eq!(
        health.sessions_attached, 1,
        "the silent client's socket was closed"
    );
    drop(silent);
}
