//! `ninety sim generate`, `ninety sim convert` and `ninety sim replay`: peak-day traces
//! over `ninety_sim::peak`, and the short replay `ninety demo` runs against its local
//! cluster.

use clap::Subcommand;
use ninety_sim::peak::{
    self, convert, generate, national, replay, GenerateOptions, ReplayOptions, Scenario,
    ScheduleMode, SlotDay,
};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The peak-day subcommands of `ninety sim`.
#[derive(Subcommand)]
pub enum PeakCmd {
    /// Generates a peak-day trace (JSON lines, format version 2), or with --layout one per
    /// region of a layout (a national peak morning: each region's rush at its own hour).
    Generate {
        /// gba, yunnan, asean, national, or a scenario TOML file.
        #[arg(long, default_value = "gba", conflicts_with = "layout")]
        scenario: String,
        /// A layout (`south`, `china`): one trace per region, written as
        /// `<out>/<region>.jsonl` (--out is then a directory).
        #[arg(long)]
        layout: Option<String>,
        /// The generator's seed: the same seed gives the same trace, byte for byte.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Minutes of trace, 1 to 1440 (default: the scenario's).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(generate::TRACE_MINUTES_MAX)))]
        minutes: Option<u32>,
        /// Minute of the local day to start at, 0 to 1439 (default: the scenario's, 07:50).
        #[arg(long, value_parser = clap::value_parser!(u32).range(0..i64::from(generate::MINUTES_PER_DAY)))]
        start_minute: Option<u32>,
        /// Multiplier of the scenario's arrival rate, above 0 and at most 1000.
        #[arg(long, default_value_t = 1.0, value_parser = parse_scale)]
        scale: f64,
        /// Days of traffic, 1 to 92, each from --start-minute for --minutes (default: the
        /// scenario's, 1).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(generate::TRACE_DAYS_MAX)))]
        days: Option<u32>,
        /// Where to write the trace (with --layout, the directory of the traces).
        #[arg(long)]
        out: PathBuf,
    },
    /// Converts a CSV of appointments (one row each: booked at, appointment at, and
    /// optional patient, specialty, no-show, cancellation, hospital, age, sex, language,
    /// mode) into a trace; columns are found by name (docs/simulation.md, "Converting a
    /// CSV of appointments").
    Convert(Box<ConvertArgs>),
    /// Replays a trace open-loop against a cluster and writes an HTML report and a JSON
    /// summary.
    Replay(Box<ReplayArgs>),
}

fn parse_f64(s: &str) -> Result<f64, String> {
    s.trim()
        .parse::<f64>()
        .map_err(|_| format!("{s:?} is not a number"))
}

/// Parses `--scale`: the generator's range.
fn parse_scale(s: &str) -> Result<f64, String> {
    let scale = parse_f64(s)?;
    if scale > 0.0 && scale <= generate::SCALE_MAX {
        Ok(scale)
    } else {
        Err(format!("{scale:?} is outside (0, {}]", generate::SCALE_MAX))
    }
}

/// Parses `--max-in-flight`.
fn parse_in_flight(s: &str) -> Result<usize, String> {
    let n = s
        .trim()
        .parse::<usize>()
        .map_err(|_| format!("{s:?} is not a whole number"))?;
    replay::check_max_in_flight(n)
}

/// Parses `--day-start` (see there).
pub fn parse_slot_day(s: &str) -> Result<SlotDay, String> {
    const MS_PER_DAY: u64 = 24 * 60 * 60 * 1000;
    match s {
        "discover" => return Ok(SlotDay::Discover),
        "weekday" => return Ok(SlotDay::Weekday),
        "as-written" => return Ok(SlotDay::AsWritten),
        _ => {}
    }
    if let Ok(ms) = s.parse::<u64>() {
        return Ok(SlotDay::At(ms / MS_PER_DAY * MS_PER_DAY));
    }
    let bad = || format!("{s:?}: expected discover, weekday, as-written, YYYY-MM-DD or Unix ms");
    let parts: Vec<&str> = s.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(bad());
    };
    let num = |t: &str| t.parse::<i64>().map_err(|_| bad());
    let days = peak::trace::days_from_civil(num(y)?, num(m)?, num(d)?).ok_or_else(bad)?;
    Ok(SlotDay::At(days as u64 * MS_PER_DAY))
}

/// Parses `--schedule`.
pub fn parse_schedule(s: &str) -> Result<ScheduleMode, String> {
    match s {
        "calendar" => Ok(ScheduleMode::Calendar),
        "live" => Ok(ScheduleMode::Live),
        _ => Err(format!("{s:?}: expected calendar or live")),
    }
}

/// Reads `--region`: a built-in preset or a region JSON file.
fn load_region(spec: &str) -> Result<ninety_engine::region_file::RegionFile, String> {
    if let Some(r) = peak::preset_region(spec, None) {
        return Ok(r);
    }
    let text = std::fs::read_to_string(spec)
        .map_err(|e| format!("--region {spec}: not a built-in region and not a file: {e}"))?;
    ninety_engine::region_file::RegionFile::from_json(&text)
        .map_err(|e| format!("--region {spec}: {e}"))
}

/// Runs a peak-day subcommand.
pub fn run(cmd: PeakCmd) -> ExitCode {
    let result = match cmd {
        PeakCmd::Generate {
            scenario,
            layout,
            seed,
            minutes,
            start_minute,
            scale,
            days,
            out,
        } => {
            let opts = GenerateOptions {
                seed,
                minutes,
                start_minute,
                scale,
                days,
            };
            generate_traces(&scenario, layout.as_deref(), &opts, &out)
        }
        PeakCmd::Replay(args) => match args.options() {
            Ok(opts) => replay_traces(&args, &opts),
            Err(code) => return code,
        },
        PeakCmd::Convert(args) => match args.options() {
            Ok(opts) => convert::convert_file(&args.csv, &args.out, &opts).map(|r| {
                println!("{}", r.line());
                println!("trace written to {}", args.out.display());
            }),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `ninety sim generate`: one scenario's trace, or one per region of a layout.
fn generate_traces(
    scenario: &str,
    layout: Option<&str>,
    opts: &GenerateOptions,
    out: &Path,
) -> Result<(), String> {
    let Some(layout) = layout else {
        let n = peak::generate_file(scenario, opts, out)?;
        println!("{n} events written to {}", out.display());
        return Ok(());
    };
    let traces = national::generate_layout(layout, opts)?;
    let paths = national::write_layout(&traces, out)?;
    for (t, path) in traces.iter().zip(&paths) {
        println!(
            "{:<16} {:>8} events, rush {:+} min from Beijing's: {}",
            t.region,
            t.trace.events.len(),
            t.shift_minutes,
            path.display()
        );
    }
    Ok(())
}

/// `ninety sim replay`: one trace, or (`--trace-dir`) every region's at once.
fn replay_traces(args: &ReplayArgs, opts: &ReplayOptions) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    if let Some(dir) = &args.trace_dir {
        let traces = national::read_layout(dir)?;
        let results = rt.block_on(national::replay_layout(&traces, opts, &args.report))?;
        for (region, r, page) in &results {
            println!("{region:<16} {}", peak::summary_line(r));
            println!("{:<16} report: {}", "", page.display());
        }
        return Ok(());
    }
    let Some(trace) = &args.trace else {
        return Err("replay: give --trace or --trace-dir".into());
    };
    let (r, page) = rt.block_on(peak::replay_file(trace, opts, &args.report))?;
    println!("{}", peak::summary_line(&r));
    println!("schedule: {}", r.schedule);
    println!("report: {}", page.display());
    Ok(())
}

/// A per-run salt for request ids, so each replay is new work for the cluster.
fn run_salt() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1
}

/// The demo's replay: 20 minutes of the GBA peak morning from 07:55 (the 08:00 release
/// rush) at a tenth of the scenario's traffic, 80x faster than real time (~15 s), against
/// `addrs`, with the slot windows moved onto the cluster's schedule day. Returns the report
/// page.
pub async fn demo_replay(addrs: &[String], dir: &Path) -> Result<PathBuf, String> {
    let (minutes, scale) = (20, 0.1);
    let sc = Scenario::load("gba")?;
    let trace = peak::generate(
        &sc,
        &GenerateOptions {
            seed: 1,
            minutes: Some(minutes),
            start_minute: Some(475),
            scale,
            days: None,
        },
    )?;
    println!(
        "\npeak-hour replay: {} requests of the GBA scenario ({minutes} minutes from 07:55, the 08:00 rush, at {scale}x its traffic), 80x real time",
        trace.events.len()
    );
    let opts = ReplayOptions {
        targets: addrs.to_vec(),
        speed: 80.0,
        salt: run_salt(),
        slot_day: SlotDay::Discover,
        ..ReplayOptions::default()
    };
    let (r, page) = peak::replay_trace(&trace, &opts, dir).await?;
    println!("{}", peak::summary_line(&r));
    Ok(page)
}

/// `ninety sim replay`: the trace, the targets, the speed and the schedule mapping.
#[derive(clap::Args)]
pub struct ReplayArgs {
    /// The trace file.
    #[arg(
        long,
        required_unless_present = "trace_dir",
        conflicts_with = "trace_dir"
    )]
    trace: Option<PathBuf>,
    /// A directory of `<region>.jsonl` traces (`ninety sim generate --layout`): every
    /// region's trace replayed at once, each call naming its region; one report per
    /// region under --report.
    #[arg(long)]
    trace_dir: Option<PathBuf>,
    /// Node addresses, comma-separated (host:port).
    #[arg(long, value_delimiter = ',', required = true)]
    target: Vec<String>,
    /// Trace time per wall time (60: an hour of trace in a minute), 0.1 to 100000.
    #[arg(long, default_value_t = 60.0, value_parser = |s: &str| parse_f64(s).and_then(replay::check_speed))]
    speed: f64,
    /// Directory for report.html and summary.json.
    #[arg(long, default_value = "peak-report")]
    report: PathBuf,
    /// Most requests in flight (1 to 100000); events due beyond it count as
    /// CLIENT_OVERLOAD.
    #[arg(long, default_value_t = 512, value_parser = parse_in_flight)]
    max_in_flight: usize,
    /// Send the trace's request ids as written (a second replay then gets the first
    /// answers back from the cluster's dedup table).
    #[arg(long)]
    keep_request_ids: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Which schedule to book against: `calendar` (the cluster's published days, the
    /// trace's days moved onto them by whole days) or `live` (the replay publishes the
    /// region's schedule on its own clock, relative to its start, so slots start during
    /// the replay and no-shows happen).
    #[arg(long, default_value = "calendar", value_parser = parse_schedule)]
    schedule: ScheduleMode,
    /// Calendar mode: the cluster day the trace's first slot day lands on: `discover`
    /// (ask the cluster for its earliest open slot's day), `weekday` (the first day
    /// from there with the trace's weekday), `as-written`, a UTC date (`2026-11-24`)
    /// or its 00:00 UTC in Unix ms.
    #[arg(long, default_value = "discover", value_parser = parse_slot_day)]
    day_start: SlotDay,
    /// Replay only the trace's first N days (1 to 366).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=366))]
    days: Option<u32>,
    /// Live mode: the cluster's region, a built-in preset (gba, yunnan, asean, national)
    /// or a region JSON file (default: the trace header's region).
    #[arg(long)]
    region: Option<String>,
    /// Live mode: seconds allowed for publishing the schedule before the trace starts
    /// (default: 2 plus a millisecond per doctor).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3600))]
    live_lead_secs: Option<u64>,
    /// TLS and token towards the targets (as for the operator commands).
    #[command(flatten)]
    creds: crate::ops::credentials::Credentials,
}

/// `ninety sim convert`: the CSV, the trace, and how columns map.
#[derive(clap::Args)]
pub struct ConvertArgs {
    /// The CSV file (a header line of column names, then one appointment per row).
    #[arg(long)]
    csv: PathBuf,
    /// Where to write the trace.
    #[arg(long)]
    out: PathBuf,
    /// Column of the booking time.
    #[arg(long, default_value = "booked_at")]
    col_booked_at: String,
    /// Column of the appointment (a date, or a date and time).
    #[arg(long, default_value = "appointment_at")]
    col_appointment_at: String,
    /// Column of the patient (pseudonymised; default `patient_id` if present, else each
    /// row is its own patient).
    #[arg(long)]
    col_patient: Option<String>,
    /// Column of the specialty (default `specialty` if present).
    #[arg(long)]
    col_specialty: Option<String>,
    /// Column saying the patient did not come: yes/no, true/false, 1/0 (default `no_show`).
    #[arg(long)]
    col_no_show: Option<String>,
    /// Column of the cancellation time, empty if not cancelled (default `cancelled_at`).
    #[arg(long)]
    col_cancelled_at: Option<String>,
    /// Column of the hospital: an id, or a name (default `hospital_id`).
    #[arg(long)]
    col_hospital: Option<String>,
    /// Column of the age in years (default `age`).
    #[arg(long)]
    col_age: Option<String>,
    /// Column of the sex: M/F, male/female (default `sex`).
    #[arg(long)]
    col_sex: Option<String>,
    /// Column of a language the doctor must speak (default `language`).
    #[arg(long)]
    col_language: Option<String>,
    /// Column of the mode: in person or remote (default `mode`).
    #[arg(long)]
    col_mode: Option<String>,
    /// The trace's time zone: times without an offset are local times here (`+08:00`,
    /// `UTC-03:00`, `Asia/Shanghai`).
    #[arg(long, default_value = "+08:00")]
    tz: String,
    /// Keep times that carry an offset as this zone's clock readings (the same 09:00 on
    /// the trace's clock) instead of as instants.
    #[arg(long)]
    source_tz: Option<String>,
    /// Specialty of rows without one (an engine name).
    #[arg(long, default_value = "general_practice")]
    specialty: String,
    /// `VALUE=NAME`: a CSV specialty and the engine specialty it stands for (repeatable).
    #[arg(long = "map-specialty", value_parser = parse_pair)]
    map_specialty: Vec<(String, String)>,
    /// Hospital id of rows without one (default: the region's first primary-tier one).
    #[arg(long, default_value_t = 0)]
    hospital: u32,
    /// The built-in region the ids refer to (gba, yunnan, asean, national).
    #[arg(long, default_value = "gba")]
    region: String,
    /// Clinic hours a date-only appointment searches, local `HH:MM-HH:MM`.
    #[arg(long, default_value = "08:00-17:30", value_parser = parse_hours)]
    clinic_hours: (u32, u32),
    /// Window around a timed appointment, minutes (half before, half after).
    #[arg(long, default_value_t = 60)]
    window_minutes: u32,
    /// A no-show is recorded this many minutes after its slot starts.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u32).range(0..=1440))]
    no_show_after_minutes: u32,
    /// Only rows booked on or after this local date (YYYY-MM-DD).
    #[arg(long)]
    from: Option<String>,
    /// Only rows booked on or before this local date (YYYY-MM-DD).
    #[arg(long)]
    to: Option<String>,
    /// Mixed into the patient pseudonyms (SHA-256): keep it secret for real data.
    #[arg(long, default_value = "")]
    patient_salt: String,
    /// Seeds the request ids.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The header's scenario name.
    #[arg(long, default_value = "converted")]
    scenario: String,
    /// The header's description of the data.
    #[arg(long)]
    description: Option<String>,
    /// The header's source (a URL or dataset name).
    #[arg(long)]
    source: Option<String>,
    /// The header's licence (an SPDX id such as CC0-1.0).
    #[arg(long)]
    licence: Option<String>,
}

impl ReplayArgs {
    /// The replay's options; the exit code when the credentials or region are refused.
    fn options(&self) -> Result<ReplayOptions, ExitCode> {
        let creds = self
            .creds
            .resolve()
            .map_err(|f| crate::ops::report(f, false))?;
        let region = self
            .region
            .as_deref()
            .map(load_region)
            .transpose()
            .map_err(|e| {
                eprintln!("error: {e}");
                ExitCode::from(2)
            })?;
        Ok(ReplayOptions {
            targets: self.target.clone(),
            speed: self.speed,
            max_in_flight: self.max_in_flight,
            salt: if self.keep_request_ids { 0 } else { run_salt() },
            progress: !self.quiet,
            schedule: self.schedule,
            slot_day: self.day_start,
            days: self.days,
            region,
            live_lead: self.live_lead_secs.map(std::time::Duration::from_secs),
            tls: creds.tls,
            token: creds.token,
            ..ReplayOptions::default()
        })
    }
}

impl ConvertArgs {
    fn options(&self) -> Result<convert::ConvertOptions, String> {
        let columns = convert::Columns {
            booked_at: self.col_booked_at.clone(),
            appointment_at: self.col_appointment_at.clone(),
            patient: self.col_patient.clone(),
            specialty: self.col_specialty.clone(),
            no_show: self.col_no_show.clone(),
            cancelled_at: self.col_cancelled_at.clone(),
            hospital: self.col_hospital.clone(),
            age: self.col_age.clone(),
            sex: self.col_sex.clone(),
            language: self.col_language.clone(),
            mode: self.col_mode.clone(),
        };
        Ok(convert::ConvertOptions {
            columns,
            tz: self.tz.clone(),
            source_tz: self.source_tz.clone(),
            specialty: self.specialty.clone(),
            specialty_map: self.map_specialty.clone(),
            hospital: self.hospital,
            region: Some(self.region.clone()),
            clinic_hours: self.clinic_hours,
            window_minutes: self.window_minutes,
            no_show_after_minutes: self.no_show_after_minutes,
            from: self.from.clone(),
            to: self.to.clone(),
            patient_salt: self.patient_salt.clone(),
            seed: self.seed,
            scenario: self.scenario.clone(),
            description: self.description.clone(),
            source: self.source.clone(),
            licence: self.licence.clone(),
            ..convert::ConvertOptions::default()
        })
    }
}

/// Parses `A=B`.
fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .ok_or_else(|| format!("{s:?}: expected VALUE=NAME"))
}

/// Parses `HH:MM-HH:MM` into minutes of the day.
fn parse_hours(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("{s:?}: expected HH:MM-HH:MM");
    let minute = |t: &str| -> Result<u32, String> {
        let (h, m) = t.trim().split_once(':').ok_or_else(bad)?;
        let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if h > 24 || m > 59 || h * 60 + m > 24 * 60 {
            return Err(bad());
        }
        Ok(h * 60 + m)
    };
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let (a, b) = (minute(a)?, minute(b)?);
    if a >= b {
        return Err(bad());
    }
    Ok((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_start_parses_dates_and_ms() {
        assert_eq!(parse_slot_day("discover"), Ok(SlotDay::Discover));
        assert_eq!(parse_slot_day("as-written"), Ok(SlotDay::AsWritten));
        assert_eq!(parse_slot_day("weekday"), Ok(SlotDay::Weekday));
        assert!(parse_slot_day("2026-02-30").is_err());
        assert_eq!(parse_schedule("live"), Ok(ScheduleMode::Live));
        assert!(parse_schedule("lively").is_err());
        assert_eq!(parse_hours("08:00-17:30"), Ok((480, 1050)));
        assert!(parse_hours("17:30-08:00").is_err());
        assert!(parse_hours("8-9").is_err());
        assert_eq!(
            parse_slot_day("2026-11-24"),
            Ok(SlotDay::At(ninety_engine::generate::DEFAULT_DAY_START.0))
        );
        assert_eq!(parse_slot_day("1970-01-01"), Ok(SlotDay::At(0)));
        assert_eq!(
            parse_slot_day("1795478400123"),
            Ok(SlotDay::At(1_795_478_400_000))
        );
        assert!(parse_slot_day("2026-13-01").is_err());
        assert!(parse_slot_day("tomorrow").is_err());
    }
}
