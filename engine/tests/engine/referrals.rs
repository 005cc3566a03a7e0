//! Referrals: the lifecycle along typed edges, the worklist, holds lapsing under a referral.

use super::fixture::*;
use ninety_engine::*;

fn request(fx: &mut Fx, from: u32, to: Option<u32>, patient: u128) -> ReferralId {
    let r = fx.run(Command::RequestReferral {
        from: HospitalId(from),
        to: to.map(HospitalId),
        patient: PatientRef(patient),
    });
    match r {
        Ok(Reply::ReferralCreated { referral, .. }) => referral,
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_full_lifecycle_from_request_to_completion() {
    let mut fx = Fx::new();
    let id = request(&mut fx, 1, Some(3), 50);
    assert_eq!(
        fx.engine.referrals().get(id).unwrap().kind,
        ReferralKind::UpTier
    );
    fx.run(Command::TriageReferral {
        referral: id,
        specialty: Specialty::Cardiology,
        urgency: Urgency::P2,
    })
    .unwrap();
    let (bed_hold, bed) = fx.hold_bed(BedTarget::Ward(WardId(1)), 50, 6 * HOUR);
    let slot_hold = fx.hold_slot(fx.slot_of(1, Mode::InPerson), 50, Channel::Referral);
    fx.run(Command::MatchReferral {
        referral: id,
        slot_hold: Some(slot_hold),
        bed_hold: Some(bed_hold),
    })
    .unwrap();
    fx.run(Command::AcceptReferral { referral: id }).unwrap();
    assert!(matches!(
        fx.engine.slots().seat(slot_hold).unwrap().state,
        SeatState::Booked { .. }
    ));
    fx.run(Command::StartTransit { referral: id }).unwrap();
    fx.run(Command::AdmitReferral { referral: id }).unwrap();
    assert!(matches!(
        fx.engine.beds().bed(bed).unwrap().state,
        BedState::Occupied { .. }
    ));
    fx.run(Command::CompleteReferral { referral: id }).unwrap();
    let r = fx.engine.referrals().get(id).unwrap();
    let states: Vec<ReferralState> = r.history.iter().map(|s| s.state).collect();
    use ReferralState::*;
    assert_eq!(
        states,
        vec![Requested, Triaged, Matched, Accepted, InTransit, Admitted, Completed]
    );
    let err = fx.refuse(Command::CancelReferral {
        referral: id,
        reason: "late".into(),
    });
    assert!(matches!(err, Rejection::AlreadyResolved { .. }), "{err:?}");
}

#[test]
fn referrals_follow_typed_paths_only() {
    let mut fx = Fx::new();
    // No path from the district hospital H2 to the community centre H1.
    let err = fx.refuse(Command::RequestReferral {
        from: HospitalId(2),
        to: Some(HospitalId(1)),
        patient: PatientRef(1),
    });
    assert!(
        matches!(&err, Rejection::Invalid { field, .. } if field == "to"),
        "{err:?}"
    );
    let id = request(&mut fx, 3, Some(1), 2);
    assert_eq!(
        fx.engine.referrals().get(id).unwrap().kind,
        ReferralKind::DownTier
    );
}

#[test]
fn no_capacity_keeps_the_referral_on_the_worklist_with_its_reason() {
    let mut fx = Fx::new();
    let id = request(&mut fx, 4, Some(3), 9);
    fx.run(Command::TriageReferral {
        referral: id,
        specialty: Specialty::Cardiology,
        urgency: Urgency::P1,
    })
    .unwrap();
    fx.run(Command::ReportNoCapacity {
        referral: id,
        reason: "no ICU bed within reach".into(),
    })
    .unwrap();
    let list = fx.engine.referrals().worklist(Some(HospitalId(4)));
    assert_eq!(list.len(), 1);
    assert_eq!(
        list[0].reason,
        ReferralReason::NoCapacity("no ICU bed within reach".into())
    );
    assert!(fx
        .engine
        .referrals()
        .worklist(Some(HospitalId(2)))
        .is_empty());
}

#[test]
fn a_lapsed_bed_hold_returns_the_referral_to_the_worklist() {
    let mut fx = Fx::new();
    let id = request(&mut fx, 1, Some(3), 50);
    fx.run(Command::TriageReferral {
        referral: id,
        specialty: Specialty::Cardiology,
        urgency: Urgency::P3,
    })
    .unwrap();
    let (bed_hold, _) = fx.hold_bed(BedTarget::Ward(WardId(1)), 50, 30 * MINUTE);
    fx.run(Command::MatchReferral {
        referral: id,
        slot_hold: None,
        bed_hold: Some(bed_hold),
    })
    .unwrap();
    fx.tick(30 * MINUTE);
    let r = fx.engine.referrals().get(id).unwrap();
    assert_eq!(r.state, ReferralState::Triaged);
    assert_eq!(r.reason, ReferralReason::HoldExpired(bed_hold));
    assert_eq!(r.bed_hold, None);
    assert_eq!(fx.engine.referrals().worklist(None).len(), 1);
}

#[test]
fn matching_checks_the_holds_belong_to_the_patient() {
    let mut fx = Fx::new();
    let id = request(&mut fx, 1, Some(3), 50);
    let err = fx.refuse(Command::MatchReferral {
        referral: id,
        slot_hold: None,
        bed_hold: None,
    });
    assert!(
        matches!(err, Rejection::InvalidTransition { .. }),
        "not yet triaged: {err:?}"
    );
    fx.run(Command::TriageReferral {
        referral: id,
        specialty: Specialty::Cardiology,
        urgency: Urgency::P3,
    })
    .unwrap();
    let (other, _) = fx.hold_bed(BedTarget::Ward(WardId(1)), 51, HOUR);
    let err = fx.refuse(Command::MatchReferral {
        referral: id,
        slot_hold: None,
        bed_hold: Some(other),
    });
    assert!(
        matches!(&err, Rejection::Invalid { field, .. } if field == "bed_hold"),
        "{err:?}"
    );
}

#[test]
fn an_open_referral_expires_at_its_deadline_and_lets_go_of_its_holds() {
    let mut fx = Fx::new();
    let id = request(&mut fx, 1, Some(3), 50);
    fx.run(Command::TriageReferral {
        referral: id,
        specialty: Specialty::Cardiology,
        urgency: Urgency::P4,
    })
    .unwrap();
    let (bed_hold, bed) = fx.hold_bed(BedTarget::Ward(WardId(1)), 50, 7 * 24 * HOUR);
    fx.run(Command::MatchReferral {
        referral: id,
        slot_hold: None,
        bed_hold: Some(bed_hold),
    })
    .unwrap();
    let ttl = fx.engine.policy().referral_ttl_ms;
    let Reply::Ticked {
        expired_referrals, ..
    } = fx.tick(ttl)
    else {
        panic!()
    };
    assert_eq!(expired_referrals, 1);
    assert_eq!(
        fx.engine.referrals().get(id).unwrap().state,
        ReferralState::Expired
    );
    assert_eq!(fx.engine.beds().bed(bed).unwrap().state, BedState::Free);
}
