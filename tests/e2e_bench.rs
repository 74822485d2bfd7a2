//! `exaid bench` end to end: the real binary starts its own mock provider and daemon, runs a
//! short low-rate load with its baseline, checks every answer, and ends its output with one
//! well-formed JSON object.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_exaid");

#[test]
fn bench_runs_a_short_load_with_no_errors_and_reports_json() {
    let started = Instant::now();
    let home = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .current_dir(home.path())
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args([
            "bench",
            "--rate",
            "50",
            "--duration",
            "1",
            "--connections",
            "2",
            "--json",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exaid bench failed:\n{stdout}\n{stderr}"
    );
    let last = stdout.lines().last().unwrap_or_default();
    let report: Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("last line is not JSON ({e}): {last}"));
    assert_eq!(report["errors"], 0, "{stdout}");
    assert_eq!(report["calls_ok"], 50, "{stdout}");
    for key in [
        "calls_per_sec",
        "e2e_p50_ms",
        "e2e_p99_ms",
        "overhead_p50_ms",
        "overhead_p99_ms",
        "daemon_rss_mib",
    ] {
        assert!(report[key].is_number(), "{key} missing: {last}");
    }
    assert!(report["daemon_rss_mib"].as_f64().unwrap() > 0.0, "{last}");
    assert_eq!(report["baseline"]["errors"], 0, "{stdout}");
    assert_eq!(report["baseline"]["calls_ok"], 50, "{stdout}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the short bench took {:?}",
        started.elapsed()
    );
}
