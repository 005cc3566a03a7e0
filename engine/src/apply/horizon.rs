//! Schedules over time: amend and withdraw published slots, weekly templates that keep a
//! doctor's schedule rolling, and (from `Tick`) rolling the horizon and pruning ended slots.

use crate::beds::HoldState;
use crate::command::Reply;
use crate::engine::Engine;
use crate::error::Rejection;
use crate::horizon::{day_of, Rolling, WeeklyTemplate};
use crate::ids::*;
use crate::limits::{HORIZON_DOCTOR_DAYS_PER_TICK_MAX, SLOTS_PER_WITHDRAW_MAX};
use crate::slots::{SeatLimits, SeatState, WaitlistOffer};
use crate::time::{LogTime, MS_PER_DAY};
use std::collections::BTreeSet;

impl Engine {
    pub(crate) fn amend_slot(
        &mut self,
        slot: SlotId,
        seats: SeatLimits,
        now: LogTime,
    ) -> Result<Reply, Rejection> {
        self.slots.check_amend(slot, seats, now)?;
        self.slots.amend(slot, seats);
        let offers = self.offer_freed(slot, now);
        Ok(Reply::SlotAmended { slot, offers })
    }

    pub(crate) fn withdraw_slots(
        &mut self,
        slots: &[SlotId],
        cancel_bookings: bool,
        now: LogTime,
    ) -> Result<Reply, Rejection> {
        let live = self.check_withdraw(slots, cancel_bookings, now)?;
        let withdrawn: BTreeSet<SlotId> = slots.iter().copied().collect();
        let mut cancelled = Vec::new();
        let mut freed = Vec::new();
        let mut consults = BTreeSet::new();
        for hold in live {
            let Some(seat) = self.slots.seat(hold) else {
                continue;
            };
            if let Some(c) = seat.consult {
                consults.insert(c);
                continue;
            }
            self.slots.set_seat(hold, SeatState::Withdrawn { at: now });
            self.seat_lost(hold, "slot withdrawn", now);
            cancelled.push(hold);
        }
        for c in consults {
            self.end_consult_withdrawn(c, &withdrawn, now, &mut cancelled, &mut freed);
        }
        for &slot in slots {
            self.slots.withdraw(slot, now);
        }
        let mut offers: Vec<WaitlistOffer> = Vec::new();
        for slot in freed {
            offers.extend(self.offer_freed(slot, now));
        }
        Ok(Reply::SlotsWithdrawn {
            slots: slots.to_vec(),
            cancelled,
            offers,
        })
    }

    /// Checks a withdrawal; answers the held and booked seats of the slots, by id.
    fn check_withdraw(
        &self,
        slots: &[SlotId],
        cancel_bookings: bool,
        now: LogTime,
    ) -> Result<Vec<HoldId>, Rejection> {
        if slots.is_empty() || slots.len() > SLOTS_PER_WITHDRAW_MAX {
            return Err(Rejection::invalid(
                "slot_ids",
                format!("must name 1 to {SLOTS_PER_WITHDRAW_MAX} slots"),
            ));
        }
        let mut seen = BTreeSet::new();
        let mut live = Vec::new();
        for (i, &id) in slots.iter().enumerate() {
            if !seen.insert(id) {
                return Err(Rejection::invalid(
                    format!("slot_ids[{i}]"),
                    format!("slot {id} appears twice"),
                ));
            }
            self.slots.check_withdrawable(id, now)?;
            live.extend(
                self.slots
                    .seats_in(id)
                    .filter(|s| s.state.takes_seat())
                    .map(|s| s.id),
            );
        }
        if !live.is_empty() && !cancel_bookings {
            return Err(Rejection::InvalidTransition {
                what: format!("{} held or booked seats", live.len()),
                state: "taken (set cancel_bookings to cancel them with the slots)".into(),
                action: "withdraw the slots of".into(),
            });
        }
        live.sort();
        Ok(live)
    }

    /// Ends a joint consultation one of whose slots is withdrawn: its seats in withdrawn
    /// slots end `Withdrawn`, its other live seats are freed (`freed` collects their slots
    /// to offer on), and the consultation is released.
    fn end_consult_withdrawn(
        &mut self,
        consult: ConsultId,
        withdrawn: &BTreeSet<SlotId>,
        now: LogTime,
        cancelled: &mut Vec<HoldId>,
        freed: &mut Vec<SlotId>,
    ) {
        let Some(jc) = self.slots.consult(consult) else {
            return;
        };
        let seats = jc.seats.clone();
        for hold in seats {
            let Some(seat) = self.slots.seat(hold) else {
                continue;
            };
            if !seat.state.takes_seat() {
                continue;
            }
            let slot = seat.slot;
            let state = if withdrawn.contains(&slot) {
                SeatState::Withdrawn { at: now }
            } else {
                freed.push(slot);
                match seat.state {
                    SeatState::Booked { .. } => SeatState::Cancelled { at: now },
                    _ => SeatState::Released { at: now },
                }
            };
            self.slots.set_seat(hold, state);
            cancelled.push(hold);
        }
        if let Some(jc) = self.slots.consults.get_mut(&consult) {
            jc.state = HoldState::Released { at: now };
        }
    }

    pub(crate) fn set_weekly_template(
        &mut self,
        doctor: DoctorId,
        template: &WeeklyTemplate,
        from: LogTime,
        now: LogTime,
    ) -> Result<Reply, Rejection> {
        let d = self
            .doctors
            .get(&doctor)
            .ok_or(Rejection::UnknownDoctor(doctor))?;
        template.check(d.remote)?;
        let first = SlotId(self.counters.next_slot);
        if template.slots.is_empty() {
            self.slots.set_template(doctor, None);
            return Ok(Reply::TemplateSet {
                doctor,
                first,
                count: 0,
                next_day_start: LogTime(0),
            });
        }
        let next_day = day_of(from).max(day_of(now));
        let rolling = Rolling {
            template: template.clone(),
            next_day,
        };
        self.slots.set_template(doctor, Some(rolling));
        let today = day_of(now);
        let mut count = 0usize;
        // At most `horizon_days` (`HORIZON_DAYS_MAX`) days of `TEMPLATE_SLOTS_MAX` slots.
        while self
            .slots
            .template(doctor)
            .is_some_and(|r| r.due_day() <= today)
        {
            let remote_ok = self.takes_remote(doctor);
            count += self
                .slots
                .roll_day(doctor, now, &mut self.counters.next_slot, remote_ok);
        }
        self.mark_doctor(doctor);
        let next = self.slots.template(doctor).map_or(next_day, |r| r.next_day);
        Ok(Reply::TemplateSet {
            doctor,
            first,
            count: count as u32,
            next_day_start: LogTime(next.saturating_mul(MS_PER_DAY)),
        })
    }

    /// Rolls the templates whose next day has entered the horizon, at most
    /// `HORIZON_DOCTOR_DAYS_PER_TICK_MAX` doctor-days; the rest roll on the next ticks.
    pub(crate) fn roll_horizons(&mut self, now: LogTime) {
        let today = day_of(now);
        for _ in 0..HORIZON_DOCTOR_DAYS_PER_TICK_MAX {
            let Some(doctor) = self.slots.next_due(today) else {
                break;
            };
            let remote_ok = self.takes_remote(doctor);
            self.slots
                .roll_day(doctor, now, &mut self.counters.next_slot, remote_ok);
            self.mark_doctor(doctor);
        }
    }

    /// Whether `doctor` is known and takes remote consultations now.
    fn takes_remote(&self, doctor: DoctorId) -> bool {
        self.doctors.get(&doctor).is_some_and(|d| d.remote)
    }

    /// Prunes slots that ended before the retention (and the dedup window, so a remembered
    /// request never names a pruned slot or seat), with their seats.
    pub(crate) fn prune_slots(&mut self, now: LogTime, max: usize) {
        let keep_ms = self
            .policy
            .resolved_retention_ms
            .max(self.policy.dedup_window_ms);
        for doctor in self.slots.prune_slots(now.minus_ms(keep_ms), max) {
            self.mark_doctor(doctor);
        }
    }
}
