//! The EXAI wire protocol v1 (DESIGN.md section 4).
//!
//! [`frame`] turns the bytes a client sent into a typed [`ClientFrame`] or a precise error;
//! [`reply`] defines every frame the daemon sends; [`received`] decodes those frames again on
//! the client side (bridge, bench, simulated clients). None of them knows about sessions,
//! sockets or tools: handling lives in `router` and `call`. Keeping parsing apart from
//! handling is what lets the decoder be fuzzed on its own.

pub mod frame;
pub mod received;
pub mod reply;

pub use frame::{ClientFrame, DecodeError, DecodeLimits, Hello, decode, decode_with};
pub use received::{Received, decode_server};
pub use reply::{ProgressPhase, ServerFrame};

/// WebSocket close codes the protocol uses, kept compatible with the original EXAI daemon.
pub mod close_code {
    /// The first frame was not JSON.
    pub const BAD_JSON: u16 = 4000;
    /// The first frame was JSON but not a `hello`.
    pub const NOT_HELLO: u16 = 4001;
    /// No `hello` arrived within the hello timeout.
    pub const HELLO_TIMEOUT: u16 = 4002;
    /// The token in `hello` was wrong or missing.
    pub const BAD_TOKEN: u16 = 4003;
    /// A newer connection took over this session.
    pub const SUPERSEDED: u16 = 4004;
    /// The session named in a resume `hello` is unknown or expired.
    pub const SESSION_UNKNOWN: u16 = 4005;
    /// The client stopped reading: what it was sent did not drain within
    /// `EXAI_WS_WRITE_TIMEOUT_SECS` (its session stays resumable).
    pub const SLOW_CONSUMER: u16 = 4007;
    /// The connection sent nothing for `EXAI_WS_IDLE_TIMEOUT_SECS`.
    pub const IDLE: u16 = 4008;
    /// The peer did not answer pings within `EXAI_WS_PING_TIMEOUT` (its session stays
    /// resumable).
    pub const PING_TIMEOUT: u16 = 4006;
    /// A limit was exceeded (connections, per IP, rate): the standard policy-violation code.
    pub const POLICY: u16 = 1008;
    /// A frame exceeded `EXAI_WS_MAX_BYTES`.
    pub const TOO_BIG: u16 = 1009;
    /// The daemon is going away (shutdown).
    pub const GOING_AWAY: u16 = 1001;
    /// The connection ends normally.
    pub const NORMAL: u16 = 1000;
}
