//! Slots: find → hold → book, channel quotas, overbooking, cancellation deadline, no-shows,
//! the waitlist and joint consultations.

use super::fixture::*;
use ninety_engine::*;

#[test]
fn hold_then_book_and_the_channel_quota_keeps_a_seat_for_referrals() {
    let mut fx = Fx::new();
    let slot = fx.slot_of(1, Mode::InPerson); // capacity 2, 1 referral seat, 1 overbook
    let h1 = fx.hold_slot(slot, 1, Channel::Public);
    assert_eq!(
        fx.run(Command::BookSlot { hold: h1 }),
        Ok(Reply::SlotBooked {
            booking: h1,
            slot: SlotId(slot)
        })
    );
    // The second seat is reserved for referrals: the public channel is full.
    let err = fx.refuse(Command::HoldSlot {
        slot: SlotId(slot),
        patient: PatientRef(2),
        channel: Channel::Public,
        referral: None,
    });
    assert!(matches!(err, Rejection::NoCapacity(_)), "{err:?}");
    fx.hold_slot(slot, 2, Channel::Referral);
    // Referrals may overbook by one.
    fx.hold_slot(slot, 3, Channel::Referral);
    let referral = Some(fx.triaged_referral(4));
    let err = fx.refuse(Command::HoldSlot {
        slot: SlotId(slot),
        patient: PatientRef(4),
        channel: Channel::Referral,
        referral,
    });
    assert!(matches!(err, Rejection::NoCapacity(_)), "{err:?}");
    let s = fx.engine.slots().slot(SlotId(slot)).unwrap();
    assert_eq!((s.taken_public, s.taken_referral), (1, 2));
}

#[test]
fn a_held_seat_is_not_offered_to_anyone_else_until_it_expires() {
    let mut fx = Fx::new();
    let slot = fx.slot_of(2, Mode::Remote); // capacity 2, no quota
    let h1 = fx.hold_slot(slot, 1, Channel::Public);
    fx.hold_slot(slot, 2, Channel::Public);
    fx.refuse(Command::HoldSlot {
        slot: SlotId(slot),
        patient: PatientRef(3),
        channel: Channel::Public,
        referral: None,
    });
    let ttl = fx.engine.policy().slot_hold_ttl_ms;
    fx.tick(ttl);
    assert_eq!(
        fx.engine.slots().seat(h1).unwrap().state,
        SeatState::Expired {
            at: T0.plus_ms(ttl)
        }
    );
    fx.hold_slot(slot, 3, Channel::Public);
}

#[test]
fn cancellation_respects_the_deadline_and_frees_the_seat_for_the_waitlist() {
    let mut fx = Fx::new();
    let slot = fx.slot_of(3, Mode::InPerson);
    let h1 = fx.hold_slot(slot, 1, Channel::Public);
    fx.run(Command::BookSlot { hold: h1 }).unwrap();
    // The public seat is gone; patient 2 waits for doctor 3.
    let r = fx.run(Command::JoinWaitlist {
        doctor: DoctorId(3),
        patient: PatientRef(2),
        channel: Channel::Public,
        referral: None,
    });
    assert_eq!(r, Ok(Reply::Waitlisted { position: 1 }));
    let Ok(Reply::BookingCancelled { offers, .. }) = fx.run(Command::CancelBooking { booking: h1 })
    else {
        panic!()
    };
    assert_eq!(offers.len(), 1);
    assert_eq!(offers[0].patient, PatientRef(2));
    let offered = fx.engine.slots().seat(offers[0].hold).unwrap();
    assert_eq!(offered.state, SeatState::Held);
    assert_eq!(fx.engine.slots().waitlist(DoctorId(3)).count(), 0);
    // Booking the offered seat, then cancelling too late is refused.
    fx.run(Command::BookSlot {
        hold: offers[0].hold,
    })
    .unwrap();
    fx.now = T0.plus_ms(2 * HOUR - 119 * MINUTE); // deadline is 120 minutes before the start
    let err = fx.refuse(Command::CancelBooking {
        booking: offers[0].hold,
    });
    assert!(
        matches!(err, Rejection::CancellationTooLate { .. }),
        "{err:?}"
    );
}

#[test]
fn three_no_shows_block_online_booking_for_a_month() {
    let mut fx = Fx::new();
    let patient = 77;
    let mut specs = Vec::new();
    for i in 0..4u64 {
        specs.push(SlotSpec {
            start: T0.plus_ms((10 + i) * HOUR),
            duration_minutes: 15,
            mode: Mode::InPerson,
            capacity: 1,
            overbook: 0,
            referral_quota: 0,
        });
    }
    let Ok(Reply::SchedulePublished { first, .. }) = fx.run(Command::PublishSchedule {
        doctor: DoctorId(3),
        slots: specs,
    }) else {
        panic!()
    };
    for i in 0..3u64 {
        let hold = fx.hold_slot(first.0 + i, patient, Channel::Public);
        fx.run(Command::BookSlot { hold }).unwrap();
        fx.now = T0.plus_ms((10 + i) * HOUR + MINUTE);
        let r = fx.run(Command::MarkNoShow { booking: hold }).unwrap();
        let Reply::NoShowRecorded { blocked_until, .. } = r else {
            panic!()
        };
        assert_eq!(blocked_until.is_some(), i == 2);
    }
    fx.now = T0.plus_ms(9 * HOUR);
    let err = fx.refuse(Command::HoldSlot {
        slot: SlotId(first.0 + 3),
        patient: PatientRef(patient),
        channel: Channel::Public,
        referral: None,
    });
    assert!(matches!(err, Rejection::BookingBlocked { .. }), "{err:?}");
}

#[test]
fn publishing_refuses_overlaps_and_remote_slots_for_in_person_doctors() {
    let mut fx = Fx::new();
    let spec = |start_h: u64, mode| SlotSpec {
        start: T0.plus_ms(start_h * HOUR),
        duration_minutes: 90,
        mode,
        capacity: 1,
        overbook: 0,
        referral_quota: 0,
    };
    let err = fx.refuse(Command::PublishSchedule {
        doctor: DoctorId(1),
        slots: vec![spec(20, Mode::InPerson), spec(21, Mode::InPerson)],
    });
    assert!(
        matches!(&err, Rejection::Invalid { field, .. } if field == "slots[1].start"),
        "{err:?}"
    );
    // Doctor 1's fixture slot starts at +2h for 30 minutes.
    let err = fx.refuse(Command::PublishSchedule {
        doctor: DoctorId(1),
        slots: vec![spec(1, Mode::InPerson)],
    });
    assert!(
        matches!(&err, Rejection::Invalid { field, .. } if field == "slots[0].start"),
        "{err:?}"
    );
    let err = fx.refuse(Command::PublishSchedule {
        doctor: DoctorId(3),
        slots: vec![spec(30, Mode::Remote)],
    });
    assert!(
        matches!(&err, Rejection::Invalid { field, .. } if field == "slots[0].mode"),
        "{err:?}"
    );
}

#[test]
fn a_joint_consultation_holds_all_seats_or_none() {
    let mut fx = Fx::new();
    let s1 = fx.slot_of(1, Mode::Remote);
    let s2 = fx.slot_of(2, Mode::Remote);
    // Fill doctor 2's remote slot, so the joint hold must fail and leave doctor 1's alone.
    fx.hold_slot(s2, 10, Channel::Public);
    fx.hold_slot(s2, 11, Channel::Public);
    let err = fx.refuse(Command::HoldJointConsult {
        slots: vec![SlotId(s1), SlotId(s2)],
        patient: PatientRef(5),
    });
    assert!(matches!(err, Rejection::NoCapacity(_)), "{err:?}");
    assert_eq!(fx.engine.slots().slot(SlotId(s1)).unwrap().taken(), 0);

    let mut fx = Fx::new();
    let r = fx.run(Command::HoldJointConsult {
        slots: vec![SlotId(s1), SlotId(s2)],
        patient: PatientRef(5),
    });
    let Ok(Reply::ConsultHeld {
        consult,
        seats,
        start,
        ..
    }) = r
    else {
        panic!("{r:?}")
    };
    assert_eq!((seats.len(), start), (2, T0.plus_ms(4 * HOUR)));
    // Seats of a consultation cannot be booked one by one.
    let err = fx.refuse(Command::BookSlot { hold: seats[0] });
    assert!(matches!(err, Rejection::Invalid { .. }), "{err:?}");
    fx.run(Command::BookJointConsult { consult }).unwrap();
    for s in &seats {
        assert!(matches!(
            fx.engine.slots().seat(*s).unwrap().state,
            SeatState::Booked { .. }
        ));
    }
    let err = fx.refuse(Command::ReleaseJointConsult { consult });
    assert!(matches!(err, Rejection::AlreadyResolved { .. }), "{err:?}");
}

#[test]
fn a_joint_consultation_expires_as_a_whole() {
    let mut fx = Fx::new();
    let s1 = fx.slot_of(1, Mode::Remote);
    let s2 = fx.slot_of(2, Mode::Remote);
    let Ok(Reply::ConsultHeld { consult, seats, .. }) = fx.run(Command::HoldJointConsult {
        slots: vec![SlotId(s1), SlotId(s2)],
        patient: PatientRef(5),
    }) else {
        panic!()
    };
    let ttl = fx.engine.policy().slot_hold_ttl_ms;
    let Reply::Ticked { expired_holds, .. } = fx.tick(ttl) else {
        panic!()
    };
    assert_eq!(expired_holds, 2);
    assert!(matches!(
        fx.engine.slots().consult(consult).unwrap().state,
        HoldState::Expired { .. }
    ));
    for s in &seats {
        assert!(matches!(
            fx.engine.slots().seat(*s).unwrap().state,
            SeatState::Expired { .. }
        ));
    }
    assert_eq!(fx.engine.slots().slot(SlotId(s1)).unwrap().taken(), 0);
}

#[test]
fn in_person_slots_cannot_join_a_joint_consultation() {
    let mut fx = Fx::new();
    let s1 = fx.slot_of(1, Mode::InPerson);
    let s2 = fx.slot_of(2, Mode::InPerson);
    let err = fx.refuse(Command::HoldJointConsult {
        slots: vec![SlotId(s1), SlotId(s2)],
        patient: PatientRef(5),
    });
    assert!(
        matches!(&err, Rejection::Invalid { field, .. } if field == "slots[0]"),
        "{err:?}"
    );
}

#[test]
fn a_joint_consultation_in_a_window_takes_the_earliest_common_time() {
    let mut fx = Fx::new();
    let s1 = fx.slot_of(1, Mode::Remote);
    let s2 = fx.slot_of(2, Mode::Remote);
    let ask = |duration_minutes: u16, ttl_ms: u64| Command::HoldJointConsultIn {
        doctors: vec![DoctorId(1), DoctorId(2)],
        earliest: T0,
        latest: T0.plus_ms(24 * HOUR),
        duration_minutes,
        patient: PatientRef(5),
        ttl_ms,
    };
    let err = fx.refuse(ask(8 * 60, 0));
    assert!(matches!(err, Rejection::NoCapacity(_)), "{err:?}");
    let err = fx.refuse(ask(30, 5));
    assert!(
        matches!(&err, Rejection::Invalid { field, .. } if field == "ttl_ms"),
        "{err:?}"
    );
    let r = fx.run(ask(30, 120_000));
    let Ok(Reply::ConsultHeld {
        seats,
        start,
        expires_at,
        ..
    }) = r
    else {
        panic!("{r:?}")
    };
    assert_eq!(start, T0.plus_ms(4 * HOUR));
    assert_eq!(expires_at, fx.engine.now().plus_ms(120_000));
    let slots: Vec<u64> = seats
        .iter()
        .map(|s| fx.engine.slots().seat(*s).unwrap().slot.0)
        .collect();
    assert_eq!(slots, [s1, s2]);
}

/// A joint consultation names no referral, so it takes public seats only: the referral
/// quota and the overbooking seats stay for triaged referrals, whether the slots are named
/// (`HoldJointConsult`) or found in a window (`HoldJointConsultIn`).
#[test]
fn a_joint_consultation_never_takes_referral_seats() {
    let mut fx = Fx::new();
    let start = T0.plus_ms(10 * HOUR);
    let spec = SlotSpec {
        start,
        duration_minutes: 30,
        mode: Mode::Remote,
        capacity: 2,
        overbook: 1,
        referral_quota: 1,
    };
    let mut slots = Vec::new();
    for d in [1, 2] {
        let r = fx.run(Command::PublishSchedule {
            doctor: DoctorId(d),
            slots: vec![spec],
        });
        let Ok(Reply::SchedulePublished { first, .. }) = r else {
            panic!("{r:?}")
        };
        slots.push(first);
    }
    let joint = |patient: u128| Command::HoldJointConsult {
        slots: slots.clone(),
        patient: PatientRef(patient),
    };
    let Ok(Reply::ConsultHeld { seats, .. }) = fx.run(joint(5)) else {
        panic!("the public seats are open")
    };
    for seat in &seats {
        assert_eq!(
            fx.engine.slots().seat(*seat).unwrap().channel,
            Channel::Public
        );
    }
    for slot in &slots {
        let s = fx.engine.slots().slot(*slot).unwrap();
        assert_eq!((s.taken_public, s.taken_referral), (1, 0));
    }
    // The one public seat of each slot is taken; two referral seats are still open in
    // each (the quota and the overbooking seat), and the joint consultation gets neither.
    let err = fx.refuse(joint(6));
    assert!(matches!(err, Rejection::NoCapacity(_)), "{err:?}");
    let err = fx.refuse(Command::HoldJointConsultIn {
        doctors: vec![DoctorId(1), DoctorId(2)],
        earliest: start,
        latest: start.plus_ms(HOUR),
        duration_minutes: 30,
        patient: PatientRef(6),
        ttl_ms: 0,
    });
    assert!(matches!(err, Rejection::NoCapacity(_)), "{err:?}");
    // Those seats are there for referrals.
    for patient in [7, 8] {
        fx.hold_slot(slots[0].0, patient, Channel::Referral);
    }
    let s = fx.engine.slots().slot(slots[0]).unwrap();
    assert_eq!((s.taken_public, s.taken_referral), (1, 2));
}

#[test]
fn cancel_seat_releases_a_hold_or_cancels_a_booking() {
    let mut fx = Fx::new();
    let s = fx.slot_of(1, Mode::InPerson);
    let r = fx.run(Command::HoldSlotFor {
        slot: SlotId(s),
        patient: PatientRef(7),
        channel: Channel::Public,
        ttl_ms: 90_000,
        referral: None,
    });
    let Ok(Reply::SlotHeld {
        hold, expires_at, ..
    }) = r
    else {
        panic!("{r:?}")
    };
    assert_eq!(expires_at, fx.engine.now().plus_ms(90_000));
    let r = fx.run(Command::CancelSeat { hold });
    assert!(matches!(r, Ok(Reply::SlotReleased { .. })), "{r:?}");
    let booked = fx.hold_slot(s, 8, Channel::Public);
    fx.run(Command::BookSlot { hold: booked }).unwrap();
    let r = fx.run(Command::CancelSeat { hold: booked });
    assert!(matches!(r, Ok(Reply::BookingCancelled { .. })), "{r:?}");
    let err = fx.refuse(Command::CancelSeat { hold: booked });
    assert!(matches!(err, Rejection::AlreadyResolved { .. }), "{err:?}");
}

/// The open-slot index searches use inside apply agrees with the slots' seat counts after
/// holds, bookings, releases and expiries, and after a snapshot restore.
#[test]
fn the_open_slot_index_follows_every_seat_change() {
    fn check(e: &Engine) {
        for d in 1..=3u32 {
            for channel in [Channel::Public, Channel::Referral] {
                let (from, to) = (LogTime(0), LogTime(u64::MAX));
                let indexed: Vec<SlotId> = e
                    .slots()
                    .open_doctor_slots(DoctorId(d), channel, from, to)
                    .map(|s| s.id)
                    .collect();
                let open: Vec<SlotId> = e
                    .slots()
                    .doctor_slots(DoctorId(d), from, to)
                    .filter(|s| s.open_seats(channel) > 0)
                    .map(|s| s.id)
                    .collect();
                assert_eq!(indexed, open, "doctor {d}, {channel:?}");
            }
        }
    }
    let mut fx = Fx::new();
    let slot = fx.slot_of(1, Mode::InPerson); // 1 public seat, 2 referral seats
    check(&fx.engine);
    let public = fx.hold_slot(slot, 1, Channel::Public);
    check(&fx.engine);
    let r1 = fx.hold_slot(slot, 2, Channel::Referral);
    fx.hold_slot(slot, 3, Channel::Referral);
    check(&fx.engine);
    let restored = Engine::restore(&fx.engine.snapshot().unwrap()).unwrap();
    check(&restored);
    fx.run(Command::BookSlot { hold: public }).unwrap();
    fx.run(Command::ReleaseSlot { hold: r1 }).unwrap();
    check(&fx.engine);
    fx.tick(fx.engine.policy().slot_hold_ttl_ms);
    check(&fx.engine);
}

#[test]
fn unblocking_a_patient_lifts_the_block_and_forgets_the_no_shows() {
    let mut fx = Fx::new();
    let patient = PatientRef(77);
    let spec = |i: u64| SlotSpec {
        start: T0.plus_ms((10 + i) * HOUR),
        duration_minutes: 15,
        mode: Mode::InPerson,
        capacity: 1,
        overbook: 0,
        referral_quota: 0,
    };
    let Ok(Reply::SchedulePublished { first, .. }) = fx.run(Command::PublishSchedule {
        doctor: DoctorId(3),
        slots: (0..5).map(spec).collect(),
    }) else {
        panic!()
    };
    let mut blocked = None;
    for i in 0..3u64 {
        let hold = fx.hold_slot(first.0 + i, patient.0, Channel::Public);
        fx.run(Command::BookSlot { hold }).unwrap();
        fx.now = T0.plus_ms((10 + i) * HOUR + MINUTE);
        let r = fx.run(Command::MarkNoShow { booking: hold }).unwrap();
        let Reply::NoShowRecorded { blocked_until, .. } = r else {
            panic!()
        };
        blocked = blocked_until;
    }
    assert!(blocked.is_some());
    let r = fx.run(Command::UnblockPatient { patient });
    assert_eq!(
        r,
        Ok(Reply::PatientUnblocked {
            patient,
            blocked_until: blocked
        })
    );
    assert_eq!(fx.engine.slots().blocked(patient, fx.now), None);
    fx.hold_slot(first.0 + 3, patient.0, Channel::Public);
    // Unblocking someone who is not blocked changes nothing and says so.
    let r = fx.run(Command::UnblockPatient { patient });
    assert_eq!(
        r,
        Ok(Reply::PatientUnblocked {
            patient,
            blocked_until: None
        })
    );
}
