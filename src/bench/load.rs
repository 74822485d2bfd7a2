//! The load generator: WebSocket clients that call `chat` end to end, and the same calls sent
//! straight to the mock over HTTP (the baseline).
//!
//! Why one task per connection that both sends and reads: the schedule, the acks and the
//! bookkeeping of calls in flight stay in one place with no locks. Every call is checked:
//! its `request_id` must be one this connection sent and still waits for, `ok` must be true,
//! and the tool output's `content` must be exactly what the mock answered for that call.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::mock::{self, MockState};
use super::stats::Samples;
use exaid::protocol::ServerFrame;

/// Error messages kept as examples; the rest are only counted.
const ERROR_EXAMPLES_MAX: usize = 5;

/// How often (in frames received) a client acks, so the session outbox forgets what was
/// delivered and never reaches its caps.
const ACK_EVERY_FRAMES: u64 = 64;

/// How long the run waits for answers after the last call was sent.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How calls are paced.
#[derive(Debug, Clone, Copy)]
pub enum Pacing {
    /// Open loop: this many calls per second in total, spread evenly over the connections,
    /// sent on schedule whatever the answers do.
    Open {
        /// Calls per second, all connections together.
        rate_per_sec: f64,
    },
    /// Closed loop: each connection keeps this many calls in flight.
    Closed {
        /// Calls in flight per connection.
        inflight: u32,
    },
}

/// What one run is asked to do.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Pacing.
    pub pacing: Pacing,
    /// How long calls are sent.
    pub duration: Duration,
    /// WebSocket connections (or, for the baseline, independent senders).
    pub connections: u32,
}

/// What a run measured.
#[derive(Default)]
pub struct Outcome {
    /// Calls answered and checked.
    pub ok: u64,
    /// Calls that failed, were answered wrongly, or got no answer in time.
    pub errors: u64,
    /// Of the errors: calls refused with `OVER_CAPACITY` (the daemon shedding load).
    pub over_capacity: u64,
    /// Of the errors: calls with no answer at all by the end of the drain.
    pub unanswered: u64,
    /// A few error messages.
    pub examples: Vec<String>,
    /// End-to-end times, call sent to answer read, in µs.
    pub e2e: Samples,
    /// End-to-end minus the mock's service time for the same call, in µs.
    pub overhead: Samples,
    /// From the first call sent to the last answer read.
    pub elapsed: Duration,
}

impl Outcome {
    fn error(&mut self, message: String) {
        self.errors += 1;
        if self.examples.len() < ERROR_EXAMPLES_MAX {
            self.examples.push(message);
        }
    }

    fn merge(&mut self, other: Outcome) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.over_capacity += other.over_capacity;
        self.unanswered += other.unanswered;
        for example in other.examples {
            if self.examples.len() < ERROR_EXAMPLES_MAX {
                self.examples.push(example);
            }
        }
        self.e2e.extend(other.e2e);
        self.overhead.extend(other.overhead);
    }

    fn answered(&mut self, sent_at: Instant, id: u64, mock: &MockState) {
        let e2e_us = sent_at.elapsed().as_micros() as u64;
        self.ok += 1;
        self.e2e.push(e2e_us);
        if let Some(service_us) = mock.take_service_us(id) {
            self.overhead.push(e2e_us.saturating_sub(service_us));
        }
    }
}

/// Calls connection `index` of `connections` sends in open loop, and its interval.
fn open_schedule(plan: &Plan, index: u32) -> (u64, Duration) {
    let Pacing::Open { rate_per_sec } = plan.pacing else {
        return (0, Duration::ZERO);
    };
    let per_conn = rate_per_sec / f64::from(plan.connections);
    let total = (rate_per_sec * plan.duration.as_secs_f64()).round() as u64;
    let base = total / u64::from(plan.connections);
    let extra = u64::from(u64::from(index) < total % u64::from(plan.connections));
    (base + extra, Duration::from_secs_f64(1.0 / per_conn))
}

/// A WebSocket connection with its session open.
pub type Ws = WebSocketStream<TcpStream>;

/// Connect to `addr` and say hello with `token`.
pub async fn connect(addr: SocketAddr, token: &str) -> Result<Ws, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    // A small read buffer: tungstenite zero-fills it before every read (see connection.rs).
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(8 * 1024);
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(format!("ws://{addr}/"), stream, Some(config))
            .await
            .map_err(|e| format!("websocket handshake with {addr} failed: {e}"))?;
    let hello = serde_json::json!({"op": "hello", "token": token, "client": "exaid-bench"});
    ws.send(Message::text(hello.to_string()))
        .await
        .map_err(|e| format!("cannot send hello: {e}"))?;
    let reply = tokio::time::timeout(Duration::from_secs(15), ws.next()) // dst-ok: the load generator measures and paces in real time
        .await
        .map_err(|_| "no hello_ack within 15 s".to_string())?;
    match reply {
        Some(Ok(Message::Text(text))) if text.as_str().contains("\"hello_ack\"") => Ok(ws),
        Some(Ok(Message::Close(frame))) => {
            Err(format!("the daemon closed the connection: {frame:?}"))
        }
        other => Err(format!("expected hello_ack, got {other:?}")),
    }
}

/// The `call_tool` frame for call `id`.
fn call_frame(id: u64) -> String {
    format!(
        "{{\"op\":\"call_tool\",\"request_id\":\"{id}\",\"name\":\"chat\",\"arguments\":{{\"prompt\":\"{}\",\"model\":\"{}\"}}}}",
        mock::prompt_for(id),
        mock::MODEL
    )
}

/// Hands out call ids unique across the run.
pub struct Ids(AtomicU64);

impl Ids {
    /// Ids from 1.
    pub fn new() -> Ids {
        Ids(AtomicU64::new(1))
    }

    fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

/// Drive one connection through the plan.
async fn drive(
    mut ws: Ws,
    plan: Plan,
    index: u32,
    ids: Arc<Ids>,
    mock: Arc<MockState>,
    start: Instant,
) -> Outcome {
    let mut outcome = Outcome::default();
    let mut pending: HashMap<u64, Instant> = HashMap::new();
    let (to_send, interval) = open_schedule(&plan, index);
    let send_until = start + plan.duration;
    let give_up_at = send_until + DRAIN_TIMEOUT;
    let mut sent = 0u64;
    let mut frames_seen = 0u64;
    let mut sending = true;
    if let Pacing::Closed { inflight } = plan.pacing {
        for _ in 0..inflight {
            let id = ids.next();
            pending.insert(id, Instant::now()); // dst-ok: the load generator measures and paces in real time
            if let Err(e) = ws.send(Message::text(call_frame(id))).await {
                outcome.error(format!("send failed: {e}"));
                return outcome;
            }
        }
    }
    // Stagger the open-loop connections across one interval so they do not send in step.
    let offset = interval.mul_f64(f64::from(index) / f64::from(plan.connections.max(1)));
    loop {
        if let Pacing::Open { .. } = plan.pacing {
            sending = sent < to_send;
        }
        if !sending && pending.is_empty() {
            break;
        }
        let next_due = start + offset + interval.mul_f64(sent as f64);
        tokio::select! {
            biased;
            frame = ws.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(frame))) => {
                        outcome.error(format!("the daemon closed the connection: {frame:?}"));
                        break;
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => {
                        outcome.error(format!("read failed: {e}"));
                        break;
                    }
                    None => {
                        outcome.error("the daemon closed the connection".to_string());
                        break;
                    }
                };
                frames_seen += 1;
                if frames_seen.is_multiple_of(ACK_EVERY_FRAMES)
                    && let Some(seq) = seq_of(text.as_str())
                {
                    let _ = ws.send(Message::text(format!("{{\"op\":\"ack\",\"seq\":{seq}}}"))).await;
                }
                if check_frame(text.as_str(), &mut pending, &mut outcome, &mock).is_none() {
                    continue;
                }
                if let Pacing::Closed { .. } = plan.pacing {
                    if Instant::now() < send_until && outcome.e2e.dropped() == 0 { // dst-ok: the load generator measures and paces in real time
                        let id = ids.next();
                        pending.insert(id, Instant::now()); // dst-ok: the load generator measures and paces in real time
                        if let Err(e) = ws.send(Message::text(call_frame(id))).await {
                            outcome.error(format!("send failed: {e}"));
                            break;
                        }
                    } else {
                        sending = false;
                    }
                }
            }
            () = tokio::time::sleep_until(next_due.into()), if sending && matches!(plan.pacing, Pacing::Open { .. }) => { // dst-ok: the load generator measures and paces in real time
                // Send every call that is due (catching up if this task fell behind).
                let now = Instant::now(); // dst-ok: the load generator measures and paces in real time
                while sent < to_send && start + offset + interval.mul_f64(sent as f64) <= now {
                    let id = ids.next();
                    pending.insert(id, Instant::now()); // dst-ok: the load generator measures and paces in real time
                    sent += 1;
                    if let Err(e) = ws.feed(Message::text(call_frame(id))).await {
                        outcome.error(format!("send failed: {e}"));
                        return outcome;
                    }
                }
                if let Err(e) = ws.flush().await {
                    outcome.error(format!("send failed: {e}"));
                    return outcome;
                }
            }
            () = tokio::time::sleep_until(give_up_at.into()) => break, // dst-ok: the load generator measures and paces in real time
        }
    }
    for _ in pending.drain() {
        outcome.unanswered += 1;
        outcome.error(format!(
            "no answer within {} s after the sending stopped",
            DRAIN_TIMEOUT.as_secs()
        ));
    }
    let _ = ws.close(None).await;
    outcome
}

/// The `seq` of a frame the daemon sent.
fn seq_of(text: &str) -> Option<u64> {
    let rest = text.strip_prefix("{\"seq\":")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    rest[..digits].parse().ok()
}

/// Check one frame; for a call's terminal frame, account for it and return its id.
fn check_frame(
    text: &str,
    pending: &mut HashMap<u64, Instant>,
    outcome: &mut Outcome,
    mock: &MockState,
) -> Option<u64> {
    // Acks and progress need no parsing beyond their op.
    if !text.contains("\"op\":\"call_tool_res\"") && !text.contains("\"op\":\"error\"") {
        return None;
    }
    let frame = match exaid::protocol::decode_server(text) {
        Ok(received) => received.frame,
        Err(e) => {
            outcome.error(format!("{e}: {text:.200}"));
            return None;
        }
    };
    let Some(id) = frame.request_id().and_then(|s| s.parse::<u64>().ok()) else {
        outcome.error(format!("a frame names no call of ours: {text:.200}"));
        return None;
    };
    let Some(sent_at) = pending.remove(&id) else {
        outcome.error(format!(
            "an answer for call {id}, which is not waiting: {text:.200}"
        ));
        return None;
    };
    let ServerFrame::CallToolRes {
        ok: true,
        text: output,
        ..
    } = &frame
    else {
        if let ServerFrame::CallToolRes {
            error: Some(error), ..
        } = &frame
            && error.code == exaid::error::ErrorCode::OverCapacity
        {
            outcome.over_capacity += 1;
        }
        outcome.error(format!("call {id} failed: {text:.300}"));
        return Some(id);
    };
    let content = serde_json::from_str::<Value>(output)
        .ok()
        .and_then(|output| output["content"].as_str().map(str::to_string));
    let expected = mock::answer_for(id);
    if content.as_deref() != Some(expected.as_str()) {
        outcome.error(format!(
            "call {id} answered {content:?}, expected {expected:?}"
        ));
        return Some(id);
    }
    outcome.answered(sent_at, id, mock);
    Some(id)
}

/// Run the plan over WebSocket connections to the daemon at `addr`.
pub async fn run_ws(
    addr: SocketAddr,
    token: &str,
    plan: Plan,
    mock: Arc<MockState>,
) -> Result<Outcome, String> {
    let mut connections = Vec::with_capacity(plan.connections as usize);
    for _ in 0..plan.connections {
        connections.push(connect(addr, token).await?);
    }
    let ids = Arc::new(Ids::new());
    let start = Instant::now() + Duration::from_millis(20); // dst-ok: the load generator measures and paces in real time
    let tasks: Vec<_> = connections
        .into_iter()
        .enumerate()
        .map(|(index, ws)| {
            let task = drive(ws, plan, index as u32, ids.clone(), mock.clone(), start);
            tokio::spawn(task) // dst-ok: the load generator runs on real tokio
        })
        .collect();
    let mut total = Outcome::default();
    for task in tasks {
        match task.await {
            Ok(outcome) => total.merge(outcome),
            Err(e) => total.error(format!("a client task failed: {e}")),
        }
    }
    total.elapsed = start.elapsed();
    Ok(total)
}

/// The request body of call `id`, as the daemon would send it to the mock.
fn http_body(id: u64) -> String {
    format!(
        "{{\"model\":\"{}\",\"messages\":[{{\"role\":\"user\",\"content\":\"{}\"}}]}}",
        mock::MODEL,
        mock::prompt_for(id)
    )
}

/// One call straight to the mock, checked like a daemon call.
async fn http_call(client: &reqwest::Client, url: &str, id: u64) -> Result<(), String> {
    let response = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(http_body(id))
        .send()
        .await
        .map_err(|e| format!("call {id}: {e}"))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("call {id}: {e}"))?;
    if !status.is_success() {
        return Err(format!("call {id}: HTTP {status}"));
    }
    let value: Value =
        serde_json::from_slice(&body).map_err(|e| format!("call {id}: not JSON: {e}"))?;
    let content = value["choices"][0]["message"]["content"].as_str();
    let expected = mock::answer_for(id);
    if content != Some(expected.as_str()) {
        return Err(format!(
            "call {id} answered {content:?}, expected {expected:?}"
        ));
    }
    Ok(())
}

/// One baseline sender: the same schedule as one WebSocket connection, over HTTP.
async fn drive_http(
    client: reqwest::Client,
    url: Arc<str>,
    plan: Plan,
    index: u32,
    ids: Arc<Ids>,
    mock: Arc<MockState>,
    start: Instant,
) -> Outcome {
    let send_until = start + plan.duration;
    let give_up_at = send_until + DRAIN_TIMEOUT;
    let one = |id: u64| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let sent_at = Instant::now(); // dst-ok: the load generator measures and paces in real time
            let result = tokio::time::timeout_at(give_up_at.into(), http_call(&client, &url, id)) // dst-ok: the load generator measures and paces in real time
                .await
                .unwrap_or_else(|_| Err(format!("call {id}: no answer in time")));
            (id, sent_at, result)
        }
    };
    let mut outcome = Outcome::default();
    let account = |outcome: &mut Outcome,
                   (id, sent_at, result): (u64, Instant, Result<(), String>)| {
        match result {
            Ok(()) => outcome.answered(sent_at, id, &mock),
            Err(e) => outcome.error(e),
        }
    };
    match plan.pacing {
        Pacing::Open { .. } => {
            let (to_send, interval) = open_schedule(&plan, index);
            let offset = interval.mul_f64(f64::from(index) / f64::from(plan.connections.max(1)));
            let mut in_flight = futures_util::stream::FuturesUnordered::new();
            let mut sent = 0u64;
            while sent < to_send || !in_flight.is_empty() {
                let next_due = start + offset + interval.mul_f64(sent as f64);
                tokio::select! {
                    biased;
                    Some(done) = in_flight.next(), if !in_flight.is_empty() => account(&mut outcome, done),
                    () = tokio::time::sleep_until(next_due.into()), if sent < to_send => { // dst-ok: the load generator measures and paces in real time
                        let now = Instant::now(); // dst-ok: the load generator measures and paces in real time
                        while sent < to_send && start + offset + interval.mul_f64(sent as f64) <= now {
                            in_flight.push(one(ids.next()));
                            sent += 1;
                        }
                    }
                }
            }
        }
        Pacing::Closed { inflight } => {
            let mut in_flight = futures_util::stream::FuturesUnordered::new();
            for _ in 0..inflight {
                in_flight.push(one(ids.next()));
            }
            while let Some(done) = in_flight.next().await {
                account(&mut outcome, done);
                let now = Instant::now(); // dst-ok: the load generator measures and paces in real time
                if now < send_until && outcome.e2e.dropped() == 0 {
                    in_flight.push(one(ids.next()));
                }
            }
        }
    }
    outcome
}

/// Run the plan straight against the mock over HTTP: the baseline.
pub async fn run_http(mock_url: &str, plan: Plan, mock: Arc<MockState>) -> Result<Outcome, String> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let url: Arc<str> = format!("{mock_url}/chat/completions").into();
    let ids = Arc::new(Ids::new());
    let start = Instant::now() + Duration::from_millis(20); // dst-ok: the load generator measures and paces in real time
    let tasks: Vec<_> = (0..plan.connections)
        .map(|index| {
            let task = drive_http(
                client.clone(),
                url.clone(),
                plan,
                index,
                ids.clone(),
                mock.clone(),
                start,
            );
            tokio::spawn(task) // dst-ok: the load generator runs on real tokio
        })
        .collect();
    let mut total = Outcome::default();
    for task in tasks {
        match task.await {
            Ok(outcome) => total.merge(outcome),
            Err(e) => total.error(format!("a baseline task failed: {e}")),
        }
    }
    total.elapsed = start.elapsed();
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_schedule_sends_exactly_rate_times_duration() {
        let plan = Plan {
            pacing: Pacing::Open {
                rate_per_sec: 1000.0,
            },
            duration: Duration::from_secs(3),
            connections: 7,
        };
        let total: u64 = (0..7).map(|i| open_schedule(&plan, i).0).sum();
        assert_eq!(total, 3000);
    }

    #[test]
    fn seq_is_read_from_a_frame() {
        assert_eq!(seq_of("{\"seq\":17,\"op\":\"pong\"}"), Some(17));
        assert_eq!(seq_of("{\"op\":\"pong\"}"), None);
    }
}
