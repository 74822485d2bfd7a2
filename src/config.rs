//! Layered configuration for exaid.
//!
//! Layers, lowest to highest precedence: built-in defaults < TOML config file <
//! `.env` file < process environment < command-line flags.
//!
//! Why this shape: the daemon sits between clients and rate-limited providers, so a
//! wrong limit silently costs money or stalls every client. Every value is therefore
//! validated at the layer that supplied it (a bad value stops start-up even if a higher
//! layer overrides it), every effective value remembers where it came from (so
//! `exaid config` and the start-up log can answer "why is this 4?"), and secrets are
//! never echoed anywhere.
//!
//! The key table (`KEYS`) is the single source of truth: adding a key means one
//! table row, one field in [`Config`], and one line in `Config::from_values`.
//!
//! This module never reads the process environment or any file other than the two
//! named in [`Layers`]; `main.rs` gathers those inputs and passes them in.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::tools::profile::{ALWAYS_ON, BUILTIN_TOOL_NAMES, PROFILE_NAMES, Profile};

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

/// Where an effective value came from, so operators can tell which layer to edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in default from the key table.
    Default,
    /// The TOML config file at this path.
    File(PathBuf),
    /// The dotenv file at this path.
    DotEnv(PathBuf),
    /// The process environment.
    Env,
    /// A command-line flag (`--port`, `--set KEY=VALUE`, ...).
    Flag,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::DotEnv(p) => write!(f, "dotenv file {}", p.display()),
            Source::Env => f.write_str("environment"),
            Source::Flag => f.write_str("flag"),
        }
    }
}

/// A secret string (the WebSocket token). Wrapped so that `Debug`, logs and error
/// messages cannot print it by accident; call [`Secret::expose`] where the raw value
/// is really needed (and compare it in constant time there).
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The raw secret. Only for authentication and for writing the token file.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in characters, which is safe to show (`<set, N chars>`).
    pub fn char_len(&self) -> usize {
        self.0.chars().count()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// What to read. Built by `main.rs` from the real process; tests build it by hand,
/// which keeps `Config::load` free of hidden global inputs.
#[derive(Clone, Default)]
pub struct Layers {
    /// TOML config file.
    pub file: Option<PathBuf>,
    /// Error if `file` is missing (it was named explicitly by `--config` or
    /// `EXAI_CONFIG`); otherwise a missing file is skipped silently.
    pub file_required: bool,
    /// dotenv file.
    pub dotenv: Option<PathBuf>,
    /// Same rule as `file_required`, for `dotenv`.
    pub dotenv_required: bool,
    /// Process environment pairs (main passes `std::env::vars()`).
    pub env: Vec<(String, String)>,
    /// Flags as KEY=VALUE pairs (main turns `--port 9000` into
    /// `("EXAI_WS_PORT", "9000")`, and `--set KEY=VALUE` into a pair).
    pub flags: Vec<(String, String)>,
}

/// Hand-written so that printing `Layers` never dumps the process environment
/// (which holds provider API keys): only key names are shown.
impl fmt::Debug for Layers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env_keys: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        let flag_keys: Vec<&str> = self.flags.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Layers")
            .field("file", &self.file)
            .field("file_required", &self.file_required)
            .field("dotenv", &self.dotenv)
            .field("dotenv_required", &self.dotenv_required)
            .field("env_keys", &env_keys)
            .field("flag_keys", &flag_keys)
            .finish()
    }
}

/// The result of a successful load: the configuration plus non-fatal findings
/// (unknown keys and the like) for main to log once the logger is up.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated, merged configuration.
    pub config: Config,
    /// Human-readable warnings, in the order they were found.
    pub warnings: Vec<String>,
}

/// The effective configuration. Typed fields for the rest of the crate, plus a
/// private record of each key's display value and source for `exaid config`.
#[derive(Debug, Clone)]
pub struct Config {
    /// EXAI_WS_HOST: address the WebSocket listener binds to.
    pub ws_host: String,
    /// EXAI_WS_PORT: listener port; 0 asks the OS for a free port (tests).
    pub ws_port: u16,
    /// EXAI_WS_TOKEN: shared secret clients must present; None means main
    /// generates one and stores it in the token file.
    pub ws_token: Option<Secret>,
    /// EXAI_TOKEN_FILE: where the generated token is stored; None lets main pick
    /// the XDG default.
    pub token_file: Option<PathBuf>,
    /// EXAI_WS_GLOBAL_MAX_INFLIGHT: provider calls in flight across everything.
    pub global_max_inflight: u32,
    /// EXAI_WS_KIMI_MAX_INFLIGHT: calls in flight to the Kimi provider.
    pub kimi_max_inflight: u32,
    /// EXAI_WS_GLM_MAX_INFLIGHT: calls in flight to the GLM provider.
    pub glm_max_inflight: u32,
    /// EXAI_WS_OFFLINE_MAX_INFLIGHT: calls in flight to the offline test provider.
    pub offline_max_inflight: u32,
    /// EXAI_WS_SESSION_MAX_INFLIGHT: calls in flight for one client session.
    pub session_max_inflight: u32,
    /// EXAI_WS_QUEUE_MAX: callers allowed to wait per limit; 0 = never queue.
    pub queue_max_waiters: u32,
    /// EXAI_WS_QUEUE_TIMEOUT_SECS: longest wait for a concurrency slot.
    pub queue_timeout_ms: u64,
    /// SIMPLE_TOOL_TIMEOUT_SECS: deadline for one simple tool call.
    pub simple_tool_timeout_ms: u64,
    /// WORKFLOW_TOOL_TIMEOUT_SECS: deadline for one workflow tool call.
    pub workflow_tool_timeout_ms: u64,
    /// EXAI_WS_PROGRESS_INTERVAL_SECS: how often a long call reports progress.
    pub progress_interval_ms: u64,
    /// EXAI_WS_HELLO_TIMEOUT: how long a new connection may take to say hello.
    pub hello_timeout_ms: u64,
    /// EXAI_WS_MAX_BYTES: largest accepted WebSocket frame/message.
    pub max_frame_bytes: usize,
    /// EXAI_OFFLINE_LATENCY_MS: artificial latency of the offline provider.
    pub offline_latency_ms: u64,
    /// EXAI_SESSION_TTL_SECS: how long a disconnected session is kept for resume.
    pub session_ttl_ms: u64,
    /// EXAI_OUTBOX_MAX_FRAMES: frames buffered per session while disconnected.
    pub outbox_max_frames: u32,
    /// EXAI_OUTBOX_MAX_BYTES: bytes buffered per session while disconnected.
    pub outbox_max_bytes: usize,
    /// EXAI_RESULT_TTL_SECS: how long a finished result is kept for pickup.
    pub result_ttl_ms: u64,
    /// EXAI_RESULT_CACHE_MAX: finished results kept per session for repeated ids.
    pub result_cache_max: u32,
    /// EXAI_RETRY_ATTEMPTS_MAX: provider attempts per call, the first included.
    pub retry_attempts_max: u32,
    /// EXAI_RETRY_BACKOFF_BASE_SECS: first backoff pause without a retry-after.
    pub retry_backoff_base_ms: u64,
    /// EXAI_RETRY_BACKOFF_MAX_SECS: cap on a backoff pause.
    pub retry_backoff_max_ms: u64,
    /// EXAI_WS_PING_INTERVAL: how often an idle client is pinged.
    pub ping_interval_ms: u64,
    /// EXAI_WS_PING_TIMEOUT: silence after a ping before the socket is closed.
    pub ping_timeout_ms: u64,
    /// KIMI_API_URL: Kimi's base URL (no trailing slash).
    pub kimi_api_url: String,
    /// KIMI_API_KEY: Kimi's key; the provider is active when set.
    pub kimi_api_key: Option<Secret>,
    /// KIMI_MODELS: Kimi's models, default first.
    pub kimi_models: Vec<String>,
    /// KIMI_TIMEOUT_SECS: longest single Kimi attempt.
    pub kimi_timeout_ms: u64,
    /// GLM_API_URL: GLM's base URL (no trailing slash).
    pub glm_api_url: String,
    /// GLM_API_KEY: GLM's key; the provider is active when set.
    pub glm_api_key: Option<Secret>,
    /// GLM_MODELS: GLM's models, default first.
    pub glm_models: Vec<String>,
    /// GLM_TIMEOUT_SECS: longest single GLM attempt.
    pub glm_timeout_ms: u64,
    /// EXAI_PROVIDER_STREAMING: stream answers and forward chunks as progress.
    pub provider_streaming: bool,
    /// EXAI_HTTP_PORT: the operator's HTTP port; 0 = off.
    pub http_port: u16,
    /// EXAI_LOG_FORMAT: `human` or `json`.
    pub log_format: String,
    /// EXAI_SHUTDOWN_GRACE_SECS: how long calls in flight may finish at shutdown.
    pub shutdown_grace_ms: u64,
    /// EXAI_WS_MAX_CONNECTIONS_PER_IP: simultaneous connections from one address.
    pub max_connections_per_ip: u32,
    /// EXAI_WS_SESSION_RATE: frames per second per session, on average.
    pub session_rate_per_sec: u32,
    /// EXAI_WS_SESSION_BURST: frames a session may send at once above its rate.
    pub session_burst: u32,
    /// EXAI_WS_IDLE_TIMEOUT_SECS: a connection silent this long is closed.
    pub idle_timeout_ms: u64,
    /// EXAI_WS_WRITE_TIMEOUT_SECS: a client not reading this long is disconnected.
    pub write_timeout_ms: u64,
    /// EXAI_WS_JSON_DEPTH_MAX: deepest JSON nesting in a frame.
    pub json_depth_max: u32,
    /// EXAI_WS_REQUEST_ID_BYTES_MAX: longest request id.
    pub request_id_bytes_max: u32,
    /// EXAI_ARG_STRING_CHARS_MAX: longest string in a call's arguments.
    pub arg_string_chars_max: u32,
    /// EXAI_WS_MAX_CONNECTIONS: simultaneous WebSocket connections.
    pub max_connections: u32,
    /// EXAI_WS_MAX_SESSIONS: sessions kept (live or awaiting resume).
    pub max_sessions: u32,
    /// EXAI_CONVERSATIONS_MAX: conversations (continuation ids) kept at once.
    pub conversations_max: u32,
    /// EXAI_CONVERSATION_TURNS_MAX: turns kept per conversation.
    pub conversation_turns_max: u32,
    /// EXAI_CONVERSATION_BYTES_MAX: bytes kept per conversation.
    pub conversation_bytes_max: usize,
    /// EXAI_CONVERSATION_TTL_SECS: how long an untouched conversation is kept.
    pub conversation_ttl_ms: u64,
    /// EXAI_CONSENSUS_MODELS_MAX: models one consensus call may consult.
    pub consensus_models_max: u32,
    /// TOOL_PROFILE: which set of built-in tools is served.
    pub tool_profile: Profile,
    /// ENABLED_TOOLS: if not empty, exactly these tools (plus version and listmodels).
    pub enabled_tools: Vec<String>,
    /// DISABLED_TOOLS: tools removed from the profile or ENABLED_TOOLS.
    pub disabled_tools: Vec<String>,
    /// EXAI_CONFIG: the config file main was told to read (informational here;
    /// main resolves it before calling `load`).
    pub config_file: Option<PathBuf>,
    /// EXAI_ENV_FILE: the dotenv file main was told to read (informational here).
    pub env_file: PathBuf,
    /// Key -> (display value, source), for `render`, `entries` and `source_of`.
    /// Secrets are already redacted here, so the derived Debug is safe.
    shown: BTreeMap<&'static str, (String, Source)>,
}

/// Why start-up must stop: names the key, the raw value (redacted for secrets) and
/// the layer it came from, so the operator knows exactly what to fix and where.
/// Boxed so `Result<_, ConfigError>` stays small on the happy path.
#[derive(Debug)]
pub struct ConfigError(Box<ErrorDetail>);

/// The contents of a [`ConfigError`].
#[derive(Debug)]
struct ErrorDetail {
    /// Which message shape to use.
    kind: ErrorKind,
    /// The key at fault (for file-level errors: EXAI_CONFIG or EXAI_ENV_FILE).
    key: String,
    /// The value as it should be shown: quoted raw text, or `<redacted, N chars>`.
    value: Option<String>,
    /// The layer the value came from.
    source: Source,
    /// What was expected / what went wrong. Never contains a secret.
    reason: String,
    /// For relation errors: the other keys involved (key, shown value, source).
    related: Vec<(String, String, Source)>,
}

/// The shape of the error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorKind {
    /// A value failed its key's rule.
    Invalid,
    /// A key nobody knows, where that is fatal (flags).
    Unknown,
    /// A config or dotenv file could not be read or parsed.
    File,
    /// Values are fine one by one but contradict each other.
    Relation,
}

impl ConfigError {
    /// The key at fault.
    pub fn key(&self) -> &str {
        &self.0.key
    }

    /// The layer the offending value came from.
    pub fn source(&self) -> &Source {
        &self.0.source
    }

    /// What was expected.
    pub fn reason(&self) -> &str {
        &self.0.reason
    }

    fn invalid(def: &KeyDef, raw: &str, source: Source, reason: String) -> ConfigError {
        ConfigError(Box::new(ErrorDetail {
            kind: ErrorKind::Invalid,
            key: def.name.to_string(),
            value: Some(show_raw(def, raw)),
            source,
            reason,
            related: Vec::new(),
        }))
    }

    fn file(key: &str, source: Source, reason: String) -> ConfigError {
        ConfigError(Box::new(ErrorDetail {
            kind: ErrorKind::File,
            key: key.to_string(),
            value: None,
            source,
            reason,
            related: Vec::new(),
        }))
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &*self.0;
        match d.kind {
            ErrorKind::Invalid => match &d.value {
                Some(v) => write!(
                    f,
                    "invalid {} = {} (from {}): {}",
                    d.key, v, d.source, d.reason
                ),
                None => write!(f, "invalid {} (from {}): {}", d.key, d.source, d.reason),
            },
            ErrorKind::Unknown => {
                write!(f, "unknown key {} (from {}): {}", d.key, d.source, d.reason)
            }
            ErrorKind::File => write!(f, "cannot load {}: {}", d.source, d.reason),
            ErrorKind::Relation => {
                write!(f, "inconsistent settings: {} = ", d.key)?;
                write!(
                    f,
                    "{} (from {})",
                    d.value.as_deref().unwrap_or(""),
                    d.source
                )?;
                for (k, v, s) in &d.related {
                    write!(f, ", {k} = {v} (from {s})")?;
                }
                write!(f, ": {}", d.reason)
            }
        }
    }
}

impl std::error::Error for ConfigError {}

impl From<ErrorDetail> for ConfigError {
    fn from(d: ErrorDetail) -> ConfigError {
        ConfigError(Box::new(d))
    }
}

// ---------------------------------------------------------------------------
// Key table
// ---------------------------------------------------------------------------

/// How a key's text is parsed and checked. Secret-ness follows from the kind.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Host name or address: non-empty, no whitespace, at most `max_chars`.
    Host { max_chars: usize },
    /// Plain decimal integer in `min..=max`; `unit` (may be empty) is named in errors.
    Int {
        min: u64,
        max: u64,
        unit: &'static str,
    },
    /// Decimal seconds, stored as integer milliseconds in `min_ms..=max_ms`.
    Secs { min_ms: u64, max_ms: u64 },
    /// Secret token: empty means unset; otherwise `min_chars`+ and no whitespace.
    Token { min_chars: usize },
    /// Path; empty means none.
    OptPath,
    /// Path; must be non-empty.
    Path,
    /// An `http://` or `https://` URL without whitespace, at most `max_chars`.
    Url { max_chars: usize },
    /// Comma-separated non-empty items (spaces around items trimmed), at most `max_items`.
    List { max_items: usize },
    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
    Bool,
    /// One of fixed names, case-insensitive (stored lower case).
    Choice { choices: &'static [&'static str] },
    /// Comma-separated names from a fixed set, case-insensitive (stored lower case); empty
    /// means none. An unknown name is an error that names it.
    Names {
        known: &'static [&'static str],
        max_items: usize,
    },
}

impl Kind {
    fn is_secret(self) -> bool {
        matches!(self, Kind::Token { .. })
    }

    /// The "expected ..." text used in every error for this kind.
    fn expected(self) -> String {
        match self {
            Kind::Host { max_chars } => format!(
                "expected a host name or address: non-empty, no whitespace, at most {max_chars} characters"
            ),
            Kind::Int { min, max, unit: "" } => {
                format!("expected an integer from {min} to {max}")
            }
            Kind::Int { min, max, unit } => {
                format!("expected an integer ({unit}) from {min} to {max}")
            }
            Kind::Secs { min_ms, max_ms } => format!(
                "expected seconds (decimal) from {} to {}",
                fmt_secs(min_ms),
                fmt_secs(max_ms)
            ),
            Kind::Token { min_chars } => format!(
                "expected a token of at least {min_chars} characters without whitespace (or empty for none)"
            ),
            Kind::OptPath => "expected a path (or empty for none)".to_string(),
            Kind::Path => "expected a non-empty path".to_string(),
            Kind::Url { max_chars } => {
                format!(
                    "expected an http:// or https:// URL without spaces, at most {max_chars} characters"
                )
            }
            Kind::List { max_items } => {
                format!("expected a comma-separated list of 1 to {max_items} non-empty items")
            }
            Kind::Bool => "expected true or false (also 1/0, yes/no, on/off)".to_string(),
            Kind::Choice { choices } => format!("expected one of {}", choices.join(", ")),
            Kind::Names { known, max_items } => format!(
                "expected a comma-separated list of at most {max_items} tool names (or empty for none) from: {}",
                known.join(", ")
            ),
        }
    }
}

/// One configuration key: its name everywhere (env, .env, file, `--set`), its
/// default as text (parsed by the same code as user input), its rule, and why it exists.
#[derive(Debug)]
struct KeyDef {
    /// Canonical (upper-case) key name.
    name: &'static str,
    /// Default value as text; must satisfy `kind` (checked by a test).
    default: &'static str,
    /// Parsing rule and range.
    kind: Kind,
    /// Whether the TOML config file may set it (the file locators may not).
    file_ok: bool,
    /// What the key limits and why.
    #[allow(
        dead_code,
        reason = "shown by nothing yet; kept in the table for `exaid config --explain` later"
    )]
    doc: &'static str,
}

const fn secs(min_ms: u64, max_ms: u64) -> Kind {
    Kind::Secs { min_ms, max_ms }
}

const fn int(min: u64, max: u64) -> Kind {
    Kind::Int { min, max, unit: "" }
}

const fn key(name: &'static str, default: &'static str, kind: Kind, doc: &'static str) -> KeyDef {
    KeyDef {
        name,
        default,
        kind,
        file_ok: true,
        doc,
    }
}

/// Every known key. The single source of truth for names, defaults and rules.
static KEYS: &[KeyDef] = &[
    key(
        "EXAI_WS_HOST",
        "127.0.0.1",
        Kind::Host { max_chars: 253 },
        "Address the WebSocket listener binds to; loopback by default so the daemon is not exposed to the network by accident.",
    ),
    key(
        "EXAI_WS_PORT",
        "8079",
        int(0, 65535),
        "Listener port; 0 asks the OS for a free port, which tests use to run in parallel.",
    ),
    key(
        "EXAI_WS_TOKEN",
        "",
        Kind::Token { min_chars: 16 },
        "Shared secret every client must present; short tokens are rejected because they can be guessed. Empty means main generates one.",
    ),
    key(
        "EXAI_TOKEN_FILE",
        "",
        Kind::OptPath,
        "Where the generated token is stored so local clients can read it; empty means the XDG default.",
    ),
    key(
        "EXAI_WS_GLOBAL_MAX_INFLIGHT",
        "24",
        int(1, 10_000),
        "Provider calls in flight across all providers and sessions; bounds total spend and memory.",
    ),
    key(
        "EXAI_WS_KIMI_MAX_INFLIGHT",
        "6",
        int(1, 10_000),
        "Calls in flight to Kimi; kept under the provider's rate limit so calls queue here instead of failing there.",
    ),
    key(
        "EXAI_WS_GLM_MAX_INFLIGHT",
        "4",
        int(1, 10_000),
        "Calls in flight to GLM; kept under the provider's rate limit so calls queue here instead of failing there.",
    ),
    key(
        "EXAI_WS_OFFLINE_MAX_INFLIGHT",
        "24",
        int(1, 10_000),
        "Calls in flight to the offline (test) provider; lets tests exercise queueing without a network.",
    ),
    key(
        "EXAI_WS_SESSION_MAX_INFLIGHT",
        "8",
        int(1, 10_000),
        "Calls in flight for one client session, so one busy client cannot starve the others.",
    ),
    key(
        "EXAI_WS_QUEUE_MAX",
        "256",
        int(0, 100_000),
        "Callers allowed to wait per limit before being refused (0 = never queue); bounds memory under overload.",
    ),
    key(
        "EXAI_WS_QUEUE_TIMEOUT_SECS",
        "30",
        secs(1, 3_600_000),
        "Longest wait for a concurrency slot; past it the caller gets a clear 'busy' instead of hanging.",
    ),
    key(
        "SIMPLE_TOOL_TIMEOUT_SECS",
        "60",
        secs(1, 86_400_000),
        "The one deadline for a simple tool call, queueing included; name shared with the upstream MCP server.",
    ),
    key(
        "WORKFLOW_TOOL_TIMEOUT_SECS",
        "180",
        secs(1, 86_400_000),
        "The one deadline for a workflow tool call, queueing included; name shared with the upstream MCP server.",
    ),
    key(
        "EXAI_WS_PROGRESS_INTERVAL_SECS",
        "8",
        secs(10, 3_600_000),
        "How often a long call sends progress, so clients with idle timeouts keep waiting.",
    ),
    key(
        "EXAI_WS_HELLO_TIMEOUT",
        "15",
        secs(10, 3_600_000),
        "How long a new connection may take to authenticate; frees slots held by silent sockets.",
    ),
    key(
        "EXAI_WS_MAX_BYTES",
        "33554432",
        Kind::Int {
            min: 1024,
            max: 1_073_741_824,
            unit: "bytes",
        },
        "Largest accepted WebSocket message; bounds memory one client can make the daemon allocate.",
    ),
    key(
        "EXAI_OFFLINE_LATENCY_MS",
        "0",
        Kind::Int {
            min: 0,
            max: 3_600_000,
            unit: "milliseconds",
        },
        "Artificial latency of the offline provider, for tests of timeouts and queueing.",
    ),
    key(
        "EXAI_SESSION_TTL_SECS",
        "300",
        secs(1000, 86_400_000),
        "How long a disconnected session is kept so a reconnecting client can resume it.",
    ),
    key(
        "EXAI_OUTBOX_MAX_FRAMES",
        "4096",
        int(16, 1_000_000),
        "Frames buffered per session while its client is away; bounds memory per session.",
    ),
    key(
        "EXAI_OUTBOX_MAX_BYTES",
        "16777216",
        Kind::Int {
            min: 4096,
            max: 1_073_741_824,
            unit: "bytes",
        },
        "Bytes buffered per session while its client is away; bounds memory per session.",
    ),
    key(
        "EXAI_RESULT_TTL_SECS",
        "300",
        secs(1000, 86_400_000),
        "How long a finished result is kept for a client that disconnected mid-call.",
    ),
    key(
        "EXAI_RETRY_ATTEMPTS_MAX",
        "4",
        int(1, 20),
        "Provider attempts per call, first included; bounds how long a failing provider is retried.",
    ),
    key(
        "EXAI_RETRY_BACKOFF_BASE_SECS",
        "0.5",
        secs(1, 600_000),
        "First backoff pause when the provider gave no retry-after; doubles per attempt, with jitter.",
    ),
    key(
        "EXAI_RETRY_BACKOFF_MAX_SECS",
        "30",
        secs(1, 3_600_000),
        "Longest backoff pause (a provider's own retry-after is honored as asked, within the deadline).",
    ),
    key(
        "EXAI_RESULT_CACHE_MAX",
        "256",
        int(0, 100_000),
        "Finished results kept per session for repeated request ids; bounds the cache's memory.",
    ),
    key(
        "EXAI_WS_PING_INTERVAL",
        "30",
        secs(1000, 3_600_000),
        "How often the daemon pings an idle client, so a dead peer is noticed.",
    ),
    key(
        "EXAI_WS_PING_TIMEOUT",
        "30",
        secs(1000, 3_600_000),
        "How long a client may stay silent after a ping before its socket is closed (its session stays resumable).",
    ),
    key(
        "KIMI_API_URL",
        "https://api.moonshot.ai/v1",
        Kind::Url { max_chars: 2048 },
        "Base URL of the Kimi (Moonshot) OpenAI-compatible API.",
    ),
    key(
        "KIMI_API_KEY",
        "",
        Kind::Token { min_chars: 8 },
        "Kimi API key; the Kimi provider is active when it is set.",
    ),
    key(
        "KIMI_MODELS",
        "kimi-k2-0905-preview,kimi-k2-turbo-preview,moonshot-v1-8k,moonshot-v1-32k,moonshot-v1-128k",
        Kind::List { max_items: 64 },
        "Models served by Kimi; the first is what `auto` picks on Kimi.",
    ),
    key(
        "KIMI_TIMEOUT_SECS",
        "120",
        secs(1000, 86_400_000),
        "Longest single Kimi attempt; a call's deadline still bounds all attempts together.",
    ),
    key(
        "GLM_API_URL",
        "https://api.z.ai/api/paas/v4",
        Kind::Url { max_chars: 2048 },
        "Base URL of the GLM (Zhipu / Z.ai) OpenAI-compatible API.",
    ),
    key(
        "GLM_API_KEY",
        "",
        Kind::Token { min_chars: 8 },
        "GLM API key; the GLM provider is active when it is set.",
    ),
    key(
        "GLM_MODELS",
        "glm-4.6,glm-4.5,glm-4.5-air,glm-4.5-flash",
        Kind::List { max_items: 64 },
        "Models served by GLM; the first is what `auto` picks on GLM.",
    ),
    key(
        "GLM_TIMEOUT_SECS",
        "120",
        secs(1000, 86_400_000),
        "Longest single GLM attempt; a call's deadline still bounds all attempts together.",
    ),
    key(
        "EXAI_PROVIDER_STREAMING",
        "true",
        Kind::Bool,
        "Stream provider answers (SSE) and forward the chunks as progress frames.",
    ),
    key(
        "EXAI_HTTP_PORT",
        "8080",
        int(0, 65_535),
        "Port of the operator's HTTP endpoints (/healthz, /readyz, /status, /metrics) on EXAI_WS_HOST; 0 turns them off.",
    ),
    key(
        "EXAI_LOG_FORMAT",
        "human",
        Kind::Choice {
            choices: &["human", "json"],
        },
        "Log lines for people (human) or for log collectors (json); filter with RUST_LOG.",
    ),
    key(
        "EXAI_SHUTDOWN_GRACE_SECS",
        "30",
        secs(0, 3_600_000),
        "On SIGTERM or Ctrl-C, how long calls in flight may take to finish before they end with SERVICE_UNAVAILABLE.",
    ),
    key(
        "EXAI_WS_MAX_CONNECTIONS_PER_IP",
        "10",
        int(1, 1_000_000),
        "Simultaneous WebSocket connections from one address; one noisy neighbour cannot take every slot.",
    ),
    key(
        "EXAI_WS_SESSION_RATE",
        "500",
        int(1, 1_000_000),
        "Frames per second one session may send, on average (token bucket); excess gets OVER_CAPACITY.",
    ),
    key(
        "EXAI_WS_SESSION_BURST",
        "1000",
        int(1, 1_000_000),
        "Frames one session may send at once above its rate; a client that keeps exceeding it is closed (1008).",
    ),
    key(
        "EXAI_WS_IDLE_TIMEOUT_SECS",
        "3600",
        secs(1000, 86_400_000),
        "A connection that sends no frame for this long is closed (4008); its session stays resumable.",
    ),
    key(
        "EXAI_WS_WRITE_TIMEOUT_SECS",
        "30",
        secs(100, 3_600_000),
        "A client that does not read what the daemon sends for this long is disconnected (4007); its session stays resumable.",
    ),
    key(
        "EXAI_WS_JSON_DEPTH_MAX",
        "64",
        int(2, 128),
        "Deepest JSON nesting accepted in a frame (serde_json itself stops at 128).",
    ),
    key(
        "EXAI_WS_REQUEST_ID_BYTES_MAX",
        "256",
        int(1, 4096),
        "Longest request_id; ids are map keys echoed on every frame of a call.",
    ),
    key(
        "EXAI_ARG_STRING_CHARS_MAX",
        "100000",
        int(1, 10_000_000),
        "Longest string anywhere in a call's arguments (a prompt, a file list entry), in characters.",
    ),
    key(
        "EXAI_WS_MAX_CONNECTIONS",
        "1000",
        int(1, 1_000_000),
        "Simultaneous WebSocket connections; bounds file descriptors and per-connection memory.",
    ),
    key(
        "EXAI_WS_MAX_SESSIONS",
        "10000",
        int(1, 1_000_000),
        "Sessions kept, live or awaiting resume; bounds memory held for absent clients.",
    ),
    key(
        "EXAI_CONVERSATIONS_MAX",
        "256",
        int(1, 100_000),
        "Conversations (continuation ids) kept at once; past it the least recently used is evicted, so memory stays bounded.",
    ),
    key(
        "EXAI_CONVERSATION_TURNS_MAX",
        "50",
        int(2, 10_000),
        "Turns kept per conversation; past it the oldest are dropped, and tools say so in their output.",
    ),
    key(
        "EXAI_CONVERSATION_BYTES_MAX",
        "1048576",
        Kind::Int {
            min: 4096,
            max: 1_073_741_824,
            unit: "bytes",
        },
        "Bytes kept per conversation; past it the oldest turns are dropped (announced), bounding memory and prompt size.",
    ),
    key(
        "EXAI_CONVERSATION_TTL_SECS",
        "10800",
        secs(1000, 604_800_000),
        "How long an untouched conversation is kept; a continuation_id older than this is refused with a clear error.",
    ),
    key(
        "EXAI_CONSENSUS_MODELS_MAX",
        "5",
        int(1, 32),
        "Models one consensus call may consult (each consultation is admitted on its own); bounds one call's cost.",
    ),
    key(
        "TOOL_PROFILE",
        "full",
        Kind::Choice {
            choices: PROFILE_NAMES,
        },
        "Which built-in tools are served: lean (everyday tools), standard (lean plus consensus, docgen, precommit, secaudit, tracer) or full (every tool); name shared with the original.",
    ),
    key(
        "ENABLED_TOOLS",
        "",
        Kind::Names {
            known: BUILTIN_TOOL_NAMES,
            max_items: 64,
        },
        "If set, exactly these tools are served (TOOL_PROFILE is ignored); version and listmodels are always on.",
    ),
    key(
        "DISABLED_TOOLS",
        "",
        Kind::Names {
            known: BUILTIN_TOOL_NAMES,
            max_items: 64,
        },
        "Tools removed from the profile or ENABLED_TOOLS; version and listmodels cannot be removed.",
    ),
    KeyDef {
        file_ok: false,
        ..key(
            "EXAI_CONFIG",
            "",
            Kind::OptPath,
            "Path of the TOML config file; read by main from the environment or --config, never from the file itself.",
        )
    },
    KeyDef {
        file_ok: false,
        ..key(
            "EXAI_ENV_FILE",
            ".env",
            Kind::Path,
            "Path of the dotenv file; read by main from the environment or flags, never from the config file.",
        )
    },
];

/// Looks up a key by its exact canonical name.
fn find_key(name: &str) -> Option<&'static KeyDef> {
    KEYS.iter().find(|d| d.name == name)
}

/// Looks up a key by canonical name or its all-lower-case form (config file, flags).
fn find_key_loose(name: &str) -> Option<&'static KeyDef> {
    find_key(name).or_else(|| {
        if name == name.to_ascii_lowercase() {
            find_key(&name.to_ascii_uppercase())
        } else {
            None
        }
    })
}

// ---------------------------------------------------------------------------
// Generic parse step
// ---------------------------------------------------------------------------

/// A parsed value, before it is placed in a typed field.
#[derive(Debug, Clone)]
enum Value {
    /// Integers, and durations in milliseconds.
    Num(u64),
    /// Host names and other plain text.
    Text(String),
    /// Paths; None for "none".
    Path(Option<PathBuf>),
    /// Secrets; None for "unset".
    Secret(Option<Secret>),
    /// Lists of items.
    List(Vec<String>),
}

/// Parses `raw` according to `kind`. The error is the "expected ..." text (for `Names`,
/// preceded by the unknown names); it never contains a secret.
fn parse_value(kind: Kind, raw: &str) -> Result<Value, String> {
    let s = raw.trim();
    let fail = || kind.expected();
    match kind {
        Kind::Host { max_chars } => {
            if s.is_empty() || s.chars().any(char::is_whitespace) || s.chars().count() > max_chars {
                return Err(fail());
            }
            Ok(Value::Text(s.to_string()))
        }
        Kind::Int { min, max, .. } => {
            let n = parse_plain_int(s).ok_or_else(fail)?;
            if n < min || n > max {
                return Err(fail());
            }
            Ok(Value::Num(n))
        }
        Kind::Secs { min_ms, max_ms } => {
            let ms = parse_decimal_secs_ms(s).ok_or_else(fail)?;
            if ms < min_ms || ms > max_ms {
                return Err(fail());
            }
            Ok(Value::Num(ms))
        }
        Kind::Token { min_chars } => {
            if s.is_empty() {
                return Ok(Value::Secret(None));
            }
            if s.chars().count() < min_chars || s.chars().any(char::is_whitespace) {
                return Err(fail());
            }
            Ok(Value::Secret(Some(Secret::new(s))))
        }
        Kind::OptPath => Ok(Value::Path((!s.is_empty()).then(|| PathBuf::from(s)))),
        Kind::Path => {
            if s.is_empty() {
                return Err(fail());
            }
            Ok(Value::Path(Some(PathBuf::from(s))))
        }
        Kind::Url { max_chars } => {
            let scheme_ok = s.starts_with("http://") || s.starts_with("https://");
            let host_ok = s.split("://").nth(1).is_some_and(|rest| !rest.is_empty());
            if !scheme_ok
                || !host_ok
                || s.chars().any(char::is_whitespace)
                || s.chars().count() > max_chars
            {
                return Err(fail());
            }
            Ok(Value::Text(s.trim_end_matches('/').to_string()))
        }
        Kind::List { max_items } => {
            let items: Vec<String> = s.split(',').map(|i| i.trim().to_string()).collect();
            if items.is_empty()
                || items.len() > max_items
                || items
                    .iter()
                    .any(|i| i.is_empty() || i.chars().count() > 128)
            {
                return Err(fail());
            }
            Ok(Value::List(items))
        }
        Kind::Bool => match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Value::Num(1)),
            "false" | "0" | "no" | "off" => Ok(Value::Num(0)),
            _ => Err(fail()),
        },
        Kind::Choice { choices } => {
            let lower = s.to_ascii_lowercase();
            if !choices.contains(&lower.as_str()) {
                return Err(fail());
            }
            Ok(Value::Text(lower))
        }
        Kind::Names { known, max_items } => {
            if s.is_empty() {
                return Ok(Value::List(Vec::new()));
            }
            let items: Vec<String> = s
                .split(',')
                .map(|i| i.trim().to_ascii_lowercase())
                .filter(|i| !i.is_empty())
                .collect();
            if items.len() > max_items {
                return Err(fail());
            }
            let unknown: Vec<&str> = items
                .iter()
                .map(String::as_str)
                .filter(|i| !known.contains(i))
                .collect();
            if !unknown.is_empty() {
                let shown: Vec<String> = unknown
                    .iter()
                    .map(|u| format!("{:?}", u.chars().take(64).collect::<String>()))
                    .collect();
                return Err(format!(
                    "unknown tool name(s) {}; {}",
                    shown.join(", "),
                    fail()
                ));
            }
            Ok(Value::List(items))
        }
    }
}

/// Plain decimal digits only (no sign, no `_`, no exponent). None on overflow.
fn parse_plain_int(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Decimal seconds (`180`, `0.5`) to milliseconds, rounded half up, using exact
/// integer arithmetic (no float surprises; NaN/inf/negatives/exponents rejected by syntax).
fn parse_decimal_secs_ms(s: &str) -> Option<u64> {
    let (whole, frac) = match s.split_once('.') {
        Some((w, f)) => (w, f),
        None => (s, ""),
    };
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(frac) || s.ends_with('.') {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    let frac = frac.as_bytes();
    let mut millis: u64 = 0;
    for i in 0..3 {
        let digit = frac.get(i).map_or(0, |b| u64::from(b - b'0'));
        millis = millis * 10 + digit;
    }
    if frac.get(3).is_some_and(|b| *b >= b'5') {
        millis += 1;
    }
    whole.checked_mul(1000)?.checked_add(millis)
}

/// Milliseconds as decimal seconds without trailing zeros: 30000 -> "30", 500 -> "0.5".
fn fmt_secs(ms: u64) -> String {
    let (whole, frac) = (ms / 1000, ms % 1000);
    if frac == 0 {
        whole.to_string()
    } else {
        let f = format!("{frac:03}");
        format!("{whole}.{}", f.trim_end_matches('0'))
    }
}

/// How a raw input value may appear in an error: quoted, or redacted for secrets.
fn show_raw(def: &KeyDef, raw: &str) -> String {
    if def.kind.is_secret() {
        format!("<redacted, {} chars>", raw.chars().count())
    } else {
        format!("{raw:?}")
    }
}

/// How an effective value appears in `render` / `entries`.
fn show_value(kind: Kind, value: &Value) -> String {
    match (kind, value) {
        (Kind::Secs { .. }, Value::Num(ms)) => fmt_secs(*ms),
        (Kind::Bool, Value::Num(n)) => (*n != 0).to_string(),
        (_, Value::List(items)) if items.is_empty() => "<none>".to_string(),
        (_, Value::List(items)) => items.join(","),
        (_, Value::Num(n)) => n.to_string(),
        (_, Value::Text(s)) => s.clone(),
        (_, Value::Path(None)) => "<none>".to_string(),
        (_, Value::Path(Some(p))) => p.display().to_string(),
        (_, Value::Secret(None)) => "<unset>".to_string(),
        (_, Value::Secret(Some(s))) => format!("<set, {} chars>", s.char_len()),
    }
}

// ---------------------------------------------------------------------------
// Merging
// ---------------------------------------------------------------------------

/// The merged values, key -> (value, source), before they become a `Config`.
struct Values {
    map: BTreeMap<&'static str, (Value, Source)>,
}

impl Values {
    /// Every key at its default. A default that fails to parse is a bug caught by
    /// the `table_defaults_are_valid` test; here it is skipped so this never panics.
    fn defaults() -> Values {
        let map = KEYS
            .iter()
            .filter_map(|d| {
                parse_value(d.kind, d.default)
                    .ok()
                    .map(|v| (d.name, (v, Source::Default)))
            })
            .collect();
        Values { map }
    }

    /// Validates `raw` for `def` and makes it the effective value.
    fn set(&mut self, def: &'static KeyDef, raw: &str, source: Source) -> Result<(), ConfigError> {
        match parse_value(def.kind, raw) {
            Ok(v) => {
                self.map.insert(def.name, (v, source));
                Ok(())
            }
            Err(reason) => Err(ConfigError::invalid(def, raw, source, reason)),
        }
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).map(|(v, _)| v)
    }

    fn num<T: TryFrom<u64> + Default>(&self, key: &str) -> T {
        match self.get(key) {
            Some(Value::Num(n)) => T::try_from(*n).unwrap_or_default(),
            _ => T::default(),
        }
    }

    fn text(&self, key: &str) -> String {
        match self.get(key) {
            Some(Value::Text(s)) => s.clone(),
            _ => String::new(),
        }
    }

    fn path(&self, key: &str) -> Option<PathBuf> {
        match self.get(key) {
            Some(Value::Path(p)) => p.clone(),
            _ => None,
        }
    }

    fn list(&self, key: &str) -> Vec<String> {
        match self.get(key) {
            Some(Value::List(items)) => items.clone(),
            _ => Vec::new(),
        }
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some(Value::Num(n)) if *n != 0)
    }

    fn secret(&self, key: &str) -> Option<Secret> {
        match self.get(key) {
            Some(Value::Secret(s)) => s.clone(),
            _ => None,
        }
    }
}

/// Reads the TOML config file into `values`.
fn apply_file(
    values: &mut Values,
    path: &Path,
    required: bool,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let source = Source::File(path.to_path_buf());
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(()),
        Err(e) => return Err(ConfigError::file("EXAI_CONFIG", source, e.to_string())),
    };
    // Use only the message and position: toml's full Display quotes the source line,
    // which could contain the token.
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        let at = e
            .span()
            .map(|span| {
                let (line, col) = line_col(&text, span.start);
                format!(" at line {line}, column {col}")
            })
            .unwrap_or_default();
        ConfigError::file(
            "EXAI_CONFIG",
            source.clone(),
            format!("TOML syntax error{at}: {}", e.message().trim()),
        )
    })?;
    let mut seen: BTreeMap<&'static str, &str> = BTreeMap::new();
    for (name, value) in &table {
        let raw = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                let found = match other {
                    toml::Value::Table(_) => "a table",
                    toml::Value::Array(_) => "an array",
                    _ => "a datetime",
                };
                return Err(ErrorDetail {
                    kind: ErrorKind::Invalid,
                    key: name.clone(),
                    value: None,
                    source,
                    reason: format!(
                        "the config file is a flat table of KEY = value; expected a string, number or boolean, found {found}"
                    ),
                    related: Vec::new(),
                }
                .into());
            }
        };
        let Some(def) = find_key_loose(name) else {
            warnings.push(format!(
                "unknown key {name} in file {} (ignored)",
                path.display()
            ));
            continue;
        };
        if !def.file_ok {
            warnings.push(format!(
                "{name} in file {} is ignored: it is only read from the environment or flags",
                path.display()
            ));
            continue;
        }
        if let Some(first) = seen.insert(def.name, name) {
            return Err(ConfigError::invalid(
                def,
                &raw,
                source,
                format!("given twice in the file (as {first} and {name})"),
            ));
        }
        values.set(def, &raw, source.clone())?;
    }
    Ok(())
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Reads the dotenv file into `values` without touching the process environment.
fn apply_dotenv(
    values: &mut Values,
    path: &Path,
    required: bool,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let source = Source::DotEnv(path.to_path_buf());
    let iter = match dotenvy::from_path_iter(path) {
        Ok(it) => it,
        Err(e) if e.not_found() && !required => return Ok(()),
        Err(e) => return Err(ConfigError::file("EXAI_ENV_FILE", source, e.to_string())),
    };
    for item in iter {
        let (name, raw) = match item {
            Ok(pair) => pair,
            Err(dotenvy::Error::LineParse(line, index)) => {
                return Err(ConfigError::file(
                    "EXAI_ENV_FILE",
                    source,
                    dotenv_syntax_reason(path, &line, index),
                ));
            }
            Err(e) => return Err(ConfigError::file("EXAI_ENV_FILE", source, e.to_string())),
        };
        match find_key(&name) {
            Some(def) => values.set(def, &raw, source.clone())?,
            None if name.starts_with("EXAI_") => warnings.push(format!(
                "unknown key {name} in .env {} (ignored)",
                path.display()
            )),
            None => {}
        }
    }
    Ok(())
}

/// Describes a dotenv syntax error by line number (found by re-reading the file)
/// and the key name, never by the line's content, which may hold a secret.
fn dotenv_syntax_reason(path: &Path, bad: &str, index: usize) -> String {
    let first = bad.lines().next().unwrap_or("").trim_end();
    let line_no = std::fs::read_to_string(path).ok().and_then(|text| {
        text.lines()
            .position(|l| l.trim_end() == first)
            .map(|i| i + 1)
    });
    let key: String = first
        .trim_start()
        .trim_start_matches("export ")
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
        .collect();
    let mut out = String::from("syntax error");
    if let Some(n) = line_no {
        out.push_str(&format!(" at line {n}, column {}", index + 1));
    } else {
        out.push_str(&format!(" at column {}", index + 1));
    }
    if !key.is_empty() {
        out.push_str(&format!(" (key {key})"));
    }
    out
}

// ---------------------------------------------------------------------------
// Relations between keys
// ---------------------------------------------------------------------------

/// A rule across several keys, checked after all layers merge.
struct Relation {
    /// The keys involved, named in the error with their values and sources.
    keys: &'static [&'static str],
    /// Returns the reason when the rule is broken.
    check: fn(&Config) -> Option<String>,
}

/// All cross-key rules. Add more here.
static RELATIONS: &[Relation] = &[
    Relation {
        keys: &[
            "KIMI_TIMEOUT_SECS",
            "SIMPLE_TOOL_TIMEOUT_SECS",
            "WORKFLOW_TOOL_TIMEOUT_SECS",
        ],
        check: |c| {
            (c.kimi_timeout_ms > c.simple_tool_timeout_ms.max(c.workflow_tool_timeout_ms)).then(
                || {
                    "one provider attempt cannot be longer than the longest call deadline"
                        .to_string()
                },
            )
        },
    },
    Relation {
        keys: &[
            "GLM_TIMEOUT_SECS",
            "SIMPLE_TOOL_TIMEOUT_SECS",
            "WORKFLOW_TOOL_TIMEOUT_SECS",
        ],
        check: |c| {
            (c.glm_timeout_ms > c.simple_tool_timeout_ms.max(c.workflow_tool_timeout_ms)).then(
                || {
                    "one provider attempt cannot be longer than the longest call deadline"
                        .to_string()
                },
            )
        },
    },
    Relation {
        keys: &[
            "EXAI_RETRY_BACKOFF_BASE_SECS",
            "EXAI_RETRY_BACKOFF_MAX_SECS",
        ],
        check: |c| {
            (c.retry_backoff_base_ms > c.retry_backoff_max_ms)
                .then(|| "the first backoff pause must not exceed the longest".to_string())
        },
    },
    Relation {
        keys: &[
            "EXAI_WS_QUEUE_TIMEOUT_SECS",
            "SIMPLE_TOOL_TIMEOUT_SECS",
            "WORKFLOW_TOOL_TIMEOUT_SECS",
        ],
        check: |c| {
            let longest = c.simple_tool_timeout_ms.max(c.workflow_tool_timeout_ms);
            (c.queue_timeout_ms > longest).then(|| {
            "the queue timeout must not exceed the longer tool timeout (the tool timeout includes queueing)"
                .to_string()
        })
        },
    },
];

// ---------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------

impl Config {
    /// Every key at its default, all sources `Default`. Never fails.
    pub fn defaults() -> Config {
        Config::from_values(&Values::defaults())
    }

    /// Reads the layers in precedence order, validating every value at the layer
    /// that supplied it, then checks cross-key relations.
    pub fn load(layers: &Layers) -> Result<Loaded, ConfigError> {
        let mut values = Values::defaults();
        let mut warnings = Vec::new();
        if let Some(path) = &layers.file {
            apply_file(&mut values, path, layers.file_required, &mut warnings)?;
        }
        if let Some(path) = &layers.dotenv {
            apply_dotenv(&mut values, path, layers.dotenv_required, &mut warnings)?;
        }
        for (name, raw) in &layers.env {
            match find_key(name) {
                Some(def) => values.set(def, raw, Source::Env)?,
                None if name.starts_with("EXAI_") => {
                    warnings.push(format!("unknown key {name} in environment (ignored)"));
                }
                None => {}
            }
        }
        for (name, raw) in &layers.flags {
            match find_key_loose(name) {
                Some(def) => values.set(def, raw, Source::Flag)?,
                None => {
                    return Err(ErrorDetail {
                        kind: ErrorKind::Unknown,
                        key: name.clone(),
                        value: None,
                        source: Source::Flag,
                        reason: "not a configuration key; run `exaid config` to list them"
                            .to_string(),
                        related: Vec::new(),
                    }
                    .into());
                }
            }
        }
        let config = Config::from_values(&values);
        config.check_relations()?;
        for name in &config.disabled_tools {
            if ALWAYS_ON.contains(&name.as_str()) {
                warnings.push(format!(
                    "DISABLED_TOOLS names {name}, which is always on (ignored)"
                ));
            }
        }
        Ok(Loaded { config, warnings })
    }

    /// The one place that turns merged values into typed fields.
    fn from_values(v: &Values) -> Config {
        let shown = KEYS
            .iter()
            .filter_map(|d| {
                v.map
                    .get(d.name)
                    .map(|(val, src)| (d.name, (show_value(d.kind, val), src.clone())))
            })
            .collect();
        Config {
            ws_host: v.text("EXAI_WS_HOST"),
            ws_port: v.num("EXAI_WS_PORT"),
            ws_token: v.secret("EXAI_WS_TOKEN"),
            token_file: v.path("EXAI_TOKEN_FILE"),
            global_max_inflight: v.num("EXAI_WS_GLOBAL_MAX_INFLIGHT"),
            kimi_max_inflight: v.num("EXAI_WS_KIMI_MAX_INFLIGHT"),
            glm_max_inflight: v.num("EXAI_WS_GLM_MAX_INFLIGHT"),
            offline_max_inflight: v.num("EXAI_WS_OFFLINE_MAX_INFLIGHT"),
            session_max_inflight: v.num("EXAI_WS_SESSION_MAX_INFLIGHT"),
            queue_max_waiters: v.num("EXAI_WS_QUEUE_MAX"),
            queue_timeout_ms: v.num("EXAI_WS_QUEUE_TIMEOUT_SECS"),
            simple_tool_timeout_ms: v.num("SIMPLE_TOOL_TIMEOUT_SECS"),
            workflow_tool_timeout_ms: v.num("WORKFLOW_TOOL_TIMEOUT_SECS"),
            progress_interval_ms: v.num("EXAI_WS_PROGRESS_INTERVAL_SECS"),
            hello_timeout_ms: v.num("EXAI_WS_HELLO_TIMEOUT"),
            max_frame_bytes: v.num("EXAI_WS_MAX_BYTES"),
            offline_latency_ms: v.num("EXAI_OFFLINE_LATENCY_MS"),
            session_ttl_ms: v.num("EXAI_SESSION_TTL_SECS"),
            outbox_max_frames: v.num("EXAI_OUTBOX_MAX_FRAMES"),
            outbox_max_bytes: v.num("EXAI_OUTBOX_MAX_BYTES"),
            result_ttl_ms: v.num("EXAI_RESULT_TTL_SECS"),
            result_cache_max: v.num("EXAI_RESULT_CACHE_MAX"),
            retry_attempts_max: v.num("EXAI_RETRY_ATTEMPTS_MAX"),
            retry_backoff_base_ms: v.num("EXAI_RETRY_BACKOFF_BASE_SECS"),
            retry_backoff_max_ms: v.num("EXAI_RETRY_BACKOFF_MAX_SECS"),
            ping_interval_ms: v.num("EXAI_WS_PING_INTERVAL"),
            ping_timeout_ms: v.num("EXAI_WS_PING_TIMEOUT"),
            kimi_api_url: v.text("KIMI_API_URL"),
            kimi_api_key: v.secret("KIMI_API_KEY"),
            kimi_models: v.list("KIMI_MODELS"),
            kimi_timeout_ms: v.num("KIMI_TIMEOUT_SECS"),
            glm_api_url: v.text("GLM_API_URL"),
            glm_api_key: v.secret("GLM_API_KEY"),
            glm_models: v.list("GLM_MODELS"),
            glm_timeout_ms: v.num("GLM_TIMEOUT_SECS"),
            provider_streaming: v.flag("EXAI_PROVIDER_STREAMING"),
            http_port: v.num("EXAI_HTTP_PORT"),
            log_format: v.text("EXAI_LOG_FORMAT"),
            shutdown_grace_ms: v.num("EXAI_SHUTDOWN_GRACE_SECS"),
            max_connections_per_ip: v.num("EXAI_WS_MAX_CONNECTIONS_PER_IP"),
            session_rate_per_sec: v.num("EXAI_WS_SESSION_RATE"),
            session_burst: v.num("EXAI_WS_SESSION_BURST"),
            idle_timeout_ms: v.num("EXAI_WS_IDLE_TIMEOUT_SECS"),
            write_timeout_ms: v.num("EXAI_WS_WRITE_TIMEOUT_SECS"),
            json_depth_max: v.num("EXAI_WS_JSON_DEPTH_MAX"),
            request_id_bytes_max: v.num("EXAI_WS_REQUEST_ID_BYTES_MAX"),
            arg_string_chars_max: v.num("EXAI_ARG_STRING_CHARS_MAX"),
            max_connections: v.num("EXAI_WS_MAX_CONNECTIONS"),
            max_sessions: v.num("EXAI_WS_MAX_SESSIONS"),
            conversations_max: v.num("EXAI_CONVERSATIONS_MAX"),
            conversation_turns_max: v.num("EXAI_CONVERSATION_TURNS_MAX"),
            conversation_bytes_max: v.num("EXAI_CONVERSATION_BYTES_MAX"),
            conversation_ttl_ms: v.num("EXAI_CONVERSATION_TTL_SECS"),
            consensus_models_max: v.num("EXAI_CONSENSUS_MODELS_MAX"),
            tool_profile: Profile::from_name(&v.text("TOOL_PROFILE")).unwrap_or(Profile::Full),
            enabled_tools: v.list("ENABLED_TOOLS"),
            disabled_tools: v.list("DISABLED_TOOLS"),
            config_file: v.path("EXAI_CONFIG"),
            env_file: v
                .path("EXAI_ENV_FILE")
                .unwrap_or_else(|| PathBuf::from(".env")),
            shown,
        }
    }

    fn check_relations(&self) -> Result<(), ConfigError> {
        for rel in RELATIONS {
            let Some(reason) = (rel.check)(self) else {
                continue;
            };
            let mut involved = rel.keys.iter().map(|k| {
                let (val, src) = self
                    .shown
                    .get(k)
                    .cloned()
                    .unwrap_or_else(|| (String::new(), Source::Default));
                (k.to_string(), format!("{val:?}"), src)
            });
            let (key, value, source) = involved
                .next()
                .unwrap_or_else(|| (String::new(), String::new(), Source::Default));
            return Err(ErrorDetail {
                kind: ErrorKind::Relation,
                key,
                value: Some(value),
                source,
                reason,
                related: involved.collect(),
            }
            .into());
        }
        Ok(())
    }

    /// Human table for `exaid config`: one line per key, sorted by key,
    /// `KEY  VALUE  SOURCE` in aligned columns; secrets redacted.
    pub fn render(&self) -> String {
        let rows = self.entries();
        let kw = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
        let vw = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
        let mut out = String::new();
        for (k, v, s) in rows {
            out.push_str(&format!("{k:<kw$}  {v:<vw$}  {s}\n"));
        }
        out
    }

    /// Machine-readable form: (key, display value, source display) in key order,
    /// secrets redacted as in `render`.
    pub fn entries(&self) -> Vec<(&'static str, String, String)> {
        self.shown
            .iter()
            .map(|(k, (v, s))| (*k, v.clone(), s.to_string()))
            .collect()
    }

    /// The source of one key (for start-up logs).
    pub fn source_of(&self, key: &str) -> Option<&Source> {
        self.shown.get(key).map(|(_, s)| s)
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const TOKEN: &str = "s3cr3t-T0ken-value-XYZZY";

    fn write(dir: &tempfile::TempDir, name: &str, body: &str) -> PathBuf {
        let path = dir.path().join(name);
        let mut f = std::fs::File::create(&path).expect("create temp file");
        f.write_all(body.as_bytes()).expect("write temp file");
        path
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn flags(items: &[(&str, &str)]) -> Layers {
        Layers {
            flags: pairs(items),
            ..Layers::default()
        }
    }

    fn load_err(layers: &Layers) -> ConfigError {
        match Config::load(layers) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e,
        }
    }

    #[test]
    fn table_defaults_are_valid_and_unique() {
        for (i, d) in KEYS.iter().enumerate() {
            assert!(
                parse_value(d.kind, d.default).is_ok(),
                "default of {}",
                d.name
            );
            assert!(!d.doc.is_empty(), "doc of {}", d.name);
            assert_eq!(d.name, d.name.to_ascii_uppercase());
            assert!(KEYS[..i].iter().all(|o| o.name != d.name), "dup {}", d.name);
        }
        assert_eq!(Config::defaults().entries().len(), KEYS.len());
    }

    #[test]
    fn defaults_have_documented_values() {
        let c = Config::defaults();
        assert_eq!(c.ws_host, "127.0.0.1");
        assert_eq!(c.ws_port, 8079);
        assert!(c.ws_token.is_none());
        assert!(c.token_file.is_none());
        assert_eq!(
            (
                c.global_max_inflight,
                c.kimi_max_inflight,
                c.glm_max_inflight,
                c.offline_max_inflight,
                c.session_max_inflight
            ),
            (24, 6, 4, 24, 8)
        );
        assert_eq!(c.queue_max_waiters, 256);
        assert_eq!(c.queue_timeout_ms, 30_000);
        assert_eq!(c.simple_tool_timeout_ms, 60_000);
        assert_eq!(c.workflow_tool_timeout_ms, 180_000);
        assert_eq!(c.progress_interval_ms, 8_000);
        assert_eq!(c.hello_timeout_ms, 15_000);
        assert_eq!(c.max_frame_bytes, 33_554_432);
        assert_eq!(c.offline_latency_ms, 0);
        assert_eq!(c.session_ttl_ms, 300_000);
        assert_eq!(c.outbox_max_frames, 4096);
        assert_eq!(c.outbox_max_bytes, 16_777_216);
        assert_eq!(c.result_ttl_ms, 300_000);
        assert_eq!(c.max_connections, 1000);
        assert_eq!(c.max_sessions, 10_000);
        assert_eq!(
            (
                c.conversations_max,
                c.conversation_turns_max,
                c.conversation_bytes_max,
                c.conversation_ttl_ms,
                c.consensus_models_max
            ),
            (256, 50, 1_048_576, 10_800_000, 5)
        );
        assert_eq!(c.tool_profile, Profile::Full);
        assert!(c.enabled_tools.is_empty() && c.disabled_tools.is_empty());
        assert_eq!(c.config_file, None);
        assert_eq!(c.env_file, PathBuf::from(".env"));
        assert!(c.entries().iter().all(|(_, _, s)| s == "default"));
    }

    #[test]
    fn defaults_equal_empty_load() {
        let loaded = Config::load(&Layers::default()).expect("empty load");
        assert!(loaded.warnings.is_empty());
        assert_eq!(loaded.config.entries(), Config::defaults().entries());
    }

    #[test]
    fn precedence_across_all_layers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write(&dir, "exaid.toml", "EXAI_WS_PORT = 1001\n");
        let dotenv = write(&dir, ".env", "EXAI_WS_PORT=1002\n");
        let mut layers = Layers::default();
        let check = |layers: &Layers, port: u16, src: Source| {
            let c = Config::load(layers).expect("load").config;
            assert_eq!(c.ws_port, port);
            assert_eq!(c.source_of("EXAI_WS_PORT"), Some(&src));
        };
        check(&layers, 8079, Source::Default);
        layers.file = Some(file.clone());
        check(&layers, 1001, Source::File(file.clone()));
        layers.dotenv = Some(dotenv.clone());
        check(&layers, 1002, Source::DotEnv(dotenv.clone()));
        layers.env = pairs(&[("EXAI_WS_PORT", "1003")]);
        check(&layers, 1003, Source::Env);
        layers.flags = pairs(&[("EXAI_WS_PORT", "1004")]);
        check(&layers, 1004, Source::Flag);
        // Other keys keep their defaults and say so.
        let c = Config::load(&layers).expect("load").config;
        assert_eq!(c.source_of("EXAI_WS_HOST"), Some(&Source::Default));
        assert_eq!(c.source_of("NOPE"), None);
    }

    #[test]
    fn bad_value_in_each_layer_names_key_value_and_source() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write(&dir, "bad.toml", "EXAI_WS_PORT = \"abc\"\n");
        let dotenv = write(&dir, "bad.env", "EXAI_WS_PORT=abc\n");
        let cases = [
            (
                Layers {
                    file: Some(file.clone()),
                    ..Layers::default()
                },
                format!("file {}", file.display()),
            ),
            (
                Layers {
                    dotenv: Some(dotenv.clone()),
                    ..Layers::default()
                },
                format!("dotenv file {}", dotenv.display()),
            ),
            (
                Layers {
                    env: pairs(&[("EXAI_WS_PORT", "abc")]),
                    ..Layers::default()
                },
                "environment".to_string(),
            ),
            (flags(&[("EXAI_WS_PORT", "abc")]), "flag".to_string()),
        ];
        for (layers, src) in cases {
            let e = load_err(&layers);
            assert_eq!(e.key(), "EXAI_WS_PORT");
            assert_eq!(
                e.to_string(),
                format!(
                    "invalid EXAI_WS_PORT = \"abc\" (from {src}): expected an integer from 0 to 65535"
                )
            );
        }
        // A bad lower layer is an error even when a higher layer overrides it.
        let e = load_err(&Layers {
            file: Some(file),
            flags: pairs(&[("EXAI_WS_PORT", "9000")]),
            ..Layers::default()
        });
        assert!(matches!(e.source(), Source::File(_)));
    }

    #[test]
    fn integer_rules() {
        for bad in [
            "",
            " ",
            "-1",
            "+5",
            "1_000",
            "65536",
            "1e3",
            "0x10",
            "99999999999999999999999",
        ] {
            let e = load_err(&flags(&[("EXAI_WS_PORT", bad)]));
            assert!(e.to_string().contains("from 0 to 65535"), "{bad}: {e}");
        }
        let c = Config::load(&flags(&[
            ("EXAI_WS_PORT", " 0 "),
            ("EXAI_WS_QUEUE_MAX", "0"),
        ]))
        .expect("load")
        .config;
        assert_eq!((c.ws_port, c.queue_max_waiters), (0, 0));
        let e = load_err(&flags(&[("EXAI_WS_GLM_MAX_INFLIGHT", "0")]));
        assert!(
            e.to_string()
                .contains("expected an integer from 1 to 10000"),
            "{e}"
        );
        let e = load_err(&flags(&[("EXAI_WS_MAX_BYTES", "1023")]));
        assert!(
            e.to_string()
                .contains("expected an integer (bytes) from 1024 to 1073741824"),
            "{e}"
        );
    }

    #[test]
    fn decimal_seconds() {
        let c = Config::load(&flags(&[
            ("EXAI_WS_QUEUE_TIMEOUT_SECS", "0.5"),
            ("SIMPLE_TOOL_TIMEOUT_SECS", "0.0005"),
            ("WORKFLOW_TOOL_TIMEOUT_SECS", "180"),
            ("EXAI_WS_PROGRESS_INTERVAL_SECS", "2.25"),
            ("EXAI_WS_HELLO_TIMEOUT", "1.0004"),
        ]))
        .expect("load")
        .config;
        assert_eq!(c.queue_timeout_ms, 500);
        assert_eq!(c.simple_tool_timeout_ms, 1);
        assert_eq!(c.workflow_tool_timeout_ms, 180_000);
        assert_eq!(c.progress_interval_ms, 2_250);
        assert_eq!(c.hello_timeout_ms, 1_000);
        let shown: BTreeMap<_, _> = c.entries().into_iter().map(|(k, v, _)| (k, v)).collect();
        assert_eq!(shown["EXAI_WS_QUEUE_TIMEOUT_SECS"], "0.5");
        assert_eq!(shown["EXAI_WS_PROGRESS_INTERVAL_SECS"], "2.25");

        for bad in [
            "0", "0.0004", "-1", "NaN", "inf", "1e3", "", ".5", "5.", "1.2.3", "3600.001",
        ] {
            let e = load_err(&flags(&[("EXAI_WS_QUEUE_TIMEOUT_SECS", bad)]));
            assert!(
                e.to_string()
                    .ends_with("expected seconds (decimal) from 0.001 to 3600"),
                "{bad}: {e}"
            );
        }
        // TOML floats go through the same parser.
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write(&dir, "f.toml", "EXAI_WS_QUEUE_TIMEOUT_SECS = 0.25\n");
        let c = Config::load(&Layers {
            file: Some(file),
            ..Layers::default()
        })
        .expect("load")
        .config;
        assert_eq!(c.queue_timeout_ms, 250);
    }

    #[test]
    fn queue_timeout_relation() {
        let e = load_err(&Layers {
            env: pairs(&[("EXAI_WS_QUEUE_TIMEOUT_SECS", "200")]),
            ..Layers::default()
        });
        let msg = e.to_string();
        assert_eq!(e.key(), "EXAI_WS_QUEUE_TIMEOUT_SECS");
        assert!(msg.starts_with("inconsistent settings: "), "{msg}");
        assert!(
            msg.contains("EXAI_WS_QUEUE_TIMEOUT_SECS = \"200\" (from environment)"),
            "{msg}"
        );
        assert!(
            msg.contains("SIMPLE_TOOL_TIMEOUT_SECS = \"60\" (from default)"),
            "{msg}"
        );
        assert!(
            msg.contains("WORKFLOW_TOOL_TIMEOUT_SECS = \"180\" (from default)"),
            "{msg}"
        );
        // Fine once the longer tool timeout covers it; simple > workflow is allowed.
        let c = Config::load(&flags(&[
            ("EXAI_WS_QUEUE_TIMEOUT_SECS", "200"),
            ("SIMPLE_TOOL_TIMEOUT_SECS", "300"),
        ]))
        .expect("load")
        .config;
        assert_eq!(c.queue_timeout_ms, 200_000);
    }

    #[test]
    fn unknown_keys() {
        let loaded = Config::load(&Layers {
            env: pairs(&[("EXAI_FOO", "1"), ("PATH", "/bin"), ("HOME", "/root")]),
            ..Layers::default()
        })
        .expect("load");
        assert_eq!(
            loaded.warnings,
            vec!["unknown key EXAI_FOO in environment (ignored)".to_string()]
        );

        let e = load_err(&flags(&[("EXAI_WS_PROT", "9000")]));
        assert_eq!(e.key(), "EXAI_WS_PROT");
        assert!(
            e.to_string()
                .starts_with("unknown key EXAI_WS_PROT (from flag)"),
            "{e}"
        );
        assert!(!e.to_string().contains("9000"));

        let dir = tempfile::tempdir().expect("tempdir");
        let file = write(
            &dir,
            "c.toml",
            "exai_ws_port = 9001\nmystery = 3\nEXAI_CONFIG = \"/x.toml\"\n",
        );
        let dotenv = write(&dir, "e.env", "EXAI_BAR=1\nOPENAI_API_KEY=zzz\n");
        let loaded = Config::load(&Layers {
            file: Some(file.clone()),
            dotenv: Some(dotenv.clone()),
            ..Layers::default()
        })
        .expect("load");
        assert_eq!(loaded.config.ws_port, 9001);
        assert_eq!(loaded.config.config_file, None);
        let w = loaded.warnings.join("\n");
        assert!(
            w.contains(&format!("unknown key mystery in file {}", file.display())),
            "{w}"
        );
        assert!(w.contains("EXAI_CONFIG in file"), "{w}");
        assert!(
            w.contains(&format!(
                "unknown key EXAI_BAR in .env {}",
                dotenv.display()
            )),
            "{w}"
        );
        assert!(!w.contains("OPENAI"), "{w}");
    }

    #[test]
    fn duplicate_file_key_forms_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write(&dir, "d.toml", "EXAI_WS_PORT = 1\nexai_ws_port = 2\n");
        let e = load_err(&Layers {
            file: Some(file),
            ..Layers::default()
        });
        assert!(e.to_string().contains("given twice"), "{e}");
    }

    #[test]
    fn locator_keys_are_shown() {
        let c = Config::load(&Layers {
            env: pairs(&[("EXAI_CONFIG", "/etc/exaid.toml")]),
            flags: pairs(&[("EXAI_ENV_FILE", "/tmp/x.env")]),
            ..Layers::default()
        })
        .expect("load")
        .config;
        assert_eq!(c.config_file, Some(PathBuf::from("/etc/exaid.toml")));
        assert_eq!(c.env_file, PathBuf::from("/tmp/x.env"));
        let d = Config::defaults().render();
        assert!(
            d.lines()
                .any(|l| l.starts_with("EXAI_CONFIG ") && l.contains("<none>"))
        );
        assert!(
            d.lines()
                .any(|l| l.starts_with("EXAI_ENV_FILE ") && l.contains(".env"))
        );
    }

    #[test]
    fn secret_never_leaks() {
        let c = Config::load(&flags(&[("EXAI_WS_TOKEN", TOKEN)]))
            .expect("load")
            .config;
        assert_eq!(c.ws_token.as_ref().map(Secret::expose), Some(TOKEN));
        let render = c.render();
        assert!(!render.contains(TOKEN));
        assert!(render.contains(&format!("<set, {} chars>", TOKEN.len())));
        assert!(!format!("{c:?}").contains(TOKEN));
        assert!(format!("{c:?}").contains("Secret(<redacted>)"));
        assert!(!format!("{:?}", flags(&[("EXAI_WS_TOKEN", TOKEN)])).contains(TOKEN));
        assert!(Config::defaults().render().contains("<unset>"));
        // Empty means unset.
        let c = Config::load(&flags(&[("EXAI_WS_TOKEN", "  ")]))
            .expect("load")
            .config;
        assert!(c.ws_token.is_none());

        // Invalid tokens: error and its Debug are redacted.
        for bad in ["short-token", "has whitespace inside the token"] {
            let e = load_err(&flags(&[("EXAI_WS_TOKEN", bad)]));
            let all = format!("{e} {e:?}");
            assert!(!all.contains(bad), "{all}");
            assert!(
                all.contains(&format!("<redacted, {} chars>", bad.len())),
                "{all}"
            );
        }

        // Syntax errors in files do not quote the line holding the secret.
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write(
            &dir,
            "s.toml",
            &format!("EXAI_WS_TOKEN = \"{TOKEN}\nX = 1\n"),
        );
        let e = load_err(&Layers {
            file: Some(file),
            ..Layers::default()
        });
        assert!(!format!("{e} {e:?}").contains(TOKEN), "{e}");
        assert!(e.to_string().contains("line 1"), "{e}");
        let dotenv = write(&dir, "s.env", &format!("A=1\nEXAI_WS_TOKEN='{TOKEN}\n"));
        let e = load_err(&Layers {
            dotenv: Some(dotenv.clone()),
            ..Layers::default()
        });
        let all = format!("{e} {e:?}");
        assert!(!all.contains(TOKEN), "{all}");
        assert!(
            all.contains(&format!("dotenv file {}", dotenv.display())),
            "{all}"
        );
    }

    #[test]
    fn dotenv_syntax_error_names_file_and_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dotenv = write(&dir, "bad.env", "EXAI_WS_PORT=9000\nEXAI_WS_HOST=\"oops\n");
        let e = load_err(&Layers {
            dotenv: Some(dotenv.clone()),
            ..Layers::default()
        });
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("dotenv file {}", dotenv.display())),
            "{msg}"
        );
        assert!(msg.contains("line 2"), "{msg}");
        assert!(msg.contains("EXAI_WS_HOST"), "{msg}");
    }

    #[test]
    fn nested_toml_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (body, found) in [
            ("[EXAI_WS_PORT]\nx = 1\n", "a table"),
            ("[server]\nport = 1\n", "a table"),
            ("EXAI_WS_HOST = [\"a\"]\n", "an array"),
        ] {
            let file = write(&dir, "n.toml", body);
            let e = load_err(&Layers {
                file: Some(file.clone()),
                ..Layers::default()
            });
            let msg = e.to_string();
            assert!(msg.contains(&format!("file {}", file.display())), "{msg}");
            assert!(msg.contains(found), "{msg}");
            assert!(msg.starts_with("invalid "), "{msg}");
        }
    }

    #[test]
    fn missing_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope.toml");
        let missing_env = dir.path().join("nope.env");
        let loaded = Config::load(&Layers {
            file: Some(missing.clone()),
            dotenv: Some(missing_env.clone()),
            ..Layers::default()
        })
        .expect("optional files are skipped");
        assert!(loaded.warnings.is_empty());

        let e = load_err(&Layers {
            file: Some(missing.clone()),
            file_required: true,
            ..Layers::default()
        });
        assert_eq!(e.key(), "EXAI_CONFIG");
        assert!(
            e.to_string()
                .contains(&format!("file {}", missing.display())),
            "{e}"
        );

        let e = load_err(&Layers {
            dotenv: Some(missing_env.clone()),
            dotenv_required: true,
            ..Layers::default()
        });
        assert_eq!(e.key(), "EXAI_ENV_FILE");
        assert!(
            e.to_string()
                .contains(&format!("dotenv file {}", missing_env.display())),
            "{e}"
        );
    }

    #[test]
    fn host_rules() {
        for bad in ["", "a b", &"h".repeat(254)] {
            let e = load_err(&flags(&[("EXAI_WS_HOST", bad)]));
            assert_eq!(e.key(), "EXAI_WS_HOST");
        }
        let c = Config::load(&flags(&[("exai_ws_host", " ::1 ")]))
            .expect("load")
            .config;
        assert_eq!(c.ws_host, "::1");
    }

    #[test]
    fn render_is_sorted_and_aligned() {
        let c = Config::load(&flags(&[("EXAI_WS_PORT", "9000")]))
            .expect("load")
            .config;
        let out = c.render();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), KEYS.len());
        let keys: Vec<&str> = lines
            .iter()
            .map(|l| l.split_whitespace().next().unwrap_or(""))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(keys, sorted);
        let kw = keys.iter().map(|k| k.len()).max().unwrap_or(0);
        for l in &lines {
            assert_eq!(&l[kw..kw + 2], "  ", "{l}");
            assert_ne!(&l[kw + 2..kw + 3], " ", "{l}");
            assert!(!l.ends_with(' '));
        }
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("EXAI_WS_PORT ") && l.ends_with("  flag"))
        );
        let e = c.entries();
        assert!(e.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn tool_profile_and_tool_lists() {
        let c = Config::load(&flags(&[
            ("TOOL_PROFILE", " Lean "),
            ("ENABLED_TOOLS", "chat, Debug"),
            ("DISABLED_TOOLS", ""),
        ]))
        .expect("load")
        .config;
        assert_eq!(c.tool_profile, Profile::Lean);
        assert_eq!(c.enabled_tools, ["chat", "debug"]);
        assert!(c.disabled_tools.is_empty());
        let shown: BTreeMap<_, _> = c.entries().into_iter().map(|(k, v, _)| (k, v)).collect();
        assert_eq!(shown["TOOL_PROFILE"], "lean");
        assert_eq!(shown["DISABLED_TOOLS"], "<none>");

        let e = load_err(&flags(&[("TOOL_PROFILE", "huge")]));
        assert_eq!(e.key(), "TOOL_PROFILE");
        assert!(
            e.to_string()
                .ends_with("expected one of lean, standard, full"),
            "{e}"
        );
        let e = load_err(&Layers {
            env: pairs(&[("DISABLED_TOOLS", "chat,teleport,Warp")]),
            ..Layers::default()
        });
        let msg = e.to_string();
        assert_eq!(e.key(), "DISABLED_TOOLS");
        assert!(
            msg.contains("(from environment): unknown tool name(s) \"teleport\", \"warp\""),
            "{msg}"
        );
        let loaded = Config::load(&flags(&[("DISABLED_TOOLS", "version")])).expect("load");
        assert_eq!(
            loaded.warnings,
            ["DISABLED_TOOLS names version, which is always on (ignored)"]
        );
    }

    #[test]
    fn no_panic_on_odd_input() {
        for raw in [
            "\u{0}",
            "٣",
            "9".repeat(400).as_str(),
            "1.99999999999999999999",
            "é.5",
        ] {
            for d in KEYS {
                let _ = Config::load(&flags(&[(d.name, raw)]));
            }
        }
        assert_eq!(parse_decimal_secs_ms("1.9999"), Some(2000));
        assert_eq!(parse_decimal_secs_ms("18446744073709551615"), None);
    }
}
