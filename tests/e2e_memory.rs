//! The daemon's one memory budget (`EXAI_MEMORY_MAX_BYTES`), end to end on real tokio: under
//! a flood from clients that never ack and go away, the count stays within the budget, the
//! oldest frames of disconnected sessions are shed and announced as a `gap` that names exactly
//! the seqs lost, a live client still gets every result; retention follows the `acks` a
//! client declares in its hello.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::{Client, TOKEN, TestDaemon, start_with, wait_permits_back};
use exaid::config::Config;
use exaid::provider::{ChatRequest, ChatResponse, ChunkSink, Provider, ProviderError};
use exaid::rt::BoxFuture;
use serde_json::{Value, json};

/// The smallest budget the key accepts: a few dozen of the results below.
const BUDGET_BYTES: usize = 4 * 1024 * 1024;

/// A provider whose every answer is `bytes` long, after `delay`.
struct Big {
    delay: Duration,
    bytes: usize,
    models: Vec<String>,
}

impl Provider for Big {
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
        let (delay, bytes) = (self.delay, self.bytes);
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            Ok(ChatResponse {
                text: "x".repeat(bytes),
                model: request.model,
                ..Default::default()
            })
        })
    }
}

/// A daemon with a small budget and a provider of 16 KiB answers, changed by `tweak`.
async fn daemon(tweak: impl FnOnce(&mut Config)) -> TestDaemon {
    start_with(
        |c| {
            c.limits.memory_bytes_max = BUDGET_BYTES;
            c.connections.per_ip_max = 1000;
            c.tools.progress_interval_ms = 60_000;
            tweak(c);
        },
        |config, rt| {
            exaid::Daemon::builder(config, TOKEN.to_string(), rt)
                .provider(Arc::new(Big {
                    delay: Duration::from_millis(300),
                    bytes: 16 * 1024,
                    models: vec!["big".to_string()],
                }))
                .build()
        },
    )
    .await
}

/// Connect and say hello; `acks` is sent only when given (an old client sends no such field).
async fn hello(daemon: &TestDaemon, acks: Option<bool>) -> (Client, Value) {
    let mut client = Client::connect(daemon.addr).await;
    let mut hello = json!({"op": "hello", "token": TOKEN});
    if let Some(acks) = acks {
        hello["acks"] = json!(acks);
    }
    client.send(hello).await;
    let ack = client.recv().await;
    assert_eq!(ack["op"], "hello_ack", "{ack}");
    (client, ack)
}

fn seq(frame: &Value) -> u64 {
    frame["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("no seq: {frame}"))
}

/// Wait until no call runs and every permit is back.
async fn quiet(daemon: &TestDaemon) {
    for _ in 0..1000 {
        let running: usize = daemon
            .shared
            .sessions
            .all()
            .iter()
            .map(|s| s.calls_running())
            .sum();
        if running == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    wait_permits_back(&daemon.shared).await;
}

/// A client that never acks: it sends its calls, reads their acks, and goes away.
struct Gone {
    session_id: Value,
    resume_token: Value,
    last_seq: u64,
    request_ids: Vec<String>,
}

async fn call_and_leave(daemon: &TestDaemon, name: usize, calls: usize) -> Gone {
    let (mut client, hello) = hello(daemon, None).await;
    let request_ids: Vec<String> = (0..calls).map(|i| format!("flood-{name}-{i}")).collect();
    for id in &request_ids {
        client.call(id, "chat", json!({"prompt": id})).await;
    }
    let mut last_seq = 0;
    for _ in &request_ids {
        let ack = client.recv().await;
        assert_eq!(ack["op"], "call_tool_ack", "{ack}");
        last_seq = seq(&ack);
    }
    drop(client);
    Gone {
        session_id: hello["session_id"].clone(),
        resume_token: hello["resume_token"].clone(),
        last_seq,
        request_ids,
    }
}

#[tokio::test]
async fn the_memory_budget_under_a_flood_from_clients_that_never_ack() {
    let daemon = daemon(|c| {
        c.sessions.result_cache_max = 1;
        c.conversations.conversations_max = 4;
    })
    .await;
    // A live client that never acks either, calling throughout the flood.
    let (mut live, _) = hello(&daemon, None).await;
    let live_calls = tokio::spawn(async move {
        let mut answered = 0;
        for i in 0..8 {
            let id = format!("live-{i}");
            live.call(&id, "chat", json!({"prompt": id})).await;
            let result = live.result(&id).await;
            assert_eq!(
                result["ok"], true,
                "a live client gets every result: {result}"
            );
            answered += 1;
        }
        answered
    });
    let mut gone = Vec::new();
    for name in 0..40 {
        gone.push(call_and_leave(&daemon, name, 3).await);
        // In waves: calls in flight reserve their own state too, and this test is about
        // the frames they leave behind, which must make room for the next wave.
        if name % 10 == 9 {
            quiet(&daemon).await;
        }
    }
    assert_eq!(live_calls.await.unwrap(), 8);
    quiet(&daemon).await;

    let stats = daemon.shared.memory.stats();
    assert!(
        stats.frames_shed_total > 0,
        "the flood is over the budget: {stats:?}"
    );
    assert!(stats.peak_bytes <= BUDGET_BYTES, "{stats:?}");
    assert_eq!(
        stats.over_total, 0,
        "there was always something to shed: {stats:?}"
    );

    // The first client gone, the oldest frames: its resume says exactly what it lost.
    let first = &gone[0];
    let (mut back, resumed) = Client::resume(
        daemon.addr,
        &first.session_id,
        &first.resume_token,
        first.last_seq,
    )
    .await;
    assert_eq!(resumed["resumed"], true);
    let last_seq = resumed["last_seq"].as_u64().unwrap();
    assert!(
        last_seq > first.last_seq,
        "its results were pushed: {resumed}"
    );
    let mut covered = BTreeSet::new();
    let mut lost = 0;
    let mut answered = BTreeSet::new();
    while covered.last().copied().unwrap_or(first.last_seq) < last_seq {
        let frame = back.recv().await;
        if frame["op"] == "gap" {
            let (from, to) = (
                frame["from_seq"].as_u64().unwrap(),
                frame["to_seq"].as_u64().unwrap(),
            );
            assert_eq!(from, covered.last().copied().unwrap_or(first.last_seq) + 1);
            assert!(
                frame["reason"]
                    .as_str()
                    .unwrap()
                    .contains("EXAI_MEMORY_MAX_BYTES"),
                "{frame}"
            );
            lost += to - from + 1;
            covered.extend(from..=to);
        } else {
            let seq = seq(&frame);
            assert_eq!(seq, covered.last().copied().unwrap_or(first.last_seq) + 1);
            covered.insert(seq);
            if frame["op"] == "call_tool_res" {
                answered.insert(frame["request_id"].as_str().unwrap().to_string());
            }
        }
    }
    assert!(lost > 0, "the oldest session's frames were shed first");
    // What it lost it asks for again by request id: every call is answered.
    for id in &first.request_ids {
        if answered.contains(id) {
            continue;
        }
        back.call(id, "chat", json!({"prompt": id})).await;
        let result = back.result(id).await;
        assert_eq!(result["ok"], true, "{result}");
    }
    quiet(&daemon).await;
    assert!(daemon.shared.memory.stats().peak_bytes <= BUDGET_BYTES);
}

#[tokio::test]
async fn a_client_that_declares_acks_keeps_frames_until_acked_and_one_that_does_not_does_not() {
    let daemon = daemon(|_| {}).await;
    let session_of = |hello: &Value| {
        daemon
            .shared
            .sessions
            .resume(
                hello["session_id"].as_str().unwrap(),
                hello["resume_token"].as_str().unwrap(),
            )
            .unwrap()
    };

    let (mut acking, hello_a) = hello(&daemon, Some(true)).await;
    acking.call("a", "chat", json!({"prompt": "a"})).await;
    let result = acking.result("a").await;
    let session = session_of(&hello_a);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        session.outbox.stats().frames,
        2,
        "ack and result stay until acked"
    );
    acking.send(json!({"op": "ack", "seq": seq(&result)})).await;
    acking.send(json!({"op": "ping"})).await;
    acking.recv_until(|f| f["op"] == "pong").await;
    assert_eq!(session.outbox.stats().frames, 1, "only the pong is left");

    let (mut old, hello_b) = hello(&daemon, None).await;
    old.call("b", "chat", json!({"prompt": "b"})).await;
    let first = old.result("b").await;
    let session = session_of(&hello_b);
    let mut left = usize::MAX;
    for _ in 0..100 {
        left = session.outbox.stats().frames;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(left, 0, "a frame written to the live socket is delivered");
    // The result cache still answers a repeat.
    old.call("b", "chat", json!({"prompt": "b"})).await;
    let again = old.result("b").await;
    assert_eq!(again["repeated"], true, "{again}");
    assert_eq!(again["text"], first["text"]);
}

#[tokio::test]
async fn a_full_budget_with_every_session_live_refuses_new_calls_and_loses_nothing() {
    let daemon = daemon(|c| c.sessions.inflight_max = 64).await;
    // A client that declares acks and never sends one: everything stays, nothing can be shed.
    let (mut hoarder, _) = hello(&daemon, Some(true)).await;
    let mut refused = None;
    let mut answered = Vec::new();
    for i in 0..200 {
        let id = format!("h-{i}");
        hoarder.call(&id, "chat", json!({"prompt": id})).await;
        let result = hoarder.result(&id).await;
        if result["ok"] == true {
            answered.push(id);
        } else {
            refused = Some(result);
            break;
        }
    }
    let refused = refused.expect("the budget fills");
    assert_eq!(refused["error"]["code"], "OVER_CAPACITY", "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("EXAI_MEMORY_MAX_BYTES"), "{message}");
    // An accepted call's result was never dropped, and a repeat is still answered.
    let last = answered.last().unwrap().clone();
    hoarder.call(&last, "chat", json!({"prompt": last})).await;
    let again = hoarder.result(&last).await;
    assert_eq!(again["repeated"], true, "{again}");
    let stats = daemon.shared.memory.stats();
    assert!(stats.used_bytes >= BUDGET_BYTES, "{stats:?}");
    assert_eq!(stats.frames_shed_total, 0);
}

/// A burst far past what the budget can hold in flight: every call in flight reserves its
/// own state from acceptance (`call::STATE_BYTES`), so the burst is refused at the door with
/// `OVER_CAPACITY` naming the key instead of swelling the daemon, and every call is answered.
#[tokio::test]
async fn a_burst_beyond_the_budget_is_refused_at_the_door_and_every_call_is_answered() {
    let daemon = daemon(|c| {
        c.sessions.inflight_max = 1000;
        c.limits.global_inflight_max = 1000;
        c.limits.queue_waiters_max = 1000;
    })
    .await;
    let in_flight_max = BUDGET_BYTES / exaid::call::STATE_BYTES;
    let burst = 3 * in_flight_max;
    let (mut client, _) = hello(&daemon, Some(false)).await;
    for i in 0..burst {
        let id = format!("b-{i}");
        client.call(&id, "chat", json!({"prompt": id})).await;
    }
    let (mut ok, mut refused) = (0, 0);
    let mut seen = BTreeSet::new();
    while seen.len() < burst {
        let frame = client.recv().await;
        if frame["op"] != "call_tool_res" {
            continue;
        }
        assert!(
            seen.insert(frame["request_id"].to_string()),
            "one answer each: {frame}"
        );
        if frame["ok"] == true {
            ok += 1;
        } else {
            assert_eq!(frame["error"]["code"], "OVER_CAPACITY", "{frame}");
            let message = frame["error"]["message"].as_str().unwrap();
            assert!(message.contains("EXAI_MEMORY_MAX_BYTES"), "{message}");
            refused += 1;
        }
    }
    assert_eq!(ok + refused, burst);
    assert!(
        ok >= 1 && ok <= in_flight_max,
        "ok {ok}, at most {in_flight_max} fit"
    );
    assert!(refused >= burst - in_flight_max, "refused {refused}");
    quiet(&daemon).await;
    let stats = daemon.shared.memory.stats();
    // Past the budget only by what the calls already accepted produced (their results).
    assert!(stats.peak_bytes <= 2 * BUDGET_BYTES, "{stats:?}");
}
