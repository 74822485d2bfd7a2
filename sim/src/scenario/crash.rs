//! The scenario of a daemon that dies: `crash-restart`. Apart from the engine's scenarios
//! only to keep each file short; it draws its plan with the same helpers.

use madsim::rand::{Rng, thread_rng};
use serde_json::json;

use super::{
    GLM_MODELS, KIMI_MODELS, Plan, WORKFLOW_TOOLS, base_config, between, plan, workflow_session,
};
use crate::client::{CallSpec, ClientSpec};
use crate::provider::Faults;
use crate::store::SyncPlan;

/// A few clients making chats, chat conversations (each turn sent with the last one's
/// `continuation_id`) and workflow sessions, while the daemon is killed once or twice at
/// drawn instants (with calls running, results unacked) and comes back after a drawn
/// downtime over the same simulated disk, some of whose syncs fail.
pub(super) fn crash_restart() -> Plan {
    let mut config = base_config();
    config.sessions.ttl_ms = between(60, 180) * 1000;
    let latency = (between(100, 800), between(800, 6_000));
    let clients = (0..between(2, 4)).map(client).collect();
    let mut planned = plan(
        config,
        Faults::healthy(latency),
        Faults::healthy(latency),
        clients,
        "crashes",
    );
    let first_ms = between(1_000, 20_000);
    let first_down_ms = between(200, 8_000);
    planned.crashes = vec![(first_ms, first_down_ms)];
    if thread_rng().gen_bool(0.5) {
        let second_ms = first_ms + first_down_ms + between(2_000, 20_000);
        planned.crashes.push((second_ms, between(200, 8_000)));
    }
    planned.store = Some(SyncPlan {
        latency_ms: (1, 20),
        fail_fraction: [0.05, 0.2, 0.4][thread_rng().gen_range(0..3)],
    });
    planned
}

/// One client: chats and chat conversations, and now and then a workflow session.
fn client(index: u64) -> ClientSpec {
    let models: Vec<&str> = KIMI_MODELS
        .iter()
        .chain(GLM_MODELS.iter())
        .copied()
        .chain(["auto"])
        .collect();
    let mut calls = Vec::new();
    for i in 0..between(2, 6) {
        let base = format!("c{index}-r{i}");
        let model = models[thread_rng().gen_range(0..models.len())];
        let send_at_ms = between(1, 20_000);
        match between(0, 5) {
            0 => {
                let tool = WORKFLOW_TOOLS[thread_rng().gen_range(0..WORKFLOW_TOOLS.len())];
                calls.extend(workflow_session(&base, tool, model, send_at_ms));
            }
            1 | 2 => calls.extend(conversation(&base, model, send_at_ms)),
            _ => {
                let arguments = json!({"prompt": format!("question {base}"), "model": model});
                calls.push(CallSpec::question(base, "chat", arguments, send_at_ms));
            }
        }
    }
    ClientSpec {
        name: format!("client{index}"),
        calls,
        disconnect_at_ms: None,
        resume_after_ms: None,
        ack_every_frames: [0u32, 1, 5][thread_rng().gen_range(0..3)],
    }
}

/// A chat conversation of two to four turns: each later turn is sent a moment after the last
/// one's answer, with its `continuation_id`.
fn conversation(base: &str, model: &str, send_at_ms: u64) -> Vec<CallSpec> {
    let turns = between(2, 4);
    let ids: Vec<String> = (1..=turns).map(|n| format!("{base}-t{n}")).collect();
    ids.iter()
        .enumerate()
        .map(|(index, request_id)| {
            let arguments = json!({"prompt": format!("question {request_id}"), "model": model});
            CallSpec {
                after: (index > 0).then(|| (ids[index - 1].clone(), between(100, 5_000))),
                ..CallSpec::question(request_id.clone(), "chat", arguments, send_at_ms)
            }
        })
        .collect()
}
