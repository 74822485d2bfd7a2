//! How an MCP front door reaches the core, and what one call looks like from there.

use serde_json::{Map, Value};

pub use super::stream::CallStream;

use super::detached::Detached;
use crate::error::CallError;
use crate::protocol::reply::ToolInfo;
use crate::rt::BoxFuture;

/// How a front door reaches the core: over a WebSocket (the stdio bridge) or in process (the
/// HTTP endpoint). Both speak in typed protocol frames ([`ServerFrame`]), so the translation
/// to MCP is written once.
pub trait Backend: Send + Sync + 'static {
    /// The daemon's tools, as `list_tools_res` lists them. The error says why the daemon
    /// could not be asked.
    fn list_tools(&self) -> BoxFuture<'_, Result<Vec<ToolInfo>, String>>;

    /// Start one call. An error here is a call that could not even be registered (too many
    /// pending); every later failure arrives as the call's terminal frame.
    fn start_call(
        &self,
        name: &str,
        arguments: Map<String, Value>,
    ) -> Result<CallStream, CallError>;

    /// Start a stateless call (MCP 2026-07-28: no session) known by its JSON-RPC request id.
    /// A backend that keeps such calls past a dropped stream (`/mcp`) joins a repeat of the
    /// same request to the call it started, and cancels it only on [`Backend::cancel_request`];
    /// the others start it as any call.
    fn start_stateless_call(
        &self,
        _request_id: &str,
        name: &str,
        arguments: Map<String, Value>,
    ) -> Result<CallStream, CallError> {
        self.start_call(name, arguments)
    }

    /// `notifications/cancelled` for a request id: cancel the stateless calls it names (a
    /// call of a session is cancelled through its own request context instead).
    fn cancel_request(&self, _request_id: &str) {}

    /// Where tasks (the MCP tasks extension) are kept, for a backend that serves them
    /// (`/mcp`). The stdio bridge does not: its calls belong to its WebSocket session.
    fn tasks(&self) -> Option<&Detached> {
        None
    }
}
