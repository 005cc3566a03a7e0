//! Schedules over time: amending and withdrawing published slots (what happens to their
//! seats), weekly templates rolling the horizon forward with log time, ended slots pruned
//! after the retention with their seats, and the state staying flat over a simulated month.

use super::fixture::*;
use ninety_engine::read::{Answer, Query};
use ninety_engine::*;

const DAY: u64 = 24 * HOUR;

fn query(fx: &mut Fx, q: Query) -> Answer {
    let reader = fx.engine.view_reader();
    fx.engine.publish_view();
    let view = reader.load();
    fx.engine.query(&q, &view)
}

fn seats(capacity: u16, overbook: u16, referral_quota: u16) -> SeatLimits {
    SeatLimits {
        capacity,
        overbook,
        referral_quota,
    }
}

/// Every weekday, a morning of `n` fifteen-minute slots from 01:00 UTC.
fn daily(n: u16, horizon_days: u16) -> WeeklyTemplate {
    WeeklyTemplate {
        slots: (0..n)
            .map(|i| TemplateSlot {
                weekdays: 0x7F,
                minute_of_day: 60 + i * 15,
                duration_minutes: 15,
                mode: Mode::InPerson,
                capacity: 2,
                overbook: 1,
                referral_quota: 0,
            })
            .collect(),
        horizon_days,
    }
}

#[test]
fn amend_changes_seats_but_never_below_those_taken() {
    let mut fx = Fx::new();
    // Slot 1: capacity 2 (one referral seat), overbook 1.
    let h = fx.hold_slot(1, 7, Channel::Public);
    let err = fx.refuse(Command::AmendSlot {
        slot: SlotId(1),
        seats: seats(1, 0, 1),
    });
    assert_eq!(err.kind(), RejectionKind::FailedPrecondition, "{err}");
    let err = fx.refuse(Command::AmendSlot {
        slot: SlotId(1),
        seats: seats(3, 0, 4),
    });
    assert!(matches!(&err, Rejection::Invalid { field, .. } if field == "referral_quota"));
    let err = fx.refuse(Command::AmendSlot {
        slot: SlotId(1),
        seats: seats(150, 51, 0),
    });
    assert!(matches!(&err, Rejection::Invalid { field, .. } if field == "capacity"));
    fx.refuse(Command::AmendSlot {
        slot: SlotId(999),
        seats: seats(1, 0, 0),
    });
    // Overbooking: the referral channel gets capacity + overbook, the public one capacity.
    let r = fx.run(Command::AmendSlot {
        slot: SlotId(1),
        seats: seats(1, 2, 0),
    });
    assert!(matches!(r, Ok(Reply::SlotAmended { .. })), "{r:?}");
    let slot = fx.engine.slots().slot(SlotId(1)).unwrap();
    assert_eq!(slot.open_seats(Channel::Public), 0);
    assert_eq!(slot.open_seats(Channel::Referral), 2);
    assert_eq!(fx.engine.slots().seat(h).unwrap().state, SeatState::Held);
    fx.hold_slot(1, 8, Channel::Referral);
    fx.hold_slot(1, 9, Channel::Referral);
    let full = fx.refuse(Command::HoldSlot {
        slot: SlotId(1),
        patient: PatientRef(10),
        channel: Channel::Public,
        referral: None,
    });
    assert!(matches!(full, Rejection::NoCapacity(_)), "{full}");
    // A started slot is not amended.
    fx.tick(3 * HOUR);
    let err = fx.refuse(Command::AmendSlot {
        slot: SlotId(3),
        seats: seats(5, 0, 0),
    });
    assert!(matches!(err, Rejection::NotAdmissible(_)), "{err}");
}

#[test]
fn amend_raise_offers_the_new_seat_to_the_waitlist() {
    let mut fx = Fx::new();
    // Slot 5 (D3, in person): capacity 2, one referral seat: one public seat.
    fx.hold_slot(5, 1, Channel::Public);
    fx.run(Command::JoinWaitlist {
        doctor: DoctorId(3),
        patient: PatientRef(2),
        channel: Channel::Public,
        referral: None,
    })
    .expect("joins");
    let r = fx.run(Command::AmendSlot {
        slot: SlotId(5),
        seats: seats(3, 0, 1),
    });
    let Ok(Reply::SlotAmended { offers, .. }) = r else {
        panic!("{r:?}")
    };
    assert_eq!(offers.len(), 1);
    assert_eq!(offers[0].patient, PatientRef(2));
}

#[test]
fn withdraw_refuses_taken_slots_unless_told_to_cancel_and_says_so_everywhere() {
    let mut fx = Fx::new();
    let h = fx.hold_slot(3, 7, Channel::Public);
    fx.run(Command::BookSlot { hold: h }).expect("books");
    let err = fx.refuse(Command::WithdrawSlots {
        slots: vec![SlotId(3)],
        cancel_bookings: false,
    });
    assert_eq!(err.kind(), RejectionKind::FailedPrecondition, "{err}");
    assert!(err.to_string().contains("cancel_bookings"), "{err}");
    let dup = fx.refuse(Command::WithdrawSlots {
        slots: vec![SlotId(4), SlotId(4)],
        cancel_bookings: true,
    });
    assert!(matches!(&dup, Rejection::Invalid { field, .. } if field == "slot_ids[1]"));
    let cmd = Command::WithdrawSlots {
        slots: vec![SlotId(3), SlotId(4)],
        cancel_bookings: true,
    };
    let first = fx.run(cmd.clone()).expect("withdraws");
    let Reply::SlotsWithdrawn { cancelled, .. } = &first else {
        panic!("{first:?}")
    };
    assert_eq!(cancelled, &vec![h]);
    // The change feed says why the booking ended.
    let withdrawn: Vec<_> = fx
        .engine
        .events()
        .iter()
        .filter(|e| e.state_name() == "withdrawn")
        .collect();
    assert_eq!(withdrawn.len(), 1, "{:?}", fx.engine.events());
    // A retry answers the first answer.
    let again = fx.engine.apply(
        &Request {
            id: RequestId(fx.next_request - 1),
            command: cmd,
        },
        fx.now,
    );
    assert_eq!(again, Ok(first));
    // The patient's bookings show it, with the slot's time.
    let Answer::PatientBookings(b) = query(
        &mut fx,
        Query::PatientBookings {
            patient: PatientRef(7),
            limit: 10,
        },
    ) else {
        panic!("wrong answer")
    };
    assert_eq!(b.seats.len(), 1);
    assert!(matches!(b.seats[0].seat.state, SeatState::Withdrawn { .. }));
    assert_eq!(b.seats[0].start, T0.plus_ms(2 * HOUR));
    // No seat of a withdrawn slot is held any more, and its time may be published again.
    let err = fx.refuse(Command::HoldSlot {
        slot: SlotId(4),
        patient: PatientRef(8),
        channel: Channel::Public,
        referral: None,
    });
    assert!(err.to_string().contains("withdrawn"), "{err}");
    fx.refuse(Command::WithdrawSlots {
        slots: vec![SlotId(4)],
        cancel_bookings: true,
    });
    let r = fx.run(Command::PublishSchedule {
        doctor: DoctorId(2),
        slots: vec![SlotSpec {
            start: T0.plus_ms(2 * HOUR),
            duration_minutes: 30,
            mode: Mode::InPerson,
            capacity: 1,
            overbook: 0,
            referral_quota: 0,
        }],
    });
    assert!(matches!(r, Ok(Reply::SchedulePublished { .. })), "{r:?}");
}

#[test]
fn withdrawing_a_joint_consultations_slot_ends_the_whole_consultation() {
    let mut fx = Fx::new();
    // Slots 2 (D1) and 4 (D2) are remote at T0 + 4h.
    let r = fx.run(Command::HoldJointConsult {
        slots: vec![SlotId(2), SlotId(4)],
        patient: PatientRef(5),
    });
    let Ok(Reply::ConsultHeld { consult, seats, .. }) = r else {
        panic!("{r:?}")
    };
    fx.run(Command::BookJointConsult { consult })
        .expect("books");
    let r = fx.run(Command::WithdrawSlots {
        slots: vec![SlotId(2)],
        cancel_bookings: true,
    });
    let Ok(Reply::SlotsWithdrawn { cancelled, .. }) = r else {
        panic!("{r:?}")
    };
    assert_eq!(cancelled, seats);
    let s = fx.engine.slots();
    assert!(matches!(
        s.seat(seats[0]).unwrap().state,
        SeatState::Withdrawn { .. }
    ));
    assert!(matches!(
        s.seat(seats[1]).unwrap().state,
        SeatState::Cancelled { .. }
    ));
    assert!(matches!(
        s.consult(consult).unwrap().state,
        HoldState::Released { .. }
    ));
    assert_eq!(
        s.slot(SlotId(4)).unwrap().taken(),
        0,
        "the other doctor's seat is free"
    );
}

#[test]
fn a_template_publishes_its_horizon_and_rolls_a_day_at_each_midnight() {
    let mut fx = Fx::new();
    let before = fx.engine.counters().next_slot;
    let r = fx.run(Command::SetWeeklyTemplate {
        doctor: DoctorId(3),
        template: daily(4, 3),
        from: LogTime(0),
    });
    let Ok(Reply::TemplateSet {
        first,
        count,
        next_day_start,
        ..
    }) = r
    else {
        panic!("{r:?}")
    };
    // T0 is 08:00 UTC: today's 01:00 slots are past; tomorrow and the day after: 8.
    assert_eq!((first.0, count), (before, 8));
    let today = T0.0 / DAY;
    assert_eq!(next_day_start, LogTime((today + 3) * DAY));
    // Midnight: the next day rolls in, on the tick.
    fx.tick(16 * HOUR + MINUTE);
    assert_eq!(fx.engine.counters().next_slot, before + 12);
    let d3: Vec<_> = fx
        .engine
        .slots()
        .doctor_slots(DoctorId(3), LogTime((today + 3) * DAY), LogTime(u64::MAX))
        .map(|s| s.spec.start)
        .collect();
    assert_eq!(d3.len(), 4);
    assert_eq!(d3[0], LogTime((today + 3) * DAY + HOUR));
    // A template that would overlap a published slot skips it; bad fields are named.
    let mut bad = daily(2, 3);
    bad.slots[1].minute_of_day = 70;
    let err = fx.refuse(Command::SetWeeklyTemplate {
        doctor: DoctorId(3),
        template: bad,
        from: LogTime(0),
    });
    assert!(matches!(&err, Rejection::Invalid { field, .. } if field == "slots[1].minute_of_day"));
    let mut remote = daily(1, 3);
    remote.slots[0].mode = Mode::Remote;
    let err = fx.refuse(Command::SetWeeklyTemplate {
        doctor: DoctorId(3),
        template: remote,
        from: LogTime(0),
    });
    assert!(matches!(&err, Rejection::Invalid { field, .. } if field == "slots[0].mode"));
    // An empty template stops the rolling.
    fx.run(Command::SetWeeklyTemplate {
        doctor: DoctorId(3),
        template: WeeklyTemplate::default(),
        from: LogTime(0),
    })
    .expect("stops");
    let n = fx.engine.counters().next_slot;
    fx.tick(DAY);
    assert_eq!(fx.engine.counters().next_slot, n);
}

/// A doctor who stops taking remote consultations gets no more remote slots from the
/// template set while they did; the in-person ones keep rolling.
#[test]
fn a_doctor_who_stops_remote_work_rolls_only_in_person_slots() {
    let mut fx = Fx::new();
    let mut template = daily(2, 2);
    template.slots[1].mode = Mode::Remote;
    fx.run(Command::SetWeeklyTemplate {
        doctor: DoctorId(1),
        template,
        from: LogTime(0),
    })
    .expect("doctor 1 takes remote consultations");
    let today = T0.0 / DAY;
    let modes_on = |fx: &Fx, day: u64| -> Vec<Mode> {
        let from = LogTime(day * DAY);
        let to = LogTime((day + 1) * DAY);
        let slots = fx.engine.slots().doctor_slots(DoctorId(1), from, to);
        slots.map(|s| s.spec.mode).collect()
    };
    assert_eq!(modes_on(&fx, today + 1), [Mode::InPerson, Mode::Remote]);
    fx.run(Command::UpsertDoctor(doctor(1, 3, false)))
        .expect("no more remote work");
    fx.tick(16 * HOUR + MINUTE);
    assert_eq!(
        modes_on(&fx, today + 2),
        [Mode::InPerson],
        "rolled after the change"
    );
    assert_eq!(
        modes_on(&fx, today + 1),
        [Mode::InPerson, Mode::Remote],
        "slots already published stay"
    );
}

#[test]
fn ended_slots_are_pruned_with_their_seats_after_the_retention_and_ids_stay_unique() {
    let mut fx = Fx::new();
    let h = fx.hold_slot(3, 7, Channel::Public);
    fx.run(Command::BookSlot { hold: h }).expect("books");
    fx.run(Command::SetWeeklyTemplate {
        doctor: DoctorId(3),
        template: daily(4, 2),
        from: LogTime(0),
    })
    .expect("sets");
    // The fixture's slots end by T0 + 4.5h; the retention is a day.
    fx.tick(4 * HOUR);
    fx.tick(HOUR);
    assert!(
        fx.engine.slots().slot(SlotId(3)).is_some(),
        "kept for the retention"
    );
    fx.tick(DAY);
    assert!(fx.engine.slots().slot(SlotId(3)).is_none(), "pruned");
    assert!(
        fx.engine.slots().seat(h).is_none(),
        "its booking went with it"
    );
    for s in fx.engine.slots().slots() {
        assert!(
            s.end() > fx.now.minus_ms(DAY),
            "slot {} should be pruned",
            s.id
        );
    }
    // New ids continue from the counter: a pruned id is never handed out again.
    let next = fx.engine.counters().next_slot;
    let r = fx.run(Command::PublishSchedule {
        doctor: DoctorId(1),
        slots: vec![SlotSpec {
            start: fx.now.plus_ms(HOUR),
            duration_minutes: 30,
            mode: Mode::InPerson,
            capacity: 1,
            overbook: 0,
            referral_quota: 0,
        }],
    });
    assert_eq!(
        r,
        Ok(Reply::SchedulePublished {
            first: SlotId(next),
            count: 1
        })
    );
    assert_eq!(fx.engine.check_invariants(), Ok(()));
    let bytes = fx.engine.snapshot().expect("snapshot");
    let back = Engine::restore(&bytes).expect("restore");
    assert_eq!(back.state_hash(), fx.engine.state_hash());
    assert_eq!(back.check_invariants(), Ok(()));
}

/// The state over a simulated month: three doctors on a 14-day rolling template (28 slots a
/// day each), booking traffic every hour (holds booked, left to expire, bookings
/// cancelled), a tick every 5 minutes of log time. After the horizon and the
/// retention have filled (day 16), the snapshot and the object counts stay flat to day 35.
/// Prints the figures for docs/performance.md ("State size over a simulated month").
#[test]
fn state_size_stays_flat_over_a_simulated_month() {
    let mut fx = Fx::new();
    for d in 1..=3 {
        fx.run(Command::SetWeeklyTemplate {
            doctor: DoctorId(d),
            template: daily(28, 14),
            from: LogTime(0),
        })
        .expect("sets");
    }
    let mut patient = 1_000u128;
    let mut sizes: Vec<(u64, usize, usize, usize)> = Vec::new();
    for hour in 0..35 * 24u64 {
        for _ in 0..12 {
            fx.tick(5 * MINUTE);
        }
        traffic(&mut fx, hour, &mut patient);
        if hour % 24 == 23 {
            let snap = fx.engine.snapshot().expect("snapshot").len();
            let slots = fx.engine.slots().slots().count();
            let seats = fx.engine.slots().seats().count();
            sizes.push((hour / 24 + 1, snap, slots, seats));
        }
    }
    for (day, snap, slots, seats) in &sizes {
        eprintln!("day {day:2}: snapshot {snap:7} bytes, {slots:4} slots, {seats:4} seats");
    }
    assert_eq!(fx.engine.check_invariants(), Ok(()));
    let settled: Vec<_> = sizes.iter().filter(|s| s.0 >= 16).collect();
    let max = |f: fn(&&(u64, usize, usize, usize)) -> usize| settled.iter().map(f).max();
    let min = |f: fn(&&(u64, usize, usize, usize)) -> usize| settled.iter().map(f).min();
    let (snap_max, snap_min) = (max(|s| s.1).unwrap(), min(|s| s.1).unwrap());
    // Flat: day 16 to day 35 within 10 % (a growing state would add ~1/16 a day).
    assert!(
        snap_max * 10 <= snap_min * 11,
        "snapshot {snap_min}..{snap_max}"
    );
    // Bounded: the horizon plus the retention, never the month.
    assert!(
        max(|s| s.2).unwrap() <= 3 * 28 * 16,
        "slots {:?}",
        max(|s| s.2)
    );
    assert!(
        max(|s| s.3).unwrap() <= 3 * 28 * 3 * 4,
        "seats {:?}",
        max(|s| s.3)
    );
    let requests = fx.engine.counters();
    assert!(
        requests.next_slot > 3 * 28 * 35,
        "the month published {requests:?}"
    );
}

/// An hour of traffic: two bookings on the doctors' soonest open slots, a hold left to
/// expire, and every fifth hour a cancellation.
fn traffic(fx: &mut Fx, hour: u64, patient: &mut u128) {
    let from = fx.now.plus_ms(3 * HOUR);
    let open: Vec<SlotId> = (1..=3)
        .filter_map(|d| {
            (fx.engine.slots())
                .open_doctor_slots(DoctorId(d), Channel::Public, from, LogTime(u64::MAX))
                .next()
                .map(|s| s.id)
        })
        .collect();
    let mut booked = Vec::new();
    for (i, slot) in open.into_iter().enumerate() {
        *patient += 1;
        let hold = fx.hold_slot(slot.0, *patient, Channel::Public);
        if i < 2 {
            fx.run(Command::BookSlot { hold }).expect("books");
            booked.push(hold);
        }
    }
    if hour.is_multiple_of(5) {
        if let Some(&b) = booked.first() {
            fx.run(Command::CancelBooking { booking: b })
                .expect("cancels");
        }
    }
}
