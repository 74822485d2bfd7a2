//! The first seeded simulation: the daemon core on one sim node, a client on another,
//! speaking the real protocol over simulated TCP. It proves the seam: the same seed gives
//! the same virtual timeline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::rt::{SimListener, SimRuntime};
use crate::trace::Trace;

/// The daemon's simulated address.
pub const DAEMON_ADDR: &str = "10.0.0.1:8079";
/// The token the simulated daemon uses.
pub const TOKEN: &str = "sim-token-0123456789abcdef";

/// What one smoke run saw.
#[derive(Debug, Clone)]
pub struct SmokeOutcome {
    /// Calls answered `ok`.
    pub calls_ok: usize,
    /// Calls that failed.
    pub calls_failed: usize,
    /// Terminal frames received per call (each must be 1).
    pub terminal_frames: Vec<usize>,
    /// Virtual milliseconds the run took.
    pub virtual_ms: u128,
    /// The event log.
    pub trace: Trace,
}

/// Run the smoke simulation for `seed`: `calls` chat calls through one connection, the
/// offline provider answering after a seed-drawn latency.
pub fn run(seed: u64, calls: usize) -> SmokeOutcome {
    crate::isolate::on_fresh_thread(move || run_here(seed, calls))
}

fn run_here(seed: u64, calls: usize) -> SmokeOutcome {
    let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    runtime.block_on(async move {
        let handle = madsim::runtime::Handle::current();
        let daemon_addr: SocketAddr = DAEMON_ADDR.parse().expect("valid address");
        let latency_ms = 1 + madsim::rand::random::<u64>() % 200;
        let daemon = handle
            .create_node()
            .name("daemon")
            .ip(daemon_addr.ip())
            .build();
        daemon.spawn(async move {
            let rt = exaid::rt::Rt::new(Arc::new(SimRuntime::new()));
            let mut config = exaid::Config::defaults();
            config.offline_latency_ms = latency_ms;
            config.progress_interval_ms = 50;
            let listener = SimListener::bind(daemon_addr)
                .await
                .expect("bind in the simulator");
            let daemon = exaid::Daemon::new(config, TOKEN.to_string(), rt);
            let _ = daemon.serve(Box::new(listener)).await;
        });
        let client = handle
            .create_node()
            .name("client")
            .ip("10.0.0.2".parse().expect("ip"))
            .build();
        let started = madsim::time::Instant::now();
        let mut outcome = client
            .spawn(async move { drive(daemon_addr, calls).await })
            .await
            .expect("client task");
        outcome.virtual_ms = started.elapsed().as_millis();
        outcome
    })
}

async fn drive(daemon_addr: SocketAddr, calls: usize) -> SmokeOutcome {
    let mut trace = Trace::default();
    // The daemon node starts concurrently: retry until its listener is up.
    let stream = loop {
        match madsim::net::TcpStream::connect(daemon_addr).await {
            Ok(stream) => break stream,
            Err(_) => madsim::time::sleep(Duration::from_millis(1)).await,
        }
    };
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{daemon_addr}/"), stream)
        .await
        .expect("websocket handshake");
    let send = |frame: Value| Message::text(frame.to_string());
    ws.send(send(json!({"op": "hello", "token": TOKEN})))
        .await
        .expect("send hello");
    for i in 0..calls {
        let frame = json!({"op": "call_tool", "request_id": format!("r{i}"), "name": "chat",
                           "arguments": {"prompt": format!("question {i}")}});
        ws.send(send(frame)).await.expect("send call");
    }
    let mut terminal_frames = vec![0usize; calls];
    let mut calls_ok = 0;
    let mut calls_failed = 0;
    while terminal_frames.contains(&0) {
        let Some(Ok(Message::Text(text))) = ws.next().await else {
            trace.record("connection lost");
            break;
        };
        let frame: Value = serde_json::from_str(&text).expect("daemon sends JSON");
        let op = frame["op"].as_str().unwrap_or("?").to_string();
        let id = frame["request_id"].as_str().unwrap_or("-").to_string();
        trace.record(format!("recv {op} {id} seq={}", frame["seq"]));
        if op == "call_tool_res" {
            let index: usize = id.trim_start_matches('r').parse().expect("our id");
            terminal_frames[index] += 1;
            if frame["ok"] == true {
                calls_ok += 1;
            } else {
                calls_failed += 1;
            }
        }
    }
    SmokeOutcome {
        calls_ok,
        calls_failed,
        terminal_frames,
        virtual_ms: 0,
        trace,
    }
}
