//! Peak-day traffic: scenarios, a generator, a versioned trace format, open-loop replay
//! against a real cluster, and a readable report.
//!
//! * [`scenario`]: the documented TOML scenarios (`simulations/scenarios/`, built in).
//! * [`generate`]: a seeded peak day → a [`trace::Trace`], byte-identical per seed.
//! * [`trace`]: the JSON-lines format, version 2; version 1 still read
//!   (`docs/simulation.md`).
//! * [`convert`]: a CSV of appointments (columns mapped by name) → a trace.
//! * [`replay`]: open-loop replay through the gRPC API, latency from scheduled time;
//!   [`send`] speaks the API, [`timeline`] maps the trace's days onto the cluster's
//!   (calendar) or onto a schedule [`live`] publishes on the replay's own clock.
//! * [`report`] and [`charts`]: the JSON summary and the self-contained HTML page.
//! * [`national`]: a national peak morning, one trace per region of a layout, each
//!   region's rush at its own Beijing hour, replayed together against a multi-region
//!   deployment.
//!
//! The commands `ninety sim generate`, `ninety sim convert` and `ninety sim replay` call
//! [`generate_file`], [`convert::convert_file`] and [`replay_file`].

pub mod charts;
pub mod convert;
pub mod generate;
pub mod live;
pub mod national;
pub mod replay;
pub mod report;
pub mod scenario;
pub mod send;
pub mod timeline;
pub mod trace;

#[cfg(test)]
mod report_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_v2;

pub use generate::{generate, GenerateOptions};
pub use replay::{replay, ReplayOptions};
pub use report::{summary_line, write_report, ReplayResult};
pub use scenario::Scenario;
pub use timeline::{ScheduleMode, SlotDay};
pub use trace::{Event, Header, Op, Ref, Trace, TraceError};

use std::path::{Path, PathBuf};

/// Generates a trace for a scenario (a built-in name or a TOML path) and writes it to
/// `out`; returns the number of events.
pub fn generate_file(scenario: &str, opts: &GenerateOptions, out: &Path) -> Result<u64, String> {
    let sc = Scenario::load(scenario)?;
    let trace = generate(&sc, opts)?;
    let f = std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    trace
        .write(std::io::BufWriter::new(f))
        .map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(trace.events.len() as u64)
}

/// The region a trace's header names, when it is a built-in preset.
pub fn trace_region(trace: &Trace) -> Option<ninety_engine::region_file::RegionFile> {
    preset_region(trace.header.region.as_deref()?, trace.header.region_seed)
}

/// A built-in preset's region (`gba`, `yunnan`, `asean`, `national`) at `seed` (default
/// the cluster's, 90).
pub fn preset_region(
    name: &str,
    seed: Option<u64>,
) -> Option<ninety_engine::region_file::RegionFile> {
    let preset: ninety_engine::generate::Preset = name.parse().ok()?;
    let seed = seed.unwrap_or(ninety_engine::generate::DEFAULT_SEED);
    Some(ninety_engine::generate::region(preset, seed))
}

/// Replays a trace file against `opts.targets` and writes the report into `report_dir`;
/// returns the result and the HTML page's path.
pub async fn replay_file(
    trace: &Path,
    opts: &ReplayOptions,
    report_dir: &Path,
) -> Result<(ReplayResult, PathBuf), String> {
    let trace = Trace::read_file(trace)?;
    replay_trace(&trace, opts, report_dir).await
}

/// Replays an in-memory trace and writes the report into `report_dir`.
pub async fn replay_trace(
    trace: &Trace,
    opts: &ReplayOptions,
    report_dir: &Path,
) -> Result<(ReplayResult, PathBuf), String> {
    let region = trace_region(trace);
    let mut result = replay(trace, opts, region.as_ref()).await?;
    if let Some((_, text)) = scenario::BUILT_IN
        .iter()
        .find(|(n, _)| *n == trace.header.scenario)
    {
        if let Ok(sc) = Scenario::parse(text) {
            result.description = sc.description;
        }
    }
    let page = write_report(report_dir, &result)?;
    Ok((result, page))
}
