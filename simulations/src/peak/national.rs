//! A national peak morning: one trace per region of a layout (`ninety_engine::layout`),
//! replayed together against one multi-region deployment, each region's calls naming it
//! in the `ninety-region` header.
//!
//! China keeps one clock (Beijing time) across 60 degrees of longitude, so each province's
//! morning rush comes at its own Beijing hour: a region's slot releases and clinic peaks
//! move by its solar offset from Beijing (`solar_shift_minutes`: 4 minutes a degree; Urumqi
//! about two hours later, Shanghai a few minutes earlier). Every region's trace covers the
//! same Beijing-time window, so one replay sees the rushes roll westward.
//!
//! The GBA, Yunnan and ASEAN regions use their own scenarios; every other province uses the
//! `national` scenario with its region set to the province and its arrival rate divided
//! by the provinces' count (its share of the country's traffic).

use super::replay::ReplayOptions;
use super::scenario::{Scenario, Traffic};
use super::trace::Trace;
use super::{generate, GenerateOptions, ReplayResult};
use ninety_engine::generate::{gateway, Preset, PROVINCES};
use ninety_engine::layout::{layout, RegionPlan};
use std::path::{Path, PathBuf};

/// Longitude whose solar time is Beijing time's meridian (120°E) corrected to Beijing
/// itself, the reference of the shifts, degrees east.
pub const REFERENCE_LONGITUDE_DEG: f64 = 116.4;
/// Minutes of solar time per degree of longitude.
pub const SOLAR_MINUTES_PER_DEGREE: f64 = 4.0;
/// The trace's file name suffix in a layout's trace directory (`<region>.jsonl`).
pub const TRACE_SUFFIX: &str = ".jsonl";

/// One region's trace of a national morning.
pub struct RegionTrace {
    /// The region id (what the `ninety-region` header names).
    pub region: String,
    /// How much later than Beijing the region's rush comes, minutes (negative: earlier).
    pub shift_minutes: i32,
    pub trace: Trace,
}

/// How many minutes later than Beijing a region's local morning comes.
pub fn solar_shift_minutes(preset: Preset) -> i32 {
    let (_, lon) = gateway(preset);
    ((REFERENCE_LONGITUDE_DEG - lon) * SOLAR_MINUTES_PER_DEGREE).round() as i32
}

/// The scenario a region of a layout runs (module doc), its rush moved by its shift.
pub fn scenario_for(plan: &RegionPlan) -> Result<Scenario, String> {
    let base = match plan.preset {
        Preset::Gba => "gba",
        Preset::Yunnan => "yunnan",
        Preset::Asean => "asean",
        Preset::National | Preset::Province(_) => "national",
    };
    let mut sc = Scenario::load(base)?;
    if base == "national" {
        sc.name = format!("national-{}", plan.id);
        sc.region.preset = plan.id.clone();
        sc.traffic.journeys_per_minute /= PROVINCES.len() as f64;
    }
    shift_traffic(&mut sc.traffic, solar_shift_minutes(plan.preset));
    Ok(sc)
}

/// Moves a scenario's slot releases and clinic peaks by `minutes` of the local day.
fn shift_traffic(t: &mut Traffic, minutes: i32) {
    let last = f64::from(super::generate::MINUTES_PER_DAY - 1);
    let at = |m: f64| (m + f64::from(minutes)).clamp(0.0, last);
    for r in &mut t.slot_release_minutes {
        *r = at(f64::from(*r)) as u32;
    }
    for p in &mut t.clinic_peaks {
        p[0] = at(p[0]);
        p[1] = at(p[1]);
    }
}

/// Generates one trace per region of `layout_name` (`china`, `south`) with `opts` (the same
/// seed, window and scale for every region).
pub fn generate_layout(
    layout_name: &str,
    opts: &GenerateOptions,
) -> Result<Vec<RegionTrace>, String> {
    let plans = layout(layout_name)
        .ok_or_else(|| format!("layout: unknown layout {layout_name:?} (china or south)"))?;
    plans
        .iter()
        .map(|plan| {
            let sc = scenario_for(plan)?;
            let trace = generate(&sc, opts).map_err(|e| format!("region {}: {e}", plan.id))?;
            Ok(RegionTrace {
                region: plan.id.clone(),
                shift_minutes: solar_shift_minutes(plan.preset),
                trace,
            })
        })
        .collect()
}

/// Writes each region's trace to `dir/<region>.jsonl`; returns the paths.
pub fn write_layout(traces: &[RegionTrace], dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut out = Vec::new();
    for t in traces {
        let path = dir.join(format!("{}{TRACE_SUFFIX}", t.region));
        let f = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        t.trace
            .write(std::io::BufWriter::new(f))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        out.push(path);
    }
    Ok(out)
}

/// Reads the traces of a layout's trace directory: every `<region>.jsonl`, by region id.
pub fn read_layout(dir: &Path) -> Result<Vec<(String, Trace)>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let Some(region) = name.strip_suffix(TRACE_SUFFIX) else {
            continue;
        };
        if !ninety_engine::remote::is_region_key(region) {
            return Err(format!("{}: not named for a region id", path.display()));
        }
        out.push((region.to_string(), Trace::read_file(&path)?));
    }
    if out.is_empty() {
        return Err(format!(
            "{}: no <region>{TRACE_SUFFIX} trace",
            dir.display()
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Replays every region's trace at once, each routed to its region, and writes each
/// region's report into `report_dir/<region>/`. One region's failure fails the whole run
/// (after every replay ended).
pub async fn replay_layout(
    traces: &[(String, Trace)],
    opts: &ReplayOptions,
    report_dir: &Path,
) -> Result<Vec<(String, ReplayResult, PathBuf)>, String> {
    let runs = traces.iter().map(|(region, trace)| {
        let mut o = opts.clone();
        o.route = Some(region.clone());
        o.progress = false;
        let dir = report_dir.join(region);
        async move {
            let (result, page) = super::replay_trace(trace, &o, &dir)
                .await
                .map_err(|e| format!("region {region}: {e}"))?;
            Ok::<_, String>((region.clone(), result, page))
        }
    });
    futures_util::future::join_all(runs)
        .await
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> GenerateOptions {
        GenerateOptions {
            seed: 3,
            minutes: Some(2),
            start_minute: Some(480),
            scale: 0.05,
            days: None,
        }
    }

    #[test]
    fn the_west_rushes_later_than_beijing() {
        let by_name = |n: &str| solar_shift_minutes(n.parse().unwrap());
        assert_eq!(by_name("beijing"), 0);
        assert!(
            (-25..=-15).contains(&by_name("shanghai")),
            "{}",
            by_name("shanghai")
        );
        assert!(
            (110..=120).contains(&by_name("xinjiang")),
            "{}",
            by_name("xinjiang")
        );
        assert!((50..=60).contains(&solar_shift_minutes(Preset::Yunnan)));
        let gba = scenario_for(&layout("south").unwrap()[0]).unwrap();
        let base = Scenario::load("gba").unwrap();
        let shift = solar_shift_minutes(Preset::Gba) as u32;
        assert_eq!(
            gba.traffic.slot_release_minutes[0],
            base.traffic.slot_release_minutes[0] + shift
        );
    }

    #[test]
    fn a_layout_gives_one_trace_per_region_and_reads_back() {
        let traces = generate_layout("south", &small()).unwrap();
        let regions: Vec<&str> = traces.iter().map(|t| t.region.as_str()).collect();
        assert_eq!(regions, ["gba", "yunnan", "asean", "hainan"]);
        for t in &traces {
            assert_eq!(t.trace.header.region.as_deref(), Some(t.region.as_str()));
            assert!(!t.trace.events.is_empty(), "{}: no events", t.region);
        }
        let dir = std::env::temp_dir().join(format!("ninety-national-{}", std::process::id()));
        let paths = write_layout(&traces, &dir).unwrap();
        assert_eq!(paths.len(), 4);
        let back = read_layout(&dir).unwrap();
        let names: Vec<&str> = back.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(names, ["asean", "gba", "hainan", "yunnan"]);
        for (region, trace) in &back {
            let written = traces.iter().find(|t| &t.region == region).unwrap();
            assert_eq!(trace.events.len(), written.trace.events.len());
        }
        std::fs::remove_dir_all(&dir).unwrap();
        let err = generate_layout("mars", &small()).err().unwrap();
        assert!(err.contains("unknown layout"), "{err}");
    }
}
