//! A short peak-hour replay end to end: three real nodes on the GBA region (schedules for
//! the next clinic day, whatever today is), `ninety sim generate` and `ninety sim replay`
//! (open-loop, through `ninety-client`, the slot windows moved onto the cluster's day),
//! then the report files and most requests answered.

use super::harness::{Opts, Procs};
use ninety_engine::generate::{self, Preset};
use ninety_proto::v1 as pb;
use ninety_proto::v1::scheduling_client::SchedulingClient;
use std::process::Command;
use std::time::{Duration, Instant};

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
