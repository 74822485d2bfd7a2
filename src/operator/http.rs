//! The daemon's HTTP port: `/healthz`, `/readyz`, `/status`, `/metrics` for the operator, and
//! `/mcp` (MCP over Streamable HTTP, bearer token required; see `mcp::http`).
//!
//! This module only builds the routes (axum handlers over the daemon's shared state); binding
//! and serving them is the production side of the seam (`rt::tokio::serve_http`).
//!
//! - `/healthz`: the process is alive (always 200 while it can answer).
//! - `/readyz`: 200 while the daemon accepts calls, 503 with the reason while it drains.
//!   Running calls never make it unready: busy is not broken (the original's health check
//!   called every running call a leak).
//! - `/status`: JSON: limits with permits in use, holders and waiters, sessions, connections,
//!   calls, provider cooldowns, uptime, version, and any broken invariant.
//! - `/metrics`: Prometheus/OpenMetrics text.
//!
//! Every route first checks the `Origin` header (`config::origin`): a browser page of any
//! origin but loopback and `EXAI_HTTP_ALLOWED_ORIGINS` gets 403 before anything else, token or
//! not, so a DNS-rebinding page can neither call `/mcp` nor read `/status`.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::config::ServerSettings;
use crate::config::origin::{self, Origin, OriginCheck};
use crate::operator::metrics::Metrics;
use crate::rt::http::HttpLimits;
use crate::state::Shared;

/// What the operator routes read: the daemon's state, and its metrics if it keeps them.
#[derive(Clone)]
struct Operator {
    /// The daemon.
    shared: Arc<Shared>,
    /// Its metrics (`None`: `/metrics` answers 404).
    metrics: Option<Arc<Metrics>>,
}

/// The HTTP port's connection cap and timeouts, from the configuration.
pub fn limits(server: &ServerSettings) -> HttpLimits {
    HttpLimits {
        connections_max: server.http_connections_max,
        header_timeout: Duration::from_millis(server.http_header_timeout_ms),
        idle_timeout: Duration::from_millis(server.http_idle_timeout_ms),
    }
}

/// The routes, bound to the daemon.
pub fn router(shared: Arc<Shared>, metrics: Option<Arc<Metrics>>) -> Router {
    let operator = Operator {
        shared: shared.clone(),
        metrics,
    };
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/metrics", get(metrics_text))
        .with_state(operator)
        .merge(crate::mcp::http::routes(shared.clone()))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(origin::allowed(&shared.config.server.http_allowed_origins)),
            require_origin,
        ))
}

/// 403 for a foreign `Origin`, before any other check.
async fn require_origin(
    State(allowed): State<Arc<Vec<Origin>>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let header = request
        .headers()
        .get(header::ORIGIN)
        .map(|value| value.to_str().unwrap_or("(not text)"));
    match origin::check(header, &allowed) {
        OriginCheck::Allowed => next.run(request).await,
        OriginCheck::Forbidden(why) => (StatusCode::FORBIDDEN, format!("{why}\n")).into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(Operator { shared, .. }): State<Operator>) -> Response {
    if shared.lifecycle.is_ready() {
        // Degraded persistence still serves calls: ready, and saying what is not kept.
        let state = shared.durable.stats();
        let body = match state.degraded_because {
            Some(why) => {
                json!({"ready": true, "persistence": "degraded", "persistence_problem": why})
            }
            None => json!({"ready": true, "persistence": "ok"}),
        };
        (StatusCode::OK, Json(body)).into_response()
    } else {
        let reason = format!("shutting down ({:?})", shared.lifecycle.stage()).to_lowercase();
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reason": reason})),
        )
            .into_response()
    }
}

/// The `/status` document.
pub fn status_json(shared: &Shared) -> Value {
    let health = crate::health::snapshot(shared);
    let now = shared.rt.now();
    let cooldowns: Vec<Value> = shared
        .providers
        .entries()
        .iter()
        .map(|entry| {
            let left = entry
                .cooldown
                .active_until(now)
                .map(|until| until.saturating_since(now).as_secs_f64());
            json!({
                "provider": entry.provider.name(),
                "configured": entry.provider.is_configured(),
                "cooling_down": left.is_some(),
                "cooldown_remaining_secs": left.unwrap_or(0.0),
            })
        })
        .collect();
    // Today's tokens per provider (all its keys share one day's books).
    let unix_ms = shared.rt.unix_time_ms();
    let mut usage_today: Vec<Value> = Vec::new();
    for entry in shared.providers.entries() {
        let name = entry.provider.name();
        if usage_today.iter().any(|u| u["provider"] == name) {
            continue;
        }
        let mut today = serde_json::to_value(entry.daily.today(unix_ms)).expect("plain data");
        today["provider"] = json!(name);
        usage_today.push(today);
    }
    let limits: Vec<Value> = health
        .limits
        .iter()
        .map(|l| {
            json!({
                "name": l.name,
                "limit": l.permits_max,
                "in_use": l.permits_in_use,
                "holders": l.holders,
                "waiters": l.waiters,
                "mismatch": l.mismatch(),
                "refused_total": l.refused_total,
            })
        })
        .collect();
    json!({
        "version": health.version,
        "ready": shared.lifecycle.is_ready(),
        "stage": format!("{:?}", shared.lifecycle.stage()).to_lowercase(),
        "uptime_secs": health.uptime_secs,
        "ok": health.ok,
        "problems": health.problems,
        "limits": limits,
        "session_limits": health.session_limits,
        "sessions": health.sessions,
        "sessions_attached": health.sessions_attached,
        "connections": health.connections,
        "pending_hellos": health.pending_hellos,
        "pending_hellos_evicted": health.pending_hellos_evicted,
        "calls_running": health.calls_running,
        "provider_cooldowns": cooldowns,
        "usage_today": usage_today,
        "state": shared.durable.stats(),
        "memory": shared.memory.stats(),
    })
}

async fn status(State(Operator { shared, .. }): State<Operator>) -> Json<Value> {
    Json(status_json(&shared))
}

async fn metrics_text(State(Operator { shared, metrics }): State<Operator>) -> Response {
    match &metrics {
        Some(metrics) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            metrics.render(&shared),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "metrics are not kept by this daemon\n",
        )
            .into_response(),
    }
}
