//! Sweeping a scenario over many seeds: failures are printed with the one command that
//! replays them and their trace is written under `target/sim-traces/`; coverage is summed
//! over the sweep and every path the scenario must reach is checked.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Instant as WallInstant;

use crate::run::{Outcome, run};
use crate::scenario::Scenario;

/// What a sweep found.
#[derive(Debug)]
pub struct SweepReport {
    /// Scenario name.
    pub scenario: &'static str,
    /// Seeds that held every invariant.
    pub passed: u64,
    /// Failing seeds, each with its first violation and replay command.
    pub failed: Vec<(u64, String)>,
    /// Coverage tags reached by any seed.
    pub coverage: BTreeSet<&'static str>,
    /// Tags the scenario must reach that no seed reached.
    pub missing: Vec<&'static str>,
    /// Wall seconds the sweep took.
    pub wall_secs: f64,
    /// Virtual seconds simulated, all seeds.
    pub virtual_secs: f64,
}

impl SweepReport {
    /// True when every seed passed and every required path was reached.
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.missing.is_empty()
    }

    /// Seeds run per wall second.
    pub fn seeds_per_sec(&self) -> f64 {
        (self.passed + self.failed.len() as u64) as f64 / self.wall_secs.max(1e-9)
    }

    /// Simulated time over wall time.
    pub fn speedup(&self) -> f64 {
        self.virtual_secs / self.wall_secs.max(1e-9)
    }
}

/// The command that replays one seed.
pub fn replay_command(scenario: &str, seed: u64) -> String {
    format!("cargo run -p exaid-sim --release -- --scenario {scenario} --seed {seed} --trace")
}

/// Where failing traces go: `target/sim-traces/` of this workspace (or `CARGO_TARGET_DIR`).
pub fn trace_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")));
    target.join("sim-traces")
}

/// Write a failing run's trace; returns its path.
pub fn write_trace(outcome: &Outcome) -> Option<PathBuf> {
    let dir = trace_dir();
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join(format!("{}-{}.log", outcome.scenario, outcome.seed));
    let mut text = outcome.table.clone();
    text.push('\n');
    for line in outcome.journal.lines() {
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(&path, text).ok()?;
    Some(path)
}

/// Run `scenario` for every seed in `seeds`. Failures are printed to stderr as they happen.
pub fn sweep(scenario: &'static Scenario, seeds: Range<u64>) -> SweepReport {
    let started = WallInstant::now();
    let mut report = SweepReport {
        scenario: scenario.name,
        passed: 0,
        failed: Vec::new(),
        coverage: BTreeSet::new(),
        missing: Vec::new(),
        wall_secs: 0.0,
        virtual_secs: 0.0,
    };
    for seed in seeds {
        let outcome = run(scenario, seed);
        report.virtual_secs += outcome.virtual_ms as f64 / 1000.0;
        report
            .coverage
            .extend(outcome.journal.coverage.iter().copied());
        if outcome.passed() {
            report.passed += 1;
            continue;
        }
        let first = &outcome.journal.violations[0];
        let summary = format!(
            "invariant {} at {} ms: {}",
            first.invariant as u8, first.at_ms, first.detail
        );
        let trace = write_trace(&outcome)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        eprintln!(
            "FAIL {} seed {seed}: {summary}\n  replay: {}\n  trace:  {trace}",
            scenario.name,
            replay_command(scenario.name, seed)
        );
        report.failed.push((seed, summary));
    }
    report.missing = scenario
        .must_reach
        .iter()
        .copied()
        .filter(|tag| !report.coverage.contains(tag))
        .collect();
    report.wall_secs = started.elapsed().as_secs_f64();
    report
}
