//! An in-process client of the daemon's core: how the MCP endpoint (`/mcp`) makes calls
//! without a socket.
//!
//! Why not run tools directly: a call made from inside the process must still be a call of a
//! session, admitted under the same limits, bounded by the same deadline and delivered through
//! the same outbox as one that came over a WebSocket, or the HTTP door would be a way around
//! every limit. So this client does what a connection does, with the same code: it owns a
//! session, starts and cancels calls through the `router`, and drains the session outbox as a
//! connection writer does, routing each typed frame to the call it names (nothing is rendered
//! and parsed back on this path).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};
use tokio::sync::Notify;

use super::pending::{PendingCalls, Waiting};
use crate::config::key;
use crate::error::{CallError, ErrorCode};
use crate::router;
use crate::session::{Session, StopReason};
use crate::state::Shared;

/// Calls one local client may have waiting for their terminal frame at once. The session's
/// own limit (`EXAI_WS_SESSION_MAX_INFLIGHT`) and queue still apply; this only bounds the
/// routing table, so a client that never reads cannot grow it without end.
pub const CALLS_PENDING_MAX: usize = 256;

/// A session of the core, used from inside the process. Dropping it closes the session: its
/// running calls stop (`CANCELLED`) and it is removed at once, since nobody else holds its
/// resume token.
pub struct LocalClient {
    /// State shared with the outbox pump and with cancel handles.
    inner: Arc<Inner>,
}

/// What the client, its pump and its cancel handles share.
struct Inner {
    /// The daemon.
    shared: Arc<Shared>,
    /// The session every call of this client belongs to.
    session: Arc<Session>,
    /// Our attachment to the session (it stays attached, so it never expires under us).
    generation: u64,
    /// Where each call's frames go, by request id.
    pending: Mutex<PendingCalls<()>>,
    /// Request ids handed out so far (ids are `local-N`).
    calls_started: AtomicU64,
    /// Set once the client is closed: no new calls, the pump stops.
    closed: AtomicBool,
    /// Wakes the pump so it sees `closed`.
    close: Notify,
}

/// One call started through a [`LocalClient`]: its frames, as the protocol would send them.
pub struct LocalCall {
    /// The request id the core knows the call by.
    pub request_id: String,
    /// Its progress frames and its one terminal frame.
    pub waiting: Waiting,
}

impl LocalClient {
    /// Open a fresh session. Fails with `OVER_CAPACITY` when the daemon already has
    /// `EXAI_WS_MAX_SESSIONS` sessions.
    pub fn open(shared: &Arc<Shared>) -> Result<LocalClient, CallError> {
        let id = shared.random_hex(16);
        let resume_token = shared.random_hex(32);
        let Some(session) = shared
            .sessions
            .create_in_process(id, resume_token, shared.rt.now())
        else {
            return Err(CallError::new(
                ErrorCode::OverCapacity,
                format!(
                    "too many sessions ({}={}); retry when some have closed",
                    key::EXAI_WS_MAX_SESSIONS,
                    shared.config.sessions.sessions_max
                ),
            ));
        };
        let (generation, _kick) = session.attach();
        let inner = Arc::new(Inner {
            shared: shared.clone(),
            session,
            generation,
            pending: Mutex::new(PendingCalls::new(CALLS_PENDING_MAX)),
            calls_started: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            close: Notify::new(),
        });
        tracing::debug!(session = %inner.session.id, "local session opened");
        shared.rt.spawn("local-outbox", pump(inner.clone()));
        Ok(LocalClient { inner })
    }

    /// The session's id (for logs and tests).
    pub fn session_id(&self) -> &str {
        &self.inner.session.id
    }

    /// Start a call, exactly as a `call_tool` frame on a connection would.
    pub fn start_call(
        &self,
        name: &str,
        arguments: Map<String, Value>,
    ) -> Result<LocalCall, CallError> {
        let inner = &self.inner;
        if inner.closed.load(Ordering::SeqCst) {
            return Err(CallError::new(
                ErrorCode::ServiceUnavailable,
                "this session is closed",
            ));
        }
        let n = inner.calls_started.fetch_add(1, Ordering::SeqCst) + 1;
        let request_id = format!("local-{n}");
        // Registered before the call starts: its first frame may be drained at once.
        let waiting = inner
            .pending
            .lock()
            .expect("pending lock")
            .register(request_id.clone(), name, arguments.clone(), ())
            .ok_or_else(|| {
                CallError::new(
                    ErrorCode::OverCapacity,
                    format!(
                        "this session already has {CALLS_PENDING_MAX} calls waiting for their result"
                    ),
                )
            })?;
        router::start_call(
            &inner.shared,
            &inner.session,
            request_id.clone(),
            name,
            arguments,
        );
        Ok(LocalCall {
            request_id,
            waiting,
        })
    }

    /// A handle that cancels `request_id` when called, usable after this borrow ends (the MCP
    /// layer cancels when its caller goes away). Cancelling a finished call does nothing.
    pub fn canceller(&self, request_id: String) -> impl FnOnce() + Send + 'static {
        let inner = self.inner.clone();
        move || inner.cancel(request_id)
    }
}

impl Drop for LocalClient {
    fn drop(&mut self) {
        let inner = &self.inner;
        inner.closed.store(true, Ordering::SeqCst);
        inner.close.notify_one();
        let stopped = inner
            .shared
            .sessions
            .close(&inner.session.id, StopReason::ClientGone)
            .unwrap_or(0);
        inner
            .session
            .detach(inner.generation, inner.shared.rt.now());
        // Anyone still waiting sees its terminal channel close.
        inner.pending.lock().expect("pending lock").clear();
        tracing::debug!(session = %inner.session.id, calls_stopped = stopped, "local session closed");
    }
}

impl Inner {
    /// Cancel one call, through the same code as a `cancel` frame.
    fn cancel(&self, request_id: String) {
        if self.closed.load(Ordering::SeqCst) || !self.session.is_running(&request_id) {
            return;
        }
        router::cancel_call(&self.shared, &self.session, request_id);
    }

    /// Deliver every frame after `cursor`, then ack them: the outbox keeps nothing a local
    /// caller already has.
    fn drain(&self, cursor: &mut u64) {
        let batch = self
            .session
            .outbox
            .frames_after(*cursor, self.shared.rt.now());
        if batch.evicted > 0 {
            self.shared
                .observer
                .frames_evicted(&self.session.id, batch.evicted);
        }
        if let Some(gap) = batch.gap {
            // Frames fell out before we read them (a result bigger than the outbox's byte cap
            // pushed older ones out). A lost terminal frame would leave its caller waiting
            // forever, so every call still waiting is started again under its request id:
            // the core joins the running call or answers from its result cache.
            tracing::warn!(session = %self.session.id, from_seq = gap.from_seq, to_seq = gap.to_seq, "local outbox gap; asking again for the calls still waiting");
            self.shared
                .observer
                .gap_announced(&self.session.id, gap.to_seq - gap.from_seq + 1);
            *cursor = gap.to_seq;
            self.restart_waiting();
        }
        {
            let mut pending = self.pending.lock().expect("pending lock");
            for stamped in &batch.frames {
                assert_eq!(stamped.seq, *cursor + 1, "frames arrive in seq order");
                *cursor = stamped.seq;
                pending.route(&stamped.frame);
            }
        }
        self.session.ack(*cursor);
    }

    /// Start every waiting call again under its own request id (after a gap).
    fn restart_waiting(&self) {
        let waiting = self.pending.lock().expect("pending lock").waiting();
        for (request_id, name, arguments) in waiting {
            router::start_call(&self.shared, &self.session, request_id, &name, arguments);
        }
    }
}

/// The session's writer: drains the outbox until the client closes.
async fn pump(inner: Arc<Inner>) {
    let mut cursor = 0u64;
    loop {
        tokio::select! {
            biased;
            () = inner.close.notified() => return,
            () = inner.session.outbox.notified() => {}
        }
        if inner.closed.load(Ordering::SeqCst) {
            return;
        }
        inner.drain(&mut cursor);
    }
}
