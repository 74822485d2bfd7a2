//! One call as an MCP front door sees it: its progress, its one terminal frame, and how to
//! cancel it. Apart from `backend` so that the calls kept past their request
//! (`mcp::detached`) can hand one out without importing the backend that serves them.

use tokio::sync::{mpsc, oneshot};

use super::pending::Waiting;
use crate::protocol::ServerFrame;

/// One call as a front door sees it: progress frames, then one terminal frame.
///
/// Dropping it before the terminal frame arrived cancels the call: a front door that stops
/// waiting (its client cancelled, or went away) must not leave the work running.
pub struct CallStream {
    /// `progress` frames, in order; lossy when the reader falls behind.
    pub progress: mpsc::Receiver<ServerFrame>,
    /// The `call_tool_res` frame. Closed without a value when the backend gave up on the
    /// call (it cannot reach the daemon any more).
    pub terminal: oneshot::Receiver<ServerFrame>,
    /// Cancels the call; taken once the call has ended.
    cancel: Option<Box<dyn FnOnce() + Send>>,
}

impl CallStream {
    /// A call's frames, and how to cancel it.
    pub fn new(waiting: Waiting, cancel: impl FnOnce() + Send + 'static) -> CallStream {
        CallStream {
            progress: waiting.progress,
            terminal: waiting.terminal,
            cancel: Some(Box::new(cancel)),
        }
    }

    /// A call whose stream may go without cancelling it (a stateless `/mcp` call: only
    /// `notifications/cancelled` cancels it).
    pub fn kept(
        progress: mpsc::Receiver<ServerFrame>,
        terminal: oneshot::Receiver<ServerFrame>,
    ) -> CallStream {
        CallStream {
            progress,
            terminal,
            cancel: None,
        }
    }

    /// The call ended: dropping the stream no longer cancels anything.
    pub fn ended(&mut self) {
        self.cancel = None;
    }

    /// Cancel the call now (at most once).
    pub fn cancel(&mut self) {
        if let Some(cancel) = self.cancel.take() {
            cancel();
        }
    }
}

impl Drop for CallStream {
    fn drop(&mut self) {
        self.cancel();
    }
}
