//! Bed reads: one bed hold with its hospital, ward availability (free, held, occupied,
//! to-clean, blocked by reason, staffed) for a hospital's wards or named ones, and pages of
//! ward records with their availability, of one hospital or of the region.

use crate::beds::{BedHold, BedState, BlockReason, WardCounts};
use crate::engine::Engine;
use crate::error::Rejection;
use crate::ids::*;
use crate::limits::WARDS_PAGE_MAX;
use crate::region::{Specialty, Ward};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Blocked beds of a ward by reason. `unstaffed` counts free beds that cannot be held
/// because the ward is at its staffed capacity (not a bed state: a count).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockedBeds {
    pub isolation: u32,
    pub maintenance: u32,
    pub no_staff: u32,
    pub unstaffed: u32,
}

/// One ward's counts with the ward's descriptive fields. In `counts`, `free` is the
/// admissible count and `blocked` includes the unstaffed free beds (see `WardCounts`), so
/// `free + held + occupied + to_clean + blocked = physical`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WardInfo {
    pub ward: WardId,
    pub hospital: HospitalId,
    pub specialty: Specialty,
    pub counts: WardCounts,
    pub blocked: BlockedBeds,
}

/// A page of wards: those of `hospital` (every hospital's when `None`) with an id above
/// `after`, by id, at most `limit` (capped at `WARDS_PAGE_MAX`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WardPageQuery {
    pub hospital: Option<HospitalId>,
    pub after: WardId,
    pub limit: usize,
}

/// One page of wards: each ward's record and availability, and the id to page on when more
/// follow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WardPage {
    pub wards: Vec<(Ward, WardInfo)>,
    pub next_after: Option<WardId>,
}

impl Engine {
    /// A page of wards (see [`WardPageQuery`]); `None` when the hospital is unknown.
    pub(crate) fn ward_page(&self, q: &WardPageQuery) -> Option<WardPage> {
        if let Some(h) = q.hospital {
            self.hospital(h)?;
        }
        let limit = q.limit.min(WARDS_PAGE_MAX);
        let beds = self.beds();
        let mut wards = Vec::new();
        let mut more = false;
        let listed = beds
            .wards()
            .filter(|w| w.id > q.after && q.hospital.is_none_or(|h| w.hospital == h));
        for w in listed {
            let Some(counts) = beds.counts(w.id) else {
                continue;
            };
            if wards.len() == limit {
                more = true;
                break;
            }
            let info = WardInfo {
                ward: w.id,
                hospital: w.hospital,
                specialty: w.specialty,
                blocked: self.blocked_beds(w.id, counts),
                counts,
            };
            wards.push((w.clone(), info));
        }
        let next_after = more.then(|| wards.last().map(|(w, _)| w.id)).flatten();
        Some(WardPage { wards, next_after })
    }

    /// A bed hold and its ward's hospital.
    pub fn bed_hold(&self, id: HoldId) -> Option<(BedHold, HospitalId)> {
        let hold = self.beds().hold(id)?.clone();
        let hospital = self.beds().ward(hold.ward)?.hospital;
        Some((hold, hospital))
    }

    /// The wards of `hospital` (all of them when `wanted` is empty), by id. An unknown
    /// hospital, or a wanted ward that is not one of its wards, is refused as not found.
    pub(crate) fn ward_infos(
        &self,
        hospital: HospitalId,
        wanted: &[WardId],
    ) -> Result<Vec<WardInfo>, Rejection> {
        self.hospital(hospital)
            .ok_or(Rejection::UnknownHospital(hospital))?;
        let beds = self.beds();
        if let Some(w) = wanted
            .iter()
            .find(|w| beds.ward(**w).is_none_or(|x| x.hospital != hospital))
        {
            return Err(Rejection::UnknownWard(*w));
        }
        let wanted: BTreeSet<WardId> = wanted.iter().copied().collect();
        let infos = beds
            .wards()
            .filter(|w| w.hospital == hospital && (wanted.is_empty() || wanted.contains(&w.id)))
            .filter_map(|w| {
                let counts = beds.counts(w.id)?;
                Some(WardInfo {
                    ward: w.id,
                    hospital,
                    specialty: w.specialty,
                    blocked: self.blocked_beds(w.id, counts),
                    counts,
                })
            })
            .collect();
        Ok(infos)
    }

    fn blocked_beds(&self, ward: WardId, counts: WardCounts) -> BlockedBeds {
        let mut b = BlockedBeds {
            unstaffed: counts.unstaffed,
            ..BlockedBeds::default()
        };
        for bed in self.beds().ward_beds(ward) {
            match bed.state {
                BedState::Blocked {
                    reason: BlockReason::Isolation,
                } => b.isolation += 1,
                BedState::Blocked {
                    reason: BlockReason::Maintenance,
                } => b.maintenance += 1,
                BedState::Blocked {
                    reason: BlockReason::NoStaff,
                } => b.no_staff += 1,
                _ => {}
            }
        }
        b
    }
}
