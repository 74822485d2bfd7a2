//! Outcome tables of pinned seeds, one per scenario, pinned with insta (in `snapshots/`).
//! A change in what the daemon does under a fixed fault plan shows up here as a diff.

use exaid_sim::run::run;
use exaid_sim::scenario;

#[test]
fn pinned_outcome_tables() {
    for scenario in scenario::all() {
        let outcome = run(scenario, 7);
        insta::with_settings!({
            snapshot_path => "../snapshots",
            prepend_module_to_snapshot => false,
            omit_expression => true,
        }, {
            insta::assert_snapshot!(format!("outcome_{}_seed_7", scenario.name.replace('-', "_")), outcome.table);
        });
    }
}
