//! The capacity and region commands of the workload: what hospital systems and operators
//! send beside the clients' holds (`Capacity` in the API). Beds are blocked and unblocked,
//! added, their staffed count changed; ward, doctor and hospital records replaced; roads,
//! referral paths and the policy changed; a patient's no-show block lifted; beds held for a
//! triaged referral; joint consultations cancelled.
//!
//! The records stay within what the rest of the workload relies on: every ward stays a
//! Cardiology ward of its hospital, doctors keep their hospital, and a new policy keeps the
//! dedup window and the retention of resolved records at least the defaults (a shorter
//! dedup window would let a late retry apply twice, which the checker rightly reports; a
//! shorter retention would prune records the checker looks up at the end).

use super::{referral_seat, take, Owned};
use crate::region::RegionInfo;
use crate::rng::Rng;
use ninety_engine::region::{
    Doctor, Equipment, Hospital, Language, Policy, SexPolicy, Specialty, Tier, Title, Ward,
    WardKind,
};
use ninety_engine::time::MS_PER_MINUTE;
use ninety_engine::BlockReason;
use ninety_engine::ReferralKind;
use ninety_engine::{BedTarget, Command, DoctorId, HospitalId, PatientRef, WardId};

/// Hospitals the workload may create beyond the region's (ids above them): roads and paths
/// then reach a hospital with no wards or doctors.
const NEW_HOSPITALS_MAX: u32 = 2;
/// Beds one `AddBeds` adds at most (the region stays small, so holds keep contending).
const ADDED_BEDS_MAX: u64 = 2;
/// Largest staffed count `SetStaffedBeds` and `UpsertWard` set.
const STAFFED_BEDS_MAX: u64 = 5;

/// Draws one capacity or region command.
pub fn command(rng: &mut Rng, region: &RegionInfo, owned: &Owned, patient: PatientRef) -> Command {
    let cmd = match rng.below(16) {
        0 => block(rng, region, owned),
        1 => take(rng, &owned.blocked)
            .or_else(|| take(rng, &region.beds))
            .map(|bed| Command::UnblockBed { bed }),
        2 => take(rng, &region.wards).map(|ward| Command::AddBeds {
            ward,
            count: rng.range(1, ADDED_BEDS_MAX + 1) as u32,
        }),
        3 => take(rng, &region.wards).map(|ward| Command::SetStaffedBeds {
            ward,
            staffed_beds: rng.range(1, STAFFED_BEDS_MAX + 1) as u32,
        }),
        4 => ward_record(rng, region).map(Command::UpsertWard),
        5 => Some(Command::UpsertDoctor(doctor_record(rng, region))),
        6 => Some(Command::UpsertHospital(hospital_record(rng, region))),
        7 => {
            let (a, b) = two_hospitals(rng, region);
            let travel_minutes = (!rng.chance(200)).then(|| rng.range(5, 120) as u32);
            Some(Command::SetTravel {
                a,
                b,
                travel_minutes,
            })
        }
        8 => {
            let (from, to) = two_hospitals(rng, region);
            let kind = match rng.below(4) {
                0 => None,
                1 => Some(ReferralKind::UpTier),
                2 => Some(ReferralKind::DownTier),
                _ => Some(ReferralKind::SameLevel),
            };
            Some(Command::SetReferralPath { from, to, kind })
        }
        9 => Some(Command::SetPolicy(policy(rng))),
        10 => Some(Command::UnblockPatient { patient }),
        11 | 12 => Some(bed_for_referral(rng, region, owned, patient)),
        _ => take(rng, &owned.consults)
            .or_else(|| take(rng, &owned.booked_consults))
            .map(|consult| Command::CancelJointConsult { consult }),
    };
    cmd.unwrap_or(Command::UnblockPatient { patient })
}

/// Blocks a bed: one waiting to be cleaned, or any of the region's (refused when held or
/// occupied: the refusal is part of the history).
fn block(rng: &mut Rng, region: &RegionInfo, owned: &Owned) -> Option<Command> {
    let bed = take(rng, &owned.to_clean).or_else(|| take(rng, &region.beds))?;
    let reason = match rng.below(3) {
        0 => BlockReason::Isolation,
        1 => BlockReason::Maintenance,
        _ => BlockReason::NoStaff,
    };
    Some(Command::BlockBed { bed, reason })
}

/// One of the region's wards, replaced: same hospital and specialty, other staffed count and
/// equipment; now and then a new ward of the first hospital (id above the region's).
fn ward_record(rng: &mut Rng, region: &RegionInfo) -> Option<Ward> {
    let n = region.wards.len();
    let i = rng.below(n as u64 + 1) as usize;
    let (id, hospital) = match (region.wards.get(i), region.ward_hospitals.get(i)) {
        (Some(w), Some(h)) => (*w, *h),
        _ => (WardId(n as u32 + 1), *region.hospitals.first()?),
    };
    Some(Ward {
        id,
        hospital,
        name: format!("Ward {} v{}", id.0, rng.below(100)),
        specialty: Specialty::Cardiology,
        kind: WardKind::General,
        sex: SexPolicy::Mixed,
        equipment: if rng.chance(500) {
            vec![Equipment::Monitor]
        } else {
            Vec::new()
        },
        staffed_beds: rng.range(1, STAFFED_BEDS_MAX + 1) as u32,
    })
}

/// One of the region's four doctors, replaced at its own hospital; one in four stops taking
/// remote consultations until replaced again.
fn doctor_record(rng: &mut Rng, region: &RegionInfo) -> Doctor {
    let d = rng.range(1, 5) as u32;
    let hospital = region
        .hospitals
        .get(((d - 1) / 2) as usize)
        .copied()
        .unwrap_or(HospitalId(1));
    Doctor {
        id: DoctorId(d),
        hospital,
        specialties: vec![Specialty::Cardiology],
        sub_specialties: Vec::new(),
        title: if rng.chance(500) {
            Title::Chief
        } else {
            Title::Attending
        },
        languages: vec![Language::Mandarin],
        remote: !rng.chance(250),
    }
}

/// A hospital record: one of the region's, or a new one.
fn hospital_record(rng: &mut Rng, region: &RegionInfo) -> Hospital {
    let (id, _) = two_hospitals(rng, region);
    Hospital {
        id,
        name: format!("Sim H{} v{}", id.0, rng.below(100)),
        city: "Guangzhou".into(),
        lat_micro_deg: 23_129_000 + id.0 as i32 * 10_000,
        lon_micro_deg: 113_264_000,
        tier: match rng.below(3) {
            0 => Tier::Tertiary,
            1 => Tier::Secondary,
            _ => Tier::Primary,
        },
        languages: vec![Language::Mandarin],
        alliances: Vec::new(),
    }
}

/// Two different hospital ids, from the region's and up to [`NEW_HOSPITALS_MAX`] new ones.
fn two_hospitals(rng: &mut Rng, region: &RegionInfo) -> (HospitalId, HospitalId) {
    let known = region.hospitals.len() as u32;
    let n = u64::from(known + NEW_HOSPITALS_MAX);
    let a = rng.below(n) as u32 + 1;
    let b = (a + rng.below(n - 1) as u32) % n as u32 + 1;
    (HospitalId(a), HospitalId(b))
}

/// A policy that changes what the run exercises (reach, slot hold and referral lifetimes,
/// the cancellation deadline, the no-show rules) and keeps the dedup window and retention
/// (module doc).
fn policy(rng: &mut Rng) -> Policy {
    let base = Policy::default();
    Policy {
        reach_minutes: rng.range(30, 150) as u32,
        slot_hold_ttl_ms: rng.range(1, 11) * MS_PER_MINUTE,
        cancel_deadline_minutes: rng.range(0, 180) as u32,
        no_show_limit: rng.range(1, 4) as u32,
        referral_ttl_ms: rng.range(5, 60) * MS_PER_MINUTE,
        ..base
    }
}

/// A bed held for a triaged referral of the client's (`HoldBedForReferral`), or first the
/// command that gets one (request, then triage).
fn bed_for_referral(
    rng: &mut Rng,
    region: &RegionInfo,
    owned: &Owned,
    patient: PatientRef,
) -> Command {
    let (patient, referral) = match referral_seat(rng, region, owned, patient) {
        Ok((p, Some(r))) => (p, r),
        // No referral named: a referral hold needs one, so get one first.
        Ok((p, None)) => {
            return Command::RequestReferral {
                from: take(rng, &region.hospitals).unwrap_or(HospitalId(1)),
                to: None,
                patient: p,
            }
        }
        Err(first) => return first,
    };
    let target = match take(rng, &region.wards) {
        Some(w) if !rng.chance(300) => BedTarget::Ward(w),
        _ => take(rng, &region.beds).map_or(BedTarget::Ward(WardId(1)), BedTarget::Bed),
    };
    Command::HoldBedForReferral {
        target,
        patient,
        ttl_ms: rng.range(500, 20_000),
        referral,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ninety_engine::{ConsultId, LogTime, ReferralId};
    use std::collections::BTreeSet;

    /// Every capacity and region command is drawn, by name, from a client that owns what
    /// they name.
    #[test]
    fn every_capacity_command_is_drawn() {
        let start = LogTime(1_800_000_000_000);
        let region = crate::region::info(start, LogTime(start.0 - 3_600_000)).expect("region");
        let owned = Owned {
            consults: vec![ConsultId(1)],
            triaged: vec![(PatientRef(7), ReferralId(1))],
            blocked: vec![ninety_engine::BedId(1)],
            ..Owned::default()
        };
        let mut rng = Rng::new(1);
        let names: BTreeSet<String> = (0..2_000)
            .map(|_| {
                let c = command(&mut rng, &region, &owned, PatientRef(7));
                let debug = format!("{c:?}");
                debug
                    .split(|ch: char| !ch.is_alphanumeric())
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        for name in [
            "BlockBed",
            "UnblockBed",
            "AddBeds",
            "SetStaffedBeds",
            "UpsertWard",
            "UpsertDoctor",
            "UpsertHospital",
            "SetTravel",
            "SetReferralPath",
            "SetPolicy",
            "UnblockPatient",
            "HoldBedForReferral",
            "CancelJointConsult",
        ] {
            assert!(names.contains(name), "{name} never drawn: {names:?}");
        }
    }

    /// A drawn policy keeps what the checker relies on (module doc).
    #[test]
    fn drawn_policies_keep_the_dedup_window_and_retention() {
        let mut rng = Rng::new(2);
        let base = Policy::default();
        for _ in 0..100 {
            let p = policy(&mut rng);
            assert!(p.dedup_window_ms >= base.dedup_window_ms);
            assert!(p.resolved_retention_ms >= base.resolved_retention_ms);
        }
    }
}
