//! The calls an MCP front door is waiting on, by request id: where each call's progress and
//! its one terminal frame go.
//!
//! Why shared: the in-process client (`local`, behind `/mcp`) and the stdio bridge (`bridge`,
//! over a WebSocket) both start calls, remember them until their `call_tool_res`, route the
//! frames the daemon sends to the caller waiting on each, and send calls again under the same
//! request id after a gap. The table is the same; only what each door remembers besides (the
//! bridge's delivery state) differs, and rides along as `S`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

use crate::protocol::ServerFrame;

/// Progress frames buffered per call. Progress is advisory: when a caller does not keep up,
/// newer progress frames are dropped rather than buffered without bound (terminal frames have
/// their own channel and are never dropped).
pub const PROGRESS_FRAMES_MAX: usize = 32;

/// One call, until its terminal frame.
pub struct PendingCall<S> {
    /// The tool, to send the call again under its request id.
    pub name: String,
    /// Its arguments, for the same reason.
    pub arguments: Map<String, Value>,
    /// Progress frames for the caller (lossy).
    progress: mpsc::Sender<ServerFrame>,
    /// The terminal frame for the caller; `None` once the caller stopped waiting.
    terminal: Option<oneshot::Sender<ServerFrame>>,
    /// What the door remembers besides.
    pub state: S,
}

impl<S> PendingCall<S> {
    /// The caller stopped waiting (it cancelled): its terminal frame goes nowhere.
    pub fn forget_caller(&mut self) {
        self.terminal = None;
    }
}

/// A caller's end of one call: its progress frames and its terminal frame.
pub struct Waiting {
    /// `progress` frames, in order, lossy.
    pub progress: mpsc::Receiver<ServerFrame>,
    /// The `call_tool_res`; closed without a value when the door gave up on the call.
    pub terminal: oneshot::Receiver<ServerFrame>,
}

/// What routing one frame did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routed {
    /// A call's terminal frame: the call is off the table (or was already).
    Terminal,
    /// Anything else.
    Other,
}

/// The table.
pub struct PendingCalls<S> {
    /// Calls by request id; ordered, so sending them again has a stable order.
    calls: BTreeMap<String, PendingCall<S>>,
    /// Calls waiting at once, at most: a caller that never reads cannot grow the table.
    calls_max: usize,
}

impl<S> PendingCalls<S> {
    /// An empty table of at most `calls_max` calls.
    pub fn new(calls_max: usize) -> PendingCalls<S> {
        assert!(calls_max > 0, "a door must be able to wait on one call");
        PendingCalls {
            calls: BTreeMap::new(),
            calls_max,
        }
    }

    /// Register a call before it is started (its first frame may arrive at once). `None` when
    /// the table is full.
    pub fn register(
        &mut self,
        request_id: String,
        name: &str,
        arguments: Map<String, Value>,
        state: S,
    ) -> Option<Waiting> {
        if self.calls.len() >= self.calls_max {
            return None;
        }
        let (progress_tx, progress) = mpsc::channel(PROGRESS_FRAMES_MAX);
        let (terminal_tx, terminal) = oneshot::channel();
        let call = PendingCall {
            name: name.to_string(),
            arguments,
            progress: progress_tx,
            terminal: Some(terminal_tx),
            state,
        };
        let previous = self.calls.insert(request_id, call);
        assert!(previous.is_none(), "request ids are issued once");
        assert!(self.calls.len() <= self.calls_max);
        Some(Waiting { progress, terminal })
    }

    /// Send `frame` to the call it names. The first terminal frame ends the call; a repeated
    /// one finds nothing here.
    pub fn route(&mut self, frame: &ServerFrame) -> Routed {
        match frame {
            ServerFrame::CallToolRes { request_id, .. } => {
                if let Some(mut call) = self.calls.remove(request_id)
                    && let Some(terminal) = call.terminal.take()
                {
                    let _ = terminal.send(frame.clone());
                }
                Routed::Terminal
            }
            ServerFrame::Progress { request_id, .. } => {
                if let Some(call) = self.calls.get(request_id) {
                    // Full or gone: progress is advisory, the terminal frame is what counts.
                    let _ = call.progress.try_send(frame.clone());
                }
                Routed::Other
            }
            _ => Routed::Other,
        }
    }

    /// The call of `request_id`, if it is still waited on.
    pub fn get_mut(&mut self, request_id: &str) -> Option<&mut PendingCall<S>> {
        self.calls.get_mut(request_id)
    }

    /// Take a call off the table.
    pub fn remove(&mut self, request_id: &str) -> Option<PendingCall<S>> {
        self.calls.remove(request_id)
    }

    /// Every call, in request-id order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&String, &mut PendingCall<S>)> {
        self.calls.iter_mut()
    }

    /// The calls to send again after a gap: request id, tool, arguments.
    pub fn waiting(&self) -> Vec<(String, String, Map<String, Value>)> {
        self.calls
            .iter()
            .map(|(id, call)| (id.clone(), call.name.clone(), call.arguments.clone()))
            .collect()
    }

    /// End every call with the terminal frame `fail` makes for its request id (the door gave
    /// up: the daemon cannot be reached). Callers that stopped waiting get nothing.
    pub fn fail_all(&mut self, fail: impl Fn(String) -> ServerFrame) {
        for (request_id, mut call) in std::mem::take(&mut self.calls) {
            if let Some(terminal) = call.terminal.take() {
                let _ = terminal.send(fail(request_id));
            }
        }
    }

    /// Forget every call; their callers see their terminal channel close.
    pub fn clear(&mut self) {
        self.calls.clear();
    }

    /// Calls waited on now.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// True when no call is waited on.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{CallError, ErrorCode};

    #[test]
    fn frames_reach_their_call_once_and_the_table_is_bounded() {
        let mut table = PendingCalls::<()>::new(1);
        let mut waiting = table.register("a".into(), "chat", Map::new(), ()).unwrap();
        assert!(table.register("b".into(), "chat", Map::new(), ()).is_none());
        let done = ServerFrame::call_succeeded("a".into(), "hi".into());
        assert_eq!(table.route(&done), Routed::Terminal);
        assert!(table.is_empty());
        assert_eq!(waiting.terminal.try_recv().unwrap(), done);
        // A repeated terminal frame finds nothing.
        assert_eq!(table.route(&done), Routed::Terminal);
    }

    #[test]
    fn fail_all_answers_everyone_still_waiting() {
        let mut table = PendingCalls::<()>::new(4);
        let mut a = table.register("a".into(), "chat", Map::new(), ()).unwrap();
        let mut b = table.register("b".into(), "chat", Map::new(), ()).unwrap();
        table.get_mut("b").unwrap().forget_caller();
        let error = CallError::new(ErrorCode::ServiceUnavailable, "down");
        table.fail_all(|id| ServerFrame::call_failed(id, error.clone()));
        assert!(matches!(
            a.terminal.try_recv().unwrap(),
            ServerFrame::CallToolRes { ok: false, .. }
        ));
        assert!(b.terminal.try_recv().is_err());
    }
}
