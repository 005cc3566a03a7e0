//! `ninety-benches`: the workloads shared by ninety's benchmarks.
//!
//! Owns the benchmark workloads (command mixes over generated regions) so criterion benches
//! and the cluster benchmark measure the same thing. Results are recorded in
//! `docs/performance.md`; no test here asserts on time.

pub mod matching;
pub mod mix;
pub mod regions;
