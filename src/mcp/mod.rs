//! MCP front doors: exaid's tools for editors and agents that speak the Model Context
//! Protocol.
//!
//! Two doors, one translation:
//! - [`bridge`]: `exaid mcp` serves MCP on stdio and forwards to a running daemon over the
//!   EXAI WebSocket protocol, surviving dropped sockets by resuming its session;
//! - [`http`]: `/mcp` on the daemon's HTTP port serves MCP over Streamable HTTP, making its
//!   calls through the in-process client [`crate::local`].
//!
//! Both reach the core through a [`Backend`], and [`ExaidMcp`] is the one MCP handler over
//! either: `tools/list` comes from `list_tools_res`, `tools/call` becomes `call_tool` and ends
//! with its `call_tool_res`, `progress` frames become progress notifications (when the client
//! gave a progress token), and `notifications/cancelled` becomes `cancel`. A tool that fails
//! is an MCP tool result with `isError: true` and the error code first in its text
//! (`TOOL_NOT_FOUND: ...`), so the model reads why; JSON-RPC errors are kept for requests the
//! bridge cannot serve at all.

pub mod bridge;
pub mod http;

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, ServerCapabilities,
    ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::error::{CallError, ErrorCode};
use crate::rt::BoxFuture;

/// How a front door reaches the core: over a WebSocket (the stdio bridge) or in process (the
/// HTTP endpoint). Both speak in protocol frames (JSON objects as `call_tool` answers them), so
/// the translation to MCP is written once.
pub trait Backend: Send + Sync + 'static {
    /// The daemon's tools, as `list_tools_res` lists them. The error says why the daemon
    /// could not be asked.
    fn list_tools(&self) -> BoxFuture<'_, Result<Vec<Value>, String>>;

    /// Start one call. An error here is a call that could not even be registered (too many
    /// pending); every later failure arrives as the call's terminal frame.
    fn start_call(
        &self,
        name: &str,
        arguments: Map<String, Value>,
    ) -> Result<CallStream, CallError>;
}

/// One call as a front door sees it: progress frames, then one terminal frame.
///
/// Dropping it before the terminal frame arrived cancels the call: a front door that stops
/// waiting (its client cancelled, or went away) must not leave the work running.
pub struct CallStream {
    /// `progress` frames, in order; lossy when the reader falls behind.
    pub progress: mpsc::Receiver<Value>,
    /// The `call_tool_res` frame. Closed without a value when the backend gave up on the
    /// call (it cannot reach the daemon any more).
    pub terminal: oneshot::Receiver<Value>,
    /// Cancels the call; taken once the call has ended.
    cancel: Option<Box<dyn FnOnce() + Send>>,
}

impl CallStream {
    /// A call's frames, and how to cancel it.
    pub fn new(
        progress: mpsc::Receiver<Value>,
        terminal: oneshot::Receiver<Value>,
        cancel: impl FnOnce() + Send + 'static,
    ) -> CallStream {
        CallStream {
            progress,
            terminal,
            cancel: Some(Box::new(cancel)),
        }
    }

    /// The call ended: dropping the stream no longer cancels anything.
    pub fn ended(&mut self) {
        self.cancel = None;
    }

    /// Cancel the call now (at most once).
    pub fn cancel(&mut self) {
        if let Some(cancel) = self.cancel.take() {
            cancel();
        }
    }
}

impl Drop for CallStream {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// The MCP server both doors run: exaid's tools, forwarded to the core through `B`.
pub struct ExaidMcp<B> {
    /// Where calls go.
    backend: Arc<B>,
}

impl<B: Backend> ExaidMcp<B> {
    /// A handler over `backend`.
    pub fn new(backend: Arc<B>) -> ExaidMcp<B> {
        ExaidMcp { backend }
    }
}

/// What the `initialize` answer tells clients about exaid.
const INSTRUCTIONS: &str = "exaid runs LLM tool calls (chat with Kimi, GLM or its offline model; \
listmodels; version; status) under shared rate limits, with one deadline per call. A failed call \
is a tool result with isError and the error code first (e.g. RATE_LIMITED: ..., with when to \
retry).";

impl<B: Backend> ServerHandler for ExaidMcp<B> {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("exaid", env!("CARGO_PKG_VERSION")).with_title("exaid"),
            )
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let infos = self
            .backend
            .list_tools()
            .await
            .map_err(|why| McpError::internal_error(why, None))?;
        let tools = infos.iter().filter_map(tool_from_info).collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let arguments = request.arguments.unwrap_or_default();
        let mut call = match self.backend.start_call(&request.name, arguments) {
            Ok(call) => call,
            Err(error) => return Ok(error_result(&error).into()),
        };
        let progress_token = context.meta.get_progress_token();
        let mut progress = ProgressRelay::default();
        loop {
            tokio::select! {
                biased;
                () = context.ct.cancelled() => {
                    // `notifications/cancelled` becomes the protocol's `cancel`. rmcp sends no
                    // response to a cancelled request, so this result is only for the record.
                    call.cancel();
                    return Ok(error_result(&CallError::new(
                        ErrorCode::Cancelled,
                        "cancelled by the client",
                    ))
                    .into());
                }
                Some(frame) = call.progress.recv() => {
                    if let Some(token) = &progress_token
                        && let Some(param) = progress.notification(token, &frame)
                    {
                        // A client that stopped listening for progress is no reason to stop.
                        let _ = context.peer.notify_progress(param).await;
                    }
                }
                terminal = &mut call.terminal => {
                    call.ended();
                    return Ok(match terminal {
                        Ok(frame) => tool_result(&frame),
                        Err(_) => error_result(&CallError::new(
                            ErrorCode::ServiceUnavailable,
                            "the call's session closed before it ended",
                        )),
                    }
                    .into());
                }
            }
        }
    }
}

/// Turns a call's `progress` frames into MCP progress notifications.
#[derive(Default)]
struct ProgressRelay {
    /// Notifications sent so far: the `progress` value, which must increase each time.
    sent: u32,
    /// The provider attempt whose streamed text was already announced: a stream of chunks is
    /// announced once per attempt, not once per chunk (progress messages are for people, and
    /// the answer itself arrives in the result).
    streaming_attempt: Option<u64>,
}

impl ProgressRelay {
    /// The notification for `frame`, or `None` when it adds nothing.
    fn notification(
        &mut self,
        token: &rmcp::model::ProgressToken,
        frame: &Value,
    ) -> Option<ProgressNotificationParam> {
        if frame.get("phase").and_then(Value::as_str) == Some("streaming") {
            let attempt = frame.get("attempt").and_then(Value::as_u64).unwrap_or(0);
            if self.streaming_attempt == Some(attempt) {
                return None;
            }
            self.streaming_attempt = Some(attempt);
        }
        self.sent += 1;
        let message = frame
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("working");
        Some(
            ProgressNotificationParam::new(token.clone(), f64::from(self.sent))
                .with_message(message),
        )
    }
}

/// An MCP tool from one `list_tools_res` entry; `None` for an entry without a name or schema.
pub fn tool_from_info(info: &Value) -> Option<Tool> {
    let name = info.get("name")?.as_str()?.to_string();
    let schema = info.get("inputSchema")?.as_object()?.clone();
    let description = info
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Some(Tool::new(name, description, Arc::new(schema)))
}

/// The MCP result of a `call_tool_res` frame: its outputs, or `isError` with the code first.
pub fn tool_result(frame: &Value) -> CallToolResult {
    if frame.get("ok").and_then(Value::as_bool) == Some(true) {
        let mut content: Vec<ContentBlock> = frame
            .get("outputs")
            .and_then(Value::as_array)
            .map(|outputs| {
                outputs
                    .iter()
                    .filter_map(|o| o.get("text").and_then(Value::as_str))
                    .map(ContentBlock::text)
                    .collect()
            })
            .unwrap_or_default();
        if content.is_empty() {
            let text = frame
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or_default();
            content.push(ContentBlock::text(text));
        }
        return CallToolResult::success(content);
    }
    let error = frame.get("error").cloned().unwrap_or_else(|| json!({}));
    let code = error
        .get("code")
        .and_then(Value::as_str)
        .unwrap_or(ErrorCode::InternalError.as_str());
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .or_else(|| frame.get("text").and_then(Value::as_str))
        .unwrap_or("the call failed without a message");
    let mut text = format!("{code}: {message}");
    if let Some(secs) = error.get("retry_after_secs").and_then(Value::as_u64) {
        text.push_str(&format!(" (retry after {secs} s)"));
    }
    CallToolResult::error(vec![ContentBlock::text(text)])
}

/// The MCP result of a call that failed before the core could answer it.
pub fn error_result(error: &CallError) -> CallToolResult {
    let frame = json!({"ok": false, "error": error});
    tool_result(&frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_error_results_with_the_code_first() {
        let frame = json!({"op": "call_tool_res", "request_id": "r", "ok": false, "outputs": [],
            "text": "x", "error": {"code": "RATE_LIMITED", "message": "kimi is busy", "retry_after_secs": 7}});
        let result = tool_result(&frame);
        assert_eq!(result.is_error, Some(true));
        let text = serde_json::to_value(&result.content).unwrap();
        assert_eq!(
            text[0]["text"],
            "RATE_LIMITED: kimi is busy (retry after 7 s)"
        );
    }

    #[test]
    fn outputs_become_text_content() {
        let frame = json!({"op": "call_tool_res", "ok": true,
            "outputs": [{"type": "text", "text": "hello"}], "text": "hello"});
        let result = tool_result(&frame);
        assert_eq!(result.is_error, Some(false));
        assert_eq!(
            serde_json::to_value(&result.content).unwrap()[0]["text"],
            "hello"
        );
    }

    #[test]
    fn streamed_chunks_are_announced_once_per_attempt() {
        let token = rmcp::model::ProgressToken(rmcp::model::NumberOrString::Number(1));
        let mut relay = ProgressRelay::default();
        let queued = json!({"phase": "queued", "message": "waiting for capacity"});
        let chunk =
            json!({"phase": "streaming", "attempt": 1, "message": "streaming", "chunk": "a"});
        let first = relay.notification(&token, &queued).unwrap();
        assert_eq!(first.progress, 1.0);
        assert!(relay.notification(&token, &chunk).is_some());
        assert!(relay.notification(&token, &chunk).is_none());
        let retry = json!({"phase": "streaming", "attempt": 2, "message": "streaming"});
        assert_eq!(relay.notification(&token, &retry).unwrap().progress, 3.0);
    }
}
