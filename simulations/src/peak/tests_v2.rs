//! Tests of trace format version 2, the CSV converter, the schedule mapping and live
//! mode's schedule, and the multi-day generator (`cargo test -p ninety-sim --lib peak`).

use super::convert::{self, parse_csv, parse_stamp, ConvertOptions};
use super::scenario::Scenario;
use super::timeline::{ScheduleMode, Timeline};
use super::trace::{
    self, local_midnight, tz_offset_minutes, Event, Header, Op, PatientAttrs, Ref, Trace,
    MS_PER_DAY,
};
use super::*;
use std::collections::{BTreeMap, BTreeSet};

const RID: &str = "00000000000000000000000000000001";
const PATIENT: &str = "0123456789abcdef0123456789abcdef";
/// 2026-11-24 00:00 UTC.
const DAY: u64 = 1_795_478_400_000;

fn book(id: u64, at_ms: u64) -> Event {
    Event::new(
        id,
        at_ms,
        RID.into(),
        Op::Book {
            patient: PATIENT.into(),
            from_hospital: 1,
            specialty: "cardiology".into(),
            urgency: trace::Urgency::P4,
            mode: trace::Mode::InPerson,
            window_start_ms: DAY,
            window_end_ms: DAY + MS_PER_DAY,
            max_travel_minutes: 0,
            channel: trace::Channel::Public,
            referral: None,
        },
    )
}

fn hand_made() -> Trace {
    let mut header = Header::new("hand", 0, DAY - 3_600_000);
    header.time_zone = Some("+08:00".into());
    header.description = Some("two patients".into());
    header.source = Some("tests_v2.rs".into());
    header.licence = Some("CC0-1.0".into());
    header.days = Some(2);
    let mut b = book(1, 0);
    b.patient_attrs = Some(PatientAttrs {
        age_band: Some("65+".into()),
        sex: Some("female".into()),
        language: Some("yue".into()),
    });
    let mut no_show = Event::new(
        2,
        4_500_000,
        RID.into(),
        Op::MarkNoShow {
            hold: Ref::Event { event: 1 },
        },
    );
    no_show.after_slot_ms = Some(900_000);
    let bed = Event::new(
        3,
        5_000_000,
        RID.into(),
        Op::HoldBed {
            ward: 1,
            bed: 0,
            patient: PATIENT.into(),
            ttl_ms: 60_000,
            urgency: trace::Urgency::P2,
            channel: trace::Channel::Public,
            referral: None,
        },
    );
    let out = Event::new(
        4,
        9_000_000,
        RID.into(),
        Op::Discharge {
            bed: Ref::Event { event: 3 },
        },
    );
    let clean = Event::new(
        5,
        9_900_000,
        RID.into(),
        Op::MarkBedClean {
            bed: Ref::Event { event: 3 },
        },
    );
    Trace {
        header,
        events: vec![b, no_show, bed, out, clean],
    }
}

#[test]
fn v2_trace_round_trips_with_its_new_fields() {
    let t = hand_made();
    t.check().expect("valid");
    let text = t.to_jsonl();
    assert!(text.contains(r#""after_slot_ms":900000"#), "{text}");
    assert!(text.contains(r#""op":"book""#));
    assert!(text.contains(r#""op":"discharge","bed":{"event":3}"#));
    assert!(text.contains(r#""time_zone":"+08:00""#));
    let back = Trace::read(text.as_bytes()).expect("reads back");
    assert_eq!(back, t);
    assert_eq!(back.to_jsonl(), text);
}

#[test]
fn v1_traces_are_still_read_and_keep_to_version_1() {
    let mut header = Header::new("old", 0, DAY);
    header.version = 1;
    let v1 = Trace {
        header,
        events: vec![Event::new(
            1,
            0,
            RID.into(),
            Op::ConfirmHold { hold: Ref::Id(7) },
        )],
    };
    let text = v1.to_jsonl();
    assert!(text.starts_with(r#"{"format":"ninety-trace","version":1,"#));
    assert_eq!(Trace::read(text.as_bytes()).expect("v1 reads"), v1);
    // Anything of version 2 in a version-1 trace is refused with its line.
    let mut bad = v1.clone();
    bad.events.push(book(2, 1));
    let e = Trace::read(bad.to_jsonl().as_bytes()).unwrap_err();
    assert_eq!(e.line, 3);
    assert!(e.message.contains("version 2"), "{e}");
    let mut bad = v1.clone();
    bad.header.time_zone = Some("UTC".into());
    let e = Trace::read(bad.to_jsonl().as_bytes()).unwrap_err();
    assert_eq!(e.line, 1);
    assert!(e.message.contains("time_zone"), "{e}");
    // Version 1 spans a week, version 2 a year.
    let mut far = v1.clone();
    far.events[0].at_ms = trace::TRACE_SPAN_MS_MAX_V1 + 1;
    assert!(far.check_span().is_err());
    far.header.version = 2;
    assert!(far.check_span().is_ok());
}

#[test]
fn v2_references_attributes_and_header_are_checked() {
    let refuse = |t: &Trace, line: usize, needle: &str| {
        let e = Trace::read(t.to_jsonl().as_bytes()).unwrap_err();
        assert_eq!(e.line, line, "{e}");
        assert!(e.message.contains(needle), "{e}");
    };
    // after_slot_ms on an op without a slot hold.
    let mut t = hand_made();
    t.events[3].after_slot_ms = Some(1);
    refuse(&t, 5, "after_slot_ms");
    // after_slot_ms timed from a bed hold.
    let mut t = hand_made();
    t.events[1].op = Op::MarkNoShow {
        hold: Ref::Event { event: 1 },
    };
    t.events.swap(1, 2);
    t.events[1].id = 2;
    t.events[2].id = 3;
    t.events[1].at_ms = 4_500_000;
    t.events[2].at_ms = 5_000_000;
    t.events[2].op = Op::MarkNoShow {
        hold: Ref::Event { event: 2 },
    };
    refuse(&t, 4, "holds no slot");
    // A bed reference to a slot hold.
    let mut t = hand_made();
    t.events[3].op = Op::Discharge {
        bed: Ref::Event { event: 1 },
    };
    refuse(&t, 5, "hold_bed or allocate_bed");
    // Bad attributes.
    for (attrs, needle) in [
        (r#"{"age_band":"14-3"}"#, "age_band"),
        (r#"{"sex":"other"}"#, "sex"),
        (r#"{"language":"fr"}"#, "language"),
        (r#"{"shoe_size":42}"#, "shoe_size"),
    ] {
        let text = hand_made().to_jsonl().replacen(
            r#""patient_attrs":{"age_band":"65+","sex":"female","language":"yue"}"#,
            &format!(r#""patient_attrs":{attrs}"#),
            1,
        );
        let e = Trace::read(text.as_bytes()).unwrap_err();
        assert_eq!(e.line, 2, "{attrs}: {e}");
        assert!(e.message.contains(needle), "{attrs}: {e}");
    }
    let mut t = hand_made();
    t.header.time_zone = Some("Mars/Olympus".into());
    refuse(&t, 1, "time zone");
    let mut t = hand_made();
    t.header.description = Some("x".repeat(trace::HEADER_TEXT_BYTES_MAX + 1));
    refuse(&t, 1, "description");
}

#[test]
fn time_zones_and_days() {
    assert_eq!(tz_offset_minutes("UTC"), Ok(0));
    assert_eq!(tz_offset_minutes("Z"), Ok(0));
    assert_eq!(tz_offset_minutes("+08:00"), Ok(480));
    assert_eq!(tz_offset_minutes("UTC-03:00"), Ok(-180));
    assert_eq!(tz_offset_minutes("-0330"), Ok(-210));
    assert_eq!(tz_offset_minutes("UTC+8"), Ok(480));
    assert_eq!(tz_offset_minutes("Asia/Yangon"), Ok(390));
    for bad in ["+25:00", "8", "Europe/Paris", "+08:61", "UTC+"] {
        assert!(tz_offset_minutes(bad).is_err(), "{bad}");
    }
    // 2026-11-24 07:50 in UTC+8 is on the local day starting 2026-11-23 16:00 UTC.
    let start = DAY - 10 * 60_000;
    assert_eq!(local_midnight(start, 480), DAY - 8 * 3_600_000);
    assert_eq!(local_midnight(start, 0), DAY - MS_PER_DAY);
    let mut h = Header::new("x", 0, start);
    h.time_zone = Some("Asia/Shanghai".into());
    assert_eq!(h.day0_ms(), DAY - 8 * 3_600_000);
    assert_eq!(h.day_of(DAY), 0);
    assert_eq!(h.day_of(DAY + 16 * 3_600_000), 1);
    assert_eq!(h.day_of(DAY - 9 * 3_600_000), -1);
    assert_eq!(trace::utc_date(DAY), "2026-11-24");
    assert_eq!(
        trace::days_from_civil(2026, 11, 24),
        Some((DAY / MS_PER_DAY) as i64)
    );
    assert_eq!(trace::days_from_civil(2026, 2, 29), None);
    assert_eq!(
        trace::days_from_civil(2028, 2, 29).map(|d| d > 0),
        Some(true)
    );
    let t = hand_made();
    assert_eq!(t.window_days(), Some((0, 1)));
    assert_eq!(t.first_days(1).events.len(), 5);
    assert_eq!(t.first_days(1).header, t.header);
}

#[test]
fn age_bands_and_children() {
    assert_eq!(trace::parse_age_band("0-14"), Ok((0, Some(14))));
    assert_eq!(trace::parse_age_band("65+"), Ok((65, None)));
    assert!(trace::parse_age_band("+5").is_err());
    assert!(trace::parse_age_band("20-10").is_err());
    let child = PatientAttrs {
        age_band: Some("5-9".into()),
        ..Default::default()
    };
    assert!(child.is_child());
    assert!(!PatientAttrs {
        age_band: Some("0-17".into()),
        ..Default::default()
    }
    .is_child());
    assert_eq!(trace::age_band_of(14), "0-14");
    assert_eq!(trace::age_band_of(90), "65+");
}

#[test]
fn calendar_timeline_moves_slot_times_by_whole_days() {
    let t = hand_made();
    let tl = Timeline::calendar(&t.header, 7 * MS_PER_DAY as i64, 100.0);
    assert_eq!(tl.to_cluster(DAY), DAY + 7 * MS_PER_DAY);
    assert_eq!(tl.to_trace(DAY + 7 * MS_PER_DAY + 5), DAY + 5);
    assert_eq!(tl.trace_day(DAY + 7 * MS_PER_DAY), 0);
    let op = tl.map_op(&t.events[0].op);
    assert_eq!(
        op.window(),
        Some((DAY + 7 * MS_PER_DAY, DAY + 8 * MS_PER_DAY))
    );
    // Durations are the cluster's own in calendar mode.
    assert_eq!(tl.map_op(&t.events[2].op), t.events[2].op);
    let d = tl.describe(&t);
    assert!(
        d.starts_with("calendar: slot windows on trace days 0..=1"),
        "{d}"
    );
    assert!(d.contains("moved 7 days"), "{d}");
}

#[test]
fn live_timeline_runs_the_trace_on_the_replay_clock() {
    let t = hand_made();
    let w0 = 1_900_000_000_000;
    let mut tl = Timeline::live(&t.header, w0, 60.0);
    assert_eq!(tl.mode, ScheduleMode::Live);
    // An hour of trace is a minute of the replay.
    assert_eq!(tl.to_cluster(t.header.start_ms + 3_600_000), w0 + 60_000);
    assert_eq!(tl.to_trace(w0 + 60_000), t.header.start_ms + 3_600_000);
    tl.widen_ms = 120_000;
    let op = tl.map_op(&t.events[0].op);
    let (s, e) = op.window().unwrap_or_default();
    assert_eq!(s, w0 + 60_000);
    assert_eq!(e, w0 + 60_000 + MS_PER_DAY / 60 + 120_000);
    // TTLs shrink with the speed, never under the engine's minimum.
    match tl.map_op(&t.events[2].op) {
        Op::HoldBed { ttl_ms, .. } => assert_eq!(ttl_ms, 1_000),
        other => panic!("{other:?}"),
    }
    let transit = Op::StartTransit {
        referral: Ref::Id(1),
        eta_after_ms: 3_600_000,
    };
    assert_eq!(
        tl.map_op(&transit),
        Op::StartTransit {
            referral: Ref::Id(1),
            eta_after_ms: 60_000
        }
    );
    assert_eq!(timeline::live_minutes(15 * 60_000, 1.0), 15 * 60_000);
    assert_eq!(timeline::live_minutes(15 * 60_000, 10.0), 60_000);
    assert_eq!(timeline::live_minutes(15 * 60_000, 1000.0), 60_000);
    assert_eq!(timeline::day_ranges(&[1, 3, 4, 5, 9]), "1, 3..=5, 9");
}

/// A short GBA trace over `days` days.
fn gba_days(days: u32, minutes: u32, scale: f64) -> Trace {
    let sc = Scenario::load("gba").expect("gba parses");
    let opts = GenerateOptions {
        seed: 3,
        minutes: Some(minutes),
        start_minute: Some(480),
        scale,
        days: Some(days),
    };
    generate(&sc, &opts).expect("generates")
}

#[test]
fn live_plan_publishes_non_overlapping_slots_on_the_replay_clock() {
    let t = gba_days(2, 30, 0.02);
    let region = trace_region(&t).expect("gba");
    for speed in [1.0, 600.0, 20_000.0] {
        let w0 = 1_900_000_000_000;
        let tl = Timeline::live(&t.header, w0, speed);
        let plan = live::plan(&region, &t, &tl);
        assert!(!plan.doctors.is_empty(), "{speed}");
        let mut published = 0u64;
        for (doctor, slots) in &plan.doctors {
            let mut end = 0;
            for s in slots {
                assert!(s.start_ms >= w0, "doctor {doctor} at {speed}x");
                assert!(s.start_ms >= end, "doctor {doctor} overlaps at {speed}x");
                assert!(s.capacity >= 1 && s.capacity + s.overbook <= 200);
                assert!(s.referral_reserved <= s.capacity);
                assert!(s.duration_minutes >= 1);
                end = s.start_ms + u64::from(s.duration_minutes) * 60_000;
                published += u64::from(s.capacity);
            }
        }
        assert!(published > 0, "{speed}");
        if speed == 1.0 {
            // Real time: every slot keeps its own start and 15 minutes.
            assert_eq!(plan.max_delay_ms, 0);
            let (_, slots) = &plan.doctors[0];
            assert!(slots.iter().all(|s| s.duration_minutes == 15));
        } else {
            assert!(plan.max_delay_ms > 0, "{speed}");
        }
    }
}

#[test]
fn multi_day_generator_discharges_cleans_and_repeats_no_shows() {
    let t = gba_days(6, 60, 0.02);
    t.check().expect("a valid trace");
    assert_eq!(t.header.days, Some(6));
    assert_eq!(t.header.time_zone.as_deref(), Some("Asia/Shanghai"));
    assert_eq!(t.header.licence.as_deref(), Some("CC0-1.0"));
    let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &t.events {
        *ops.entry(e.op.name()).or_default() += 1;
    }
    for op in [
        "book",
        "discharge",
        "mark_bed_clean",
        "mark_no_show",
        "complete_referral",
    ] {
        assert!(ops.get(op).copied().unwrap_or(0) > 0, "no {op} in {ops:?}");
    }
    // Windows reach several days ahead; events span the six days.
    let (first, last) = t.window_days().expect("windows");
    assert_eq!(first, 0);
    assert!(last >= 8, "windows up to day {last}");
    let days: BTreeSet<i64> = t
        .events
        .iter()
        .map(|e| t.header.day_of(t.header.start_ms + e.at_ms))
        .collect();
    assert_eq!(days, (0..6).collect());
    // Every no-show is timed from its slot; a few patients miss three or more.
    let by_id: BTreeMap<u64, &Event> = t.events.iter().map(|e| (e.id, e)).collect();
    let mut missed: BTreeMap<&str, u32> = BTreeMap::new();
    for e in &t.events {
        if let Op::MarkNoShow { hold } = &e.op {
            assert!(e.after_slot_ms.is_some_and(|ms| ms > 0));
            let target = hold.event().and_then(|id| by_id.get(&id));
            let patient = target.and_then(|b| b.op.patient()).unwrap_or_default();
            *missed.entry(patient).or_default() += 1;
        }
        if let Op::Discharge { bed } = &e.op {
            let target = bed.event().and_then(|id| by_id.get(&id));
            assert!(target.is_some_and(|b| b.op.holds_bed()));
        }
    }
    let repeat = missed.values().filter(|&&n| n >= 3).count();
    assert!(repeat >= 1, "no patient misses three: {missed:?}");
    // Patients carry attributes; a language is required only beyond the common ones.
    let with_attrs = t
        .events
        .iter()
        .filter(|e| e.patient_attrs.is_some())
        .count();
    assert!(with_attrs * 2 > t.events.len());
    assert!(t
        .events
        .iter()
        .filter_map(|e| e.patient_attrs.as_ref()?.language.as_deref())
        .all(|l| l != "zh" && l != "yue"));
    // Same seed, same bytes.
    assert_eq!(t.to_jsonl(), gba_days(6, 60, 0.02).to_jsonl());
}

const CSV: &str = include_str!("../../testdata/appointments.csv");

#[test]
fn the_sample_csv_converts_with_its_dates_and_no_shows() {
    let opts = ConvertOptions {
        description: Some("synthetic".into()),
        licence: Some("CC0-1.0".into()),
        ..ConvertOptions::default()
    };
    let (t, report) = convert::convert(CSV, &opts).expect("converts");
    assert_eq!(report.rows, 51);
    assert_eq!(report.appointments, 50);
    assert_eq!(report.no_shows, 14);
    assert_eq!(report.cancellations, 5);
    assert_eq!(report.days, 30);
    assert_eq!(report.skipped.get("booked after its appointment"), Some(&1));
    assert!(
        report.line().contains("50 appointments"),
        "{}",
        report.line()
    );
    assert_eq!(t.header.days, Some(30));
    assert_eq!(t.header.time_zone.as_deref(), Some("+08:00"));
    assert_eq!(t.header.region.as_deref(), Some("gba"));
    // Read back from its own text.
    let back = Trace::read(t.to_jsonl().as_bytes()).expect("a valid trace");
    assert_eq!(back, t);
    // No raw patient id in the trace.
    assert!(!t.to_jsonl().contains("P-00"));
    // P-0007: three no-shows, one pseudonym; the first appointment is 2026-11-03's clinic
    // day, 08:00-17:30 at UTC+8.
    let p7 = convert::pseudonym("", "P-0007");
    let books: Vec<&Event> = t
        .events
        .iter()
        .filter(|e| e.op.patient() == Some(p7.as_str()))
        .collect();
    assert_eq!(books.len(), 4);
    let nov3 = (trace::days_from_civil(2026, 11, 3).unwrap_or(0) as u64) * MS_PER_DAY;
    assert_eq!(
        books[0].op.window(),
        Some((nov3, nov3 + (17 * 60 + 30 - 8 * 60) * 60_000))
    );
    let missed = t
        .events
        .iter()
        .filter(|e| matches!(&e.op, Op::MarkNoShow { hold } if books.iter().any(|b| Some(b.id) == hold.event())))
        .count();
    assert_eq!(missed, 3);
    // The trace's days are the appointments' days: the last is 2026-12-01, day 29.
    let (first, last) = t.window_days().expect("windows");
    assert_eq!((first, last), (1, 29));
    // A date-only appointment written as UTC midnight keeps its date (2026-11-13).
    let nov13 = (trace::days_from_civil(2026, 11, 13).unwrap_or(0) as u64) * MS_PER_DAY;
    assert!(t
        .events
        .iter()
        .any(|e| e.op.window().is_some_and(|w| w.0 == nov13)));
}

#[test]
fn the_converter_refuses_what_it_cannot_map() {
    let opts = ConvertOptions::default();
    let e = convert::convert("when,what\n", &opts).unwrap_err();
    assert!(e.contains("booked_at") && e.contains("when, what"), "{e}");
    let cols = convert::Columns {
        no_show: Some("missed".into()),
        ..Default::default()
    };
    let e = convert::convert(
        "booked_at,appointment_at\n",
        &ConvertOptions {
            columns: cols,
            ..ConvertOptions::default()
        },
    )
    .unwrap_err();
    assert!(e.contains("missed") && e.contains("--col-no-show"), "{e}");
    let e = convert::convert(
        "booked_at,appointment_at,specialty\n2026-11-02 09:00,2026-11-03,Astrology\n",
        &opts,
    )
    .unwrap_err();
    assert!(e.contains("line 2") && e.contains("Astrology"), "{e}");
    let mapped = ConvertOptions {
        specialty_map: vec![("Astrology".into(), "psychiatry".into())],
        ..ConvertOptions::default()
    };
    let (t, _) = convert::convert(
        "booked_at,appointment_at,specialty\n2026-11-02 09:00,2026-11-03,Astrology\n",
        &mapped,
    )
    .expect("mapped");
    assert!(matches!(&t.events[0].op, Op::Book { specialty, .. } if specialty == "psychiatry"));
    for bad in [
        ConvertOptions {
            tz: "Moon/Base".into(),
            ..ConvertOptions::default()
        },
        ConvertOptions {
            clinic_hours: (600, 500),
            ..ConvertOptions::default()
        },
        ConvertOptions {
            region: Some("atlantis".into()),
            ..ConvertOptions::default()
        },
    ] {
        assert!(convert::convert("booked_at,appointment_at\n", &bad).is_err());
    }
}

#[test]
fn times_are_kept_as_clock_readings_when_asked() {
    // A Brazilian clinic's 09:00 (-03:00) written in UTC, replayed as 09:00 at UTC+8.
    let text = "booked_at,appointment_at\n2016-04-29T12:00:00Z,2016-05-02T12:00:00Z\n";
    let opts = ConvertOptions {
        source_tz: Some("-03:00".into()),
        window_minutes: 60,
        ..ConvertOptions::default()
    };
    let (t, _) = convert::convert(text, &opts).expect("converts");
    let may2 = (trace::days_from_civil(2016, 5, 2).unwrap_or(0) as u64) * MS_PER_DAY;
    // 09:00 at UTC+8 is 01:00 UTC; the window is 08:30-09:30 local.
    let nine = may2 + 3_600_000;
    assert_eq!(
        t.events[0].op.window(),
        Some((nine - 1_800_000, nine + 1_800_000))
    );
    // Without --source-tz the instant is kept: 12:00 UTC.
    let (t, _) = convert::convert(text, &ConvertOptions::default()).expect("converts");
    let noon = may2 + 12 * 3_600_000;
    assert_eq!(
        t.events[0].op.window(),
        Some((noon - 1_800_000, noon + 1_800_000))
    );
}

#[test]
fn csv_and_stamps_parse() {
    let rows = parse_csv("\u{feff}a,b,c\r\n1,\"two, \"\"quoted\"\"\",3\n\n4,\"multi\nline\",6")
        .expect("parses");
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows[1],
        (2, vec!["1".into(), "two, \"quoted\"".into(), "3".into()])
    );
    assert_eq!(rows[2].0, 4);
    assert_eq!(rows[2].1[1], "multi\nline");
    assert!(parse_csv("a,\"b\n").is_err());
    let s = parse_stamp("2026-11-24").expect("a date");
    assert!(!s.has_time && s.offset.is_none());
    assert_eq!(s.day, (DAY / MS_PER_DAY) as i64);
    let s = parse_stamp("2026-11-24T07:50:30.5+08:00").expect("a time");
    assert!(s.has_time);
    assert_eq!(s.ms, (7 * 60 + 50) * 60_000 + 30_500);
    assert_eq!(s.offset, Some(480));
    let s = parse_stamp("2016-04-29T00:00:00Z").expect("midnight");
    assert!(!s.has_time, "midnight is a date only");
    assert_eq!(s.offset, Some(0));
    assert_eq!(
        parse_stamp("2026/11/24 23:59").map(|s| s.ms),
        Ok(1439 * 60_000)
    );
    for bad in [
        "24/11/2026",
        "2026-11-24 25:00",
        "2026-13-01",
        "tomorrow",
        "",
    ] {
        assert!(parse_stamp(bad).is_err(), "{bad}");
    }
    assert_eq!(convert::pseudonym("s", "P-1").len(), 32);
    assert_ne!(
        convert::pseudonym("s", "P-1"),
        convert::pseudonym("t", "P-1")
    );
}

#[test]
fn the_report_shows_the_schedule_blocks_and_days() {
    let r = ReplayResult {
        schedule: "calendar: trace day 1 on the cluster's 2026-12-02".into(),
        no_show_blocks: 2,
        slot_days: [(3, 4), (29, 1)].into_iter().collect(),
        ..ReplayResult::default()
    };
    let page = report::html(&r);
    assert!(
        page.contains("patients blocked by the no-show policy"),
        "no row for the blocks"
    );
    assert!(page.contains("2 (a new block after a no-show)"));
    assert!(page.contains("trace day 1 on the cluster"));
    assert!(page.contains("2 days; 3: 4, 29: 1"), "seats by day missing");
    let json = serde_json::to_string(&r).unwrap_or_default();
    let back: ReplayResult = serde_json::from_str(&json).expect("parses");
    assert_eq!(back, r);
    // A summary written before these fields still reads.
    let old = json
        .replace(",\"no_show_blocks\":2", "")
        .replace(",\"slot_days\":{\"3\":4,\"29\":1}", "");
    let back: ReplayResult = serde_json::from_str(&old).expect("old summary parses");
    assert_eq!(back.no_show_blocks, 0);
}
