//! Region generation, loading and 90-minute reach computation for the GBA and national
//! presets; snapshot and state-hash cost on the GBA region with a day's schedules.
//! Run: `cargo bench -p ninety-benches --bench region`.

use criterion::{criterion_group, criterion_main, Criterion};
use ninety_engine::generate::{self, Preset};
use ninety_engine::*;
use std::hint::black_box;

fn region(c: &mut Criterion) {
    let mut group = c.benchmark_group("region");
    group.sample_size(10);
    for (name, preset) in [("gba", Preset::Gba), ("national", Preset::National)] {
        group.bench_function(format!("generate_{name}"), |b| {
            b.iter(|| black_box(generate::region(preset, generate::DEFAULT_SEED)))
        });
        let file = generate::region(preset, generate::DEFAULT_SEED);
        let mut graph = graph::ReferralGraph::default();
        for r in &file.roads {
            graph.set_road(r.a, r.b, Some(r.travel_minutes));
        }
        let ids: Vec<HospitalId> = file.hospitals.iter().map(|h| h.id).collect();
        group.bench_function(format!("reach_all_{name}"), |b| {
            b.iter(|| graph.rebuild(ids.iter().copied(), 90))
        });
        graph.rebuild(ids.iter().copied(), 90);
        let origin = ids[0];
        group.bench_function(format!("reach_query_{name}"), |b| {
            b.iter(|| black_box(graph.reach(black_box(origin)).len()))
        });
        group.bench_function(format!("load_{name}"), |b| {
            b.iter(|| black_box(load(&file, &[], LogTime(0)).map(|e| e.counters())))
        });
    }
    let engine = ninety_benches::mix::engine(Preset::Gba, true);
    group.bench_function("snapshot_gba_with_schedules", |b| {
        b.iter(|| black_box(engine.snapshot().map(|s| s.len())))
    });
    group.bench_function("state_hash_gba_with_schedules", |b| {
        b.iter(|| black_box(engine.state_hash()))
    });
    let bytes = engine.snapshot().unwrap_or_default();
    println!(
        "GBA snapshot with one day of schedules: {} bytes",
        bytes.len()
    );
    group.bench_function("restore_gba_with_schedules", |b| {
        b.iter(|| black_box(Engine::restore(&bytes).map(|e| e.counters())))
    });
    group.finish();
}

criterion_group!(benches, region);
criterion_main!(benches);
