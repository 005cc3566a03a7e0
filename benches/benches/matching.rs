//! Matching benches on the GBA default region (10,000 doctors, ~300,000 slots): query
//! latency on the published view while another thread applies 50,000 commands/s (with our
//! own p50/p99 over a fixed number of queries), allocation throughput at batch sizes 1, 64
//! and 1,024, and the cost of publishing the view after a batch.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ninety_benches::matching::{allocation_cases, burst, burst_time, exhaust, refer, undo};
use ninety_benches::mix::{self, Mix};
use ninety_engine::generate::Preset;
use ninety_engine::matching::{match_specialist, SlotQuery};
use ninety_engine::{Command, Engine, Request, RequestId};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Commands per second the background thread applies.
const BACKGROUND_COMMANDS_PER_S: u64 = 50_000;
/// Commands per background batch (one batch per millisecond at the target rate).
const BACKGROUND_BATCH: u64 = 50;
/// Queries timed for the percentile report.
const TIMED_QUERIES: usize = 20_000;

fn queries(engine: &Engine) -> Vec<SlotQuery> {
    burst(engine, 256, 7, 1)
        .into_iter()
        .filter_map(|r| match r.command {
            Command::AllocateSlot { mut query, .. } => {
                query.limit = 10;
                Some(query)
            }
            _ => None,
        })
        .collect()
}

fn query_latency(c: &mut Criterion) {
    let mut engine = mix::engine(Preset::Gba, true);
    let reader = engine.view_reader();
    let qs = queries(&engine);
    let stop = Arc::new(AtomicBool::new(false));
    let applied = Arc::new(AtomicU64::new(0));
    let (stop2, applied2) = (stop.clone(), applied.clone());
    let writer = std::thread::spawn(move || {
        let mut mix = Mix::new(&engine);
        let started = Instant::now();
        while !stop2.load(Ordering::Relaxed) {
            let reqs: Vec<_> = (0..BACKGROUND_BATCH).map(|_| mix.next_request()).collect();
            let outs = engine.apply_batch(&reqs, mix.now);
            for (r, o) in reqs.iter().zip(&outs) {
                mix.observe(r, o);
            }
            let done = applied2.fetch_add(BACKGROUND_BATCH, Ordering::Relaxed) + BACKGROUND_BATCH;
            let due = Duration::from_micros(done * 1_000_000 / BACKGROUND_COMMANDS_PER_S);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    });
    let mut i = 0;
    c.bench_function("match_specialist under 50k cmd/s", |b| {
        b.iter(|| {
            i = (i + 1) % qs.len();
            match_specialist(&*reader.load(), &qs[i]).map(|r| r.candidates.len())
        })
    });
    let started = Instant::now();
    let before = applied.load(Ordering::Relaxed);
    let mut samples: Vec<u64> = (0..TIMED_QUERIES)
        .map(|n| {
            let t = Instant::now();
            let r = match_specialist(&*reader.load(), &qs[n % qs.len()]);
            std::hint::black_box(r.ok());
            t.elapsed().as_nanos() as u64
        })
        .collect();
    let rate = (applied.load(Ordering::Relaxed) - before) as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    writer.join().ok();
    samples.sort_unstable();
    let p = |q: usize| samples[(samples.len() * q / 100).min(samples.len() - 1)] as f64 / 1e3;
    println!(
        "match_specialist: {TIMED_QUERIES} queries, p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs; background {:.0} commands/s",
        p(50),
        p(99),
        samples[samples.len() - 1] as f64 / 1e3,
        rate
    );
}

fn allocation_throughput(c: &mut Criterion) {
    let mut base = mix::engine(Preset::Gba, true);
    let mut reqs = burst(&base, 1_024, 11, 1 << 100);
    refer(&mut base, &mut reqs);
    let mut g = c.benchmark_group("allocate_slot");
    g.sample_size(10);
    g.throughput(Throughput::Elements(reqs.len() as u64));
    for batch in [1usize, 64, 1_024] {
        g.bench_function(format!("batch {batch}"), |b| {
            b.iter_batched(
                || base.clone(),
                |mut e| {
                    for chunk in reqs.chunks(batch) {
                        std::hint::black_box(e.apply_batch(chunk, burst_time()));
                    }
                    e
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

fn publish_cost(c: &mut Criterion) {
    let mut engine = mix::engine(Preset::Gba, true);
    let _reader = engine.view_reader();
    let mut mix = Mix::new(&engine);
    let mut slot_reqs = burst(&engine, 100_000, 13, 1 << 101);
    refer(&mut engine, &mut slot_reqs);
    let mut slot_reqs = slot_reqs.into_iter();
    c.bench_function("publish view after 64 commands", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // 32 bed-mix commands and 32 slot allocations, applied without publishing.
                for _ in 0..32 {
                    let r = mix.next_request();
                    let o = engine.apply(&r, mix.now);
                    mix.observe(&r, &o);
                    if let Some(s) = slot_reqs.next() {
                        std::hint::black_box(engine.apply(&s, mix.now).ok());
                    }
                }
                let t = Instant::now();
                engine.publish_view();
                total += t.elapsed();
            }
            total
        })
    });
}

/// The cost of one allocation command inside apply, granted and refused, for slots and beds
/// (`allocation_cases`). Only the allocation is timed; a granted one is given back
/// afterwards, untimed, so every iteration sees the same state.
fn refusal_cost(c: &mut Criterion) {
    let mut engine = mix::engine(Preset::Gba, true);
    let at = burst_time();
    exhaust(&mut engine, at, 1 << 105);
    let mut g = c.benchmark_group("allocation cost");
    let mut next_id = 1u128 << 110;
    for case in allocation_cases(&engine) {
        g.bench_function(case.name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    next_id += 2;
                    let r = Request {
                        id: RequestId(next_id),
                        command: case.command.clone(),
                    };
                    let t = Instant::now();
                    let out = engine.apply(&r, at);
                    total += t.elapsed();
                    assert_eq!(out.is_ok(), case.granted, "{}: {out:?}", case.name);
                    if let Some(command) = undo(&out) {
                        let id = RequestId(next_id + 1);
                        let undone = engine.apply(&Request { id, command }, at);
                        assert!(undone.is_ok(), "{undone:?}");
                    }
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    query_latency,
    allocation_throughput,
    publish_cost,
    refusal_cost
);
criterion_main!(benches);
