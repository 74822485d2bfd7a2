//! The OpenAI-compatible chat-completions provider over HTTP: Kimi (Moonshot) and GLM (Z.ai).
//!
//! Why it looks like this:
//! - One [`HttpProvider`] per provider, each with its own `reqwest::Client`, so connections to
//!   one provider are pooled and reused without ever mixing with the other's.
//! - `complete` makes exactly ONE attempt and reports a typed [`ProviderError`]. Retries, the
//!   shared cooldown after a 429 and the call's deadline live in the core (`call.rs`,
//!   `retry.rs`), the same code the simulator exercises with its simulated providers.
//! - Everything a provider's answer means is decided by pure functions ([`classify_failure`],
//!   [`parse_retry_after`], [`SseDecoder`], [`request_body`]) that tests drive without I/O; the
//!   I/O around them is thin.
//! - Dropping the future returned by `complete` drops the reqwest request or response stream
//!   it owns, which aborts the HTTP exchange: nothing here spawns a task or keeps it alive.
//! - The API key goes only into the `Authorization` header (marked sensitive by reqwest); it
//!   is never logged, and any provider text that echoes it is redacted before it can reach an
//!   error frame.
//!
//! The wall clock is needed only to turn an HTTP-date `Retry-After` into a wait; it comes from
//! the runtime seam (`Rt::unix_time_ms`), never from the system directly.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::config::{Config, ProviderId, ProviderSettings, Secret, key};
use crate::provider::{
    ChatRequest, ChatResponse, ChunkSink, Provider, ProviderError, RateLimitKind,
};
use crate::rt::{BoxFuture, Rt};

/// The longest provider message quoted in an error, in characters: enough to say what went
/// wrong, short enough that a provider's HTML error page cannot flood a client.
pub const MESSAGE_CHARS_MAX: usize = 300;
/// The most of an error response's body read to classify it: a provider's JSON error is tiny,
/// and an error page must not be read forever.
const ERROR_BODY_BYTES_MAX: usize = 64 * 1024;
/// The largest successful (non-streaming) response body accepted; bounds memory per attempt.
const RESPONSE_BODY_BYTES_MAX: usize = 32 * 1024 * 1024;
/// The longest SSE line or event accepted; bounds memory when a stream never ends a line.
const SSE_EVENT_BYTES_MAX: usize = 4 * 1024 * 1024;
/// The longest wait a provider may ask for. Anything longer is treated as this: a day is
/// already past every call's deadline, and it keeps the arithmetic far from overflow.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(24 * 60 * 60);
/// How long a TCP + TLS connect may take before the attempt fails as a transport error
/// (further bounded by the attempt timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an idle pooled connection is kept for the next call.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Which provider's dialect of the OpenAI API is spoken: they differ in error codes and in the
/// request parameters they accept (see [`request_body`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Kimi, by Moonshot AI (`https://api.moonshot.ai/v1`).
    Kimi,
    /// GLM, by Zhipu AI / Z.ai (`https://api.z.ai/api/paas/v4`).
    Glm,
}

impl Dialect {
    /// The provider's short name, as `listmodels` and the limits show it.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Kimi => "kimi",
            Dialect::Glm => "glm",
        }
    }

    /// The configuration key that holds this provider's API key, for messages.
    fn key_name(self) -> &'static str {
        match self {
            Dialect::Kimi => key::KIMI_API_KEY,
            Dialect::Glm => key::GLM_API_KEY,
        }
    }
}

/// What an [`HttpProvider`] is built from: one provider's slice of the configuration.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Which provider.
    pub dialect: Dialect,
    /// Base URL without a trailing slash; requests go to `{base_url}/chat/completions`.
    pub base_url: String,
    /// The bearer key; without it the provider is listed but not configured.
    pub api_key: Option<Secret>,
    /// Models it serves; the first is its default (what `auto` picks on it).
    pub models: Vec<String>,
    /// The longest one attempt may take, connect to last byte (`KIMI_TIMEOUT_SECS`, ...).
    pub attempt_timeout_ms: u64,
}

impl HttpSettings {
    /// Kimi's settings from the configuration.
    pub fn kimi(config: &Config) -> HttpSettings {
        HttpSettings::of(Dialect::Kimi, &config.providers[ProviderId::Kimi])
    }

    /// GLM's settings from the configuration.
    pub fn glm(config: &Config) -> HttpSettings {
        HttpSettings::of(Dialect::Glm, &config.providers[ProviderId::Glm])
    }

    /// One provider's settings, spoken in `dialect`.
    fn of(dialect: Dialect, provider: &ProviderSettings) -> HttpSettings {
        HttpSettings {
            dialect,
            base_url: provider.api_url.clone(),
            api_key: provider.api_key.clone(),
            models: provider.models.clone(),
            attempt_timeout_ms: provider.timeout_ms,
        }
    }
}

/// An OpenAI-compatible chat-completions provider.
pub struct HttpProvider {
    /// Which provider.
    dialect: Dialect,
    /// Models it serves, default first.
    models: Vec<String>,
    /// The first model, or empty when none is configured.
    default_model: String,
    /// What an attempt needs; `Err` says why the provider cannot serve (no key, or the HTTP
    /// client could not be built), and that reason is what `complete` reports.
    endpoint: Result<Arc<Endpoint>, String>,
}

/// Everything one attempt needs, shared by all attempts of one provider (an `Arc` clone per
/// attempt, so the returned future is `'static` and owns what it uses).
struct Endpoint {
    /// Which provider: error codes and request quirks.
    dialect: Dialect,
    /// The connection pool.
    client: reqwest::Client,
    /// `{base_url}/chat/completions`.
    url: String,
    /// The bearer key.
    api_key: Secret,
    /// Per-attempt timeout, reqwest's per-request timeout (connect to last body byte).
    attempt_timeout: Duration,
    /// The wall clock, for HTTP-date `Retry-After` values.
    rt: Rt,
}

impl HttpProvider {
    /// A provider from its settings. Without an API key it is listed but not configured; the
    /// HTTP client is built only when there is a key to use it with.
    pub fn new(settings: HttpSettings, rt: Rt) -> HttpProvider {
        let HttpSettings {
            dialect,
            base_url,
            api_key,
            models,
            attempt_timeout_ms,
        } = settings;
        let default_model = models.first().cloned().unwrap_or_default();
        let attempt_timeout = Duration::from_millis(attempt_timeout_ms.max(1));
        let endpoint = match api_key {
            None => Err(format!(
                "provider {} is not configured: set {}",
                dialect.name(),
                dialect.key_name()
            )),
            Some(api_key) => reqwest::Client::builder()
                .user_agent(concat!("exaid/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(CONNECT_TIMEOUT.min(attempt_timeout))
                .pool_idle_timeout(POOL_IDLE_TIMEOUT)
                .build()
                .map(|client| {
                    Arc::new(Endpoint {
                        dialect,
                        client,
                        url: format!("{}/chat/completions", base_url.trim_end_matches('/')),
                        api_key,
                        attempt_timeout,
                        rt,
                    })
                })
                .map_err(|error| {
                    let reason = format!(
                        "provider {} cannot start its HTTP client: {}",
                        dialect.name(),
                        error_chain(&error)
                    );
                    tracing::error!(provider = dialect.name(), "{reason}");
                    reason
                }),
        };
        HttpProvider {
            dialect,
            models,
            default_model,
            endpoint,
        }
    }

    /// Kimi, from the configuration.
    pub fn kimi(config: &Config, rt: Rt) -> HttpProvider {
        HttpProvider::new(HttpSettings::kimi(config), rt)
    }

    /// GLM, from the configuration.
    pub fn glm(config: &Config, rt: Rt) -> HttpProvider {
        HttpProvider::new(HttpSettings::glm(config), rt)
    }
}

impl Provider for HttpProvider {
    fn name(&self) -> &str {
        self.dialect.name()
    }

    fn models(&self) -> &[String] {
        &self.models
    }

    fn default_model(&self) -> &str {
        &self.default_model
    }

    fn is_configured(&self) -> bool {
        self.endpoint.is_ok()
    }

    fn complete(
        &self,
        request: ChatRequest,
        chunks: Option<ChunkSink>,
    ) -> BoxFuture<'static, Result<ChatResponse, ProviderError>> {
        match &self.endpoint {
            Ok(endpoint) => {
                let endpoint = endpoint.clone();
                Box::pin(async move { endpoint.attempt(request, chunks).await })
            }
            Err(reason) => {
                // Unreachable through `Providers::resolve`, which refuses unconfigured
                // providers; answered plainly anyway. Status 0: no HTTP exchange happened.
                let error = ProviderError::Client {
                    status: 0,
                    message: reason.clone(),
                };
                Box::pin(async move { Err(error) })
            }
        }
    }
}

impl Endpoint {
    /// One attempt: send, then read a whole JSON answer or an SSE stream.
    async fn attempt(
        &self,
        request: ChatRequest,
        chunks: Option<ChunkSink>,
    ) -> Result<ChatResponse, ProviderError> {
        let streaming = chunks.is_some();
        let body = request_body(self.dialect, &request, streaming);
        let response = self
            .client
            .post(&self.url)
            .bearer_auth(self.api_key.expose())
            .timeout(self.attempt_timeout)
            .header(
                reqwest::header::ACCEPT,
                if streaming {
                    "text/event-stream"
                } else {
                    "application/json"
                },
            )
            .json(&body)
            .send()
            .await
            .map_err(|error| self.transport_error(error))?;
        let status = response.status().as_u16();
        if !response.status().is_success() {
            return Err(self.failure(response).await);
        }
        let is_event_stream = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
        match chunks {
            Some(sink) if is_event_stream => self.read_stream(response, &request.model, sink).await,
            Some(sink) => {
                // Asked to stream, answered in one piece: still one chunk for the client.
                let answer = self.read_whole(status, response, &request.model).await?;
                if !answer.text.is_empty() {
                    sink(&answer.text);
                }
                Ok(answer)
            }
            None => self.read_whole(status, response, &request.model).await,
        }
    }

    /// A non-2xx response, classified from its status, headers and (bounded) body.
    async fn failure(&self, response: reqwest::Response) -> ProviderError {
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let retry_after = header("retry-after");
        let retry_after_ms = header("retry-after-ms");
        // A body that fails half way still classifies by status and headers.
        let (body, _) = read_bounded(response, ERROR_BODY_BYTES_MAX).await;
        let error = classify_failure(
            status,
            retry_after.as_deref(),
            retry_after_ms.as_deref(),
            &String::from_utf8_lossy(&body),
            self.rt.unix_time_ms(),
        );
        let error = self.redact_error(error);
        tracing::info!(provider = self.dialect.name(), status, error = %error, "provider refused the attempt");
        error
    }

    /// A whole JSON completion: `choices[0].message.content`.
    async fn read_whole(
        &self,
        status: u16,
        response: reqwest::Response,
        model: &str,
    ) -> Result<ChatResponse, ProviderError> {
        let (body, failed) = read_bounded(response, RESPONSE_BODY_BYTES_MAX + 1).await;
        if let Some(error) = failed {
            return Err(self.transport_error(error));
        }
        if body.len() > RESPONSE_BODY_BYTES_MAX {
            return Err(ProviderError::Server {
                status,
                message: format!(
                    "the provider's answer is larger than {RESPONSE_BODY_BYTES_MAX} bytes; refused"
                ),
            });
        }
        let text = String::from_utf8_lossy(&body);
        completion_text(status, &text, model, self.rt.unix_time_ms())
            .map_err(|error| self.redact_error(error))
    }

    /// An SSE stream: each `choices[0].delta.content` goes to `sink` as it arrives; the
    /// answer is their concatenation.
    async fn read_stream(
        &self,
        response: reqwest::Response,
        model: &str,
        sink: ChunkSink,
    ) -> Result<ChatResponse, ProviderError> {
        let mut decoder = SseDecoder::default();
        let mut stream = StreamState::new(model);
        let mut body = response.bytes_stream();
        while let Some(piece) = body.next().await {
            let piece = piece.map_err(|error| self.transport_error(error))?;
            let events = decoder.feed(&piece).map_err(ProviderError::Transport)?;
            for event in events {
                if stream.apply(event, &sink, self.rt.unix_time_ms())? {
                    return Ok(stream.into_response());
                }
            }
        }
        for event in decoder.finish() {
            if stream.apply(event, &sink, self.rt.unix_time_ms())? {
                return Ok(stream.into_response());
            }
        }
        if stream.finished {
            Ok(stream.into_response())
        } else {
            Err(ProviderError::Transport(format!(
                "the stream from {} ended before the provider finished its answer (no [DONE], no finish_reason)",
                self.url
            )))
        }
    }

    /// A reqwest failure as a typed error: its timeout is the attempt timeout.
    fn transport_error(&self, error: reqwest::Error) -> ProviderError {
        if error.is_timeout() {
            return ProviderError::Timeout;
        }
        let what = if error.is_connect() {
            "cannot connect to"
        } else if error.is_body() || error.is_decode() {
            "lost the answer from"
        } else {
            "request failed to"
        };
        ProviderError::Transport(self.redact(format!(
            "{what} {}: {}",
            self.url,
            error_chain(&error.without_url())
        )))
    }

    /// `text` with the API key removed, in case a provider echoes it back.
    fn redact(&self, text: String) -> String {
        let key = self.api_key.expose();
        if key.is_empty() || !text.contains(key) {
            text
        } else {
            text.replace(key, "<redacted>")
        }
    }

    /// The error with every message it carries redacted.
    fn redact_error(&self, error: ProviderError) -> ProviderError {
        match error {
            ProviderError::Overloaded(message) => ProviderError::Overloaded(self.redact(message)),
            ProviderError::Transport(message) => ProviderError::Transport(self.redact(message)),
            ProviderError::Server { status, message } => ProviderError::Server {
                status,
                message: self.redact(message),
            },
            ProviderError::Client { status, message } => ProviderError::Client {
                status,
                message: self.redact(message),
            },
            other @ (ProviderError::RateLimited { .. } | ProviderError::Timeout) => other,
        }
    }
}

/// Reads at most `limit` bytes of a body. Returns what was read, and the error that stopped
/// reading early, if one did.
async fn read_bounded(
    mut response: reqwest::Response,
    limit: usize,
) -> (Vec<u8>, Option<reqwest::Error>) {
    let mut bytes = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit.saturating_sub(bytes.len());
                bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if bytes.len() >= limit {
                    return (bytes, None);
                }
            }
            Ok(None) => return (bytes, None),
            Err(error) => return (bytes, Some(error)),
        }
    }
}

/// An error and its causes, `: `-separated, without the URL reqwest adds (the caller names
/// the endpoint once).
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            let _ = write!(text, ": {cause_text}");
        }
        source = cause.source();
    }
    text
}

// ---------------------------------------------------------------------------
// Request quirks
// ---------------------------------------------------------------------------

/// The JSON body of a chat-completions request, adapted to what `dialect` accepts. Every
/// per-provider quirk of the request lives here, and only here.
///
/// - Kimi (Moonshot): `temperature` must lie in [0, 1] ("temperature ... between 0 and 1",
///   Moonshot's chat API reference, platform.moonshot.ai/docs/api/chat), so larger values are
///   clamped. The kimi-k2.5 family fixes its sampling parameters ("cannot be modified",
///   platform.kimi.ai/docs/api/models-overview) and refuses a request that sets them, so no
///   temperature is sent for those models.
/// - GLM (Z.ai): `temperature` must lie in [0.0, 1.0] (docs.z.ai/api-reference/llm/chat-completion),
///   so larger values are clamped.
/// - Both: `stream: true` only when the answer is streamed (both end the stream with
///   `data: [DONE]`).
pub fn request_body(dialect: Dialect, request: &ChatRequest, stream: bool) -> Value {
    let mut body = json!({
        "model": request.model,
        "messages": request.messages,
    });
    let temperature = request
        .temperature
        .filter(|t| t.is_finite())
        .and_then(|t| match dialect {
            Dialect::Kimi if kimi_sampling_is_fixed(&request.model) => None,
            Dialect::Kimi | Dialect::Glm => Some(t.clamp(0.0, 1.0)),
        });
    if let Some(temperature) = temperature {
        body["temperature"] = json!(temperature);
    }
    if let Some(max_tokens) = request.max_tokens {
        body["max_tokens"] = json!(max_tokens);
    }
    if stream {
        body["stream"] = json!(true);
    }
    body
}

/// Kimi models whose sampling parameters are fixed by the provider (see [`request_body`]).
fn kimi_sampling_is_fixed(model: &str) -> bool {
    let model = model.to_ascii_lowercase();
    ["kimi-k2.5", "kimi-k2.6"]
        .iter()
        .any(|prefix| model.starts_with(prefix))
}

// ---------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------

/// The text of a whole (non-streaming) answer, or why there is none. Some providers answer
/// 200 with an error object in the body; that is classified like any other failure.
pub fn completion_text(
    status: u16,
    body: &str,
    model: &str,
    now_unix_ms: u64,
) -> Result<ChatResponse, ProviderError> {
    let value: Value = serde_json::from_str(body).map_err(|error| ProviderError::Server {
        status,
        message: format!(
            "the provider's answer is not JSON ({error}): {}",
            truncate(body.trim(), MESSAGE_CHARS_MAX)
        ),
    })?;
    if let Some(text) = value
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
    {
        return Ok(ChatResponse {
            text: text.to_string(),
            model: answered_model(&value, model),
        });
    }
    if value.get("error").is_some() {
        return Err(classify_failure(status, None, None, body, now_unix_ms));
    }
    Err(ProviderError::Server {
        status,
        message: format!(
            "the provider's answer has no choices[0].message.content: {}",
            truncate(body.trim(), MESSAGE_CHARS_MAX)
        ),
    })
}

/// The model the provider says answered, else the one asked for.
fn answered_model(value: &Value, asked: &str) -> String {
    value
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .unwrap_or(asked)
        .to_string()
}

/// What a stream has produced so far.
struct StreamState {
    /// The text so far.
    text: String,
    /// The model that answers (from the first event that names it).
    model: String,
    /// Whether an event carried a `finish_reason`: a stream that then ends without
    /// `[DONE]` is complete all the same.
    finished: bool,
}

impl StreamState {
    fn new(model: &str) -> StreamState {
        StreamState {
            text: String::new(),
            model: model.to_string(),
            finished: false,
        }
    }

    /// Take one event; `Ok(true)` when the stream is done.
    fn apply(
        &mut self,
        event: SseEvent,
        sink: &ChunkSink,
        now_unix_ms: u64,
    ) -> Result<bool, ProviderError> {
        let data = match event {
            SseEvent::Done => return Ok(true),
            SseEvent::Data(data) => data,
        };
        let value: Value = serde_json::from_str(&data).map_err(|error| {
            ProviderError::Transport(format!(
                "a stream event is not JSON ({error}): {}",
                truncate(&data, MESSAGE_CHARS_MAX)
            ))
        })?;
        if value.get("error").is_some() {
            // An error in the middle of a stream (GLM sends its business codes this way).
            return Err(classify_failure(200, None, None, &data, now_unix_ms));
        }
        if let Some(model) = value
            .get("model")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
        {
            model.clone_into(&mut self.model);
        }
        if let Some(piece) = value
            .pointer("/choices/0/delta/content")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
        {
            sink(piece);
            self.text.push_str(piece);
        }
        if value
            .pointer("/choices/0/finish_reason")
            .is_some_and(|r| r.is_string())
        {
            self.finished = true;
        }
        Ok(false)
    }

    fn into_response(self) -> ChatResponse {
        ChatResponse {
            text: self.text,
            model: self.model,
        }
    }
}

// ---------------------------------------------------------------------------
// Server-sent events
// ---------------------------------------------------------------------------

/// One server-sent event a chat stream carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseEvent {
    /// An event's data (its `data:` lines joined with `\n`): one JSON chunk.
    Data(String),
    /// `data: [DONE]`: the provider finished the stream.
    Done,
}

/// An incremental SSE parser (the WHATWG event-stream format): bytes in, events out, with
/// lines split anywhere across network chunks.
///
/// Comments (`:` lines), blank keep-alive lines and fields other than `data` are ignored; an
/// event is dispatched at the blank line that ends it; `\r\n` line ends are accepted.
#[derive(Debug, Default)]
pub struct SseDecoder {
    /// The bytes of a line whose end has not arrived yet.
    partial_line: Vec<u8>,
    /// The data of the event being read, if a `data:` line has been seen.
    data: Option<String>,
}

impl SseDecoder {
    /// Feed the next network chunk; returns the events it completed. Fails when one line or
    /// event grows past a bound (a stream that is not SSE, or a runaway one).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, String> {
        let mut events = Vec::new();
        let mut rest = bytes;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            self.partial_line.extend_from_slice(&rest[..end]);
            rest = &rest[end + 1..];
            let line = std::mem::take(&mut self.partial_line);
            self.line(&line, &mut events);
        }
        self.partial_line.extend_from_slice(rest);
        let pending = self.partial_line.len() + self.data.as_ref().map_or(0, String::len);
        if pending > SSE_EVENT_BYTES_MAX {
            return Err(format!(
                "a stream event grew past {SSE_EVENT_BYTES_MAX} bytes without ending; the answer is not a valid event stream"
            ));
        }
        Ok(events)
    }

    /// The stream ended: a last line without its newline, and the event it completes.
    pub fn finish(&mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        if !self.partial_line.is_empty() {
            let line = std::mem::take(&mut self.partial_line);
            self.line(&line, &mut events);
        }
        self.dispatch(&mut events);
        events
    }

    fn line(&mut self, line: &[u8], events: &mut Vec<SseEvent>) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            self.dispatch(events);
            return;
        }
        if line.starts_with(b":") {
            return; // a comment, often a keep-alive
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        if field != "data" {
            return; // event:, id:, retry: say nothing a chat stream needs
        }
        match &mut self.data {
            Some(data) => {
                data.push('\n');
                data.push_str(value);
            }
            None => self.data = Some(value.to_string()),
        }
    }

    fn dispatch(&mut self, events: &mut Vec<SseEvent>) {
        if let Some(data) = self.data.take() {
            if data.trim() == "[DONE]" {
                events.push(SseEvent::Done);
            } else if !data.trim().is_empty() {
                events.push(SseEvent::Data(data));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------

/// The parts of an error body that classify it: OpenAI's `{"error": {"code", "type",
/// "message"}}`, which Moonshot and Z.ai both follow (Z.ai puts its business code in `code`,
/// as a string or a number).
#[derive(Debug, Default)]
struct ErrorBody {
    /// `error.code` as text.
    code: Option<String>,
    /// `error.type`.
    kind: Option<String>,
    /// `error.message`.
    message: Option<String>,
}

/// The error object of a body, if it is JSON with an `error` (an object, or just a message).
fn parse_error_body(body: &str) -> Option<ErrorBody> {
    let value: Value = serde_json::from_str(body.trim()).ok()?;
    let error = value.get("error")?;
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    Some(match error {
        Value::String(message) => ErrorBody {
            message: Some(message.clone()),
            ..ErrorBody::default()
        },
        Value::Object(_) => ErrorBody {
            code: text(error.get("code")),
            kind: text(error.get("type")),
            message: text(error.get("message")),
        },
        _ => return None,
    })
}

/// What a failed response means, from its HTTP status, its `Retry-After` and `retry-after-ms`
/// headers, its body and the wall clock (Unix milliseconds, for HTTP-date `Retry-After`).
/// Pure: no I/O, no clock of its own.
///
/// - Quota (never retried): Z.ai business code 1113 (arrears), OpenAI's `insufficient_quota`
///   (`error.code` or `error.type`), Moonshot's `exceeded_current_quota_error`; whatever the
///   status.
/// - Rate limits (retried as the provider asks): Z.ai 1302 (concurrency) and 1303 (frequency)
///   whatever the status, then any 429 (Moonshot's `rate_limit_reached_error` naming its
///   concurrency limit is a concurrency limit; everything else is frequency). The wait is
///   `retry-after-ms`, else `Retry-After`, else (Moonshot) the "try again after N seconds"
///   of its message.
/// - 503: overloaded; other 5xx: server errors (both retried).
/// - Anything else, 4xx included: the request is wrong, not retried.
///
/// Z.ai codes: docs.z.ai/api-reference/api-code. Moonshot error types: platform.moonshot.ai,
/// chat API "error explanation".
pub fn classify_failure(
    status: u16,
    retry_after: Option<&str>,
    retry_after_ms: Option<&str>,
    body: &str,
    now_unix_ms: u64,
) -> ProviderError {
    let detail = parse_error_body(body);
    let code = detail.as_ref().and_then(|d| d.code.as_deref());
    let kind = detail.as_ref().and_then(|d| d.kind.as_deref());
    let provider_message = detail.as_ref().and_then(|d| d.message.as_deref());

    let is_quota = matches!(code, Some("1113" | "insufficient_quota"))
        || matches!(
            kind,
            Some("insufficient_quota" | "exceeded_current_quota_error")
        );
    if is_quota {
        return ProviderError::RateLimited {
            retry_after: None,
            kind: RateLimitKind::Quota,
        };
    }
    let rate_limit = match code {
        Some("1302") => Some(RateLimitKind::Concurrency),
        Some("1303") => Some(RateLimitKind::Frequency),
        _ if status == 429 => Some(
            if kind == Some("rate_limit_reached_error")
                && provider_message.is_some_and(|m| m.to_ascii_lowercase().contains("concurrency"))
            {
                RateLimitKind::Concurrency
            } else {
                RateLimitKind::Frequency
            },
        ),
        _ => None,
    };
    if let Some(kind) = rate_limit {
        let retry_after = parse_retry_after(retry_after, retry_after_ms, now_unix_ms)
            .or_else(|| provider_message.and_then(wait_named_in_message));
        return ProviderError::RateLimited { retry_after, kind };
    }

    let message = failure_message(status, detail.as_ref(), body);
    match status {
        503 => ProviderError::Overloaded(message),
        500..=599 => ProviderError::Server { status, message },
        _ => ProviderError::Client { status, message },
    }
}

/// The message of an error: the provider's `error.message` (with its code), else the start
/// of the body, else the status's name; truncated.
fn failure_message(status: u16, detail: Option<&ErrorBody>, body: &str) -> String {
    let from_body = detail.and_then(|d| {
        let message = d.message.as_deref()?;
        Some(match (&d.code, &d.kind) {
            (Some(code), _) => format!("{message} (code {code})"),
            (None, Some(kind)) => format!("{message} ({kind})"),
            (None, None) => message.to_string(),
        })
    });
    let text = from_body.unwrap_or_else(|| {
        let trimmed = body.trim();
        if trimmed.is_empty() {
            reqwest::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("no message")
                .to_string()
        } else {
            trimmed.to_string()
        }
    });
    truncate(&text, MESSAGE_CHARS_MAX)
}

/// `text` cut to `chars_max` characters, marked when cut.
fn truncate(text: &str, chars_max: usize) -> String {
    match text.char_indices().nth(chars_max) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}...", &text[..cut]),
    }
}

/// How long a provider asked to wait, from its headers: `retry-after-ms` (milliseconds, may be
/// fractional; takes precedence) or `Retry-After` (delta-seconds, or an HTTP date compared with
/// `now_unix_ms`; a date already past means no wait: zero). Unparseable values are ignored.
pub fn parse_retry_after(
    retry_after: Option<&str>,
    retry_after_ms: Option<&str>,
    now_unix_ms: u64,
) -> Option<Duration> {
    if let Some(wait) = retry_after_ms.and_then(|ms| non_negative_secs(ms.trim(), 1000.0)) {
        return Some(wait);
    }
    let value = retry_after?.trim();
    if value.is_empty() {
        return None;
    }
    if let Some(wait) = non_negative_secs(value, 1.0) {
        return Some(wait);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let at_unix_ms = u64::try_from(at.duration_since(UNIX_EPOCH).ok()?.as_millis()).ok()?;
    Some(Duration::from_millis(at_unix_ms.saturating_sub(now_unix_ms)).min(RETRY_AFTER_MAX))
}

/// `value / per_second` seconds, when `value` is a finite non-negative decimal number.
fn non_negative_secs(value: &str, per_second: f64) -> Option<Duration> {
    // Only plain decimals: `f64::from_str` would also take "inf", "NaN" and "1e3".
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let number: f64 = value.parse().ok()?;
    let secs = number / per_second;
    Some(Duration::try_from_secs_f64(secs).ok()?.min(RETRY_AFTER_MAX))
}

/// Moonshot names the wait in its rate-limit message ("... please try again after 3
/// seconds"); used only when no header says it.
fn wait_named_in_message(message: &str) -> Option<Duration> {
    let lower = message.to_ascii_lowercase();
    let (_, rest) = lower.split_once("try again after ")?;
    let number: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let unit = rest[number.len()..].trim_start();
    if !unit.starts_with("second") {
        return None;
    }
    non_negative_secs(&number, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{ChatMessage, Role};

    /// 2025-11-06T08:49:37Z, the wall clock of every test here.
    const NOW_MS: u64 = 1_762_418_977_000;

    fn rate_limited(error: &ProviderError) -> (Option<Duration>, RateLimitKind) {
        match error {
            ProviderError::RateLimited { retry_after, kind } => (*retry_after, *kind),
            other => panic!("expected a rate limit, got {other:?}"),
        }
    }

    #[test]
    fn retry_after_seconds_and_milliseconds() {
        assert_eq!(
            parse_retry_after(Some("2"), None, NOW_MS),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            parse_retry_after(Some(" 0 "), None, NOW_MS),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after(None, Some("1500"), NOW_MS),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after(None, Some("250.5"), NOW_MS),
            Some(Duration::from_micros(250_500))
        );
        // retry-after-ms wins when both are present.
        assert_eq!(
            parse_retry_after(Some("30"), Some("200"), NOW_MS),
            Some(Duration::from_millis(200))
        );
        // An unreadable retry-after-ms falls back to Retry-After.
        assert_eq!(
            parse_retry_after(Some("3"), Some("soon"), NOW_MS),
            Some(Duration::from_secs(3))
        );
        for junk in ["-1", "inf", "NaN", "1e3", "", "soon"] {
            assert_eq!(parse_retry_after(Some(junk), None, NOW_MS), None, "{junk}");
            assert_eq!(parse_retry_after(None, Some(junk), NOW_MS), None, "{junk}");
        }
        assert_eq!(parse_retry_after(None, None, NOW_MS), None);
        // Absurd waits are capped.
        assert_eq!(
            parse_retry_after(Some("99999999999999"), None, NOW_MS),
            Some(RETRY_AFTER_MAX)
        );
    }

    #[test]
    fn retry_after_http_dates() {
        // 7 s after NOW_MS.
        assert_eq!(
            parse_retry_after(Some("Thu, 06 Nov 2025 08:49:44 GMT"), None, NOW_MS),
            Some(Duration::from_secs(7))
        );
        // Sub-second clock: the date is 6.5 s away.
        assert_eq!(
            parse_retry_after(Some("Thu, 06 Nov 2025 08:49:44 GMT"), None, NOW_MS + 500),
            Some(Duration::from_millis(6500))
        );
        // In the past: no wait.
        assert_eq!(
            parse_retry_after(Some("Thu, 06 Nov 2025 08:00:00 GMT"), None, NOW_MS),
            Some(Duration::ZERO)
        );
        // The obsolete formats HTTP still allows.
        assert_eq!(
            parse_retry_after(Some("Thursday, 06-Nov-25 08:49:47 GMT"), None, NOW_MS),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after(Some("Thu Nov  6 08:49:38 2025"), None, NOW_MS),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            parse_retry_after(Some("Thu, 32 Nov 2025 08:49:44 GMT"), None, NOW_MS),
            None
        );
    }

    #[test]
    fn plain_429_is_a_frequency_limit_with_its_wait() {
        let error = classify_failure(429, Some("1"), None, "", NOW_MS);
        assert_eq!(
            rate_limited(&error),
            (Some(Duration::from_secs(1)), RateLimitKind::Frequency)
        );
        assert!(error.is_retryable());
        let error = classify_failure(429, None, None, "Too Many Requests", NOW_MS);
        assert_eq!(rate_limited(&error), (None, RateLimitKind::Frequency));
        let error = classify_failure(429, Some("9"), Some("120"), "{}", NOW_MS);
        assert_eq!(rate_limited(&error).0, Some(Duration::from_millis(120)));
    }

    #[test]
    fn glm_business_codes() {
        for (status, body) in [
            (
                429,
                r#"{"error":{"code":"1302","message":"High concurrency"}}"#,
            ),
            (
                429,
                r#"{"error":{"code":1302,"message":"High concurrency"}}"#,
            ),
            (
                400,
                r#"{"error":{"code":"1302","message":"High concurrency"}}"#,
            ),
        ] {
            let error = classify_failure(status, Some("2"), None, body, NOW_MS);
            assert_eq!(
                rate_limited(&error),
                (Some(Duration::from_secs(2)), RateLimitKind::Concurrency),
                "{status} {body}"
            );
            assert!(error.is_retryable());
        }
        let error = classify_failure(
            429,
            None,
            None,
            r#"{"error":{"code":"1303","message":"High frequency"}}"#,
            NOW_MS,
        );
        assert_eq!(rate_limited(&error), (None, RateLimitKind::Frequency));
        for (status, body) in [
            (
                429,
                r#"{"error":{"code":"1113","message":"Your account is in arrears"}}"#,
            ),
            (
                429,
                r#"{"error":{"code":1113,"message":"Your account is in arrears"}}"#,
            ),
            (402, r#"{"error":{"code":"1113","message":"arrears"}}"#),
            (200, r#"{"error":{"code":"1113","message":"arrears"}}"#),
        ] {
            let error = classify_failure(status, Some("5"), None, body, NOW_MS);
            assert_eq!(
                rate_limited(&error),
                (None, RateLimitKind::Quota),
                "{status} {body}"
            );
            assert!(!error.is_retryable(), "arrears are never retried");
        }
    }

    #[test]
    fn openai_and_moonshot_quota() {
        for body in [
            r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#,
            r#"{"error":{"message":"quota","type":"invalid_request_error","code":"insufficient_quota"}}"#,
            r#"{"error":{"message":"quota","type":"insufficient_quota"}}"#,
            r#"{"error":{"message":"You exceeded your current token quota","type":"exceeded_current_quota_error"}}"#,
        ] {
            let error = classify_failure(429, Some("1"), None, body, NOW_MS);
            assert_eq!(rate_limited(&error), (None, RateLimitKind::Quota), "{body}");
            assert!(!error.is_retryable());
        }
    }

    #[test]
    fn moonshot_rate_limits() {
        let body = r#"{"error":{"message":"Your account org-1<ak-1> request reached organization max concurrency: 3, please try again after 2 seconds","type":"rate_limit_reached_error"}}"#;
        let error = classify_failure(429, None, None, body, NOW_MS);
        assert_eq!(
            rate_limited(&error),
            (Some(Duration::from_secs(2)), RateLimitKind::Concurrency)
        );
        // A header beats the message.
        let error = classify_failure(429, Some("7"), None, body, NOW_MS);
        assert_eq!(rate_limited(&error).0, Some(Duration::from_secs(7)));
        let body = r#"{"error":{"message":"Your account org-1<ak-1> request reached organization max RPM: 20, please try again after 1 seconds","type":"rate_limit_reached_error"}}"#;
        assert_eq!(
            rate_limited(&classify_failure(429, None, None, body, NOW_MS)),
            (Some(Duration::from_secs(1)), RateLimitKind::Frequency)
        );
        let body = r#"{"error":{"message":"The engine is currently overloaded, please try again later","type":"engine_overloaded_error"}}"#;
        assert_eq!(
            rate_limited(&classify_failure(429, None, None, body, NOW_MS)),
            (None, RateLimitKind::Frequency)
        );
    }

    #[test]
    fn server_client_and_overload() {
        let error = classify_failure(
            503,
            None,
            None,
            r#"{"error":{"message":"busy","type":"server_error"}}"#,
            NOW_MS,
        );
        assert_eq!(
            error,
            ProviderError::Overloaded("busy (server_error)".into())
        );
        assert!(error.is_retryable());
        let error = classify_failure(502, None, None, "<html>Bad Gateway</html>", NOW_MS);
        assert_eq!(
            error,
            ProviderError::Server {
                status: 502,
                message: "<html>Bad Gateway</html>".into()
            }
        );
        assert!(error.is_retryable());
        let error = classify_failure(500, None, None, "", NOW_MS);
        assert_eq!(
            error,
            ProviderError::Server {
                status: 500,
                message: "Internal Server Error".into()
            }
        );
        let error = classify_failure(
            401,
            None,
            None,
            r#"{"error":{"message":"Invalid Authentication","type":"invalid_authentication_error"}}"#,
            NOW_MS,
        );
        assert_eq!(
            error,
            ProviderError::Client {
                status: 401,
                message: "Invalid Authentication (invalid_authentication_error)".into()
            }
        );
        assert!(!error.is_retryable());
        let error = classify_failure(
            400,
            None,
            None,
            r#"{"error":{"code":"1211","message":"Model does not exist"}}"#,
            NOW_MS,
        );
        assert_eq!(
            error,
            ProviderError::Client {
                status: 400,
                message: "Model does not exist (code 1211)".into()
            }
        );
        let error = classify_failure(404, None, None, r#"{"error":"no such route"}"#, NOW_MS);
        assert_eq!(
            error,
            ProviderError::Client {
                status: 404,
                message: "no such route".into()
            }
        );
    }

    #[test]
    fn long_messages_are_truncated() {
        let long = "é".repeat(1000);
        let body = format!(r#"{{"error":{{"message":"{long}"}}}}"#);
        match classify_failure(400, None, None, &body, NOW_MS) {
            ProviderError::Client { message, .. } => {
                assert_eq!(message.chars().count(), MESSAGE_CHARS_MAX + 3);
                assert!(message.ends_with("..."));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn whole_answers() {
        let body = r#"{"id":"x","model":"kimi-k2","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}]}"#;
        let answer = completion_text(200, body, "asked", NOW_MS).unwrap();
        assert_eq!(answer.text, "Hello");
        assert_eq!(answer.model, "kimi-k2");
        let error = completion_text(200, r#"{"choices":[]}"#, "asked", NOW_MS).unwrap_err();
        assert!(
            matches!(error, ProviderError::Server { status: 200, .. }),
            "{error:?}"
        );
        let error = completion_text(200, "not json", "asked", NOW_MS).unwrap_err();
        assert!(error.to_string().contains("not JSON"), "{error}");
        let error = completion_text(
            200,
            r#"{"error":{"code":"1302","message":"busy"}}"#,
            "asked",
            NOW_MS,
        )
        .unwrap_err();
        assert_eq!(rate_limited(&error).1, RateLimitKind::Concurrency);
    }

    fn decode_all(pieces: &[&[u8]]) -> Vec<SseEvent> {
        let mut decoder = SseDecoder::default();
        let mut events = Vec::new();
        for piece in pieces {
            events.extend(decoder.feed(piece).unwrap());
        }
        events.extend(decoder.finish());
        events
    }

    #[test]
    fn sse_events_comments_and_done() {
        let stream = b": keep-alive\n\ndata: {\"a\":1}\n\nevent: message\nid: 7\ndata: {\"a\":2}\n\n\n\ndata: [DONE]\n\n";
        assert_eq!(
            decode_all(&[stream]),
            vec![
                SseEvent::Data("{\"a\":1}".into()),
                SseEvent::Data("{\"a\":2}".into()),
                SseEvent::Done,
            ]
        );
        // No space after the colon, CRLF line ends, multi-line data.
        assert_eq!(
            decode_all(&[b"data:x\r\n\r\ndata: one\r\ndata: two\r\n\r\ndata:[DONE]\r\n\r\n"]),
            vec![
                SseEvent::Data("x".into()),
                SseEvent::Data("one\ntwo".into()),
                SseEvent::Done,
            ]
        );
    }

    #[test]
    fn sse_lines_split_anywhere() {
        let stream: &[u8] =
            "data: {\"t\":\"héllo\"}\r\n\r\n: ping\n\ndata: {\"t\":\"wörld\"}\n\ndata: [DONE]\n\n"
                .as_bytes();
        let whole = decode_all(&[stream]);
        assert_eq!(whole.len(), 3);
        // Every split point, including inside a multi-byte character and between \r and \n.
        for cut in 0..=stream.len() {
            assert_eq!(
                decode_all(&[&stream[..cut], &stream[cut..]]),
                whole,
                "cut {cut}"
            );
        }
        // One byte at a time.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(decode_all(&bytes), whole);
    }

    #[test]
    fn sse_stream_without_final_blank_line() {
        assert_eq!(
            decode_all(&[b"data: {\"a\":1}\n\ndata: [DONE]"]),
            vec![SseEvent::Data("{\"a\":1}".into()), SseEvent::Done]
        );
    }

    #[test]
    fn sse_runaway_line_is_refused() {
        let mut decoder = SseDecoder::default();
        let big = vec![b'x'; SSE_EVENT_BYTES_MAX + 1];
        assert!(decoder.feed(&big).is_err());
    }

    #[test]
    fn stream_state_concatenates_deltas() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let sink: ChunkSink = {
            let seen = seen.clone();
            Arc::new(move |chunk: &str| seen.lock().unwrap().push(chunk.to_string()))
        };
        let mut state = StreamState::new("asked");
        let events = [
            r#"{"model":"glm-4.6","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"Hel"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"reasoning_content":"hmm"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}"#,
        ];
        for data in events {
            assert!(
                !state
                    .apply(SseEvent::Data(data.into()), &sink, NOW_MS)
                    .unwrap()
            );
        }
        assert!(state.finished);
        assert!(state.apply(SseEvent::Done, &sink, NOW_MS).unwrap());
        let answer = state.into_response();
        assert_eq!(answer.text, "Hello");
        assert_eq!(answer.model, "glm-4.6");
        assert_eq!(*seen.lock().unwrap(), vec!["Hel", "lo"]);

        let mut state = StreamState::new("asked");
        let error = state
            .apply(
                SseEvent::Data(r#"{"error":{"code":"1303","message":"slow down"}}"#.into()),
                &sink,
                NOW_MS,
            )
            .unwrap_err();
        assert_eq!(rate_limited(&error).1, RateLimitKind::Frequency);
        let error = state
            .apply(SseEvent::Data("{oops".into()), &sink, NOW_MS)
            .unwrap_err();
        assert!(matches!(error, ProviderError::Transport(_)), "{error:?}");
    }

    fn request(model: &str, temperature: Option<f64>) -> ChatRequest {
        ChatRequest {
            model: model.into(),
            messages: vec![ChatMessage {
                role: Role::User,
                content: "hi".into(),
            }],
            temperature,
            max_tokens: Some(64),
        }
    }

    #[test]
    fn request_bodies_follow_each_provider() {
        let body = request_body(Dialect::Kimi, &request("moonshot-v1-8k", Some(1.7)), false);
        assert_eq!(
            body,
            json!({
                "model": "moonshot-v1-8k",
                "messages": [{"role": "user", "content": "hi"}],
                "temperature": 1.0,
                "max_tokens": 64,
            })
        );
        let body = request_body(Dialect::Kimi, &request("kimi-k2.5", Some(0.3)), true);
        assert_eq!(body.get("temperature"), None);
        assert_eq!(body["stream"], true);
        let body = request_body(Dialect::Glm, &request("glm-4.6", Some(1.5)), true);
        assert_eq!(body["temperature"], 1.0);
        assert_eq!(body["stream"], true);
        let body = request_body(Dialect::Glm, &request("glm-4.6", Some(0.2)), false);
        assert_eq!(body["temperature"], 0.2);
        assert_eq!(body.get("stream"), None);
        let body = request_body(Dialect::Glm, &request("glm-4.6", None), false);
        assert_eq!(body.get("temperature"), None);
    }

    #[test]
    fn a_provider_without_key_is_listed_but_not_configured() {
        struct NoRuntime;
        impl crate::rt::Runtime for NoRuntime {
            fn now(&self) -> crate::rt::Instant {
                crate::rt::Instant::EPOCH
            }
            fn sleep_until(&self, _: crate::rt::Instant) -> BoxFuture<'static, ()> {
                Box::pin(std::future::pending())
            }
            fn spawn(&self, _: &'static str, _: BoxFuture<'static, ()>) {}
            fn seed(&self) -> [u8; 32] {
                [0; 32]
            }
            fn unix_time_ms(&self) -> u64 {
                NOW_MS
            }
        }
        let provider = HttpProvider::new(
            HttpSettings {
                dialect: Dialect::Glm,
                base_url: "http://127.0.0.1:9".into(),
                api_key: None,
                models: vec!["glm-4.6".into(), "glm-4.5".into()],
                attempt_timeout_ms: 1000,
            },
            Rt::new(Arc::new(NoRuntime)),
        );
        assert_eq!(provider.name(), "glm");
        assert!(!provider.is_configured());
        assert_eq!(provider.default_model(), "glm-4.6");
        assert_eq!(provider.models().len(), 2);
        let refused = futures_util::FutureExt::now_or_never(
            provider.complete(request("glm-4.6", None), None),
        )
        .expect("answers at once");
        match refused {
            Err(ProviderError::Client { message, .. }) => {
                assert!(message.contains("GLM_API_KEY"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }
}
