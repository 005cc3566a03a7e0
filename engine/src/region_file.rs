//! The region file: a documented JSON format that loads a whole region in one command.
//!
//! ```json
//! { "format_version": 1, "name": "gba", "policy": { "reach_minutes": 90 },
//!   "alliances": [ { "id": 1, "name": "Guangzhou alliance 1", "kind": "medical_alliance" } ],
//!   "hospitals": [ { "id": 1, "name": "Guangzhou H1", "city": "Guangzhou",
//!                    "lat_micro_deg": 23129000, "lon_micro_deg": 113264000,
//!                    "tier": "tertiary", "languages": ["zh", "yue"], "alliances": [1] } ],
//!   "wards": [ { "ward": { "id": 1, "hospital": 1, "name": "Cardiology 1",
//!                          "specialty": "cardiology", "kind": "general", "sex": "mixed",
//!                          "equipment": ["monitor"], "staffed_beds": 30 },
//!                "beds": 32 } ],
//!   "doctors": [ { "id": 1, "hospital": 1, "specialties": ["cardiology"],
//!                  "sub_specialties": [], "title": "chief", "languages": ["zh"],
//!                  "remote": true } ],
//!   "roads": [ { "a": 1, "b": 2, "travel_minutes": 35 } ],
//!   "referral_paths": [ { "from": 2, "to": 1, "kind": "up_tier" } ] }
//! ```
//! Bed ids are assigned by the engine in file order, starting at 1. Schedules are not part of
//! the file: doctors publish them with `PublishSchedule`. (No `serde(flatten)` anywhere: the
//! file also travels through the Raft log in postcard, which does not support it.)

use crate::error::{check_text, Rejection};
use crate::graph::ReferralKind;
use crate::ids::*;
use crate::limits::*;
use crate::region::{Alliance, Doctor, Hospital, Policy, Ward};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Version of the region file format.
pub const REGION_FORMAT_VERSION: u32 = 1;

/// A ward with its number of physical beds.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct WardEntry {
    pub ward: Ward,
    pub beds: u32,
}

/// A road between two hospitals.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct Road {
    pub a: HospitalId,
    pub b: HospitalId,
    pub travel_minutes: u32,
}

/// A typed referral path.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct ReferralPath {
    pub from: HospitalId,
    pub to: HospitalId,
    pub kind: ReferralKind,
}

/// A whole region.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct RegionFile {
    pub format_version: u32,
    pub name: String,
    #[serde(default)]
    pub policy: Policy,
    #[serde(default)]
    pub alliances: Vec<Alliance>,
    pub hospitals: Vec<Hospital>,
    #[serde(default)]
    pub wards: Vec<WardEntry>,
    #[serde(default)]
    pub doctors: Vec<Doctor>,
    #[serde(default)]
    pub roads: Vec<Road>,
    #[serde(default)]
    pub referral_paths: Vec<ReferralPath>,
}

impl RegionFile {
    /// Parses a region file from JSON, naming the place of a syntax error.
    pub fn from_json(text: &str) -> Result<RegionFile, Rejection> {
        serde_json::from_str(text).map_err(|e| {
            Rejection::invalid(
                "region",
                format!("line {} column {}: {e}", e.line(), e.column()),
            )
        })
    }

    /// Serializes to pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks every field and reference; the error names the first bad field.
    pub fn validate(&self) -> Result<(), Rejection> {
        if self.format_version != REGION_FORMAT_VERSION {
            return Err(Rejection::invalid(
                "format_version",
                format!(
                    "expected {REGION_FORMAT_VERSION}, got {}",
                    self.format_version
                ),
            ));
        }
        check_text("name", &self.name)?;
        validate_policy(&self.policy, "policy")?;
        if self.hospitals.is_empty() || self.hospitals.len() > HOSPITALS_MAX {
            return Err(Rejection::invalid(
                "hospitals",
                format!("must hold 1 to {HOSPITALS_MAX}"),
            ));
        }
        self.check_sizes()?;
        let alliances = unique_ids("alliances", self.alliances.iter().map(|a| a.id))?;
        for (i, a) in self.alliances.iter().enumerate() {
            check_text(&format!("alliances[{i}].name"), &a.name)?;
        }
        let hospitals = unique_ids("hospitals", self.hospitals.iter().map(|h| h.id))?;
        for (i, h) in self.hospitals.iter().enumerate() {
            validate_hospital(h, &format!("hospitals[{i}]"), &alliances)?;
        }
        unique_ids("wards", self.wards.iter().map(|w| w.ward.id))?;
        for (i, w) in self.wards.iter().enumerate() {
            let at = format!("wards[{i}]");
            validate_ward(&w.ward, &at, &hospitals)?;
            if w.beds as usize > BEDS_PER_WARD_MAX {
                return Err(Rejection::invalid(
                    format!("{at}.beds"),
                    format!("at most {BEDS_PER_WARD_MAX}"),
                ));
            }
        }
        unique_ids("doctors", self.doctors.iter().map(|d| d.id))?;
        for (i, d) in self.doctors.iter().enumerate() {
            validate_doctor(d, &format!("doctors[{i}]"), &hospitals)?;
        }
        for (i, r) in self.roads.iter().enumerate() {
            validate_road(
                r.a,
                r.b,
                r.travel_minutes,
                &format!("roads[{i}]"),
                &hospitals,
            )?;
        }
        for (i, p) in self.referral_paths.iter().enumerate() {
            let at = format!("referral_paths[{i}]");
            known(&hospitals, p.from, &format!("{at}.from"))?;
            known(&hospitals, p.to, &format!("{at}.to"))?;
            if p.from == p.to {
                return Err(Rejection::invalid(
                    format!("{at}.to"),
                    "a hospital cannot refer to itself",
                ));
            }
        }
        Ok(())
    }
}

impl RegionFile {
    /// Checks the region's record counts against the limits, before anything is built.
    fn check_sizes(&self) -> Result<(), Rejection> {
        let counts = [
            ("wards", self.wards.len(), WARDS_PER_REGION_MAX),
            ("doctors", self.doctors.len(), DOCTORS_PER_REGION_MAX),
            ("roads", self.roads.len(), ROADS_PER_REGION_MAX),
            (
                "referral_paths",
                self.referral_paths.len(),
                REFERRAL_PATHS_PER_REGION_MAX,
            ),
            ("alliances", self.alliances.len(), HOSPITALS_MAX),
        ];
        for (field, n, max) in counts {
            if n > max {
                return Err(Rejection::invalid(field, format!("at most {max} entries")));
            }
        }
        let beds: u64 = self.wards.iter().map(|w| u64::from(w.beds)).sum();
        if beds > BEDS_PER_REGION_MAX as u64 {
            return Err(Rejection::invalid(
                "wards",
                format!("at most {BEDS_PER_REGION_MAX} beds in all"),
            ));
        }
        Ok(())
    }
}

fn unique_ids<T: Ord + Copy + std::fmt::Display>(
    field: &str,
    ids: impl Iterator<Item = T>,
) -> Result<BTreeSet<T>, Rejection> {
    let mut seen = BTreeSet::new();
    for (i, id) in ids.enumerate() {
        if !seen.insert(id) {
            return Err(Rejection::invalid(
                format!("{field}[{i}].id"),
                format!("duplicate id {id}"),
            ));
        }
    }
    Ok(seen)
}

fn known(hospitals: &BTreeSet<HospitalId>, id: HospitalId, field: &str) -> Result<(), Rejection> {
    if hospitals.contains(&id) {
        Ok(())
    } else {
        Err(Rejection::invalid(field, format!("unknown hospital {id}")))
    }
}

/// Checks a policy's numbers.
pub(crate) fn validate_policy(p: &Policy, at: &str) -> Result<(), Rejection> {
    if p.reach_minutes == 0 || p.reach_minutes > TRAVEL_MINUTES_MAX {
        return Err(Rejection::invalid(
            format!("{at}.reach_minutes"),
            format!("must be 1 to {TRAVEL_MINUTES_MAX}"),
        ));
    }
    if !(HOLD_TTL_MS_MIN..=HOLD_TTL_MS_MAX).contains(&p.slot_hold_ttl_ms) {
        return Err(Rejection::invalid(
            format!("{at}.slot_hold_ttl_ms"),
            format!("must be {HOLD_TTL_MS_MIN} to {HOLD_TTL_MS_MAX}"),
        ));
    }
    if p.referral_ttl_ms == 0 || p.referral_ttl_ms > REFERRAL_TTL_MS_MAX {
        return Err(Rejection::invalid(
            format!("{at}.referral_ttl_ms"),
            format!("must be 1 to {REFERRAL_TTL_MS_MAX}"),
        ));
    }
    if p.dedup_window_ms < crate::time::MS_PER_MINUTE {
        return Err(Rejection::invalid(
            format!("{at}.dedup_window_ms"),
            "must be at least one minute",
        ));
    }
    if p.no_show_limit == 0 {
        return Err(Rejection::invalid(
            format!("{at}.no_show_limit"),
            "must be at least 1",
        ));
    }
    Ok(())
}

/// Checks a hospital record.
pub(crate) fn validate_hospital(
    h: &Hospital,
    at: &str,
    alliances: &BTreeSet<AllianceId>,
) -> Result<(), Rejection> {
    check_text(&format!("{at}.name"), &h.name)?;
    check_text(&format!("{at}.city"), &h.city)?;
    check_list(&format!("{at}.languages"), h.languages.len())?;
    check_list(&format!("{at}.alliances"), h.alliances.len())?;
    if !(-90_000_000..=90_000_000).contains(&h.lat_micro_deg) {
        return Err(Rejection::invalid(
            format!("{at}.lat_micro_deg"),
            "must be within ±90 degrees",
        ));
    }
    if !(-180_000_000..=180_000_000).contains(&h.lon_micro_deg) {
        return Err(Rejection::invalid(
            format!("{at}.lon_micro_deg"),
            "must be within ±180 degrees",
        ));
    }
    for (i, a) in h.alliances.iter().enumerate() {
        if !alliances.contains(a) {
            return Err(Rejection::invalid(
                format!("{at}.alliances[{i}]"),
                format!("unknown alliance {a}"),
            ));
        }
    }
    Ok(())
}

/// Checks a ward record.
pub(crate) fn validate_ward(
    w: &Ward,
    at: &str,
    hospitals: &BTreeSet<HospitalId>,
) -> Result<(), Rejection> {
    check_text(&format!("{at}.name"), &w.name)?;
    check_list(&format!("{at}.equipment"), w.equipment.len())?;
    known(hospitals, w.hospital, &format!("{at}.hospital"))?;
    if w.staffed_beds as usize > BEDS_PER_WARD_MAX {
        return Err(Rejection::invalid(
            format!("{at}.staffed_beds"),
            format!("at most {BEDS_PER_WARD_MAX}"),
        ));
    }
    Ok(())
}

/// Checks a doctor record.
pub(crate) fn validate_doctor(
    d: &Doctor,
    at: &str,
    hospitals: &BTreeSet<HospitalId>,
) -> Result<(), Rejection> {
    known(hospitals, d.hospital, &format!("{at}.hospital"))?;
    if d.specialties.is_empty() {
        return Err(Rejection::invalid(
            format!("{at}.specialties"),
            "must name at least one specialty",
        ));
    }
    check_list(&format!("{at}.specialties"), d.specialties.len())?;
    check_list(&format!("{at}.sub_specialties"), d.sub_specialties.len())?;
    check_list(&format!("{at}.languages"), d.languages.len())?;
    for (i, s) in d.sub_specialties.iter().enumerate() {
        check_text(&format!("{at}.sub_specialties[{i}]"), s)?;
    }
    Ok(())
}

/// Checks the length of a record's list field.
fn check_list(field: &str, len: usize) -> Result<(), Rejection> {
    if len > RECORD_LIST_ITEMS_MAX {
        return Err(Rejection::invalid(
            field,
            format!("at most {RECORD_LIST_ITEMS_MAX} items"),
        ));
    }
    Ok(())
}

/// Checks a road.
pub(crate) fn validate_road(
    a: HospitalId,
    b: HospitalId,
    minutes: u32,
    at: &str,
    hospitals: &BTreeSet<HospitalId>,
) -> Result<(), Rejection> {
    known(hospitals, a, &format!("{at}.a"))?;
    known(hospitals, b, &format!("{at}.b"))?;
    if a == b {
        return Err(Rejection::invalid(
            format!("{at}.b"),
            "a road joins two different hospitals",
        ));
    }
    if minutes == 0 || minutes > TRAVEL_MINUTES_MAX {
        return Err(Rejection::invalid(
            format!("{at}.travel_minutes"),
            format!("must be 1 to {TRAVEL_MINUTES_MAX}"),
        ));
    }
    Ok(())
}
