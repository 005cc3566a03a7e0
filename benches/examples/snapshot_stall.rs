//! How long a snapshot holds the node task, before and after snapshots left it (issue 13,
//! "Snapshots stall the node"): not a benchmark, one measurement of each step on one
//! engine. Builds the GBA region with a day of schedules, every ward at `BEDS_PER_WARD`
//! beds up to the region's bed limit (2,000,000: the largest region the engine admits),
//! then times what the node task did before (encode the whole state, write and fsync the
//! snapshot file) and what it does now (take an image), and what moved to the writer
//! thread. Run: `cargo run --release -p ninety-benches --example snapshot_stall`.

use ninety_cluster::eraftpb::Snapshot;
use ninety_cluster::storage::SnapshotFiles;
use ninety_engine::generate::{self, Preset};
use ninety_engine::limits::{BEDS_PER_REGION_MAX, BEDS_PER_WARD_MAX};
use ninety_engine::{load, time, Engine};
use std::time::Instant;

/// Beds per ward in the measured region (the per-ward limit).
const BEDS_PER_WARD: u32 = BEDS_PER_WARD_MAX as u32;

fn big_region() -> Engine {
    let mut file = generate::region(Preset::Gba, generate::DEFAULT_SEED);
    let wards = BEDS_PER_REGION_MAX / BEDS_PER_WARD as usize;
    let kept: Vec<_> = file.wards.iter().take(wards).map(|w| w.ward.id).collect();
    file.wards.retain(|w| kept.contains(&w.ward.id));
    for w in &mut file.wards {
        w.beds = BEDS_PER_WARD;
        w.ward.staffed_beds = BEDS_PER_WARD;
    }
    let schedules = generate::schedules(&file, generate::DEFAULT_DAY_START, 1);
    let at = generate::DEFAULT_DAY_START.minus_ms(time::MS_PER_DAY);
    load(&file, &schedules, at).expect("the big region loads")
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn main() {
    let started = Instant::now();
    let engine = big_region();
    let beds: usize = engine
        .beds()
        .wards()
        .map(|w| engine.beds().beds_in_ward(w.id))
        .sum();
    println!(
        "region: {} wards, {beds} beds, built in {:.0} ms",
        engine.beds().wards().count(),
        ms(started)
    );
    let dir = tempfile_dir();
    let files = SnapshotFiles::open(&dir).expect("snapshot dir");

    // Before: the poll encoded and wrote the snapshot itself.
    let t = Instant::now();
    let bytes = engine.snapshot().expect("encode");
    let encode_ms = ms(t);
    let t = Instant::now();
    let mut snap = Snapshot::default();
    (snap.mut_metadata().index, snap.mut_metadata().term) = (10, 1);
    snap.data = bytes.clone().into();
    files.write(&snap).expect("write");
    let write_ms = ms(t);
    println!(
        "before, on the node task: encode {encode_ms:.0} ms + write and fsync {write_ms:.0} ms \
         = {:.0} ms for {} bytes",
        encode_ms + write_ms,
        bytes.len()
    );

    // A full clone (what the state hash used to copy on the node task).
    let t = Instant::now();
    let copy = engine.clone();
    println!("a clone of the engine: {:.1} ms", ms(t));
    drop(copy);

    // After: the node task takes an image; the writer encodes it.
    let t = Instant::now();
    let image = engine.image();
    let image_ms = ms(t);
    let t = Instant::now();
    let again = image.snapshot().expect("encode the image");
    let writer_ms = ms(t);
    assert_eq!(again, bytes, "the image encodes as the engine did");
    println!(
        "after, on the node task: image {image_ms:.2} ms; on the writer thread: encode \
         {writer_ms:.0} ms + write as before"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fresh directory under the system's temporary directory.
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ninety-snapshot-stall-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
