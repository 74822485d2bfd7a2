//! exaid: a daemon between AI coding clients and rate-limited LLM providers.
//!
//! It bounds concurrency, enforces one honest deadline per call, retries rate limits the way
//! the provider asks, and never loses a result because a client disconnected. The core runs
//! on real tokio in production and, unchanged, inside the madsim deterministic simulator:
//! every source of nondeterminism enters through [`rt`].
//!
//! Where things are (ARCHITECTURE.md has the map and the flow of one call):
//! - [`rt`]: the runtime seam (time, spawning, randomness, listener, byte stream);
//! - [`config`]: layered, validated configuration, each key declared once;
//! - [`protocol`]: the EXAI wire protocol (client frames parsed in `protocol::frame`, server
//!   frames in `protocol::reply`, decoded again for clients in `protocol::received`);
//! - [`server`], [`connection`]: accepting sockets, the hello handshake, reading and writing;
//! - [`router`]: one decoded frame in, its handling out; every call starts there;
//! - [`session`], [`outbox`]: what outlives a connection, and seq-stamped typed delivery;
//!   [`memory`]: the one memory budget outboxes, result caches and conversations share;
//! - [`admission`]: where permits are taken; [`call`]: one call's deadline and ending;
//!   [`phase`]: what a call is doing now, for its progress frames;
//! - [`tools`], [`provider`]: what a call runs, and the models behind it;
//! - [`conversation`]: what a `continuation_id` remembers, bounded;
//! - [`retry`]: retry policy, provider cooldowns, and the provider handle a tool calls a
//!   provider through; [`observe`]: hooks for witnesses;
//! - [`health`]: permit books compared with live holders; [`operator`]: what an operator
//!   sees (HTTP routes, metrics); [`lifecycle`], [`shutdown`]: draining without losing work;
//! - [`mcp`]: MCP front doors (`exaid mcp` on stdio, `/mcp` over HTTP, and the in-process
//!   client of the core that `/mcp` calls through);
//! - [`state`]: the daemon's shared state, below everything that reads it; [`daemon`]: how
//!   it is built and started.

pub mod admission;
pub mod auth;
pub mod call;
pub mod config;
pub mod connection;
pub mod conversation;
pub mod daemon;
pub mod durable;
pub mod error;
pub mod files;
pub mod health;
mod host;
pub mod kept;
pub mod lifecycle;
pub mod mcp;
pub mod memory;
pub mod observe;
pub mod operator;
pub mod outbox;
pub mod phase;
pub mod protocol;
pub mod provider;
pub mod rate;
pub mod retry;
pub mod router;
pub mod rt;
pub mod server;
pub mod session;
pub mod shutdown;
pub mod state;
pub mod tools;

pub use config::Config;
pub use daemon::Daemon;
pub use error::{CallError, ErrorCode};
