//! MCP front doors: exaid's tools for editors and agents that speak the Model Context
//! Protocol.
//!
//! Two doors, one translation:
//! - [`bridge`]: `exaid mcp` serves MCP on stdio and forwards to a running daemon over the
//!   EXAI WebSocket protocol, surviving dropped sockets by resuming its session;
//! - [`http`]: `/mcp` on the daemon's HTTP port serves MCP over Streamable HTTP, making its
//!   calls through the in-process client [`local`].
//!
//! Both reach the core through a [`backend::Backend`], remember their calls in one
//! [`pending`] table, and [`handler::ExaidMcp`] is the one MCP handler over
//! either: `tools/list` comes from `list_tools_res`, `tools/call` becomes `call_tool` and ends
//! with its `call_tool_res`, `progress` frames become progress notifications (when the client
//! gave a progress token), and `notifications/cancelled` becomes `cancel`. A tool that fails
//! is an MCP tool result with `isError: true` and the error code first in its text
//! (`TOOL_NOT_FOUND: ...`), so the model reads why; JSON-RPC errors are kept for requests the
//! bridge cannot serve at all.

pub mod backend;
pub mod bridge;
pub mod detached;
pub mod events;
pub mod fixtures;
pub mod handler;
pub mod http;
pub mod local;
pub mod pending;
pub mod reissue;
pub mod stream;
