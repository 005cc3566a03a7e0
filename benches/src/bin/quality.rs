//! The matching quality report: one recorded burst of referrals on the GBA region, placed
//! greedily (one request at a time), in batches (`apply_batch`, runs of 64 and 1,024) and as
//! one offline solve of the whole burst, with travel, reach, urgent time to care, tier split
//! and the batched/optimal ratio of the total score. Run:
//! `cargo run --release -p ninety-benches --bin quality [-- <requests> <seed> [contended]]`.
//!
//! `contended`: all requests in person for one specialty from one city's hospitals (more
//! patients than the city's seats). Then the offline row is a true optimum (min-cost flow
//! over every open seat, `offline_optimum`) of the cost before load, and every strategy is
//! compared with it on that cost.

use ninety_benches::matching::{
    burst, burst_time, contended_burst, offline_optimum, refer, Quality,
};
use ninety_benches::mix;
use ninety_engine::generate::Preset;
use ninety_engine::Engine;
use std::time::Instant;

fn run(base: &Engine, name: &str, requests: &[ninety_engine::Request], batch: usize) -> Quality {
    let mut e = base.clone();
    let at = burst_time();
    let started = Instant::now();
    let mut outcomes = Vec::with_capacity(requests.len());
    for chunk in requests.chunks(batch) {
        outcomes.extend(e.apply_batch_with_limit(chunk, at, batch));
    }
    let q = Quality::measure(&e, requests, &outcomes);
    eprintln!("{name}: {:.2} s", started.elapsed().as_secs_f64());
    q
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5_000);
    let seed: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(90);
    let contended = args.get(3).is_some_and(|a| a == "contended");
    let mut base = mix::engine(Preset::Gba, true);
    // Optional: the solver's top-K per request (`candidates_per_request`).
    if let Some(k) = args.get(4).and_then(|a| a.parse().ok()) {
        let mut policy = base.match_policy().clone();
        policy.candidates_per_request = k;
        let set = ninety_engine::Request {
            id: ninety_engine::RequestId(u128::MAX - 1),
            command: ninety_engine::Command::SetMatchPolicy(policy),
        };
        let now = base.now();
        assert!(base.apply(&set, now).is_ok());
    }
    let mut requests = if contended {
        contended_burst(&base, n, seed, 1 << 100)
    } else {
        burst(&base, n, seed, 1 << 100)
    };
    refer(&mut base, &mut requests);
    let kind = if contended { "contended " } else { "" };
    println!("{kind}burst: {n} referrals, seed {seed}, GBA default region, one day of schedules");
    println!();
    println!("| strategy | placed | travel min (total) | inside 90 min | urgent time to care (mean min) | home/primary/big % (target 50/35/15) | total score | cost before load |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let greedy = run(&base, "greedy", &requests, 1);
    let b64 = run(&base, "batched 64", &requests, 64);
    let b1024 = run(&base, "batched 1024", &requests, 1_024);
    let optimum = run(&base, "offline optimum", &requests, n.max(1));
    for (name, q) in [
        ("greedy (one at a time)", &greedy),
        ("batched, runs of 64", &b64),
        ("batched, runs of 1,024", &b1024),
        ("offline (whole burst)", &optimum),
    ] {
        println!("{}", q.row(name));
    }
    if contended {
        let started = Instant::now();
        let (placed, cost) = offline_optimum(&base, &requests, burst_time());
        eprintln!("true optimum: {:.2} s", started.elapsed().as_secs_f64());
        println!(
            "| true optimum (min-cost flow, cost before load) | {placed}/{n} | | | | | | {cost} |"
        );
        let r = |q: &Quality| q.base_total as f64 / cost.max(1) as f64;
        println!();
        println!(
            "cost before load, ratio to the true optimum: greedy {:.4}, batched-64 {:.4}, batched-1024 {:.4}, bounded offline solve {:.4}",
            r(&greedy),
            r(&b64),
            r(&b1024),
            r(&optimum)
        );
    }
    let ratio = |q: &Quality| q.total_score as f64 / optimum.total_score.max(1) as f64;
    println!();
    println!(
        "score ratio to offline: greedy {:.4}, batched-64 {:.4}, batched-1024 {:.4}",
        ratio(&greedy),
        ratio(&b64),
        ratio(&b1024)
    );
}
