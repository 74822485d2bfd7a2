//! The one typed decoder of server frames, for clients of the daemon: the MCP stdio bridge,
//! the benchmark's load generator and the simulated clients read what the daemon sent through
//! here, so a frame's shape is defined once ([`ServerFrame`]) for both directions.
//!
//! Why a wrapper and not a `seq` field in every variant: the seq belongs to the session's
//! outbox, not to the frame (the daemon stamps it on delivery, see `outbox::Stamped`); a
//! client gets it next to the frame. Unknown fields are ignored, so a newer daemon that adds
//! fields still talks to an older client.

use serde::Deserialize;

use super::reply::ServerFrame;

/// One frame as a client received it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Received {
    /// The frame's seq in its session; `None` for frames outside the seq order (`gap`).
    #[serde(default)]
    pub seq: Option<u64>,
    /// The frame itself.
    #[serde(flatten)]
    pub frame: ServerFrame,
}

/// Decode one text frame from the daemon. The error says what did not fit, for the log.
pub fn decode_server(text: &str) -> Result<Received, String> {
    serde_json::from_str(text).map_err(|err| format!("not a frame of exaid's protocol: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{CallError, ErrorCode};
    use crate::protocol::reply::{ProgressPhase, ServerInfo};

    /// Every frame the daemon renders decodes back to itself: the two directions agree.
    #[test]
    fn rendered_frames_decode_to_themselves() {
        let frames = vec![
            ServerFrame::HelloAck {
                ok: true,
                session_id: "s".into(),
                resume_token: "t".into(),
                resumed: false,
                last_seq: 0,
                server: ServerInfo::current(),
                resume_refused: None,
            },
            ServerFrame::CallToolAck {
                request_id: "r".into(),
                accepted: true,
                timeout: 60.0,
                name: "chat".into(),
                joined: false,
            },
            ServerFrame::Progress {
                request_id: "r".into(),
                message: "waiting".into(),
                phase: ProgressPhase::Streaming,
                elapsed_secs: 0.5,
                remaining_secs: 59.5,
                waiting_for: None,
                chunk: Some("a".into()),
                attempt: Some(1),
            },
            ServerFrame::call_succeeded("r".into(), "answer".into()),
            ServerFrame::call_failed(
                "r".into(),
                CallError::new(ErrorCode::RateLimited, "busy").with_retry_after_secs(3),
            )
            .as_repeat(),
            ServerFrame::Gap {
                from_seq: 2,
                to_seq: 4,
                reason: "caps".into(),
            },
            ServerFrame::Pong { request_id: None },
        ];
        for (seq, frame) in frames.into_iter().enumerate() {
            let body = frame.to_json();
            let text = format!("{{\"seq\":{seq},{}", &body[1..]);
            let received = decode_server(&text).expect("decodes");
            assert_eq!(received.seq, Some(seq as u64));
            assert_eq!(received.frame, frame);
        }
    }

    #[test]
    fn garbage_is_an_error_that_says_so() {
        let err = decode_server("{\"op\":\"warp\"}").unwrap_err();
        assert!(err.contains("not a frame"), "{err}");
    }
}
