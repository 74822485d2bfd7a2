//! Error codes and the error every call or frame can end with.
//!
//! Why one type: the original sent error frames with no `op` and no `request_id` (DESIGN.md
//! section 9.5). Here every failure is a [`CallError`] with a code from one closed set, and
//! the protocol layer always wraps it in a frame that names its request.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// The closed set of error codes on the wire: the original EXAI set plus what exaid adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The frame is well-formed JSON but not a valid request (missing or wrong fields).
    InvalidRequest,
    /// Bad or missing token.
    Unauthorized,
    /// The call's deadline passed.
    Timeout,
    /// Tool arguments failed validation against the tool's schema.
    ValidationError,
    /// A limit is full and its queue is full or waiting took too long; retry later.
    OverCapacity,
    /// A bug in exaid (including a panic inside a call).
    InternalError,
    /// No tool of that name is enabled.
    ToolNotFound,
    /// The tool ran and failed for a reason of its own.
    ToolExecutionError,
    /// The provider failed in a way that retrying will not fix.
    ProviderError,
    /// The frame is not a protocol frame at all (not JSON, binary, too deep...).
    ProtocolError,
    /// The provider rate-limited the call and waiting would not fit in the deadline.
    RateLimited,
    /// The client cancelled the call.
    Cancelled,
    /// The daemon is shutting down or not ready.
    ServiceUnavailable,
    /// The daemon stopped (crashed, was killed, or shut down) while the call ran: nothing of
    /// it was kept, and sending the same request id again runs it anew. Retryable.
    Interrupted,
}

impl ErrorCode {
    /// The wire name, e.g. `OVER_CAPACITY`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Timeout => "TIMEOUT",
            ErrorCode::ValidationError => "VALIDATION_ERROR",
            ErrorCode::OverCapacity => "OVER_CAPACITY",
            ErrorCode::InternalError => "INTERNAL_ERROR",
            ErrorCode::ToolNotFound => "TOOL_NOT_FOUND",
            ErrorCode::ToolExecutionError => "TOOL_EXECUTION_ERROR",
            ErrorCode::ProviderError => "PROVIDER_ERROR",
            ErrorCode::ProtocolError => "PROTOCOL_ERROR",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::Cancelled => "CANCELLED",
            ErrorCode::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            ErrorCode::Interrupted => "INTERRUPTED",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a call or a frame failed: a code, a sentence for humans, and optional detail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallError {
    /// The machine-readable code.
    pub code: ErrorCode,
    /// What went wrong, naming the field, limit or provider involved.
    pub message: String,
    /// When retrying makes sense, how long to wait first (whole seconds, rounded up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
    /// Structured detail (the failing field path, the limit's numbers...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    /// True when sending the same request again is the remedy (`INTERRUPTED`: the daemon
    /// stopped while the call ran). Sent only when true, so other errors read as before.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retryable: bool,
    /// Whether another provider may succeed where this one failed (its rate limit does not
    /// fit the deadline, its quota is spent, it still fails after its retries): an `auto`
    /// call then moves to its next model (`tools::route`). Never sent to clients.
    #[serde(skip)]
    pub failover: bool,
}

impl CallError {
    /// The same error, marked as one another provider may not share (`failover`).
    pub fn may_fail_over(mut self) -> CallError {
        self.failover = true;
        self
    }

    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> CallError {
        CallError {
            code,
            message: message.into(),
            retry_after_secs: None,
            details: None,
            retryable: code == ErrorCode::Interrupted,
            failover: false,
        }
    }

    /// Attach a retry hint.
    pub fn with_retry_after_secs(mut self, secs: u64) -> CallError {
        self.retry_after_secs = Some(secs);
        self
    }

    /// Attach structured detail.
    pub fn with_details(mut self, details: Value) -> CallError {
        self.details = Some(details);
        self
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for CallError {}
