//! The change feed's events: each command emits what it changed, expiries of a tick
//! included; a refusal and a retry emit nothing. (That two replicas emit the same events
//! is a property in `properties.rs`.)

use super::fixture::*;
use ninety_engine::*;

/// The events of the last command, one short line each.
fn seen(fx: &Fx) -> Vec<String> {
    fx.engine.events().iter().map(line).collect()
}

/// An event in short form; ids display as plain numbers, so the kind letter is written
/// here (`K1` is hold 1, `B1` bed 1).
fn line(e: &Event) -> String {
    let name = e.state_name();
    match e {
        Event::BedHoldPlaced {
            hold,
            bed,
            ward,
            hospital,
            patient,
            ..
        } => format!(
            "bed hold K{hold} {name}: B{bed} W{ward} H{hospital} P{}",
            patient.0
        ),
        Event::BedHoldResolved {
            hold, bed, ward, ..
        } => format!("bed hold K{hold} {name}: B{bed} W{ward}"),
        Event::SeatHeld {
            hold,
            slot,
            hospital,
            patient,
            ..
        }
        | Event::SeatOffered {
            hold,
            slot,
            hospital,
            patient,
            ..
        } => format!("seat K{hold} {name}: S{slot} H{hospital} P{}", patient.0),
        Event::SeatChanged { hold, slot, .. } => format!("seat K{hold} {name}: S{slot}"),
        Event::ReferralMoved {
            referral,
            from,
            reason,
            ..
        } => format!("referral R{referral} {name}: from H{from} ({reason:?})"),
        Event::BedChanged { bed, ward, .. } => format!("bed B{bed} {name}: W{ward}"),
    }
}

#[test]
fn a_bed_hold_is_placed_then_expires_on_the_tick() {
    let mut fx = Fx::new();
    let (hold, _) = fx.hold_bed(BedTarget::Ward(WardId(1)), 7, 10 * MINUTE);
    assert_eq!(seen(&fx), ["bed hold K1 placed: B1 W1 H3 P7"]);
    fx.tick(5 * MINUTE);
    assert!(seen(&fx).is_empty(), "nothing is due yet: {:?}", seen(&fx));
    fx.tick(5 * MINUTE);
    assert_eq!(seen(&fx), [format!("bed hold K{hold} expired: B1 W1")]);
}

#[test]
fn a_bed_goes_round_admit_discharge_clean_block_unblock() {
    let mut fx = Fx::new();
    let (hold, bed) = fx.hold_bed(BedTarget::Ward(WardId(1)), 7, 10 * MINUTE);
    fx.run(Command::ConfirmHold { hold }).unwrap();
    assert_eq!(seen(&fx), ["bed hold K1 confirmed: B1 W1"]);
    fx.run(Command::Discharge { bed }).unwrap();
    assert_eq!(seen(&fx), ["bed B1 to_clean: W1"]);
    fx.run(Command::MarkBedClean { bed }).unwrap();
    assert_eq!(seen(&fx), ["bed B1 free: W1"]);
    fx.run(Command::BlockBed {
        bed,
        reason: BlockReason::Isolation,
    })
    .unwrap();
    assert_eq!(seen(&fx), ["bed B1 blocked: W1"]);
    fx.run(Command::UnblockBed { bed }).unwrap();
    assert_eq!(seen(&fx), ["bed B1 free: W1"]);
}

#[test]
fn a_released_seat_offered_to_the_waitlist_is_on_the_feed() {
    let mut fx = Fx::new();
    let slot = fx.slot_of(2, Mode::Remote); // capacity 2, no quota, D2 at H2
    let first = fx.hold_slot(slot, 1, Channel::Public);
    assert_eq!(seen(&fx), [format!("seat K{first} held: S{slot} H2 P1")]);
    fx.hold_slot(slot, 2, Channel::Public);
    fx.run(Command::JoinWaitlist {
        doctor: DoctorId(2),
        patient: PatientRef(3),
        channel: Channel::Public,
        referral: None,
    })
    .unwrap();
    assert!(seen(&fx).is_empty(), "joining a waitlist changes no seat");
    let Ok(Reply::SlotReleased { offers, .. }) = fx.run(Command::ReleaseSlot { hold: first })
    else {
        panic!("release")
    };
    let offered = offers[0].hold;
    assert_eq!(
        seen(&fx),
        [
            format!("seat K{first} released: S{slot}"),
            format!("seat K{offered} offered: S{slot} H2 P3"),
        ]
    );
    fx.run(Command::BookSlot { hold: offered }).unwrap();
    assert_eq!(seen(&fx), [format!("seat K{offered} booked: S{slot}")]);
    fx.run(Command::CancelBooking { booking: offered }).unwrap();
    assert_eq!(seen(&fx), [format!("seat K{offered} cancelled: S{slot}")]);
}

#[test]
fn a_referral_moves_with_its_state_and_reason() {
    let mut fx = Fx::new();
    let referral = fx.triaged_referral(5);
    assert_eq!(
        seen(&fx),
        [format!(
            "referral R{referral} triaged: from H1 (AwaitingMatch)"
        )]
    );
    fx.run(Command::ReportNoCapacity {
        referral,
        reason: "no icu bed".into(),
    })
    .unwrap();
    assert_eq!(
        seen(&fx),
        [format!(
            "referral R{referral} triaged: from H1 (NoCapacity(\"no icu bed\"))"
        )]
    );
    fx.run(Command::CancelReferral {
        referral,
        reason: "patient recovered".into(),
    })
    .unwrap();
    assert_eq!(
        seen(&fx),
        [format!(
            "referral R{referral} cancelled: from H1 (Stated(\"patient recovered\"))"
        )]
    );
}

#[test]
fn a_refusal_and_a_retry_emit_nothing() {
    let mut fx = Fx::new();
    let request = Request {
        id: RequestId(99),
        command: Command::HoldBed {
            target: BedTarget::Ward(WardId(1)),
            patient: PatientRef(1),
            ttl_ms: 10 * MINUTE,
        },
    };
    fx.engine.apply(&request, fx.now).unwrap();
    assert_eq!(fx.engine.events().len(), 1);
    fx.engine.apply(&request, fx.now).unwrap();
    assert!(fx.engine.events().is_empty(), "a retry changes nothing");
    fx.refuse(Command::ConfirmHold { hold: HoldId(404) });
    assert!(fx.engine.events().is_empty(), "a refusal changes nothing");
}

#[test]
fn events_are_not_state() {
    let mut fx = Fx::new();
    fx.hold_bed(BedTarget::Ward(WardId(1)), 7, 10 * MINUTE);
    let restored = Engine::restore(&fx.engine.snapshot().unwrap()).unwrap();
    assert!(restored.events().is_empty());
    assert_eq!(restored.state_hash(), fx.engine.state_hash());
    assert!(restored == fx.engine, "events take no part in equality");
}
