//! Totality of the engine under any input: libFuzzer bytes decode (postcard) into a run of
//! commands, batches, clock moves, reads and snapshot round trips on the fixture region, and
//! the shared harness checks its oracle after every step (see `docs/fuzzing.md`).

#![no_main]

use libfuzzer_sys::fuzz_target;

// The fixture region and the harness are the ones the property tests use.
#[allow(dead_code)]
#[path = "../../tests/engine/fixture.rs"]
mod fixture;
#[path = "../../tests/engine/harness.rs"]
mod harness;

fuzz_target!(|data: &[u8]| {
    let ops = harness::ops_from_bytes(data);
    let mut h = harness::Harness::new();
    if let Err(e) = h.run(&ops) {
        panic!("oracle broken: {e}");
    }
});
