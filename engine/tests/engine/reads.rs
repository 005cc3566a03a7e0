//! Reads (`ninety_engine::read`): ward availability, a patient's bookings, joint
//! consultations, waitlists, the region-wide worklist, reach and bounded matching, each
//! asked through `Engine::query` as the cluster asks it.

use super::fixture::*;
use ninety_engine::matching::{Origin, SlotQuery};
use ninety_engine::read::*;
use ninety_engine::*;

/// Asks `q` of the fixture's engine with a freshly published view.
fn ask(fx: &mut Fx, q: Query) -> Answer {
    let reader = fx.engine.view_reader();
    fx.engine.publish_view();
    let view = reader.load();
    fx.engine.query(&q, &view)
}

fn wards(fx: &mut Fx, hospital: u32, wards: &[u32]) -> Result<Vec<WardInfo>, Rejection> {
    let q = Query::Wards {
        hospital: HospitalId(hospital),
        wards: wards.iter().map(|w| WardId(*w)).collect(),
    };
    match ask(fx, q) {
        Answer::Wards(w) => w,
        other => panic!("{other:?}"),
    }
}

/// (free, held, occupied, to_clean, blocked, staffed) and the blocked beds by reason.
fn w1(fx: &mut Fx) -> ((u32, u32, u32, u32, u32, u32), BlockedBeds) {
    let w = wards(fx, 3, &[1]).expect("W1").remove(0);
    let c = w.counts;
    let sum = c.free + c.held + c.occupied + c.to_clean + c.blocked;
    assert_eq!(sum, c.physical, "the counts add up: {c:?}");
    (
        (c.free, c.held, c.occupied, c.to_clean, c.blocked, c.staffed),
        w.blocked,
    )
}

#[test]
fn ward_availability_shows_to_clean_blocked_by_reason_and_staffed_apart() {
    let mut fx = Fx::new();
    // W1: 3 beds, 2 staffed. Two holds fill the staffed capacity: the third bed is free
    // but cannot be held (unstaffed, counted as blocked).
    let (h1, b1) = fx.hold_bed(BedTarget::Ward(WardId(1)), 1, HOUR);
    fx.hold_bed(BedTarget::Ward(WardId(1)), 2, HOUR);
    let unstaffed = BlockedBeds {
        unstaffed: 1,
        ..BlockedBeds::default()
    };
    assert_eq!(w1(&mut fx), ((0, 2, 0, 0, 1, 2), unstaffed));
    fx.run(Command::ConfirmHold { hold: h1 }).expect("admit");
    assert_eq!(w1(&mut fx).0, (0, 1, 1, 0, 1, 2));
    fx.run(Command::Discharge { bed: b1 }).expect("discharge");
    assert_eq!(w1(&mut fx), ((1, 1, 0, 1, 0, 2), BlockedBeds::default()));
    let free = fx
        .engine
        .beds()
        .ward_beds(WardId(1))
        .find(|b| b.state == BedState::Free)
        .map(|b| b.id)
        .expect("a free bed");
    let reason = BlockReason::Maintenance;
    fx.run(Command::BlockBed { bed: free, reason })
        .expect("block");
    let maintenance = BlockedBeds {
        maintenance: 1,
        ..BlockedBeds::default()
    };
    assert_eq!(w1(&mut fx), ((0, 1, 0, 1, 1, 2), maintenance));
}

#[test]
fn ward_availability_lists_a_hospitals_wards_and_refuses_unknown_ones() {
    let mut fx = Fx::new();
    let all = wards(&mut fx, 3, &[]).expect("H3's wards");
    assert_eq!(all.iter().map(|w| w.ward).collect::<Vec<_>>(), [WardId(1)]);
    assert_eq!(
        wards(&mut fx, 9, &[]),
        Err(Rejection::UnknownHospital(HospitalId(9)))
    );
    assert_eq!(
        wards(&mut fx, 3, &[7]),
        Err(Rejection::UnknownWard(WardId(7)))
    );
    // W2 exists but is H2's.
    assert_eq!(
        wards(&mut fx, 3, &[1, 2]),
        Err(Rejection::UnknownWard(WardId(2)))
    );
}

fn ward_page(fx: &mut Fx, hospital: Option<u32>, after: u32, limit: usize) -> Option<WardPage> {
    let q = Query::WardPage(WardPageQuery {
        hospital: hospital.map(HospitalId),
        after: WardId(after),
        limit,
    });
    match ask(fx, q) {
        Answer::WardPage(page) => page,
        other => panic!("{other:?}"),
    }
}

#[test]
fn ward_pages_list_a_hospitals_or_the_regions_wards_with_their_records() {
    let mut fx = Fx::new();
    let ids = |p: &WardPage| p.wards.iter().map(|(w, _)| w.id.0).collect::<Vec<_>>();
    // The region: W1 then W2, one a page.
    let first = ward_page(&mut fx, None, 0, 1).expect("the region's wards");
    assert_eq!((ids(&first), first.next_after), (vec![1], Some(WardId(1))));
    let (record, info) = &first.wards[0];
    assert_eq!(
        (record.hospital, info.hospital),
        (HospitalId(3), HospitalId(3))
    );
    assert_eq!(record.staffed_beds, info.counts.staffed);
    let second = ward_page(&mut fx, None, 1, 1).expect("page two");
    assert_eq!((ids(&second), second.next_after), (vec![2], None));
    assert_eq!(
        ward_page(&mut fx, None, 2, 5).map(|p| p.wards.len()),
        Some(0)
    );
    // A hospital's: H2 has W2 only; a page never exceeds the limit's cap, 0 is empty.
    let h2 = ward_page(&mut fx, Some(2), 0, usize::MAX).expect("H2's wards");
    assert_eq!((ids(&h2), h2.next_after), (vec![2], None));
    let none = ward_page(&mut fx, None, 0, 0).expect("an empty page");
    assert!(none.wards.is_empty());
    assert_eq!(ward_page(&mut fx, Some(9), 0, 10), None, "unknown hospital");
}

#[test]
fn a_patients_bookings_are_their_seats_and_bed_holds_newest_first() {
    let mut fx = Fx::new();
    let slot = fx.slot_of(1, Mode::InPerson);
    let seat = fx.hold_slot(slot, 5, Channel::Public);
    fx.run(Command::BookSlot { hold: seat }).expect("book");
    let (bed_hold, _) = fx.hold_bed(BedTarget::Ward(WardId(1)), 5, HOUR);
    fx.hold_slot(fx.slot_of(2, Mode::InPerson), 6, Channel::Public);
    let q = |limit| Query::PatientBookings {
        patient: PatientRef(5),
        limit,
    };
    let Answer::PatientBookings(all) = ask(&mut fx, q(10)) else {
        panic!()
    };
    assert_eq!(all.seats.len(), 1);
    assert_eq!(all.seats[0].seat.id, seat);
    assert!(matches!(all.seats[0].seat.state, SeatState::Booked { .. }));
    assert_eq!(all.beds.len(), 1);
    assert_eq!((all.beds[0].0.id, all.beds[0].1), (bed_hold, HospitalId(3)));
    assert!(!all.more);
    // Newest first: the bed hold was taken after the seat.
    let Answer::PatientBookings(one) = ask(&mut fx, q(1)) else {
        panic!()
    };
    assert_eq!((one.seats.len(), one.beds.len(), one.more), (0, 1, true));
    let Answer::PatientBookings(none) = ask(
        &mut fx,
        Query::PatientBookings {
            patient: PatientRef(99),
            limit: 10,
        },
    ) else {
        panic!()
    };
    assert_eq!(none, PatientBookings::default());
}

#[test]
fn a_joint_consultation_and_a_seat_are_read_by_id() {
    let mut fx = Fx::new();
    let slots = vec![
        SlotId(fx.slot_of(1, Mode::Remote)),
        SlotId(fx.slot_of(2, Mode::Remote)),
    ];
    let Ok(Reply::ConsultHeld { consult, seats, .. }) = fx.run(Command::HoldJointConsult {
        slots: slots.clone(),
        patient: PatientRef(8),
    }) else {
        panic!("consult not held")
    };
    let Answer::Consult(Some(info)) = ask(&mut fx, Query::Consult(consult)) else {
        panic!()
    };
    assert_eq!(info.slots, slots);
    assert_eq!(info.doctors, [DoctorId(1), DoctorId(2)]);
    assert_eq!(
        ask(&mut fx, Query::Consult(ConsultId(99))),
        Answer::Consult(None)
    );
    let Answer::Seat(Some(seat)) = ask(&mut fx, Query::Seat(seats[0])) else {
        panic!()
    };
    assert_eq!(seat.seat.consult, Some(consult));
    assert_eq!(ask(&mut fx, Query::Seat(HoldId(999))), Answer::Seat(None));
}

#[test]
fn waitlists_are_read_by_doctor_in_queue_order_and_by_patient() {
    let mut fx = Fx::new();
    for (doctor, patient) in [(1, 11), (1, 12), (2, 12)] {
        fx.run(Command::JoinWaitlist {
            doctor: DoctorId(doctor),
            patient: PatientRef(patient),
            channel: Channel::Public,
            referral: None,
        })
        .expect("join");
    }
    let Answer::Waitlist(Some(d1)) =
        ask(&mut fx, Query::Waitlist(WaitlistQuery::Doctor(DoctorId(1))))
    else {
        panic!()
    };
    let order: Vec<(u32, u128)> = d1
        .entries
        .iter()
        .map(|(_, p, e)| (*p, e.patient.0))
        .collect();
    assert_eq!(order, [(0, 11), (1, 12)]);
    let q = Query::Waitlist(WaitlistQuery::Patient(PatientRef(12)));
    let Answer::Waitlist(Some(p12)) = ask(&mut fx, q) else {
        panic!()
    };
    let places: Vec<(DoctorId, u32)> = p12.entries.iter().map(|(d, p, _)| (*d, *p)).collect();
    assert_eq!(places, [(DoctorId(1), 1), (DoctorId(2), 0)]);
    let unknown = Query::Waitlist(WaitlistQuery::Doctor(DoctorId(77)));
    assert_eq!(ask(&mut fx, unknown), Answer::Waitlist(None));
}

fn worklist(fx: &mut Fx, q: WorklistQuery) -> Vec<ReferralId> {
    let Answer::Worklist(Some((page, _))) = ask(fx, Query::Worklist(q)) else {
        panic!("no page")
    };
    page.iter().map(|i| i.referral.id).collect()
}

#[test]
fn the_region_wide_worklist_filters_by_reason_and_urgency() {
    let mut fx = Fx::new();
    let triaged = fx.triaged_referral(21);
    let Ok(Reply::ReferralCreated {
        referral: fresh, ..
    }) = fx.run(Command::RequestReferral {
        from: HospitalId(4),
        to: None,
        patient: PatientRef(22),
    })
    else {
        panic!()
    };
    let region = WorklistQuery {
        hospital: None,
        incoming: false,
        outgoing: false,
        stages: vec![],
        reasons: vec![],
        urgencies: vec![],
        after: ReferralId(0),
        limit: 10,
    };
    // The most urgent first: the triaged P2 before the untriaged one.
    assert_eq!(worklist(&mut fx, region.clone()), [triaged, fresh]);
    let waiting = WorklistQuery {
        reasons: vec![ReasonKind::AwaitingTriage],
        ..region.clone()
    };
    assert_eq!(worklist(&mut fx, waiting), [fresh]);
    let urgent = WorklistQuery {
        urgencies: vec![Urgency::P2],
        ..region.clone()
    };
    assert_eq!(worklist(&mut fx, urgent), [triaged]);
    let h1_out = WorklistQuery {
        hospital: Some(HospitalId(1)),
        outgoing: true,
        ..region.clone()
    };
    assert_eq!(worklist(&mut fx, h1_out), [triaged]);
    let Answer::Referral(Some(info)) = ask(&mut fx, Query::Referral(fresh)) else {
        panic!()
    };
    assert_eq!(info.reason, ReasonKind::AwaitingTriage);
    assert_eq!(info.stage, ReferralStage::State(ReferralState::Requested));
    for kind in ReasonKind::ALL {
        assert_eq!(ReasonKind::parse(kind.name()), Some(kind));
    }
}

#[test]
fn reach_lists_hospitals_within_the_minutes_nearest_first() {
    let mut fx = Fx::new();
    let reach = |fx: &mut Fx, minutes| match ask(
        fx,
        Query::Reach {
            from: HospitalId(1),
            minutes,
        },
    ) {
        Answer::Reach(Some(r)) => r
            .iter()
            .map(|h| (h.hospital.0, h.travel_minutes))
            .collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    // Roads: H1–H2 30, H2–H3 40, H3–H4 300.
    assert_eq!(reach(&mut fx, 70), [(1, 0), (2, 30), (3, 70)]);
    assert_eq!(reach(&mut fx, 69), [(1, 0), (2, 30)]);
    let unknown = Query::Reach {
        from: HospitalId(42),
        minutes: 60,
    };
    assert_eq!(ask(&mut fx, unknown), Answer::Reach(None));
}

#[test]
fn bounded_matching_keeps_only_candidates_within_travel_and_tier() {
    let mut fx = Fx::new();
    let reader = fx.engine.view_reader();
    fx.engine.publish_view();
    let view = reader.load();
    let query = SlotQuery {
        origin: Origin::Hospital(HospitalId(1)),
        specialty: Specialty::Cardiology,
        urgency: Urgency::P3,
        language: None,
        mode: Mode::InPerson,
        earliest: T0,
        latest: T0.plus_ms(24 * HOUR),
        channel: Channel::Public,
        limit: 10,
        bounds: ninety_engine::matching::Bounds::NONE,
    };
    let open = MatchAsk::of(&query, true);
    let all = read::matching::specialists(&view, &open).expect("match");
    assert!(all.iter().any(|m| m.tier != Tier::Tertiary), "{all:?}");
    let bounded = |bounds| {
        MatchAsk::of(
            &SlotQuery {
                bounds,
                ..query.clone()
            },
            true,
        )
    };
    let tertiary = bounded(ninety_engine::matching::Bounds {
        min_tier: Some(Tier::Tertiary),
        max_travel_minutes: None,
    });
    let found = read::matching::specialists(&view, &tertiary).expect("match");
    assert!(!found.is_empty());
    assert!(found.iter().all(|m| m.tier == Tier::Tertiary), "{found:?}");
    let near = bounded(ninety_engine::matching::Bounds {
        min_tier: None,
        max_travel_minutes: Some(30),
    });
    let found = read::matching::specialists(&view, &near).expect("match");
    assert!(!found.is_empty());
    assert!(
        found.iter().all(|m| m.candidate.travel_minutes <= 30),
        "{found:?}"
    );
    // The bounds are applied while candidates are generated, not to a top list: with a
    // limit of one, the answer is the best candidate that passes, never an empty list.
    let one = MatchAsk {
        limit: 1,
        ..tertiary.clone()
    };
    let best = read::matching::specialists(&view, &one).expect("match");
    assert_eq!(best.len(), 1, "{best:?}");
    assert_eq!(best[0], found_best(&view, &tertiary));
}

fn found_best(view: &ninety_engine::AvailabilityView, ask: &MatchAsk) -> MatchInfo {
    read::matching::specialists(view, ask)
        .expect("match")
        .remove(0)
}

#[test]
fn a_booked_joint_consultation_is_cancelled_whole_until_the_deadline() {
    let mut fx = Fx::new();
    let slots = vec![
        SlotId(fx.slot_of(1, Mode::Remote)),
        SlotId(fx.slot_of(2, Mode::Remote)),
    ];
    let hold_and_book = |fx: &mut Fx| {
        let r = fx.run(Command::HoldJointConsult {
            slots: slots.clone(),
            patient: PatientRef(9),
        });
        let Ok(Reply::ConsultHeld { consult, seats, .. }) = r else {
            panic!("{r:?}")
        };
        fx.run(Command::BookJointConsult { consult }).expect("book");
        (consult, seats)
    };
    let (first, seats) = hold_and_book(&mut fx);
    let r = fx.run(Command::CancelJointConsult { consult: first });
    assert!(
        matches!(r, Ok(Reply::ConsultReleased { consult, .. }) if consult == first),
        "{r:?}"
    );
    for s in &seats {
        let seat = fx.engine.slots().seat(*s).expect("seat");
        assert!(
            matches!(seat.state, SeatState::Cancelled { .. }),
            "{seat:?}"
        );
        assert_eq!(fx.engine.slots().slot(seat.slot).expect("slot").taken(), 0);
    }
    let Answer::Consult(Some(info)) = ask(&mut fx, Query::Consult(first)) else {
        panic!()
    };
    assert!(matches!(info.consult.state, HoldState::Released { .. }));
    let err = fx.refuse(Command::CancelJointConsult { consult: first });
    assert!(matches!(err, Rejection::AlreadyResolved { .. }), "{err:?}");
    let err = fx.refuse(Command::CancelJointConsult {
        consult: ConsultId(77),
    });
    assert_eq!(err, Rejection::UnknownConsult(ConsultId(77)));

    // The slots start 4 h after T0; past the region's cancellation deadline the booked
    // consultation stays booked.
    let (second, _) = hold_and_book(&mut fx);
    let deadline_ms = u64::from(fx.engine.policy().cancel_deadline_minutes) * MINUTE;
    fx.tick(4 * HOUR - deadline_ms + MINUTE);
    let err = fx.refuse(Command::CancelJointConsult { consult: second });
    assert!(
        matches!(err, Rejection::CancellationTooLate { .. }),
        "{err:?}"
    );
    fx.engine.check_invariants().expect("invariants");
}
