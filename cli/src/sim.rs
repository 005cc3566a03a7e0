//! `ninety sim ...`: the simulators (the deterministic fault simulator; the peak-day
//! generator and replayer) over the `ninety_sim` library.

use clap::Subcommand;
use ninety_sim::{run_many, run_seed, Options};
use std::io::Write;
use std::process::ExitCode;

/// The `ninety sim` subcommands.
#[derive(Subcommand)]
pub enum SimCmd {
    /// Peak-day traffic: `generate` a trace, `replay` it against a cluster.
    #[command(flatten)]
    Peak(crate::sim_replay::PeakCmd),
    /// Runs seeded fault simulations; with --seed, replays one seed verbosely.
    Faults {
        /// Number of seeds to run.
        #[arg(long, default_value_t = 100)]
        seeds: u64,
        /// First seed.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Replay exactly this seed (prints every notable event).
        #[arg(long)]
        seed: Option<u64>,
        /// Client operations per run.
        #[arg(long, default_value_t = 1000)]
        ops: u64,
        /// Worker threads (default: available cores).
        #[arg(long)]
        threads: Option<usize>,
    },
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
        } => faults(seeds, from, seed, ops, threads),
    }
}

fn faults(seeds: u64, from: u64, seed: Option<u64>, ops: u64, threads: Option<usize>) -> ExitCode {
    let mut opts = Options {
        ops,
        ..Options::default()
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
        println!("replay: {}", r.replay_command());
        return ExitCode::FAILURE;
    }
    let threads = threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let summary = run_many(from, seeds, &opts, threads, &|r, s| {
        if !r.ok() {
            eprintln!(
                "\nseed {} FAILED: {}\n  faults: {}\n  replay: {}",
                r.seed,
                r.violations.first().map_or("", String::as_str),
                r.faults,
                r.replay_command()
            );
        }
        if s.seeds % 10 == 0 || !r.ok() || s.seeds == seeds {
            eprint!(
                "\r{}/{seeds} seeds, {} failed, {:.1} seeds/s, {} ops",
                s.seeds,
                s.failed,
                s.seeds_per_sec(),
                s.ops_total
            );
            let _ = std::io::stderr().flush();
        }
    });
    eprintln!();
    println!(
        "{} seeds from {from}: {} passed, {} failed in {:.1} s ({:.1} seeds/s, {} ops, {} \
         crashes, {} partitions, {} corruptions detected, {} replacements)",
        summary.seeds,
        summary.passed,
        summary.failed,
        summary.wall.as_secs_f64(),
        summary.seeds_per_sec(),
        summary.ops_total,
        summary.crashes,
        summary.partitions,
        summary.corruptions_detected,
        summary.replacements
    );
    for (seed, v) in &summary.failures {
        println!(
            "FAILED seed {seed}: {v}\n  replay: cargo run --release -- sim faults --seed {seed}"
        );
    }
    if summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
