//! `ninety sim generate` and `ninety sim replay`: peak-day traces over `ninety_sim::peak`,
//! and the short replay `ninety demo` runs against its local cluster.

use clap::Subcommand;
use ninety_sim::peak::{self, generate, replay, GenerateOptions, ReplayOptions, Scenario, SlotDay};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The peak-day subcommands of `ninety sim`.
#[derive(Subcommand)]
pub enum PeakCmd {
    /// Generates a peak-day trace (JSON lines, format version 1).
    Generate {
        /// gba, yunnan, asean, national, or a scenario TOML file.
        #[arg(long, default_value = "gba")]
        scenario: String,
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
        /// Where to write the trace.
        #[arg(long)]
        out: PathBuf,
    },
    /// Replays a trace open-loop against a cluster and writes an HTML report and a JSON
    /// summary.
    Replay {
        /// The trace file.
        #[arg(long)]
        trace: PathBuf,
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
        /// The schedule day the trace's slot windows are moved onto: `discover` (ask the
        /// cluster for its earliest open slot's day), `as-written`, a UTC date
        /// (`2026-11-24`) or its 00:00 UTC in Unix ms.
        #[arg(long, default_value = "discover", value_parser = parse_slot_day)]
        day_start: SlotDay,
        /// TLS and token towards the targets (as for the operator commands).
        #[command(flatten)]
        creds: crate::ops::credentials::Credentials,
    },
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
        "as-written" => return Ok(SlotDay::AsWritten),
        _ => {}
    }
    if let Ok(ms) = s.parse::<u64>() {
        return Ok(SlotDay::At(ms / MS_PER_DAY * MS_PER_DAY));
    }
    let bad = || format!("{s:?}: expected discover, as-written, YYYY-MM-DD or Unix ms");
    let parts: Vec<&str> = s.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(bad());
    };
    let (y, m, d): (i64, i64, i64) = (
        y.parse().map_err(|_| bad())?,
        m.parse().map_err(|_| bad())?,
        d.parse().map_err(|_| bad())?,
    );
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    // Days from the civil date (Howard Hinnant's algorithm), proleptic Gregorian.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(SlotDay::At(days as u64 * MS_PER_DAY))
}

/// Runs a peak-day subcommand.
pub fn run(cmd: PeakCmd) -> ExitCode {
    let result = match cmd {
        PeakCmd::Generate {
            scenario,
            seed,
            minutes,
            start_minute,
            scale,
            out,
        } => {
            let opts = GenerateOptions {
                seed,
                minutes,
                start_minute,
                scale,
            };
            peak::generate_file(&scenario, &opts, &out).map(|n| {
                println!("{n} events written to {}", out.display());
            })
        }
        PeakCmd::Replay {
            trace,
            target,
            speed,
            report,
            max_in_flight,
            keep_request_ids,
            quiet,
            day_start,
            creds,
        } => {
            let creds = match creds.resolve() {
                Ok(c) => c,
                Err(f) => return crate::ops::report(f, false),
            };
            let opts = ReplayOptions {
                targets: target,
                speed,
                max_in_flight,
                salt: if keep_request_ids { 0 } else { run_salt() },
                progress: !quiet,
                slot_day: day_start,
                tls: creds.tls,
                token: creds.token,
                ..ReplayOptions::default()
            };
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
                .and_then(|rt| rt.block_on(peak::replay_file(&trace, &opts, &report)))
                .map(|(r, page)| {
                    println!("{}", peak::summary_line(&r));
                    println!("report: {}", page.display());
                })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_start_parses_dates_and_ms() {
        assert_eq!(parse_slot_day("discover"), Ok(SlotDay::Discover));
        assert_eq!(parse_slot_day("as-written"), Ok(SlotDay::AsWritten));
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
