//! The scenarios of the tools that see the code and of routing: `files-and-search`,
//! `failover`, `rate-budget`, `isolation`. Apart from the engine's scenarios only to keep each file short;
//! they draw their plans with the same helpers.

use madsim::rand::{Rng, thread_rng};
use serde_json::json;

use super::{
    CHAT_ONLY, GLM_MODELS, KIMI_MODELS, Mix, Plan, base_config, between, calm_mix, chance, clients,
    plan, workflow_session,
};
use crate::client::{CallSpec, ClientSpec};
use crate::provider::{Faults, Weights};
use exaid::config::ProviderId;

/// The simulated project of `files-and-search`: sources of drawn sizes, a nested folder, a
/// hidden and a build folder (never expanded), and a link leading outside the root to a
/// secret that must never be read.
fn project() -> crate::fs::DiskPlan {
    let root = crate::fs::PROJECT_ROOT;
    let mut files: Vec<(String, usize)> = (0..between(6, 14))
        .map(|i| (format!("{root}/src/m{i}.rs"), between(40, 4_000) as usize))
        .collect();
    files.push((
        format!("{root}/src/deep/inner.rs"),
        between(40, 400) as usize,
    ));
    files.push((format!("{root}/.git/config"), 64));
    files.push((format!("{root}/target/out.rs"), 64));
    files.push(("/secret/key.txt".to_string(), 32));
    let links = vec![(
        format!("{root}/src/escape.rs"),
        "/secret/key.txt".to_string(),
    )];
    crate::fs::DiskPlan {
        files,
        links,
        changes: Vec::new(),
    }
}

/// What one call of `files-and-search` names: a folder, some files, and now and then a path
/// that must be refused (outside the root, through the link, or never there).
fn named_files(disk: &crate::fs::DiskPlan) -> Vec<String> {
    let root = crate::fs::PROJECT_ROOT;
    let sources: Vec<&String> = disk
        .files
        .iter()
        .map(|(path, _)| path)
        .filter(|p| p.starts_with(&format!("{root}/src/m")))
        .collect();
    let mut named: Vec<String> = (0..between(1, 4))
        .map(|_| sources[thread_rng().gen_range(0..sources.len())].clone())
        .collect();
    match between(0, 9) {
        0 => named.push(format!("{root}/src")),
        1 => named.push(format!("{root}/src/escape.rs")),
        2 => named.push("/secret/key.txt".to_string()),
        3 => named.push(format!("{root}/src/never.rs")),
        _ => {}
    }
    named
}

/// Changes to the project while the calls run: rewrites, removals, and changes that land
/// between the daemon's look at a file and its read.
fn churn(disk: &mut crate::fs::DiskPlan, horizon_ms: u64) {
    use crate::fs::DiskChange;
    let sources: Vec<String> = disk
        .files
        .iter()
        .map(|(path, _)| path.clone())
        .filter(|p| p.contains("/src/m"))
        .collect();
    for _ in 0..between(4, 12) {
        let path = sources[thread_rng().gen_range(0..sources.len())].clone();
        let change = match between(0, 3) {
            0 => DiskChange::Rewrite(between(40, 4_000) as usize),
            1 => DiskChange::Remove,
            2 => DiskChange::RewriteOnNextRead(between(40, 4_000) as usize),
            _ => DiskChange::RemoveOnNextRead,
        };
        let at_ms = between(1, horizon_ms);
        disk.changes.push((at_ms, path.clone(), change.clone()));
        if matches!(change, DiskChange::Remove | DiskChange::RemoveOnNextRead) {
            // The file comes back a while later (a checkout, a rebuild).
            let size = between(40, 4_000) as usize;
            disk.changes.push((
                at_ms + between(500, 10_000),
                path,
                DiskChange::Rewrite(size),
            ));
        }
    }
    disk.changes.sort_by_key(|(at_ms, _, _)| *at_ms);
}

pub(super) fn files_and_search() -> Plan {
    let mut config = base_config();
    config.tools.tool_rounds_max = between(2, 4) as u32;
    config.file_access.files_per_call_max = between(3, 8) as u32;
    config.file_access.file_bytes_max = between(1_500, 6_000);
    config.file_access.context_share_percent = between(5, 30) as u32;
    // Two models that may search, with a small window so the budget binds.
    config.models.facts = [KIMI_MODELS[0], GLM_MODELS[0]]
        .iter()
        .map(|model| exaid::config::FactsOverride {
            model: model.to_string(),
            context_tokens: Some(8_192),
            vision: None,
            web_search: Some(true),
            thinking: None,
            price_in_micro_usd: None,
            price_out_micro_usd: None,
        })
        .collect();
    let mut disk = project();
    let spread_ms = 20_000;
    let models = [KIMI_MODELS[0], GLM_MODELS[0], KIMI_MODELS[1]];
    let clients: Vec<ClientSpec> = (0..between(2, 5))
        .map(|c| {
            let mut calls = Vec::new();
            for i in 0..between(3, 8) {
                let request_id = format!("c{c}-r{i}");
                let model = models[thread_rng().gen_range(0..models.len())];
                let send_at_ms = between(1, spread_ms);
                if chance(0.3) {
                    let mut session = workflow_session(&request_id, "analyze", model, send_at_ms);
                    for step in &mut session {
                        step.arguments["relevant_files"] = json!(named_files(&disk));
                        step.arguments["use_websearch"] = json!(true);
                    }
                    calls.extend(session);
                    continue;
                }
                let arguments = json!({
                    "prompt": format!("question {request_id}"), "model": model,
                    "files": named_files(&disk), "use_websearch": chance(0.7),
                });
                calls.push(CallSpec::question(
                    request_id, "chat", arguments, send_at_ms,
                ));
            }
            ClientSpec::steady(format!("client{c}"), calls)
        })
        .collect();
    churn(&mut disk, spread_ms + 10_000);
    let faults = Faults {
        calm: Weights {
            ok: 8,
            rate_limit_ms: 1,
            server_error: 1,
            ..Weights::default()
        },
        ..Faults::healthy((between(10, 300), between(300, 2_000)))
    };
    let mut planned = plan(config, faults.clone(), faults, clients, "files");
    planned.disk = disk;
    planned
}

pub(super) fn failover() -> Plan {
    let config = base_config();
    let kimi = Faults {
        latency_ms: (between(10, 100), between(100, 800)),
        calm: Weights {
            rate_limit_secs: 4,
            server_error: 1,
            ok: u32::from(chance(0.3)),
            ..Weights::default()
        },
        storm: Weights {
            rate_limit_secs: 1,
            ..Weights::default()
        },
        storms_ms: Vec::new(),
        retry_after_ms: (300_000, 900_000),
    };
    let glm = Faults::healthy((between(50, 300), between(300, 2_000)));
    let clients = (0..between(2, 4))
        .map(|c| {
            let calls = (0..between(3, 10))
                .map(|i| {
                    let request_id = format!("c{c}-r{i}");
                    let (model, auto) = match between(0, 9) {
                        0 => (KIMI_MODELS[0], false),
                        1 => (GLM_MODELS[0], false),
                        _ => ("auto", true),
                    };
                    let arguments =
                        json!({"prompt": format!("question {request_id}"), "model": model});
                    CallSpec {
                        must_answer: auto,
                        ..CallSpec::question(request_id, "chat", arguments, between(1, 20_000))
                    }
                })
                .collect();
            ClientSpec::steady(format!("client{c}"), calls)
        })
        .collect();
    let mut planned = plan(config, kimi, glm, clients, "kimi-down");
    planned.kimi_keys = between(1, 2) as u32;
    planned
}

pub(super) fn rate_budget() -> Plan {
    let mut config = base_config();
    config.providers[ProviderId::Kimi].rpm = between(2, 8) as u32;
    config.providers[ProviderId::Glm].rpm = between(2, 8) as u32;
    // A chat asks for up to 1,024 tokens: a few thousand a minute binds.
    for id in [ProviderId::Kimi, ProviderId::Glm] {
        if chance(0.5) {
            config.providers[id].tpm = between(2_500, 12_000);
        }
    }
    config.tools.simple_timeout_ms = between(20, 90) * 1000;
    let mix = Mix {
        tools: CHAT_ONLY,
        calls: (3, 10),
        spread_ms: between(1_000, 60_000),
        ..calm_mix()
    };
    let latency = (between(10, 200), between(200, 2_000));
    let clients = clients(between(2, 5), &mix, config.sessions.ttl_ms);
    let mut planned = plan(
        config,
        Faults::healthy(latency),
        Faults::healthy(latency),
        clients,
        "budgets",
    );
    planned.kimi_keys = between(1, 2) as u32;
    planned
}

pub(super) fn isolation() -> Plan {
    let mut config = base_config();
    let kimi_keys = between(1, 2) as u32;
    let kimi_max = between(1, 3) as u32;
    let glm_max = between(2, 4) as u32;
    config.providers[ProviderId::Kimi].inflight_max = kimi_max;
    config.providers[ProviderId::Glm].inflight_max = glm_max;
    // Exactly room for every provider permit: a call that held a global permit while it
    // queued for Kimi would take one that a GLM call needs.
    config.limits.global_inflight_max = kimi_max * kimi_keys + glm_max;
    config.sessions.inflight_max = 64;
    config.tools.simple_timeout_ms = between(10, 40) * 1000;
    let kimi = Faults {
        calm: Weights {
            hang: 8,
            ok: 1,
            ..Weights::default()
        },
        ..Faults::healthy((between(10, 100), between(100, 500)))
    };
    let glm = Faults::healthy((between(20, 200), between(200, 1_000)));
    let named = |c: u64, model: &str, count: u64, must_answer: bool| -> ClientSpec {
        let calls = (0..count)
            .map(|i| {
                let request_id = format!("{model}-c{c}-r{i}");
                let arguments = json!({"prompt": format!("question {request_id}"), "model": model});
                CallSpec {
                    must_answer,
                    ..CallSpec::question(request_id, "chat", arguments, between(1, 15_000))
                }
            })
            .collect();
        ClientSpec::steady(format!("{model}-client{c}"), calls)
    };
    let mut clients: Vec<ClientSpec> = (0..between(2, 3))
        .map(|c| named(c, KIMI_MODELS[0], between(4, 12), false))
        .collect();
    clients.extend((0..between(1, 2)).map(|c| named(c, GLM_MODELS[0], between(3, 8), true)));
    let mut planned = plan(config, kimi, glm, clients, "kimi-hangs");
    planned.kimi_keys = kimi_keys;
    planned
}
