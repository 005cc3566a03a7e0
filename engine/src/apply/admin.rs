//! Admin commands: import a region, add or update hospitals, wards, beds, doctors, roads,
//! referral paths and the policy.

use crate::command::Reply;
use crate::engine::Engine;
use crate::error::Rejection;
use crate::graph::ReferralKind;
use crate::ids::*;
use crate::limits::*;
use crate::region::{Alliance, Doctor, Hospital, Policy, Ward};
use crate::region_file::*;
use std::collections::BTreeSet;

impl Engine {
    pub(crate) fn import_region(&mut self, file: &RegionFile) -> Result<Reply, Rejection> {
        if !self.hospitals.is_empty() {
            return Err(Rejection::RegionAlreadyLoaded);
        }
        file.validate()?;
        let total_beds: u64 = file.wards.iter().map(|w| u64::from(w.beds)).sum();
        if total_beds > u64::from(u32::MAX / 2) {
            return Err(Rejection::invalid("wards", "too many beds"));
        }
        self.name = file.name.clone();
        self.policy = file.policy.clone();
        for a in &file.alliances {
            self.alliances.insert(a.id, a.clone());
        }
        for h in &file.hospitals {
            self.graph.set_memberships(h.id, &h.alliances);
            self.hospitals.insert(h.id, h.clone());
        }
        for entry in &file.wards {
            self.beds.upsert_ward(entry.ward.clone());
            self.add_bed_ids(entry.ward.id, entry.beds);
        }
        for d in &file.doctors {
            self.doctors.insert(d.id, d.clone());
        }
        for r in &file.roads {
            self.graph.set_road(r.a, r.b, Some(r.travel_minutes));
        }
        for p in &file.referral_paths {
            self.graph.set_referral(p.from, p.to, Some(p.kind));
        }
        self.rebuild_graph();
        Ok(Reply::RegionImported {
            hospitals: file.hospitals.len() as u32,
            wards: file.wards.len() as u32,
            beds: total_beds as u32,
            doctors: file.doctors.len() as u32,
        })
    }

    pub(crate) fn upsert_hospital(&mut self, h: &Hospital) -> Result<Reply, Rejection> {
        if !self.hospitals.contains_key(&h.id) && self.hospitals.len() >= HOSPITALS_MAX {
            return Err(Rejection::NoCapacity(format!(
                "region holds {HOSPITALS_MAX} hospitals"
            )));
        }
        let alliances: BTreeSet<AllianceId> = self.alliances.keys().copied().collect();
        validate_hospital(h, "hospital", &alliances)?;
        self.graph.set_memberships(h.id, &h.alliances);
        self.hospitals.insert(h.id, h.clone());
        self.rebuild_graph();
        Ok(Reply::Done)
    }

    pub(crate) fn upsert_alliance(&mut self, a: &Alliance) -> Result<Reply, Rejection> {
        crate::error::check_text("alliance.name", &a.name)?;
        self.alliances.insert(a.id, a.clone());
        Ok(Reply::Done)
    }

    pub(crate) fn upsert_ward(&mut self, w: &Ward) -> Result<Reply, Rejection> {
        if self.beds.ward(w.id).is_none() && self.beds.wards.len() >= WARDS_PER_REGION_MAX {
            return Err(Rejection::NoCapacity(format!(
                "region holds {WARDS_PER_REGION_MAX} wards"
            )));
        }
        validate_ward(w, "ward", &self.hospital_ids())?;
        if let Some(old) = self.beds.ward(w.id) {
            if old.hospital != w.hospital {
                return Err(Rejection::invalid(
                    "ward.hospital",
                    "a ward cannot move to another hospital",
                ));
            }
        }
        self.beds.upsert_ward(w.clone());
        Ok(Reply::Done)
    }

    pub(crate) fn add_beds(&mut self, ward: WardId, count: u32) -> Result<Reply, Rejection> {
        if self.beds.ward(ward).is_none() {
            return Err(Rejection::UnknownWard(ward));
        }
        if count == 0 || count > BEDS_PER_COMMAND_MAX {
            return Err(Rejection::invalid(
                "count",
                format!("must be 1 to {BEDS_PER_COMMAND_MAX}"),
            ));
        }
        if self.beds.beds.len().saturating_add(count as usize) > BEDS_PER_REGION_MAX {
            return Err(Rejection::NoCapacity(format!(
                "region holds {BEDS_PER_REGION_MAX} beds"
            )));
        }
        if self.beds.beds_in_ward(ward) + count as usize > BEDS_PER_WARD_MAX {
            return Err(Rejection::invalid(
                "count",
                format!("a ward holds at most {BEDS_PER_WARD_MAX} beds"),
            ));
        }
        let first = BedId(self.counters.next_bed);
        self.add_bed_ids(ward, count);
        Ok(Reply::BedsAdded { first, count })
    }

    fn add_bed_ids(&mut self, ward: WardId, count: u32) {
        let first = self.counters.next_bed;
        self.counters.next_bed = first.saturating_add(count);
        self.beds
            .add_beds(ward, (first..first.saturating_add(count)).map(BedId));
    }

    pub(crate) fn set_staffed_beds(
        &mut self,
        ward: WardId,
        staffed_beds: u32,
    ) -> Result<Reply, Rejection> {
        let Some(w) = self.beds.ward(ward) else {
            return Err(Rejection::UnknownWard(ward));
        };
        if staffed_beds as usize > BEDS_PER_WARD_MAX {
            return Err(Rejection::invalid(
                "staffed_beds",
                format!("at most {BEDS_PER_WARD_MAX}"),
            ));
        }
        let previous = w.staffed_beds;
        let mut w = w.clone();
        w.staffed_beds = staffed_beds;
        self.beds.upsert_ward(w);
        Ok(Reply::StaffedBedsSet {
            ward,
            staffed_beds,
            previous,
        })
    }

    pub(crate) fn upsert_doctor(&mut self, d: &Doctor) -> Result<Reply, Rejection> {
        if !self.doctors.contains_key(&d.id) && self.doctors.len() >= DOCTORS_PER_REGION_MAX {
            return Err(Rejection::NoCapacity(format!(
                "region holds {DOCTORS_PER_REGION_MAX} doctors"
            )));
        }
        validate_doctor(d, "doctor", &self.hospital_ids())?;
        self.doctors.insert(d.id, d.clone());
        Ok(Reply::Done)
    }

    pub(crate) fn set_travel(
        &mut self,
        a: HospitalId,
        b: HospitalId,
        minutes: Option<u32>,
    ) -> Result<Reply, Rejection> {
        let ids = self.hospital_ids();
        // A removal is checked like a one-minute road: both ends must exist and differ.
        validate_road(a, b, minutes.unwrap_or(1), "road", &ids)?;
        let key = (a.min(b), a.max(b));
        let new = minutes.is_some() && self.graph.roads().all(|(x, y, _)| (x, y) != key);
        if new && self.graph.roads().count() >= ROADS_PER_REGION_MAX {
            return Err(Rejection::NoCapacity(format!(
                "region holds {ROADS_PER_REGION_MAX} roads"
            )));
        }
        self.graph.set_road(a, b, minutes);
        self.rebuild_graph();
        Ok(Reply::Done)
    }

    pub(crate) fn set_referral_path(
        &mut self,
        from: HospitalId,
        to: HospitalId,
        kind: Option<ReferralKind>,
    ) -> Result<Reply, Rejection> {
        if !self.hospitals.contains_key(&from) {
            return Err(Rejection::invalid(
                "from",
                format!("unknown hospital {from}"),
            ));
        }
        if !self.hospitals.contains_key(&to) {
            return Err(Rejection::invalid("to", format!("unknown hospital {to}")));
        }
        if from == to {
            return Err(Rejection::invalid(
                "to",
                "a hospital cannot refer to itself",
            ));
        }
        let new = kind.is_some() && self.graph.referral_kind(from, to).is_none();
        if new && self.graph.referral_paths().count() >= REFERRAL_PATHS_PER_REGION_MAX {
            return Err(Rejection::NoCapacity(format!(
                "region holds {REFERRAL_PATHS_PER_REGION_MAX} referral paths"
            )));
        }
        self.graph.set_referral(from, to, kind);
        Ok(Reply::Done)
    }

    pub(crate) fn set_policy(&mut self, p: &Policy) -> Result<Reply, Rejection> {
        validate_policy(p, "policy")?;
        let reach_changed = p.reach_minutes != self.policy.reach_minutes;
        self.policy = p.clone();
        if reach_changed {
            self.rebuild_graph();
        }
        Ok(Reply::Done)
    }

    fn hospital_ids(&self) -> BTreeSet<HospitalId> {
        self.hospitals.keys().copied().collect()
    }

    fn rebuild_graph(&mut self) {
        let ids: Vec<HospitalId> = self.hospitals.keys().copied().collect();
        self.graph
            .rebuild(ids.into_iter(), self.policy.reach_minutes);
    }
}
