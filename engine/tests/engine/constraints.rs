//! Constraints honoured by the engine (issue 14, item 5): language, travel and tier bounds
//! and bed needs change what a search ranks and what an allocation holds; the referral
//! channel of a bed allocation needs a referral; a referral keeps its direction, reason
//! code, note and outcome, and its history tells each step's log index, actor and reason.

use super::fixture::*;
use ninety_engine::matching::{BedQuery, Bounds, Origin, SlotQuery};
use ninety_engine::referrals::ReferralActor;
use ninety_engine::*;

fn field(err: Rejection) -> String {
    match err {
        Rejection::Invalid { field, .. } => field,
        other => panic!("{other:?}"),
    }
}

fn beds(bounds: Bounds, needs: BedNeeds) -> BedQuery {
    BedQuery {
        origin: Origin::Hospital(HospitalId(1)),
        needs,
        specialty: Some(Specialty::Cardiology),
        isolation: false,
        urgency: Urgency::P2,
        limit: 5,
        bounds,
    }
}

fn allocate_bed(fx: &mut Fx, q: BedQuery, patient: u128) -> Result<WardId, Rejection> {
    let c = Command::AllocateBed {
        query: q,
        ttl_ms: HOUR,
        patient: PatientRef(patient),
    };
    match fx.run(c)? {
        Reply::BedAllocated { ward, .. } => Ok(ward),
        other => panic!("{other:?}"),
    }
}

const NEAR: Bounds = Bounds {
    max_travel_minutes: Some(30),
    min_tier: None,
};
const TERTIARY: Bounds = Bounds {
    max_travel_minutes: None,
    min_tier: Some(Tier::Tertiary),
};

/// From H1: W2 (H2, secondary, ICU) is 30 minutes away, W1 (H3, tertiary, general) 70.
#[test]
fn travel_tier_and_needs_change_the_ward_allocated() {
    let mut fx = Fx::new();
    assert_eq!(
        allocate_bed(&mut fx, beds(NEAR, BedNeeds::default()), 1),
        Ok(WardId(2))
    );
    assert_eq!(
        allocate_bed(&mut fx, beds(TERTIARY, BedNeeds::default()), 2),
        Ok(WardId(1))
    );
    let icu = BedNeeds {
        kind: Some(WardKind::Icu),
        ..BedNeeds::default()
    };
    assert_eq!(
        allocate_bed(&mut fx, beds(Bounds::NONE, icu.clone()), 3),
        Ok(WardId(2))
    );
    // Nothing meets both: refused, never bent, and nothing changed.
    let err = fx.refuse(Command::AllocateBed {
        query: beds(TERTIARY, icu),
        ttl_ms: HOUR,
        patient: PatientRef(4),
    });
    assert!(matches!(err, Rejection::NoCapacity(_)), "{err:?}");
    let ventilated = BedNeeds {
        equipment: vec![Equipment::Ventilator],
        ..BedNeeds::default()
    };
    let err = fx.refuse(Command::AllocateBed {
        query: beds(Bounds::NONE, ventilated),
        ttl_ms: HOUR,
        patient: PatientRef(4),
    });
    assert!(matches!(err, Rejection::NoCapacity(_)), "{err:?}");
    let isolated = BedQuery {
        isolation: true,
        ..beds(Bounds::NONE, BedNeeds::default())
    };
    let err = fx.refuse(Command::AllocateBed {
        query: isolated,
        ttl_ms: HOUR,
        patient: PatientRef(4),
    });
    assert!(matches!(err, Rejection::NoCapacity(_)), "{err:?}");
}

#[test]
fn a_single_sex_ward_takes_only_its_sex() {
    let mut fx = Fx::new();
    let mut w = ward(2, 2, WardKind::Icu, 2);
    w.sex = SexPolicy::Female;
    fx.run(Command::UpsertWard(w)).unwrap();
    let male = BedNeeds {
        sex: Some(Sex::Male),
        ..BedNeeds::default()
    };
    let female = BedNeeds {
        sex: Some(Sex::Female),
        ..BedNeeds::default()
    };
    assert_eq!(
        allocate_bed(&mut fx, beds(Bounds::NONE, male), 1),
        Ok(WardId(1))
    );
    assert_eq!(allocate_bed(&mut fx, beds(NEAR, female), 2), Ok(WardId(2)));
    let male_near = BedNeeds {
        sex: Some(Sex::Male),
        ..BedNeeds::default()
    };
    let err = fx.refuse(Command::AllocateBed {
        query: beds(NEAR, male_near),
        ttl_ms: HOUR,
        patient: PatientRef(3),
    });
    assert!(matches!(err, Rejection::NoCapacity(_)), "{err:?}");
}

fn slots(language: Option<Language>, bounds: Bounds) -> SlotQuery {
    SlotQuery {
        origin: Origin::Hospital(HospitalId(1)),
        specialty: Specialty::Cardiology,
        urgency: Urgency::P3,
        language,
        mode: Mode::InPerson,
        earliest: T0,
        latest: T0.plus_ms(24 * HOUR),
        channel: Channel::Public,
        limit: 10,
        bounds,
    }
}

fn doctors(fx: &mut Fx, q: &SlotQuery) -> Vec<u32> {
    let reader = fx.engine.view_reader();
    fx.engine.publish_view();
    let view = reader.load();
    let mut ids: Vec<u32> = matching::match_specialist(&*view, q)
        .expect("match")
        .candidates
        .iter()
        .map(|c| c.doctor.0)
        .collect();
    ids.sort_unstable();
    ids
}

/// In person from H1: D3 (H1), D2 (H2, 30 min), D1 (H3, 70 min, tertiary); all speak
/// Mandarin only, until D1 learns English.
#[test]
fn language_travel_and_tier_change_the_doctors_ranked_and_allocated() {
    let mut fx = Fx::new();
    assert_eq!(doctors(&mut fx, &slots(None, Bounds::NONE)), [1, 2, 3]);
    assert_eq!(doctors(&mut fx, &slots(None, NEAR)), [2, 3]);
    assert_eq!(doctors(&mut fx, &slots(None, TERTIARY)), [1]);
    let english = slots(Some(Language::English), Bounds::NONE);
    assert_eq!(doctors(&mut fx, &english), Vec::<u32>::new());
    let err = fx.refuse(Command::AllocateSlot {
        query: english.clone(),
        patient: PatientRef(1),
        referral: None,
    });
    assert!(matches!(err, Rejection::NoCapacity(_)), "{err:?}");
    let mut d1 = doctor(1, 3, true);
    d1.languages.push(Language::English);
    fx.run(Command::UpsertDoctor(d1)).unwrap();
    assert_eq!(doctors(&mut fx, &english), [1]);
    let held = fx.run(Command::AllocateSlot {
        query: english,
        patient: PatientRef(1),
        referral: None,
    });
    assert!(
        matches!(
            held,
            Ok(Reply::SlotAllocated {
                doctor: DoctorId(1),
                ..
            })
        ),
        "{held:?}"
    );
    let near = fx.run(Command::AllocateSlot {
        query: slots(None, NEAR),
        patient: PatientRef(2),
        referral: None,
    });
    assert!(
        matches!(near, Ok(Reply::SlotAllocated { travel_minutes, .. }) if travel_minutes <= 30),
        "{near:?}"
    );
}

#[test]
fn a_referral_channel_bed_needs_a_waiting_referral_of_the_patient() {
    let mut fx = Fx::new();
    let bed = |patient, referral| Command::AllocateBedForReferral {
        query: beds(Bounds::NONE, BedNeeds::default()),
        ttl_ms: HOUR,
        patient: PatientRef(patient),
        referral,
    };
    assert_eq!(field(fx.refuse(bed(7, ReferralId(99)))), "referral_id");
    let Ok(Reply::ReferralCreated { referral, .. }) = fx.run(Command::RequestReferral {
        from: HospitalId(1),
        to: None,
        patient: PatientRef(7),
    }) else {
        panic!("request")
    };
    // Requested, not triaged yet: not waiting for capacity.
    let err = fx.refuse(bed(7, referral));
    assert!(
        matches!(err, Rejection::InvalidTransition { .. }),
        "{err:?}"
    );
    let triaged = fx.triaged_referral(7);
    assert_eq!(field(fx.refuse(bed(8, triaged))), "referral_id");
    assert!(matches!(
        fx.run(bed(7, triaged)),
        Ok(Reply::BedAllocated { .. })
    ));
}

/// Applies `command` as if from log entry `index`, at the fixture's time.
fn at_index(fx: &mut Fx, index: u64, command: Command) -> Outcome {
    let key = RequestKey::Client(RequestId(1_000 + u128::from(index)));
    fx.engine.apply_as(key, &command, fx.now, index)
}

#[test]
fn a_referral_keeps_its_codes_and_its_history_tells_who_did_what() {
    let mut fx = Fx::new();
    let Ok(Reply::ReferralCreated { referral: id, kind }) = at_index(
        &mut fx,
        10,
        Command::RequestReferralWith {
            from: HospitalId(1),
            to: Some(HospitalId(3)),
            patient: PatientRef(50),
            direction: None,
            reason_code: Some("I21.4".into()),
            note: Some("ECG attached".into()),
        },
    ) else {
        panic!("request")
    };
    assert_eq!(kind, ReferralKind::UpTier);
    let triage = Command::TriageReferralNoted {
        referral: id,
        specialty: Specialty::Cardiology,
        urgency: Urgency::P2,
        note: "stemi-pathway".into(),
    };
    at_index(&mut fx, 11, triage).unwrap();
    let none = Command::ReportNoCapacity {
        referral: id,
        reason: "no-cath-lab".into(),
    };
    at_index(&mut fx, 12, none).unwrap();
    let (bed_hold, _) = fx.hold_bed(BedTarget::Ward(WardId(1)), 50, 6 * HOUR);
    let attach = Command::MatchReferral {
        referral: id,
        slot_hold: None,
        bed_hold: Some(bed_hold),
    };
    at_index(&mut fx, 14, attach).unwrap();
    at_index(&mut fx, 15, Command::AcceptReferral { referral: id }).unwrap();
    at_index(&mut fx, 16, Command::StartTransit { referral: id }).unwrap();
    at_index(&mut fx, 17, Command::AdmitReferral { referral: id }).unwrap();
    let done = Command::CompleteReferralWith {
        referral: id,
        outcome: "discharged".into(),
    };
    at_index(&mut fx, 18, done).unwrap();
    let r = fx.engine.referrals().get(id).unwrap().clone();
    assert_eq!(r.reason_code.as_deref(), Some("I21.4"));
    assert_eq!(r.note.as_deref(), Some("ECG attached"));
    assert_eq!(r.outcome.as_deref(), Some("discharged"));
    use ReferralActor::*;
    use ReferralState::*;
    let steps: Vec<_> = r
        .history
        .iter()
        .map(|s| (s.index, s.state, s.actor, s.note.as_deref()))
        .collect();
    assert_eq!(
        steps,
        [
            (10, Requested, Some(Referring), Some("I21.4")),
            (11, Triaged, Some(Triage), Some("stemi-pathway")),
            (12, Triaged, Some(Coordinator), None),
            (14, Matched, Some(Coordinator), None),
            (15, Accepted, Some(Receiving), None),
            (16, InTransit, Some(Referring), None),
            (17, Admitted, Some(Receiving), None),
            (18, Completed, Some(Receiving), Some("discharged")),
        ]
    );
    assert_eq!(
        r.history[2].reason,
        ReferralReason::NoCapacity("no-cath-lab".into())
    );
    // The read the API answers with carries the same history.
    let reader = fx.engine.view_reader();
    fx.engine.publish_view();
    let view = reader.load();
    let Answer::Referral(Some(info)) = fx.engine.query(&Query::Referral(id), &view) else {
        panic!("the referral")
    };
    assert_eq!(info.referral.history, r.history);
}

#[test]
fn a_lapsed_hold_and_an_expiry_are_told_apart_in_the_history() {
    let mut fx = Fx::new();
    let id = fx.triaged_referral(60);
    let (bed_hold, _) = fx.hold_bed(BedTarget::Ward(WardId(1)), 60, HOUR);
    fx.run(Command::MatchReferral {
        referral: id,
        slot_hold: None,
        bed_hold: Some(bed_hold),
    })
    .unwrap();
    fx.tick(2 * HOUR);
    let ttl = fx.engine.policy().referral_ttl_ms;
    fx.tick(ttl);
    let r = fx.engine.referrals().get(id).unwrap();
    let tail: Vec<_> = r
        .history
        .iter()
        .rev()
        .take(2)
        .map(|s| (s.state, s.actor))
        .collect();
    assert_eq!(
        tail,
        [
            (ReferralState::Expired, Some(ReferralActor::System)),
            (ReferralState::Triaged, None),
        ]
    );
}

#[test]
fn codes_notes_and_directions_are_checked_naming_the_field() {
    let mut fx = Fx::new();
    let ask = |to: Option<u32>, direction, code: &str, note: &str| Command::RequestReferralWith {
        from: HospitalId(1),
        to: to.map(HospitalId),
        patient: PatientRef(5),
        direction,
        reason_code: Some(code.to_string()),
        note: Some(note.to_string()),
    };
    let down = Some(ReferralKind::DownTier);
    assert_eq!(
        field(fx.refuse(ask(Some(3), down, "I21", "ok"))),
        "direction"
    );
    assert_eq!(
        field(fx.refuse(ask(None, None, "chest pain", "ok"))),
        "reason_code"
    );
    assert_eq!(
        field(fx.refuse(ask(None, None, &"x".repeat(33), "ok"))),
        "reason_code"
    );
    assert_eq!(field(fx.refuse(ask(None, None, "", "ok"))), "reason_code");
    assert_eq!(
        field(fx.refuse(ask(None, None, "I21", "id 440101199001011234"))),
        "note"
    );
    assert_eq!(
        field(fx.refuse(ask(None, None, "I21", "tel 1380013"))),
        "note"
    );
    assert_eq!(field(fx.refuse(ask(None, None, "I21", "a\u{0}b"))), "note");
    assert_eq!(
        field(fx.refuse(ask(None, None, "I21", &"n".repeat(257)))),
        "note"
    );
    let opaque = format!("see {:032x} and 2026-12-01", 77u128);
    let Ok(Reply::ReferralCreated { referral, kind }) = fx.run(ask(None, down, "Z09", &opaque))
    else {
        panic!("a stated direction without a destination is kept")
    };
    assert_eq!(kind, ReferralKind::DownTier);
    assert_eq!(
        fx.engine.referrals().get(referral).unwrap().kind,
        ReferralKind::DownTier
    );
    let triaged = fx.triaged_referral(9);
    let bad = Command::CompleteReferralWith {
        referral: triaged,
        outcome: "went home".into(),
    };
    assert_eq!(field(fx.refuse(bad)), "outcome");
}
