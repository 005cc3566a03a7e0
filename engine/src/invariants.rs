//! The engine's structural invariants, checkable on any state: what every reachable state
//! satisfies, whatever commands (accepted or refused) led to it.
//!
//! `Engine::check_invariants` is what the totality property tests and the fuzz target
//! (`engine/fuzz`, `docs/fuzzing.md`) run after every step; the fault simulator runs its own
//! cheaper subset on every replica. It cross-checks every index against the records it
//! indexes, every counter against what it counts and every id against the counter that hands
//! ids out, so a handler that mutates half-way or forgets an index is caught at the step
//! that did it. It is a read: it never changes the engine.

use crate::beds::{BedState, HoldState};
use crate::engine::Engine;
use crate::ids::*;
use crate::limits::WAITLIST_PER_DOCTOR_MAX;
use crate::region::Channel;
use crate::slots::SeatState;
use crate::time::LogTime;
use std::collections::{BTreeMap, BTreeSet};

/// A broken invariant, as a sentence naming the records involved.
type Violation = String;

/// Fails with a formatted violation unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

impl Engine {
    /// Checks every structural invariant; the first broken one is returned as a sentence.
    /// Linear in the size of the state: meant for tests, fuzzing and offline checks.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.check_bed_invariants()?;
        self.check_bed_indexes()?;
        self.check_slot_invariants()?;
        self.check_seat_invariants()?;
        self.check_consult_invariants()?;
        self.check_referral_invariants()?;
        self.check_region_invariants()?;
        self.check_remote_invariants()?;
        Ok(())
    }

    /// Cross-region beds: a held or confirming one knows its hold in the destination and
    /// serves a matched referral; grants and their time index name the same steps.
    fn check_remote_invariants(&self) -> Result<(), Violation> {
        use crate::remote::RemoteStage as R;
        for (id, b) in &self.remote.beds {
            ensure!(b.attempt >= 1, "remote bed of referral {id}: attempt 0");
            if matches!(b.stage, R::Held | R::Confirming) {
                ensure!(
                    b.hold.is_some(),
                    "remote bed of referral {id} {:?} without a hold",
                    b.stage
                );
                let state = self.referrals.get(*id).map(|r| r.state);
                ensure!(
                    state == Some(crate::referrals::ReferralState::Matched),
                    "remote bed of referral {id} {:?} but the referral is {state:?}",
                    b.stage
                );
            }
        }
        let g = &self.remote;
        ensure!(
            g.granted.len() == g.granted_at.len()
                && g.granted_at.iter().all(|(_, s)| g.granted.contains_key(s)),
            "granted steps and their time index differ"
        );
        Ok(())
    }

    /// Beds: each in a known ward, a held one naming a pending hold on it.
    fn check_bed_invariants(&self) -> Result<(), Violation> {
        let b = &self.beds;
        for bed in b.beds.values() {
            ensure!(
                b.wards.contains_key(&bed.ward),
                "bed {} in unknown ward {}",
                bed.id,
                bed.ward
            );
            ensure!(
                bed.id.0 < self.counters.next_bed,
                "bed {} not below next_bed",
                bed.id
            );
            if let BedState::Held { hold } = bed.state {
                let h = b.holds.get(&hold);
                ensure!(
                    h.is_some_and(|h| h.state == HoldState::Pending && h.bed == bed.id),
                    "bed {} held by {hold}, which is not a pending hold on it: {h:?}",
                    bed.id
                );
            }
        }
        self.check_bed_holds()
    }

    /// Bed holds: each on a bed of its ward, a pending one holding its bed and listed by
    /// expiry, a resolved one listed for pruning; the indexes list nothing else.
    fn check_bed_holds(&self) -> Result<(), Violation> {
        let b = &self.beds;
        let mut pending = 0usize;
        for (id, h) in b.holds.iter() {
            ensure!(*id == h.id, "bed hold keyed {id} is {}", h.id);
            ensure!(
                h.id.0 < self.counters.next_hold,
                "bed hold {id} not below next_hold"
            );
            ensure!(
                h.created_at <= self.now,
                "bed hold {id} created in the future"
            );
            let bed = b.beds.get(&h.bed);
            ensure!(
                bed.is_some_and(|x| x.ward == h.ward),
                "bed hold {id}: bed {} not in ward {}",
                h.bed,
                h.ward
            );
            match h.state.resolved_at() {
                None => {
                    pending += 1;
                    ensure!(
                        bed.is_some_and(|x| x.state == BedState::Held { hold: *id }),
                        "pending bed hold {id} but bed {} is {:?}",
                        h.bed,
                        bed.map(|x| x.state)
                    );
                    ensure!(
                        b.expiries.contains(&(h.expires_at, *id)),
                        "pending bed hold {id} missing from expiries"
                    );
                }
                Some(at) => {
                    ensure!(at <= self.now, "bed hold {id} resolved in the future");
                    ensure!(
                        b.resolved.contains(&(at, *id)),
                        "resolved bed hold {id} missing from the pruning index"
                    );
                }
            }
        }
        ensure!(
            b.expiries.len() == pending,
            "bed expiries index has {} entries for {pending} pending holds",
            b.expiries.len()
        );
        for (at, id) in &b.resolved {
            let h = b.holds.get(id);
            ensure!(
                h.is_some_and(|h| h.state.resolved_at() == Some(*at)),
                "pruning index names bed hold {id} at {at}: {h:?}"
            );
        }
        Ok(())
    }

    /// The bed book's derived per-ward counts equal a rebuild from the records.
    fn check_bed_indexes(&self) -> Result<(), Violation> {
        let mut fresh = self.beds.clone();
        fresh.rebuild();
        for w in self.beds.wards.keys() {
            let (a, f) = (self.beds.admissible(*w), fresh.admissible(*w));
            ensure!(a == f, "ward {w}: admissible {a}, rebuilt {f}");
            let (a, f) = (self.beds.in_use(*w), fresh.in_use(*w));
            ensure!(a == f, "ward {w}: in use {a}, rebuilt {f}");
            let (a, f) = (self.beds.beds_in_ward(*w), fresh.beds_in_ward(*w));
            ensure!(a == f, "ward {w}: {a} beds, rebuilt {f}");
            let (a, f) = (self.beds.pick_bed(*w).ok(), fresh.pick_bed(*w).ok());
            ensure!(a == f, "ward {w}: picks bed {a:?}, rebuilt {f:?}");
        }
        Ok(())
    }

    /// Slots: the per-doctor index matches the slots, and the taken counters match the live
    /// seats per channel, within capacity, overbooking and the public quota.
    fn check_slot_invariants(&self) -> Result<(), Violation> {
        let s = &self.slots;
        let indexed: BTreeSet<(DoctorId, LogTime, SlotId)> = s
            .slots
            .values()
            .filter(|x| x.withdrawn_at.is_none())
            .map(|x| (x.doctor, x.spec.start, x.id))
            .collect();
        ensure!(
            indexed == s.by_doctor,
            "by_doctor index differs from the slots"
        );
        ensure!(
            s.derived_matches_rebuild(),
            "a derived slot index (open, ends, seats by slot, rolling) differs from a rebuild"
        );
        let mut live: BTreeMap<SlotId, (u16, u16)> = BTreeMap::new();
        for seat in s.seats.values().filter(|x| x.state.takes_seat()) {
            let c = live.entry(seat.slot).or_default();
            match seat.channel {
                Channel::Public => c.0 = c.0.saturating_add(1),
                Channel::Referral => c.1 = c.1.saturating_add(1),
            }
        }
        for (id, slot) in s.slots.iter() {
            ensure!(*id == slot.id, "slot keyed {id} is {}", slot.id);
            ensure!(
                id.0 < self.counters.next_slot,
                "slot {id} not below next_slot"
            );
            ensure!(
                self.doctors.contains_key(&slot.doctor),
                "slot {id} of unknown doctor {}",
                slot.doctor
            );
            let want = live.get(id).copied().unwrap_or_default();
            let got = (slot.taken_public, slot.taken_referral);
            ensure!(
                want == got,
                "slot {id}: live seats (public, referral) {want:?}, counters {got:?}"
            );
            ensure!(
                slot.withdrawn_at.is_none() || want == (0, 0),
                "withdrawn slot {id} keeps live seats {want:?}"
            );
            let spec = &slot.spec;
            let max = u32::from(spec.capacity) + u32::from(spec.overbook);
            ensure!(
                u32::from(slot.taken()) <= max,
                "slot {id}: {} taken > capacity + overbook {max}",
                slot.taken()
            );
            let public_cap = spec.capacity.saturating_sub(spec.referral_quota);
            ensure!(
                slot.taken_public <= public_cap,
                "slot {id}: {} public seats > public quota {public_cap}",
                slot.taken_public
            );
        }
        for slot in live.keys() {
            ensure!(
                s.slots.contains_key(slot),
                "live seat in unknown slot {slot}"
            );
        }
        for (doctor, list) in &s.waitlists {
            ensure!(!list.is_empty(), "empty waitlist kept for {doctor}");
            ensure!(
                list.len() <= WAITLIST_PER_DOCTOR_MAX,
                "waitlist of {doctor} over its limit"
            );
            let unique: BTreeSet<PatientRef> = list.iter().map(|e| e.patient).collect();
            ensure!(
                unique.len() == list.len(),
                "a patient waits twice for {doctor}"
            );
        }
        Ok(())
    }

    /// Seats: the expiry index holds exactly the held seats, the pruning index exactly the
    /// finished ones, and a seat belongs to its slot's doctor.
    fn check_seat_invariants(&self) -> Result<(), Violation> {
        let s = &self.slots;
        let mut held = 0usize;
        for (id, seat) in &s.seats {
            ensure!(*id == seat.id, "seat keyed {id} is {}", seat.id);
            ensure!(
                id.0 < self.counters.next_hold,
                "seat {id} not below next_hold"
            );
            ensure!(
                !self.beds.holds.contains_key(id),
                "hold id {id} is both a bed hold and a seat"
            );
            ensure!(
                seat.created_at <= self.now,
                "seat {id} created in the future"
            );
            let doctor = s.slots.get(&seat.slot).map(|x| x.doctor);
            ensure!(
                doctor == Some(seat.doctor),
                "seat {id} of {} in slot {} of {doctor:?}",
                seat.doctor,
                seat.slot
            );
            if let Some(c) = seat.consult {
                let jc = s.consults.get(&c);
                ensure!(
                    jc.is_some_and(|jc| jc.seats.contains(id)),
                    "seat {id} names consultation {c}, which does not list it"
                );
            }
            if seat.state == SeatState::Held {
                held += 1;
                ensure!(
                    s.expiries.contains(&(seat.expires_at, *id)),
                    "held seat {id} missing from expiries"
                );
            }
            if let Some(at) = finished_at(seat.state) {
                ensure!(at <= self.now, "seat {id} finished in the future");
                ensure!(
                    s.resolved.contains(&(at, *id)),
                    "finished seat {id} missing from the pruning index"
                );
            }
        }
        ensure!(
            s.expiries.len() == held,
            "seat expiries index has {} entries for {held} held seats",
            s.expiries.len()
        );
        for (at, id) in &s.resolved {
            let seat = s.seats.get(id);
            ensure!(
                seat.is_some_and(|x| finished_at(x.state) == Some(*at)),
                "pruning index names seat {id} at {at}: {seat:?}"
            );
        }
        Ok(())
    }

    /// Joint consultations: their seats exist (until pruned), share the consultation's
    /// expiry, and a pending consultation's seats are all held.
    fn check_consult_invariants(&self) -> Result<(), Violation> {
        let s = &self.slots;
        for (id, jc) in &s.consults {
            ensure!(*id == jc.id, "consultation keyed {id} is {}", jc.id);
            ensure!(
                id.0 < self.counters.next_consult,
                "consultation {id} not below next_consult"
            );
            ensure!(jc.start < jc.end, "consultation {id} has no common time");
            for h in &jc.seats {
                let Some(seat) = s.seats.get(h) else {
                    ensure!(
                        jc.state != HoldState::Pending,
                        "pending consultation {id} lost seat {h}"
                    );
                    continue;
                };
                ensure!(
                    seat.consult == Some(*id),
                    "consultation {id} lists seat {h} of {:?}",
                    seat.consult
                );
                ensure!(
                    seat.patient == jc.patient,
                    "consultation {id}: seat {h} for another patient"
                );
                if jc.state == HoldState::Pending {
                    ensure!(
                        seat.state == SeatState::Held,
                        "pending consultation {id}: seat {h} is {}",
                        seat.state.name()
                    );
                    ensure!(
                        seat.expires_at == jc.expires_at,
                        "consultation {id}: seat {h} expires apart"
                    );
                }
            }
        }
        Ok(())
    }

    /// Referrals: the deadline index holds exactly the open ones, the pruning index the
    /// closed ones, and the hold index exactly the holds of open referrals.
    fn check_referral_invariants(&self) -> Result<(), Violation> {
        let r = &self.referrals;
        let mut by_hold: BTreeMap<HoldId, ReferralId> = BTreeMap::new();
        let mut open = 0usize;
        for (id, x) in &r.referrals {
            ensure!(*id == x.id, "referral keyed {id} is {}", x.id);
            ensure!(
                id.0 < self.counters.next_referral,
                "referral {id} not below next_referral"
            );
            ensure!(
                x.created_at <= self.now,
                "referral {id} created in the future"
            );
            let last = x.history.last().map(|s| s.state);
            ensure!(
                last == Some(x.state),
                "referral {id} is {:?} but its history ends {last:?}",
                x.state
            );
            let ordered = x.history.windows(2).all(|w| w[0].at <= w[1].at);
            ensure!(ordered, "referral {id}: history goes back in time");
            if x.state.is_final() {
                let at = x.history.last().map(|s| s.at).unwrap_or_default();
                ensure!(
                    r.closed.contains(&(at, *id)),
                    "closed referral {id} missing from the pruning index"
                );
                continue;
            }
            open += 1;
            ensure!(
                r.deadlines.contains(&(x.deadline, *id)),
                "open referral {id} missing from deadlines"
            );
            for h in [x.slot_hold, x.bed_hold].into_iter().flatten() {
                ensure!(
                    by_hold.insert(h, *id).is_none(),
                    "hold {h} serves two referrals"
                );
            }
        }
        ensure!(
            r.deadlines.len() == open,
            "deadline index has {} entries for {open} open referrals",
            r.deadlines.len()
        );
        ensure!(
            by_hold == r.by_hold,
            "hold index differs from the open referrals' holds"
        );
        for (at, id) in &r.closed {
            let x = r.referrals.get(id);
            let closed_at = x
                .filter(|x| x.state.is_final())
                .and_then(|x| x.history.last());
            ensure!(
                closed_at.is_some_and(|s| s.at == *at),
                "pruning index names referral {id} at {at}"
            );
        }
        Ok(())
    }

    /// The region: records reference known records, and the derived reach equals a rebuild.
    fn check_region_invariants(&self) -> Result<(), Violation> {
        for w in self.beds.wards.values() {
            ensure!(
                self.hospitals.contains_key(&w.hospital),
                "ward {} of unknown hospital {}",
                w.id,
                w.hospital
            );
        }
        for d in self.doctors.values() {
            ensure!(
                self.hospitals.contains_key(&d.hospital),
                "doctor {} of unknown hospital {}",
                d.id,
                d.hospital
            );
        }
        for h in self.hospitals.values() {
            for a in &h.alliances {
                ensure!(
                    self.alliances.contains_key(a),
                    "hospital {} in unknown alliance {a}",
                    h.id
                );
            }
        }
        let mut fresh = self.graph.clone();
        fresh.rebuild(self.hospitals.keys().copied(), self.policy.reach_minutes);
        for h in self.hospitals.keys() {
            ensure!(
                self.graph.reach(*h) == fresh.reach(*h),
                "reach of {h} differs from a rebuild"
            );
        }
        Ok(())
    }
}

/// When a seat stopped counting for good (released, expired, cancelled, no-show).
fn finished_at(state: SeatState) -> Option<LogTime> {
    match state {
        SeatState::Released { at }
        | SeatState::Expired { at }
        | SeatState::Cancelled { at }
        | SeatState::NoShow { at }
        | SeatState::Withdrawn { at } => Some(at),
        SeatState::Held | SeatState::Booked { .. } => None,
    }
}
