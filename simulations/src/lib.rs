//! `ninety-sim`: deterministic fault simulation of a ninety cluster.
//!
//! One seed decides everything: the fault model ([`Faults`], printed first), the network
//! (delay, loss, duplication, reordering, partitions, one-way links), the disks (crashes
//! lose unsynced writes, torn tails, corrupted records that must be detected), the clocks
//! (per-node skew and drift), crashes and restarts, membership changes (the operator
//! replaces failed or retired nodes) and the client workload (bed holds, confirms,
//! releases, discharges, slot holds and bookings, joint consultations, bed and slot
//! allocations, linearizable reads, with retries under the same request id and timeouts). The real node core runs for every replica in one
//! thread; no real clock, network or disk is touched, so a seed replays exactly.
//!
//! With `Options::regions = 2` a run simulates two regions (Raft groups) on one simulated
//! clock ([`multi`]): the origin's workload asks the destination for beds
//! (`HoldRemoteBed`), a simulated driver of the origin's leader carries each step between
//! them and crashes with it, and [`cross_region`] checks both sides agree.
//!
//! Entry points: [`run_seed`] (one seed → [`RunReport`]) and [`run_many`] (a range of
//! seeds → [`Summary`]). `ninety sim faults` (cli/src/sim.rs) is a thin CLI over them. See
//! `docs/simulation.md` for the fault model, the checks and how to debug a failing seed.
//!
//! [`peak`] is the other half of the crate: peak-day scenarios, a trace format, open-loop
//! replay against a real cluster and an HTML report.

pub mod check;
pub mod cross_region;
pub mod disk;
pub mod machine;
pub mod multi;
pub mod options;
pub mod peak;
pub mod region;
pub mod rng;
pub mod rules;
pub mod sim;
pub mod workload;

pub use options::{Bugs, Faults, Options};
pub use sim::{RunReport, Stats};

use std::time::{Duration, Instant};

/// Runs one seed to the end and checks it.
///
/// A panic inside the run (raft-rs asserts its invariants with panics, e.g. when a log it
/// was promised is gone) is caught and reported as a violation of that seed.
pub fn run_seed(seed: u64, opts: &Options) -> RunReport {
    let failed = |why: String| RunReport {
        seed,
        faults: Faults::from_seed(seed, opts.fault_scale_per_mille),
        violations: vec![why],
        stats: Stats::default(),
    };
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if opts.regions >= 2 {
            multi::Multi::new(seed, opts).map(multi::Multi::run)
        } else {
            sim::Sim::new(seed, opts).map(sim::Sim::run)
        }
    }));
    match run {
        Ok(Ok(report)) => report,
        Ok(Err(e)) => failed(format!("cannot build the simulation: {e}")),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed(format!("panic in the node core: {msg}"))
        }
    }
}

/// The outcome of many seeds.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub seeds: u64,
    pub passed: u64,
    /// Failed runs (seed and first violation), at most 100 kept.
    pub failures: Vec<(u64, String)>,
    pub failed: u64,
    pub ops_acked: u64,
    pub ops_total: u64,
    /// Linearizable reads answered (included in `ops_acked` and `ops_total`).
    pub reads: u64,
    /// Allocations that placed a hold.
    pub allocations: u64,
    pub events: u64,
    pub crashes: u64,
    pub partitions: u64,
    pub corruptions_detected: u64,
    pub replacements: u64,
    /// Crashes that lost a node's whole data directory, and wiped nodes refused at start
    /// (or stopped) instead of rejoining as themselves.
    pub wipes: u64,
    pub wiped_refused: u64,
    /// Snapshot files written in the background, and crashes between such a file and its
    /// record (`sim::snapshot`).
    pub snapshots_written: u64,
    pub crashes_in_snapshot: u64,
    /// The schedule and referral-lifecycle commands, by name: [successful, refused, seeds
    /// in which one succeeded].
    pub lifecycle: std::collections::BTreeMap<&'static str, [u64; 3]>,
    /// Seeds in which a `ReportNoCapacity` on a MATCHED referral succeeded.
    pub seeds_with_matched_report: u64,
    /// Successful `ReportNoCapacity` on a referral the client had matched.
    pub no_capacity_on_matched: u64,
    /// Seats that ended with their withdrawn slot.
    pub seats_withdrawn: u64,
    /// Slots rolled by a tick from a weekly template; slots that used their overbooking.
    pub rolled_slots: u64,
    pub overbooked_slots: u64,
    /// Cross-region steps (multi-region runs), and the seeds in which a cross-region bed
    /// was confirmed.
    pub remote: cross_region::RemoteStats,
    pub seeds_with_remote_confirmed: u64,
    pub wall: Duration,
}

impl Summary {
    /// Seeds per wall-clock second.
    pub fn seeds_per_sec(&self) -> f64 {
        self.seeds as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Runs seeds `from..from + n` on `threads` threads (each run is single-threaded and
/// independent), calling `progress` after each finished seed, in completion order.
pub fn run_many(
    from: u64,
    n: u64,
    opts: &Options,
    threads: usize,
    progress: &(dyn Fn(&RunReport, &Summary) + Sync),
) -> Summary {
    let started = Instant::now();
    let next = std::sync::atomic::AtomicU64::new(from);
    let summary = std::sync::Mutex::new(Summary::default());
    let end = from.saturating_add(n);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if seed >= end {
                    return;
                }
                let report = run_seed(seed, opts);
                let Ok(mut sum) = summary.lock() else {
                    return;
                };
                add(&mut sum, &report);
                sum.wall = started.elapsed();
                progress(&report, &sum);
            });
        }
    });
    let mut sum = summary.into_inner().unwrap_or_default();
    sum.wall = started.elapsed();
    sum
}

fn add(sum: &mut Summary, r: &RunReport) {
    sum.seeds += 1;
    if r.ok() {
        sum.passed += 1;
    } else {
        sum.failed += 1;
        if sum.failures.len() < 100 {
            sum.failures
                .push((r.seed, r.violations.first().cloned().unwrap_or_default()));
        }
    }
    let s = &r.stats;
    // Answered reads are operations too (a read that gave up is counted in `ops_gave_up`).
    sum.ops_acked += s.ops_acked + s.ops_refused + s.reads;
    sum.ops_total += s.ops_acked + s.ops_refused + s.reads + s.ops_failed + s.ops_gave_up;
    sum.reads += s.reads;
    sum.allocations += s.allocations;
    sum.events += s.events;
    sum.crashes += s.crashes;
    sum.partitions += s.partitions;
    sum.corruptions_detected += s.corruptions_detected;
    sum.replacements += s.replacements;
    sum.wipes += s.wipes;
    sum.wiped_refused += s.wiped_refused;
    sum.snapshots_written += s.snapshots_written;
    sum.crashes_in_snapshot += s.crashes_in_snapshot;
    for (name, [ok, refused]) in &s.lifecycle {
        let n = sum.lifecycle.entry(name).or_default();
        n[0] += ok;
        n[1] += refused;
        n[2] += u64::from(*ok > 0);
    }
    sum.no_capacity_on_matched += s.no_capacity_on_matched;
    sum.seeds_with_matched_report += u64::from(s.no_capacity_on_matched > 0);
    sum.seats_withdrawn += s.seats_withdrawn;
    sum.rolled_slots += s.rolled_slots;
    sum.overbooked_slots += s.overbooked_slots;
    sum.remote.add(&s.remote);
    sum.seeds_with_remote_confirmed += u64::from(s.remote.confirmed > 0);
}
