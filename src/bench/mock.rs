//! The mock OpenAI-compatible provider the benchmark points the daemon at.
//!
//! Why a mock of our own: the benchmark must measure exaid, not a remote provider, and it must
//! check every answer. Each request carries a call id in its prompt (`BENCH[id]`); the mock
//! answers `bench answer id` and records, per call id, how long its handler took (its own
//! service time, configured latency included), so the load generator can subtract it from
//! the end-to-end time and see what the daemon added.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

/// The model name the daemon is configured to serve through the mock.
pub const MODEL: &str = "bench-model";

/// Service times not yet claimed by the load generator, bounded so a run whose answers are
/// never read cannot grow the map without limit.
pub const SERVICE_TIMES_MAX: usize = 1 << 20;

/// The text the mock answers for call `id`; the load generator expects exactly this.
pub fn answer_for(id: u64) -> String {
    format!("bench answer {id}")
}

/// The prompt that carries call `id` to the mock.
pub fn prompt_for(id: u64) -> String {
    format!("BENCH[{id}]")
}

/// What the mock shares with the load generator.
pub struct MockState {
    /// How long each answer is held back, to model a provider's latency.
    latency: Duration,
    /// Service time of each answered call by call id, in microseconds, until claimed.
    service_us: Mutex<HashMap<u64, u64>>,
    /// Requests whose body held no call id (answered 400).
    pub malformed: std::sync::atomic::AtomicU64,
}

impl MockState {
    /// The mock's service time for call `id`, in microseconds, claimed once.
    pub fn take_service_us(&self, id: u64) -> Option<u64> {
        self.service_us.lock().expect("mock lock").remove(&id)
    }
}

/// A running mock: where it listens and what it records.
pub struct Mock {
    /// Its loopback address.
    pub addr: SocketAddr,
    /// Its records.
    pub state: Arc<MockState>,
}

impl Mock {
    /// The base URL the daemon's `KIMI_API_URL` gets.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

/// Start the mock on 127.0.0.1:`port` (0: any free port) on the current tokio runtime.
pub async fn start(latency: Duration, port: u16) -> std::io::Result<Mock> {
    let state = Arc::new(MockState {
        latency,
        service_us: Mutex::new(HashMap::new()),
        malformed: std::sync::atomic::AtomicU64::new(0),
    });
    let app = Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let serve = async move {
        if let Err(err) = axum::serve(listener, app).await {
            eprintln!("exaid bench: the mock provider stopped: {err}");
        }
    };
    // The bench is a load generator on real tokio, not the daemon's core.
    tokio::spawn(serve); // dst-ok: the load generator runs on real tokio
    Ok(Mock { addr, state })
}

/// The call id in a request body: the digits after the first `BENCH[`.
fn call_id(body: &[u8]) -> Option<u64> {
    const MARK: &[u8] = b"BENCH[";
    let at = body.windows(MARK.len()).position(|w| w == MARK)? + MARK.len();
    let digits = body[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&body[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

async fn chat_completions(State(state): State<Arc<MockState>>, body: Bytes) -> Response {
    let started = Instant::now(); // dst-ok: the load generator measures and paces in real time
    let Some(id) = call_id(&body) else {
        state
            .malformed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return (StatusCode::BAD_REQUEST, "no BENCH[id] in the prompt").into_response();
    };
    if !state.latency.is_zero() {
        tokio::time::sleep(state.latency).await; // dst-ok: the load generator measures and paces in real time
    }
    let text = answer_for(id);
    let json = format!(
        "{{\"id\":\"chatcmpl-{id}\",\"object\":\"chat.completion\",\"model\":\"{MODEL}\",\"choices\":[{{\"index\":0,\"message\":{{\"role\":\"assistant\",\"content\":\"{text}\"}},\"finish_reason\":\"stop\"}}]}}"
    );
    let service_us = started.elapsed().as_micros() as u64;
    {
        let mut times = state.service_us.lock().expect("mock lock");
        if times.len() < SERVICE_TIMES_MAX {
            times.insert(id, service_us);
        }
    }
    ([(header::CONTENT_TYPE, "application/json")], json).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_are_found_in_a_body() {
        assert_eq!(
            call_id(br#"{"messages":[{"content":"BENCH[42]"}]}"#),
            Some(42)
        );
        assert_eq!(call_id(b"no id"), None);
        assert_eq!(call_id(b"BENCH[]"), None);
    }
}
