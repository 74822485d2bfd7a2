//! An OpenAI-compatible mock provider (axum, 127.0.0.1:0), scripted per request, which records
//! what each request carried, when it arrived, how many were in flight at once, and whether a
//! request was aborted (the handler future dropped because the client went away). The
//! daemon's `kimi_api_url` / `glm_api_url` point at it with a test key.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use exaid::config::{Config, ProviderId, Secret};
use serde_json::{Value, json};

/// The API key the daemon is given; the mock checks it arrives as a bearer token.
pub const KEY: &str = "sk-test-0123456789abcdef";

/// What the mock answers to one request.
#[derive(Clone)]
pub enum Reply {
    /// A completion with this text: one JSON object, or (for a streaming request) one SSE
    /// event and `[DONE]`.
    Text(String),
    /// The same, after a pause.
    Slow(Duration, String),
    /// An error: status, headers, body.
    Status(u16, Vec<(&'static str, String)>, String),
    /// Never answers.
    Hang,
    /// An SSE body written piece by piece, each after its pause.
    Sse(Vec<(Duration, String)>),
    /// This JSON body, whole, whatever the request asked (a tool-calls round, sources).
    Json(Value),
}

/// One request as the mock saw it.
#[derive(Clone, Debug)]
pub struct Arrival {
    /// When it arrived.
    pub at: Instant,
    /// The path it was sent to (tells Kimi from GLM).
    pub path: String,
    /// Its `Authorization` header.
    pub authorization: String,
    /// Its JSON body.
    pub body: Value,
}

/// The mock's script and its observations.
pub struct MockState {
    /// Replies for the next requests, in order.
    pub script: Mutex<VecDeque<Reply>>,
    /// The reply once the script is used up.
    pub fallback: Mutex<Reply>,
    /// Every request, in arrival order.
    pub arrivals: Mutex<Vec<Arrival>>,
    /// Requests being handled now.
    pub in_flight: AtomicUsize,
    /// The most ever handled at once.
    pub in_flight_max: AtomicUsize,
    /// Requests whose handler was dropped before it answered.
    pub aborted: AtomicUsize,
}

/// Counts a request in flight; on drop counts it out, and as aborted unless it answered.
pub struct InFlight {
    /// Whose counters.
    pub state: Arc<MockState>,
    /// Set when the handler produced its answer.
    pub answered: bool,
}

impl InFlight {
    pub fn enter(state: Arc<MockState>) -> InFlight {
        let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state.in_flight_max.fetch_max(now, Ordering::SeqCst);
        InFlight {
            state,
            answered: false,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state.in_flight.fetch_sub(1, Ordering::SeqCst);
        if !self.answered {
            self.state.aborted.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A running mock provider.
pub struct Mock {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its script and observations.
    pub state: Arc<MockState>,
}

impl Mock {
    pub async fn start(script: Vec<Reply>) -> Mock {
        let state = Arc::new(MockState {
            script: Mutex::new(script.into()),
            fallback: Mutex::new(Reply::Text("fallback".into())),
            arrivals: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            in_flight_max: AtomicUsize::new(0),
            aborted: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/kimi/v1/chat/completions", post(chat_completions))
            .route("/glm/v4/chat/completions", post(chat_completions))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Mock { addr, state }
    }

    pub fn kimi_url(&self) -> String {
        format!("http://{}/kimi/v1", self.addr)
    }

    pub fn glm_url(&self) -> String {
        format!("http://{}/glm/v4", self.addr)
    }

    pub fn arrivals(&self) -> Vec<Arrival> {
        self.state.arrivals.lock().unwrap().clone()
    }

    pub fn set_fallback(&self, reply: Reply) {
        *self.state.fallback.lock().unwrap() = reply;
    }

    /// Kimi and GLM both configured against this mock, each with the test key.
    pub fn both(&self, config: &mut Config) {
        self.kimi(config);
        config.providers[ProviderId::Glm].api_key = Some(Secret::new(KEY));
    }

    /// Kimi configured against this mock (with defaults changed by the caller afterwards).
    pub fn kimi(&self, config: &mut Config) {
        config.providers[ProviderId::Kimi].api_url = self.kimi_url();
        config.providers[ProviderId::Kimi].api_key = Some(Secret::new(KEY));
        config.providers[ProviderId::Glm].api_url = self.glm_url();
    }
}

pub fn completion(text: &str, model: &str) -> Value {
    json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
    })
}

pub fn sse_response(pieces: Vec<(Duration, String)>) -> Response {
    let stream = futures_util::stream::unfold(pieces.into_iter(), |mut pieces| async move {
        let (pause, piece) = pieces.next()?;
        tokio::time::sleep(pause).await;
        Some((Ok::<_, Infallible>(piece), pieces))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

pub fn text_response(text: &str, request: &Value) -> Response {
    let model = request["model"].as_str().unwrap_or("unknown");
    if request["stream"] == true {
        let delta = json!({"model": model, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": "stop"}]});
        sse_response(vec![
            (Duration::ZERO, format!("data: {delta}\n\n")),
            (Duration::ZERO, "data: [DONE]\n\n".to_string()),
        ])
    } else {
        axum::Json(completion(text, model)).into_response()
    }
}

pub async fn chat_completions(
    State(state): State<Arc<MockState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut guard = InFlight::enter(state.clone());
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state.arrivals.lock().unwrap().push(Arrival {
        at: Instant::now(),
        path: uri.path().to_string(),
        authorization: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
        body: request.clone(),
    });
    let reply = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| state.fallback.lock().unwrap().clone());
    let response = match reply {
        Reply::Text(text) => text_response(&text, &request),
        Reply::Slow(pause, text) => {
            tokio::time::sleep(pause).await;
            text_response(&text, &request)
        }
        Reply::Status(status, headers, body) => {
            let mut response = Response::builder()
                .status(StatusCode::from_u16(status).unwrap())
                .header(header::CONTENT_TYPE, "application/json");
            for (name, value) in headers {
                response = response.header(name, value);
            }
            response.body(Body::from(body)).unwrap()
        }
        Reply::Hang => std::future::pending().await,
        Reply::Sse(pieces) => sse_response(pieces),
        Reply::Json(body) => axum::Json(body).into_response(),
    };
    guard.answered = true;
    response
}

pub fn rate_limited(headers: Vec<(&'static str, String)>) -> Reply {
    Reply::Status(
        429,
        headers,
        r#"{"error":{"message":"Rate limit reached","type":"rate_limit_reached_error"}}"#.into(),
    )
}

/// A Kimi answer that stops for one `$web_search` call, as Moonshot documents it.
pub fn kimi_search_round(call_id: &str) -> Reply {
    Reply::Json(json!({
        "model": "kimi-k2-0905-preview",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "",
            "tool_calls": [{"index": 0, "id": call_id, "type": "builtin_function",
                "function": {"name": "$web_search", "arguments": "{\"search_result\":{\"search_id\":\"s-1\"},\"usage\":{\"total_tokens\":42}}"}}]
        }}],
    }))
}
