//! Named scenarios: each a documented fault mix, a workload, and the paths its sweep must
//! reach. A scenario's plan is drawn from the run's seed (madsim's seeded generator), so one
//! seed is one exact run.

use std::sync::OnceLock;
use std::time::Duration;

use exaid::config::{Config, Layers, ProviderId};
use madsim::rand::{Rng, thread_rng};
use serde_json::json;

use crate::client::{CallSpec, ClientSpec, Expect};
use crate::provider::{Faults, Weights};

mod crash;
mod doors;
mod routing;

/// Everything one run will do, drawn from its seed.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The daemon's configuration.
    pub config: Config,
    /// The deadline simple tools must get (what the configuration says).
    pub simple_timeout: Duration,
    /// The deadline workflow tools must get.
    pub workflow_timeout: Duration,
    /// The simulated Kimi's fault mix.
    pub kimi: Faults,
    /// The simulated GLM's fault mix.
    pub glm: Faults,
    /// The clients.
    pub clients: Vec<ClientSpec>,
    /// Extra health checks at these virtual ms (besides one at every call's deadline).
    pub health_checks_ms: Vec<u64>,
    /// A label for the variant drawn (e.g. which semaphore mode), shown in the outcome table.
    pub variant: &'static str,
    /// Shut the daemon down at this virtual ms, with this grace period (ms).
    pub shutdown: Option<(u64, u64)>,
    /// Hostile clients and when (virtual ms) each starts.
    pub hostiles: Vec<(crate::hostile::HostileKind, u64)>,
    /// The project on the simulated disk beyond the files the calls name, and its changes.
    pub disk: crate::fs::DiskPlan,
    /// How many Kimi keys (accounts) the daemon has, each its own simulated account with
    /// its own limit, budgets and retry-after (`KIMI_API_KEYS`).
    pub kimi_keys: u32,
    /// MCP clients (in-process, on the daemon's node), and what each does.
    pub mcp: Vec<crate::mcp::McpClientSpec>,
    /// The daemon's crashes: (virtual ms it is killed at, ms it stays down before it starts
    /// again over the same disk). Empty: it never dies (then `store` is unused).
    pub crashes: Vec<(u64, u64)>,
    /// Keep the daemon's state on the simulated disk, syncing like this (`None`: the
    /// daemon's in-memory store, as in every scenario where it never dies).
    pub store: Option<crate::store::SyncPlan>,
}

/// A named scenario.
pub struct Scenario {
    /// Its name on the command line.
    pub name: &'static str,
    /// What it reproduces and why.
    pub doc: &'static str,
    /// Coverage tags that a sweep of this scenario must reach at least once.
    pub must_reach: &'static [&'static str],
    /// Draws a plan (inside the simulation, from its seed).
    pub plan: fn() -> Plan,
}

/// Every scenario, in the order `--list` prints them.
pub fn all() -> &'static [Scenario] {
    &SCENARIOS
}

/// Find a scenario by name.
pub fn find(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name)
}

static SCENARIOS: [Scenario; 15] = [
    Scenario {
        name: "smoke",
        doc: "A few well-behaved clients, healthy providers: every call answered, progress flowing.",
        must_reach: &["call_ok", "progress_sent"],
        plan: smoke,
    },
    Scenario {
        name: "rate-limit-storm",
        doc: "Providers answer 429 in storms, with retry-after in seconds, in milliseconds, or none, \
              plus 5xx and resets: retries honor the provider, cooldowns are shared, and waits that \
              cannot fit in the deadline fail fast; `auto` calls move to the other provider.",
        must_reach: &[
            "retry_after_honored",
            "cooldown_waited",
            "backoff",
            "retried_attempt",
            "called_again_after_retry_after",
            "failed_fast_instead_of_sleeping",
            "call_ok",
            "progress_while_rate_limited",
            "failed_over",
        ],
        plan: rate_limit_storm,
    },
    Scenario {
        name: "disconnect-storm",
        doc: "Clients are killed in the middle of calls; some come back and resume with their \
              token and last seq, some never return and their sessions expire.",
        must_reach: &[
            "disconnect_during_call",
            "resume_replayed_frames",
            "session_expired",
            "call_stopped_by_session_expiry",
            "call_ok",
        ],
        plan: disconnect_storm,
    },
    Scenario {
        name: "overload",
        doc: "Bursts far beyond small limits and queues: refusals are immediate when a queue is \
              full or the estimated wait cannot fit, or come at the queue timeout, never at the \
              deadline.",
        must_reach: &[
            "refused_queue_full",
            "refused_wait_hopeless",
            "refused_queue_timeout",
            "progress_while_queued",
            "call_ok",
        ],
        plan: overload,
    },
    Scenario {
        name: "incident-2025-10-31",
        doc: "The seed incident: a workflow tool (the final step of a `debug` investigation, whose \
              expert analysis asks the provider) waits on a rate-limited Kimi that retries \
              (0.8 s, 1.6 s) or hangs; the editor disconnects mid-wait and resumes; health \
              checks land on the same instants as completions and deadlines. The timeout comes \
              from .env (WORKFLOW_TOOL_TIMEOUT_SECS=180) and must be the one honored.",
        must_reach: &[
            "retry_after_honored",
            "disconnect_during_call",
            "resume_replayed_frames",
            "deadline_hit",
            "ended_on_the_deadline_instant",
            "health_raced_completion",
            "health_during_call",
            "call_ok",
        ],
        plan: incident_2025_10_31,
    },
    Scenario {
        name: "double-release-2025-10-21",
        doc: "The double-release report: 40 calls, 3 concurrent, with acquisition timeouts and \
              cancels, in both semaphore modes (the session limit binding, or the global one). \
              Queue timeouts are drawn equal to the provider latency so they race releases.",
        must_reach: &[
            "mode_session_limit",
            "mode_global_limit",
            "refused_queue_timeout",
            "queue_timeout_raced_release",
            "deadline_hit",
            "call_cancelled",
            "cancel_lost_the_race",
            "call_ok",
        ],
        plan: double_release_2025_10_21,
    },
    Scenario {
        name: "shutdown",
        doc: "SIGTERM in the middle of a workload: the daemon stops accepting, refuses new \
              calls, lets calls in flight finish within the grace period, ends the rest with \
              INTERRUPTED (retryable), delivers every terminal frame, then closes sockets with 1001. \
              No call ends in silence.",
        must_reach: &[
            "finished_while_draining",
            "stopped_at_shutdown",
            "refused_while_draining",
            "closed_going_away",
        ],
        plan: shutdown,
    },
    Scenario {
        name: "hostile-client",
        doc: "Floods, garbage, oversized frames, clients that never read, sockets that never \
              say hello and floods of them past the pending-hello pool, beside well-behaved \
              clients: every well-behaved call is answered once within its deadline and every \
              hello within a bound, outboxes stay under their caps, each hostile client gets an \
              error or a close code naming the limit.",
        must_reach: &[
            "hostile_flood_refused",
            "hostile_flood_closed",
            "hostile_garbage_answered",
            "hostile_oversized_closed",
            "hostile_no_hello_closed",
            "hostile_never_reads",
            "hostile_hello_flood_evicted",
            "served_beside_abusers",
            "call_ok",
        ],
        plan: hostile_client,
    },
    Scenario {
        name: "mixed-soak",
        doc: "Everything at once: storms, hangs, disconnects with and without resume, duplicates, \
              cancels and bursts, over a longer workload, with multi-step workflow sessions (the \
              client sends each step with the continuation_id of the last, may be killed between \
              steps and goes on after resuming; the final analysis covers every step) and \
              consensus calls consulting two providers, each consultation admitted on its own; \
              sometimes conversation memory is tight, so history is dropped (and must be \
              announced) and conversations are evicted (and must be refused).",
        must_reach: &[
            "retry_after_honored",
            "disconnect_during_call",
            "duplicate_joined",
            "call_cancelled",
            "deadline_hit",
            "call_ok",
            "workflow_paused",
            "workflow_completed",
            "disconnect_mid_workflow",
            "workflow_step_after_resume",
            "consensus_answered",
            "history_truncated_announced",
            "continuation_refused",
        ],
        plan: mixed_soak,
    },
    Scenario {
        name: "files-and-search",
        doc: "Tools that see the code: chats name files and folders (some outside the root, some \
              missing, some over the budget) and may search the web; analyze sessions send their \
              relevant files to the expert. Files change and vanish between calls and between \
              the daemon's look and its read. Kimi stops for `$web_search` rounds (sometimes \
              once too often), GLM answers with sources, rate limits land inside the rounds; the \
              experts answer in JSON, fenced JSON, prose or cut short, and each must come back \
              parsed or with its parse error. The providers witness every message: files within the root, well formed and within \
              the budget; rounds within their limit, each answering the last.",
        must_reach: &[
            "call_ok",
            "file_skipped_named",
            "file_changed_mid_call_refused",
            "file_outside_roots_refused",
            "tool_round_answered",
            "tool_rounds_exhausted",
            "web_search_sources",
            "workflow_completed",
            "expert_json_parsed",
            "expert_fenced_json_parsed",
            "expert_parse_error_returned",
            "answer_truncated_marked",
        ],
        plan: routing::files_and_search,
    },
    Scenario {
        name: "failover",
        doc: "Kimi is down for the whole workload: 429s with Retry-After of 5 to 15 minutes, and \
              5xx. GLM is healthy. Every `auto` chat must be answered (by GLM, moving off Kimi or \
              routed there at once while Kimi cools down) inside its deadline; calls that name a \
              Kimi model fail fast with RATE_LIMITED, never moved.",
        must_reach: &[
            "call_ok",
            "failed_over",
            "routed_to_free_provider",
            "failed_fast_instead_of_sleeping",
        ],
        plan: routing::failover,
    },
    Scenario {
        name: "rate-budget",
        doc: "Both providers allow only a few requests a minute, and exaid is told so \
              (EXAI_KIMI_RPM, EXAI_GLM_RPM). Bursts of chats must wait for the budget or be \
              refused with OVER_CAPACITY naming it, and the simulated providers must never see \
              more requests in a minute than their accounts allow (invariant 13).",
        must_reach: &[
            "call_ok",
            "budget_waited",
            "budget_refused",
            "budget_held_at_provider",
        ],
        plan: routing::rate_budget,
    },
    Scenario {
        name: "isolation",
        doc: "Kimi hangs (one or two keys, each with a small limit) under a flood of calls that \
              name it, from several sessions, while other sessions call a healthy GLM. The \
              global limit is exactly the provider limits together. Every GLM call must be \
              answered (invariant 12) and no call may ever wait for a global permit (invariant \
              14): calls queued for Kimi hold only their session permits.",
        must_reach: &[
            "call_ok",
            "provider_hang",
            "progress_while_queued",
            "deadline_hit",
        ],
        plan: routing::isolation,
    },
    Scenario {
        name: "mcp-resume",
        doc: "MCP clients of every kind drop their stream mid-call and come back: stateless \
              ones send the same request again (joining the running call or getting its kept \
              result) or cancel it first, session ones resume with Last-Event-ID from the event \
              store, task ones stop polling for a while or cancel. Every call gets exactly one \
              result, its own, never a cancel its client did not send, and the daemon accepts \
              each call once (the provider is never asked twice).",
        must_reach: &[
            "call_ok",
            "mcp_stream_dropped_mid_call",
            "mcp_reissue_joined_running",
            "mcp_reissue_got_stored_result",
            "mcp_stateless_cancelled",
            "mcp_resumed_with_last_event_id",
            "mcp_task_left_unpolled",
            "mcp_task_cancelled",
            "mcp_task_status_message",
        ],
        plan: doors::mcp_resume,
    },
    Scenario {
        name: "crash-restart",
        doc: "The daemon is killed once or twice mid-workload (calls running, results unacked, a \
              commit pending) and starts again after a while over the same simulated disk, some \
              of whose syncs fail. Clients redial until it is back and resume their sessions: \
              every accepted call gets exactly one terminal frame (its result, or INTERRUPTED \
              for a call the dead daemon ran, which the client sends again), nothing is \
              delivered twice, a conversation loses at most what the disk had not committed \
              (invariants 15, 16), and no incarnation leaks a permit (17).",
        must_reach: &[
            "call_ok",
            "crash_during_call",
            "crash_with_unacked_result",
            "failed_sync",
            "interrupted_delivered",
            "resent_after_interrupted",
            "result_replayed_after_restart",
            "resumed_after_crash",
        ],
        plan: crash::crash_restart,
    },
];

/// Models of the simulated providers.
pub const KIMI_MODELS: [&str; 2] = ["kimi-k2-sim", "moonshot-v1-sim"];
/// Models of the simulated providers.
pub const GLM_MODELS: [&str; 2] = ["glm-4.6-sim", "glm-4.5-flash-sim"];

fn between(low: u64, high: u64) -> u64 {
    thread_rng().gen_range(low..=high)
}

fn chance(p: f64) -> bool {
    thread_rng().gen_bool(p)
}

fn base_config() -> Config {
    let mut config = Config::defaults();
    config.tools.progress_interval_ms = between(1, 5) * 1000;
    config.tools.simple_timeout_ms = 60_000;
    config.tools.workflow_timeout_ms = 180_000;
    config.retry.backoff_base_ms = 500;
    config.retry.backoff_max_ms = 8_000;
    config
}

/// How a generated client behaves.
struct Mix {
    /// (tool, weight).
    tools: &'static [(&'static str, u32)],
    /// Chance a call is cancelled, and when (ms after it is sent).
    cancel: (f64, u64, u64),
    /// Chance a call's request id is sent again while it may run.
    duplicate: f64,
    /// Chance the client is killed mid-workload.
    disconnect: f64,
    /// Chance a killed client comes back; and after how long (ms).
    resume: (f64, u64, u64),
    /// Calls per client.
    calls: (u64, u64),
    /// When calls are sent: within this window (ms from the start).
    spread_ms: u64,
}

fn pick_tool(tools: &[(&'static str, u32)]) -> &'static str {
    let total: u32 = tools.iter().map(|(_, w)| w).sum();
    let mut pick = thread_rng().gen_range(0..total);
    for (tool, weight) in tools {
        if pick < *weight {
            return tool;
        }
        pick -= weight;
    }
    tools[0].0
}

/// Workflow tools a simulated agent drives step by step (each ends with an expert analysis).
pub const WORKFLOW_TOOLS: [&str; 8] = [
    "debug",
    "analyze",
    "codereview",
    "thinkdeep",
    "secaudit",
    "precommit",
    "refactor",
    "testgen",
];

/// Steps one simulated workflow session takes, at most.
const SESSION_STEPS_MAX: u64 = 4;

/// The calls of one workflow session of `tool`: step 1 at `send_at_ms`, each later step a
/// moment (the agent's own work) after the previous one is answered, carrying its
/// `continuation_id`. Every step's findings name its request id; the final step's answer
/// must cover them all.
fn workflow_session(base_id: &str, tool: &str, model: &str, send_at_ms: u64) -> Vec<CallSpec> {
    let steps = between(1, SESSION_STEPS_MAX);
    let ids: Vec<String> = (1..=steps).map(|n| format!("{base_id}-s{n}")).collect();
    ids.iter()
        .enumerate()
        .map(|(index, request_id)| {
            let number = index as u64 + 1;
            let last = number == steps;
            let arguments = json!({
                "step": format!("step {number} of {tool} for {base_id}"),
                "step_number": number,
                "total_steps": steps,
                "next_step_required": !last,
                "findings": format!("question {request_id}"),
                "relevant_files": [format!("{}/src/{base_id}.rs", crate::fs::PROJECT_ROOT)],
                "model": model,
            });
            let mut arguments = arguments;
            if tool == "precommit" {
                // The original's step-1 requirement: the repository the changes are in.
                arguments["path"] = json!(crate::fs::PROJECT_ROOT);
            }
            let expect = if last {
                Expect::Answer(ids.iter().map(|id| format!("question {id}")).collect())
            } else {
                Expect::Pause(format!("pause_for_{tool}"))
            };
            CallSpec {
                request_id: request_id.clone(),
                tool: tool.to_string(),
                arguments,
                send_at_ms,
                cancel_at_ms: None,
                duplicate_at_ms: None,
                after: (index > 0).then(|| (ids[index - 1].clone(), between(100, 5_000))),
                expect,
                must_answer: false,
            }
        })
        .collect()
}

fn clients(count: u64, mix: &Mix, ttl_ms: u64) -> Vec<ClientSpec> {
    let models: Vec<&str> = KIMI_MODELS
        .iter()
        .chain(GLM_MODELS.iter())
        .copied()
        .chain(["auto"])
        .collect();
    (0..count)
        .map(|c| {
            let name = format!("client{c}");
            let mut calls = Vec::new();
            for i in 0..between(mix.calls.0, mix.calls.1) {
                let request_id = format!("c{c}-r{i}");
                let tool = pick_tool(mix.tools);
                let model = models[thread_rng().gen_range(0..models.len())];
                let send_at_ms = between(1, mix.spread_ms.max(1));
                if tool == "workflow" {
                    let tool = WORKFLOW_TOOLS[thread_rng().gen_range(0..WORKFLOW_TOOLS.len())];
                    calls.extend(workflow_session(&request_id, tool, model, send_at_ms));
                    continue;
                }
                let (arguments, expect) = match tool {
                    "chat" => (
                        json!({"prompt": format!("question {request_id}"), "model": model}),
                        Expect::Answer(vec![format!("question {request_id}")]),
                    ),
                    "consensus" => (
                        json!({
                            "step": format!("question {request_id}"),
                            "step_number": 1, "total_steps": 1, "next_step_required": false,
                            "findings": "the client's own view",
                            "models": [
                                {"model": KIMI_MODELS[0], "stance": "for"},
                                {"model": GLM_MODELS[0], "stance": "against"},
                            ],
                        }),
                        Expect::Answer(vec![format!("question {request_id}")]),
                    ),
                    _ => (json!({}), Expect::Local),
                };
                let cancel_at_ms =
                    chance(mix.cancel.0).then(|| send_at_ms + between(mix.cancel.1, mix.cancel.2));
                let duplicate_at_ms = chance(mix.duplicate).then(|| send_at_ms + between(0, 2_000));
                calls.push(CallSpec {
                    request_id,
                    tool: tool.to_string(),
                    arguments,
                    send_at_ms,
                    cancel_at_ms,
                    duplicate_at_ms,
                    after: None,
                    expect,
                    must_answer: false,
                });
            }
            let disconnect_at_ms =
                chance(mix.disconnect).then(|| between(100, mix.spread_ms + 20_000));
            let resume_after_ms = (disconnect_at_ms.is_some() && chance(mix.resume.0))
                .then(|| between(mix.resume.1, mix.resume.2.min(ttl_ms.saturating_sub(1_000))));
            ClientSpec {
                name,
                calls,
                disconnect_at_ms,
                resume_after_ms,
                ack_every_frames: [0u32, 1, 5][thread_rng().gen_range(0..3)],
            }
        })
        .collect()
}

fn random_health_checks(count: u64, horizon_ms: u64) -> Vec<u64> {
    let mut checks: Vec<u64> = (0..count).map(|_| between(1, horizon_ms)).collect();
    checks.sort_unstable();
    checks
}

fn plan(
    config: Config,
    kimi: Faults,
    glm: Faults,
    clients: Vec<ClientSpec>,
    variant: &'static str,
) -> Plan {
    let horizon = clients
        .iter()
        .flat_map(|c| c.calls.iter().map(|call| call.send_at_ms))
        .max()
        .unwrap_or(1_000);
    Plan {
        simple_timeout: Duration::from_millis(config.tools.simple_timeout_ms),
        workflow_timeout: Duration::from_millis(config.tools.workflow_timeout_ms),
        health_checks_ms: random_health_checks(between(3, 12), horizon + 30_000),
        config,
        kimi,
        glm,
        clients,
        variant,
        shutdown: None,
        hostiles: Vec::new(),
        disk: crate::fs::DiskPlan::default(),
        kimi_keys: 1,
        mcp: Vec::new(),
        crashes: Vec::new(),
        store: None,
    }
}

const CHAT_ONLY: &[(&str, u32)] = &[("chat", 1)];
const MOSTLY_CHAT: &[(&str, u32)] = &[("chat", 8), ("workflow", 2), ("status", 1), ("version", 1)];
/// The soak's mix: multi-step workflow sessions and consensus calls among the chats.
const SOAK_MIX: &[(&str, u32)] = &[
    ("chat", 7),
    ("workflow", 3),
    ("consensus", 1),
    ("status", 1),
    ("version", 1),
];

fn calm_mix() -> Mix {
    Mix {
        tools: MOSTLY_CHAT,
        cancel: (0.0, 0, 0),
        duplicate: 0.0,
        disconnect: 0.0,
        resume: (0.0, 0, 0),
        calls: (3, 10),
        spread_ms: 5_000,
    }
}

fn smoke() -> Plan {
    let config = base_config();
    let latency = (between(1, 200), between(200, 3_000));
    let clients = clients(between(1, 3), &calm_mix(), config.sessions.ttl_ms);
    plan(
        config,
        Faults::healthy(latency),
        Faults::healthy(latency),
        clients,
        "healthy",
    )
}

fn storm_faults() -> Faults {
    let storm_start = between(0, 3_000);
    let storm_end = storm_start + between(5_000, 30_000);
    Faults {
        latency_ms: (between(10, 200), between(200, 2_000)),
        calm: Weights {
            ok: 10,
            rate_limit_secs: 1,
            server_error: 1,
            reset: 1,
            ..Weights::default()
        },
        storm: Weights {
            ok: 2,
            rate_limit_secs: 3,
            rate_limit_ms: 3,
            rate_limit_bare: 2,
            quota: u32::from(chance(0.3)),
            server_error: 1,
            ..Weights::default()
        },
        storms_ms: vec![(storm_start, storm_end)],
        // Mostly short waits, sometimes longer than what a call has left.
        retry_after_ms: (200, if chance(0.3) { 45_000 } else { 5_000 }),
    }
}

fn rate_limit_storm() -> Plan {
    let mut config = base_config();
    config.tools.simple_timeout_ms = between(20, 60) * 1000;
    config.limits.queue_timeout_ms = config
        .limits
        .queue_timeout_ms
        .min(config.tools.simple_timeout_ms);
    let mix = Mix {
        tools: CHAT_ONLY,
        calls: (5, 15),
        spread_ms: 10_000,
        ..calm_mix()
    };
    let clients = clients(between(3, 6), &mix, config.sessions.ttl_ms);
    plan(config, storm_faults(), storm_faults(), clients, "storm")
}

fn disconnect_storm() -> Plan {
    let mut config = base_config();
    config.sessions.ttl_ms = between(20, 120) * 1000;
    let mix = Mix {
        tools: MOSTLY_CHAT,
        disconnect: 0.8,
        resume: (0.6, 100, 20_000),
        calls: (3, 12),
        spread_ms: 8_000,
        ..calm_mix()
    };
    let latency = (between(100, 1_000), between(1_000, 15_000));
    // Some attempts hang: their calls outlive the session of a client that never returns.
    let mut faults = Faults::healthy(latency);
    faults.calm.hang = u32::from(chance(0.5));
    faults.calm.ok = 6;
    let clients = clients(between(3, 6), &mix, config.sessions.ttl_ms);
    plan(config, faults.clone(), faults, clients, "disconnects")
}

fn overload() -> Plan {
    let mut config = base_config();
    config.limits.global_inflight_max = between(3, 8) as u32;
    config.providers[ProviderId::Kimi].inflight_max = between(1, 3) as u32;
    config.providers[ProviderId::Glm].inflight_max = between(1, 2) as u32;
    config.sessions.inflight_max = between(2, 4) as u32;
    config.limits.queue_waiters_max = between(0, 6) as u32;
    config.limits.queue_timeout_ms = between(300, 3_000);
    let mix = Mix {
        tools: CHAT_ONLY,
        calls: (5, 20),
        spread_ms: 1_000,
        ..calm_mix()
    };
    let latency = (between(100, 500), between(500, 4_000));
    let clients = clients(between(8, 16), &mix, config.sessions.ttl_ms);
    plan(
        config,
        Faults::healthy(latency),
        Faults::healthy(latency),
        clients,
        "overload",
    )
}

/// The `.env` of the incident, loaded through the real configuration layers.
const INCIDENT_DOTENV: &str = "WORKFLOW_TOOL_TIMEOUT_SECS=180\nEXAI_WS_KIMI_MAX_INFLIGHT=6\n";

fn incident_config() -> Config {
    static PATH: OnceLock<std::path::PathBuf> = OnceLock::new();
    let path = PATH.get_or_init(|| {
        let path =
            std::env::temp_dir().join(format!("exaid-sim-incident-{}.env", std::process::id()));
        std::fs::write(&path, INCIDENT_DOTENV).expect("write the incident's .env");
        path
    });
    let layers = Layers {
        dotenv: Some(path.clone()),
        dotenv_required: true,
        ..Layers::default()
    };
    let loaded = Config::load(&layers).expect("the incident's .env is valid");
    loaded.config
}

fn incident_2025_10_31() -> Plan {
    let mut config = incident_config();
    config.tools.progress_interval_ms = between(1, 8) * 1000;
    config.retry.attempts_max = between(3, 6) as u32;
    // The configured value is the one to honor: read it back, never restate it.
    let workflow_timeout = Duration::from_millis(config.tools.workflow_timeout_ms);
    let hang = chance(0.5);
    let kimi = Faults {
        latency_ms: (between(200, 2_000), between(2_000, 30_000)),
        calm: Weights {
            ok: 4,
            rate_limit_ms: 2,
            hang: u32::from(hang) * 3,
            ..Weights::default()
        },
        storm: Weights {
            ok: 1,
            rate_limit_ms: 4,
            rate_limit_secs: 1,
            hang: u32::from(hang),
            ..Weights::default()
        },
        storms_ms: vec![(0, between(5_000, 60_000))],
        // The log's pauses: 0.8 s and 1.6 s.
        retry_after_ms: (800, 1_600),
    };
    let glm = Faults::healthy((100, 1_000));
    // The editor's calls: the final step of a `debug` investigation, whose expert analysis
    // waits on the rate-limited Kimi under the workflow deadline.
    let calls = (0..between(1, 3))
        .map(|i| {
            let request_id = format!("editor-r{i}");
            let arguments = json!({
                "step": "Why does the daemon time out at 300 s?",
                "step_number": 1, "total_steps": 1, "next_step_required": false,
                "findings": format!("question {request_id}"),
                "model": KIMI_MODELS[0],
                // What the expert analyses: without it, the step would finish locally.
                "relevant_files": [format!("{}/src/daemon.rs", crate::fs::PROJECT_ROOT)],
            });
            CallSpec::question(request_id, "debug", arguments, between(1, 2_000))
        })
        .collect();
    let editor = ClientSpec {
        name: "editor".to_string(),
        calls,
        disconnect_at_ms: Some(between(2_000, 170_000)),
        resume_after_ms: Some(between(1_000, 60_000)),
        ack_every_frames: [0u32, 1][thread_rng().gen_range(0..2)],
    };
    let mut planned = plan(
        config,
        kimi,
        glm,
        vec![editor],
        if hang { "hangs" } else { "retries" },
    );
    planned.workflow_timeout = workflow_timeout;
    planned
}

fn double_release_2025_10_21() -> Plan {
    let mut config = base_config();
    let session_mode = chance(0.5);
    if session_mode {
        config.sessions.inflight_max = 3;
    } else {
        config.limits.global_inflight_max = 3;
        config.sessions.inflight_max = 8;
    }
    let latency_ms = between(200, 2_000);
    // Acquisition timeouts land exactly on releases: a multiple of the (fixed) latency.
    config.limits.queue_timeout_ms = latency_ms * between(1, 3);
    // Deadlines bite too, so permits are given back on the timeout path as well (where the
    // original released one twice).
    // Never shorter than one answer, or even a call with no queue could not succeed.
    let drawn_ms = config.limits.queue_timeout_ms
        + latency_ms * between(0, 4)
        + between(0, 1) * latency_ms / 2;
    config.tools.simple_timeout_ms = drawn_ms.max(latency_ms + 1);
    config.limits.queue_waiters_max = between(8, 40) as u32;
    let calls = (0..40)
        .map(|i| {
            let request_id = format!("stress-r{i}");
            let send_at_ms = 1 + (i / 3) * 10;
            let arguments =
                json!({"prompt": format!("question {request_id}"), "model": KIMI_MODELS[0]});
            CallSpec {
                // Some cancels land exactly when the result does.
                cancel_at_ms: chance(0.2).then(|| send_at_ms + latency_ms * between(0, 2)),
                ..CallSpec::question(request_id, "chat", arguments, send_at_ms)
            }
        })
        .collect();
    let client = ClientSpec::steady("stress".to_string(), calls);
    let faults = Faults::healthy((latency_ms, latency_ms));
    plan(
        config,
        faults.clone(),
        faults,
        vec![client],
        if session_mode {
            "mode_session_limit"
        } else {
            "mode_global_limit"
        },
    )
}

fn shutdown() -> Plan {
    let config = base_config();
    let mix = Mix {
        tools: MOSTLY_CHAT,
        calls: (3, 12),
        spread_ms: 10_000,
        ..calm_mix()
    };
    let latency = (between(100, 1_000), between(1_000, 20_000));
    let clients = clients(between(2, 6), &mix, config.sessions.ttl_ms);
    let shutdown_at_ms = between(500, 8_000);
    let grace_ms = [0, between(1, 3_000), between(3_000, 15_000)][thread_rng().gen_range(0..3)];
    let mut planned = plan(
        config,
        Faults::healthy(latency),
        Faults::healthy(latency),
        clients,
        "sigterm",
    );
    planned.shutdown = Some((shutdown_at_ms, grace_ms));
    planned
}

fn hostile_client() -> Plan {
    use crate::hostile::HostileKind;
    let mut config = base_config();
    config.limits.frame_bytes_max = 64 * 1024;
    config.sessions.rate_per_sec = between(100, 400) as u32;
    config.sessions.burst = between(100, 400) as u32;
    config.connections.hello_timeout_ms = between(1, 5) * 1000;
    config.connections.pending_hellos_max = between(2, 6) as u32;
    config.sessions.outbox_frames_max = between(32, 256) as u32;
    let mix = Mix {
        tools: MOSTLY_CHAT,
        calls: (3, 10),
        spread_ms: 10_000,
        ..calm_mix()
    };
    let latency = (between(10, 500), between(500, 5_000));
    let clients = clients(between(2, 4), &mix, config.sessions.ttl_ms);
    let kinds = [
        HostileKind::Flood,
        HostileKind::Garbage,
        HostileKind::Oversized,
        HostileKind::NeverReads,
        HostileKind::NoHello,
        HostileKind::HelloFlood,
    ];
    let hostiles = (0..between(3, 8))
        .map(|_| {
            (
                kinds[thread_rng().gen_range(0..kinds.len())],
                between(0, 8_000),
            )
        })
        .collect();
    let mut planned = plan(
        config,
        Faults::healthy(latency),
        Faults::healthy(latency),
        clients,
        "hostile",
    );
    planned.hostiles = hostiles;
    planned
}

fn mixed_soak() -> Plan {
    let mut config = base_config();
    config.limits.global_inflight_max = between(4, 24) as u32;
    config.sessions.inflight_max = between(2, 8) as u32;
    config.limits.queue_waiters_max = between(2, 64) as u32;
    config.limits.queue_timeout_ms = between(1_000, 20_000);
    config.tools.simple_timeout_ms = between(20, 60) * 1000;
    config.sessions.ttl_ms = between(30, 300) * 1000;
    let mix = Mix {
        tools: SOAK_MIX,
        cancel: (0.1, 0, 5_000),
        duplicate: 0.1,
        disconnect: 0.4,
        resume: (0.6, 100, 30_000),
        calls: (5, 20),
        spread_ms: 30_000,
    };
    let mut kimi = storm_faults();
    kimi.calm.hang = u32::from(chance(0.5));
    let glm = storm_faults();
    let clients = clients(between(3, 8), &mix, config.sessions.ttl_ms);
    let mut planned = plan(config, kimi, glm, clients, "mixed");
    // Sometimes memory is tight: conversations are evicted and their oldest turns dropped,
    // which answers must announce (and a continuation_id evicted must be refused).
    if chance(0.3) {
        planned.config.conversations.conversations_max = between(1, 6) as u32;
        planned.config.conversations.turns_max = between(2, 6) as u32;
    }
    planned
}
