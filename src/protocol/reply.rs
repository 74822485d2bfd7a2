//! Every frame the daemon sends, as one typed enum that serializes for the wire and
//! deserializes for clients of the daemon (see `received`).
//!
//! A frame is rendered once, without its `seq`, outside the outbox lock; the session outbox
//! stamps `"seq":N` in front of the rendered body (see `outbox::Stamped`), so the seq costs no
//! second serialization.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::CallError;

/// What kind of output piece: the original had only text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// Plain text (the tool's JSON output is text too).
    Text,
}

/// One piece of a tool's output, as in the original: today always text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Output {
    /// Always `"text"`.
    #[serde(rename = "type")]
    pub kind: OutputKind,
    /// The text.
    pub text: String,
}

/// A tool as `list_tools` describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolInfo {
    /// The tool's name.
    pub name: String,
    /// What it does, for the model choosing tools.
    pub description: String,
    /// JSON Schema of its arguments.
    #[serde(rename = "inputSchema")]
    pub input_schema: Value,
    /// A name for people (an editor's tool list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What a client may assume about the tool (MCP's tool annotations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<ToolHints>,
    /// JSON Schema of the JSON object every result's text holds.
    #[serde(
        rename = "outputSchema",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub output_schema: Option<Value>,
}

/// MCP's tool annotations, as exaid sets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolHints {
    /// Always true: exaid never changes the user's files or anything outside itself, so
    /// editors may run its tools in parallel and in plan mode.
    pub read_only_hint: bool,
    /// True for tools that ask a model (a provider outside exaid, and its web search).
    pub open_world_hint: bool,
}

/// Where a running call is, as progress frames name it: machine-readable, so a client can
/// tell a queue from a rate-limit pause without parsing the sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgressPhase {
    /// Accepted, not yet asking for permits.
    Accepted,
    /// Waiting for a permit (`waiting_for` names the limit).
    Queued,
    /// Running: in the tool or in a provider attempt.
    Running,
    /// Pausing because a provider rate-limited the call or is cooling down.
    RateLimited,
    /// Backing off after a provider failure that named no time.
    Backoff,
    /// Streaming answer text (`chunk`).
    Streaming,
    /// Streaming the model's reasoning (`chunk`), which is not part of the answer.
    Reasoning,
}

impl ProgressPhase {
    /// The wire name, e.g. `rate_limited`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProgressPhase::Accepted => "accepted",
            ProgressPhase::Queued => "queued",
            ProgressPhase::Running => "running",
            ProgressPhase::RateLimited => "rate_limited",
            ProgressPhase::Backoff => "backoff",
            ProgressPhase::Streaming => "streaming",
            ProgressPhase::Reasoning => "reasoning",
        }
    }
}

impl std::fmt::Display for ProgressPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Frames from the daemon to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ServerFrame {
    /// Reply to `hello`.
    HelloAck {
        /// Always true (a refused hello is a close frame, not an ack).
        ok: bool,
        /// The session this connection belongs to.
        session_id: String,
        /// Secret needed to resume the session from another connection.
        resume_token: String,
        /// True when an existing session was resumed.
        resumed: bool,
        /// The session's highest seq so far: on resume, the replay that follows ends here.
        last_seq: u64,
        /// The daemon's name and version.
        server: ServerInfo,
        /// Why a requested resume was refused (a fresh session was created instead).
        #[serde(skip_serializing_if = "Option::is_none")]
        resume_refused: Option<String>,
    },
    /// Reply to `list_tools`.
    ListToolsRes {
        /// Echo of the request's id.
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        /// The enabled tools.
        tools: Vec<ToolInfo>,
    },
    /// The call was accepted (or joined): its deadline is running.
    CallToolAck {
        /// The call.
        request_id: String,
        /// Always true: a refused call gets a `call_tool_res` with `ok: false` instead.
        accepted: bool,
        /// The call's deadline, in seconds from acceptance.
        timeout: f64,
        /// The tool's canonical name.
        name: String,
        /// True when this request id was already running and the client joined it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        joined: bool,
    },
    /// The call is still alive; says what it waits for.
    Progress {
        /// The call.
        request_id: String,
        /// Human sentence: what the call is waiting for right now.
        message: String,
        /// Machine-readable phase: `queued`, `running`, `rate_limited`, `streaming`...
        phase: ProgressPhase,
        /// Seconds since acceptance.
        elapsed_secs: f64,
        /// Seconds left before the deadline.
        remaining_secs: f64,
        /// The limit being waited on, when queued.
        #[serde(skip_serializing_if = "Option::is_none")]
        waiting_for: Option<String>,
        /// A piece of streamed answer text (the original's `stream_chunk`); in order within
        /// one attempt. The final `call_tool_res` holds the whole text.
        #[serde(skip_serializing_if = "Option::is_none")]
        chunk: Option<String>,
        /// Which provider attempt a chunk belongs to: a retry starts the text over.
        #[serde(skip_serializing_if = "Option::is_none")]
        attempt: Option<u32>,
    },
    /// The one terminal frame of a call.
    CallToolRes {
        /// The call.
        request_id: String,
        /// True on success.
        ok: bool,
        /// The tool's outputs (empty on failure).
        outputs: Vec<Output>,
        /// All output text joined, for clients that read only this.
        text: String,
        /// Why it failed, when `ok` is false.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<CallError>,
        /// True when this is the stored result sent again for a repeated request id (the call
        /// ran once; its provider was not called again).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        repeated: bool,
    },
    /// Reply to `cancel`: the call is being stopped (its `call_tool_res` follows).
    Cancelled {
        /// The cancelled call.
        request_id: String,
    },
    /// Reply to `ping`.
    Pong {
        /// Echo of the request's id.
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
    /// Reply to `health`.
    HealthRes {
        /// Echo of the request's id.
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        /// True when every invariant holds (no permit mismatch).
        ok: bool,
        /// The health snapshot.
        health: Value,
    },
    /// Frames that fell out of the outbox before the client saw them. Not itself a session
    /// frame: it carries no seq of its own, it describes a hole in the seqs.
    Gap {
        /// First lost seq.
        from_seq: u64,
        /// Last lost seq.
        to_seq: u64,
        /// Which cap or TTL dropped them.
        reason: String,
    },
    /// A frame-level error (a bad frame, an unknown call to cancel...).
    Error {
        /// The request the error belongs to, when the frame named one.
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        /// What went wrong.
        error: CallError,
    },
}

/// Identifies the daemon in `hello_ack`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// Always `"exaid"` (borrowed when sent, owned when a client decodes it).
    pub name: Cow<'static, str>,
    /// The crate version.
    pub version: Cow<'static, str>,
    /// Protocol version: 1.
    pub protocol: u32,
}

impl ServerInfo {
    /// This build's identity.
    pub fn current() -> ServerInfo {
        ServerInfo {
            name: Cow::Borrowed("exaid"),
            version: Cow::Borrowed(env!("CARGO_PKG_VERSION")),
            protocol: 1,
        }
    }
}

impl ServerFrame {
    /// A failed terminal frame.
    pub fn call_failed(request_id: String, error: CallError) -> ServerFrame {
        let text = format!("{}: {}", error.code, error.message);
        ServerFrame::CallToolRes {
            request_id,
            ok: false,
            outputs: Vec::new(),
            text,
            error: Some(error),
            repeated: false,
        }
    }

    /// A successful terminal frame with one text output.
    pub fn call_succeeded(request_id: String, text: String) -> ServerFrame {
        ServerFrame::CallToolRes {
            request_id,
            ok: true,
            outputs: vec![Output {
                kind: OutputKind::Text,
                text: text.clone(),
            }],
            text,
            error: None,
            repeated: false,
        }
    }

    /// The request this frame belongs to, if it names one.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            ServerFrame::ListToolsRes { request_id, .. }
            | ServerFrame::Pong { request_id }
            | ServerFrame::HealthRes { request_id, .. }
            | ServerFrame::Error { request_id, .. } => request_id.as_deref(),
            ServerFrame::CallToolAck { request_id, .. }
            | ServerFrame::Progress { request_id, .. }
            | ServerFrame::CallToolRes { request_id, .. }
            | ServerFrame::Cancelled { request_id } => Some(request_id),
            ServerFrame::HelloAck { .. } | ServerFrame::Gap { .. } => None,
        }
    }

    /// True for the frame that ends a call.
    pub fn is_terminal(&self) -> bool {
        matches!(self, ServerFrame::CallToolRes { .. })
    }

    /// The same terminal frame, marked as sent again for a repeated request id.
    pub fn as_repeat(&self) -> ServerFrame {
        let mut frame = self.clone();
        if let ServerFrame::CallToolRes { repeated, .. } = &mut frame {
            *repeated = true;
        }
        frame
    }

    /// About how many bytes this frame holds in memory: its strings and a fixed share of
    /// bookkeeping. What the result cache counts a kept terminal frame as against the memory
    /// budget, without serializing it again (other frames are not kept there, and count as
    /// their JSON).
    pub fn held_bytes(&self) -> usize {
        const OVERHEAD_BYTES: usize = 256;
        match self {
            ServerFrame::CallToolRes {
                request_id,
                outputs,
                text,
                error,
                ..
            } => {
                let outputs: usize = outputs.iter().map(|o| o.text.len() + 32).sum();
                let error = error.as_ref().map_or(0, |e| {
                    e.message.len() + e.details.as_ref().map_or(0, |d| d.to_string().len())
                });
                OVERHEAD_BYTES + request_id.len() + text.len() + outputs + error
            }
            other => OVERHEAD_BYTES + other.to_json().len(),
        }
    }

    /// Serialize without `seq`. Serializing these types cannot fail (no maps with non-string
    /// keys, no custom serializers), so a failure is a bug worth a panic in tests.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("server frames always serialize")
    }
}
