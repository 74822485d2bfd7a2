//! Every configuration key, declared once: name, doc, default, rule (range and unit), and
//! the typed field it fills. Adding a key is one declaration here (and, for a provider
//! setting every provider has, one field of [`super::ProviderSettings`]).
//!
//! Sections group the keys as the README's configuration table does; the key names are the
//! original EXAI names, so an existing `.env` works unchanged.

use std::path::PathBuf;

use super::declare::{KeyDef, declare_config};
use super::profile::{BUILTIN_TOOL_NAMES, PROFILE_NAMES, Profile};
use super::secret::Secret;
use super::value::{Kind, int, secs};

declare_config! {
    sections {
        /// Where the daemon listens, who may talk to it, how it logs and stops.
        server: ServerSettings {
            /// Address the WebSocket listener binds to; loopback by default so the daemon is not
            /// exposed to the network by accident.
            host: String = EXAI_WS_HOST, "127.0.0.1", Kind::Host { max_chars: 253 };

            /// Listener port; 0 asks the OS for a free port, which tests use to run in parallel.
            port: u16 = EXAI_WS_PORT, "8079", int(0, 65535);

            /// Shared secret every client must present, without whitespace. One shorter than 16
            /// characters (an old EXAI .env) is accepted with a loud warning on loopback and
            /// refused for any other bind, where it can be guessed. Empty means main generates
            /// one.
            token: Option<Secret> = EXAI_WS_TOKEN, "", Kind::Token { min_chars: 1 };

            /// Where the generated token is stored so local clients can read it; empty means the
            /// XDG default.
            token_file: Option<PathBuf> = EXAI_TOKEN_FILE, "", Kind::OptPath;

            /// Port of the operator's HTTP endpoints (/healthz, /readyz, /status, /metrics) on
            /// EXAI_WS_HOST; 0 turns them off.
            http_port: u16 = EXAI_HTTP_PORT, "8080", int(0, 65_535);

            /// Browser origins (scheme://host[:port]) the HTTP port and the WebSocket port serve
            /// besides loopback ones; a request or upgrade with any other Origin header gets 403
            /// before anything else, token or not (a web page, DNS rebinding). Requests without
            /// an Origin (not a browser) pass.
            http_allowed_origins: Vec<String> = EXAI_HTTP_ALLOWED_ORIGINS, "", Kind::Origins { max_items: 64 };

            /// Simultaneous connections to the HTTP port; bounds its file descriptors. When it is
            /// full, a newcomer closes the oldest connection with no request in progress (a
            /// silent socket can never keep `/healthz` or `/mcp` out), and is refused with 503
            /// only while every connection is in the middle of a request.
            http_connections_max: u32 = EXAI_HTTP_MAX_CONNECTIONS, "256", int(1, 100_000);

            /// How long a connection to the HTTP port may take to send a request's headers, a
            /// new one or a kept-alive one between requests; frees descriptors held by silent
            /// sockets.
            http_header_timeout_ms: u64 = EXAI_HTTP_HEADER_TIMEOUT_SECS, "5", secs(100, 600_000);

            /// A request in progress whose socket moves no byte either way for this long is
            /// closed (a body sent a byte a minute, a client that stopped reading its stream);
            /// longer than the longest tool deadline by default, since a `/mcp` call may be
            /// silent until its answer.
            http_idle_timeout_ms: u64 = EXAI_HTTP_IDLE_TIMEOUT_SECS, "600", secs(1000, 86_400_000);

            /// File descriptors kept out of both ports' connection limits, for the state file,
            /// provider sockets and logs; at start-up the two ports' limits must fit in the
            /// open-file limit minus this, or they are lowered to fit (with a warning), so a
            /// flood on one port can never make accept fail on the other.
            fd_reserve: u32 = EXAI_FD_RESERVE, "128", int(16, 100_000);

            /// Log lines for people (human) or for log collectors (json); filter with RUST_LOG.
            log_format: String = EXAI_LOG_FORMAT,
                "human",
                Kind::Choice { choices: &["human", "json"] };

            /// On SIGTERM or Ctrl-C, how long calls in flight may take to finish before they end
            /// with INTERRUPTED.
            shutdown_grace_ms: u64 = EXAI_SHUTDOWN_GRACE_SECS, "30", secs(0, 3_600_000);
        }

        /// What the daemon admits as a whole: calls in flight and queued, and the size of what a
        /// client may send.
        limits: LimitSettings {
            /// Provider calls in flight across all providers and sessions; bounds total spend and
            /// memory.
            global_inflight_max: u32 = EXAI_WS_GLOBAL_MAX_INFLIGHT, "24", int(1, 10_000);

            /// Callers allowed to wait per limit before being refused (0 = never queue); bounds
            /// memory under overload.
            queue_waiters_max: u32 = EXAI_WS_QUEUE_MAX, "256", int(0, 100_000);

            /// Longest wait for a concurrency slot; past it the caller gets a clear 'busy' instead
            /// of hanging.
            queue_timeout_ms: u64 = EXAI_WS_QUEUE_TIMEOUT_SECS, "30", secs(1, 3_600_000);

            /// Largest accepted WebSocket message; bounds memory one client can make the daemon
            /// allocate.
            frame_bytes_max: usize = EXAI_WS_MAX_BYTES,
                "33554432",
                Kind::Int { min: 1024, max: 1_073_741_824, unit: "bytes" };

            /// Bytes the session outboxes, result caches and conversations may hold together, on
            /// top of their own caps (which multiply by the number of sessions). Past it the
            /// oldest frames of disconnected sessions are shed (announced with a gap) and, if
            /// nothing can be shed, new calls get OVER_CAPACITY. 128 MiB: about a thousand
            /// typical results kept for absent clients, with the daemon's own few tens of MiB
            /// still well under 200 MiB resident. The 4 MiB floor is for tests; a budget below a
            /// few frames of EXAI_WS_MAX_BYTES refuses calls whenever one large result is kept.
            memory_bytes_max: usize = EXAI_MEMORY_MAX_BYTES,
                "134217728",
                Kind::Int { min: 4_194_304, max: 68_719_476_736, unit: "bytes" };

            /// Deepest JSON nesting accepted in a frame (serde_json itself stops at 128).
            json_depth_max: u32 = EXAI_WS_JSON_DEPTH_MAX, "64", int(2, 128);

            /// Longest request_id; ids are map keys echoed on every frame of a call.
            request_id_bytes_max: u32 = EXAI_WS_REQUEST_ID_BYTES_MAX, "256", int(1, 4096);

            /// Longest string anywhere in a call's arguments (a prompt, a file list entry), in
            /// characters.
            arg_string_chars_max: u32 = EXAI_ARG_STRING_CHARS_MAX, "100000", int(1, 10_000_000);
        }

        /// What one WebSocket connection may do: how many are open, and how long one may stay
        /// silent or unread.
        connections: ConnectionSettings {
            /// Simultaneous authenticated WebSocket connections; bounds file descriptors and
            /// per-connection memory.
            connections_max: u32 = EXAI_WS_MAX_CONNECTIONS, "1000", int(1, 1_000_000);

            /// Simultaneous WebSocket connections from one address; one noisy neighbour cannot take
            /// every slot.
            per_ip_max: u32 = EXAI_WS_MAX_CONNECTIONS_PER_IP, "10", int(1, 1_000_000);

            /// Simultaneous authenticated WebSocket connections from one loopback address; every
            /// local editor and agent shares it, so it is far above the remote limit.
            per_loopback_max: u32 = EXAI_WS_MAX_CONNECTIONS_LOOPBACK, "500", int(1, 1_000_000);

            /// Connections that have not said hello yet, counted apart from authenticated ones
            /// so they can never lock a client out: when the pool is full its oldest socket is
            /// closed to make room.
            pending_hellos_max: u32 = EXAI_WS_MAX_PENDING_HELLOS, "64", int(1, 100_000);

            /// How long a new connection may take to upgrade and authenticate; a real client
            /// says hello within milliseconds, so this is short, to free descriptors held by
            /// silent sockets.
            hello_timeout_ms: u64 = EXAI_WS_HELLO_TIMEOUT, "5", secs(10, 3_600_000);

            /// How often the daemon pings an idle client, so a dead peer is noticed.
            ping_interval_ms: u64 = EXAI_WS_PING_INTERVAL, "30", secs(1000, 3_600_000);

            /// How long a client may stay silent after a ping before its socket is closed (its
            /// session stays resumable).
            ping_timeout_ms: u64 = EXAI_WS_PING_TIMEOUT, "30", secs(1000, 3_600_000);

            /// A connection that sends no frame for this long is closed (4008); its session stays
            /// resumable.
            idle_timeout_ms: u64 = EXAI_WS_IDLE_TIMEOUT_SECS, "3600", secs(1000, 86_400_000);

            /// A client that does not read what the daemon sends for this long is disconnected
            /// (4007); its session stays resumable.
            write_timeout_ms: u64 = EXAI_WS_WRITE_TIMEOUT_SECS, "30", secs(100, 3_600_000);
        }

        /// What outlives a connection: sessions, their calls, outboxes and result caches, and the
        /// rate at which they may send.
        sessions: SessionSettings {
            /// Calls in flight for one client session, so one busy client cannot starve the others.
            inflight_max: u32 = EXAI_WS_SESSION_MAX_INFLIGHT, "8", int(1, 10_000);

            /// Sessions kept, live or awaiting resume; bounds memory held for absent clients.
            sessions_max: u32 = EXAI_WS_MAX_SESSIONS, "10000", int(1, 1_000_000);

            /// How long a disconnected session is kept so a reconnecting client can resume it.
            ttl_ms: u64 = EXAI_SESSION_TTL_SECS, "300", secs(1000, 86_400_000);

            /// Frames buffered per session while its client is away; bounds memory per session.
            outbox_frames_max: u32 = EXAI_OUTBOX_MAX_FRAMES, "4096", int(16, 1_000_000);

            /// Bytes buffered per session while its client is away; bounds memory per session.
            outbox_bytes_max: usize = EXAI_OUTBOX_MAX_BYTES,
                "16777216",
                Kind::Int { min: 4096, max: 1_073_741_824, unit: "bytes" };

            /// Bytes of SSE events `/mcp` keeps for clients that resume a dropped stream with
            /// Last-Event-ID, all streams together (each also within the outbox caps); the
            /// oldest streams are dropped first.
            mcp_events_bytes_max: usize = EXAI_MCP_EVENTS_BYTES_MAX,
                "67108864",
                Kind::Int { min: 65_536, max: 17_179_869_184, unit: "bytes" };

            /// How long a finished result is kept for a client that disconnected mid-call.
            result_ttl_ms: u64 = EXAI_RESULT_TTL_SECS, "300", secs(1000, 86_400_000);

            /// Finished results kept per session for repeated request ids; bounds the cache's
            /// memory.
            result_cache_max: u32 = EXAI_RESULT_CACHE_MAX, "256", int(0, 100_000);

            /// Frames per second one session may send, on average (token bucket); excess gets
            /// OVER_CAPACITY.
            rate_per_sec: u32 = EXAI_WS_SESSION_RATE, "500", int(1, 1_000_000);

            /// Frames one session may send at once above its rate; a client that keeps exceeding it
            /// is closed (1008).
            burst: u32 = EXAI_WS_SESSION_BURST, "1000", int(1, 1_000_000);
        }

        /// Which tools are served, and how one call runs: its deadline, its progress reports and
        /// streamed answers.
        tools: ToolSettings {
            /// The one deadline for a simple tool call, queueing included; name shared with the
            /// upstream MCP server.
            simple_timeout_ms: u64 = SIMPLE_TOOL_TIMEOUT_SECS, "60", secs(1, 86_400_000);

            /// The one deadline for a workflow tool call, queueing included; name shared with the
            /// upstream MCP server.
            workflow_timeout_ms: u64 = WORKFLOW_TOOL_TIMEOUT_SECS, "180", secs(1, 86_400_000);

            /// How often a long call sends progress, so clients with idle timeouts keep waiting.
            progress_interval_ms: u64 = EXAI_WS_PROGRESS_INTERVAL_SECS, "8", secs(10, 3_600_000);

            /// Stream provider answers (SSE) and forward the chunks as progress frames.
            streaming: bool = EXAI_PROVIDER_STREAMING, "true", Kind::Bool;

            /// Test only: `/mcp` also serves the MCP conformance suite's fixture tools
            /// (`test_simple_text`, ...), answered by the door itself outside every limit;
            /// `scripts/mcp-conformance.sh` turns it on. Never on in use.
            mcp_conformance_fixtures: bool = EXAI_MCP_CONFORMANCE_FIXTURES, "false", Kind::Bool;

            /// Which built-in tools are served: lean (everyday tools), standard (lean plus
            /// consensus, docgen, precommit, secaudit, tracer) or full (every tool); name shared
            /// with the original.
            profile: Profile = TOOL_PROFILE, "full", Kind::Choice { choices: PROFILE_NAMES };

            /// If set, exactly these tools are served (TOOL_PROFILE is ignored); version and
            /// listmodels are always on.
            enabled: Vec<String> = ENABLED_TOOLS,
                "",
                Kind::Names { known: BUILTIN_TOOL_NAMES, max_items: 64 };

            /// Tools removed from the profile or ENABLED_TOOLS; version and listmodels cannot be
            /// removed.
            disabled: Vec<String> = DISABLED_TOOLS,
                "",
                Kind::Names { known: BUILTIN_TOOL_NAMES, max_items: 64 };

            /// Whether the tools that talk to a model offer it the provider's web search when a
            /// call does not say (use_websearch): tool (each tool's own default, on for chat and
            /// analyze), true or false; only models whose facts say web search ever get it.
            websearch_default: String = EXAI_WEBSEARCH_DEFAULT,
                "tool",
                Kind::Choice { choices: &["tool", "true", "false"] };

            /// Tool rounds one provider call may take (a web search the model asks for, then
            /// the answer), all under the call's one permit and deadline; bounds one call's cost.
            tool_rounds_max: u32 = EXAI_TOOL_ROUNDS_MAX, "5", int(1, 20);

            /// Models one consensus call may consult (each consultation is admitted on its own);
            /// bounds one call's cost.
            consensus_models_max: u32 = EXAI_CONSENSUS_MODELS_MAX, "5", int(1, 32);
        }

        /// What `model: auto` means, and where an `auto` call goes when its provider cannot
        /// answer (a model the caller names is never replaced).
        routing: RoutingSettings {
            /// The model `auto` means for simple tools (chat); empty: the first configured
            /// provider's default model.
            fast_model: Vec<String> = EXAI_FAST_MODEL, "", Kind::Models { max_items: 1 };

            /// The model `auto` means for thinkdeep, consensus, secaudit and the final steps of
            /// workflow tools; empty: the first configured provider's default model.
            quality_model: Vec<String> = EXAI_QUALITY_MODEL, "", Kind::Models { max_items: 1 };

            /// Models an `auto` simple call moves to, in order, when its provider cannot answer;
            /// empty: the default model of every other configured provider.
            fallback_fast: Vec<String> = EXAI_FALLBACK_MODELS_FAST, "", Kind::Models { max_items: 16 };

            /// The same for quality calls.
            fallback_quality: Vec<String> = EXAI_FALLBACK_MODELS_QUALITY, "", Kind::Models { max_items: 16 };

            /// Moves to another model one `auto` call may make, all inside its one deadline;
            /// 0 turns failover off.
            fallback_attempts_max: u32 = EXAI_FALLBACK_ATTEMPTS_MAX, "2", int(0, 8);
        }

        /// Conversation memory (by `continuation_id`): how much is kept, and for how long.
        conversations: ConversationSettings {
            /// Conversations (continuation ids) kept at once; past it the least recently used is
            /// evicted, so memory stays bounded.
            conversations_max: u32 = EXAI_CONVERSATIONS_MAX, "256", int(1, 100_000);

            /// Turns kept per conversation; past it the oldest are dropped, and tools say so in
            /// their output.
            turns_max: u32 = EXAI_CONVERSATION_TURNS_MAX, "50", int(2, 10_000);

            /// Bytes kept per conversation; past it the oldest turns are dropped (announced),
            /// bounding memory and prompt size.
            bytes_max: usize = EXAI_CONVERSATION_BYTES_MAX,
                "1048576",
                Kind::Int { min: 4096, max: 1_073_741_824, unit: "bytes" };

            /// How long an untouched conversation is kept; a continuation_id older than this is
            /// refused with a clear error.
            ttl_ms: u64 = EXAI_CONVERSATION_TTL_SECS, "10800", secs(1000, 604_800_000);
        }

        /// What outlives the process: the state file, and how its writer is bounded.
        state: StateSettings {
            /// The SQLite file that keeps conversations across restarts; empty means the XDG
            /// default ($XDG_STATE_HOME/exaid/state.db), `:memory:` keeps nothing past the
            /// process.
            db: Option<PathBuf> = EXAI_STATE_DB, "", Kind::OptPath;

            /// Records waiting to be written at most; past it changes are dropped (counted,
            /// logged) and persistence is reported degraded.
            queue_max: u32 = EXAI_STATE_QUEUE_MAX, "65536", int(1, 10_000_000);

            /// Changes written in one commit (one transaction and one sync) at most.
            batch_max: u32 = EXAI_STATE_BATCH_MAX, "1024", int(1, 1_000_000);

            /// How long a result waits for a failing state file (its record is retried every
            /// second) before it is sent anyway, not kept: a failing disk delays results this
            /// long at most, and never stops them.
            hold_ms: u64 = EXAI_STATE_HOLD_SECS, "5", secs(0, 600_000);

            /// When a commit counts as written: normal (in the file before the commit returns,
            /// safe from the daemon dying any way it can; a power cut may take the last commits
            /// back) or full (synced to the disk: safe from a power cut too, one sync per group
            /// commit).
            sync: String = EXAI_STATE_SYNC,
                "normal",
                Kind::Choice { choices: &["normal", "full"] };
        }

        /// The files a call names (`files`, `relevant_files`): where they may be, how large and
        /// how many.
        file_access: FileAccessSettings {
            /// Folders the files a call names must lie under once links are followed,
            /// comma-separated absolute paths; empty means the user's home directory (HOME).
            roots: Vec<PathBuf> = EXAI_FILE_ROOTS, "", Kind::AbsPaths { max_items: 64 };

            /// Largest file embedded into a call; a larger one is skipped and named, never cut.
            file_bytes_max: u64 = EXAI_FILE_BYTES_MAX,
                "1048576",
                Kind::Int { min: 1, max: 1_073_741_824, unit: "bytes" };

            /// Files one call may embed, folders expanded; the rest are skipped and named.
            files_per_call_max: u32 = EXAI_FILES_PER_CALL_MAX, "64", int(1, 10_000);

            /// Share of the model's context window the embedded files of one call may fill, in
            /// percent (estimated at 4 bytes a token); the rest is left to the conversation,
            /// the prompt and the answer. A file that does not fit is skipped and named.
            context_share_percent: u32 = EXAI_FILE_CONTEXT_SHARE_PERCENT, "50", int(1, 90);

            /// Images one call may send (`images`: files under the roots or data: URLs); more
            /// is a VALIDATION_ERROR naming images.
            images_per_call_max: u32 = EXAI_IMAGES_PER_CALL_MAX, "8", int(1, 64);

            /// Largest image a call may send, decoded; a larger one is a VALIDATION_ERROR
            /// naming the entry (its base64 in the request is a third larger).
            image_bytes_max: u64 = EXAI_IMAGE_BYTES_MAX,
                "5242880",
                Kind::Int { min: 1024, max: 67_108_864, unit: "bytes" };
        }

        /// What exaid knows of each model (`provider::models`), corrected where the built-in
        /// table is wrong or does not know a model.
        models: ModelSettings {
            /// Corrections to the built-in model table, ';'-separated model:fact=value,...
            /// entries (facts: context in tokens, vision, web_search, thinking); a model the
            /// table does not know starts from the conservative default.
            facts: Vec<super::facts::FactsOverride> = EXAI_MODEL_FACTS,
                "",
                Kind::ModelFacts { max_items: 256 };
        }

        /// How a failed provider attempt is retried.
        retry: RetrySettings {
            /// Provider attempts per call, first included; bounds how long a failing provider is
            /// retried.
            attempts_max: u32 = EXAI_RETRY_ATTEMPTS_MAX, "4", int(1, 20);

            /// First backoff pause when the provider gave no retry-after; doubles per attempt, with
            /// jitter.
            backoff_base_ms: u64 = EXAI_RETRY_BACKOFF_BASE_SECS, "0.5", secs(1, 600_000);

            /// Longest backoff pause (a provider's own retry-after is honored as asked, within the
            /// deadline).
            backoff_max_ms: u64 = EXAI_RETRY_BACKOFF_MAX_SECS, "30", secs(1, 3_600_000);
        }

        /// The files the configuration was read from (main resolves them before loading; shown by
        /// `exaid config`).
        files: FileSettings {
            /// Path of the TOML config file; read by main from the environment or --config, never
            /// from the file itself.
            config_file: Option<PathBuf> = EXAI_CONFIG, "", Kind::OptPath, file_ok = false;

            /// Path of the dotenv file; read by main from the environment or flags, never from the
            /// config file.
            env_file: PathBuf = EXAI_ENV_FILE, ".env", Kind::Path, file_ok = false;
        }
    }

    /// The providers, one [`super::ProviderSettings`] each, in `listmodels` order.
    providers {
        Kimi {
            /// Calls in flight to Kimi; kept under the provider's rate limit so calls queue here
            /// instead of failing there.
            inflight_max = EXAI_WS_KIMI_MAX_INFLIGHT, "6", int(1, 10_000);

            /// Base URL of the Kimi (Moonshot) OpenAI-compatible API.
            api_url = KIMI_API_URL, "https://api.moonshot.ai/v1", Kind::Url { max_chars: 2048 };

            /// Kimi API key; the Kimi provider is active when it is set.
            api_key = KIMI_API_KEY, "", Kind::Token { min_chars: 8 };

            /// More Kimi keys (of other accounts), comma-separated; each key has its own limit
            /// (the inflight maximum), budgets and cooldown, and calls go to a key with
            /// capacity. Keys are named by index (provider:kimi#2), never shown.
            api_keys = KIMI_API_KEYS, "", Kind::Token { min_chars: 8 };

            /// Models served by Kimi; the first is what `auto` picks on Kimi.
            models = KIMI_MODELS,
                "kimi-k2-0905-preview,kimi-k2-turbo-preview,moonshot-v1-8k,moonshot-v1-32k,moonshot-v1-128k,\
                 moonshot-v1-8k-vision-preview,moonshot-v1-32k-vision-preview,moonshot-v1-128k-vision-preview",
                Kind::List { max_items: 64 };

            /// Longest single Kimi attempt; a call's deadline still bounds all attempts together.
            timeout_ms = KIMI_TIMEOUT_SECS, "120", secs(1000, 86_400_000);

            /// Requests a minute exaid sends Kimi at most, counted before Kimi sees them (set it to
            /// the account's limit, so a busy minute waits here instead of coming back as 429s);
            /// 0: no budget.
            rpm = EXAI_KIMI_RPM, "0", Kind::Int { min: 0, max: 1_000_000, unit: "requests a minute" };

            /// Tokens a minute exaid sends Kimi at most (each request estimated from its text and
            /// max_tokens, then corrected by the usage Kimi reports); 0: no budget.
            tpm = EXAI_KIMI_TPM, "0", Kind::Int { min: 0, max: 1_000_000_000_000, unit: "tokens a minute" };

            /// Tokens Kimi may use in one UTC day, over all its keys (reported usage, estimates
            /// while in flight); a call past it is refused, naming the budget and when it resets
            /// at midnight UTC, and an `auto` call moves to another provider; 0: no budget.
            tokens_per_day = EXAI_KIMI_TOKENS_PER_DAY, "0", Kind::Int { min: 0, max: 1_000_000_000_000_000, unit: "tokens a day" };
        }

        Glm {
            /// Calls in flight to GLM; kept under the provider's rate limit so calls queue here
            /// instead of failing there.
            inflight_max = EXAI_WS_GLM_MAX_INFLIGHT, "4", int(1, 10_000);

            /// Base URL of the GLM (Zhipu / Z.ai) OpenAI-compatible API.
            api_url = GLM_API_URL, "https://api.z.ai/api/paas/v4", Kind::Url { max_chars: 2048 };

            /// GLM API key; the GLM provider is active when it is set.
            api_key = GLM_API_KEY, "", Kind::Token { min_chars: 8 };

            /// More GLM keys (of other accounts), comma-separated; each key has its own limit
            /// (the inflight maximum), budgets and cooldown, and calls go to a key with
            /// capacity. Keys are named by index (provider:glm#2), never shown.
            api_keys = GLM_API_KEYS, "", Kind::Token { min_chars: 8 };

            /// Models served by GLM; the first is what `auto` picks on GLM.
            models = GLM_MODELS,
                "glm-4.6,glm-4.5,glm-4.5-air,glm-4.5-flash,glm-4.5v",
                Kind::List { max_items: 64 };

            /// Longest single GLM attempt; a call's deadline still bounds all attempts together.
            timeout_ms = GLM_TIMEOUT_SECS, "120", secs(1000, 86_400_000);

            /// Requests a minute exaid sends GLM at most, counted before GLM sees them (set it to
            /// the account's limit, so a busy minute waits here instead of coming back as 429s);
            /// 0: no budget.
            rpm = EXAI_GLM_RPM, "0", Kind::Int { min: 0, max: 1_000_000, unit: "requests a minute" };

            /// Tokens a minute exaid sends GLM at most (each request estimated from its text and
            /// max_tokens, then corrected by the usage GLM reports); 0: no budget.
            tpm = EXAI_GLM_TPM, "0", Kind::Int { min: 0, max: 1_000_000_000_000, unit: "tokens a minute" };

            /// Tokens GLM may use in one UTC day, over all its keys (reported usage, estimates
            /// while in flight); a call past it is refused, naming the budget and when it resets
            /// at midnight UTC, and an `auto` call moves to another provider; 0: no budget.
            tokens_per_day = EXAI_GLM_TOKENS_PER_DAY, "0", Kind::Int { min: 0, max: 1_000_000_000_000_000, unit: "tokens a day" };
        }

        Offline {
            /// Calls in flight to the offline (test) provider; lets tests exercise queueing without
            /// a network.
            inflight_max = EXAI_WS_OFFLINE_MAX_INFLIGHT, "24", int(1, 10_000);

            /// Artificial latency of the offline provider, for tests of timeouts and queueing.
            latency_ms = EXAI_OFFLINE_LATENCY_MS,
                "0",
                Kind::Int { min: 0, max: 3_600_000, unit: "milliseconds" };
        }
    }
}

/// Looks up a key by its exact canonical name.
pub(super) fn find_key(name: &str) -> Option<&'static KeyDef> {
    KEYS.iter().find(|d| d.name == name)
}

/// Looks up a key by canonical name or its all-lower-case form (config file, flags).
pub(super) fn find_key_loose(name: &str) -> Option<&'static KeyDef> {
    find_key(name).or_else(|| {
        if name == name.to_ascii_lowercase() {
            find_key(&name.to_ascii_uppercase())
        } else {
            None
        }
    })
}
