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
    // Care is over: the patient leaves the bed, which goes to cleaning.
    assert_eq!(fx.engine.beds().bed(bed).unwrap().state, BedState::ToClean);
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

fn triage(fx: &mut Fx, id: ReferralId) {
    fx.run(Command::TriageReferral {
        referral: id,
        specialty: Specialty::Cardiology,
        urgency: Urgency::P3,
    })
    .unwrap();
}

fn referral_seat(slot: u64, patient: u128, referral: Option<ReferralId>) -> Command {
    Command::HoldSlot {
        slot: SlotId(slot),
        patient: PatientRef(patient),
        channel: Channel::Referral,
        referral,
    }
}

fn names_referral_id(err: &Rejection) -> bool {
    match err {
        Rejection::Invalid { field, .. } => field == "referral_id",
        Rejection::InvalidTransition { what, .. } => what.starts_with("referral_id "),
        _ => false,
    }
}

#[test]
fn a_referral_seat_needs_a_triaged_referral_of_the_same_patient() {
    let mut fx = Fx::new();
    let slot = fx.slot_of(1, Mode::InPerson); // 1 referral seat + 1 overbooking seat
                                              // No referral, an unknown one: INVALID_ARGUMENT naming `referral_id`.
    for referral in [None, Some(ReferralId(999))] {
        let err = fx.refuse(referral_seat(slot, 50, referral));
        assert!(names_referral_id(&err), "{err:?}");
        assert_eq!(err.kind(), RejectionKind::InvalidArgument);
    }
    // Requested but not triaged: FAILED_PRECONDITION naming `referral_id`.
    let id = request(&mut fx, 1, Some(3), 50);
    let err = fx.refuse(referral_seat(slot, 50, Some(id)));
    assert!(names_referral_id(&err), "{err:?}");
    assert_eq!(err.kind(), RejectionKind::FailedPrecondition);
    triage(&mut fx, id);
    // Someone else's referral does not open the quota.
    let err = fx.refuse(referral_seat(slot, 51, Some(id)));
    assert!(names_referral_id(&err), "{err:?}");
    let err = fx.refuse(Command::HoldSlotFor {
        slot: SlotId(slot),
        patient: PatientRef(51),
        channel: Channel::Referral,
        ttl_ms: HOUR,
        referral: Some(id),
    });
    assert!(names_referral_id(&err), "{err:?}");
    // The triaged referral's patient takes the seat, and matching attaches it.
    let Ok(Reply::SlotHeld { hold, .. }) = fx.run(referral_seat(slot, 50, Some(id))) else {
        panic!()
    };
    fx.run(Command::MatchReferral {
        referral: id,
        slot_hold: Some(hold),
        bed_hold: None,
    })
    .unwrap();
    // Matched: its capacity is taken, so no second referral seat.
    let err = fx.refuse(referral_seat(slot, 50, Some(id)));
    assert!(names_referral_id(&err), "{err:?}");
    assert_eq!(err.kind(), RejectionKind::FailedPrecondition);
    // Closed: none either.
    fx.run(Command::CancelReferral {
        referral: id,
        reason: "recovered".into(),
    })
    .unwrap();
    let err = fx.refuse(referral_seat(slot, 50, Some(id)));
    assert!(names_referral_id(&err), "{err:?}");
    // A public seat may name no referral; a named one is checked all the same.
    fx.hold_slot(slot, 52, Channel::Public);
    let err = fx.refuse(Command::HoldSlot {
        slot: SlotId(slot),
        patient: PatientRef(53),
        channel: Channel::Public,
        referral: Some(ReferralId(999)),
    });
    assert!(names_referral_id(&err), "{err:?}");
}

#[test]
fn a_referral_waitlist_entry_needs_a_referral_and_is_offered_a_seat_only_while_it_may_hold() {
    let mut fx = Fx::new();
    let slot = fx.slot_of(3, Mode::InPerson); // capacity 2, 1 referral seat, 1 overbook
    let join = |patient: u128, referral| Command::JoinWaitlist {
        doctor: DoctorId(3),
        patient: PatientRef(patient),
        channel: Channel::Referral,
        referral,
    };
    let err = fx.refuse(join(60, None));
    assert!(names_referral_id(&err), "{err:?}");
    // Fill the slot (2 seats and the overbooking seat) through patients' own referrals.
    let h61 = fx.hold_slot(slot, 61, Channel::Referral);
    fx.hold_slot(slot, 62, Channel::Referral);
    fx.hold_slot(slot, 64, Channel::Referral);
    // Patient 60 waits with a triaged referral; patient 63 behind.
    let r60 = request(&mut fx, 1, Some(3), 60);
    triage(&mut fx, r60);
    fx.run(join(60, Some(r60))).unwrap();
    let r63 = fx.triaged_referral(63);
    fx.run(join(63, Some(r63))).unwrap();
    // Patient 60's referral is cancelled while waiting: the freed seat goes to 63.
    fx.run(Command::CancelReferral {
        referral: r60,
        reason: "went elsewhere".into(),
    })
    .unwrap();
    let Ok(Reply::SlotReleased { offers, .. }) = fx.run(Command::ReleaseSlot { hold: h61 }) else {
        panic!()
    };
    let offered: Vec<PatientRef> = offers.iter().map(|o| o.patient).collect();
    assert_eq!(offered, [PatientRef(63)]);
    assert_eq!(fx.engine.slots().waitlist(DoctorId(3)).count(), 0);
}

/// Admits a referral of `patient` (H1 -> H3) into a W1 bed; its id and the bed.
fn admitted(fx: &mut Fx, patient: u128) -> (ReferralId, BedId) {
    let id = fx.triaged_referral(patient);
    let (bed_hold, bed) = fx.hold_bed(BedTarget::Ward(WardId(1)), patient, 6 * HOUR);
    fx.run(Command::MatchReferral {
        referral: id,
        slot_hold: None,
        bed_hold: Some(bed_hold),
    })
    .unwrap();
    fx.run(Command::AcceptReferral { referral: id }).unwrap();
    fx.run(Command::AdmitReferral { referral: id }).unwrap();
    (id, bed)
}

#[test]
fn completing_a_referral_frees_its_bed_even_after_the_hold_was_pruned() {
    let mut fx = Fx::new();
    let (id, bed) = admitted(&mut fx, 61);
    // Two days in hospital: the confirmed hold record is pruned meanwhile.
    fx.tick(2 * 24 * HOUR);
    let hold = fx.engine.referrals().get(id).unwrap().bed_hold.unwrap();
    assert!(fx.engine.beds().hold(hold).is_none(), "hold pruned");
    fx.run(Command::CompleteReferral { referral: id }).unwrap();
    assert_eq!(fx.engine.beds().bed(bed).unwrap().state, BedState::ToClean);
}

#[test]
fn completing_a_referral_leaves_a_bed_the_hospital_already_discharged() {
    let mut fx = Fx::new();
    let (id, bed) = admitted(&mut fx, 62);
    fx.run(Command::Discharge { bed }).unwrap();
    fx.run(Command::MarkBedClean { bed }).unwrap();
    let (_, again) = fx.hold_bed(BedTarget::Bed(bed), 63, HOUR);
    assert_eq!(again, bed);
    fx.run(Command::CompleteReferral { referral: id }).unwrap();
    assert!(
        matches!(
            fx.engine.beds().bed(bed).unwrap().state,
            BedState::Held { .. }
        ),
        "the next patient's hold is untouched"
    );
}

#[test]
fn a_matched_referral_reported_without_capacity_lets_its_holds_go() {
    let mut fx = Fx::new();
    let id = fx.triaged_referral(64);
    let (bed_hold, bed) = fx.hold_bed(BedTarget::Ward(WardId(1)), 64, 6 * HOUR);
    fx.run(Command::MatchReferral {
        referral: id,
        slot_hold: None,
        bed_hold: Some(bed_hold),
    })
    .unwrap();
    let r = fx.run(Command::ReportNoCapacity {
        referral: id,
        reason: "icu-full".into(),
    });
    assert_eq!(
        r,
        Ok(Reply::ReferralUpdated {
            referral: id,
            state: ReferralState::Triaged
        })
    );
    assert_eq!(fx.engine.beds().bed(bed).unwrap().state, BedState::Free);
    let referral = fx.engine.referrals().get(id).unwrap();
    assert_eq!(referral.bed_hold, None);
    assert_eq!(
        referral.reason,
        ReferralReason::NoCapacity("icu-full".into())
    );
    assert_eq!(fx.engine.referrals().for_hold(bed_hold), None);
    // Accepted is past the point of reporting: refused, nothing changed.
    let (id, _) = admitted(&mut fx, 65);
    let err = fx.refuse(Command::ReportNoCapacity {
        referral: id,
        reason: "late".into(),
    });
    assert!(
        matches!(err, Rejection::InvalidTransition { .. }),
        "{err:?}"
    );
}
