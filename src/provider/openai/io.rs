//! Sending one chat-completions request with reqwest and reading its answer: the connection
//! pool, the timeouts, the bounded body reads, and the redaction of the API key from every
//! message that could reach a client.
//!
//! Why thin: everything an answer means is decided by the pure code next door (`classify.rs`,
//! `answer.rs`, `sse.rs`, `dialect.rs`); what is left here is only what cannot run without a
//! socket. Dropping the future of [`Endpoint::attempt`] drops the reqwest request or response
//! stream it owns, which aborts the HTTP exchange: nothing here spawns a task or keeps it alive.

use std::fmt::Write as _;
use std::time::Duration;

use futures_util::StreamExt;

use super::answer::{StreamState, completion_text};
use super::classify::classify_failure;
use super::dialect::{Dialect, request_body};
use super::sse::SseDecoder;
use crate::config::Secret;
use crate::provider::{ChatRequest, ChatResponse, ChunkSink, ProviderError};
use crate::rt::Rt;

/// The most of an error response's body read to classify it: a provider's JSON error is tiny,
/// and an error page must not be read forever.
const ERROR_BODY_BYTES_MAX: usize = 64 * 1024;
/// The largest successful (non-streaming) response body accepted; bounds memory per attempt.
const RESPONSE_BODY_BYTES_MAX: usize = 32 * 1024 * 1024;
/// How long a TCP + TLS connect may take before the attempt fails as a transport error
/// (further bounded by the attempt timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an idle pooled connection is kept for the next call.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Everything one attempt needs, shared by all attempts of one provider (an `Arc` clone per
/// attempt, so the returned future is `'static` and owns what it uses).
pub(super) struct Endpoint {
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

impl Endpoint {
    /// The endpoint of one provider: its own connection pool, so connections to one provider
    /// are pooled and reused without ever mixing with another's. Fails only when reqwest
    /// cannot build its client (no TLS roots, for one).
    pub(super) fn new(
        dialect: Dialect,
        base_url: &str,
        api_key: Secret,
        attempt_timeout: Duration,
        rt: Rt,
    ) -> Result<Endpoint, reqwest::Error> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("exaid/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT.min(attempt_timeout))
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build()?;
        Ok(Endpoint {
            dialect,
            client,
            url: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            api_key,
            attempt_timeout,
            rt,
        })
    }

    /// One attempt: send, then read a whole JSON answer or an SSE stream.
    pub(super) async fn attempt(
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
                    sink(crate::provider::Chunk::Text(&answer.text));
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
pub(super) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(base_url: &str, key: &str) -> Endpoint {
        Endpoint::new(
            Dialect::Kimi,
            base_url,
            Secret::new(key),
            Duration::from_secs(1),
            super::super::fixtures::wall_clock_only(0),
        )
        .expect("the HTTP client builds")
    }

    #[test]
    fn the_url_is_the_base_url_and_the_route() {
        assert_eq!(
            endpoint("http://127.0.0.1:9/v1/", "k").url,
            "http://127.0.0.1:9/v1/chat/completions"
        );
        assert_eq!(
            endpoint("http://127.0.0.1:9/v1", "k").url,
            "http://127.0.0.1:9/v1/chat/completions"
        );
    }

    #[test]
    fn the_key_never_leaves_in_a_message() {
        let endpoint = endpoint("http://127.0.0.1:9", "sk-secret");
        assert_eq!(
            endpoint.redact("bad key sk-secret, sk-secret".into()),
            "bad key <redacted>, <redacted>"
        );
        assert_eq!(
            endpoint.redact_error(ProviderError::Client {
                status: 401,
                message: "Invalid key sk-secret".into(),
            }),
            ProviderError::Client {
                status: 401,
                message: "Invalid key <redacted>".into(),
            }
        );
        assert_eq!(
            endpoint.redact_error(ProviderError::Overloaded("sk-secret".into())),
            ProviderError::Overloaded("<redacted>".into())
        );
        assert_eq!(
            endpoint.redact_error(ProviderError::Timeout),
            ProviderError::Timeout
        );
    }

    #[test]
    fn error_chains_name_each_cause_once() {
        #[derive(Debug)]
        struct Failure(&'static str, Option<Box<Failure>>);
        impl std::fmt::Display for Failure {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for Failure {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|e| e as _)
            }
        }
        let inner = Failure("connection refused", None);
        let middle = Failure(
            "tcp connect error: connection refused",
            Some(Box::new(inner)),
        );
        let outer = Failure("error sending request", Some(Box::new(middle)));
        assert_eq!(
            error_chain(&outer),
            "error sending request: tcp connect error: connection refused"
        );
    }
}
