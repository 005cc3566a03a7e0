//! Scheduling commands: publish, hold, book, release, cancel, no-show, waitlist and joint
//! consultations.

use crate::beds::HoldState;
use crate::command::Reply;
use crate::engine::Engine;
use crate::error::Rejection;
use crate::ids::*;
use crate::limits::JOINT_CONSULT_DOCTORS_MAX;
use crate::referrals::{ReferralBook, ReferralState};
use crate::region::{Channel, Mode};
use crate::slots::{
    JointConsult, SeatAsk, SeatClaim, SeatState, SlotSpec, WaitEntry, WaitlistOffer,
};
use crate::time::{LogTime, MS_PER_MINUTE};
use std::collections::BTreeSet;

impl Engine {
    pub(crate) fn publish_schedule(
        &mut self,
        doctor: DoctorId,
        specs: &[SlotSpec],
        now: LogTime,
    ) -> Result<Reply, Rejection> {
        let d = self
            .doctors
            .get(&doctor)
            .ok_or(Rejection::UnknownDoctor(doctor))?;
        if let Some(i) = specs
            .iter()
            .position(|s| s.mode == Mode::Remote && !d.remote)
        {
            return Err(Rejection::invalid(
                format!("slots[{i}].mode"),
                format!("doctor {doctor} does not take remote consultations"),
            ));
        }
        self.slots.check_schedule(doctor, specs, now)?;
        let first = self.counters.next_slot;
        self.counters.next_slot += specs.len() as u64;
        self.slots.publish(doctor, specs, first);
        Ok(Reply::SchedulePublished {
            first: SlotId(first),
            count: specs.len() as u32,
        })
    }

    /// Holds a seat for `ttl_ms`, or the policy's `slot_hold_ttl_ms` with `None`.
    pub(crate) fn hold_slot_ttl(
        &mut self,
        slot: SlotId,
        ask: SeatAsk,
        ttl_ms: Option<u64>,
        now: LogTime,
    ) -> Result<Reply, Rejection> {
        self.check_seat_hold(slot, &ask, ttl_ms, now)?;
        let SeatAsk {
            patient, channel, ..
        } = ask;
        let id = self.take_hold_id();
        let expires_at = now.plus_ms(ttl_ms.unwrap_or(self.policy.slot_hold_ttl_ms));
        let claim = SeatClaim {
            patient,
            channel,
            consult: None,
        };
        self.slots.hold(id, slot, claim, now, expires_at);
        Ok(Reply::SlotHeld {
            hold: id,
            slot,
            expires_at,
        })
    }

    /// Whether a `HoldSlot` (`ttl_ms` `None`) or `HoldSlotFor` of a seat of `slot` is
    /// refused now. Changes nothing: `hold_slot_ttl` and the refusal precheck share it.
    pub(crate) fn check_seat_hold(
        &self,
        slot: SlotId,
        ask: &SeatAsk,
        ttl_ms: Option<u64>,
        now: LogTime,
    ) -> Result<(), Rejection> {
        if let Some(ttl) = ttl_ms {
            super::beds::check_ttl("ttl_ms", ttl)?;
        }
        self.check_referral_seat(ask)?;
        self.slots
            .check_holdable(slot, ask.patient, ask.channel, now)
            .map(drop)
    }

    pub(crate) fn book_slot(&mut self, hold: HoldId, now: LogTime) -> Result<Reply, Rejection> {
        let slot = self.slots.check_held(hold, now, true)?.slot;
        self.slots.set_seat(hold, SeatState::Booked { at: now });
        Ok(Reply::SlotBooked {
            booking: hold,
            slot,
        })
    }

    pub(crate) fn release_slot(&mut self, hold: HoldId, now: LogTime) -> Result<Reply, Rejection> {
        let slot = self.check_seat_release(hold)?;
        self.slots.set_seat(hold, SeatState::Released { at: now });
        self.seat_lost(hold, "slot hold released", now);
        let offers = self.offer_freed(slot, now);
        Ok(Reply::SlotReleased { hold, offers })
    }

    /// The slot of a seat a `ReleaseSlot` may release, or its refusal: unknown, no longer
    /// held, or part of a joint consultation. Changes nothing.
    pub(crate) fn check_seat_release(&self, hold: HoldId) -> Result<SlotId, Rejection> {
        let seat = self.slots.seat(hold).ok_or(Rejection::UnknownHold(hold))?;
        if seat.state != SeatState::Held {
            return Err(Rejection::AlreadyResolved {
                what: format!("slot hold {hold}"),
                state: seat.state.name().to_string(),
            });
        }
        if let Some(c) = seat.consult {
            return Err(Rejection::invalid(
                "hold",
                format!("seat {hold} belongs to joint consultation {c}; act on the consultation"),
            ));
        }
        Ok(seat.slot)
    }

    /// Releases a held seat or cancels a booking, whichever the seat is.
    pub(crate) fn cancel_seat(&mut self, hold: HoldId, now: LogTime) -> Result<Reply, Rejection> {
        let seat = self.slots.seat(hold).ok_or(Rejection::UnknownHold(hold))?;
        match seat.state {
            SeatState::Booked { .. } => self.cancel_booking(hold, now),
            _ => self.release_slot(hold, now),
        }
    }

    pub(crate) fn cancel_booking(
        &mut self,
        booking: HoldId,
        now: LogTime,
    ) -> Result<Reply, Rejection> {
        self.check_booking_cancel(booking, now)?;
        let slot = self
            .slots
            .set_seat(booking, SeatState::Cancelled { at: now })
            .map(|s| s.slot);
        self.seat_lost(booking, "booking cancelled", now);
        let offers = slot.map(|s| self.offer_freed(s, now)).unwrap_or_default();
        Ok(Reply::BookingCancelled { booking, offers })
    }

    /// Whether a `CancelBooking` of `booking` is refused now: not a booking, past the
    /// cancellation deadline, or part of a joint consultation. Changes nothing.
    pub(crate) fn check_booking_cancel(
        &self,
        booking: HoldId,
        now: LogTime,
    ) -> Result<(), Rejection> {
        self.slots.check_cancellable(booking, now, &self.policy)?;
        if let Some(c) = self.slots.seat(booking).and_then(|s| s.consult) {
            return Err(Rejection::invalid(
                "booking",
                format!(
                    "seat {booking} belongs to joint consultation {c}; act on the consultation"
                ),
            ));
        }
        Ok(())
    }

    pub(crate) fn mark_no_show(
        &mut self,
        booking: HoldId,
        now: LogTime,
    ) -> Result<Reply, Rejection> {
        let seat = self.slots.check_booked(booking)?;
        let patient = seat.patient;
        let start = self
            .slots
            .slot(seat.slot)
            .map(|s| s.spec.start)
            .unwrap_or_default();
        if now < start {
            // A state of the world, not a malformed request: FAILED_PRECONDITION.
            return Err(Rejection::InvalidTransition {
                what: format!("booking {booking}"),
                state: "booked (the slot has not started)".into(),
                action: "mark a no-show for".into(),
            });
        }
        self.slots.set_seat(booking, SeatState::NoShow { at: now });
        self.slots.record_no_show(patient, now, &self.policy);
        Ok(Reply::NoShowRecorded {
            booking,
            blocked_until: self.slots.blocked(patient, now),
        })
    }

    /// Lifts a patient's no-show block (if any) and forgets their no-shows.
    pub(crate) fn unblock_patient(&mut self, patient: PatientRef, now: LogTime) -> Reply {
        let blocked_until = self.slots.blocked(patient, now);
        self.slots.forgive_no_shows(patient);
        Reply::PatientUnblocked {
            patient,
            blocked_until,
        }
    }

    pub(crate) fn join_waitlist(
        &mut self,
        doctor: DoctorId,
        ask: SeatAsk,
        now: LogTime,
    ) -> Result<Reply, Rejection> {
        let SeatAsk {
            patient,
            channel,
            referral,
        } = ask;
        if !self.doctors.contains_key(&doctor) {
            return Err(Rejection::UnknownDoctor(doctor));
        }
        self.check_referral_seat(&ask)?;
        if channel == Channel::Public {
            if let Some(until) = self.slots.blocked(patient, now) {
                return Err(Rejection::BookingBlocked { until });
            }
        }
        let position = self.slots.join_waitlist(
            doctor,
            WaitEntry {
                patient,
                channel,
                joined_at: now,
                referral,
            },
        )?;
        Ok(Reply::Waitlisted {
            position: position as u32,
        })
    }

    pub(crate) fn leave_waitlist(
        &mut self,
        doctor: DoctorId,
        patient: PatientRef,
    ) -> Result<Reply, Rejection> {
        if !self.doctors.contains_key(&doctor) {
            return Err(Rejection::UnknownDoctor(doctor));
        }
        self.slots.leave_waitlist(doctor, patient)?;
        Ok(Reply::Done)
    }

    /// Offers a freed seat to the doctor's waitlist.
    pub(crate) fn offer_freed(&mut self, slot: SlotId, now: LogTime) -> Vec<WaitlistOffer> {
        let ttl = self.policy.slot_hold_ttl_ms;
        let referrals = &self.referrals;
        // The entry's referral may have been matched, accepted or closed while it waited.
        let may_hold = |e: &WaitEntry| {
            let ask = SeatAsk::new(e.patient, e.channel, e.referral);
            check_referral_seat(referrals, &ask).is_ok()
        };
        self.slots
            .offer_to_waitlist(slot, now, ttl, &mut self.counters.next_hold, &may_hold)
    }

    /// Checks that a seat asked through `ask.channel` may be taken for `ask.referral`.
    pub(crate) fn check_referral_seat(&self, ask: &SeatAsk) -> Result<(), Rejection> {
        check_referral_seat(&self.referrals, ask)
    }

    pub(crate) fn hold_joint_consult(
        &mut self,
        slots: &[SlotId],
        patient: PatientRef,
        now: LogTime,
    ) -> Result<Reply, Rejection> {
        let ttl = self.policy.slot_hold_ttl_ms;
        self.hold_joint_consult_ttl(slots, patient, ttl, now)
    }

    /// Holds a joint consultation at the earliest common time of `doctors` in `window`.
    pub(crate) fn hold_joint_consult_in(
        &mut self,
        doctors: &[DoctorId],
        window: (LogTime, LogTime),
        duration_minutes: u16,
        patient: PatientRef,
        ttl_ms: u64,
        now: LogTime,
    ) -> Result<Reply, Rejection> {
        let ttl = match ttl_ms {
            0 => self.policy.slot_hold_ttl_ms,
            t => {
                super::beds::check_ttl("ttl_ms", t)?;
                t
            }
        };
        let slots = self.find_joint_slots(doctors, window, duration_minutes, now)?;
        self.hold_joint_consult_ttl(&slots, patient, ttl, now)
    }

    /// The earliest start `t` in `window` at which every doctor has a remote slot with an
    /// open public seat (`JOINT_CONSULT_CHANNEL`) covering `[t, t + duration)`; one slot per
    /// doctor, in their order.
    /// Bounded: a doctor's slots in the window (they never overlap) times the doctors.
    fn find_joint_slots(
        &self,
        doctors: &[DoctorId],
        (earliest, latest): (LogTime, LogTime),
        duration_minutes: u16,
        now: LogTime,
    ) -> Result<Vec<SlotId>, Rejection> {
        use crate::limits::SLOT_DURATION_MINUTES_MAX;
        use crate::time::MS_PER_MINUTE;
        if doctors.len() < 2 || doctors.len() > JOINT_CONSULT_DOCTORS_MAX {
            return Err(Rejection::invalid(
                "doctors",
                format!("must name 2 to {JOINT_CONSULT_DOCTORS_MAX} doctors"),
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, d) in doctors.iter().enumerate() {
            if !self.doctors.contains_key(d) {
                return Err(Rejection::UnknownDoctor(*d));
            }
            if !seen.insert(*d) {
                return Err(Rejection::invalid(
                    format!("doctors[{i}]"),
                    format!("doctor {d} appears twice"),
                ));
            }
        }
        // The unset window (both 0): the next `MATCH_WINDOW_MS_DEFAULT` from now.
        let (earliest, latest) = if earliest == LogTime(0) && latest == LogTime(0) {
            (now, now.plus_ms(crate::matching::MATCH_WINDOW_MS_DEFAULT))
        } else {
            (earliest, latest)
        };
        let window_max = crate::matching::MATCH_WINDOW_MS_MAX;
        if latest <= earliest || latest.0 - earliest.0 > window_max {
            return Err(Rejection::invalid(
                "window",
                format!("must be non-empty and at most {window_max} ms long"),
            ));
        }
        if duration_minutes == 0 || duration_minutes > SLOT_DURATION_MINUTES_MAX {
            return Err(Rejection::invalid(
                "duration_minutes",
                format!("must be 1 to {SLOT_DURATION_MINUTES_MAX}"),
            ));
        }
        let need_ms = u64::from(duration_minutes) * MS_PER_MINUTE;
        // A slot covering a start in the window began at most one longest slot before it.
        let from = earliest.minus_ms(u64::from(SLOT_DURATION_MINUTES_MAX) * MS_PER_MINUTE);
        let usable: Vec<Vec<(LogTime, LogTime, SlotId)>> = doctors
            .iter()
            .map(|d| {
                self.slots
                    .doctor_slots(*d, from, latest)
                    .filter(|s| {
                        s.spec.mode == Mode::Remote
                            && s.spec.start > now
                            && s.open_seats(JOINT_CONSULT_CHANNEL) > 0
                    })
                    .map(|s| (s.spec.start, s.end(), s.id))
                    .collect()
            })
            .collect();
        let starts: BTreeSet<LogTime> = usable
            .iter()
            .flatten()
            .map(|s| s.0)
            .filter(|t| *t >= earliest && *t < latest)
            .collect();
        'time: for t in starts {
            let mut chosen = Vec::with_capacity(doctors.len());
            for list in &usable {
                // The doctor's slots do not overlap: only the last one starting at or
                // before `t` can cover it.
                let i = list.partition_point(|s| s.0 <= t);
                match i.checked_sub(1).and_then(|i| list.get(i)).copied() {
                    Some((_, end, id)) if end.0 >= t.0.saturating_add(need_ms) => chosen.push(id),
                    _ => continue 'time,
                }
            }
            return Ok(chosen);
        }
        Err(Rejection::NoCapacity(format!(
            "no common remote time of {duration_minutes} minutes for the doctors in the window"
        )))
    }

    fn hold_joint_consult_ttl(
        &mut self,
        slots: &[SlotId],
        patient: PatientRef,
        ttl_ms: u64,
        now: LogTime,
    ) -> Result<Reply, Rejection> {
        let (start, end) = self.check_joint(slots, now)?;
        let consult = ConsultId(self.counters.next_consult);
        self.counters.next_consult += 1;
        let expires_at = now.plus_ms(ttl_ms);
        let mut seats = Vec::with_capacity(slots.len());
        for &slot in slots {
            let id = self.take_hold_id();
            let claim = SeatClaim {
                patient,
                channel: JOINT_CONSULT_CHANNEL,
                consult: Some(consult),
            };
            self.slots.hold(id, slot, claim, now, expires_at);
            seats.push(id);
        }
        self.slots.consults.insert(
            consult,
            JointConsult {
                id: consult,
                patient,
                seats: seats.clone(),
                start,
                end,
                expires_at,
                state: HoldState::Pending,
            },
        );
        Ok(Reply::ConsultHeld {
            consult,
            seats,
            start,
            expires_at,
        })
    }

    /// Checks a joint consultation request; returns the common time window.
    fn check_joint(&self, slots: &[SlotId], now: LogTime) -> Result<(LogTime, LogTime), Rejection> {
        if slots.len() < 2 || slots.len() > JOINT_CONSULT_DOCTORS_MAX {
            return Err(Rejection::invalid(
                "slots",
                format!("must name 2 to {JOINT_CONSULT_DOCTORS_MAX} slots"),
            ));
        }
        let mut doctors = BTreeSet::new();
        let (mut start, mut end) = (LogTime(0), LogTime(u64::MAX));
        for (i, &id) in slots.iter().enumerate() {
            let s = self.slots.check_consult_seat(id, now)?;
            if s.spec.mode != Mode::Remote {
                return Err(Rejection::invalid(
                    format!("slots[{i}]"),
                    format!("slot {id} is not a remote slot"),
                ));
            }
            if !doctors.insert(s.doctor) {
                return Err(Rejection::invalid(
                    format!("slots[{i}]"),
                    format!("doctor {} appears twice", s.doctor),
                ));
            }
            start = start.max(s.spec.start);
            end = end.min(s.end());
        }
        if start >= end {
            return Err(Rejection::NoCapacity(
                "the slots share no common time".to_string(),
            ));
        }
        Ok((start, end))
    }

    pub(crate) fn book_joint_consult(
        &mut self,
        consult: ConsultId,
        now: LogTime,
    ) -> Result<Reply, Rejection> {
        let jc = self.check_consult(consult)?;
        if jc.expires_at <= now {
            return Err(Rejection::Expired {
                hold: jc.seats.first().copied().unwrap_or(HoldId(0)),
                expired_at: jc.expires_at,
            });
        }
        let seats = jc.seats.clone();
        for s in &seats {
            self.slots.set_seat(*s, SeatState::Booked { at: now });
        }
        self.set_consult_state(consult, HoldState::Confirmed { at: now });
        Ok(Reply::ConsultBooked { consult })
    }

    pub(crate) fn release_joint_consult(
        &mut self,
        consult: ConsultId,
        now: LogTime,
    ) -> Result<Reply, Rejection> {
        self.check_consult(consult)?;
        let offers = self.end_consult(consult, HoldState::Released { at: now }, now);
        Ok(Reply::ConsultReleased { consult, offers })
    }

    /// Releases a held consultation, or cancels a booked one until the cancellation
    /// deadline before its start; either way every seat is freed and offered.
    pub(crate) fn cancel_joint_consult(
        &mut self,
        consult: ConsultId,
        now: LogTime,
    ) -> Result<Reply, Rejection> {
        let jc = self
            .slots
            .consult(consult)
            .ok_or(Rejection::UnknownConsult(consult))?;
        let state = jc.state;
        match state {
            HoldState::Pending => return self.release_joint_consult(consult, now),
            HoldState::Confirmed { .. } => {}
            HoldState::Released { .. } | HoldState::Expired { .. } => {
                return Err(Rejection::AlreadyResolved {
                    what: format!("consultation {consult}"),
                    state: state.name().to_string(),
                })
            }
        }
        let deadline_ms = u64::from(self.policy.cancel_deadline_minutes) * MS_PER_MINUTE;
        let deadline = jc.start.minus_ms(deadline_ms);
        if now > deadline {
            return Err(Rejection::CancellationTooLate { deadline });
        }
        let seats = jc.seats.clone();
        let freed: Vec<SlotId> = seats
            .iter()
            .filter_map(|s| self.slots.set_seat(*s, SeatState::Cancelled { at: now }))
            .map(|seat| seat.slot)
            .collect();
        self.set_consult_state(consult, HoldState::Released { at: now });
        let mut offers = Vec::new();
        for slot in freed {
            offers.extend(self.offer_freed(slot, now));
        }
        Ok(Reply::ConsultReleased { consult, offers })
    }

    fn check_consult(&self, consult: ConsultId) -> Result<&JointConsult, Rejection> {
        let jc = self
            .slots
            .consult(consult)
            .ok_or(Rejection::UnknownConsult(consult))?;
        if jc.state != HoldState::Pending {
            return Err(Rejection::AlreadyResolved {
                what: format!("consultation {consult}"),
                state: jc.state.name().to_string(),
            });
        }
        Ok(jc)
    }

    /// Releases or expires every seat of a pending consultation and offers the freed seats.
    pub(crate) fn end_consult(
        &mut self,
        consult: ConsultId,
        state: HoldState,
        now: LogTime,
    ) -> Vec<WaitlistOffer> {
        let Some(jc) = self.slots.consult(consult) else {
            return Vec::new();
        };
        let seats = jc.seats.clone();
        let seat_state = match state {
            HoldState::Expired { at } => SeatState::Expired { at },
            _ => SeatState::Released { at: now },
        };
        let mut freed = Vec::new();
        for s in &seats {
            if let Some(seat) = self.slots.set_seat(*s, seat_state) {
                freed.push(seat.slot);
            }
        }
        self.set_consult_state(consult, state);
        let mut offers = Vec::new();
        for slot in freed {
            offers.extend(self.offer_freed(slot, now));
        }
        offers
    }

    fn set_consult_state(&mut self, consult: ConsultId, state: HoldState) {
        if let Some(jc) = self.slots.consults.get_mut(&consult) {
            jc.state = state;
        }
    }
}

/// The channel of every joint consultation seat. A joint consultation names no referral,
/// so it never takes a slot's referral quota or overbooking seats, which are kept for
/// triaged referrals (`check_referral_seat`); it takes public seats only.
pub const JOINT_CONSULT_CHANNEL: Channel = Channel::Public;

/// The referral states in which a referral may take a referral-channel seat: only a triaged
/// referral can have a seat attached (`MatchReferral`). A requested one is triaged first (the
/// receiver sets specialty and urgency); a matched, accepted or in-transit one has its
/// capacity already, and a closed one needs none.
pub const REFERRAL_SEAT_STATES: [ReferralState; 1] = [ReferralState::Triaged];

/// A referral-channel seat needs an existing referral of the same patient in
/// `REFERRAL_SEAT_STATES`, so the referral quota is taken only for real referrals. A
/// public seat may name a referral too; it is checked the same way.
pub(crate) fn check_referral_seat(book: &ReferralBook, ask: &SeatAsk) -> Result<(), Rejection> {
    let Some(id) = ask.referral else {
        if ask.channel == Channel::Referral {
            return Err(Rejection::invalid(
                "referral_id",
                "required for the referral channel: name the triaged referral the seat serves",
            ));
        }
        return Ok(());
    };
    let r = book
        .get(id)
        .ok_or_else(|| Rejection::invalid("referral_id", format!("no referral {id}")))?;
    if r.patient != ask.patient {
        return Err(Rejection::invalid(
            "referral_id",
            format!("referral {id} is for another patient"),
        ));
    }
    if !REFERRAL_SEAT_STATES.contains(&r.state) {
        return Err(Rejection::InvalidTransition {
            what: format!("referral_id {id}"),
            state: r.state.name().to_string(),
            action: "take a referral seat for".to_string(),
        });
    }
    Ok(())
}
