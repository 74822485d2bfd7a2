//! The runtime seam holds: nothing in `src/` reads a clock, spawns, draws entropy, opens a
//! network connection or reads a file except through `src/rt/` (DESIGN.md section 3).
//!
//! Escape hatch: a line that must break the rule on the production side says why in a
//! trailing `// dst-ok: <reason>` comment. `src/rt/` itself is the seam and is not scanned;
//! `src/main.rs` is the production entry point and may read the process environment.
//! `src/bench/` is the load generator (`exaid bench`), a client of the daemon, not its core.

use std::fs;
use std::path::{Path, PathBuf};

/// What the core must not name, and why.
const FORBIDDEN: &[(&str, &str)] = &[
    ("Instant::now", "read time through Rt::now"),
    ("SystemTime::now", "read wall time through Rt::unix_time_ms"),
    ("tokio::spawn", "spawn through Rt::spawn"),
    ("tokio::time", "sleep through Rt::sleep / sleep_until"),
    ("tokio::task::spawn", "spawn through Rt::spawn"),
    (
        "spawn_blocking",
        "no blocking pools: the simulator cannot schedule them",
    ),
    (
        "std::thread",
        "no threads: the simulator cannot schedule them",
    ),
    ("thread_rng", "randomness through Rt::rng"),
    ("rand::rng(", "randomness through Rt::rng"),
    ("getrandom::", "entropy through Runtime::seed"),
    ("OsRng", "entropy through Runtime::seed"),
    ("Uuid::new_v4", "ids through Shared::random_hex"),
    ("connect_async", "connect through the seam's byte streams"),
    ("tokio::net", "sockets through rt::Listener"),
    ("std::net::TcpStream", "sockets through rt::Listener"),
    ("std::net::TcpListener", "sockets through rt::Listener"),
    (
        "std::env::var",
        "configuration arrives through config::Layers",
    ),
    ("std::fs", "files through Rt::fs"),
    ("tokio::fs", "files through Rt::fs"),
    ("File::open", "files through Rt::fs"),
    (
        "watch::",
        "tokio's watch picks a notifier with its own thread-local RNG: use an atomic and a Notify",
    ),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn scanned_files() -> Vec<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.retain(|f| !f.starts_with(src.join("rt")));
    // `src/bench/` is `exaid bench`, a load generator: a client of the daemon that spawns it
    // as a separate process and drives it over real sockets with real clocks and threads. It
    // is not the daemon core and never runs in the simulator, so the seam's rules do not apply.
    files.retain(|f| !f.starts_with(src.join("bench")));
    files.sort();
    assert!(files.len() > 10, "the scan must see the core's files");
    files
}

fn is_comment(line: &str) -> bool {
    let trimmed = line.trim_start();
    trimmed.starts_with("//")
}

#[test]
fn the_core_touches_nondeterminism_only_through_the_seam() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    for file in scanned_files() {
        let is_main = file == src.join("main.rs");
        let text = fs::read_to_string(&file).unwrap();
        for (index, line) in text.lines().enumerate() {
            if is_comment(line) || line.contains("dst-ok") {
                continue;
            }
            for (pattern, why) in FORBIDDEN {
                if is_main && (*pattern == "std::env::var" || *pattern == "tokio::time") {
                    continue;
                }
                if line.contains(pattern) {
                    violations.push(format!(
                        "{}:{}: `{pattern}`: {why}",
                        file.display(),
                        index + 1
                    ));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "raw nondeterminism outside the seam:\n{}",
        violations.join("\n")
    );
}

#[test]
fn every_select_is_biased() {
    let mut violations = Vec::new();
    let mut selects = 0;
    for file in scanned_files() {
        let text = fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (index, line) in lines.iter().enumerate() {
            if is_comment(line) || !line.contains("select!") {
                continue;
            }
            selects += 1;
            let next = lines.iter().skip(index + 1).find(|l| !l.trim().is_empty());
            if next.is_none_or(|l| l.trim() != "biased;") {
                violations.push(format!("{}:{}", file.display(), index + 1));
            }
        }
    }
    assert!(selects > 0, "the scan should find the core's selects");
    assert!(
        violations.is_empty(),
        "select! without `biased;` first:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_scan_catches_a_violation() {
    // Guard against a scan that silently matches nothing.
    let line = "let t = std::time::Instant::now();";
    assert!(FORBIDDEN.iter().any(|(p, _)| line.contains(p)));
    assert!(!is_comment(line));
    assert!(is_comment("   // Instant::now is fine in a comment"));
}
