//! Doctors' schedules: slots, slot holds and bookings, the waitlist, no-shows and joint
//! consultations (远程会诊).
//!
//! The contract follows the find → hold → book operations of IHE/Argonaut scheduling: a hold
//! reserves a seat for `Policy::slot_hold_ttl_ms`, a booking turns it into an appointment. A
//! held seat is never offered to anyone else until it is released or expires; a freed seat
//! is offered first to the head of the doctor's waitlist, as a hold.

use crate::beds::{invalid_transition, HoldState};
use crate::cow_map::CowMap;
use crate::error::Rejection;
use crate::events::{Event, Pending};
use crate::horizon::Rolling;
use crate::ids::*;
use crate::limits::*;
use crate::region::{Channel, Mode, Policy};
use crate::time::{LogTime, MS_PER_DAY, MS_PER_MINUTE};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// What a doctor publishes: one bookable time segment.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct SlotSpec {
    pub start: LogTime,
    pub duration_minutes: u16,
    pub mode: Mode,
    /// Patients the slot takes.
    pub capacity: u16,
    /// Extra patients the doctor accepts beyond capacity, from referrals only.
    pub overbook: u16,
    /// Seats of `capacity` reserved for the referral channel (alliance partners).
    pub referral_quota: u16,
}

/// A published slot and how many of its seats are taken per channel.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Slot {
    pub id: SlotId,
    pub doctor: DoctorId,
    pub spec: SlotSpec,
    /// Seats held or booked through the public channel.
    pub taken_public: u16,
    /// Seats held or booked through the referral channel.
    pub taken_referral: u16,
    /// When the doctor withdrew the slot (`WithdrawSlots`): it then has no open seat, is out
    /// of the per-doctor index (its time may be published again) and stays, for the reads of
    /// its withdrawn seats, until pruned like an ended slot.
    pub withdrawn_at: Option<LogTime>,
}

impl Slot {
    /// When the slot ends.
    pub fn end(&self) -> LogTime {
        self.spec
            .start
            .plus_ms(u64::from(self.spec.duration_minutes) * MS_PER_MINUTE)
    }

    /// Seats taken in all channels.
    pub fn taken(&self) -> u16 {
        self.taken_public.saturating_add(self.taken_referral)
    }

    /// Seats still open to `channel`.
    pub fn open_seats(&self, channel: Channel) -> u16 {
        if self.withdrawn_at.is_some() {
            return 0;
        }
        let s = &self.spec;
        match channel {
            Channel::Public => {
                let public_cap = s.capacity.saturating_sub(s.referral_quota);
                let by_total = s.capacity.saturating_sub(self.taken());
                public_cap.saturating_sub(self.taken_public).min(by_total)
            }
            Channel::Referral => s
                .capacity
                .saturating_add(s.overbook)
                .saturating_sub(self.taken()),
        }
    }

    fn take(&mut self, channel: Channel, delta_up: bool) {
        let counter = match channel {
            Channel::Public => &mut self.taken_public,
            Channel::Referral => &mut self.taken_referral,
        };
        *counter = if delta_up {
            counter.saturating_add(1)
        } else {
            counter.saturating_sub(1)
        };
    }
}

/// A seat held or booked in a slot. A booking keeps the hold's id.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct SlotHold {
    pub id: HoldId,
    pub slot: SlotId,
    pub doctor: DoctorId,
    pub patient: PatientRef,
    pub channel: Channel,
    pub created_at: LogTime,
    pub expires_at: LogTime,
    pub state: SeatState,
    /// The joint consultation this seat belongs to, if any.
    pub consult: Option<ConsultId>,
}

/// Where a seat stands: a pending hold resolves exactly once (booked, released or expired);
/// a booking may later be cancelled or marked as a no-show.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeatState {
    Held,
    Booked {
        at: LogTime,
    },
    Released {
        at: LogTime,
    },
    Expired {
        at: LogTime,
    },
    Cancelled {
        at: LogTime,
    },
    NoShow {
        at: LogTime,
    },
    /// The doctor withdrew the slot (`WithdrawSlots` with `cancel_bookings`): the hold or
    /// booking ended with it. Appended: postcard encodes the variant index.
    Withdrawn {
        at: LogTime,
    },
}

impl SeatState {
    /// The state's name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            SeatState::Held => "held",
            SeatState::Booked { .. } => "booked",
            SeatState::Released { .. } => "released",
            SeatState::Expired { .. } => "expired",
            SeatState::Cancelled { .. } => "cancelled",
            SeatState::NoShow { .. } => "no_show",
            SeatState::Withdrawn { .. } => "withdrawn",
        }
    }

    /// Whether the seat still counts against the slot.
    pub fn takes_seat(&self) -> bool {
        matches!(self, SeatState::Held | SeatState::Booked { .. })
    }

    fn final_at(&self) -> Option<LogTime> {
        match *self {
            SeatState::Released { at }
            | SeatState::Expired { at }
            | SeatState::Cancelled { at }
            | SeatState::NoShow { at }
            | SeatState::Withdrawn { at } => Some(at),
            SeatState::Held | SeatState::Booked { .. } => None,
        }
    }
}

impl SlotHold {
    /// The last log time the seat changed: its creation, booking or resolution.
    pub fn last_change(&self) -> LogTime {
        match self.state {
            SeatState::Held => self.created_at,
            SeatState::Booked { at } => at,
            other => other.final_at().unwrap_or(self.created_at),
        }
    }
}

/// One patient waiting for a doctor.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct WaitEntry {
    pub patient: PatientRef,
    pub channel: Channel,
    pub joined_at: LogTime,
    /// The referral a referral-channel entry waits for; a freed seat is offered only while
    /// that referral may still take one.
    pub referral: Option<ReferralId>,
}

/// Who asks for a seat, through which channel, for which referral (required for the
/// referral channel: see `Engine::check_referral_seat`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SeatAsk {
    pub patient: PatientRef,
    pub channel: Channel,
    pub referral: Option<ReferralId>,
}

impl SeatAsk {
    pub fn new(patient: PatientRef, channel: Channel, referral: Option<ReferralId>) -> SeatAsk {
        SeatAsk {
            patient,
            channel,
            referral,
        }
    }
}

/// A joint consultation: seats in several doctors' slots held and booked together.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct JointConsult {
    pub id: ConsultId,
    pub patient: PatientRef,
    pub seats: Vec<HoldId>,
    /// The common time all doctors share.
    pub start: LogTime,
    pub end: LogTime,
    pub expires_at: LogTime,
    pub state: HoldState,
}

/// Who takes a seat, through which channel, as part of which consultation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SeatClaim {
    pub patient: PatientRef,
    pub channel: Channel,
    pub consult: Option<ConsultId>,
}

/// A seat offered to a waitlisted patient when another was freed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct WaitlistOffer {
    pub hold: HoldId,
    pub slot: SlotId,
    pub patient: PatientRef,
    pub expires_at: LogTime,
}

/// All slots, seats, waitlists, no-show records and joint consultations of the region.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SlotBook {
    /// In shared chunks (`CowMap`): a snapshot image shares them instead of copying ~0.5 M
    /// slots on the node task.
    pub(crate) slots: CowMap<SlotId, Slot>,
    pub(crate) seats: BTreeMap<HoldId, SlotHold>,
    pub(crate) expiries: BTreeSet<(LogTime, HoldId)>,
    pub(crate) resolved: BTreeSet<(LogTime, HoldId)>,
    pub(crate) waitlists: BTreeMap<DoctorId, VecDeque<WaitEntry>>,
    pub(crate) no_shows: BTreeMap<PatientRef, Vec<LogTime>>,
    pub(crate) blocked_until: BTreeMap<PatientRef, LogTime>,
    pub(crate) consults: BTreeMap<ConsultId, JointConsult>,
    /// Each doctor's slots by start, for overlap checks and searches (withdrawn slots
    /// left out).
    pub(crate) by_doctor: BTreeSet<(DoctorId, LogTime, SlotId)>,
    /// Doctors' weekly templates that keep their schedules rolling (`horizon`).
    pub(crate) templates: BTreeMap<DoctorId, Rolling>,
    /// Derived: every slot by end, the order ended slots are pruned in.
    #[serde(skip)]
    ends: BTreeSet<(LogTime, SlotId)>,
    /// Derived: every seat by slot, so a pruned slot takes its seats along.
    #[serde(skip)]
    seats_of: BTreeSet<(SlotId, HoldId)>,
    /// Derived: each template by the UTC day on which its next day enters the horizon.
    #[serde(skip)]
    rolling_due: BTreeSet<(u64, DoctorId)>,
    /// Derived: `by_doctor` restricted to slots with a seat open to each channel (public,
    /// referral), so a search inside apply skips full slots instead of walking them (with
    /// seats exhausted, walking them made a refusal ~100 times a grant).
    #[serde(skip)]
    open: [BTreeSet<(DoctorId, LogTime, SlotId)>; 2],
    /// The change feed's events of the current command (`events`); the engine fills in
    /// their hospitals.
    #[serde(skip)]
    pub(crate) events: Pending,
}

impl PartialEq for SlotBook {
    fn eq(&self, o: &Self) -> bool {
        // The derived index follows from the rest.
        self.slots == o.slots
            && self.seats == o.seats
            && self.expiries == o.expiries
            && self.resolved == o.resolved
            && self.waitlists == o.waitlists
            && self.no_shows == o.no_shows
            && self.blocked_until == o.blocked_until
            && self.consults == o.consults
            && self.by_doctor == o.by_doctor
            && self.templates == o.templates
    }
}

/// The position of a channel in `SlotBook::open`.
fn channel_index(channel: Channel) -> usize {
    match channel {
        Channel::Public => 0,
        Channel::Referral => 1,
    }
}

impl SlotBook {
    /// A copy of the canonical records for a snapshot image: the slots' chunks are shared
    /// (`CowMap`), the derived indexes left out (an image is encoded, never applied to).
    pub(crate) fn image(&self) -> SlotBook {
        SlotBook {
            slots: self.slots.clone(),
            seats: self.seats.clone(),
            expiries: self.expiries.clone(),
            resolved: self.resolved.clone(),
            waitlists: self.waitlists.clone(),
            no_shows: self.no_shows.clone(),
            blocked_until: self.blocked_until.clone(),
            consults: self.consults.clone(),
            by_doctor: self.by_doctor.clone(),
            templates: self.templates.clone(),
            ends: BTreeSet::new(),
            seats_of: BTreeSet::new(),
            rolling_due: BTreeSet::new(),
            open: Default::default(),
            events: Pending::default(),
        }
    }

    /// Rebuilds the derived open-slot index from the slots (after a restore).
    pub(crate) fn rebuild(&mut self) {
        self.open = Default::default();
        let ids: Vec<SlotId> = self.slots.keys().copied().collect();
        for id in ids {
            self.reindex(id);
        }
        self.ends = self.slots.values().map(|s| (s.end(), s.id)).collect();
        self.seats_of = self.seats.values().map(|s| (s.slot, s.id)).collect();
        self.rolling_due = self
            .templates
            .iter()
            .map(|(d, r)| (r.due_day(), *d))
            .collect();
    }

    /// Whether every derived index equals one rebuilt from the records (an invariant).
    pub(crate) fn derived_matches_rebuild(&self) -> bool {
        let mut fresh = self.clone();
        fresh.rebuild();
        fresh.open == self.open
            && fresh.ends == self.ends
            && fresh.seats_of == self.seats_of
            && fresh.rolling_due == self.rolling_due
    }

    /// Puts a slot into, or takes it out of, the open-slot index of each channel.
    fn reindex(&mut self, id: SlotId) {
        let Some(s) = self.slots.get(&id) else {
            return;
        };
        let key = (s.doctor, s.spec.start, id);
        for channel in [Channel::Public, Channel::Referral] {
            let set = &mut self.open[channel_index(channel)];
            if s.open_seats(channel) > 0 {
                set.insert(key);
            } else {
                set.remove(&key);
            }
        }
    }

    /// A doctor's slots starting in `[from, to)` with a seat open to `channel`, by start.
    pub fn open_doctor_slots(
        &self,
        doctor: DoctorId,
        channel: Channel,
        from: LogTime,
        to: LogTime,
    ) -> impl Iterator<Item = &Slot> {
        let to = to.max(from);
        self.open[channel_index(channel)]
            .range((doctor, from, SlotId(0))..(doctor, to, SlotId(0)))
            .filter_map(|(_, _, id)| self.slots.get(id))
    }

    /// The slot record.
    pub fn slot(&self, id: SlotId) -> Option<&Slot> {
        self.slots.get(&id)
    }

    /// Every slot, by id.
    pub fn slots(&self) -> impl Iterator<Item = &Slot> {
        self.slots.values()
    }

    /// The seat (hold or booking) record.
    pub fn seat(&self, id: HoldId) -> Option<&SlotHold> {
        self.seats.get(&id)
    }

    /// Every seat (holds and bookings, until pruned), by id.
    pub fn seats(&self) -> impl Iterator<Item = &SlotHold> {
        self.seats.values()
    }

    /// The joint consultation record.
    pub fn consult(&self, id: ConsultId) -> Option<&JointConsult> {
        self.consults.get(&id)
    }

    /// A doctor's waitlist, head first.
    pub fn waitlist(&self, doctor: DoctorId) -> impl Iterator<Item = &WaitEntry> {
        self.waitlists.get(&doctor).into_iter().flatten()
    }

    /// A doctor's slots starting in `[from, to)`, by start. A window that ends before it
    /// starts is empty: windows come from clients (a search wholly in the past starts at
    /// `now + 1` and ends before it), and an inverted `BTreeSet` range panics.
    pub fn doctor_slots(
        &self,
        doctor: DoctorId,
        from: LogTime,
        to: LogTime,
    ) -> impl Iterator<Item = &Slot> {
        let to = to.max(from);
        self.by_doctor
            .range((doctor, from, SlotId(0))..(doctor, to, SlotId(0)))
            .filter_map(|(_, _, id)| self.slots.get(id))
    }

    /// Until when a patient's online booking is blocked, if it is at `now`.
    pub fn blocked(&self, patient: PatientRef, now: LogTime) -> Option<LogTime> {
        self.blocked_until
            .get(&patient)
            .copied()
            .filter(|&u| u > now)
    }

    /// Checks a schedule for a doctor: limits, fields, no overlap with itself or published
    /// slots of the same doctor.
    pub fn check_schedule(
        &self,
        doctor: DoctorId,
        specs: &[SlotSpec],
        now: LogTime,
    ) -> Result<(), Rejection> {
        if specs.is_empty() || specs.len() > SLOTS_PER_PUBLISH_MAX {
            return Err(Rejection::invalid(
                "slots",
                format!("must hold 1 to {SLOTS_PER_PUBLISH_MAX} slots"),
            ));
        }
        let mut order: Vec<(LogTime, LogTime, usize)> = Vec::with_capacity(specs.len());
        for (i, s) in specs.iter().enumerate() {
            let f = |name: &str| format!("slots[{i}].{name}");
            if s.duration_minutes == 0 || s.duration_minutes > SLOT_DURATION_MINUTES_MAX {
                return Err(Rejection::invalid(
                    f("duration_minutes"),
                    format!("must be 1 to {SLOT_DURATION_MINUTES_MAX}"),
                ));
            }
            if s.capacity == 0 || s.capacity.saturating_add(s.overbook) > SLOT_CAPACITY_MAX {
                return Err(Rejection::invalid(
                    f("capacity"),
                    format!("capacity must be at least 1 and capacity + overbook at most {SLOT_CAPACITY_MAX}"),
                ));
            }
            if s.referral_quota > s.capacity {
                return Err(Rejection::invalid(f("referral_quota"), "exceeds capacity"));
            }
            if s.start <= now {
                return Err(Rejection::invalid(f("start"), "must be in the future"));
            }
            let end = s
                .start
                .plus_ms(u64::from(s.duration_minutes) * MS_PER_MINUTE);
            order.push((s.start, end, i));
        }
        order.sort();
        for pair in order.windows(2) {
            if pair[1].0 < pair[0].1 {
                return Err(Rejection::invalid(
                    format!("slots[{}].start", pair[1].2),
                    format!("overlaps slots[{}]", pair[0].2),
                ));
            }
        }
        for &(start, end, i) in &order {
            if let Some(other) = self.overlapping(doctor, start, end) {
                return Err(Rejection::invalid(
                    format!("slots[{i}].start"),
                    format!("overlaps published slot {other}"),
                ));
            }
        }
        Ok(())
    }

    /// A published slot of `doctor` overlapping `[start, end)`, if any.
    fn overlapping(&self, doctor: DoctorId, start: LogTime, end: LogTime) -> Option<SlotId> {
        // The slot starting last before `end` is the only one that can overlap, since a
        // doctor's slots never overlap each other.
        let (_, _, id) = self
            .by_doctor
            .range((doctor, LogTime(0), SlotId(0))..(doctor, end, SlotId(0)))
            .next_back()?;
        let slot = self.slots.get(id)?;
        (slot.end() > start).then_some(*id)
    }

    /// Publishes checked slots with ids from `first`.
    pub(crate) fn publish(
        &mut self,
        doctor: DoctorId,
        specs: &[SlotSpec],
        first: u64,
    ) -> Vec<SlotId> {
        let mut ids = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let id = SlotId(first + i as u64);
            self.slots.insert(
                id,
                Slot {
                    id,
                    doctor,
                    spec: *spec,
                    taken_public: 0,
                    taken_referral: 0,
                    withdrawn_at: None,
                },
            );
            self.by_doctor.insert((doctor, spec.start, id));
            let end = spec
                .start
                .plus_ms(u64::from(spec.duration_minutes) * MS_PER_MINUTE);
            self.ends.insert((end, id));
            self.reindex(id);
            ids.push(id);
        }
        ids
    }

    /// Checks that `patient` may take a seat of `slot` through `channel` at `now`.
    pub fn check_holdable(
        &self,
        slot: SlotId,
        patient: PatientRef,
        channel: Channel,
        now: LogTime,
    ) -> Result<&Slot, Rejection> {
        let blocked = match channel {
            Channel::Public => self.blocked(patient, now),
            Channel::Referral => None,
        };
        self.check_seat_open(slot, channel, blocked, now)
    }

    /// Checks that a joint consultation may take a seat of `slot` at `now`: a public seat
    /// (never the referral quota or overbooking, see `JOINT_CONSULT_CHANNEL`). The no-show
    /// block is not checked: it bars the patient's own online booking, and a joint
    /// consultation is arranged by the requesting hospital.
    pub fn check_consult_seat(&self, slot: SlotId, now: LogTime) -> Result<&Slot, Rejection> {
        self.check_seat_open(slot, Channel::Public, None, now)
    }

    /// The slot if it exists, has not started, the patient is not `blocked` and a seat is
    /// open to `channel`; the refusals in that order.
    fn check_seat_open(
        &self,
        slot: SlotId,
        channel: Channel,
        blocked: Option<LogTime>,
        now: LogTime,
    ) -> Result<&Slot, Rejection> {
        let s = self.slots.get(&slot).ok_or(Rejection::UnknownSlot(slot))?;
        if s.withdrawn_at.is_some() {
            return Err(Rejection::NotAdmissible(format!(
                "slot {slot} was withdrawn"
            )));
        }
        if s.spec.start <= now {
            return Err(Rejection::NotAdmissible(format!("slot {slot} has started")));
        }
        if let Some(until) = blocked {
            return Err(Rejection::BookingBlocked { until });
        }
        if s.open_seats(channel) == 0 {
            return Err(Rejection::NoCapacity(format!("slot {slot} is full")));
        }
        Ok(s)
    }

    /// Takes a seat that `check_holdable` accepted.
    pub(crate) fn hold(
        &mut self,
        id: HoldId,
        slot: SlotId,
        claim: SeatClaim,
        now: LogTime,
        expires_at: LogTime,
    ) -> Option<SlotHold> {
        let SeatClaim {
            patient,
            channel,
            consult,
        } = claim;
        let s = self.slots.get_mut(&slot)?;
        s.take(channel, true);
        let seat = SlotHold {
            id,
            slot,
            doctor: s.doctor,
            patient,
            channel,
            created_at: now,
            expires_at,
            state: SeatState::Held,
            consult,
        };
        self.seats.insert(id, seat.clone());
        self.seats_of.insert((slot, id));
        self.expiries.insert((expires_at, id));
        self.reindex(slot);
        self.events.push(Event::SeatHeld {
            hold: id,
            slot,
            doctor: seat.doctor,
            hospital: HospitalId(0),
            patient,
            expires_at,
            consult,
        });
        Some(seat)
    }

    /// Checks that a seat is a live hold that `book`/`release` may act on alone.
    pub fn check_held(
        &self,
        id: HoldId,
        now: LogTime,
        alone: bool,
    ) -> Result<&SlotHold, Rejection> {
        let seat = self.seats.get(&id).ok_or(Rejection::UnknownHold(id))?;
        if seat.state != SeatState::Held {
            return Err(Rejection::AlreadyResolved {
                what: format!("slot hold {id}"),
                state: seat.state.name().to_string(),
            });
        }
        if alone {
            if let Some(c) = seat.consult {
                return Err(Rejection::invalid(
                    "hold",
                    format!("seat {id} belongs to joint consultation {c}; act on the consultation"),
                ));
            }
        }
        if seat.expires_at <= now {
            return Err(Rejection::Expired {
                hold: id,
                expired_at: seat.expires_at,
            });
        }
        Ok(seat)
    }

    /// Checks that a booking can be cancelled at `now` under `policy`.
    pub fn check_cancellable(
        &self,
        id: HoldId,
        now: LogTime,
        policy: &Policy,
    ) -> Result<(), Rejection> {
        let seat = self.check_booked(id)?;
        let start = self
            .slots
            .get(&seat.slot)
            .map(|s| s.spec.start)
            .unwrap_or_default();
        let deadline = start.minus_ms(u64::from(policy.cancel_deadline_minutes) * MS_PER_MINUTE);
        if now > deadline {
            return Err(Rejection::CancellationTooLate { deadline });
        }
        Ok(())
    }

    /// Checks that a seat is booked and stands alone (not part of a consultation).
    pub fn check_booked(&self, id: HoldId) -> Result<&SlotHold, Rejection> {
        let seat = self.seats.get(&id).ok_or(Rejection::UnknownHold(id))?;
        if !matches!(seat.state, SeatState::Booked { .. }) {
            return Err(invalid_transition(
                "booking",
                id,
                seat.state.name(),
                "act on booking",
            ));
        }
        Ok(seat)
    }

    /// Changes a seat's state; frees the seat in its slot when it stops counting.
    pub(crate) fn set_seat(&mut self, id: HoldId, state: SeatState) -> Option<SlotHold> {
        let seat = self.seats.get_mut(&id)?;
        let was_held = seat.state == SeatState::Held;
        let took = seat.state.takes_seat();
        seat.state = state;
        let out = seat.clone();
        if was_held && state != SeatState::Held {
            self.expiries.remove(&(out.expires_at, id));
        }
        if let Some(at) = state.final_at() {
            self.resolved.insert((at, id));
        }
        if took && !state.takes_seat() {
            if let Some(slot) = self.slots.get_mut(&out.slot) {
                slot.take(out.channel, false);
            }
            self.reindex(out.slot);
        }
        self.events.push(Event::SeatChanged {
            hold: id,
            slot: out.slot,
            doctor: out.doctor,
            hospital: HospitalId(0),
            patient: out.patient,
            state,
        });
        Some(out)
    }

    /// Records a no-show; blocks online booking when the policy's limit is reached.
    /// Forgets a patient's no-shows and lifts their block (`UnblockPatient`).
    pub(crate) fn forgive_no_shows(&mut self, patient: PatientRef) {
        self.no_shows.remove(&patient);
        self.blocked_until.remove(&patient);
    }

    pub(crate) fn record_no_show(&mut self, patient: PatientRef, now: LogTime, policy: &Policy) {
        let window_ms = u64::from(policy.no_show_window_days) * MS_PER_DAY;
        let list = self.no_shows.entry(patient).or_default();
        list.retain(|&t| t.plus_ms(window_ms) > now);
        list.push(now);
        let limit = policy.no_show_limit.max(1) as usize;
        // Keep only what the policy can ever count.
        if list.len() > limit {
            let excess = list.len() - limit;
            list.drain(..excess);
        }
        if list.len() >= limit {
            let block_ms = u64::from(policy.no_show_block_days) * MS_PER_DAY;
            self.blocked_until.insert(patient, now.plus_ms(block_ms));
        }
    }

    /// Adds a patient to a doctor's waitlist.
    pub(crate) fn join_waitlist(
        &mut self,
        doctor: DoctorId,
        entry: WaitEntry,
    ) -> Result<usize, Rejection> {
        let list = self.waitlists.entry(doctor).or_default();
        if list.iter().any(|e| e.patient == entry.patient) {
            return Err(Rejection::invalid(
                "patient",
                "already on this doctor's waitlist",
            ));
        }
        if list.len() >= WAITLIST_PER_DOCTOR_MAX {
            return Err(Rejection::NoCapacity(format!(
                "waitlist of {doctor} is full ({WAITLIST_PER_DOCTOR_MAX})"
            )));
        }
        list.push_back(entry);
        Ok(list.len())
    }

    /// Removes a patient from a doctor's waitlist.
    pub(crate) fn leave_waitlist(
        &mut self,
        doctor: DoctorId,
        patient: PatientRef,
    ) -> Result<(), Rejection> {
        let list = self.waitlists.get_mut(&doctor);
        let Some(list) = list else {
            return Err(Rejection::invalid(
                "patient",
                "not on this doctor's waitlist",
            ));
        };
        let before = list.len();
        list.retain(|e| e.patient != patient);
        if list.len() == before {
            return Err(Rejection::invalid(
                "patient",
                "not on this doctor's waitlist",
            ));
        }
        if list.is_empty() {
            self.waitlists.remove(&doctor);
        }
        Ok(())
    }

    /// Offers free seats of `slot` to the head of its doctor's waitlist, as holds. An entry
    /// that `may_hold` refuses (its referral moved on) is dropped like a blocked one.
    pub(crate) fn offer_to_waitlist(
        &mut self,
        slot: SlotId,
        now: LogTime,
        ttl_ms: u64,
        next_hold: &mut u64,
        may_hold: &dyn Fn(&WaitEntry) -> bool,
    ) -> Vec<WaitlistOffer> {
        let mut offers = Vec::new();
        let Some(s) = self.slots.get(&slot) else {
            return offers;
        };
        let doctor = s.doctor;
        // Bounded by the waitlist length: each turn removes its head.
        for _ in 0..WAITLIST_PER_DOCTOR_MAX {
            let Some(entry) = self.waitlists.get(&doctor).and_then(|l| l.front()).cloned() else {
                break;
            };
            if !may_hold(&entry) {
                self.pop_waitlist(doctor);
                continue;
            }
            if self
                .check_holdable(slot, entry.patient, entry.channel, now)
                .is_err()
            {
                if self
                    .slots
                    .get(&slot)
                    .is_some_and(|s| s.open_seats(entry.channel) == 0 || s.spec.start <= now)
                {
                    break;
                }
                // The head may not book (blocked by the no-show policy): skip it.
                self.pop_waitlist(doctor);
                continue;
            }
            self.pop_waitlist(doctor);
            let id = HoldId(*next_hold);
            *next_hold += 1;
            let expires_at = now.plus_ms(ttl_ms);
            let claim = SeatClaim {
                patient: entry.patient,
                channel: entry.channel,
                consult: None,
            };
            if self.hold(id, slot, claim, now, expires_at).is_some() {
                self.events.mark_last_offered();
                offers.push(WaitlistOffer {
                    hold: id,
                    slot,
                    patient: entry.patient,
                    expires_at,
                });
            }
            break;
        }
        offers
    }

    fn pop_waitlist(&mut self, doctor: DoctorId) {
        if let Some(list) = self.waitlists.get_mut(&doctor) {
            list.pop_front();
            if list.is_empty() {
                self.waitlists.remove(&doctor);
            }
        }
    }

    /// Seats whose hold expiry is at or before `now`, oldest first, at most `max`.
    pub(crate) fn due(&self, now: LogTime, max: usize) -> Vec<HoldId> {
        crate::time::due(&self.expiries, now, max)
    }

    /// Forgets finished seats resolved at or before `cutoff`, at most `max`.
    pub(crate) fn prune(&mut self, cutoff: LogTime, max: usize) -> usize {
        let old = crate::time::drain_due(&mut self.resolved, cutoff, max);
        for id in &old {
            self.forget_seat(*id);
        }
        old.len()
    }

    /// Removes a seat from every record and index; a joint consultation goes with its last
    /// seat.
    fn forget_seat(&mut self, id: HoldId) {
        let Some(seat) = self.seats.remove(&id) else {
            return;
        };
        self.seats_of.remove(&(seat.slot, id));
        self.expiries.remove(&(seat.expires_at, id));
        if let Some(at) = seat.state.final_at() {
            self.resolved.remove(&(at, id));
        }
        if let Some(c) = seat.consult {
            let done = self
                .consults
                .get(&c)
                .is_some_and(|jc| jc.seats.iter().all(|s| !self.seats.contains_key(s)));
            if done {
                self.consults.remove(&c);
            }
        }
    }

    /// The seats of a slot, by id.
    pub fn seats_in(&self, slot: SlotId) -> impl Iterator<Item = &SlotHold> {
        self.seats_of
            .range((slot, HoldId(0))..=(slot, HoldId(u64::MAX)))
            .filter_map(|(_, h)| self.seats.get(h))
    }

    /// Prunes slots that ended at or before `cutoff`, with all their seats (a booking of
    /// an ended slot was attended or missed; its outcome is on the change feed and in the
    /// audit log). Looks at most at `max` slots, earliest end first; a slot one of whose
    /// seats changed after `cutoff` stays for a later tick, so a request remembered in the
    /// dedup table never names a pruned record. Answers the doctors whose slots went.
    pub(crate) fn prune_slots(&mut self, cutoff: LogTime, max: usize) -> Vec<DoctorId> {
        let candidates: Vec<(LogTime, SlotId)> = self
            .ends
            .range(..=(cutoff, SlotId(u64::MAX)))
            .take(max)
            .copied()
            .collect();
        let mut doctors = Vec::new();
        for (end, id) in candidates {
            if self.seats_in(id).any(|s| s.last_change() > cutoff) {
                continue;
            }
            let seats: Vec<HoldId> = self.seats_in(id).map(|s| s.id).collect();
            for h in seats {
                self.forget_seat(h);
            }
            self.ends.remove(&(end, id));
            let Some(slot) = self.slots.remove(&id) else {
                continue;
            };
            let key = (slot.doctor, slot.spec.start, id);
            self.by_doctor.remove(&key);
            for set in &mut self.open {
                set.remove(&key);
            }
            doctors.push(slot.doctor);
        }
        doctors.dedup();
        doctors
    }

    /// Checks an amendment of a slot's seats: the slot exists, is not withdrawn and has
    /// not started; the new numbers are valid and still cover the seats taken.
    pub fn check_amend(
        &self,
        slot: SlotId,
        seats: SeatLimits,
        now: LogTime,
    ) -> Result<(), Rejection> {
        let s = self.slots.get(&slot).ok_or(Rejection::UnknownSlot(slot))?;
        if s.withdrawn_at.is_some() {
            return Err(Rejection::AlreadyResolved {
                what: format!("slot {slot}"),
                state: "withdrawn".into(),
            });
        }
        if s.spec.start <= now {
            return Err(Rejection::NotAdmissible(format!("slot {slot} has started")));
        }
        seats.check("")?;
        let public_cap = seats.capacity.saturating_sub(seats.referral_quota);
        let total = seats.capacity.saturating_add(seats.overbook);
        if s.taken_public > public_cap || s.taken() > total {
            return Err(Rejection::InvalidTransition {
                what: format!("slot {slot}"),
                state: format!(
                    "{} public and {} referral seats taken",
                    s.taken_public, s.taken_referral
                ),
                action: "shrink below its taken seats".into(),
            });
        }
        Ok(())
    }

    /// Applies a checked amendment.
    pub(crate) fn amend(&mut self, slot: SlotId, seats: SeatLimits) {
        if let Some(s) = self.slots.get_mut(&slot) {
            s.spec.capacity = seats.capacity;
            s.spec.overbook = seats.overbook;
            s.spec.referral_quota = seats.referral_quota;
        }
        self.reindex(slot);
    }

    /// Checks a withdrawal: the slot exists, is not withdrawn yet and has not started.
    pub fn check_withdrawable(&self, slot: SlotId, now: LogTime) -> Result<&Slot, Rejection> {
        let s = self.slots.get(&slot).ok_or(Rejection::UnknownSlot(slot))?;
        if s.withdrawn_at.is_some() {
            return Err(Rejection::AlreadyResolved {
                what: format!("slot {slot}"),
                state: "withdrawn".into(),
            });
        }
        if s.spec.start <= now {
            return Err(Rejection::NotAdmissible(format!("slot {slot} has started")));
        }
        Ok(s)
    }

    /// Marks a slot withdrawn: no seat is open any more and its time is free to publish.
    pub(crate) fn withdraw(&mut self, slot: SlotId, at: LogTime) {
        let Some(s) = self.slots.get_mut(&slot) else {
            return;
        };
        s.withdrawn_at = Some(at);
        let key = (s.doctor, s.spec.start, slot);
        self.by_doctor.remove(&key);
        for set in &mut self.open {
            set.remove(&key);
        }
    }

    /// A doctor's rolling template, if any.
    pub fn template(&self, doctor: DoctorId) -> Option<&Rolling> {
        self.templates.get(&doctor)
    }

    /// Sets (or with `None` removes) a doctor's rolling template.
    pub(crate) fn set_template(&mut self, doctor: DoctorId, rolling: Option<Rolling>) {
        if let Some(old) = self.templates.remove(&doctor) {
            self.rolling_due.remove(&(old.due_day(), doctor));
        }
        if let Some(r) = rolling {
            self.rolling_due.insert((r.due_day(), doctor));
            self.templates.insert(doctor, r);
        }
    }

    /// The doctor whose template is due to roll first, if its due day is at or before `day`.
    pub(crate) fn next_due(&self, day: u64) -> Option<DoctorId> {
        self.rolling_due
            .first()
            .filter(|(d, _)| *d <= day)
            .map(|(_, doctor)| *doctor)
    }

    /// Publishes the next day of `doctor`'s template (days before `today` are skipped: they
    /// are over) with ids from `next_slot`; slots that would start at or before `now` or
    /// overlap a published slot are left out. Answers how many were published.
    pub(crate) fn roll_day(
        &mut self,
        doctor: DoctorId,
        now: LogTime,
        next_slot: &mut u64,
        remote_ok: bool,
    ) -> usize {
        let Some(mut r) = self.templates.get(&doctor).cloned() else {
            return 0;
        };
        let day = r.next_day.max(crate::horizon::day_of(now));
        let specs: Vec<SlotSpec> = r
            .template
            .specs_for(day)
            .into_iter()
            .filter(|s| s.start > now && self.overlapping(doctor, s.start, end_of(s)).is_none())
            // A doctor who stopped taking remote consultations (`UpsertDoctor`) gets no new
            // remote slots from a template set while they did: the same rule as publishing.
            .filter(|s| remote_ok || s.mode != Mode::Remote)
            .collect();
        self.publish(doctor, &specs, *next_slot);
        *next_slot += specs.len() as u64;
        r.next_day = day + 1;
        self.set_template(doctor, Some(r));
        specs.len()
    }
}

/// When a slot of `spec` ends.
fn end_of(spec: &SlotSpec) -> LogTime {
    spec.start
        .plus_ms(u64::from(spec.duration_minutes) * MS_PER_MINUTE)
}

/// A slot's seat numbers, as `AmendSlot` sets them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct SeatLimits {
    pub capacity: u16,
    pub overbook: u16,
    pub referral_quota: u16,
}

impl SeatLimits {
    /// Checks the numbers, naming fields under `prefix` (`""` or `"slots[3]."`).
    pub fn check(&self, prefix: &str) -> Result<(), Rejection> {
        if self.capacity == 0 || self.capacity.saturating_add(self.overbook) > SLOT_CAPACITY_MAX {
            return Err(Rejection::invalid(
                format!("{prefix}capacity"),
                format!(
                    "capacity must be at least 1 and capacity + overbook at most {SLOT_CAPACITY_MAX}"
                ),
            ));
        }
        if self.referral_quota > self.capacity {
            return Err(Rejection::invalid(
                format!("{prefix}referral_quota"),
                "exceeds capacity",
            ));
        }
        Ok(())
    }
}
