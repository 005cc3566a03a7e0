//! Tests of the replay report (`cargo test -p ninety-sim --lib peak_report`): the figures
//! against a hand-made trace with known answers, the size of a long trace's summary, and
//! the charts' marks, in the page and in a real headless Chromium.

use super::charts::{self, Clock, BAR_MIN_PX, BAR_PX};
use super::replay::{Answer, Produced, ReplayOptions};
use super::report::{
    html, summary_line, write_report, Bucket, Collector, Latency, Matching, Occupancy, OpSummary,
    Outcome, ReplayResult, OCCUPANCY_SAMPLES_MAX, TIMELINE_BUCKETS_MAX,
};
use super::trace::{Tier, Trace};
use std::collections::BTreeMap;
use std::time::Duration;

/// 2026-11-24 08:00 in China (UTC+08:00), Unix ms.
const EIGHT_AM: u64 = 1_795_478_400_000;

/// A trace from JSON lines: a header naming the GBA region (so the clock is UTC+08:00)
/// starting at 08:00, then `events` (each without its id, request id and time).
fn trace_of(events: &[(u64, &str)]) -> Trace {
    let mut text = format!(
        "{{\"format\":\"ninety-trace\",\"version\":1,\"scenario\":\"hand-made\",\"seed\":0,\
         \"start_ms\":{EIGHT_AM},\"region\":\"gba\"}}\n"
    );
    for (i, (at_ms, op)) in events.iter().enumerate() {
        let id = i + 1;
        text.push_str(&format!(
            "{{\"id\":{id},\"at_ms\":{at_ms},\"request_id\":\"{id:032x}\",{op}}}\n"
        ));
    }
    Trace::read(text.as_bytes()).unwrap_or_else(|e| panic!("hand-made trace: {e}"))
}

const ALLOCATE: &str = r#""op":"allocate_slot","patient":"p","from_hospital":1,"specialty":"cardiology","urgency":"p4","mode":"in_person","window_start_ms":0,"window_end_ms":1,"max_travel_minutes":0,"ttl_ms":0,"channel":"public""#;
const MATCH: &str = r#""op":"match_specialist","from_hospital":1,"specialty":"cardiology","urgency":"p4","mode":"any","window_start_ms":0,"window_end_ms":1,"max_travel_minutes":0,"channel":"public","limit":5"#;
const HOLD_BED: &str = r#""op":"hold_bed","ward":1,"bed":0,"patient":"p","ttl_ms":60000,"urgency":"p2","channel":"public""#;

fn ok(hospital: u32, doctor: u32, travel: Option<u32>, tier: Option<Tier>) -> Answer {
    Ok(Produced {
        id: 1,
        hospital,
        doctor,
        travel_minutes: travel,
        tier,
        matched: travel.is_some(),
        ..Produced::default()
    })
}

fn ms(n: u64) -> Option<Duration> {
    Some(Duration::from_millis(n))
}

/// The hand-made trace and what became of each event: twelve events over ten seconds at 1×,
/// the busiest second (08:00:03) with five of them.
fn hand_made() -> (Trace, Vec<(Option<Duration>, Answer)>) {
    let book = |e: u64| format!(r#""op":"book_slot","hold":{{"event":{e}}}"#);
    let confirm = |e: u64| format!(r#""op":"confirm_hold","hold":{{"event":{e}}}"#);
    let trace = trace_of(&[
        (0, ALLOCATE),
        (200, MATCH),
        (400, MATCH),
        (1000, &book(1)),
        (1500, ALLOCATE),
        (2000, &book(5)),
        (3000, HOLD_BED),
        (3100, HOLD_BED),
        (3200, HOLD_BED),
        (3300, &confirm(7)),
        (3400, &confirm(8)),
        (10_000, ALLOCATE),
    ]);
    let err = |s: &str| Err(s.to_string());
    let fates = vec![
        (ms(2), ok(1, 10, Some(12), Some(Tier::Secondary))),
        (ms(2), ok(2, 11, Some(25), Some(Tier::Tertiary))), // a search: not load, not care
        (ms(2), ok(0, 0, None, None)),                      // a search that found nothing
        (ms(2), ok(1, 10, None, None)),
        (ms(5), err("FAILED_PRECONDITION/NO_CAPACITY|no seat left")),
        (None, err("SKIPPED/DEPENDENCY_FAILED")),
        (ms(2), ok(3, 0, None, Some(Tier::Primary))),
        (None, err("CLIENT_OVERLOAD")),
        (ms(2), ok(3, 0, None, Some(Tier::Primary))),
        (ms(2), ok(0, 0, None, None)),
        (None, err("SKIPPED/DEPENDENCY_FAILED")),
        (None, err("CLIENT_OVERLOAD")),
    ];
    (trace, fates)
}

fn replayed(trace: &Trace, fates: Vec<(Option<Duration>, Answer)>) -> ReplayResult {
    let opts = ReplayOptions {
        speed: 1.0,
        targets: vec!["127.0.0.1:1".into()],
        ..ReplayOptions::default()
    };
    let mut c = Collector::new(trace, &opts, None);
    for (t, o) in [(0, (0, 0, 10)), (3000, (0, 2, 10)), (3300, (1, 1, 10))] {
        c.occupancy_sample(3, t, o);
    }
    for (e, (latency, answer)) in trace.events.iter().zip(fates) {
        c.record(e, latency, answer);
    }
    c.finish(Duration::from_secs(2))
}

#[test]
fn peak_report_figures_match_a_hand_made_trace() {
    let (trace, fates) = hand_made();
    let r = replayed(&trace, fates);
    // Every event has a fate, and the counts add up to the trace.
    assert_eq!((r.events, r.sent, r.ok, r.failed), (12, 8, 7, 1));
    assert_eq!((r.overloaded, r.skipped, r.unrecorded), (2, 2, 0));
    // Relative to the trace: bookings and admissions placed / requested, not / sent.
    let outcome = |requested, sent, done| Outcome {
        requested,
        sent,
        done,
    };
    assert_eq!(r.bookings, outcome(2, 1, 1));
    assert_eq!(r.admissions, outcome(2, 1, 1));
    assert_eq!(r.matching.all, outcome(5, 4, 2));
    assert!((r.matching.rate - 0.4).abs() < 1e-9, "{}", r.matching.rate);
    assert!((r.matching.rate_of_sent - 0.5).abs() < 1e-9);
    assert_eq!(r.matching.by_op["allocate_slot"], outcome(3, 2, 1));
    assert_eq!(r.matching.by_op["match_specialist"], outcome(2, 2, 1));
    // Offered: 12 events over 11 wall seconds; the busiest second is 08:00:03 with 5.
    assert!(
        (r.offered_rps - 12.0 / 11.0).abs() < 1e-9,
        "{}",
        r.offered_rps
    );
    assert_eq!((r.offered_peak_rps, r.offered_peak_at_ms), (5, 3000));
    assert!((r.achieved_rps - 4.0).abs() < 1e-9, "8 answered in 2 s");
    check_ops(&r);
    check_timeline(&r);
    check_errors_and_care(&r);
    check_page(&r);
}

fn check_ops(r: &ReplayResult) {
    let op = |name: &str| {
        let mut s = r.by_op[name].clone();
        s.latency = Latency::default();
        s
    };
    let summary = |in_trace, sent, ok, failed, overloaded, skipped| OpSummary {
        in_trace,
        sent,
        ok,
        failed,
        overloaded,
        skipped,
        latency: Latency::default(),
    };
    assert_eq!(op("allocate_slot"), summary(3, 2, 1, 1, 1, 0));
    assert_eq!(op("match_specialist"), summary(2, 2, 2, 0, 0, 0));
    assert_eq!(op("book_slot"), summary(2, 1, 1, 0, 0, 1));
    assert_eq!(op("hold_bed"), summary(3, 2, 2, 0, 1, 0));
    assert_eq!(op("confirm_hold"), summary(2, 1, 1, 0, 0, 1));
    assert_eq!(r.by_op.len(), 5);
    assert_eq!(r.latency.count, 8);
    assert!((r.latency.p50_ms - 2.0).abs() < 0.01, "{:?}", r.latency);
    assert!((r.latency.max_ms - 5.0).abs() < 0.01, "{:?}", r.latency);
    assert!((r.by_op["allocate_slot"].latency.max_ms - 5.0).abs() < 0.01);
}

fn check_timeline(r: &ReplayResult) {
    // One bucket per wall second from 08:00:00 to 08:00:10; the empty seconds are zeros.
    assert_eq!(r.timeline_bucket_ms, 1000);
    assert_eq!(r.timeline.len(), 11);
    let b = |scheduled, sent, ok, failed, not_sent| (scheduled, sent, ok, failed, not_sent);
    let got: Vec<_> = r
        .timeline
        .iter()
        .map(|x| b(x.scheduled, x.sent, x.ok, x.failed, x.not_sent))
        .collect();
    let mut want = vec![b(0, 0, 0, 0, 0); 11];
    want[0] = b(3, 3, 3, 0, 0);
    want[1] = b(2, 2, 1, 1, 0);
    want[2] = b(1, 0, 0, 0, 1);
    want[3] = b(5, 3, 3, 0, 2);
    want[10] = b(1, 0, 0, 0, 1);
    assert_eq!(got, want);
    for (i, x) in r.timeline.iter().enumerate() {
        assert_eq!(x.at_ms, i as u64 * 1000);
    }
    assert!(
        (r.timeline[1].p99_ms - 5.0).abs() < 0.1,
        "{:?}",
        r.timeline[1]
    );
    assert_eq!(r.timeline[5].p50_ms, 0.0);
}

fn check_errors_and_care(r: &ReplayResult) {
    let map = |v: &[(&str, u64)]| -> BTreeMap<String, u64> {
        v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    };
    assert_eq!(
        r.errors,
        map(&[
            ("CLIENT_OVERLOAD", 2),
            ("FAILED_PRECONDITION/NO_CAPACITY", 1),
            ("SKIPPED/DEPENDENCY_FAILED", 2),
        ])
    );
    assert_eq!(
        r.errors_by_op,
        map(&[
            ("allocate_slot: CLIENT_OVERLOAD", 1),
            ("allocate_slot: FAILED_PRECONDITION/NO_CAPACITY", 1),
            ("book_slot: SKIPPED/DEPENDENCY_FAILED", 1),
            ("confirm_hold: SKIPPED/DEPENDENCY_FAILED", 1),
            ("hold_bed: CLIENT_OVERLOAD", 1),
        ])
    );
    assert_eq!(
        r.error_examples["allocate_slot: FAILED_PRECONDITION/NO_CAPACITY"],
        "no seat left"
    );
    let travel: BTreeMap<u32, u64> = [(10, 1), (20, 1)].into_iter().collect();
    assert_eq!(r.matching.travel_minutes, travel);
    // Care taken: the allocate (secondary) and two bed holds (primary); not the search.
    assert_eq!(r.matching.tiers, [2, 1, 0]);
    // Doctor 11 was only named by a search: no load.
    assert_eq!(r.top_doctors, vec![(10, 1, 1)]);
    assert_eq!(r.bed_events, 5);
    assert_eq!(r.occupancy.len(), 1);
    assert_eq!(
        r.occupancy[0].samples,
        vec![(0, 0, 0, 10), (3000, 0, 2, 10), (3300, 1, 1, 10)]
    );
    assert_eq!(r.clock_offset_minutes, 480);
}

fn check_page(r: &ReplayResult) {
    let page = html(r);
    for want in [
        "7 (58.3% of the trace)",
        "1 (8.3% of the trace)",
        "2 (16.7% of the trace) (limit 512)",
        "1 of 2 booking requests in the trace (50.0%); 1 were sent (100.0% of them succeeded)",
        "2 of 5 match requests in the trace (40.0%); 4 were sent (50.0% of them succeeded)",
        "1.1 requests/s on average",
        "busiest second: 5 requests due, at 2026-11-24 08:00:03 UTC+08:00",
        "2026-11-24 08:00:00 UTC+08:00 to 2026-11-24 08:00:10 UTC+08:00",
        "4.0 requests/s over 2.0 s of wall time",
    ] {
        assert!(page.contains(want), "the page lacks {want:?}");
    }
    let line = summary_line(r);
    for want in [
        "12 events: 7 ok (58.3%), 1 refused/failed, not sent 2 (in-flight limit) + 2",
        "bookings placed 1 of 2; matched 2 of 5 match requests (40.0%)",
        "5 in the busiest second",
    ] {
        assert!(
            line.contains(want),
            "the summary line lacks {want:?}: {line}"
        );
    }
}

#[test]
fn peak_report_shows_no_shows_and_blocked_patients() {
    let no_show = |hold: u64| format!(r#""op":"mark_no_show","hold":{hold}"#);
    let (a, b, c, d) = (no_show(7), no_show(8), no_show(9), no_show(10));
    let trace = trace_of(&[(0, &a), (1, &b), (2, &c), (3, ALLOCATE), (4, &d)]);
    let blocked = "FAILED_PRECONDITION/BOOKING_BLOCKED|patient p is blocked after 3 no-shows";
    let fates = vec![
        (ms(1), ok(0, 0, None, None)),
        (ms(1), ok(0, 0, None, None)),
        (ms(1), ok(0, 0, None, None)),
        (ms(1), Err(blocked.to_string())),
        (None, Err("CLIENT_OVERLOAD".to_string())),
    ];
    let r = replayed(&trace, fates);
    let outcome = |requested, sent, done| Outcome {
        requested,
        sent,
        done,
    };
    assert_eq!(r.no_shows, outcome(4, 3, 3));
    assert_eq!(r.blocked, 1);
    let page = html(&r);
    assert!(page.contains(
        "<td>no-shows recorded</td><td>3 of 4 no-show marks in the trace (75.0%); 3 were sent"
    ));
    assert!(page
        .contains("<td>refused: patient blocked (BOOKING_BLOCKED)</td><td>1 (20.0% of the trace)"));
    // Without any, neither row is shown.
    let (trace, fates) = hand_made();
    let page = html(&replayed(&trace, fates));
    assert!(!page.contains("no-shows recorded") && !page.contains("patient blocked"));
}

#[test]
fn peak_report_rates_and_clock_read_well() {
    assert_eq!(charts::rate(0.0), "0 requests/s");
    assert_eq!(charts::rate(0.04), "2.4 requests/min");
    assert_eq!(charts::rate(0.001), "3.60 requests/h");
    assert_eq!(charts::rate(3.25), "3.2 requests/s");
    assert_eq!(charts::rate(1012.4), "1,012 requests/s");
    assert_eq!(charts::count(86_216), "86,216");
    assert_eq!(charts::count(7), "7");
    assert_eq!(charts::count(1_000_000), "1,000,000");
    assert_eq!(charts::pct(1, 5), "20.0%");
    assert_eq!(charts::pct(1, 0), "–");
    let r = ReplayResult {
        trace_start_ms: EIGHT_AM,
        clock_offset_minutes: 480,
        ..ReplayResult::default()
    };
    let clock = Clock::of(&r);
    assert_eq!(clock.at(0), "2026-11-24 08:00:00 UTC+08:00");
    assert_eq!(
        clock.at(16 * 3_600_000 + 61_000),
        "2026-11-25 00:01:01 UTC+08:00"
    );
    assert_eq!(clock.date(30 * 86_400_000), "2026-12-24");
    let leap = ReplayResult {
        trace_start_ms: 951_782_400_000, // 2000-02-29 00:00 UTC
        clock_offset_minutes: -90,
        ..ReplayResult::default()
    };
    assert_eq!(Clock::of(&leap).at(0), "2000-02-28 22:30:00 UTC-01:30");
}

#[test]
fn peak_report_of_a_30_day_trace_stays_small() {
    const DAY: u64 = 86_400_000;
    // Built from two read events: a version-1 trace spans at most a week.
    let mut trace = trace_of(&[(0, HOLD_BED), (1, ALLOCATE)]);
    let templates = trace.events.clone();
    let hours = (0..30 * 24).map(|h| h * 3_600_000).chain([30 * DAY]);
    trace.events = hours
        .enumerate()
        .map(|(i, at_ms)| {
            let mut e = templates[i % 2].clone();
            (e.id, e.at_ms, e.request_id) = (i as u64 + 1, at_ms, format!("{:032x}", i + 1));
            e
        })
        .collect();
    let opts = ReplayOptions {
        speed: 1.0,
        ..ReplayOptions::default()
    };
    let mut c = Collector::new(&trace, &opts, None);
    // A sampler asked for one sample per trace minute is slowed down...
    let every = c.occupancy_every_ms(60_000);
    assert!(30 * DAY / every < OCCUPANCY_SAMPLES_MAX, "every {every} ms");
    // ...and one that samples every minute anyway keeps a bounded count.
    for hospital in 1..=8 {
        for minute in 0..=30 * 24 * 60 {
            let held = (minute % 7) as u32;
            c.occupancy_sample(hospital, minute * 60_000, (10, held, 40));
        }
    }
    let long = "x".repeat(300);
    for (i, e) in trace.events.iter().enumerate() {
        let answer = if i % 3 == 0 {
            Err(format!("FAILED_PRECONDITION/NO_CAPACITY|{long}"))
        } else {
            ok(1, 2, Some(30), Some(Tier::Tertiary))
        };
        c.record(e, ms(3), answer);
    }
    let r = c.finish(Duration::from_secs(30 * 86_400));
    assert!(
        r.timeline.len() as u64 <= TIMELINE_BUCKETS_MAX,
        "{}",
        r.timeline.len()
    );
    assert_eq!(r.timeline.iter().map(|b| b.scheduled).sum::<u64>(), 721);
    for o in &r.occupancy {
        assert!(
            o.samples.len() as u64 <= OCCUPANCY_SAMPLES_MAX + 1,
            "{}",
            o.samples.len()
        );
        // The fullest sample of each stretch is kept.
        assert!(o.samples.iter().all(|s| s.2 == 6), "{:?}", &o.samples[..3]);
    }
    let (json, page) = written_sizes(&r, "30d");
    assert!(
        json < 400_000,
        "summary.json of a 30-day trace: {json} bytes"
    );
    assert!(
        page < 1_000_000,
        "report.html of a 30-day trace: {page} bytes"
    );
    let page = html(&r);
    assert!(page.contains("clock time, UTC+08:00 (2026-11-24 to 2026-12-24)"));
}

/// The sizes of `summary.json` and `report.html` as written for `r`.
fn written_sizes(r: &ReplayResult, name: &str) -> (u64, u64) {
    let dir = std::env::temp_dir().join(format!("ninety-report-{name}-{}", std::process::id()));
    write_report(&dir, r).expect("writes");
    let size = |f: &str| std::fs::metadata(dir.join(f)).map_or(0, |m| m.len());
    let sizes = (size("summary.json"), size("report.html"));
    let _ = std::fs::remove_dir_all(&dir);
    sizes
}

/// A report with every chart filled, `n` bars in each bar chart (the errors chart shows at
/// most 31) and `n` timeline buckets.
pub(crate) fn synthetic(n: u64) -> ReplayResult {
    let mut r = ReplayResult {
        scenario: "gba".into(),
        description: "synthetic <report>".into(),
        seed: 1,
        targets: vec!["127.0.0.1:1".into()],
        speed: 60.0,
        max_in_flight: 512,
        trace_start_ms: EIGHT_AM,
        clock_offset_minutes: 480,
        span_ms: (n - 1) * 60_000,
        events: 100 * n,
        sent: 90 * n,
        ok: 80 * n,
        failed: 10 * n,
        overloaded: 10 * n,
        wall_ms: n * 1000,
        achieved_rps: 90.0,
        offered_rps: 100.0,
        offered_peak_rps: 140,
        timeline_bucket_ms: 60_000,
        bed_events: 10,
        latency: Latency {
            count: 90 * n,
            p50_ms: 2.0,
            p90_ms: 5.0,
            p99_ms: 12.0,
            p999_ms: 20.0,
            max_ms: 30.0,
            mean_ms: 3.0,
        },
        machine: "2 cpus".into(),
        ..ReplayResult::default()
    };
    r.timeline = (0..n)
        .map(|i| Bucket {
            at_ms: i * 60_000,
            scheduled: 100,
            sent: 90,
            ok: 80 + i % 7,
            failed: 10 - i % 7,
            not_sent: 10,
            p50_ms: 2.0 + i as f64 / 10.0,
            p99_ms: 10.0 + i as f64,
        })
        .collect();
    synthetic_bars(&mut r, n);
    r
}

fn synthetic_bars(r: &mut ReplayResult, n: u64) {
    let kinds = [
        "CLIENT_OVERLOAD",
        "FAILED_PRECONDITION/NO_CAPACITY",
        "UNAVAILABLE",
    ];
    for i in 0..n {
        let kind = kinds
            .get(i as usize)
            .map_or(format!("KIND_{i}"), |k| k.to_string());
        r.errors.insert(kind, 86_216 / (i + 1).pow(3) + 1);
    }
    let outcome = |requested, done| Outcome {
        requested,
        sent: requested,
        done,
    };
    let by_op = [
        "allocate_slot",
        "allocate_bed",
        "match_specialist",
        "match_referral",
    ];
    r.matching = Matching {
        all: outcome(300, 240),
        rate: 0.8,
        rate_of_sent: 0.8,
        travel_minutes: (0..n as u32)
            .map(|b| (b * 10, u64::from(b % 9) + 1))
            .collect(),
        tiers: [80, 100, 60],
        tier_target_percent: [50, 35, 15],
        by_op: by_op
            .iter()
            .take(n as usize)
            .map(|op| (op.to_string(), outcome(100, 80)))
            .collect(),
    };
    r.occupancy = vec![Occupancy {
        hospital: 3,
        name: "Guangzhou tertiary hospital <3>".into(),
        samples: (0..n)
            .map(|m| (m * 60_000, 100 + m as u32, 10, 200))
            .collect(),
    }];
    r.top_doctors = (0..n.min(20) as u32)
        .map(|d| (d + 1, 3, 40 - u64::from(d)))
        .collect();
}

#[test]
fn peak_report_is_self_contained_with_every_chart() {
    let page = html(&synthetic(10));
    for id in [
        "throughput",
        "latency",
        "errors",
        "match-rate",
        "travel",
        "tiers",
        "occupancy",
        "doctors",
    ] {
        assert!(
            page.contains(&format!("<div class=\"chart\" id=\"chart-{id}\"><svg")),
            "no chart {id}"
        );
    }
    // Self-contained: no external URL other than the SVG namespace, no scripts or links.
    let stripped = page.replace("http://www.w3.org/2000/svg", "");
    for bad in ["http://", "https://", "<script", "<link", "src=", "@import"] {
        assert!(!stripped.contains(bad), "page contains {bad}");
    }
    assert!(page.contains("Guangzhou tertiary hospital &lt;3&gt;"));
    assert!(page.contains("synthetic &lt;report&gt;"));
    // The JSON summary round-trips.
    let json = serde_json::to_string(&synthetic(10)).unwrap_or_default();
    let back: ReplayResult = serde_json::from_str(&json).expect("summary parses");
    assert_eq!(back, synthetic(10));
}

#[test]
fn peak_report_says_so_when_a_chart_has_nothing_to_show() {
    let mut r = synthetic(3);
    r.bed_events = 0;
    r.occupancy.clear();
    r.top_doctors.clear();
    r.errors.clear();
    let page = html(&r);
    assert!(page.contains("id=\"chart-occupancy\"><p>No bed traffic"));
    assert!(page.contains("id=\"chart-doctors\"><p>No slot or consultation holds"));
    assert!(page.contains("id=\"chart-errors\"><p>No errors"));
    // Bed traffic but no sample: said, not a blank chart with an empty legend.
    r.bed_events = 4;
    assert!(html(&r).contains("id=\"chart-occupancy\"><p>The trace has 4 bed events"));
}

#[test]
fn peak_report_writes_files() {
    let dir = std::env::temp_dir().join(format!("ninety-peak-report-{}", std::process::id()));
    let page = write_report(&dir, &synthetic(5)).expect("writes");
    assert!(page.ends_with("report.html"));
    let json = std::fs::read_to_string(dir.join("summary.json")).unwrap_or_default();
    let back: ReplayResult = serde_json::from_str(&json).expect("summary.json parses");
    assert_eq!(back, synthetic(5));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every number in `attr="<number>"` of the tags named `tag` with `class="mark"`.
fn attr_values(svg: &str, prefix: &str, attr: &str) -> Vec<f64> {
    svg.split(prefix)
        .skip(1)
        .filter_map(|rest| {
            let tag = rest.split('>').next()?;
            let at = tag.find(&format!(" {attr}=\""))? + attr.len() + 3;
            tag[at..].split('"').next()?.parse().ok()
        })
        .collect()
}

#[test]
fn peak_report_bars_have_a_minimum_size_at_1_and_50_bars() {
    for n in [1, 50] {
        let page = html(&synthetic(n));
        let widths = attr_values(&page, "<rect class=\"mark\"", "width");
        let heights = attr_values(&page, "<rect class=\"mark\"", "height");
        assert!(!widths.is_empty());
        assert!(
            widths.iter().all(|w| *w >= BAR_MIN_PX),
            "{n} bars: {widths:?}"
        );
        assert!(
            heights.iter().all(|h| *h >= BAR_PX),
            "{n} bars: {heights:?}"
        );
        let fonts = attr_values(&page, "<", "font-size");
        assert!(fonts.iter().all(|f| *f >= 10.0), "{n} bars: {fonts:?}");
        assert!(!page.contains("=\"-"), "a negative size or position");
        let travel = page
            .split("id=\"chart-travel\"")
            .nth(1)
            .and_then(|s| s.split("</div>").next())
            .unwrap_or_default();
        assert_eq!(travel.matches("<rect class=\"mark\"").count() as u64, n);
    }
}

#[test]
fn peak_collector_counts_a_generated_trace() {
    let sc = super::Scenario::load("gba").expect("gba parses");
    let opts = super::GenerateOptions {
        seed: 5,
        minutes: Some(10),
        start_minute: None,
        scale: 0.2,
        days: None,
    };
    let t = super::generate(&sc, &opts).expect("generates");
    let mut c = Collector::new(&t, &ReplayOptions::default(), None);
    for (i, e) in t.events.iter().enumerate() {
        let answer = if i % 10 == 0 {
            Err("UNAVAILABLE".to_string())
        } else {
            ok(1, 0, Some(12), Some(Tier::Secondary))
        };
        c.record(e, ms(3), answer);
    }
    let r = c.finish(Duration::from_secs(1));
    let n = t.events.len() as u64;
    assert_eq!(r.events, n);
    assert_eq!(r.failed, n.div_ceil(10));
    assert_eq!(r.ok + r.failed, n);
    assert_eq!(r.errors.get("UNAVAILABLE"), Some(&n.div_ceil(10)));
    assert_eq!(r.by_op.values().map(|o| o.in_trace).sum::<u64>(), n);
    assert!((r.latency.p50_ms - 3.0).abs() < 0.1, "{:?}", r.latency);
    assert!(r.timeline.len() as u64 <= TIMELINE_BUCKETS_MAX);
}

/// Measures, in the page as the browser laid it out, each chart's SVG box, its marks (bars,
/// lines, dots) and its texts (computed font size and box), and writes them as JSON into
/// `<pre id="probe">`, which `--dump-dom` prints.
const PROBE: &str = r#"<script>
(() => {
  const box = e => { const b = e.getBoundingClientRect(); return [b.left, b.top, b.width, b.height]; };
  const out = [];
  for (const div of document.querySelectorAll('div.chart')) {
    const svg = div.querySelector('svg');
    if (!svg) { out.push({id: div.id, note: div.textContent}); continue; }
    out.push({
      id: div.id,
      svg: box(svg),
      marks: [...svg.querySelectorAll('.mark')].map(e => [e.tagName].concat(box(e))),
      texts: [...svg.querySelectorAll('text')].map(t =>
        [t.textContent, parseFloat(getComputedStyle(t).fontSize)].concat(box(t))),
    });
  }
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"#;

/// The Chromium to test with: `NINETY_CHROMIUM`, else `chromium` or `chromium-browser` on
/// the PATH.
fn chromium() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("NINETY_CHROMIUM").filter(|p| !p.is_empty()) {
        return Some(p.into());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
        .find(|p| p.is_file())
}

/// Runs headless Chromium on `page` with `args` (a minute at most); its stdout.
pub(crate) fn run_chromium(bin: &std::path::Path, page: &std::path::Path, args: &[&str]) -> String {
    let profile = page.with_extension("profile");
    let child = std::process::Command::new(bin)
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| {
            let _ = std::process::Command::new("kill")
                .arg(id.to_string())
                .status();
            panic!("{} did not finish within a minute", bin.display())
        });
    let _ = std::fs::remove_dir_all(&profile);
    let out = out.unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One chart as Chromium laid it out.
#[derive(serde::Deserialize, Debug)]
struct Laid {
    id: String,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    svg: [f64; 4],
    #[serde(default)]
    marks: Vec<(String, f64, f64, f64, f64)>,
    #[serde(default)]
    texts: Vec<(String, f64, f64, f64, f64, f64)>,
}

/// Renders `r` in Chromium and returns the charts as laid out.
fn laid_out(bin: &std::path::Path, r: &ReplayResult, name: &str) -> Vec<Laid> {
    let dir = std::env::temp_dir().join(format!("ninety-chromium-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let page = dir.join("report.html");
    let text = html(r).replace("</body>", &format!("{PROBE}</body>"));
    std::fs::write(&page, text).expect("writes the page");
    let probe = |dom: &str| {
        let json = dom.split("<pre id=\"probe\">").nth(1)?;
        json.split("</pre>").next().map(str::to_string)
    };
    // A second try if the first run printed no DOM (a browser that failed to start).
    let dom = run_chromium(bin, &page, &["--window-size=1200,900", "--dump-dom"]);
    let json = probe(&dom).or_else(|| {
        let dom = run_chromium(bin, &page, &["--window-size=1200,900", "--dump-dom"]);
        probe(&dom)
    });
    let _ = std::fs::remove_dir_all(&dir);
    let json = json.unwrap_or_else(|| panic!("{name}: no probe output in the DOM:\n{dom}"));
    let json = json
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{name}: probe JSON: {e}\n{json}"))
}

/// A chart's marks are visible and its text readable: every text at least 10 px, inside
/// the chart, overlapping no other text; every bar at least its minimum size.
fn check_laid(name: &str, c: &Laid) {
    let [sx, sy, sw, sh] = c.svg;
    assert!(sw >= 800.0 && sh >= 80.0, "{name} {}: svg {sw}×{sh}", c.id);
    assert!(!c.marks.is_empty(), "{name} {}: no marks", c.id);
    for (tag, _, _, w, h) in &c.marks {
        let ok = match tag.as_str() {
            "rect" => *w >= BAR_MIN_PX - 0.01 && *h >= BAR_PX - 0.01,
            "circle" => *w >= 6.0 && *h >= 6.0,
            _ => w.max(*h) >= 1.0,
        };
        assert!(ok, "{name} {}: a {tag} of {w}×{h}", c.id);
    }
    for (i, (t, size, x, y, w, h)) in c.texts.iter().enumerate() {
        assert!(
            *size >= 10.0 && *h >= 10.0,
            "{name} {}: {t:?} at {size} px",
            c.id
        );
        assert!(*w > 0.0, "{name} {}: {t:?} is empty", c.id);
        let inside =
            *x >= sx - 0.5 && *y >= sy - 0.5 && x + w <= sx + sw + 0.5 && y + h <= sy + sh + 0.5;
        assert!(inside, "{name} {}: {t:?} is cut off", c.id);
        for (u, _, x2, y2, w2, h2) in &c.texts[i + 1..] {
            let overlap_x = (x + w).min(x2 + w2) - x.max(*x2);
            let overlap_y = (y + h).min(y2 + h2) - y.max(*y2);
            assert!(
                overlap_x <= 1.0 || overlap_y <= 1.0,
                "{name} {}: {t:?} overlaps {u:?}",
                c.id
            );
        }
    }
}

#[test]
fn peak_report_renders_readably_in_chromium() {
    let Some(bin) = chromium() else {
        println!(
            "SKIPPED peak_report_renders_readably_in_chromium: no chromium binary \
             (install Debian's chromium, or set NINETY_CHROMIUM)"
        );
        return;
    };
    for (name, n) in [("one-bar", 1u64), ("fifty-bars", 50)] {
        let charts = laid_out(&bin, &synthetic(n), name);
        assert_eq!(charts.len(), 8, "{name}: {charts:?}");
        for c in &charts {
            assert!(c.note.is_none(), "{name} {}: {:?}", c.id, c.note);
            check_laid(name, c);
        }
        let bars = |id: &str| {
            let c = charts.iter().find(|c| c.id == format!("chart-{id}"));
            c.map_or(0, |c| c.marks.iter().filter(|m| m.0 == "rect").count()) as u64
        };
        assert_eq!(bars("travel"), n, "{name}");
        assert_eq!(bars("errors"), n.min(31), "{name}");
        assert_eq!(bars("doctors"), n.min(20), "{name}");
    }
    // A chart with nothing to show is a sentence, laid out as text.
    let mut r = synthetic(2);
    r.bed_events = 0;
    let charts = laid_out(&bin, &r, "no-beds");
    let occupancy = charts.iter().find(|c| c.id == "chart-occupancy");
    let note = occupancy.and_then(|c| c.note.clone()).unwrap_or_default();
    assert!(note.starts_with("No bed traffic"), "{note:?}");
}
