//! The seed replay CLI.
//!
//! - `--list`: one scenario per line, name first;
//! - `--scenario NAME --seed N [--trace]`: run one seed, print its outcome table (last line:
//!   the trace hash), and with `--trace` the event log first;
//! - `--scenario NAME --seeds A..B`: sweep; print each failing seed with its replay command,
//!   the coverage reached, and end with `N passed, M failed` (exit 1 if any failed or a
//!   required path was never reached).

use std::process::ExitCode;

use exaid_sim::scenario;
use exaid_sim::sweep::{replay_command, sweep, write_trace};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut name = None;
    let mut seed = None;
    let mut seeds = None;
    let mut print_trace = false;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--list" => {
                for scenario in scenario::all() {
                    println!(
                        "{}  {}",
                        scenario.name,
                        scenario
                            .doc
                            .split_whitespace()
                            .collect::<Vec<_>>()
                            .join(" ")
                    );
                }
                return ExitCode::SUCCESS;
            }
            "--scenario" => name = iter.next().cloned(),
            "--seed" => match iter.next().and_then(|v| v.parse::<u64>().ok()) {
                Some(value) => seed = Some(value),
                None => return usage("--seed needs an unsigned integer"),
            },
            "--seeds" => match iter.next().and_then(|v| parse_range(v)) {
                Some(range) => seeds = Some(range),
                None => return usage("--seeds needs a range A..B"),
            },
            "--trace" => print_trace = true,
            "--help" | "-h" => return usage(""),
            other => return usage(&format!("unknown argument {other}")),
        }
    }
    let Some(name) = name else {
        return usage("--scenario NAME is required (see --list)");
    };
    let Some(scenario) = scenario::find(&name) else {
        return usage(&format!("no scenario named {name} (see --list)"));
    };
    match (seed, seeds) {
        (Some(seed), None) => {
            let outcome = exaid_sim::run::run(scenario, seed);
            if print_trace {
                for line in outcome.journal.lines() {
                    println!("{line}");
                }
                println!();
            }
            print!("{}", outcome.table);
            if outcome.passed() {
                ExitCode::SUCCESS
            } else {
                if let Some(path) = write_trace(&outcome) {
                    eprintln!("trace written to {}", path.display());
                }
                eprintln!("replay: {}", replay_command(scenario.name, seed));
                ExitCode::FAILURE
            }
        }
        (None, Some(range)) => {
            let report = sweep(scenario, range);
            println!(
                "scenario {}: {:.1} seeds/s, simulated/wall time {:.0}x",
                report.scenario,
                report.seeds_per_sec(),
                report.speedup()
            );
            println!(
                "coverage: {}",
                report
                    .coverage
                    .iter()
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            if !report.missing.is_empty() {
                println!("never reached: {}", report.missing.join(" "));
            }
            for (seed, summary) in &report.failed {
                println!(
                    "failed seed {seed}: {summary}\n  replay: {}",
                    replay_command(scenario.name, *seed)
                );
            }
            println!("{} passed, {} failed", report.passed, report.failed.len());
            if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        _ => usage("give either --seed N or --seeds A..B"),
    }
}

fn parse_range(text: &str) -> Option<std::ops::Range<u64>> {
    let (start, end) = text.split_once("..")?;
    let (start, end) = (start.parse().ok()?, end.parse().ok()?);
    (start < end).then_some(start..end)
}

fn usage(problem: &str) -> ExitCode {
    if !problem.is_empty() {
        eprintln!("exaid-sim: {problem}");
    }
    eprintln!(
        "usage: exaid-sim --list\n       exaid-sim --scenario NAME --seed N [--trace]\n       exaid-sim --scenario NAME --seeds A..B"
    );
    ExitCode::from(2)
}
