//! Apply throughput of the hold/confirm/release/tick mix on the GBA default region, one
//! thread. Run: `cargo bench -p ninety-benches --bench apply`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ninety_benches::mix::{self, Mix};
use ninety_engine::generate::Preset;
use std::time::Instant;

const COMMANDS_PER_ITER: u64 = 10_000;

fn apply(c: &mut Criterion) {
    let mut engine = mix::engine(Preset::Gba, true);
    let mut mix = Mix::new(&engine);
    // Warm the engine into its steady state (dedup table and hold indexes populated).
    mix.run(&mut engine, 200_000);
    let mut group = c.benchmark_group("apply");
    group.throughput(Throughput::Elements(COMMANDS_PER_ITER));
    group.bench_function("gba_hold_confirm_release_tick_mix", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                mix.run(&mut engine, COMMANDS_PER_ITER);
            }
            start.elapsed()
        })
    });
    group.finish();
    let c = engine
        .beds()
        .wards()
        .map(|w| engine.beds().counts(w.id).unwrap())
        .fold((0, 0), |a, c| (a.0 + c.held, a.1 + c.occupied));
    println!(
        "after the run: {} commands, {} beds held, {} occupied, {} dedup entries",
        mix.issued,
        c.0,
        c.1,
        engine.dedup().len()
    );
}

criterion_group!(benches, apply);
criterion_main!(benches);
