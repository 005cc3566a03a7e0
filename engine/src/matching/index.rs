//! The region index matching reads: hospitals, doctors by (hospital, specialty), remote
//! doctors by specialty, wards by hospital, each hospital's reach and the road adjacency for
//! searches beyond it. Derived from the region records only, so it is rebuilt when an admin
//! command changes them, never on the hot path; shared by `Arc` between the engine and every
//! published view.

use super::Origin;
use crate::engine::Engine;
use crate::error::Rejection;
use crate::ids::*;
use crate::region::{Language, Mode, Specialty, Tier, Ward};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

/// Straight-line metres per degree of latitude.
const METERS_PER_DEG: i64 = 111_195;
/// Speed assumed from a map point to its nearest hospital: 30 km/h in town.
const POINT_ACCESS_METERS_PER_MINUTE: u64 = 500;
/// cos(latitude) per mille at every 5 degrees from 0 to 90, for east-west distances.
const COS_PERMILLE_BY_5_DEG: [i64; 19] = [
    1000, 996, 985, 966, 940, 906, 866, 819, 766, 707, 643, 574, 500, 423, 342, 259, 174, 87, 0,
];

/// What matching needs of a hospital.
#[derive(Clone, Debug)]
pub struct HospitalInfo {
    pub tier: Tier,
    pub lat_micro_deg: i32,
    pub lon_micro_deg: i32,
    pub alliances: Vec<AllianceId>,
}

/// What matching needs of a doctor.
#[derive(Clone, Debug)]
pub struct DoctorInfo {
    pub hospital: HospitalId,
    pub languages: Vec<Language>,
    pub remote: bool,
}

/// The index. Build it with `RegionIndex::build`.
#[derive(Clone, Debug, Default)]
pub struct RegionIndex {
    pub hospitals: BTreeMap<HospitalId, HospitalInfo>,
    pub doctors: BTreeMap<DoctorId, DoctorInfo>,
    pub by_hospital_specialty: BTreeMap<(HospitalId, Specialty), Vec<DoctorId>>,
    pub remote_by_specialty: BTreeMap<Specialty, Vec<DoctorId>>,
    /// Remote doctors by (hospital, specialty), and the hospitals that have any, per
    /// specialty: remote searches walk them hospital by hospital, cheapest first.
    pub remote_by_hospital_specialty: BTreeMap<(HospitalId, Specialty), Vec<DoctorId>>,
    pub remote_hospitals: BTreeMap<Specialty, Vec<HospitalId>>,
    pub wards: BTreeMap<WardId, Ward>,
    pub wards_by_hospital: BTreeMap<HospitalId, Vec<WardId>>,
    /// Each hospital's reach: (hospital, minutes), nearest first, itself first.
    pub reach: BTreeMap<HospitalId, Vec<(HospitalId, u32)>>,
    pub roads: BTreeMap<HospitalId, Vec<(HospitalId, u32)>>,
    pub reach_minutes: u32,
}

impl RegionIndex {
    /// Builds the index from the engine's region records.
    pub fn build(engine: &Engine) -> RegionIndex {
        let mut ix = RegionIndex {
            reach_minutes: engine.policy.reach_minutes,
            ..RegionIndex::default()
        };
        for h in engine.hospitals.values() {
            let info = HospitalInfo {
                tier: h.tier,
                lat_micro_deg: h.lat_micro_deg,
                lon_micro_deg: h.lon_micro_deg,
                alliances: h.alliances.clone(),
            };
            ix.hospitals.insert(h.id, info);
            ix.reach.insert(h.id, engine.graph.reach(h.id).to_vec());
        }
        for d in engine.doctors.values() {
            for &s in &d.specialties {
                let key = (d.hospital, s);
                ix.by_hospital_specialty.entry(key).or_default().push(d.id);
                if d.remote {
                    ix.remote_by_specialty.entry(s).or_default().push(d.id);
                    ix.remote_by_hospital_specialty
                        .entry(key)
                        .or_default()
                        .push(d.id);
                    let hs = ix.remote_hospitals.entry(s).or_default();
                    if !hs.contains(&d.hospital) {
                        hs.push(d.hospital);
                    }
                }
            }
            let info = DoctorInfo {
                hospital: d.hospital,
                languages: d.languages.clone(),
                remote: d.remote,
            };
            ix.doctors.insert(d.id, info);
        }
        for hs in ix.remote_hospitals.values_mut() {
            hs.sort_unstable();
        }
        for w in engine.beds.wards.values() {
            ix.wards_by_hospital
                .entry(w.hospital)
                .or_default()
                .push(w.id);
            ix.wards.insert(w.id, w.clone());
        }
        for (a, b, m) in engine.graph.roads() {
            ix.roads.entry(a).or_default().push((b, m));
            ix.roads.entry(b).or_default().push((a, m));
        }
        ix
    }

    /// The doctors a search of `specialty` in `mode` looks at in hospital `h`: every doctor
    /// of the specialty in person, the remote ones for remote follow-ups.
    pub fn doctors_at(&self, h: HospitalId, specialty: Specialty, mode: Mode) -> &[DoctorId] {
        let map = match mode {
            Mode::InPerson => &self.by_hospital_specialty,
            Mode::Remote => &self.remote_by_hospital_specialty,
        };
        map.get(&(h, specialty)).map_or(&[], Vec::as_slice)
    }

    /// Whether two hospitals share an alliance.
    pub fn allied(&self, a: HospitalId, b: HospitalId) -> bool {
        let (Some(x), Some(y)) = (self.hospitals.get(&a), self.hospitals.get(&b)) else {
            return false;
        };
        a == b || x.alliances.iter().any(|al| y.alliances.contains(al))
    }

    /// The hospital an origin starts from, and the minutes to get there.
    pub fn resolve(&self, origin: Origin) -> Result<(HospitalId, u32), Rejection> {
        match origin {
            Origin::Hospital(h) if self.hospitals.contains_key(&h) => Ok((h, 0)),
            Origin::Hospital(h) => Err(Rejection::invalid(
                "origin",
                format!("unknown hospital {h}"),
            )),
            Origin::Point {
                lat_micro_deg,
                lon_micro_deg,
            } => self
                .hospitals
                .iter()
                .map(|(&id, h)| (distance_m(lat_micro_deg, lon_micro_deg, h), id))
                .min()
                .map(|(m, id)| (id, m.div_ceil(POINT_ACCESS_METERS_PER_MINUTE) as u32))
                .ok_or_else(|| Rejection::invalid("origin", "the region has no hospitals")),
        }
    }

    /// Hospitals by shortest road minutes from `origin`, nearest first (ties: lower id),
    /// found lazily: a search that stops early settles only the hospitals it looked at.
    pub fn nearest_from(&self, origin: HospitalId) -> Nearest<'_> {
        let mut heap = BinaryHeap::new();
        heap.push(Reverse((0u32, origin)));
        Nearest {
            ix: self,
            heap,
            settled: BTreeSet::new(),
        }
    }

    /// Shortest road minutes from `origin` to every hospital it connects to (no cutoff).
    pub fn travel_from(&self, origin: HospitalId) -> BTreeMap<HospitalId, u32> {
        let mut best: BTreeMap<HospitalId, u32> = BTreeMap::new();
        let mut heap = BinaryHeap::new();
        heap.push(Reverse((0u32, origin)));
        while let Some(Reverse((dist, h))) = heap.pop() {
            if best.contains_key(&h) {
                continue;
            }
            best.insert(h, dist);
            for &(next, m) in self.roads.get(&h).into_iter().flatten() {
                if !best.contains_key(&next) {
                    heap.push(Reverse((dist.saturating_add(m), next)));
                }
            }
        }
        best
    }
}

/// Dijkstra over the roads as an iterator (`RegionIndex::nearest_from`). Every road takes
/// at least a minute, so hospitals come in (minutes, id) order: all hospitals at a distance
/// are in the heap before the first of them is settled.
pub struct Nearest<'a> {
    ix: &'a RegionIndex,
    heap: BinaryHeap<Reverse<(u32, HospitalId)>>,
    settled: BTreeSet<HospitalId>,
}

impl Iterator for Nearest<'_> {
    type Item = (HospitalId, u32);

    fn next(&mut self) -> Option<(HospitalId, u32)> {
        while let Some(Reverse((dist, h))) = self.heap.pop() {
            if !self.settled.insert(h) {
                continue;
            }
            for &(next, m) in self.ix.roads.get(&h).into_iter().flatten() {
                if !self.settled.contains(&next) {
                    self.heap.push(Reverse((dist.saturating_add(m), next)));
                }
            }
            return Some((h, dist));
        }
        None
    }
}

/// Straight-line metres from a point to a hospital (equirectangular, integer only).
fn distance_m(lat: i32, lon: i32, h: &HospitalInfo) -> u64 {
    let lat_deg = (i64::from(lat.unsigned_abs().min(90_000_000)) / 5_000_000) as usize;
    let cos = COS_PERMILLE_BY_5_DEG[lat_deg.min(18)];
    let dy = (i64::from(lat) - i64::from(h.lat_micro_deg)) * METERS_PER_DEG / 1_000_000;
    let dx =
        (i64::from(lon) - i64::from(h.lon_micro_deg)) * METERS_PER_DEG / 1_000_000 * cos / 1_000;
    let sq = (dx as i128 * dx as i128 + dy as i128 * dy as i128) as u128;
    sq.isqrt() as u64
}
