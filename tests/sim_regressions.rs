//! Every bug a simulation found, as a named seed that must keep passing, with the path that
//! exposed it still reached.

use exaid_sim::run::run;
use exaid_sim::scenario;

fn replay(name: &str, seed: u64, must_reach: &[&str]) {
    let outcome = run(scenario::find(name).unwrap(), seed);
    assert!(
        outcome.passed(),
        "{name} seed {seed} regressed:\n{}",
        outcome.table
    );
    for tag in must_reach {
        assert!(
            outcome.journal.coverage.contains(tag),
            "{name} seed {seed} no longer reaches {tag}:\n{}",
            outcome.table
        );
    }
}

/// A 429 with retry-after on a call's last attempt ended the call without cooling the
/// provider down; the freed permit sent a queued call into the provider at once.
#[test]
fn seed_rate_limit_storm_4_last_attempt_429_cools_the_provider_down() {
    replay(
        "rate-limit-storm",
        4,
        &["called_again_after_retry_after", "rate_limited_result"],
    );
}

/// tokio's semaphore handed a released permit to a waiter before the waiter ran; a health
/// check in between saw "6 in use, 5 holders". The limiter now counts permits in transit.
#[test]
fn seed_rate_limit_storm_15_health_during_a_permit_handoff() {
    replay(
        "rate-limit-storm",
        15,
        &["health_during_call", "progress_while_queued"],
    );
}

/// A repeated request id after its call finished started a second call (and a second
/// provider round trip); it now gets the stored result, marked `repeated`.
#[test]
fn seed_mixed_soak_6_repeat_after_finish_is_answered_from_the_result_cache() {
    replay("mixed-soak", 6, &["finished_result_repeated"]);
}

/// tokio's `watch` woke connections through notifiers picked by a process-wide RNG, so the
/// second run of a seed in one process closed the clients in another order. The lifecycle
/// now uses an atomic and a `Notify`.
#[test]
fn seed_shutdown_1_wakes_connections_in_the_same_order_every_run() {
    let scenario = scenario::find("shutdown").unwrap();
    let first = run(scenario, 1);
    let second = run(scenario, 1);
    assert!(first.passed(), "{}", first.table);
    assert_eq!(first.journal.lines(), second.journal.lines());
    assert!(first.journal.coverage.contains("closed_going_away"));
}
