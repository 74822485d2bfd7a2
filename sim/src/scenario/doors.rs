//! The scenario of the MCP door: `mcp-resume`. Apart from the engine's scenarios only to keep
//! each file short; it draws its plan with the same helpers.

use madsim::rand::{Rng, thread_rng};

use super::{Plan, base_config, between, chance, plan, storm_faults};
use crate::mcp::{McpCall, McpClientSpec, McpMode};
use crate::provider::Faults;

/// MCP clients of every kind (stateless, session, task) whose streams drop mid-call and who
/// come back after a drawn while, some cancelling first; providers healthy or in a 429 storm.
pub(super) fn mcp_resume() -> Plan {
    let config = base_config();
    let storm = chance(0.4);
    let latency = (between(50, 400), between(400, 6_000));
    let faults = || {
        if storm {
            storm_faults()
        } else {
            Faults::healthy(latency)
        }
    };
    let variant = if storm { "storm" } else { "healthy" };
    let mut planned = plan(config, faults(), faults(), Vec::new(), variant);
    planned.mcp = (0..between(2, 6)).map(mcp_client).collect();
    planned
}

/// One MCP client: its kind, and one to four calls, most of which drop their stream.
fn mcp_client(index: u64) -> McpClientSpec {
    let mode = match thread_rng().gen_range(0..3) {
        0 => McpMode::Stateless,
        1 => McpMode::Session,
        _ => McpMode::Task,
    };
    let calls = (0..between(1, 4))
        .map(|call| McpCall {
            prompt: format!("mcp client {index} call {call}"),
            send_at_ms: between(0, 5_000),
            drop_after_ms: chance(0.85).then(|| between(0, 4_000)),
            back_after_ms: between(0, 10_000),
            // A session's call is cancelled through its request; its clients only drop.
            cancel: mode != McpMode::Session && chance(0.25),
        })
        .collect();
    McpClientSpec {
        name: format!("mcp{index}"),
        mode,
        calls,
    }
}
