//! Calls of `/mcp` that are not tied to the request that started them: stateless calls
//! (protocol 2026-07-28), joined again by request id, and tasks (the MCP tasks extension),
//! polled by task id. Both run on a core session of their own, owned by the call's task
//! rather than by a handler (which goes with the request's stream), and are kept in the
//! daemon-wide table of [`super::reissue`].
//!
//! Why here and not in rmcp: rmcp's own task manager keeps results with its own clock and
//! spawns, out of reach of the seam and of exaid's limits. These calls are ordinary core calls
//! (same admission, deadline and outbox as a WebSocket call), with their result kept by the
//! table under `EXAI_RESULT_CACHE_MAX` and `EXAI_RESULT_TTL_SECS`. The simulator drives this
//! type directly, so a dropped stream and a re-issue run the same code there as here.

use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

use super::local::LocalClient;
use super::reissue::{Cancel, Found, Peek, ReissueLimits, Reissued, When};
use super::stream::CallStream;
use crate::error::{CallError, ErrorCode};
use crate::protocol::ServerFrame;
use crate::state::Shared;

/// Bytes of randomness in a task id (128 bits: ids are the only thing that finds a task, so
/// they must not be guessable by another client of the daemon).
const TASK_ID_BYTES: usize = 16;

/// The calls that outlive their request, and how to start them.
pub struct Detached {
    /// The daemon.
    shared: Arc<Shared>,
    /// Where they are kept (shared with each call's owner task).
    table: Arc<Reissued>,
}

/// What sending a stateless request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached {
    /// The first of its id: the call started.
    Started,
    /// Sent again while the call runs: it joined.
    Joined,
    /// Sent again after the call ended: its kept result.
    Stored,
}

/// A task as its poller sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskView {
    /// Its id.
    pub task_id: String,
    /// Its times, progress message and (once ended) terminal frame.
    pub peek: Peek,
    /// How long its result is kept after it ends (`EXAI_RESULT_TTL_SECS`), in ms.
    pub ttl_ms: u64,
}

impl Detached {
    /// An empty table bound to the daemon, sized from its configuration.
    pub fn new(shared: Arc<Shared>) -> Detached {
        let sessions = &shared.config.sessions;
        let table = Reissued::new(ReissueLimits {
            running_max: sessions.sessions_max as usize,
            results_max: sessions.result_cache_max as usize,
            result_ttl: std::time::Duration::from_millis(sessions.result_ttl_ms),
        });
        Detached {
            shared,
            table: Arc::new(table),
        }
    }

    /// A stateless call known by its JSON-RPC request id: the same request sent again (same
    /// id, tool and arguments) joins the running call or gets its kept result. The stream
    /// may be dropped at any time without cancelling the call.
    pub fn start_stateless(
        &self,
        request_id: &str,
        name: &str,
        arguments: Map<String, Value>,
    ) -> Result<(CallStream, Reached), CallError> {
        let key = Reissued::key(request_id, name, &arguments);
        let mut progress = None;
        let found =
            self.table
                .join_or_start(key.clone(), Some(request_id), now(&self.shared), || {
                    let (cancel, started) = self.start(key, name, arguments, false)?;
                    progress = started;
                    Ok(cancel)
                })?;
        let (terminal, reached) = match found {
            Found::Started(terminal) => (terminal, Reached::Started),
            Found::Joined(terminal) => (terminal, Reached::Joined),
            Found::Stored(terminal) => (terminal, Reached::Stored),
        };
        // A request sent again gets no progress of its own, only the result.
        let progress = progress.unwrap_or_else(|| mpsc::channel(1).1);
        Ok((CallStream::kept(progress, terminal), reached))
    }

    /// `notifications/cancelled` for `request_id`: cancel the stateless calls it names.
    /// Returns how many.
    pub fn cancel_request(&self, request_id: &str) -> usize {
        self.table.cancel(request_id)
    }

    /// Start a call as a task: it runs until it ends or `tasks/cancel` names it, whoever
    /// polls it. Its progress messages become the task's status message.
    pub fn start_task(
        &self,
        name: &str,
        arguments: Map<String, Value>,
    ) -> Result<TaskView, CallError> {
        let task_id = self.shared.random_hex(TASK_ID_BYTES);
        let key = Reissued::task_key(&task_id);
        let found = self
            .table
            .join_or_start(key.clone(), None, now(&self.shared), || {
                let (cancel, _) = self.start(key, name, arguments, true)?;
                Ok(cancel)
            })?;
        assert!(matches!(found, Found::Started(_)), "task ids are fresh");
        let task = self.task(&task_id);
        Ok(task.expect("a task just started is kept"))
    }

    /// The task `task_id`, or `None` when there is none (never started, or its result was
    /// forgotten after `EXAI_RESULT_TTL_SECS`).
    pub fn task(&self, task_id: &str) -> Option<TaskView> {
        let key = Reissued::task_key(task_id);
        let peek = self.table.peek(&key, self.shared.rt.now())?;
        Some(TaskView {
            task_id: task_id.to_string(),
            peek,
            ttl_ms: self.shared.config.sessions.result_ttl_ms,
        })
    }

    /// `tasks/cancel`: cancel the task if it still runs. `false` when there is no such task.
    pub fn cancel_task(&self, task_id: &str) -> bool {
        self.table.cancel_key(&Reissued::task_key(task_id))
    }

    /// Start the call under `key` on a session of its own, and a task that waits for its
    /// terminal frame, records it in the table and then closes the session. With
    /// `noting_progress` that task also records each progress message (a task has nobody
    /// else reading them); otherwise the progress receiver is handed back to the caller.
    fn start(
        &self,
        key: String,
        name: &str,
        arguments: Map<String, Value>,
        noting_progress: bool,
    ) -> Result<(Cancel, Option<mpsc::Receiver<ServerFrame>>), CallError> {
        let shared = &self.shared;
        let client = LocalClient::open(shared)?;
        let call = client.start_call(name, arguments)?;
        let cancel = client.canceller(call.request_id.clone());
        let (handed, noted) = if noting_progress {
            (None, Some(call.waiting.progress))
        } else {
            (Some(call.waiting.progress), None)
        };
        let owner = Owner {
            shared: shared.clone(),
            table: self.table.clone(),
            key,
            request_id: call.request_id,
            client,
        };
        shared.rt.spawn(
            "mcp-detached-call",
            owner.wait(call.waiting.terminal, noted),
        );
        Ok((Box::new(cancel), handed))
    }
}

/// The task that owns one detached call's session until the call ends.
struct Owner {
    /// The daemon (its clock).
    shared: Arc<Shared>,
    /// Where the result goes.
    table: Arc<Reissued>,
    /// The call's key in the table.
    key: String,
    /// The call's request id in its core session.
    request_id: String,
    /// The session; closed when this ends, after the result is kept.
    client: LocalClient,
}

impl Owner {
    /// Wait for the terminal frame (recording progress messages, if given them), keep it.
    async fn wait(
        self,
        mut terminal: oneshot::Receiver<ServerFrame>,
        mut progress: Option<mpsc::Receiver<ServerFrame>>,
    ) {
        let ended = loop {
            let Some(frames) = progress.as_mut() else {
                break (&mut terminal).await;
            };
            tokio::select! {
                biased;
                ended = &mut terminal => break ended,
                frame = frames.recv() => match frame {
                    Some(ServerFrame::Progress { message, .. }) => {
                        self.table.note(&self.key, &message, now(&self.shared));
                    }
                    Some(_) => {}
                    None => progress = None,
                },
            }
        };
        let frame = ended.unwrap_or_else(|_| {
            let why = "the call's session closed before it ended";
            let error = CallError::new(ErrorCode::ServiceUnavailable, why);
            ServerFrame::call_failed(self.request_id.clone(), error)
        });
        self.table.finish(&self.key, frame, now(&self.shared));
        // The session closes with the client, now that the result is kept.
        drop(self.client);
    }
}

/// Now, as the table records it (both of the seam's clocks).
fn now(shared: &Shared) -> When {
    When {
        at: shared.rt.now(),
        unix_ms: shared.rt.unix_time_ms(),
    }
}
