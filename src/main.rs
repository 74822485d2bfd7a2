//! The production entry point: parse flags, load configuration, find or create the token,
//! and serve on real tokio.
//!
//! This file and `src/rt/tokio.rs` are the production side of the runtime seam: the only
//! places that read the process environment, the real clock or OS signals.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use exaid::auth::{self, TokenOrigin};
use exaid::config::{Config, Layers};
use exaid::rt::Rt;
use exaid::rt::tokio::{TokioListener, TokioRuntime, serve_http};
use exaid::shutdown::Stage;
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
    Config,
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
        Some(Command::Config) => {
            print!("{}", loaded.config.render());
            ExitCode::SUCCESS
        }
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
    let (file, file_required) = match cli.config.clone().or_else(|| lookup("EXAI_CONFIG")) {
        Some(path) => (Some(path), true),
        None => (Some(PathBuf::from("exaid.toml")), false),
    };
    let (dotenv, dotenv_required) = match cli.env_file.clone().or_else(|| lookup("EXAI_ENV_FILE")) {
        Some(path) => (Some(path), true),
        None => (Some(PathBuf::from(".env")), false),
    };
    let mut flags = Vec::new();
    if let Some(host) = &cli.host {
        flags.push(("EXAI_WS_HOST".to_string(), host.clone()));
    }
    if let Some(port) = &cli.port {
        flags.push(("EXAI_WS_PORT".to_string(), port.clone()));
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

fn serve(config: Config) -> ExitCode {
    init_tracing(&config.log_format);
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
        let addr = match (config.ws_host.as_str(), config.ws_port)
            .to_socket_addrs()
            .map(|mut a| a.next())
        {
            Ok(Some(addr)) => addr,
            Ok(None) | Err(_) => {
                eprintln!(
                    "exaid: EXAI_WS_HOST={} does not resolve to an address",
                    config.ws_host
                );
                return ExitCode::from(2);
            }
        };
        // A generated token lives in a file only this user can read: good for local clients,
        // useless for remote ones. Listening beyond loopback takes a token set on purpose.
        if !addr.ip().is_loopback() && config.ws_token.is_none() {
            eprintln!(
                "exaid: refusing to listen on {addr}, which is not a loopback address, without EXAI_WS_TOKEN: \
                 set a token of your own for remote clients, or bind 127.0.0.1"
            );
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
        let grace = Duration::from_millis(config.shutdown_grace_ms);
        let http_port = config.http_port;
        let daemon = exaid::Daemon::new(config, token, rt);
        log_providers(&daemon);
        if http_port != 0 {
            let http_addr = SocketAddr::new(bound.ip(), http_port);
            let shared = daemon.shared().clone();
            let closed = async move { shared.lifecycle.reached(Stage::Closing).await };
            match serve_http(http_addr, exaid::http::router(daemon.shared().clone()), closed).await {
                Ok(bound) => println!("exaid http on http://{bound} (/healthz /readyz /status /metrics)"),
                Err(err) => {
                    eprintln!("exaid: cannot serve EXAI_HTTP_PORT={http_port} on {http_addr}: {err} (0 turns it off)");
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
    if let Some(token) = &config.ws_token {
        return Ok((token.expose().to_string(), TokenOrigin::Config));
    }
    let path = match &config.token_file {
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

fn log_startup(config: &Config, bound: std::net::SocketAddr, origin: &TokenOrigin) {
    let token_note = match origin {
        TokenOrigin::Config => "token: EXAI_WS_TOKEN".to_string(),
        TokenOrigin::File(path) => format!("token: read from {}", path.display()),
        TokenOrigin::Generated(path) => format!(
            "token: none configured, generated one into {} (owner-only)",
            path.display()
        ),
    };
    println!(
        "exaid {} listening on ws://{bound} ({token_note})",
        env!("CARGO_PKG_VERSION")
    );
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

/// Human or JSON log lines (`EXAI_LOG_FORMAT`), filtered by `RUST_LOG` (default `info`).
fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true);
    if format == "json" {
        builder.json().with_current_span(true).init();
    } else {
        builder.init();
    }
}
