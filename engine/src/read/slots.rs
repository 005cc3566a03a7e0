//! Scheduling reads: slots with their taken seats, open-slot search, one seat (hold or
//! booking) with its cancel deadline, a patient's bookings and holds, joint consultations
//! and waitlists.

use crate::beds::BedHold;
use crate::engine::Engine;
use crate::ids::*;
use crate::limits::PATIENT_RECORDS_MAX;
use crate::region::{Channel, Mode, Specialty};
use crate::slots::{JointConsult, SeatState, Slot, SlotHold, WaitEntry};
use crate::time::{LogTime, MS_PER_MINUTE};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A slot with what the API reports alongside it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotInfo {
    pub slot: Slot,
    pub hospital: HospitalId,
    /// The doctor's first specialty.
    pub specialty: Option<Specialty>,
    /// Seats taken by holds and by bookings.
    pub held: u32,
    pub booked: u32,
}

/// A slot hold or booking with its slot's facts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatInfo {
    pub seat: SlotHold,
    pub hospital: HospitalId,
    pub start: LogTime,
    pub mode: Mode,
    /// The last moment a booking may be cancelled (the region's policy).
    pub cancel_deadline: LogTime,
    /// The referral the seat serves.
    pub referral: Option<ReferralId>,
    /// Until when the patient may not book online, if blocked now.
    pub blocked_until: Option<LogTime>,
}

/// A joint consultation with its doctors and slots (parallel, in seat order).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsultInfo {
    pub consult: JointConsult,
    pub doctors: Vec<DoctorId>,
    pub slots: Vec<SlotId>,
}

/// A slot search (`FindSlots`): `None` fields mean any.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotSearch {
    pub doctor: Option<DoctorId>,
    pub hospital: Option<HospitalId>,
    pub specialty: Option<Specialty>,
    /// Slots starting in `[from, to)`.
    pub from: LogTime,
    pub to: LogTime,
    pub mode: Option<Mode>,
    pub channel: Channel,
    pub limit: usize,
}

/// A patient's seats and bed holds the engine still keeps (resolved ones until pruned),
/// newest first, at most `limit` of all together; `more` when some were left out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatientBookings {
    pub seats: Vec<SeatInfo>,
    pub beds: Vec<(BedHold, HospitalId)>,
    pub more: bool,
}

/// Whose waitlist entries: one doctor's queue (head first), or one patient's entries
/// across doctors (by doctor).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WaitlistQuery {
    Doctor(DoctorId),
    Patient(PatientRef),
}

/// Waitlist entries, each with its doctor and its place in that doctor's queue (0: head).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitlistInfo {
    pub entries: Vec<(DoctorId, u32, WaitEntry)>,
    pub more: bool,
}

impl Engine {
    pub(crate) fn seat_info(&self, id: HoldId) -> Option<SeatInfo> {
        let slots = self.slots();
        let seat = slots.seat(id)?.clone();
        let slot = slots.slot(seat.slot)?;
        let hospital = self.doctor(seat.doctor)?.hospital;
        let deadline_ms = u64::from(self.policy().cancel_deadline_minutes) * MS_PER_MINUTE;
        Some(SeatInfo {
            hospital,
            start: slot.spec.start,
            mode: slot.spec.mode,
            cancel_deadline: slot.spec.start.minus_ms(deadline_ms),
            referral: self.referrals().for_hold(id),
            blocked_until: slots.blocked(seat.patient, self.now()),
            seat,
        })
    }

    /// Slots with their held and booked seats (one scan of the seats when any is taken).
    pub(crate) fn slot_infos(&self, ids: Vec<SlotId>) -> Vec<SlotInfo> {
        let slots = self.slots();
        let mut out: Vec<SlotInfo> = ids
            .iter()
            .filter_map(|id| {
                let slot = slots.slot(*id)?.clone();
                let doctor = self.doctor(slot.doctor)?;
                Some(SlotInfo {
                    hospital: doctor.hospital,
                    specialty: doctor.specialties.first().copied(),
                    held: 0,
                    booked: 0,
                    slot,
                })
            })
            .collect();
        if out.iter().any(|s| s.slot.taken() > 0) {
            let wanted: BTreeSet<SlotId> = out.iter().map(|s| s.slot.id).collect();
            let mut counts = BTreeMap::<SlotId, (u32, u32)>::new();
            for seat in slots.seats().filter(|s| wanted.contains(&s.slot)) {
                let c = counts.entry(seat.slot).or_default();
                match seat.state {
                    SeatState::Held => c.0 += 1,
                    SeatState::Booked { .. } => c.1 += 1,
                    _ => {}
                }
            }
            for s in &mut out {
                (s.held, s.booked) = counts.get(&s.slot.id).copied().unwrap_or_default();
            }
        }
        out
    }

    pub(crate) fn consult_info(&self, id: ConsultId) -> Option<ConsultInfo> {
        let slots = self.slots();
        let consult = slots.consult(id)?.clone();
        let seats: Vec<&SlotHold> = consult
            .seats
            .iter()
            .filter_map(|s| slots.seat(*s))
            .collect();
        Some(ConsultInfo {
            doctors: seats.iter().map(|s| s.doctor).collect(),
            slots: seats.iter().map(|s| s.slot).collect(),
            consult,
        })
    }

    pub(crate) fn find_slots(&self, q: &SlotSearch) -> Vec<SlotInfo> {
        let from = q.from.max(LogTime(self.now().0.saturating_add(1)));
        let doctors: Vec<DoctorId> = match q.doctor {
            Some(d) => vec![d],
            None => self.doctors().map(|d| d.id).collect(),
        };
        let mut found: Vec<(LogTime, SlotId)> = Vec::new();
        for d in doctors {
            let Some(doc) = self.doctor(d) else {
                continue;
            };
            if q.hospital.is_some_and(|h| h != doc.hospital)
                || q.specialty.is_some_and(|s| !doc.specialties.contains(&s))
            {
                continue;
            }
            let open = self
                .slots()
                .doctor_slots(d, from, q.to)
                .filter(|s| q.mode.is_none_or(|m| m == s.spec.mode))
                .filter(|s| s.open_seats(q.channel) > 0)
                .take(q.limit);
            found.extend(open.map(|s| (s.spec.start, s.id)));
        }
        found.sort();
        found.truncate(q.limit);
        self.slot_infos(found.into_iter().map(|(_, id)| id).collect())
    }

    /// A patient's seats and bed holds, newest (highest id) first. Scans the retained
    /// records; the answer holds at most `limit` (capped at `PATIENT_RECORDS_MAX`).
    pub(crate) fn patient_bookings(&self, patient: PatientRef, limit: usize) -> PatientBookings {
        let limit = limit.min(PATIENT_RECORDS_MAX);
        let seats = self.slots().seats().filter(|s| s.patient == patient);
        let beds = self.beds().holds_of(patient);
        let mut ids: Vec<(HoldId, bool)> = seats
            .map(|s| (s.id, true))
            .chain(beds.map(|h| (h.id, false)))
            .collect();
        ids.sort_by(|a, b| b.cmp(a));
        let mut out = PatientBookings {
            more: ids.len() > limit,
            ..PatientBookings::default()
        };
        for (id, is_seat) in ids.into_iter().take(limit) {
            if is_seat {
                out.seats.extend(self.seat_info(id));
            } else {
                out.beds.extend(self.bed_hold(id));
            }
        }
        out
    }

    /// Waitlist entries of a doctor (`None` if unknown) or of a patient, at most
    /// `PATIENT_RECORDS_MAX`.
    pub(crate) fn waitlist_info(&self, q: &WaitlistQuery) -> Option<WaitlistInfo> {
        let mut out = WaitlistInfo::default();
        let mut push = |doctor: DoctorId, place: usize, e: &WaitEntry| {
            if out.entries.len() == PATIENT_RECORDS_MAX {
                out.more = true;
                return;
            }
            out.entries.push((doctor, place as u32, e.clone()));
        };
        match *q {
            WaitlistQuery::Doctor(d) => {
                self.doctor(d)?;
                for (place, e) in self.slots().waitlist(d).enumerate() {
                    push(d, place, e);
                }
            }
            WaitlistQuery::Patient(p) => {
                for d in self.doctors() {
                    let mine = self.slots().waitlist(d.id).enumerate();
                    for (place, e) in mine.filter(|(_, e)| e.patient == p) {
                        push(d.id, place, e);
                    }
                }
            }
        }
        Some(out)
    }
}
