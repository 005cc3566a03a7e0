//! `ninety sim ...`: the simulators (the deterministic fault simulator; the peak-day
//! generator and replayer) over the `ninety_sim` library.

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use ninety_sim::{run_many, run_seed, Options, RunReport};
use std::process::ExitCode;
use std::sync::Mutex;

/// The `ninety sim` subcommands.
#[derive(Subcommand)]
pub enum SimCmd {
    /// Peak-day traffic: `generate` a trace, `replay` it against a cluster.
    #[command(flatten)]
    Peak(crate::sim_replay::PeakCmd),
    /// Runs seeded fault simulations; with --seed, replays one seed verbosely.
    Faults {
        /// Number of seeds to run (at least 1).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
        seeds: u64,
        /// First seed.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Replay exactly this seed (prints every notable event).
        #[arg(long)]
        seed: Option<u64>,
        /// Client operations per run, 1 to 1000000.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=OPS_MAX))]
        ops: u64,
        /// Worker threads, 1 to 1024 (default: available cores).
        #[arg(long, value_parser = parse_threads)]
        threads: Option<usize>,
        /// Regions (Raft groups) per run: 1, or 2 for an origin and a destination region
        /// with cross-region referrals between them.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
        regions: u8,
    },
}

/// Most client operations one simulated run may take (`--ops`).
const OPS_MAX: u64 = 1_000_000;
/// Most worker threads (`--threads`).
const THREADS_MAX: usize = 1024;

fn parse_threads(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=THREADS_MAX).contains(&n) => Ok(n),
        _ => Err(format!(
            "{s:?} is not a whole number from 1 to {THREADS_MAX}"
        )),
    }
}

/// Runs a `ninety sim` subcommand.
pub fn run(cmd: SimCmd) -> ExitCode {
    match cmd {
        SimCmd::Peak(cmd) => crate::sim_replay::run(cmd),
        SimCmd::Faults {
            seeds,
            from,
            seed,
            ops,
            threads,
            regions,
        } => faults(seeds, from, seed, ops, threads, regions),
    }
}

fn faults(
    seeds: u64,
    from: u64,
    seed: Option<u64>,
    ops: u64,
    threads: Option<usize>,
    regions: u8,
) -> ExitCode {
    if from.checked_add(seeds).is_none() {
        eprintln!(
            "error: --from {from} plus --seeds {seeds} is beyond the last seed ({})",
            u64::MAX
        );
        return ExitCode::from(2);
    }
    let mut opts = Options {
        ops,
        regions,
        ..Options::default()
    };
    // The replay command of a run; `--ops` only when it is not the default.
    let replay = |r: &RunReport| {
        let mut cmd = r.replay_command();
        if ops != Options::default().ops {
            cmd.push_str(&format!(" --ops {ops}"));
        }
        if regions > 1 {
            cmd.push_str(&format!(" --regions {regions}"));
        }
        cmd
    };
    if let Some(seed) = seed {
        opts.verbose = true;
        let r = run_seed(seed, &opts);
        println!("seed {seed} faults: {}", r.faults);
        println!("stats: {:?}", r.stats);
        if r.ok() {
            println!("seed {seed}: ok");
            return ExitCode::SUCCESS;
        }
        for v in &r.violations {
            println!("violation: {v}");
        }
        println!("replay: {}", replay(&r));
        return ExitCode::FAILURE;
    }
    let threads = threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let bar = ProgressBar::new(seeds);
    if let Ok(style) = ProgressStyle::with_template(
        "{elapsed_precise} [{bar:40.cyan/blue}] {pos}/{len} seeds ({per_sec}, eta {eta}) {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    // Without a terminal the bar is hidden: a plain line every tenth of the run instead.
    let plain_every = (seeds / 10).max(1);
    // The failure with the lowest seed: its replay command ends the run.
    let first_failure: Mutex<Option<(u64, String)>> = Mutex::new(None);
    let summary = run_many(from, seeds, &opts, threads, &|r, s| {
        if !r.ok() {
            bar.suspend(|| {
                eprintln!(
                    "seed {} FAILED: {}\n  faults: {}\n  replay: {}",
                    r.seed,
                    r.violations.first().map_or("", String::as_str),
                    r.faults,
                    replay(r)
                )
            });
            if let Ok(mut first) = first_failure.lock() {
                if first.as_ref().is_none_or(|(seed, _)| r.seed < *seed) {
                    *first = Some((r.seed, replay(r)));
                }
            }
        }
        bar.set_message(format!(
            "{} failed, {} ops, {} crashes, {} partitions",
            s.failed, s.ops_total, s.crashes, s.partitions
        ));
        bar.set_position(s.seeds);
        if bar.is_hidden() && (s.seeds % plain_every == 0 || s.seeds == seeds) {
            eprintln!(
                "{}/{seeds} seeds, {} failed, {:.1} seeds/s, {} ops",
                s.seeds,
                s.failed,
                s.seeds_per_sec(),
                s.ops_total
            );
        }
    });
    bar.finish_and_clear();
    println!(
        "{} seeds from {from}: {} passed, {} failed in {:.1} s ({:.1} seeds/s, {} ops of which \
         {} reads and {} allocations, {} crashes, {} partitions, {} corruptions detected, {} \
         replacements, {} wiped disks of which {} refused, {} snapshots written in the \
         background, {} crashes between a snapshot file and its record)",
        summary.seeds,
        summary.passed,
        summary.failed,
        summary.wall.as_secs_f64(),
        summary.seeds_per_sec(),
        summary.ops_total,
        summary.reads,
        summary.allocations,
        summary.crashes,
        summary.partitions,
        summary.corruptions_detected,
        summary.replacements,
        summary.wipes,
        summary.wiped_refused,
        summary.snapshots_written,
        summary.crashes_in_snapshot
    );
    let lifecycle: Vec<String> = summary
        .lifecycle
        .iter()
        .map(|(name, [ok, refused, seeds])| {
            format!("{name} {ok} ok + {refused} refused (in {seeds} seeds)")
        })
        .collect();
    println!(
        "schedules and referrals: {}; {} no-capacity reports on a MATCHED referral (in {} \
         seeds), {} seats withdrawn with their slot, {} slots rolled by a tick from a \
         template, {} slots into overbooking",
        lifecycle.join(", "),
        summary.no_capacity_on_matched,
        summary.seeds_with_matched_report,
        summary.seats_withdrawn,
        summary.rolled_slots,
        summary.overbooked_slots
    );
    if regions > 1 {
        let r = &summary.remote;
        println!(
            "cross-region: {} steps sent; recorded {} held, {} confirmed, {} released, {} \
             refused, {} stuck; {} seeds with a confirmed bed; driver crashes: {} on a leader \
             change, {} between a step sent and its answer recorded; at the end {} beds \
             confirmed and {} released, {} orphan holds waited out by their TTL",
            r.sent,
            r.held,
            r.confirmed,
            r.released,
            r.refused,
            r.stuck,
            summary.seeds_with_remote_confirmed,
            r.crashes_on_leader_change,
            r.crashes_between,
            r.final_confirmed,
            r.final_released,
            r.orphans_at_end
        );
    }
    for (seed, v) in &summary.failures {
        println!("FAILED seed {seed}: {v}");
    }
    let first = first_failure.into_inner().ok().flatten();
    match first {
        None if summary.failed == 0 => ExitCode::SUCCESS,
        None => ExitCode::FAILURE,
        Some((_, cmd)) => {
            println!("replay the first failing seed: {cmd}");
            ExitCode::FAILURE
        }
    }
}
