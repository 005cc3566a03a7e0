//! Peak-day replays end to end on real nodes of the GBA region (schedules from the next
//! clinic day, whatever today is), through the `ninety sim` commands (open loop, through
//! `ninety-client`):
//!
//! * a short generated peak hour on three nodes, its slot windows moved onto the
//!   cluster's days: the report files, most requests answered;
//! * the committed synthetic CSV of appointments (`simulations/testdata`), converted into
//!   a 30-day trace and replayed in calendar mode against a 31-day horizon: every seat
//!   lands on its appointment's day, and the no-shows, whose slots the cluster's clock
//!   never reaches in a fast replay, are counted as not sent;
//! * the same trace in live mode, the replay publishing the schedule on its own clock:
//!   the no-shows are recorded and the patient who misses three appointments is blocked.

use super::harness::{Opts, Procs};
use ninety_engine::generate::{self, Preset};
use ninety_proto::v1 as pb;
use ninety_proto::v1::scheduling_client::SchedulingClient;
use ninety_sim::peak::Trace;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const MS_PER_DAY: u64 = 24 * 60 * 60 * 1000;

/// Waits until the last doctor of the GBA region has published slots: the bootstrap has
/// then proposed every schedule.
async fn wait_for_schedules(p: &Procs, within: Duration) {
    let region = generate::region(Preset::Gba, generate::DEFAULT_SEED);
    let last = region.doctors.last().map_or(1, |d| d.id.0);
    let deadline = Instant::now() + within;
    loop {
        for id in p.live() {
            let mut c = SchedulingClient::new(p.channel(id));
            let r = c
                .find_slots(pb::FindSlotsRequest {
                    doctor_id: last,
                    limit: 1,
                    ..Default::default()
                })
                .await;
            if r.is_ok_and(|r| !r.into_inner().slots.is_empty()) {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "schedules not loaded in time; log of n1:\n{}",
            p.log(1)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the last doctor of the GBA region has slots `days - 8 .. days` days ahead:
/// the weekly templates have then been published that far.
async fn wait_for_horizon(p: &Procs, days: u64, within: Duration) {
    let region = generate::region(Preset::Gba, generate::DEFAULT_SEED);
    let last = region.doctors.last().map_or(1, |d| d.id.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let window = pb::TimeRange {
        start_ms: now + (days - 8) * MS_PER_DAY,
        end_ms: now + days * MS_PER_DAY,
    };
    let deadline = Instant::now() + within;
    loop {
        let mut c = SchedulingClient::new(p.channel(1));
        let r = c
            .find_slots(pb::FindSlotsRequest {
                doctor_id: last,
                window: Some(window),
                limit: 1,
                ..Default::default()
            })
            .await;
        if r.is_ok_and(|r| !r.into_inner().slots.is_empty()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the horizon was not published in time"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The committed synthetic CSV of appointments.
fn sample_csv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../simulations/testdata/appointments.csv")
}

/// Runs `ninety` with `args` off the async runtime.
async fn ninety(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_ninety"))
            .args(&args)
            .output()
            .expect("runs ninety")
    })
    .await
    .expect("the command's task finishes")
}

/// Converts the sample CSV into `dir/trace.jsonl`, replays it against node 1 with `extra`
/// arguments, and returns the trace and the summary.
async fn convert_and_replay(p: &Procs, extra: &[&str]) -> (Trace, serde_json::Value) {
    let trace = p.dir.path().join("trace.jsonl");
    let report = p.dir.path().join(format!("report-{}", extra.join("-")));
    let s = |x: &Path| x.display().to_string();
    let out = ninety(vec![
        "sim".into(),
        "convert".into(),
        "--csv".into(),
        s(&sample_csv()),
        "--out".into(),
        s(&trace),
        "--licence".into(),
        "CC0-1.0".into(),
    ])
    .await;
    assert!(out.status.success(), "convert failed: {out:?}");
    let mut args: Vec<String> = ["sim", "replay", "--quiet", "--target", &p.addr(1)]
        .map(String::from)
        .to_vec();
    args.extend(["--trace".into(), s(&trace), "--report".into(), s(&report)]);
    args.extend(extra.iter().map(|a| a.to_string()));
    args.extend(p.client_args());
    let started = Instant::now();
    let out = ninety(args).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "replay failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "{stdout}replay took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for (file, max) in [("report.html", 1 << 20), ("summary.json", 1 << 20)] {
        let len = std::fs::metadata(report.join(file)).map_or(0, |m| m.len());
        assert!(len > 0 && len < max, "{file} is {len} bytes");
    }
    let summary = std::fs::read_to_string(report.join("summary.json")).expect("summary.json");
    let trace = Trace::read_file(&trace).expect("the converted trace reads");
    (
        trace,
        serde_json::from_str(&summary).expect("summary is JSON"),
    )
}

fn n(summary: &serde_json::Value, path: &[&str]) -> u64 {
    path.iter()
        .fold(summary, |v, k| &v[*k])
        .as_u64()
        .unwrap_or(0)
}

/// One GBA node publishing `horizon_days` of schedules, ready and with its templates in.
async fn gba_node(horizon_days: u16) -> Procs {
    let p = Procs::start(
        &[1],
        &[1],
        Opts {
            region: Some("gba"),
            schedule_horizon_days: Some(horizon_days),
            ..Opts::default()
        },
    );
    p.wait_ready(Duration::from_secs(60)).await;
    wait_for_schedules(&p, Duration::from_secs(60)).await;
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_30_day_trace_replays_with_its_dates_kept() {
    super::bounded(async {
        let p = gba_node(31).await;
        wait_for_horizon(&p, 31, Duration::from_secs(60)).await;
        // 30 days of bookings in ~26 s.
        let (trace, summary) = convert_and_replay(&p, &["--speed", "100000"]).await;
        assert_eq!(trace.header.days, Some(30));
        let schedule = summary["schedule"].as_str().unwrap_or_default();
        assert!(schedule.starts_with("calendar"), "{schedule}");
        // Every event is accounted for, sent or not.
        let events = n(&summary, &["events"]);
        assert_eq!(events, trace.events.len() as u64);
        let accounted = ["ok", "failed", "overloaded", "skipped"]
            .iter()
            .map(|k| n(&summary, &[k]))
            .sum::<u64>();
        assert_eq!(accounted, events, "{summary}");
        // The days the appointments were on, and the days the seats landed on.
        let mut wanted: BTreeMap<u64, u64> = BTreeMap::new();
        for e in &trace.events {
            if let Some((start, _)) = e.op.window() {
                *wanted.entry(trace.header.day_of(start) as u64).or_default() += 1;
            }
        }
        let placed: BTreeMap<u64, u64> = summary["slot_days"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(d, c)| Some((d.parse().ok()?, c.as_u64()?)))
                    .collect()
            })
            .unwrap_or_default();
        for (day, count) in &placed {
            let want = wanted.get(day).copied().unwrap_or(0);
            assert!(
                *count <= want,
                "{count} seats on trace day {day}, where {want} appointments were: {placed:?} vs {wanted:?}"
            );
        }
        let total: u64 = placed.values().sum();
        let books = wanted.values().sum::<u64>();
        // A trace day that lands on a cluster Sunday has no clinic (the note says which).
        assert!(total * 10 >= books * 6, "{total} of {books} placed: {summary}");
        assert!(placed.len() >= 12, "seats on {} days only", placed.len());
        assert!(
            placed.keys().max().copied().unwrap_or(0) >= 25,
            "no seat in the trace's last days: {placed:?}"
        );
        // The no-shows' slots start after the replay on the cluster's clock: not sent.
        let not_started = n(&summary, &["errors", "SKIPPED/SLOT_NOT_STARTED"]);
        assert!(not_started >= 1, "{}", summary["errors"]);
        assert_eq!(n(&summary, &["by_op", "mark_no_show", "ok"]), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_replay_records_no_shows_and_blocks_a_repeat_no_show_patient() {
    super::bounded(async {
        // The cluster's own schedule is not used: the replay publishes one.
        let p = gba_node(0).await;
        // The first five days (patient P-0007 misses three appointments) at 100,000x,
        // after 20 s for publishing ~10,000 doctors' schedules.
        let args = ["--schedule", "live", "--days", "5", "--speed", "100000"];
        let lead = ["--live-lead-secs", "20"];
        let extra = [&args[..], &lead[..]].concat();
        let (_, summary) = convert_and_replay(&p, &extra).await;
        let schedule = summary["schedule"].as_str().unwrap_or_default();
        assert!(schedule.starts_with("live"), "{schedule}");
        let no_shows = n(&summary, &["by_op", "mark_no_show", "ok"]);
        assert!(no_shows >= 3, "{no_shows} no-shows recorded: {summary}");
        assert_eq!(n(&summary, &["errors", "SKIPPED/SLOT_NOT_STARTED"]), 0);
        assert!(
            n(&summary, &["no_show_blocks"]) >= 1,
            "nobody was blocked: {summary}"
        );
        // The block shows in the report's headline too.
        let page = p
            .dir
            .path()
            .join(format!("report-{}", extra.join("-")))
            .join("report.html");
        let html = std::fs::read_to_string(&page).unwrap_or_default();
        assert!(
            html.contains("patients blocked by the no-show policy"),
            "{} does not show the block",
            page.display()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_gba_replay_is_mostly_answered() {
    super::bounded(async {
        let p = Procs::start(
            &[1, 2, 3],
            &[1, 2, 3],
            Opts {
                region: Some("gba"),
                ..Opts::default()
            },
        );
        p.wait_ready(Duration::from_secs(60)).await;
        wait_for_schedules(&p, Duration::from_secs(60)).await;
        let trace = p.dir.path().join("trace.jsonl");
        let report = p.dir.path().join("report");
        let targets = [1, 2, 3].map(|id| p.addr(id)).join(",");
        let (trace_arg, report_arg) = (trace.clone(), report.clone());
        let creds = p.client_args();
        let started = Instant::now();
        let out = tokio::task::spawn_blocking(move || {
            let ninety = env!("CARGO_BIN_EXE_ninety");
            // Four minutes around the 08:00 release rush at a tenth of the traffic.
            let generated = Command::new(ninety)
                .args(["sim", "generate", "--scenario", "gba", "--seed", "7"])
                .args(["--minutes", "4", "--start-minute", "478", "--scale", "0.1"])
                .arg("--out")
                .arg(&trace_arg)
                .output()
                .expect("runs ninety sim generate");
            assert!(generated.status.success(), "{generated:?}");
            // 60x: four trace minutes in four seconds.
            Command::new(ninety)
                .args([
                    "sim", "replay", "--speed", "60", "--quiet", "--target", &targets,
                ])
                .arg("--trace")
                .arg(&trace_arg)
                .arg("--report")
                .arg(&report_arg)
                .args(&creds)
                .output()
                .expect("runs ninety sim replay")
        })
        .await
        .expect("the replay task finishes");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "replay failed:\n{stdout}\n{stderr}");
        eprintln!(
            "{stdout}replay took {:.1} s",
            started.elapsed().as_secs_f64()
        );
        assert!(report.join("report.html").is_file(), "no report.html");
        let summary = std::fs::read_to_string(report.join("summary.json")).expect("summary.json");
        let summary: serde_json::Value = serde_json::from_str(&summary).expect("summary is JSON");
        let n = |k: &str| {
            summary[k]
                .as_u64()
                .unwrap_or_else(|| panic!("{k} in summary"))
        };
        let (events, ok) = (n("events"), n("ok"));
        assert!(
            events > 50,
            "a trace of {events} events is too small to say much"
        );
        // Refusals the engine decides (no capacity, a lapsed hold) are answers too; what
        // must not happen is the cluster failing to answer.
        let errors = &summary["errors"];
        let unanswered: u64 = [
            "DEADLINE_EXCEEDED",
            "UNAVAILABLE",
            "CLIENT_OVERLOAD",
            "CANCELLED",
        ]
        .iter()
        .filter_map(|k| {
            errors.as_object().map(|m| {
                m.iter()
                    .filter(|(kind, _)| kind.starts_with(k))
                    .filter_map(|(_, v)| v.as_u64())
                    .sum::<u64>()
            })
        })
        .sum();
        assert!(
            ok * 10 >= events * 8,
            "only {ok} of {events} requests succeeded: {stdout}\nerrors: {errors}"
        );
        assert!(
            unanswered * 50 <= events,
            "{unanswered} of {events} requests unanswered: {errors}"
        );
    })
    .await;
}
