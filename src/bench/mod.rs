//! `exaid bench`: a load generator that measures the daemon end to end, against a mock
//! provider of its own, with a side-by-side baseline straight to that mock.
//!
//! Why it lives here, outside the daemon core: it is a client of the daemon (it spawns the
//! `exaid` binary as a separate process and talks to it over WebSocket, as an editor would),
//! so it uses real clocks, threads and sockets freely. `tests/seam.rs` does not scan
//! `src/bench/` for that reason.
//!
//! What a run does (DESIGN.md 9.8: every call must be a real tool call, checked):
//! 1. start the mock provider on 127.0.0.1 ([`mock`]);
//! 2. start the daemon (`current_exe() serve`) with Kimi pointed at the mock and its limits
//!    raised for the load, or use a running daemon given by `--url`;
//! 3. drive WebSocket clients in open loop (`--rate`) or closed loop (`--closed-loop`)
//!    ([`load`]), checking every answer;
//! 4. send the same calls straight to the mock over HTTP (the baseline);
//! 5. report throughput, latency percentiles, the daemon's overhead (end to end minus the
//!    mock's own service time per call), and the daemon's memory and CPU from `/proc`.

mod load;
mod mock;
mod stats;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use load::{Outcome, Pacing, Plan};
use stats::{Memory, Summary};

/// Most connections one run may open for load.
const LOAD_CONNECTIONS_MAX: u32 = 10_000;
/// Most idle sessions `--connections-only` may open.
const IDLE_SESSIONS_MAX: u32 = 60_000;
/// Longest run, in seconds.
const DURATION_SECS_MAX: f64 = 3600.0;
/// Connections opened at once by `--connections-only`.
const CONNECT_PARALLEL: usize = 64;
/// How long the daemon is left alone before memory is read, so it settles.
const SETTLE: Duration = Duration::from_millis(500);
/// Provider calls in flight the spawned daemon allows (EXAI_WS_KIMI_MAX_INFLIGHT and
/// EXAI_WS_GLOBAL_MAX_INFLIGHT).
const PROVIDER_INFLIGHT: &str = "10000";
/// How long the daemon may take to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Flags of `exaid bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Benchmark a running daemon at this WebSocket URL (ws://HOST:PORT) instead of starting
    /// one; it must use this run's mock as its Kimi provider (see --mock-port).
    #[arg(long)]
    url: Option<String>,
    /// The token for --url.
    #[arg(long)]
    token: Option<String>,
    /// With --url: the daemon's process id, to read its memory and CPU.
    #[arg(long)]
    daemon_pid: Option<u32>,
    /// Port of the mock provider on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    mock_port: u16,
    /// Open loop: calls per second, all connections together.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// How long calls are sent, in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// WebSocket connections (one session each).
    #[arg(long, default_value_t = 16)]
    connections: u32,
    /// Closed loop: each connection keeps --inflight calls in flight (finds the maximum).
    #[arg(long)]
    closed_loop: bool,
    /// Calls in flight per connection with --closed-loop.
    #[arg(long, default_value_t = 8)]
    inflight: u32,
    /// Run this daemon binary instead of this one (to compare two builds side by side).
    #[arg(long, value_name = "PATH")]
    daemon_bin: Option<std::path::PathBuf>,
    /// The mock provider's latency per request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Skip the baseline (the same calls straight to the mock).
    #[arg(long)]
    no_baseline: bool,
    /// Instead of calls: open this many idle authenticated sessions and report the daemon's
    /// memory per session.
    #[arg(long, value_name = "N")]
    connections_only: Option<u32>,
    /// Worker threads of the load generator.
    #[arg(long, default_value_t = 1)]
    load_threads: usize,
    /// Worker threads of the mock provider.
    #[arg(long, default_value_t = 1)]
    mock_threads: usize,
    /// End the output with one JSON object of the figures.
    #[arg(long)]
    json: bool,
}

/// Run `exaid bench`.
pub fn run(args: BenchArgs) -> ExitCode {
    match run_checked(args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("exaid bench: {message}");
            ExitCode::FAILURE
        }
    }
}

fn validate(args: &BenchArgs) -> Result<(), String> {
    if !(args.duration > 0.0 && args.duration <= DURATION_SECS_MAX) {
        return Err(format!(
            "--duration {} must be in (0, {DURATION_SECS_MAX}] s",
            args.duration
        ));
    }
    if args.connections == 0 || args.connections > LOAD_CONNECTIONS_MAX {
        return Err(format!(
            "--connections {} must be in 1..={LOAD_CONNECTIONS_MAX}",
            args.connections
        ));
    }
    if args.closed_loop {
        if args.inflight == 0 || args.inflight > 1000 {
            return Err(format!("--inflight {} must be in 1..=1000", args.inflight));
        }
    } else {
        let calls = args.rate * args.duration;
        if args.rate.is_nan() || args.rate <= 0.0 || calls > stats::SAMPLES_MAX as f64 {
            return Err(format!(
                "--rate {} x --duration {} must be positive and at most {} calls",
                args.rate,
                args.duration,
                stats::SAMPLES_MAX
            ));
        }
    }
    if let Some(n) = args.connections_only
        && (n == 0 || n > IDLE_SESSIONS_MAX)
    {
        return Err(format!(
            "--connections-only {n} must be in 1..={IDLE_SESSIONS_MAX}"
        ));
    }
    if args.url.is_some() && args.token.is_none() {
        return Err("--url needs --token".to_string());
    }
    if args.load_threads == 0 || args.mock_threads == 0 {
        return Err("--load-threads and --mock-threads must be at least 1".to_string());
    }
    Ok(())
}

fn runtime(name: &str, threads: usize) -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the {name} runtime: {e}"))
}

fn run_checked(args: BenchArgs) -> Result<ExitCode, String> {
    validate(&args)?;
    // This process holds one socket per session (the daemon, a separate process with the
    // same inherited limit, holds the other end), plus the mock's and a margin.
    let needed = u64::from(args.connections_only.unwrap_or(args.connections)) + 1024;
    let nofile = raise_nofile(needed)?;
    let mock_rt = runtime("bench-mock", args.mock_threads)?;
    let load_rt = runtime("bench-load", args.load_threads)?;
    let latency = Duration::from_millis(args.latency_ms);
    let mock = mock_rt
        .block_on(mock::start(latency, args.mock_port))
        .map_err(|e| format!("cannot start the mock provider: {e}"))?;
    let sessions = args.connections_only.unwrap_or(args.connections);
    let (daemon, addr, token) = match &args.url {
        Some(url) => (
            None,
            parse_ws_url(url)?,
            args.token.clone().unwrap_or_default(),
        ),
        None => {
            let (daemon, addr, token) =
                Daemon::start(args.daemon_bin.clone(), &mock.base_url(), sessions)?;
            (Some(daemon), addr, token)
        }
    };
    let pid = daemon.as_ref().map(|d| d.child.id()).or(args.daemon_pid);
    std::thread::sleep(SETTLE);
    let idle = pid.and_then(|pid| stats::memory(pid).ok());
    let machine = machine();
    println!("exaid bench: {machine}; RLIMIT_NOFILE {nofile}");
    println!(
        "exaid bench: daemon at ws://{addr}{}, mock provider at {} ({} ms latency)",
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
        mock.base_url(),
        args.latency_ms
    );
    if let Some(n) = args.connections_only {
        let result = load_rt.block_on(idle_sessions(addr, &token, n, pid, idle));
        drop(daemon);
        return result.map(|report| {
            println!("{}", report.human);
            if args.json {
                println!("{}", report.json);
            }
            ExitCode::SUCCESS
        });
    }
    let plan = Plan {
        pacing: if args.closed_loop {
            Pacing::Closed {
                inflight: args.inflight,
            }
        } else {
            Pacing::Open {
                rate_per_sec: args.rate,
            }
        },
        duration: Duration::from_secs_f64(args.duration),
        connections: args.connections,
    };
    println!("exaid bench: {}", describe_plan(&plan));
    let cpu_before = Cpu::now(pid);
    let mut exaid = load_rt.block_on(load::run_ws(addr, &token, plan, mock.state.clone()))?;
    let cpu = Cpu::now(pid).since(&cpu_before);
    let busy = pid.and_then(|pid| stats::memory(pid).ok());
    let mut baseline = if args.no_baseline {
        None
    } else {
        let before = Cpu::now(None);
        let outcome =
            load_rt.block_on(load::run_http(&mock.base_url(), plan, mock.state.clone()))?;
        Some((outcome, Cpu::now(None).since(&before)))
    };
    drop(daemon);
    let report = report(
        &plan,
        &mut exaid,
        cpu,
        idle,
        busy,
        baseline.as_mut(),
        args.latency_ms,
    );
    println!("{}", report.human);
    if args.json {
        println!("{}", report.json);
    }
    Ok(if exaid.errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn describe_plan(plan: &Plan) -> String {
    match plan.pacing {
        Pacing::Open { rate_per_sec } => format!(
            "open loop, {rate_per_sec} calls/s for {:.1} s over {} connections",
            plan.duration.as_secs_f64(),
            plan.connections
        ),
        Pacing::Closed { inflight } => format!(
            "closed loop, {inflight} calls in flight on each of {} connections for {:.1} s",
            plan.connections,
            plan.duration.as_secs_f64()
        ),
    }
}

/// `ws://HOST:PORT[/]` as a socket address.
fn parse_ws_url(url: &str) -> Result<SocketAddr, String> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| format!("--url {url}: expected ws://HOST:PORT"))?;
    let hostport = rest.trim_end_matches('/');
    std::net::ToSocketAddrs::to_socket_addrs(hostport)
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("--url {url}: {hostport} does not resolve"))
}

/// Raise this process's open-file limit to `needed` (within the hard limit), so that its
/// sockets and the daemon it spawns (which inherits the limit) can hold the connections.
fn raise_nofile(needed: u64) -> Result<u64, String> {
    let limit = exaid::rt::fds::raise_open_files(needed)?;
    if limit.now < needed {
        return Err(format!(
            "needs {needed} open files but RLIMIT_NOFILE is at most {} here (ulimit -Hn)",
            limit.hard
        ));
    }
    Ok(limit.now)
}

/// A daemon this run started, stopped when dropped.
struct Daemon {
    /// The `exaid serve` process.
    child: Child,
    /// Its own home and working directory, removed when it stops: each run starts with an
    /// empty state file, so no run measures the sessions an earlier run left to be kept
    /// (measured: a daemon that loaded three earlier runs' sessions idled at 120 MiB).
    dir: std::path::PathBuf,
}

impl Daemon {
    /// Start `exaid serve` (`bin`, else this binary) on a free loopback port with Kimi
    /// pointed at the mock, limits raised for `sessions` sessions, and a fresh token. Returns
    /// it, its address and token.
    fn start(
        bin: Option<std::path::PathBuf>,
        mock_url: &str,
        sessions: u32,
    ) -> Result<(Daemon, SocketAddr, String), String> {
        let exe = match bin {
            Some(bin) => bin,
            None => {
                std::env::current_exe().map_err(|e| format!("cannot find the exaid binary: {e}"))?
            }
        };
        let mut seed = [0u8; 16];
        getrandom::fill(&mut seed).map_err(|e| format!("no entropy for a token: {e}"))?;
        let token: String = seed.iter().map(|b| format!("{b:02x}")).collect();
        let connections = (sessions + 100).max(1000).to_string();
        let dir = std::env::temp_dir().join(format!("exaid-bench-{}", &token[..16]));
        std::fs::create_dir_all(&dir) // dst-ok: the bench's own scratch directory
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut command = Command::new(exe);
        command
            .arg("serve")
            .current_dir(&dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &dir)
            .env("EXAI_CONFIG", "/dev/null")
            .env("EXAI_ENV_FILE", "/dev/null")
            .env("EXAI_WS_HOST", "127.0.0.1")
            .env("EXAI_WS_PORT", "0")
            .env("EXAI_HTTP_PORT", "0")
            .env("EXAI_WS_TOKEN", &token)
            .env("KIMI_API_URL", mock_url)
            .env("KIMI_API_KEY", "bench-key-not-secret")
            .env("KIMI_MODELS", mock::MODEL)
            .env("EXAI_PROVIDER_STREAMING", "false")
            // Provider calls in flight: above anything the load can keep in flight, so calls
            // never wait in admission. Measured: with 1024, a daemon that fell behind at
            // 10,000 calls/s queued tens of thousands of calls and collapsed (770 calls/s,
            // most calls unanswered 10 s after the end), where with 10,000 it answered every
            // call, late. The admission queue is built for the default limits (256 waiters).
            .env("EXAI_WS_GLOBAL_MAX_INFLIGHT", PROVIDER_INFLIGHT)
            .env("EXAI_WS_KIMI_MAX_INFLIGHT", PROVIDER_INFLIGHT)
            .env("EXAI_WS_SESSION_MAX_INFLIGHT", "10000")
            .env("EXAI_WS_QUEUE_MAX", "100000")
            .env("EXAI_WS_MAX_CONNECTIONS", &connections)
            .env("EXAI_WS_MAX_CONNECTIONS_PER_IP", &connections)
            .env("EXAI_WS_MAX_SESSIONS", &connections)
            .env("EXAI_WS_SESSION_RATE", "1000000")
            .env("EXAI_WS_SESSION_BURST", "1000000")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // The daemon logs as it would in production (its default filter, `info`) unless the
        // bench is run with RUST_LOG, which is passed on; so are tokio's worker threads, and
        // the state file (`EXAI_STATE_DB=:memory:` measures the daemon without it).
        for key in ["RUST_LOG", "TOKIO_WORKER_THREADS", "EXAI_STATE_DB"] {
            if let Ok(value) = std::env::var(key) {
                command.env(key, value);
            }
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start the daemon: {e}"))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let daemon = Daemon { child, dir };
        // Read the listening line on a thread, so a daemon that never prints cannot hang us.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("bench-daemon-out".into())
            .spawn(move || {
                let mut reader = BufReader::new(stdout);
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let _ = tx.send(line);
                // Keep the pipe drained so the daemon never blocks on a full pipe.
                let mut sink = [0u8; 8192];
                while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
            })
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        let line = rx
            .recv_timeout(START_TIMEOUT)
            .map_err(|_| format!("the daemon printed nothing within {START_TIMEOUT:?}"))?;
        let addr = line
            .split("ws://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("the daemon did not start: {:?}", line.trim()))?;
        Ok((daemon, addr, token))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SIGTERM first (a graceful stop), then SIGKILL if it lingers.
        // SAFETY: kill only sends a signal to the child this run started.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let until = Instant::now() + Duration::from_secs(3); // dst-ok: the load generator measures and paces in real time
        loop {
            let now = Instant::now(); // dst-ok: the load generator measures and paces in real time
            if now >= until {
                break;
            }
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir); // dst-ok: the bench's own scratch directory
    }
}

/// CPU time of the daemon and of this process's two halves.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    /// The daemon, if known.
    daemon: Option<Duration>,
    /// The load generator's threads.
    load: Duration,
    /// The mock provider's threads.
    mock: Duration,
    /// Wall time of the reading.
    at: Option<Instant>,
}

impl Cpu {
    fn now(pid: Option<u32>) -> Cpu {
        Cpu {
            daemon: pid.and_then(stats::cpu),
            load: stats::own_threads_cpu("bench-load"),
            mock: stats::own_threads_cpu("bench-mock"),
            at: Some(Instant::now()), // dst-ok: the load generator measures and paces in real time
        }
    }

    fn since(&self, before: &Cpu) -> CpuUse {
        let wall = match (self.at, before.at) {
            (Some(a), Some(b)) => a.saturating_duration_since(b),
            _ => Duration::ZERO,
        };
        CpuUse {
            wall,
            daemon: self
                .daemon
                .zip(before.daemon)
                .map(|(a, b)| a.saturating_sub(b)),
            load: self.load.saturating_sub(before.load),
            mock: self.mock.saturating_sub(before.mock),
        }
    }
}

/// CPU used over one phase.
#[derive(Debug, Clone, Copy, Default)]
struct CpuUse {
    /// The phase's wall time.
    wall: Duration,
    /// The daemon's CPU time, if known.
    daemon: Option<Duration>,
    /// The load generator's CPU time.
    load: Duration,
    /// The mock's CPU time.
    mock: Duration,
}

impl CpuUse {
    /// `cpu` as a percentage of one core over the phase.
    fn pct(&self, cpu: Duration) -> f64 {
        if self.wall.is_zero() {
            0.0
        } else {
            100.0 * cpu.as_secs_f64() / self.wall.as_secs_f64()
        }
    }

    fn describe(&self) -> String {
        let daemon = match self.daemon {
            Some(d) => format!(
                "daemon {:.2} s ({:.0}% of a core)",
                d.as_secs_f64(),
                self.pct(d)
            ),
            None => "daemon unknown".to_string(),
        };
        format!(
            "{daemon}, load generator {:.2} s ({:.0}%), mock {:.2} s ({:.0}%), over {:.1} s",
            self.load.as_secs_f64(),
            self.pct(self.load),
            self.mock.as_secs_f64(),
            self.pct(self.mock),
            self.wall.as_secs_f64()
        )
    }
}

/// What is printed.
struct Report {
    /// For people.
    human: String,
    /// One JSON object.
    json: serde_json::Value,
}

fn mib(kib: u64) -> f64 {
    (kib as f64 / 1024.0 * 10.0).round() / 10.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn calls_per_sec(outcome: &Outcome) -> f64 {
    let secs = outcome.elapsed.as_secs_f64();
    if secs > 0.0 {
        outcome.ok as f64 / secs
    } else {
        0.0
    }
}

fn series(name: &str, s: &Summary) -> String {
    format!(
        "{name} p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({} samples)",
        s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms, s.count
    )
}

fn report(
    plan: &Plan,
    exaid: &mut Outcome,
    cpu: CpuUse,
    idle: Option<Memory>,
    busy: Option<Memory>,
    baseline: Option<&mut (Outcome, CpuUse)>,
    latency_ms: u64,
) -> Report {
    let e2e = exaid.e2e.summary();
    let overhead = exaid.overhead.summary();
    let mut human = String::new();
    let mut line = |s: String| {
        human.push_str(&s);
        human.push('\n');
    };
    line(format!(
        "exaid:    {} calls ok, {} errors ({} OVER_CAPACITY, {} unanswered), {:.0} calls/s",
        exaid.ok,
        exaid.errors,
        exaid.over_capacity,
        exaid.unanswered,
        calls_per_sec(exaid)
    ));
    for example in &exaid.examples {
        line(format!("  error: {example}"));
    }
    line(format!("  {}", series("end to end", &e2e)));
    line(format!("  {}", series("daemon overhead", &overhead)));
    line(format!("  cpu: {}", cpu.describe()));
    if let (Some(idle), Some(busy)) = (idle, busy) {
        line(format!(
            "  daemon memory: idle RSS {:.1} MiB; after the run RSS {:.1} MiB, peak (VmHWM) {:.1} MiB",
            mib(idle.rss_kib),
            mib(busy.rss_kib),
            mib(busy.hwm_kib)
        ));
    }
    let mut json = json!({
        "mode": if matches!(plan.pacing, Pacing::Closed { .. }) { "closed-loop" } else { "open-loop" },
        "connections": plan.connections,
        "duration_secs": plan.duration.as_secs_f64(),
        "mock_latency_ms": latency_ms,
        "calls_ok": exaid.ok,
        "calls_per_sec": round3(calls_per_sec(exaid)),
        "errors": exaid.errors,
        "over_capacity": exaid.over_capacity,
        "unanswered": exaid.unanswered,
        "e2e_p50_ms": e2e.p50_ms,
        "e2e_p90_ms": e2e.p90_ms,
        "e2e_p99_ms": e2e.p99_ms,
        "e2e_max_ms": e2e.max_ms,
        "overhead_p50_ms": overhead.p50_ms,
        "overhead_p90_ms": overhead.p90_ms,
        "overhead_p99_ms": overhead.p99_ms,
        "overhead_max_ms": overhead.max_ms,
        "daemon_rss_mib": busy.map(|m| mib(m.rss_kib)),
        "daemon_hwm_mib": busy.map(|m| mib(m.hwm_kib)),
        "daemon_idle_rss_mib": idle.map(|m| mib(m.rss_kib)),
        "daemon_cpu_secs": cpu.daemon.map(|d| round3(d.as_secs_f64())),
        "load_cpu_secs": round3(cpu.load.as_secs_f64()),
        "mock_cpu_secs": round3(cpu.mock.as_secs_f64()),
        "wall_secs": round3(cpu.wall.as_secs_f64()),
    });
    if let Pacing::Open { rate_per_sec } = plan.pacing {
        json["rate_per_sec"] = json!(rate_per_sec);
    }
    if let Pacing::Closed { inflight } = plan.pacing {
        json["inflight_per_connection"] = json!(inflight);
    }
    if let Some((base, base_cpu)) = baseline {
        let b_e2e = base.e2e.summary();
        let b_over = base.overhead.summary();
        line(format!(
            "baseline (same calls straight to the mock over HTTP): {} ok, {} errors, {:.0} calls/s",
            base.ok,
            base.errors,
            calls_per_sec(base)
        ));
        for example in &base.examples {
            line(format!("  error: {example}"));
        }
        line(format!("  {}", series("end to end", &b_e2e)));
        line(format!("  {}", series("client overhead", &b_over)));
        line(format!("  cpu: {}", base_cpu.describe()));
        let ratio = |a: f64, b: f64| if b > 0.0 { round3(a / b) } else { 0.0 };
        line(format!(
            "exaid / baseline: end to end p50 x{:.2}, p99 x{:.2}; calls/s x{:.2}; added p50 {:.3} ms",
            ratio(e2e.p50_ms, b_e2e.p50_ms),
            ratio(e2e.p99_ms, b_e2e.p99_ms),
            ratio(calls_per_sec(exaid), calls_per_sec(base)),
            e2e.p50_ms - b_e2e.p50_ms
        ));
        json["baseline"] = json!({
            "calls_ok": base.ok,
            "calls_per_sec": round3(calls_per_sec(base)),
            "errors": base.errors,
            "e2e_p50_ms": b_e2e.p50_ms,
            "e2e_p90_ms": b_e2e.p90_ms,
            "e2e_p99_ms": b_e2e.p99_ms,
            "e2e_max_ms": b_e2e.max_ms,
            "overhead_p50_ms": b_over.p50_ms,
            "overhead_p99_ms": b_over.p99_ms,
            "load_cpu_secs": round3(base_cpu.load.as_secs_f64()),
            "mock_cpu_secs": round3(base_cpu.mock.as_secs_f64()),
        });
        json["ratio_e2e_p50"] = json!(ratio(e2e.p50_ms, b_e2e.p50_ms));
        json["ratio_e2e_p99"] = json!(ratio(e2e.p99_ms, b_e2e.p99_ms));
        json["ratio_calls_per_sec"] = json!(ratio(calls_per_sec(exaid), calls_per_sec(base)));
    }
    Report {
        human: human.trim_end().to_string(),
        json,
    }
}

/// Open `n` idle authenticated sessions and report the daemon's memory per session.
async fn idle_sessions(
    addr: SocketAddr,
    token: &str,
    n: u32,
    pid: Option<u32>,
    idle: Option<Memory>,
) -> Result<Report, String> {
    use futures_util::StreamExt;
    let started = Instant::now(); // dst-ok: the load generator measures and paces in real time
    let results: Vec<Result<load::Ws, String>> = futures_util::stream::iter(0..n)
        .map(|_| load::connect(addr, token))
        .buffer_unordered(CONNECT_PARALLEL)
        .collect()
        .await;
    let opened = started.elapsed();
    let mut sessions = Vec::with_capacity(results.len());
    let mut errors = 0u64;
    let mut example = None;
    for result in results {
        match result {
            Ok(ws) => sessions.push(ws),
            Err(e) => {
                errors += 1;
                example.get_or_insert(e);
            }
        }
    }
    tokio::time::sleep(SETTLE * 2).await; // dst-ok: the load generator measures and paces in real time
    let with = pid.and_then(|pid| stats::memory(pid).ok());
    let open = sessions.len() as u64;
    let per_session_kib = match (idle, with) {
        (Some(idle), Some(with)) if open > 0 => {
            Some(with.rss_kib.saturating_sub(idle.rss_kib) as f64 / open as f64)
        }
        _ => None,
    };
    let mut human = format!(
        "idle sessions: {open} open ({errors} failed) in {:.1} s",
        opened.as_secs_f64()
    );
    if let Some(e) = &example {
        human.push_str(&format!("\n  error: {e}"));
    }
    if let (Some(idle), Some(with), Some(per)) = (idle, with, per_session_kib) {
        human.push_str(&format!(
            "\n  daemon RSS idle {:.1} MiB, with {open} sessions {:.1} MiB (peak {:.1} MiB): {:.1} KiB per session",
            mib(idle.rss_kib),
            mib(with.rss_kib),
            mib(with.hwm_kib),
            per
        ));
    }
    let json = json!({
        "mode": "connections-only",
        "sessions": open,
        "errors": errors,
        "open_secs": round3(opened.as_secs_f64()),
        "daemon_idle_rss_mib": idle.map(|m| mib(m.rss_kib)),
        "daemon_rss_mib": with.map(|m| mib(m.rss_kib)),
        "daemon_hwm_mib": with.map(|m| mib(m.hwm_kib)),
        "rss_per_session_kib": per_session_kib.map(|k| (k * 10.0).round() / 10.0),
    });
    drop(sessions);
    Ok(Report { human, json })
}

/// The machine, in one line: cores, CPU model, memory.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or("unknown CPU".to_string(), |(_, m)| m.trim().to_string());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|k| k.parse().ok())
        .unwrap_or(0);
    format!(
        "{cores} cores, {model}, {:.1} GiB memory",
        mem_kib as f64 / 1024.0 / 1024.0
    )
}
