//! The seam, proven: the daemon core runs inside madsim with a simulated client over
//! simulated TCP, and the same seed gives the same virtual timeline.

#[test]
fn daemon_core_runs_in_the_simulator() {
    for seed in [1u64, 2, 3] {
        let outcome = exaid_sim::smoke::run(seed, 12);
        assert_eq!(
            outcome.calls_ok,
            12,
            "seed {seed}: {:?}",
            outcome.trace.lines()
        );
        assert!(
            outcome.terminal_frames.iter().all(|n| *n == 1),
            "seed {seed}"
        );
        assert!(outcome.virtual_ms > 0);
    }
}

#[test]
fn same_seed_same_trace() {
    let first = exaid_sim::smoke::run(42, 8);
    let second = exaid_sim::smoke::run(42, 8);
    assert_eq!(first.trace.lines(), second.trace.lines());
    assert_eq!(first.trace.hash(), second.trace.hash());
    let other = exaid_sim::smoke::run(43, 8);
    assert_ne!(
        first.trace.hash(),
        other.trace.hash(),
        "different seeds should differ"
    );
}
