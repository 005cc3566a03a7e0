//! Tests of the peak-day module (`cargo test -p ninety-sim --lib peak`).

use super::scenario::{Scenario, BUILT_IN};
use super::trace::{Header, Trace, TRACE_VERSION};
use super::*;
use std::collections::BTreeMap;

fn small(seed: u64) -> Trace {
    let sc = Scenario::load("gba").expect("gba parses");
    let opts = GenerateOptions {
        seed,
        minutes: Some(15),
        start_minute: None,
        scale: 0.2,
        days: None,
    };
    generate(&sc, &opts).expect("generates")
}

#[test]
fn peak_scenarios_parse() {
    for (name, text) in BUILT_IN {
        let sc = Scenario::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(sc.name, name);
        sc.preset().expect("known preset");
    }
    assert!(Scenario::load("no-such-scenario").is_err());
    let bad = BUILT_IN[0]
        .1
        .replace("follow_up_remote = 67", "follow_up_remote = 167");
    assert!(Scenario::parse(&bad)
        .unwrap_err()
        .contains("follow_up_remote"));
}

#[test]
fn peak_generator_is_deterministic() {
    let a = small(7).to_jsonl();
    let b = small(7).to_jsonl();
    assert_eq!(a, b, "same seed, same bytes");
    assert_ne!(a, small(8).to_jsonl(), "another seed, another day");
    let t = small(7);
    assert!(t.events.len() > 200, "{} events", t.events.len());
    let first = a.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(
            r#"{"format":"ninety-trace","version":2,"scenario":"gba","seed":7,"start_ms":"#
        ),
        "{first}"
    );
    for e in &t.events {
        assert_eq!(e.request_id.len(), 32);
        if let Some(p) = patient_of(&e.op) {
            assert!(
                p.len() == 32
                    && p.chars()
                        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            );
        }
    }
    // The mix: follow-ups dominate; there are referrals, beds and consultations.
    let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &t.events {
        *ops.entry(e.op.name()).or_default() += 1;
    }
    for op in [
        "allocate_slot",
        "book_slot",
        "match_specialist",
        "hold_bed",
        "confirm_hold",
        "request_referral",
        "hold_joint_consult",
    ] {
        assert!(ops.get(op).copied().unwrap_or(0) > 0, "no {op} in {ops:?}");
    }
}

fn patient_of(op: &Op) -> Option<&str> {
    match op {
        Op::AllocateSlot { patient, .. }
        | Op::HoldBed { patient, .. }
        | Op::AllocateBed { patient, .. }
        | Op::HoldJointConsult { patient, .. }
        | Op::RequestReferral { patient, .. } => Some(patient),
        _ => None,
    }
}

#[test]
fn peak_every_scenario_generates() {
    for (name, _) in BUILT_IN {
        if name == "national" {
            continue; // 14,400 hospitals: covered by the CLI, slow in a debug test
        }
        let sc = Scenario::load(name).expect("parses");
        let t = generate(
            &sc,
            &GenerateOptions {
                seed: 1,
                minutes: Some(20),
                start_minute: None,
                scale: 1.0,
                days: None,
            },
        )
        .expect("generates");
        assert!(!t.events.is_empty(), "{name}");
        assert_eq!(t.header.region.as_deref(), Some(sc.region.preset.as_str()));
    }
}

#[test]
fn peak_trace_round_trips() {
    let t = small(3);
    let text = t.to_jsonl();
    let back = Trace::read(text.as_bytes()).expect("reads back");
    assert_eq!(back, t);
    assert_eq!(back.to_jsonl(), text);
}

#[test]
fn peak_trace_rejects_unknown_version_and_bad_lines() {
    let t = small(3);
    let text = t.to_jsonl();
    let v3 = text.replacen("\"version\":2", "\"version\":3", 1);
    let e = Trace::read(v3.as_bytes()).unwrap_err();
    assert_eq!(e.line, 1);
    assert!(e.message.contains("version 3"), "{e}");
    let other = text.replacen("ninety-trace", "other-trace", 1);
    assert_eq!(Trace::read(other.as_bytes()).unwrap_err().line, 1);
    // Break line 4 (the third event).
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[3] = lines[3].replace("\"op\":", "\"op_oops\":");
    let e = Trace::read(lines.join("\n").as_bytes()).unwrap_err();
    assert_eq!(e.line, 4, "{e}");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[5] = "{not json".into();
    assert_eq!(
        Trace::read(lines.join("\n").as_bytes()).unwrap_err().line,
        6
    );
    // A reference to a later event.
    let header = serde_json::to_string(&Header::new("x", 0, 0)).unwrap_or_default();
    let fwd = format!(
        "{header}\n{}\n",
        r#"{"id":1,"at_ms":0,"request_id":"00000000000000000000000000000001","op":"confirm_hold","hold":{"event":5}}"#
    );
    let e = Trace::read(fwd.as_bytes()).unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.message.contains("event 5"), "{e}");
    // A literal id is fine.
    let lit = fwd.replace(r#"{"event":5}"#, "42");
    let t = Trace::read(lit.as_bytes()).expect("literal ids are allowed");
    assert_eq!(t.events[0].op, Op::ConfirmHold { hold: Ref::Id(42) });
    assert_eq!(TRACE_VERSION, 2);
    assert_eq!(Trace::read("".as_bytes()).unwrap_err().line, 1);
    // An event due beyond the longest span (it used to make replay wait for ever).
    let far = lit.replace("\"at_ms\":0", &format!("\"at_ms\":{}", u64::MAX));
    let e = Trace::read(far.as_bytes()).unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.message.contains("at_ms 18446744073709551615"), "{e}");
    let mut t = small(3);
    t.events[1].at_ms = trace::TRACE_SPAN_MS_MAX + 1;
    assert!(t.check_span().unwrap_err().contains("event"));
}

#[test]
fn peak_options_out_of_range_are_refused_not_clamped() {
    let sc = Scenario::load("gba").expect("gba parses");
    let with = |minutes, start_minute, scale| GenerateOptions {
        seed: 1,
        minutes,
        start_minute,
        scale,
        days: None,
    };
    let refused = [
        (with(Some(0), None, 1.0), "minutes"),
        (with(Some(u32::MAX), None, 1.0), "minutes"),
        (with(Some(1441), None, 1.0), "minutes"),
        (with(None, Some(1440), 1.0), "start_minute"),
        (with(None, Some(99_999), 1.0), "start_minute"),
        (with(None, None, 0.0), "scale"),
        (with(None, None, f64::NAN), "scale"),
        (with(None, None, f64::INFINITY), "scale"),
    ];
    for (opts, field) in refused {
        let e = generate(&sc, &opts).unwrap_err();
        assert!(e.starts_with(field), "{opts:?}: {e}");
    }
    for days in [0, generate::TRACE_DAYS_MAX + 1] {
        let opts = GenerateOptions {
            days: Some(days),
            ..with(None, None, 1.0)
        };
        assert!(generate(&sc, &opts).unwrap_err().starts_with("days"));
    }
    assert_eq!(
        generate::check_options(&sc, &with(Some(1440), Some(1439), 0.01)),
        Ok((1440, 1439, 1))
    );
    for speed in [1e-300, 0.0, -1.0, f64::NAN, f64::INFINITY, 1e300] {
        assert!(
            replay::check_speed(speed).unwrap_err().starts_with("speed"),
            "{speed}"
        );
    }
    assert_eq!(replay::check_speed(60.0), Ok(60.0));
    assert!(replay::check_max_in_flight(0).is_err());
    assert!(replay::check_max_in_flight(usize::MAX).is_err());
}

#[test]
fn peak_error_kind_names_grpc_code_and_rejection() {
    let rej = ninety_proto::v1::Rejection {
        code: ninety_proto::v1::RejectionCode::NoCapacity as i32,
        ..Default::default()
    };
    let s = ninety_proto::status::rejection_status(tonic::Code::FailedPrecondition, &rej);
    assert_eq!(replay::error_kind(&s), "FAILED_PRECONDITION/NO_CAPACITY");
    assert_eq!(
        replay::error_kind(&tonic::Status::unimplemented("x")),
        "UNIMPLEMENTED"
    );
    assert_eq!(replay::salted("abc", 0), "abc");
    assert_eq!(replay::salted("abc", 9).len(), 32);
    assert_ne!(replay::salted("abc", 9), replay::salted("abc", 10));
}
