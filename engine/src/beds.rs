//! Wards, beds and bed holds (预留床位).
//!
//! A bed is free, held, occupied, to-clean or blocked. Physical beds are not admissible beds:
//! a ward admits while its held plus occupied beds stay below its staffed count *and* a free,
//! unblocked bed exists. A hold is a two-phase reservation in the manner of TigerBeetle's
//! pending transfers: pending, then exactly one of confirmed (admitted), released or expired.

use crate::cow_map::CowMap;
use crate::error::Rejection;
use crate::events::{Event, Pending};
use crate::hashing::StableMap;
use crate::ids::*;
use crate::limits::RESOLVED_BED_HOLDS_MAX;
use crate::region::{Equipment, Sex, Ward, WardKind};
use crate::shard_map::ShardMap;
use crate::time::LogTime;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Why a bed is out of use.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockReason {
    Isolation,
    Maintenance,
    NoStaff,
}

/// The state of one physical bed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BedState {
    Free,
    Held { hold: HoldId },
    Occupied { patient: PatientRef, since: LogTime },
    ToClean,
    Blocked { reason: BlockReason },
}

impl BedState {
    /// The state's name for messages and the change feed.
    pub fn name(&self) -> &'static str {
        match self {
            BedState::Free => "free",
            BedState::Held { .. } => "held",
            BedState::Occupied { .. } => "occupied",
            BedState::ToClean => "to_clean",
            BedState::Blocked { .. } => "blocked",
        }
    }
}

/// A physical bed.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Bed {
    pub id: BedId,
    pub ward: WardId,
    pub state: BedState,
}

/// Where a hold stands. `Pending` resolves exactly once into one of the others.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldState {
    Pending,
    Confirmed { at: LogTime },
    Released { at: LogTime },
    Expired { at: LogTime },
}

impl HoldState {
    /// The state's name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            HoldState::Pending => "pending",
            HoldState::Confirmed { .. } => "confirmed",
            HoldState::Released { .. } => "released",
            HoldState::Expired { .. } => "expired",
        }
    }

    /// When the hold was resolved, if it was.
    pub fn resolved_at(&self) -> Option<LogTime> {
        match *self {
            HoldState::Pending => None,
            HoldState::Confirmed { at }
            | HoldState::Released { at }
            | HoldState::Expired { at } => Some(at),
        }
    }
}

/// A bed held for an incoming patient.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct BedHold {
    pub id: HoldId,
    pub bed: BedId,
    pub ward: WardId,
    pub patient: PatientRef,
    pub created_at: LogTime,
    pub expires_at: LogTime,
    pub state: HoldState,
}

/// What a bed request needs from a ward.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default, Serialize, Deserialize)]
pub struct BedNeeds {
    pub kind: Option<WardKind>,
    pub sex: Option<Sex>,
    pub equipment: Vec<Equipment>,
}

impl BedNeeds {
    /// Whether `ward` meets these needs.
    pub fn met_by(&self, ward: &Ward) -> bool {
        self.kind.is_none_or(|k| k == ward.kind)
            && ward.sex.admits(self.sex)
            && self.equipment.iter().all(|e| ward.equipment.contains(e))
    }
}

/// Counts of one ward's beds, for availability queries. They answer what a hold would do:
/// `free` counts only beds a `HoldBed` could take now, and a free bed beyond the ward's
/// staffed capacity counts as `blocked` (no staff), also shown apart as `unstaffed`; so
/// `free + held + occupied + to_clean + blocked = physical`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct WardCounts {
    pub physical: u32,
    pub staffed: u32,
    /// Beds that can be held now: free beds, bounded by staffed capacity (= `admissible`).
    pub free: u32,
    pub held: u32,
    pub occupied: u32,
    pub to_clean: u32,
    /// Blocked beds plus the `unstaffed` free ones.
    pub blocked: u32,
    /// Beds that can be held now: free beds, bounded by staffed capacity.
    pub admissible: u32,
    /// Free beds that cannot be held because the ward is at its staffed capacity.
    pub unstaffed: u32,
}

/// All wards, beds and bed holds of the region.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BedBook {
    pub(crate) wards: BTreeMap<WardId, Ward>,
    /// Copy-on-write chunks (`cow_map`), so a snapshot image of 8 M beds is cheap.
    pub(crate) beds: CowMap<BedId, Bed>,
    /// Holds by id: a hash map because hold ids are looked up on every confirm and release
    /// (an ordered map of ~10^5 retained holds was a measured hot spot), in shards so it
    /// never rehashes 10^6 holds at once (`shard_map`); sorted on the wire.
    pub(crate) holds: ShardMap<HoldId, BedHold>,
    /// Pending holds by expiry.
    pub(crate) expiries: BTreeSet<(LogTime, HoldId)>,
    /// Resolved holds by resolution time, for pruning.
    pub(crate) resolved: BTreeSet<(LogTime, HoldId)>,
    #[serde(skip)]
    index: BedIndex,
    /// The change feed's events of the current command (`events`).
    #[serde(skip)]
    pub(crate) events: Pending,
}

/// Derived per-ward indexes, rebuilt after a restore; one map so that a hold looks a ward up
/// once (separate maps were a measured hot spot).
#[derive(Clone, Debug, Default)]
struct BedIndex {
    wards: StableMap<WardId, WardIndex>,
}

#[derive(Clone, Debug, Default)]
struct WardIndex {
    /// The ward's staffed beds (a copy of `Ward::staffed_beds`, so a hold needs one lookup).
    staffed: u32,
    /// Free beds, lowest id first.
    free: BTreeSet<BedId>,
    /// Beds held or occupied.
    in_use: u32,
    /// Physical beds, so per-ward queries never scan the region.
    all: BTreeSet<BedId>,
}

impl WardIndex {
    fn admissible(&self) -> u32 {
        (self.free.len() as u32).min(self.staffed.saturating_sub(self.in_use))
    }
}

impl PartialEq for BedBook {
    fn eq(&self, o: &Self) -> bool {
        self.wards == o.wards
            && self.beds == o.beds
            && self.holds == o.holds
            && self.expiries == o.expiries
            && self.resolved == o.resolved
    }
}

impl BedBook {
    /// A copy of the canonical records for a snapshot image: the beds' chunks are shared
    /// (`CowMap`), the derived indexes left out (an image is encoded, never applied to).
    pub(crate) fn image(&self) -> BedBook {
        BedBook {
            wards: self.wards.clone(),
            beds: self.beds.clone(),
            holds: self.holds.clone(),
            expiries: self.expiries.clone(),
            resolved: self.resolved.clone(),
            index: BedIndex::default(),
            events: Pending::default(),
        }
    }

    /// Rebuilds the derived indexes from the canonical records.
    pub(crate) fn rebuild(&mut self) {
        let mut index = BedIndex::default();
        for w in self.wards.values() {
            let ix = WardIndex {
                staffed: w.staffed_beds,
                ..WardIndex::default()
            };
            index.wards.insert(w.id, ix);
        }
        for bed in self.beds.values() {
            let ix = index.wards.entry(bed.ward).or_default();
            ix.all.insert(bed.id);
            match bed.state {
                BedState::Free => {
                    ix.free.insert(bed.id);
                }
                BedState::Held { .. } | BedState::Occupied { .. } => ix.in_use += 1,
                BedState::ToClean | BedState::Blocked { .. } => {}
            }
        }
        self.index = index;
    }

    /// The ward record.
    pub fn ward(&self, id: WardId) -> Option<&Ward> {
        self.wards.get(&id)
    }

    /// Every ward, by id.
    pub fn wards(&self) -> impl Iterator<Item = &Ward> {
        self.wards.values()
    }

    /// The bed record.
    pub fn bed(&self, id: BedId) -> Option<&Bed> {
        self.beds.get(&id)
    }

    /// The hold record (pending or resolved and not yet pruned).
    pub fn hold(&self, id: HoldId) -> Option<&BedHold> {
        self.holds.get(&id)
    }

    /// Pending holds, by id.
    pub fn pending_holds(&self) -> impl Iterator<Item = &BedHold> {
        self.expiries.iter().filter_map(|(_, h)| self.holds.get(h))
    }

    /// The bed in state `occupied` (an `Occupied` state: patient and since), searched in
    /// the wards of `hospital` (every ward when `None`).
    pub fn occupied_bed(&self, occupied: BedState, hospital: Option<HospitalId>) -> Option<BedId> {
        self.wards
            .values()
            .filter(|w| hospital.is_none_or(|h| w.hospital == h))
            .filter_map(|w| self.index.wards.get(&w.id))
            .flat_map(|ix| ix.all.iter())
            .find(|id| self.beds.get(id).is_some_and(|b| b.state == occupied))
            .copied()
    }

    /// Beds of a ward that are held or occupied.
    pub fn in_use(&self, ward: WardId) -> u32 {
        self.index.wards.get(&ward).map_or(0, |ix| ix.in_use)
    }

    /// Beds that could be held in the ward right now.
    pub fn admissible(&self, ward: WardId) -> u32 {
        self.index.wards.get(&ward).map_or(0, WardIndex::admissible)
    }

    /// Counts of the ward's beds by state.
    pub fn counts(&self, ward: WardId) -> Option<WardCounts> {
        let w = self.wards.get(&ward)?;
        let mut c = WardCounts {
            staffed: w.staffed_beds,
            ..WardCounts::default()
        };
        let ids = self
            .index
            .wards
            .get(&ward)
            .map(|ix| &ix.all)
            .into_iter()
            .flatten();
        for bed in ids.filter_map(|id| self.beds.get(id)) {
            c.physical += 1;
            match bed.state {
                BedState::Free => c.free += 1,
                BedState::Held { .. } => c.held += 1,
                BedState::Occupied { .. } => c.occupied += 1,
                BedState::ToClean => c.to_clean += 1,
                BedState::Blocked { .. } => c.blocked += 1,
            }
        }
        c.admissible = self.admissible(ward);
        // `admissible` never exceeds the free beds; saturating keeps the read total anyway.
        c.unstaffed = c.free.saturating_sub(c.admissible);
        c.free = c.admissible;
        c.blocked = c.blocked.saturating_add(c.unstaffed);
        Some(c)
    }

    /// The ward's physical beds, by id (empty for an unknown ward).
    pub fn ward_beds(&self, ward: WardId) -> impl Iterator<Item = &Bed> {
        let ids = self.index.wards.get(&ward).map(|ix| &ix.all);
        ids.into_iter().flatten().filter_map(|id| self.beds.get(id))
    }

    /// A patient's bed holds the book still keeps (pending and not yet pruned), any order.
    pub fn holds_of(&self, patient: PatientRef) -> impl Iterator<Item = &BedHold> {
        self.holds.values().filter(move |h| h.patient == patient)
    }

    // ---- admin ----

    /// Adds or replaces a ward record (its beds are kept).
    pub(crate) fn upsert_ward(&mut self, ward: Ward) {
        let id = ward.id;
        self.index.wards.entry(id).or_default().staffed = ward.staffed_beds;
        self.wards.insert(id, ward);
    }

    /// Number of physical beds in the ward.
    pub fn beds_in_ward(&self, ward: WardId) -> usize {
        self.index.wards.get(&ward).map_or(0, |ix| ix.all.len())
    }

    /// Adds free beds with the given ids to a ward (ids checked by the caller).
    pub(crate) fn add_beds(&mut self, ward: WardId, ids: impl Iterator<Item = BedId>) {
        let ix = self.index.wards.entry(ward).or_default();
        for id in ids {
            ix.free.insert(id);
            ix.all.insert(id);
            self.beds.insert(
                id,
                Bed {
                    id,
                    ward,
                    state: BedState::Free,
                },
            );
        }
    }

    /// Blocks a free or to-clean bed.
    pub(crate) fn block(&mut self, bed: BedId, reason: BlockReason) -> Result<(), Rejection> {
        let b = self.beds.get(&bed).ok_or(Rejection::UnknownBed(bed))?;
        match b.state {
            BedState::Free | BedState::ToClean | BedState::Blocked { .. } => {}
            other => return Err(invalid_transition("bed", bed, other.name(), "block")),
        }
        let ward = b.ward;
        self.set_state(bed, ward, BedState::Blocked { reason });
        self.bed_changed(bed, ward, BedState::Blocked { reason });
        Ok(())
    }

    /// Returns a blocked or cleaned bed to free.
    pub(crate) fn make_free(&mut self, bed: BedId, from_blocked: bool) -> Result<(), Rejection> {
        let b = self.beds.get(&bed).ok_or(Rejection::UnknownBed(bed))?;
        let ok = match b.state {
            BedState::Blocked { .. } => from_blocked,
            BedState::ToClean => !from_blocked,
            _ => false,
        };
        if !ok {
            let action = if from_blocked {
                "unblock"
            } else {
                "mark clean"
            };
            return Err(invalid_transition("bed", bed, b.state.name(), action));
        }
        let ward = b.ward;
        self.set_state(bed, ward, BedState::Free);
        self.bed_changed(bed, ward, BedState::Free);
        Ok(())
    }

    /// Discharges the patient of an occupied bed; the bed goes to cleaning.
    pub(crate) fn discharge(&mut self, bed: BedId) -> Result<(), Rejection> {
        let b = self.beds.get(&bed).ok_or(Rejection::UnknownBed(bed))?;
        if !matches!(b.state, BedState::Occupied { .. }) {
            return Err(invalid_transition("bed", bed, b.state.name(), "discharge"));
        }
        let ward = b.ward;
        self.set_state(bed, ward, BedState::ToClean);
        self.bed_changed(bed, ward, BedState::ToClean);
        Ok(())
    }

    // ---- holds ----

    /// Chooses the bed a ward-level hold would take: the lowest-numbered free bed.
    pub fn pick_bed(&self, ward: WardId) -> Result<BedId, Rejection> {
        let Some(ix) = self.index.wards.get(&ward) else {
            return Err(Rejection::UnknownWard(ward));
        };
        if ix.admissible() == 0 {
            return Err(Rejection::NoCapacity(format!(
                "ward {ward} has no admissible bed"
            )));
        }
        ix.free
            .first()
            .copied()
            .ok_or_else(|| Rejection::NoCapacity(format!("ward {ward} has no free bed")))
    }

    /// Checks that `bed` can be held now.
    pub fn check_holdable(&self, bed: BedId) -> Result<WardId, Rejection> {
        let b = self.beds.get(&bed).ok_or(Rejection::UnknownBed(bed))?;
        if b.state != BedState::Free {
            return Err(Rejection::NoCapacity(format!(
                "bed {bed} is {}",
                b.state.name()
            )));
        }
        if self.admissible(b.ward) == 0 {
            return Err(Rejection::NoCapacity(format!(
                "ward {} is at its staffed capacity",
                b.ward
            )));
        }
        Ok(b.ward)
    }

    /// Holds a bed that `pick_bed` or `check_holdable` accepted. The bed's state is checked
    /// again on the lookup that changes it, so a caller's mistake is an error, never a
    /// double booking.
    pub(crate) fn place_hold(
        &mut self,
        id: HoldId,
        bed: BedId,
        patient: PatientRef,
        now: LogTime,
        expires_at: LogTime,
    ) -> Result<BedHold, Rejection> {
        let b = self.beds.get(&bed).ok_or(Rejection::UnknownBed(bed))?;
        if b.state != BedState::Free {
            return Err(Rejection::NoCapacity(format!(
                "bed {bed} is {}",
                b.state.name()
            )));
        }
        let ward = b.ward;
        let hold = BedHold {
            id,
            bed,
            ward,
            patient,
            created_at: now,
            expires_at,
            state: HoldState::Pending,
        };
        self.set_state(bed, ward, BedState::Held { hold: id });
        self.holds.insert(id, hold.clone());
        self.expiries.insert((expires_at, id));
        let hospital = self.hospital_of(ward);
        self.events.push(Event::BedHoldPlaced {
            hold: id,
            bed,
            ward,
            hospital,
            patient,
            expires_at,
        });
        Ok(hold)
    }

    /// Checks that a hold is pending and not past its expiry at `now`.
    pub fn check_pending(&self, id: HoldId, now: LogTime) -> Result<&BedHold, Rejection> {
        let h = self.holds.get(&id).ok_or(Rejection::UnknownHold(id))?;
        if h.state != HoldState::Pending {
            return Err(Rejection::AlreadyResolved {
                what: format!("hold {id}"),
                state: h.state.name().to_string(),
            });
        }
        if h.expires_at <= now {
            return Err(Rejection::Expired {
                hold: id,
                expired_at: h.expires_at,
            });
        }
        Ok(h)
    }

    /// Resolves a pending hold: confirmed (the bed becomes occupied), released or expired
    /// (the bed becomes free). The caller has checked the hold is pending.
    pub(crate) fn resolve(&mut self, id: HoldId, state: HoldState) -> Option<BedHold> {
        let h = self.holds.get_mut(&id)?;
        if h.state != HoldState::Pending {
            return None;
        }
        let at = state.resolved_at()?;
        h.state = state;
        let (bed, ward, patient, expires_at) = (h.bed, h.ward, h.patient, h.expires_at);
        let out = h.clone();
        self.expiries.remove(&(expires_at, id));
        self.resolved.insert((at, id));
        self.forget_resolved_beyond(RESOLVED_BED_HOLDS_MAX);
        let bed_state = match state {
            HoldState::Confirmed { at } => BedState::Occupied { patient, since: at },
            _ => BedState::Free,
        };
        self.set_state(bed, ward, bed_state);
        let hospital = self.hospital_of(ward);
        self.events.push(Event::BedHoldResolved {
            hold: id,
            bed,
            ward,
            hospital,
            patient,
            state,
        });
        Some(out)
    }

    /// Forgets the oldest resolved holds while more than `max` are kept.
    fn forget_resolved_beyond(&mut self, max: usize) {
        while self.resolved.len() > max {
            let Some((_, oldest)) = self.resolved.pop_first() else {
                break;
            };
            self.holds.remove(&oldest);
        }
    }

    /// Pending holds whose expiry is at or before `now`, oldest first, at most `max`.
    pub(crate) fn due(&self, now: LogTime, max: usize) -> Vec<HoldId> {
        crate::time::due(&self.expiries, now, max)
    }

    /// Forgets resolved holds resolved at or before `cutoff`, at most `max`.
    pub(crate) fn prune(&mut self, cutoff: LogTime, max: usize) -> usize {
        let old = crate::time::drain_due(&mut self.resolved, cutoff, max);
        for id in &old {
            self.holds.remove(id);
        }
        old.len()
    }

    /// Changes a bed's state and keeps the per-ward indexes in step.
    /// The hospital of a ward (0 for a ward the book does not know, which a caller that
    /// checked the bed never passes).
    fn hospital_of(&self, ward: WardId) -> HospitalId {
        self.wards.get(&ward).map_or(HospitalId(0), |w| w.hospital)
    }

    /// Emits a bed's change of state outside a hold (discharge, clean, block, unblock).
    fn bed_changed(&mut self, bed: BedId, ward: WardId, state: BedState) {
        let hospital = self.hospital_of(ward);
        self.events.push(Event::BedChanged {
            bed,
            ward,
            hospital,
            state,
        });
    }

    fn set_state(&mut self, bed: BedId, ward: WardId, state: BedState) {
        let Some(b) = self.beds.get_mut(&bed) else {
            return;
        };
        let was_in_use = matches!(b.state, BedState::Held { .. } | BedState::Occupied { .. });
        let was_free = b.state == BedState::Free;
        b.state = state;
        let is_in_use = matches!(state, BedState::Held { .. } | BedState::Occupied { .. });
        let is_free = state == BedState::Free;
        let ix = self.index.wards.entry(ward).or_default();
        if was_free && !is_free {
            ix.free.remove(&bed);
        } else if !was_free && is_free {
            ix.free.insert(bed);
        }
        if was_in_use && !is_in_use {
            ix.in_use = ix.in_use.saturating_sub(1);
        } else if !was_in_use && is_in_use {
            ix.in_use += 1;
        }
    }
}

pub(crate) fn invalid_transition(
    what: &str,
    id: impl std::fmt::Display,
    state: &str,
    action: &str,
) -> Rejection {
    Rejection::InvalidTransition {
        what: format!("{what} {id}"),
        state: state.to_string(),
        action: action.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::{SexPolicy, Specialty};

    #[test]
    fn resolved_holds_beyond_the_cap_are_forgotten_oldest_first() {
        let mut book = BedBook::default();
        let ward = WardId(1);
        book.upsert_ward(Ward {
            id: ward,
            hospital: HospitalId(1),
            name: "w".into(),
            specialty: Specialty::Cardiology,
            kind: WardKind::General,
            sex: SexPolicy::Mixed,
            equipment: Vec::new(),
            staffed_beds: 4,
        });
        book.add_beds(ward, (1..=4).map(BedId));
        for i in 1..=8u64 {
            let bed = BedId(1 + (i % 4) as u32);
            let at = LogTime(i * 10);
            book.place_hold(
                HoldId(i),
                bed,
                PatientRef(u128::from(i)),
                at,
                at.plus_ms(1_000),
            )
            .expect("a free bed");
            book.resolve(HoldId(i), HoldState::Released { at: at.plus_ms(1) })
                .expect("a pending hold");
        }
        assert_eq!(book.holds.iter().count(), 8);
        book.forget_resolved_beyond(3);
        assert_eq!(book.resolved.len(), 3);
        let kept: Vec<u64> = (1..=8)
            .filter(|i| book.hold(HoldId(*i)).is_some())
            .collect();
        assert_eq!(kept, [6, 7, 8]);
    }
}
