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

/// A new session's `hello_ack` went out before its record was committed; a crash then forgot
/// the session its client held, and the resume was refused. The ack now waits for the commit.
#[test]
fn seed_crash_restart_160_a_session_is_kept_before_its_client_learns_its_id() {
    replay(
        "crash-restart",
        160,
        &["resumed_after_crash", "failed_sync"],
    );
}

/// A restored session with nothing to deliver started its seqs at 1 again, below the seq the
/// client already had, so the client took new frames for old ones. The first resume after a
/// restart now always continues after the client's `last_seq`.
#[test]
fn seed_crash_restart_170_seqs_go_on_after_the_clients_own_after_a_restart() {
    replay("crash-restart", 170, &["resumed_after_crash"]);
}

/// A failed sync released a held result at once; the crash a moment later took it back, and
/// the call ended again with INTERRUPTED after its result. Held frames now wait through
/// failing commits for `EXAI_STATE_HOLD_SECS`.
#[test]
fn seed_crash_restart_187_a_failed_sync_does_not_release_a_result_before_it_is_kept() {
    replay(
        "crash-restart",
        187,
        &[
            "failed_sync",
            "crash_with_unacked_result",
            "interrupted_delivered",
        ],
    );
}

/// A `call_tool_ack` went out before the call's acceptance was committed; the crash forgot
/// the call, and its client waited for a result forever. The ack is now held until the
/// acceptance is kept (a client that never saw it sends the call again).
#[test]
fn seed_crash_restart_197_an_ack_waits_for_the_acceptance_to_be_kept() {
    replay(
        "crash-restart",
        197,
        &["crash_during_call", "interrupted_delivered"],
    );
}

/// A call sent again after INTERRUPTED whose new acceptance a failing disk had not kept when
/// a second crash came: its ack never went out, but the simulated client never sent it a
/// third time (it skipped every call once interrupted), and the observer took the earlier
/// run's finished record for this run's acceptance. Both simulator fixes, no daemon change.
#[test]
fn seed_crash_restart_11_a_call_sent_again_after_interrupted_is_resent_after_the_next_crash() {
    replay(
        "crash-restart",
        11,
        &[
            "resent_after_interrupted",
            "resent_after_resume",
            "crash_before_acceptance_kept",
        ],
    );
}

/// A call the failing disk never kept was forgotten by a crash (excused), but its client
/// went on waiting with its socket open, so its session never expired and quiescence found
/// it held. A client that can never finish is now stopped.
#[test]
fn seed_crash_restart_215_a_client_whose_call_was_forgotten_lets_its_session_expire() {
    replay("crash-restart", 215, &["unkept_call_forgotten"]);
}
