//! The change feed's events: what one applied command changed, as a list of [`Event`]s.
//!
//! Events are emitted where state changes (the books' mutators: `BedBook::place_hold`,
//! `resolve`, bed blocks and discharges, `SlotBook::hold`, `set_seat`, waitlist offers,
//! `ReferralBook::insert`, `transition`) into a per-book [`Pending`] buffer, and collected by
//! [`Engine::apply_as`](crate::Engine::apply_as) in a fixed order (beds, then seats, then
//! referrals) into the engine's list for the command, read with
//! [`Engine::events`](crate::Engine::events). So they are a pure function of the log: two
//! replicas that apply the same commands emit equal events, expiries of a `Tick` included.
//!
//! Events are **not** state: they are never serialized, hashed or compared, and a restored
//! engine has none. A node serves them from the entries it applied itself (`cluster::feed`).
//! A refused command and a dedup replay emit nothing.

use crate::beds::{BedState, HoldState};
use crate::ids::*;
use crate::referrals::{ReferralReason, ReferralState};
use crate::slots::SeatState;
use crate::time::LogTime;

/// One state change.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Event {
    /// A bed hold was placed (`HoldBed`, `AllocateBed`).
    BedHoldPlaced {
        hold: HoldId,
        bed: BedId,
        ward: WardId,
        hospital: HospitalId,
        patient: PatientRef,
        expires_at: LogTime,
    },
    /// A pending bed hold was confirmed (admitted), released or expired.
    BedHoldResolved {
        hold: HoldId,
        bed: BedId,
        ward: WardId,
        hospital: HospitalId,
        patient: PatientRef,
        state: HoldState,
    },
    /// A seat was held (`HoldSlot`, `AllocateSlot`, a joint consultation's seats).
    SeatHeld {
        hold: HoldId,
        slot: SlotId,
        doctor: DoctorId,
        hospital: HospitalId,
        patient: PatientRef,
        expires_at: LogTime,
        consult: Option<ConsultId>,
    },
    /// A freed seat was offered to the head of its doctor's waitlist, as a hold.
    SeatOffered {
        hold: HoldId,
        slot: SlotId,
        doctor: DoctorId,
        hospital: HospitalId,
        patient: PatientRef,
        expires_at: LogTime,
    },
    /// A seat moved on: booked, released, expired, cancelled or marked a no-show.
    SeatChanged {
        hold: HoldId,
        slot: SlotId,
        doctor: DoctorId,
        hospital: HospitalId,
        patient: PatientRef,
        state: SeatState,
    },
    /// A referral was created or moved, with its new state and why.
    ReferralMoved {
        referral: ReferralId,
        from: HospitalId,
        to: Option<HospitalId>,
        state: ReferralState,
        reason: ReferralReason,
    },
    /// A bed changed state outside a hold: discharged (to clean), cleaned, blocked,
    /// unblocked.
    BedChanged {
        bed: BedId,
        ward: WardId,
        hospital: HospitalId,
        state: BedState,
    },
}

/// The kinds of events, for filtering.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum EventKind {
    BedHold,
    Seat,
    WaitlistOffer,
    Referral,
    Bed,
}

impl Event {
    /// The event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::BedHoldPlaced { .. } | Event::BedHoldResolved { .. } => EventKind::BedHold,
            Event::SeatHeld { .. } | Event::SeatChanged { .. } => EventKind::Seat,
            Event::SeatOffered { .. } => EventKind::WaitlistOffer,
            Event::ReferralMoved { .. } => EventKind::Referral,
            Event::BedChanged { .. } => EventKind::Bed,
        }
    }

    /// What happened, as a short name: `placed`, a hold's or seat's new state
    /// (`confirmed`, `booked`, `expired`, ...), `offered`, a referral's or bed's new state.
    pub fn state_name(&self) -> &'static str {
        match self {
            Event::BedHoldPlaced { .. } => "placed",
            Event::BedHoldResolved { state, .. } => state.name(),
            Event::SeatHeld { .. } => "held",
            Event::SeatOffered { .. } => "offered",
            Event::SeatChanged { state, .. } => state.name(),
            Event::ReferralMoved { state, .. } => state.name(),
            Event::BedChanged { state, .. } => state.name(),
        }
    }

    /// Whether the event concerns hospital `h` (a referral: its sender or its receiver).
    pub fn concerns_hospital(&self, h: HospitalId) -> bool {
        self.hospitals().contains(&Some(h))
    }

    /// The hospitals the event concerns (a referral's sender and receiver), for filtering.
    pub fn hospitals(&self) -> [Option<HospitalId>; 2] {
        match *self {
            Event::BedHoldPlaced { hospital, .. }
            | Event::BedHoldResolved { hospital, .. }
            | Event::SeatHeld { hospital, .. }
            | Event::SeatOffered { hospital, .. }
            | Event::SeatChanged { hospital, .. }
            | Event::BedChanged { hospital, .. } => [Some(hospital), None],
            Event::ReferralMoved { from, to, .. } => [Some(from), to],
        }
    }

    /// The ward of a bed or bed-hold event.
    pub fn ward(&self) -> Option<WardId> {
        match *self {
            Event::BedHoldPlaced { ward, .. }
            | Event::BedHoldResolved { ward, .. }
            | Event::BedChanged { ward, .. } => Some(ward),
            _ => None,
        }
    }

    /// Fills in the hospital of a seat event from its doctor (the slot book does not know
    /// hospitals).
    pub(crate) fn locate_doctor(&mut self, hospital_of: impl Fn(DoctorId) -> HospitalId) {
        match self {
            Event::SeatHeld {
                doctor, hospital, ..
            }
            | Event::SeatOffered {
                doctor, hospital, ..
            }
            | Event::SeatChanged {
                doctor, hospital, ..
            } => *hospital = hospital_of(*doctor),
            _ => {}
        }
    }
}

/// Events a book emitted during the current command, drained by the engine after it.
/// Not state: never serialized (`#[serde(skip)]` where it is held) and always equal, so a
/// book's equality and hash ignore it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Pending(Vec<Event>);

impl PartialEq for Pending {
    fn eq(&self, _: &Pending) -> bool {
        true
    }
}

impl Pending {
    pub(crate) fn push(&mut self, event: Event) {
        self.0.push(event);
    }

    /// Forgets what was emitted (a refused command's partial work, or a new command).
    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }

    /// The buffered events.
    pub(crate) fn as_slice(&self) -> &[Event] {
        &self.0
    }

    /// Takes the buffered events, leaving none.
    pub(crate) fn take(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.0)
    }

    /// Replaces the buffered events.
    pub(crate) fn replace(&mut self, events: Vec<Event>) {
        self.0 = events;
    }

    /// Moves the buffered events to the end of `out`.
    pub(crate) fn drain_into(&mut self, out: &mut Vec<Event>) {
        out.append(&mut self.0);
    }

    /// Turns the last event, a seat just held, into a waitlist offer.
    pub(crate) fn mark_last_offered(&mut self) {
        if let Some(Event::SeatHeld {
            hold,
            slot,
            doctor,
            hospital,
            patient,
            expires_at,
            ..
        }) = self.0.last().cloned()
        {
            self.0.pop();
            self.0.push(Event::SeatOffered {
                hold,
                slot,
                doctor,
                hospital,
                patient,
                expires_at,
            });
        }
    }
}
