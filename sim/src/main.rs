//! The seed replay CLI. Today: `exaid-sim [--seed N] [--calls K] [--trace]` runs the smoke
//! simulation for one seed and prints its outcome and trace hash.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut seed = 1u64;
    let mut calls = 10usize;
    let mut print_trace = false;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--seed" => match iter.next().and_then(|v| v.parse().ok()) {
                Some(value) => seed = value,
                None => return usage("--seed needs an unsigned integer"),
            },
            "--calls" => match iter.next().and_then(|v| v.parse().ok()) {
                Some(value) => calls = value,
                None => return usage("--calls needs an unsigned integer"),
            },
            "--trace" => print_trace = true,
            other => return usage(&format!("unknown argument {other}")),
        }
    }
    let outcome = exaid_sim::smoke::run(seed, calls);
    if print_trace {
        for line in outcome.trace.lines() {
            println!("{line}");
        }
    }
    println!("scenario  smoke");
    println!("seed      {seed}");
    println!("calls_ok  {}", outcome.calls_ok);
    println!("failed    {}", outcome.calls_failed);
    println!("virtual   {} ms", outcome.virtual_ms);
    println!("trace     {:016x}", outcome.trace.hash());
    if outcome.terminal_frames.iter().all(|n| *n == 1) && outcome.calls_failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("exaid-sim: {problem}\nusage: exaid-sim [--seed N] [--calls K] [--trace]");
    ExitCode::from(2)
}
