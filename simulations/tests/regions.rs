//! Multi-region runs (`Options::regions = 2`): an origin and a destination region on one
//! simulated clock, cross-region referrals between them carried by the origin's driver.
//! The fixed seeds pass and exercise every step, a seed replays exactly, and a driver that
//! records a confirmation it never sent is caught.

use ninety_sim::cross_region::RemoteStats;
use ninety_sim::{run_seed, Bugs, Options};

/// Two regions, `ops` client operations in each.
fn two_regions(ops: u64) -> Options {
    Options {
        ops,
        regions: 2,
        ..Options::default()
    }
}

/// Seeds `cargo test` runs with two regions (each costs about two one-region seeds).
const SEEDS: u64 = 6;

#[test]
fn two_region_seeds_pass_and_every_step_happens() {
    let o = two_regions(300);
    let mut seen = RemoteStats::default();
    for seed in 0..SEEDS {
        let r = run_seed(seed, &o);
        assert!(
            r.ok(),
            "seed {seed} failed: {:?}\nfaults: {}\nreplay: {} --regions 2",
            r.violations,
            r.faults,
            r.replay_command()
        );
        seen.add(&r.stats.remote);
    }
    eprintln!("cross-region steps in seeds 0..{SEEDS}: {seen:?}");
    assert!(seen.held > 0, "no bed held in the destination: {seen:?}");
    assert!(seen.confirmed > 0, "no bed confirmed: {seen:?}");
    assert!(seen.released > 0, "no bed released: {seen:?}");
    assert!(seen.refused > 0, "no step refused: {seen:?}");
    assert!(
        seen.crashes_between > 0,
        "the driver never crashed mid-step: {seen:?}"
    );
    assert!(
        seen.crashes_on_leader_change > 0,
        "the driver never lost a step to a leader change: {seen:?}"
    );
}

/// Seed 1356: the destination's replicas end on the entries of a node replacement (no
/// commands after them). The checker once knew the reference state only at indices that
/// carry commands and reported every replica as diverged.
#[test]
fn replicas_ending_on_a_membership_change_match_the_replay() {
    let o = Options {
        regions: 2,
        ..Options::default()
    };
    let r = run_seed(1356, &o);
    assert!(r.ok(), "seed 1356 failed: {:?}", r.violations);
    assert!(
        r.stats.replacements > 0,
        "no node was replaced: {:?}",
        r.stats
    );
}

#[test]
fn a_two_region_seed_replays_exactly() {
    let o = two_regions(150);
    assert_eq!(run_seed(7, &o), run_seed(7, &o));
}

/// `Bugs::remote_confirm_unsent`: the driver records `Confirmed` in the origin without
/// sending `ConfirmHold`; the destination's hold lapses, and the end-of-run check finds a
/// bed confirmed in the origin that the destination did not confirm.
#[test]
fn catches_a_confirmation_recorded_but_never_sent() {
    let o = Options {
        bugs: Bugs {
            remote_confirm_unsent: true,
            ..Bugs::default()
        },
        ..two_regions(300)
    };
    let found = (0..10).find_map(|seed| {
        let r = run_seed(seed, &o);
        r.violations.first().map(|v| (seed, v.clone()))
    });
    let (seed, v) = found.expect("an unsent confirmation not caught in 10 seeds");
    assert!(
        v.contains("confirmed"),
        "seed {seed}: unexpected violation {v}"
    );
    eprintln!("caught at seed {seed}: {v}");
}
