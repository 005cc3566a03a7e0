//! Bed holds: two-phase reservations with expiry, staffed capacity, bed states.

use super::fixture::*;
use ninety_engine::*;

#[test]
fn a_ward_hold_takes_the_lowest_free_bed_and_confirm_admits() {
    let mut fx = Fx::new();
    let (hold, bed) = fx.hold_bed(BedTarget::Ward(WardId(1)), 7, HOUR);
    assert_eq!(bed, BedId(1));
    assert_eq!(
        fx.engine.beds().bed(bed).unwrap().state,
        BedState::Held { hold }
    );
    let r = fx.run(Command::ConfirmHold { hold });
    assert_eq!(r, Ok(Reply::HoldConfirmed { hold, bed }));
    assert_eq!(
        fx.engine.beds().bed(bed).unwrap().state,
        BedState::Occupied {
            patient: PatientRef(7),
            since: T0
        }
    );
    // Resolved exactly once.
    let err = fx.refuse(Command::ReleaseHold { hold });
    assert!(matches!(err, Rejection::AlreadyResolved { .. }), "{err:?}");
    let err = fx.refuse(Command::ConfirmHold { hold });
    assert!(matches!(err, Rejection::AlreadyResolved { .. }), "{err:?}");
}

#[test]
fn staffed_capacity_bounds_holds_below_the_physical_count() {
    let mut fx = Fx::new();
    // W1 has 3 physical beds but only 2 staffed.
    fx.hold_bed(BedTarget::Ward(WardId(1)), 1, HOUR);
    fx.hold_bed(BedTarget::Ward(WardId(1)), 2, HOUR);
    let counts = fx.engine.beds().counts(WardId(1)).unwrap();
    assert_eq!(
        (counts.physical, counts.free, counts.held, counts.admissible),
        (3, 0, 2, 0)
    );
    let err = fx.refuse(Command::HoldBed {
        target: BedTarget::Ward(WardId(1)),
        patient: PatientRef(3),
        ttl_ms: HOUR,
    });
    assert!(matches!(err, Rejection::NoCapacity(_)), "{err:?}");
    // A specific free bed is refused too: physical beds are not admissible beds.
    let err = fx.refuse(Command::HoldBed {
        target: BedTarget::Bed(BedId(3)),
        patient: PatientRef(3),
        ttl_ms: HOUR,
    });
    assert!(matches!(err, Rejection::NoCapacity(_)), "{err:?}");
}

#[test]
fn holds_expire_at_the_first_tick_at_or_after_expiry_never_before() {
    let mut fx = Fx::new();
    let (hold, bed) = fx.hold_bed(BedTarget::Ward(WardId(2)), 9, 10 * MINUTE);
    let Reply::Ticked { expired_holds, .. } = fx.tick(10 * MINUTE - 1) else {
        panic!()
    };
    assert_eq!(expired_holds, 0);
    assert_eq!(
        fx.engine.beds().hold(hold).unwrap().state,
        HoldState::Pending
    );
    let Reply::Ticked { expired_holds, .. } = fx.tick(1) else {
        panic!()
    };
    assert_eq!(expired_holds, 1);
    let expired_at = T0.plus_ms(10 * MINUTE);
    assert_eq!(
        fx.engine.beds().hold(hold).unwrap().state,
        HoldState::Expired { at: expired_at }
    );
    assert_eq!(fx.engine.beds().bed(bed).unwrap().state, BedState::Free);
}

#[test]
fn a_lapsed_hold_cannot_be_confirmed_before_the_tick_but_can_be_released() {
    let mut fx = Fx::new();
    let (hold, _) = fx.hold_bed(BedTarget::Ward(WardId(2)), 9, 10 * MINUTE);
    fx.now = fx.now.plus_ms(10 * MINUTE);
    let err = fx.refuse(Command::ConfirmHold { hold });
    assert_eq!(
        err,
        Rejection::Expired {
            hold,
            expired_at: T0.plus_ms(10 * MINUTE)
        }
    );
    assert_eq!(
        fx.run(Command::ReleaseHold { hold }),
        Ok(Reply::HoldReleased { hold })
    );
}

#[test]
fn discharge_clean_block_and_unblock_walk_the_bed_states() {
    let mut fx = Fx::new();
    let (hold, bed) = fx.hold_bed(BedTarget::Ward(WardId(2)), 4, HOUR);
    let err = fx.refuse(Command::BlockBed {
        bed,
        reason: BlockReason::Maintenance,
    });
    assert!(
        matches!(err, Rejection::InvalidTransition { .. }),
        "{err:?}"
    );
    fx.run(Command::ConfirmHold { hold }).unwrap();
    fx.run(Command::Discharge { bed }).unwrap();
    assert_eq!(fx.engine.beds().bed(bed).unwrap().state, BedState::ToClean);
    let err = fx.refuse(Command::HoldBed {
        target: BedTarget::Bed(bed),
        patient: PatientRef(5),
        ttl_ms: HOUR,
    });
    assert!(matches!(err, Rejection::NoCapacity(_)));
    fx.run(Command::MarkBedClean { bed }).unwrap();
    fx.run(Command::BlockBed {
        bed,
        reason: BlockReason::Isolation,
    })
    .unwrap();
    assert_eq!(fx.engine.beds().counts(WardId(2)).unwrap().blocked, 1);
    fx.run(Command::UnblockBed { bed }).unwrap();
    assert_eq!(fx.engine.beds().bed(bed).unwrap().state, BedState::Free);
}

#[test]
fn bad_input_names_the_field_and_changes_nothing() {
    let mut fx = Fx::new();
    let err = fx.refuse(Command::HoldBed {
        target: BedTarget::Ward(WardId(1)),
        patient: PatientRef(1),
        ttl_ms: 0,
    });
    assert!(
        matches!(&err, Rejection::Invalid { field, .. } if field == "ttl_ms"),
        "{err:?}"
    );
    assert_eq!(err.kind(), RejectionKind::InvalidArgument);
    let err = fx.refuse(Command::HoldBed {
        target: BedTarget::Ward(WardId(99)),
        patient: PatientRef(1),
        ttl_ms: HOUR,
    });
    assert_eq!(err, Rejection::UnknownWard(WardId(99)));
    let err = fx.refuse(Command::ConfirmHold {
        hold: HoldId(12345),
    });
    assert_eq!(err, Rejection::UnknownHold(HoldId(12345)));
}

#[test]
fn a_bed_named_with_its_ward_must_be_in_that_ward() {
    let mut fx = Fx::new();
    // Bed 4 is in W2, not W1: refused naming `bed_id`, nothing changes.
    let err = fx.refuse(Command::HoldBed {
        target: BedTarget::BedInWard {
            ward: WardId(1),
            bed: BedId(4),
        },
        patient: PatientRef(1),
        ttl_ms: HOUR,
    });
    assert!(
        matches!(&err, Rejection::Invalid { field, .. } if field == "bed_id"),
        "{err:?}"
    );
    assert_eq!(err.kind(), RejectionKind::InvalidArgument);
    let err = fx.refuse(Command::HoldBed {
        target: BedTarget::BedInWard {
            ward: WardId(99),
            bed: BedId(4),
        },
        patient: PatientRef(1),
        ttl_ms: HOUR,
    });
    assert_eq!(err, Rejection::UnknownWard(WardId(99)));
    let err = fx.refuse(Command::HoldBed {
        target: BedTarget::BedInWard {
            ward: WardId(2),
            bed: BedId(99),
        },
        patient: PatientRef(1),
        ttl_ms: HOUR,
    });
    assert_eq!(err, Rejection::UnknownBed(BedId(99)));
    let (_, bed) = fx.hold_bed(
        BedTarget::BedInWard {
            ward: WardId(2),
            bed: BedId(4),
        },
        1,
        HOUR,
    );
    assert_eq!(bed, BedId(4));
}

#[test]
fn ward_counts_show_as_free_only_the_beds_a_hold_would_get() {
    let mut fx = Fx::new();
    // W1: 3 physical beds, 2 staffed. After every step, `free` is what ward holds can take.
    let check = |fx: &mut Fx, free: u32, unstaffed: u32| {
        let c = fx.engine.beds().counts(WardId(1)).unwrap();
        assert_eq!((c.free, c.admissible, c.unstaffed), (free, free, unstaffed));
        assert_eq!(
            c.free + c.held + c.occupied + c.to_clean + c.blocked,
            c.physical
        );
        let reader = fx.engine.view_reader();
        fx.engine.publish_view();
        assert_eq!(reader.load().ward(WardId(1)).unwrap().admissible, free);
        for _ in 0..free {
            fx.hold_bed(BedTarget::Ward(WardId(1)), 9, HOUR);
        }
        let err = fx.refuse(Command::HoldBed {
            target: BedTarget::Ward(WardId(1)),
            patient: PatientRef(9),
            ttl_ms: HOUR,
        });
        assert!(matches!(err, Rejection::NoCapacity(_)), "{err:?}");
    };
    // Fresh: 2 of the 3 free beds are staffed; the third counts as blocked (no staff).
    let c = fx.engine.beds().counts(WardId(1)).unwrap();
    assert_eq!((c.physical, c.free, c.blocked, c.unstaffed), (3, 2, 1, 1));
    check(&mut fx, 2, 1);
    // Both staffed beds held: the free physical bed cannot be held.
    check(&mut fx, 0, 1);
}

#[test]
fn set_staffed_beds_changes_only_the_staffed_count_and_what_can_be_held() {
    let mut fx = Fx::new();
    // W1: 3 physical beds, 2 staffed.
    let r = fx.run(Command::SetStaffedBeds {
        ward: WardId(1),
        staffed_beds: 3,
    });
    assert_eq!(
        r,
        Ok(Reply::StaffedBedsSet {
            ward: WardId(1),
            staffed_beds: 3,
            previous: 2
        })
    );
    let before = fx.engine.beds().ward(WardId(1)).unwrap().clone();
    assert_eq!(before.name, "W1", "the rest of the ward record is kept");
    for p in 1..=3 {
        fx.hold_bed(BedTarget::Ward(WardId(1)), p, HOUR);
    }
    // Down to 1 staffed: the held beds stay held, nothing more can be held.
    fx.run(Command::SetStaffedBeds {
        ward: WardId(1),
        staffed_beds: 1,
    })
    .unwrap();
    let counts = fx.engine.beds().counts(WardId(1)).unwrap();
    assert_eq!((counts.staffed, counts.held, counts.free), (1, 3, 0));
    let err = fx.refuse(Command::SetStaffedBeds {
        ward: WardId(99),
        staffed_beds: 1,
    });
    assert_eq!(err, Rejection::UnknownWard(WardId(99)));
    let err = fx.refuse(Command::SetStaffedBeds {
        ward: WardId(1),
        staffed_beds: u32::MAX,
    });
    assert!(
        matches!(&err, Rejection::Invalid { field, .. } if field == "staffed_beds"),
        "{err:?}"
    );
}

#[test]
fn a_referral_bed_hold_needs_the_patients_waiting_referral() {
    let mut fx = Fx::new();
    let hold = |target, patient, referral| Command::HoldBedForReferral {
        target,
        patient: PatientRef(patient),
        ttl_ms: HOUR,
        referral: ReferralId(referral),
    };
    let err = fx.refuse(hold(BedTarget::Ward(WardId(1)), 5, 77));
    assert!(
        matches!(&err, Rejection::Invalid { field, .. } if field == "referral_id"),
        "{err:?}"
    );
    let referral = fx.triaged_referral(5);
    let err = fx.refuse(hold(BedTarget::Ward(WardId(1)), 6, referral.0));
    assert!(
        matches!(&err, Rejection::Invalid { field, .. } if field == "referral_id"),
        "another patient's referral: {err:?}"
    );
    let r = fx.run(hold(BedTarget::Ward(WardId(1)), 5, referral.0));
    assert!(matches!(r, Ok(Reply::BedHeld { .. })), "{r:?}");
}
