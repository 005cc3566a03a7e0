//! The apply bench's mix without criterion, for instruction counts: warms the engine like
//! `benches/apply.rs`, then applies a measured run inside `measured`, which callgrind can
//! collect alone. Run:
//! `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measured*'
//! target/release/examples/apply_profile [warm-up commands] [measured commands]`.

use ninety_benches::mix::{self, Mix};
use ninety_engine::generate::Preset;
use ninety_engine::Engine;
use std::time::Instant;

/// Commands applied before the measured run, as the criterion bench does.
const WARM_UP_COMMANDS_DEFAULT: u64 = 200_000;
/// Commands in the measured run.
const MEASURED_COMMANDS_DEFAULT: u64 = 100_000;

/// The measured run, kept out of line so callgrind's `--toggle-collect` can name it.
#[inline(never)]
fn measured(mix: &mut Mix, engine: &mut Engine, n: u64) -> u64 {
    mix.run(engine, n)
}

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>());
    let warm_up = args
        .next()
        .and_then(Result::ok)
        .unwrap_or(WARM_UP_COMMANDS_DEFAULT);
    let n = args
        .next()
        .and_then(Result::ok)
        .unwrap_or(MEASURED_COMMANDS_DEFAULT);
    let mut engine = mix::engine(Preset::Gba, true);
    let mut mix = Mix::new(&engine);
    mix.run(&mut engine, warm_up);
    let start = Instant::now();
    let refused = measured(&mut mix, &mut engine, n);
    let elapsed = start.elapsed();
    println!(
        "{n} commands in {elapsed:?} ({:.0} commands/s), {refused} refused, {} dedup entries",
        n as f64 / elapsed.as_secs_f64(),
        engine.dedup().len()
    );
}
