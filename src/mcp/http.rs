//! `/mcp` on the daemon's HTTP port: MCP over Streamable HTTP, for editors that would rather
//! not start a process.
//!
//! The endpoint is rmcp's streamable HTTP service mounted in the axum router (`operator::http::router`),
//! behind a bearer-token check: the daemon token, compared in constant time. Each MCP session
//! gets its own handler, whose calls go through an in-process client of the core
//! ([`super::local`]): a session of the daemon's own, the same admission, deadline and outbox
//! as a WebSocket call, not a way around them.

use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Map, Value};

use super::backend::{Backend, CallStream};
use super::detached::Detached;
use super::events::{EventLimits, EventLog, Store};
use super::handler::ExaidMcp;
use super::local::LocalClient;
use crate::error::CallError;
use crate::lifecycle::Stage;
use crate::protocol::reply::ToolInfo;
use crate::rt::BoxFuture;
use crate::state::Shared;

/// The path the endpoint is served on.
pub const PATH: &str = "/mcp";

/// The `/mcp` route, with its bearer-token check, bound to the daemon.
pub fn routes(shared: Arc<Shared>) -> Router {
    let handlers = Arc::new(AtomicUsize::new(0));
    let handlers_max = shared.config.sessions.sessions_max as usize;
    let detached = Arc::new(Detached::new(shared.clone()));
    let cancels = StatelessCancels {
        detached: detached.clone(),
        body_bytes_max: shared.config.limits.frame_bytes_max,
    };
    let factory = {
        let shared = shared.clone();
        move || {
            let slot = HandlerSlot::take(&handlers, handlers_max)?;
            let backend = LocalBackend {
                shared: shared.clone(),
                client: Mutex::new(None),
                detached: detached.clone(),
                _slot: slot,
            };
            let handler = ExaidMcp::new(Arc::new(backend));
            Ok(match shared.config.tools.mcp_conformance_fixtures {
                true => handler.with_fixtures(shared.rt.clone()),
                false => handler,
            })
        }
    };
    let config = StreamableHttpServerConfig::default()
        .with_max_request_body_bytes(shared.config.limits.frame_bytes_max);
    let config = allow_configured_host(config, &shared.config.server.host);
    // When the daemon closes, so do the MCP sessions and their event streams: otherwise an
    // open stream would hold the HTTP server's graceful shutdown.
    let closing = config.cancellation_token.clone();
    let watched = shared.clone();
    shared.rt.spawn("mcp-http-shutdown", async move {
        watched.lifecycle.reached(Stage::Closing).await;
        closing.cancel();
    });
    // Every SSE event is kept in exaid's own bounded store, so a dropped stream never loses a
    // result: stateless streams are then not tied to the client's connection, and a client
    // that comes back with Last-Event-ID gets what followed (`mcp::events`).
    let events = EventLog::new(shared.rt.clone(), event_limits(&shared));
    let sessions = LocalSessionManager::default().with_event_store(Arc::new(Store(events)));
    let service = StreamableHttpService::new(factory, Arc::new(sessions), config);
    Router::new()
        .route_service(PATH, service)
        .layer(middleware::from_fn_with_state(cancels, stateless_cancel))
        .layer(middleware::from_fn_with_state(shared, require_bearer))
}

/// The event store's caps, from the session settings.
pub fn event_limits(shared: &Shared) -> EventLimits {
    let sessions = &shared.config.sessions;
    EventLimits {
        streams_max: sessions.sessions_max as usize,
        events_max: sessions.outbox_frames_max as usize,
        stream_bytes_max: sessions.outbox_bytes_max,
        bytes_max: sessions.mcp_events_bytes_max,
        ttl: std::time::Duration::from_millis(sessions.ttl_ms),
    }
}

/// rmcp accepts only loopback `Host` headers by default (against DNS rebinding). A daemon
/// configured on another address must accept its own name too; one bound to every address
/// cannot know its names, and relies on the bearer token alone (which a rebinding page does
/// not have).
fn allow_configured_host(
    config: StreamableHttpServerConfig,
    host: &str,
) -> StreamableHttpServerConfig {
    match host.parse::<IpAddr>() {
        Ok(ip) if ip.is_loopback() => config,
        Ok(ip) if ip.is_unspecified() => config.disable_allowed_hosts(),
        _ if host == "localhost" => config,
        _ => {
            let mut hosts = config.allowed_hosts.clone();
            hosts.push(host.to_string());
            config.with_allowed_hosts(hosts)
        }
    }
}

/// 401 unless the request carries `Authorization: Bearer <daemon token>`.
async fn require_bearer(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer);
    if presented.is_some_and(|token| shared.token_matches(token)) {
        return next.run(request).await;
    }
    let reason = if presented.is_some() {
        "wrong bearer token"
    } else {
        "missing bearer token"
    };
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer realm=\"exaid\"")],
        format!(
            "{reason}: send `Authorization: Bearer <token>` with the daemon's token (EXAI_WS_TOKEN, or the token file)\n"
        ),
    )
        .into_response()
}

/// What the stateless cancel check needs.
#[derive(Clone)]
struct StatelessCancels {
    /// The stateless calls.
    detached: Arc<Detached>,
    /// The largest body read (`EXAI_WS_MAX_BYTES`).
    body_bytes_max: usize,
}

/// rmcp ignores every notification of a stateless client (2026-07-28), so a stateless
/// `notifications/cancelled` (its `Mcp-Method` header says so) is taken here: the call it
/// names is cancelled, and the client gets 202 as for any notification.
async fn stateless_cancel(
    State(cancels): State<StatelessCancels>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let is_cancel = request.method() == axum::http::Method::POST
        && !headers.contains_key("mcp-session-id")
        && headers
            .get("mcp-method")
            .is_some_and(|m| m.as_bytes() == b"notifications/cancelled");
    if !is_cancel {
        return next.run(request).await;
    }
    let body = match axum::body::to_bytes(request.into_body(), cancels.body_bytes_max).await {
        Ok(body) => body,
        Err(error) => {
            let why = format!("cannot read the notification (EXAI_WS_MAX_BYTES): {error}\n");
            return (StatusCode::BAD_REQUEST, why).into_response();
        }
    };
    let notification: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match &notification["params"]["requestId"] {
        Value::Number(n) => cancels.detached.cancel_request(&n.to_string()),
        Value::String(s) => cancels.detached.cancel_request(s),
        _ => {
            let why = "notifications/cancelled needs params.requestId (a number or a string)\n";
            return (StatusCode::BAD_REQUEST, why).into_response();
        }
    };
    StatusCode::ACCEPTED.into_response()
}

/// The token of a `Bearer` authorization value (the scheme is case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// Counts live MCP handlers (one per MCP session) so that their number is bounded like the
/// daemon's sessions (`EXAI_WS_MAX_SESSIONS`); uncounted on drop.
struct HandlerSlot {
    /// The counter.
    live: Arc<AtomicUsize>,
}

impl HandlerSlot {
    fn take(live: &Arc<AtomicUsize>, max: usize) -> io::Result<HandlerSlot> {
        let before = live.fetch_add(1, Ordering::SeqCst);
        let slot = HandlerSlot { live: live.clone() };
        if before >= max {
            return Err(io::Error::other(format!(
                "too many MCP sessions (EXAI_WS_MAX_SESSIONS={max})"
            )));
        }
        Ok(slot)
    }
}

impl Drop for HandlerSlot {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One MCP session's way into the core: a [`LocalClient`], opened on its first call (a
/// session that only lists tools costs the daemon nothing) and closed with the MCP session.
struct LocalBackend {
    /// The daemon.
    shared: Arc<Shared>,
    /// The core session, once a call needed it.
    client: Mutex<Option<LocalClient>>,
    /// Stateless calls and tasks of every handler (`mcp::detached`).
    detached: Arc<Detached>,
    /// This handler's place under the cap.
    _slot: HandlerSlot,
}

impl Backend for LocalBackend {
    fn list_tools(&self) -> BoxFuture<'_, Result<Vec<ToolInfo>, String>> {
        Box::pin(std::future::ready(Ok(self.shared.tools.infos())))
    }

    fn start_call(
        &self,
        name: &str,
        arguments: Map<String, Value>,
    ) -> Result<CallStream, CallError> {
        let mut opened = self.client.lock().expect("client lock");
        let client = match &mut *opened {
            Some(client) => client,
            empty => empty.insert(LocalClient::open(&self.shared)?),
        };
        let call = client.start_call(name, arguments)?;
        let cancel = client.canceller(call.request_id.clone());
        Ok(CallStream::new(call.waiting, cancel))
    }

    /// A stateless call runs on a core session of its own, owned by the call's task (not by
    /// this handler, which goes with the request's stream), and is found again by its
    /// request id.
    fn start_stateless_call(
        &self,
        request_id: &str,
        name: &str,
        arguments: Map<String, Value>,
    ) -> Result<CallStream, CallError> {
        let (stream, _) = self.detached.start_stateless(request_id, name, arguments)?;
        Ok(stream)
    }

    fn cancel_request(&self, request_id: &str) {
        self.detached.cancel_request(request_id);
    }

    fn tasks(&self) -> Option<&Detached> {
        Some(&self.detached)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("abc"), None);
    }
}
