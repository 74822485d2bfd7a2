//! The one MCP handler both front doors run: `tools/list` from `list_tools_res`, `tools/call`
//! as `call_tool` ending with its `call_tool_res`, `progress` frames as progress
//! notifications (when the client gave a progress token), `notifications/cancelled` as
//! `cancel`. A tool that fails is an MCP tool result with `isError: true` and the error code
//! first in its text (`TOOL_NOT_FOUND: ...`), so the model reads why.
//!
//! Where the backend keeps tasks (`/mcp`) and the client declares the tasks extension, a
//! `tools/call` is answered at once with a task, and `tasks/get` and `tasks/cancel` are served
//! from exaid's own table ([`super::detached`]); the finished result rides in `tasks/get`.

use std::sync::Arc;

use rmcp::model::CancelledNotificationParam;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams, ContentBlock,
    CreateTaskResult, DetailedTask, GetTaskParams, GetTaskResult, Implementation, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ServerCapabilities, ServerConfig, Task,
    TaskPayload, TaskStatus, Tool, ToolAnnotations,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::Value;

use super::backend::Backend;
use super::detached::TaskView;
use super::fixtures;
use crate::error::{CallError, ErrorCode};
use crate::protocol::reply::ToolInfo;
use crate::protocol::{ProgressPhase, ServerFrame};
use crate::rt::Rt;

/// The MCP server both doors run: exaid's tools, forwarded to the core through `B`.
pub struct ExaidMcp<B> {
    /// Where calls go.
    backend: Arc<B>,
    /// With the conformance suite's fixture tools (test only), and the clock they pause on.
    fixtures: Option<Rt>,
}

impl<B: Backend> ExaidMcp<B> {
    /// A handler over `backend`.
    pub fn new(backend: Arc<B>) -> ExaidMcp<B> {
        ExaidMcp {
            backend,
            fixtures: None,
        }
    }

    /// Also serve the conformance suite's fixture tools (`EXAI_MCP_CONFORMANCE_FIXTURES`).
    pub fn with_fixtures(mut self, rt: Rt) -> ExaidMcp<B> {
        self.fixtures = Some(rt);
        self
    }
}

/// What the `initialize` answer tells clients about exaid.
const INSTRUCTIONS: &str = "exaid runs LLM tool calls (chat with Kimi, GLM or its offline model; \
listmodels; version; status) under shared rate limits, with one deadline per call. A failed call \
is a tool result with isError and the error code first (e.g. RATE_LIMITED: ..., with when to \
retry).";

impl<B: Backend> ServerHandler for ExaidMcp<B> {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder().enable_tools();
        let capabilities = match self.backend.tasks() {
            Some(_) => capabilities.enable_tasks().build(),
            None => capabilities.build(),
        };
        ServerConfig::new(capabilities)
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
        let mut tools: Vec<Tool> = infos.iter().filter_map(tool_from_info).collect();
        if self.fixtures.is_some() {
            tools.extend(fixtures::tools());
        }
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn on_cancelled(
        &self,
        notification: CancelledNotificationParam,
        _context: NotificationContext<RoleServer>,
    ) {
        // A session's call is cancelled through its request context (below); a stateless
        // call has none, and is found by its id.
        if let Some(id) = &notification.request_id {
            self.backend.cancel_request(&request_id_text(id));
        }
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, McpError> {
        let view = find_task(&*self.backend, &request.task_id)?;
        Ok(GetTaskResult::new(detailed_task(&view)))
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let tasks = self.backend.tasks();
        if tasks.is_some_and(|tasks| tasks.cancel_task(&request.task_id)) {
            return Ok(());
        }
        find_task(&*self.backend, &request.task_id).map(|_| ())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        if let Some(rt) = &self.fixtures
            && fixtures::is_fixture(&request.name)
        {
            return Ok(fixtures::call(rt, &request.name, &context).await.into());
        }
        let arguments = request.arguments.unwrap_or_default();
        if let Some(tasks) = self.backend.tasks()
            && context
                .client_capabilities()
                .is_some_and(|c| c.supports_tasks())
        {
            // The client polls; the call runs until it ends or `tasks/cancel`.
            return Ok(match tasks.start_task(&request.name, arguments) {
                Ok(view) => CallToolResponse::Task(CreateTaskResult::new(task_of(&view))),
                Err(error) => error_result(&error).into(),
            });
        }
        // A request of no session (MCP 2026-07-28) outlives its stream: sent again under
        // its id, it joins the call; only `notifications/cancelled` cancels it.
        let stateless = context
            .extensions
            .get::<axum::http::request::Parts>()
            .is_some_and(|parts| !parts.headers.contains_key("mcp-session-id"));
        let started = if stateless {
            let request_id = request_id_text(&context.id);
            self.backend
                .start_stateless_call(&request_id, &request.name, arguments)
        } else {
            self.backend.start_call(&request.name, arguments)
        };
        let mut call = match started {
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

/// The task `task_id`, or the JSON-RPC error that names why there is none.
fn find_task<B: Backend>(backend: &B, task_id: &str) -> Result<TaskView, McpError> {
    let tasks = backend.tasks().ok_or_else(|| {
        McpError::invalid_request("this MCP door serves no tasks; use /mcp", None)
    })?;
    tasks.task(task_id).ok_or_else(|| {
        let why = format!(
            "no task {task_id:?}: never created here, or its result was forgotten after \
             EXAI_RESULT_TTL_SECS (or beyond EXAI_RESULT_CACHE_MAX)"
        );
        McpError::invalid_params(why, None)
    })
}

/// A task's base fields as MCP states them. A call that ended `CANCELLED` is a cancelled
/// task; any other end, failed calls included, is a completed one (its result has `isError`).
fn task_of(view: &TaskView) -> Task {
    let peek = &view.peek;
    let status = match &peek.frame {
        None => TaskStatus::Working,
        Some(ServerFrame::CallToolRes {
            error: Some(error), ..
        }) if error.code == ErrorCode::Cancelled => TaskStatus::Cancelled,
        Some(_) => TaskStatus::Completed,
    };
    let created = crate::retry::daily::utc_timestamp(peek.created_ms);
    let updated = crate::retry::daily::utc_timestamp(peek.updated_ms);
    let mut task = Task::new(view.task_id.clone(), status, created, updated)
        .with_ttl_ms(view.ttl_ms)
        .with_poll_interval_ms(TASK_POLL_MS);
    if let Some(message) = &peek.message
        && status == TaskStatus::Working
    {
        task = task.with_status_message(message.clone());
    }
    task
}

/// The poll interval a task suggests. A call's phases change on the scale of seconds
/// (admission, attempts, retry-after pauses), so a second loses nothing a person would see.
const TASK_POLL_MS: u64 = 1_000;

/// A task with its payload: the tool result once it completed.
fn detailed_task(view: &TaskView) -> DetailedTask {
    let task = task_of(view);
    let payload = match (&view.peek.frame, task.status) {
        (Some(_), TaskStatus::Cancelled) => TaskPayload::Cancelled,
        (Some(frame), _) => {
            let result = serde_json::to_value(tool_result(frame)).expect("results serialize");
            let Value::Object(result) = result else {
                unreachable!("a tool result is an object")
            };
            TaskPayload::Completed { result }
        }
        (None, _) => TaskPayload::Working,
    };
    DetailedTask::new(task, payload)
}

/// A JSON-RPC request id as text (`7`, or the string itself).
fn request_id_text(id: &rmcp::model::RequestId) -> String {
    match id {
        rmcp::model::NumberOrString::Number(n) => n.to_string(),
        rmcp::model::NumberOrString::String(s) => s.to_string(),
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
    streaming_attempt: Option<u32>,
}

impl ProgressRelay {
    /// The notification for `frame`, or `None` when it adds nothing.
    fn notification(
        &mut self,
        token: &rmcp::model::ProgressToken,
        frame: &ServerFrame,
    ) -> Option<ProgressNotificationParam> {
        let ServerFrame::Progress {
            phase,
            attempt,
            message,
            ..
        } = frame
        else {
            return None;
        };
        if *phase == ProgressPhase::Streaming {
            let attempt = attempt.unwrap_or(0);
            if self.streaming_attempt == Some(attempt) {
                return None;
            }
            self.streaming_attempt = Some(attempt);
        }
        self.sent += 1;
        Some(
            ProgressNotificationParam::new(token.clone(), f64::from(self.sent))
                .with_message(message.as_str()),
        )
    }
}

/// An MCP tool from one `list_tools_res` entry; `None` for an entry whose schema is not an
/// object.
/// Title, annotations and output schema come along when the entry has them (a daemon older
/// than the bridge sends none).
pub fn tool_from_info(info: &ToolInfo) -> Option<Tool> {
    let schema = info.input_schema.as_object()?.clone();
    let mut tool = Tool::new(
        info.name.clone(),
        info.description.clone(),
        Arc::new(schema),
    );
    if let Some(title) = &info.title {
        tool = tool.with_title(title.clone());
    }
    if let Some(hints) = info.annotations {
        let mut annotations = ToolAnnotations::new()
            .read_only(hints.read_only_hint)
            .open_world(hints.open_world_hint);
        annotations.title = info.title.clone();
        tool = tool.with_annotations(annotations);
    }
    if let Some(output) = info.output_schema.as_ref().and_then(Value::as_object) {
        tool = tool.with_raw_output_schema(Arc::new(output.clone()));
    }
    Some(tool)
}

/// The MCP result of a `call_tool_res` frame: its outputs, or `isError` with the code first.
/// Any other frame is a bug of the door that passed it, answered as an internal error.
pub fn tool_result(frame: &ServerFrame) -> CallToolResult {
    let ServerFrame::CallToolRes {
        ok,
        outputs,
        text,
        error,
        ..
    } = frame
    else {
        return error_result(&CallError::new(
            ErrorCode::InternalError,
            "the call ended without a call_tool_res",
        ));
    };
    if *ok {
        let mut content: Vec<ContentBlock> = outputs
            .iter()
            .map(|output| ContentBlock::text(output.text.as_str()))
            .collect();
        if content.is_empty() {
            content.push(ContentBlock::text(text.as_str()));
        }
        let mut result = CallToolResult::success(content);
        // The same JSON object as the text, for clients that read structured results.
        let first = outputs.first().map_or(text.as_str(), |o| o.text.as_str());
        result.structured_content = serde_json::from_str::<Value>(first)
            .ok()
            .filter(Value::is_object);
        return result;
    }
    match error {
        Some(error) => error_result(error),
        None => error_result(&CallError::new(ErrorCode::InternalError, text.clone())),
    }
}

/// The MCP result of a failed call: `isError`, with the code first and when to retry.
pub fn error_result(error: &CallError) -> CallToolResult {
    let mut text = format!("{}: {}", error.code, error.message);
    if let Some(secs) = error.retry_after_secs {
        text.push_str(&format!(" (retry after {secs} s)"));
    }
    let mut result = CallToolResult::error(vec![ContentBlock::text(text.as_str())]);
    result.structured_content = Some(crate::tools::output::error_envelope(error, &text));
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ProgressPhase;

    #[test]
    fn failures_are_error_results_with_the_code_first() {
        let error = CallError::new(ErrorCode::RateLimited, "kimi is busy").with_retry_after_secs(7);
        let frame = ServerFrame::call_failed("r".into(), error);
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
        let frame = ServerFrame::call_succeeded("r".into(), "hello".into());
        let result = tool_result(&frame);
        assert_eq!(result.is_error, Some(false));
        assert_eq!(
            serde_json::to_value(&result.content).unwrap()[0]["text"],
            "hello"
        );
    }

    fn progress(phase: ProgressPhase, attempt: Option<u32>, message: &str) -> ServerFrame {
        ServerFrame::Progress {
            request_id: "r".into(),
            message: message.into(),
            phase,
            elapsed_secs: 0.0,
            remaining_secs: 1.0,
            waiting_for: None,
            chunk: None,
            attempt,
        }
    }

    #[test]
    fn streamed_chunks_are_announced_once_per_attempt() {
        let token = rmcp::model::ProgressToken(rmcp::model::NumberOrString::Number(1));
        let mut relay = ProgressRelay::default();
        let queued = progress(ProgressPhase::Queued, None, "waiting for capacity");
        let chunk = progress(ProgressPhase::Streaming, Some(1), "streaming");
        let first = relay.notification(&token, &queued).unwrap();
        assert_eq!(first.progress, 1.0);
        assert!(relay.notification(&token, &chunk).is_some());
        assert!(relay.notification(&token, &chunk).is_none());
        let retry = progress(ProgressPhase::Streaming, Some(2), "streaming");
        assert_eq!(relay.notification(&token, &retry).unwrap().progress, 3.0);
    }
}
