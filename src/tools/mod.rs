//! Tools: what a `call_tool` can name, with their schemas, validation and execution.
//!
//! Where things are:
//! - [`tool`]: the [`Tool`] trait a tool implements, the object-safe [`DynTool`] the
//!   registry holds, and a call's [`Plan`];
//! - [`arguments`] and [`schema`]: from the JSON a client sent to a tool's typed arguments
//!   (string cap, known names, schema, decoding), every refusal naming the field;
//!   [`ignored`]: the original's arguments each tool accepts and does not use yet;
//! - [`context`]: what a tool sees while it plans ([`PlanEnv`]) and while it runs
//!   ([`ToolCtx`], with the provider handle it was admitted for); [`host`]: the daemon, as
//!   tools see it;
//! - [`registry`]: the enabled tools by name; [`profile`]: which built-in tools are served;
//! - the tools: [`chat`], [`challenge`], [`info`] (`version`, `listmodels`, `status`),
//!   [`workflow`] (the engine of caller-driven steps) with [`investigate`], [`planner`] and
//!   [`consensus`] on it; [`output`]: the JSON every tool answers with.
//!
//! No file here imports the daemon: tools are given what they need.

pub mod arguments;
pub mod challenge;
pub mod chat;
pub mod consensus;
pub mod context;
pub mod embed;
pub mod expert;
pub mod host;
pub mod ignored;
pub mod images;
pub mod info;
pub mod investigate;
pub mod output;
pub mod planner;
pub mod profile;
pub mod registry;
pub mod route;
pub mod schema;
pub mod thinking;
pub mod tool;
pub mod workflow;

pub use context::{PlanEnv, ToolCtx};
pub use host::{Host, ToolSettings};
pub use registry::ToolRegistry;
pub use tool::{DynTool, Plan, Tool, ToolKind, Work};
