//! The production entry point: parse flags, load configuration, find or create the token,
//! and serve on real tokio; or, with `exaid mcp`, bridge an editor's MCP on stdio to the
//! daemon.
//!
//! This file and `src/rt/tokio.rs` are the production side of the runtime seam: the only
//! places that read the process environment, the real clock or OS signals.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

mod bench;

use exaid::auth::{self, TokenOrigin};
use exaid::config::{Config, Layers, key};
use exaid::lifecycle::Stage;
use exaid::mcp::bridge::{Bridge, BridgeConfig, TokenSource};
use exaid::mcp::handler::ExaidMcp;
use exaid::rt::Rt;
use exaid::rt::sqlite::{Opened, SqliteStore, SyncMode};
use exaid::rt::store::{MemoryStore, Store};
use exaid::rt::tokio::{TokioDialer, TokioListener, TokioRuntime, serve_http};
use tokio::signal::unix::{SignalKind, signal};

/// exaid: a daemon between AI coding clients and rate-limited LLM providers.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    command: Option<Command>,
    /// TOML config file (default: exaid.toml if it exists; also EXAI_CONFIG).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// dotenv file (default: .env if it exists; also EXAI_ENV_FILE).
    #[arg(long, global = true, value_name = "FILE")]
    env_file: Option<PathBuf>,
    /// Address to bind (EXAI_WS_HOST).
    #[arg(long, global = true)]
    host: Option<String>,
    /// Port to bind (EXAI_WS_PORT).
    #[arg(long, global = true)]
    port: Option<String>,
    /// Set any configuration key, e.g. --set SIMPLE_TOOL_TIMEOUT_SECS=30 (repeatable).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    set: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the EXAI WebSocket protocol (the default).
    Serve,
    /// Print every effective configuration value and where it came from.
    Config {
        /// Explain one key instead: what it bounds, its default, what it accepts, its unit,
        /// and its effective value with its source.
        #[arg(long, value_name = "KEY")]
        explain: Option<String>,
    },
    /// Serve MCP on stdio for an editor, forwarding every call to the running daemon
    /// (EXAI_WS_HOST, EXAI_WS_PORT, EXAI_WS_TOKEN or the token file).
    Mcp {
        /// No daemon running: run the daemon core inside this process instead (on a private
        /// loopback port with a random token, for this editor only).
        #[arg(long)]
        standalone: bool,
    },
    /// Benchmark the daemon end to end against a local mock provider (see BENCHMARKS.md).
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let loaded = match load_config(&cli) {
        Ok(loaded) => loaded,
        Err(message) => {
            eprintln!("exaid: configuration error: {message}");
            return ExitCode::from(2);
        }
    };
    for warning in &loaded.warnings {
        eprintln!("exaid: warning: {warning}");
    }
    match cli.command {
        Some(Command::Bench(args)) => bench::run(args),
        Some(Command::Config { explain: None }) => {
            print!("{}", loaded.config.render());
            ExitCode::SUCCESS
        }
        Some(Command::Config {
            explain: Some(name),
        }) => match loaded.config.explain(&name) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("exaid: {message}");
                ExitCode::from(2)
            }
        },
        Some(Command::Mcp { standalone }) => mcp(loaded.config, standalone),
        Some(Command::Serve) | None => serve(loaded.config),
    }
}

fn load_config(cli: &Cli) -> Result<exaid::config::Loaded, String> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let lookup = |key: &str| {
        env.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| PathBuf::from(v))
    };
    let (file, file_required) = match cli.config.clone().or_else(|| lookup(key::EXAI_CONFIG)) {
        Some(path) => (Some(path), true),
        None => (Some(PathBuf::from("exaid.toml")), false),
    };
    let (dotenv, dotenv_required) =
        match cli.env_file.clone().or_else(|| lookup(key::EXAI_ENV_FILE)) {
            Some(path) => (Some(path), true),
            None => (Some(PathBuf::from(".env")), false),
        };
    let mut flags = Vec::new();
    if let Some(host) = &cli.host {
        flags.push((key::EXAI_WS_HOST.to_string(), host.clone()));
    }
    if let Some(port) = &cli.port {
        flags.push((key::EXAI_WS_PORT.to_string(), port.clone()));
    }
    for pair in &cli.set {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(format!("--set {pair}: expected KEY=VALUE"));
        };
        flags.push((key.trim().to_string(), value.to_string()));
    }
    let layers = Layers {
        file,
        file_required,
        dotenv,
        dotenv_required,
        env,
        flags,
    };
    Config::load(&layers).map_err(|err| err.to_string())
}

fn serve(mut config: Config) -> ExitCode {
    init_tracing(&config.server.log_format);
    // Logged after the start-up line, which clients and the bench wait for first.
    let open_files = share_open_files(&mut config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("exaid: cannot start the tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let rt = Rt::new(Arc::new(TokioRuntime::new()));
        let (token, origin) = match resolve_token(&config, &rt) {
            Ok(found) => found,
            Err(message) => {
                eprintln!("exaid: {message}");
                return ExitCode::from(2);
            }
        };
        let addr = match (config.server.host.as_str(), config.server.port)
            .to_socket_addrs()
            .map(|mut a| a.next())
        {
            Ok(Some(addr)) => addr,
            Ok(None) | Err(_) => {
                eprintln!(
                    "exaid: {}={} does not resolve to an address",
                    key::EXAI_WS_HOST,
                    config.server.host
                );
                return ExitCode::from(2);
            }
        };
        // A generated token lives in a file only this user can read: good for local clients,
        // useless for remote ones. Listening beyond loopback takes a token set on purpose.
        if !addr.ip().is_loopback() && config.server.token.is_none() {
            eprintln!(
                "exaid: refusing to listen on {addr}, which is not a loopback address, without EXAI_WS_TOKEN: \
                 set a token of your own for remote clients, or bind 127.0.0.1"
            );
            return ExitCode::from(2);
        }
        if let Err(why) = check_token_length(&config, addr) {
            eprintln!("exaid: {why}");
            return ExitCode::from(2);
        }
        let listener = match TokioListener::bind(addr).await {
            Ok(listener) => listener,
            Err(err) => {
                eprintln!("exaid: cannot listen on {addr}: {err}");
                return ExitCode::FAILURE;
            }
        };
        let bound = exaid::rt::Listener::local_addr(&listener).unwrap_or(addr);
        log_startup(&config, bound, &origin);
        open_files();
        let grace = Duration::from_millis(config.server.shutdown_grace_ms);
        let http_port = config.server.http_port;
        let (store, store_trouble) = open_state(&config, &rt);
        let daemon = exaid::Daemon::with_store(config, token, rt, store);
        if let Some(why) = store_trouble {
            daemon.shared().durable.degraded_for_good(why);
        }
        log_providers(&daemon);
        if http_port != 0 {
            let http_addr = SocketAddr::new(bound.ip(), http_port);
            let shared = daemon.shared().clone();
            let closed = async move { shared.lifecycle.reached(Stage::Closing).await };
            let limits = exaid::operator::http::limits(&daemon.shared().config.server);
            match serve_http(http_addr, daemon.http_routes(), limits, closed).await {
                Ok(bound) => announce(&format!("exaid http on http://{bound} (/healthz /readyz /status /metrics /mcp)")),
                Err(err) => {
                    eprintln!("exaid: cannot serve {}={http_port} on {http_addr}: {err} (0 turns it off)", key::EXAI_HTTP_PORT);
                    return ExitCode::FAILURE;
                }
            }
        }
        let serve = daemon.serve(Box::new(listener));
        tokio::select! {
            biased;
            () = signalled() => {}
            result = serve => {
                if let Err(err) = result {
                    eprintln!("exaid: listener failed: {err}");
                    return ExitCode::FAILURE;
                }
            }
        }
        tracing::info!(grace_ms = grace.as_millis() as u64, "signal received: shutting down gracefully (a second signal exits at once)");
        tokio::select! {
            biased;
            () = signalled() => {
                eprintln!("exaid: second signal: exiting now");
                ExitCode::from(130)
            }
            report = daemon.shutdown(grace) => {
                tracing::info!(calls_in_flight = report.calls_in_flight, calls_stopped = report.calls_stopped, "exaid stopped");
                ExitCode::SUCCESS
            }
        }
    })
}

/// `exaid mcp`: MCP on stdio, bridged to a daemon over the EXAI WebSocket protocol. Stdout
/// carries MCP, so everything else goes to stderr.
fn mcp(config: Config, standalone: bool) -> ExitCode {
    init_tracing_to(&config.server.log_format, "info,rmcp=warn", Writer::Stderr);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("exaid mcp: cannot start the tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        use rmcp::ServiceExt;

        let rt = Rt::new(Arc::new(TokioRuntime::new()));
        let (dialer, token, _daemon) = if standalone {
            match start_standalone(config, &rt).await {
                Ok(started) => started,
                Err(message) => {
                    eprintln!("exaid mcp --standalone: {message}");
                    return ExitCode::FAILURE;
                }
            }
        } else {
            let token = match bridge_token(&config) {
                Ok(token) => token,
                Err(message) => {
                    eprintln!("exaid mcp: {message}");
                    return ExitCode::from(2);
                }
            };
            let dialer = TokioDialer::new(dial_host(&config.server.host), config.server.port);
            (dialer, token, None)
        };
        tracing::info!(daemon = %exaid::rt::Dialer::peer(&dialer), standalone, "exaid mcp bridging stdio to the daemon");
        let bridge = Bridge::start(rt, Arc::new(dialer), BridgeConfig::new(token));
        let server = ExaidMcp::new(Arc::new(bridge));
        let running = match server.serve(rmcp::transport::stdio()).await {
            Ok(running) => running,
            Err(err) => {
                eprintln!("exaid mcp: the MCP client did not initialize: {err}");
                return ExitCode::FAILURE;
            }
        };
        match running.waiting().await {
            Ok(reason) => tracing::info!(?reason, "MCP client gone; exaid mcp exits"),
            Err(err) => tracing::warn!(error = %err, "the MCP service ended abnormally"),
        }
        ExitCode::SUCCESS
    })
}

/// `--standalone`: the daemon core in this process, on a private loopback port with a fresh
/// random token (no token file is read or written, no HTTP port is opened), for the bridge
/// alone.
async fn start_standalone(
    config: Config,
    rt: &Rt,
) -> Result<(TokioDialer, TokenSource, Option<Arc<exaid::Daemon>>), String> {
    let token = rt.rng().hex(32);
    let listener = TokioListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .map_err(|err| format!("cannot listen on 127.0.0.1: {err}"))?;
    let bound = exaid::rt::Listener::local_addr(&listener)
        .map_err(|err| format!("cannot read the bound address: {err}"))?;
    let daemon = Arc::new(exaid::Daemon::new(config, token.clone(), rt.clone()));
    log_providers(&daemon);
    let serving = daemon.clone();
    rt.spawn("standalone-daemon", async move {
        if let Err(err) = serving.serve(Box::new(listener)).await {
            tracing::error!(error = %err, "the in-process daemon stopped");
        }
    });
    Ok((
        TokioDialer::new("127.0.0.1", bound.port()),
        TokenSource::Fixed(token),
        Some(daemon),
    ))
}

/// Print one start-up line on standard output. Why not `println!`: it panics when the reader
/// went away (a supervisor that read the first line and closed the pipe), and a daemon must
/// not die of that.
fn announce(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// The state file the daemon keeps (`EXAI_STATE_DB`, else `state.db` in the state folder),
/// opened; `:memory:` keeps nothing. A file that cannot be opened leaves the daemon serving
/// with state in memory and says why (the second value), loudly: calls must not stop because
/// a disk did.
fn open_state(config: &Config, rt: &Rt) -> (Arc<dyn Store>, Option<String>) {
    let memory = || Arc::new(MemoryStore::new()) as Arc<dyn Store>;
    let path = match &config.state.db {
        Some(path) if path.as_os_str() == ":memory:" => return (memory(), None),
        Some(path) => path.clone(),
        None => {
            let xdg = std::env::var("XDG_STATE_HOME").ok();
            let home = std::env::var("HOME").ok();
            match auth::default_state_dir(xdg.as_deref(), home.as_deref()) {
                Some(dir) => dir.join("state.db"),
                None => {
                    let why =
                        "no EXAI_STATE_DB, XDG_STATE_HOME or HOME: state is kept in memory only";
                    tracing::error!("persistence degraded: {why}");
                    return (memory(), Some(why.to_string()));
                }
            }
        }
    };
    match SqliteStore::open(
        &path,
        rt.unix_time_ms(),
        SyncMode::named(&config.state.sync),
    ) {
        Ok((store, opened)) => {
            match opened {
                Opened::MovedAside { to, why } => tracing::error!(
                    file = %path.display(), moved_to = %to.display(), %why,
                    "THE STATE FILE WAS UNREADABLE: moved aside, a fresh one started; what it kept is not served"
                ),
                Opened::Created => tracing::info!(file = %path.display(), "state file created"),
                Opened::Existing { version } => {
                    tracing::info!(file = %path.display(), schema_version = version, "state file opened")
                }
            }
            (Arc::new(store), None)
        }
        Err(error) => {
            let why = format!("cannot open the state file {}: {error}", path.display());
            tracing::error!("persistence degraded: {why}; state is kept in memory only");
            (memory(), Some(why))
        }
    }
}

/// A token shorter than `auth::TOKEN_CHARS_MIN` (an EXAI `.env` from the original) still
/// starts a daemon bound to loopback, with a loud warning; beyond loopback, where anyone on
/// the network may guess it, it is refused.
fn check_token_length(config: &Config, addr: std::net::SocketAddr) -> Result<(), String> {
    let Some(token) = &config.server.token else {
        return Ok(());
    };
    let chars = token.char_len();
    if chars >= auth::TOKEN_CHARS_MIN {
        return Ok(());
    }
    if !addr.ip().is_loopback() {
        return Err(format!(
            "refusing to listen on {addr}, which is not a loopback address, with a {chars}-character {}: \
             remote clients need one of at least {} characters",
            key::EXAI_WS_TOKEN,
            auth::TOKEN_CHARS_MIN
        ));
    }
    tracing::warn!(
        "{} has only {chars} characters (at least {} are advised): accepted because exaid \
         listens on loopback only; set a longer one",
        key::EXAI_WS_TOKEN,
        auth::TOKEN_CHARS_MIN
    );
    Ok(())
}

/// The token the bridge presents: `EXAI_WS_TOKEN`, else the daemon's token file (read before
/// each connection, never created: only the daemon decides the token).
fn bridge_token(config: &Config) -> Result<TokenSource, String> {
    if let Some(token) = &config.server.token {
        return Ok(TokenSource::Fixed(token.expose().to_string()));
    }
    let path = match &config.server.token_file {
        Some(path) => path.clone(),
        None => {
            let xdg = std::env::var("XDG_STATE_HOME").ok();
            let home = std::env::var("HOME").ok();
            auth::default_token_file(xdg.as_deref(), home.as_deref()).ok_or(
                "no EXAI_WS_TOKEN, no EXAI_TOKEN_FILE and no HOME: cannot find the daemon's token",
            )?
        }
    };
    Ok(TokenSource::File(path))
}

/// Where to dial a daemon configured to listen on `host`: a wildcard bind is reached on
/// loopback.
fn dial_host(host: &str) -> String {
    match host {
        "0.0.0.0" | "" => "127.0.0.1".to_string(),
        "::" | "[::]" => "::1".to_string(),
        other => other
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
    }
}

/// SIGTERM or Ctrl-C (SIGINT).
async fn signalled() {
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(stream) => stream,
        Err(err) => {
            eprintln!("exaid: cannot watch SIGTERM ({err}); only Ctrl-C will stop it");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        biased;
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

fn resolve_token(config: &Config, rt: &Rt) -> Result<(String, TokenOrigin), String> {
    if let Some(token) = &config.server.token {
        return Ok((token.expose().to_string(), TokenOrigin::Config));
    }
    let path = match &config.server.token_file {
        Some(path) => path.clone(),
        None => {
            let xdg = std::env::var("XDG_STATE_HOME").ok();
            let home = std::env::var("HOME").ok();
            auth::default_token_file(xdg.as_deref(), home.as_deref()).ok_or(
                "no EXAI_WS_TOKEN, no EXAI_TOKEN_FILE and no HOME: cannot decide where to keep the token",
            )?
        }
    };
    auth::load_or_create(&path, &mut rt.rng())
}

/// Raise the soft open-file limit toward the hard one and lower the connection limits if
/// they still do not fit in it (`rt::fds`); returns what logs the result.
fn share_open_files(config: &mut Config) -> impl FnOnce() + use<> {
    let wanted = exaid::operator::fds::descriptors_needed(config).max(65_536);
    let raised = exaid::rt::fds::raise_open_files(wanted);
    let lowered = match &raised {
        Ok(files) => exaid::operator::fds::fit_connection_limits(config, files.now),
        Err(_) => None,
    };
    move || {
        match raised {
            Ok(files) => tracing::info!(
                before = files.before,
                now = files.now,
                hard = files.hard,
                "open-file limit"
            ),
            Err(err) => tracing::warn!("cannot read or raise the open-file limit: {err}"),
        }
        if let Some(warning) = lowered {
            tracing::warn!("{warning}");
        }
    }
}

fn log_startup(config: &Config, bound: std::net::SocketAddr, origin: &TokenOrigin) {
    let token_note = match origin {
        TokenOrigin::Config => format!("token: {}", key::EXAI_WS_TOKEN),
        TokenOrigin::File(path) => format!("token: read from {}", path.display()),
        TokenOrigin::Generated(path) => format!(
            "token: none configured, generated one into {} (owner-only)",
            path.display()
        ),
    };
    announce(&format!(
        "exaid {} listening on ws://{bound} ({token_note})",
        env!("CARGO_PKG_VERSION")
    ));
    for (key, value, source) in config.entries() {
        tracing::info!(target: "exaid::config", "{key} = {value} ({source})");
    }
}

/// Which providers serve, and what `auto` picks: the first question after "is it up?".
fn log_providers(daemon: &exaid::Daemon) {
    let providers = &daemon.shared().providers;
    for entry in providers.entries() {
        let provider = &entry.provider;
        tracing::info!(
            provider = provider.name(),
            configured = provider.is_configured(),
            default_model = provider.default_model(),
            max_inflight = entry.limit.permits_max(),
            "provider"
        );
    }
    let auto = &providers.default_entry().provider;
    tracing::info!(
        provider = auto.name(),
        model = auto.default_model(),
        "model `auto` resolves to this provider"
    );
}

/// Where log lines go.
enum Writer {
    /// The daemon's logs.
    Stdout,
    /// `exaid mcp`: stdout is the MCP channel.
    Stderr,
}

/// Human or JSON log lines (`EXAI_LOG_FORMAT`), filtered by `RUST_LOG` (default `info`; the
/// MCP SDK's per-message chatter only from `warn`).
fn init_tracing(format: &str) {
    init_tracing_to(format, "info,rmcp=warn", Writer::Stdout);
}

/// Log lines to `writer`, filtered by `RUST_LOG` (default `default_filter`).
fn init_tracing_to(format: &str, default_filter: &str, writer: Writer) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true);
    match (format == "json", writer) {
        (true, Writer::Stdout) => builder.json().with_current_span(true).init(),
        (true, Writer::Stderr) => builder
            .json()
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .init(),
        (false, Writer::Stdout) => builder.init(),
        (false, Writer::Stderr) => builder.with_writer(std::io::stderr).with_ansi(false).init(),
    }
}
