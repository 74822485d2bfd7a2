//! A test harness: an in-process daemon on real tokio and a WebSocket client written only
//! from DESIGN.md section 4.

#![allow(dead_code)]

pub mod mock;
pub mod process;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use exaid::config::Config;
use exaid::rt::Rt;
use exaid::rt::tokio::{TokioListener, TokioRuntime};
use exaid::state::Shared;

/// The token every test daemon uses.
pub const TOKEN: &str = "test-token-0123456789abcdef";

/// How long a test waits for any one frame before failing.
pub const FRAME_WAIT: Duration = Duration::from_secs(10);

/// A daemon serving on a free loopback port.
pub struct TestDaemon {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    /// The HTTP port's routes, bound to this daemon.
    pub routes: axum::Router,
    /// Its metrics, when it keeps them.
    pub metrics: Option<Arc<exaid::operator::metrics::Metrics>>,
}

/// Start a daemon with defaults changed by `tweak`.
pub async fn start(tweak: impl FnOnce(&mut Config)) -> TestDaemon {
    start_with(tweak, |config, rt| {
        exaid::Daemon::new(config, TOKEN.to_string(), rt)
    })
    .await
}

/// Start a daemon built by `build` (to inject providers).
pub async fn start_with(
    tweak: impl FnOnce(&mut Config),
    build: impl FnOnce(Config, Rt) -> exaid::Daemon,
) -> TestDaemon {
    let mut config = Config::defaults();
    config.server.port = 0;
    tweak(&mut config);
    let rt = Rt::new(Arc::new(TokioRuntime::new()));
    let listener = TokioListener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = exaid::rt::Listener::local_addr(&listener).unwrap();
    let daemon = build(config, rt);
    let shared = daemon.shared().clone();
    let routes = daemon.http_routes();
    let metrics = daemon.metrics().cloned();
    tokio::spawn(async move {
        let _ = daemon.serve(Box::new(listener)).await;
    });
    TestDaemon {
        addr,
        shared,
        routes,
        metrics,
    }
}

/// A protocol client.
pub struct Client {
    pub ws: WebSocketStream<TcpStream>,
}

impl Client {
    /// Open a WebSocket to the daemon (no hello yet).
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), stream)
            .await
            .unwrap();
        Client { ws }
    }

    /// Connect and resume `session_id` from `last_seq`; returns the client and the hello_ack.
    pub async fn resume(
        addr: SocketAddr,
        session_id: &Value,
        resume_token: &Value,
        last_seq: u64,
    ) -> (Client, Value) {
        let mut client = Client::connect(addr).await;
        client
            .send(
                json!({"op": "hello", "token": TOKEN, "acks": true, "session_id": session_id,
                         "resume_token": resume_token, "last_seq": last_seq}),
            )
            .await;
        let ack = client.recv().await;
        assert_eq!(ack["op"], "hello_ack", "{ack}");
        (client, ack)
    }

    /// Connect and say hello with the right token; returns the client and the hello_ack.
    pub async fn ready(addr: SocketAddr) -> (Client, Value) {
        let mut client = Client::connect(addr).await;
        // A client of the tests acks (or resumes from its last seq): frames stay until acked.
        client
            .send(json!({"op": "hello", "token": TOKEN, "acks": true}))
            .await;
        let ack = client.recv().await;
        assert_eq!(ack["op"], "hello_ack", "{ack}");
        assert_eq!(ack["ok"], true);
        (client, ack)
    }

    pub async fn send(&mut self, frame: Value) {
        self.ws
            .send(Message::text(frame.to_string()))
            .await
            .unwrap();
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text.to_string())).await.unwrap();
    }

    /// The next JSON frame (skipping WebSocket control frames); panics on close or timeout.
    pub async fn recv(&mut self) -> Value {
        match self.next_event().await {
            Event::Frame(value) => value,
            Event::Closed(code, reason) => panic!("connection closed: {code} {reason}"),
        }
    }

    /// The next frame or the close.
    pub async fn next_event(&mut self) -> Event {
        loop {
            let message = tokio::time::timeout(FRAME_WAIT, self.ws.next())
                .await
                .expect("timed out waiting for a frame");
            match message {
                Some(Ok(Message::Text(text))) => {
                    return Event::Frame(serde_json::from_str(&text).unwrap());
                }
                Some(Ok(Message::Close(Some(frame)))) => {
                    return Event::Closed(u16::from(frame.code), frame.reason.to_string());
                }
                Some(Ok(Message::Close(None))) | None => return Event::Closed(1005, String::new()),
                Some(Ok(_)) => continue,
                Some(Err(err)) => return Event::Closed(1006, err.to_string()),
            }
        }
    }

    /// Expect the daemon to close; returns (code, reason).
    pub async fn expect_close(&mut self) -> (u16, String) {
        match self.next_event().await {
            Event::Closed(code, reason) => (code, reason),
            Event::Frame(frame) => panic!("expected a close, got {frame}"),
        }
    }

    /// Frames until one matches `pred` (returned last).
    pub async fn recv_until(&mut self, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut frames = Vec::new();
        loop {
            let frame = self.recv().await;
            let done = pred(&frame);
            frames.push(frame);
            if done {
                return frames;
            }
        }
    }

    /// Start a call.
    pub async fn call(&mut self, request_id: &str, name: &str, arguments: Value) {
        self.send(json!({"op": "call_tool", "request_id": request_id, "name": name, "arguments": arguments}))
            .await;
    }

    /// Frames up to and including the terminal frame of `request_id`.
    pub async fn until_result(&mut self, request_id: &str) -> Vec<Value> {
        let id = request_id.to_string();
        self.recv_until(move |f| f["op"] == "call_tool_res" && f["request_id"] == id.as_str())
            .await
    }

    /// The terminal frame of `request_id`.
    pub async fn result(&mut self, request_id: &str) -> Value {
        self.until_result(request_id).await.pop().unwrap()
    }
}

/// What the daemon sent.
#[derive(Debug)]
pub enum Event {
    Frame(Value),
    Closed(u16, String),
}

/// Wait until the daemon's health shows every permit back (calls end asynchronously).
pub async fn wait_permits_back(shared: &Shared) -> exaid::health::Health {
    for _ in 0..200 {
        let health = exaid::health::snapshot(shared);
        let busy = health.limits.iter().any(|l| l.permits_in_use > 0)
            || health.session_limits.permits_in_use > 0;
        if !busy {
            return health;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "permits never came back: {:?}",
        exaid::health::snapshot(shared)
    );
}

/// The model's text inside a successful call's tool output (the original's JSON shape:
/// `status`, `content`, `content_type`, `metadata`...).
pub fn answer(result: &Value) -> String {
    let text = result["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text: {result}"));
    let output: Value =
        serde_json::from_str(text).unwrap_or_else(|_| panic!("tool output is JSON: {text}"));
    output["content"]
        .as_str()
        .unwrap_or_else(|| panic!("no content: {output}"))
        .to_string()
}

/// Call `chat` and return its terminal frame and how long it took from the send.
pub async fn chat(client: &mut Client, id: &str, arguments: Value) -> (Value, Duration) {
    let sent = std::time::Instant::now();
    client.call(id, "chat", arguments).await;
    let result = client.result(id).await;
    (result, sent.elapsed())
}

/// The whole tool output of a successful call.
pub fn output_of(result: &Value) -> Value {
    assert_eq!(result["ok"], true, "{result}");
    serde_json::from_str(result["text"].as_str().unwrap()).unwrap()
}
