//! The small hand-built region every simulated run loads: two hospitals, four wards with a
//! handful of beds (so holds contend), four remote-capable doctors with a few slots each
//! (so seats contend and joint consultations find common times).

use ninety_engine::region::*;
use ninety_engine::region_file::{RegionFile, WardEntry, REGION_FORMAT_VERSION};
use ninety_engine::time::MS_PER_MINUTE;
use ninety_engine::{
    BedId, Command, DoctorId, Engine, HospitalId, LogTime, SlotId, SlotSpec, WardId,
};

/// Slots each doctor publishes.
pub const SLOTS_PER_DOCTOR: u64 = 8;

/// What the workload needs to know about the loaded region.
#[derive(Clone, Debug)]
pub struct RegionInfo {
    pub wards: Vec<WardId>,
    /// `ward_hospitals[i]`: the hospital of `wards[i]`.
    pub ward_hospitals: Vec<HospitalId>,
    pub hospitals: Vec<HospitalId>,
    pub beds: Vec<BedId>,
    /// `slots[d][k]`: doctor `d`'s `k`-th slot (same start time `k` for every doctor).
    pub slots: Vec<Vec<SlotId>>,
    /// Which `k` are remote (joint consultations need remote slots at one time).
    pub remote_k: Vec<usize>,
    /// From the first slot's start to the last slot's start (allocation queries).
    pub slot_window: (LogTime, LogTime),
}

fn hospital(id: u32, tier: Tier) -> Hospital {
    Hospital {
        id: HospitalId(id),
        name: format!("Sim H{id}"),
        city: "Guangzhou".into(),
        lat_micro_deg: 23_129_000 + id as i32 * 10_000,
        lon_micro_deg: 113_264_000,
        tier,
        languages: vec![Language::Mandarin],
        alliances: Vec::new(),
    }
}

fn ward(id: u32, hospital: u32, staffed: u32, beds: u32) -> WardEntry {
    WardEntry {
        ward: Ward {
            id: WardId(id),
            hospital: HospitalId(hospital),
            name: format!("Ward {id}"),
            specialty: Specialty::Cardiology,
            kind: WardKind::General,
            sex: SexPolicy::Mixed,
            equipment: Vec::new(),
            staffed_beds: staffed,
        },
        beds,
    }
}

fn doctor(id: u32, hospital: u32) -> Doctor {
    Doctor {
        id: DoctorId(id),
        hospital: HospitalId(hospital),
        specialties: vec![Specialty::Cardiology],
        sub_specialties: Vec::new(),
        title: if id.is_multiple_of(2) {
            Title::Chief
        } else {
            Title::Attending
        },
        languages: vec![Language::Mandarin],
        remote: true,
    }
}

/// The region file.
pub fn region_file() -> RegionFile {
    RegionFile {
        format_version: REGION_FORMAT_VERSION,
        name: "sim".into(),
        policy: Policy::default(),
        alliances: Vec::new(),
        hospitals: vec![hospital(1, Tier::Tertiary), hospital(2, Tier::Secondary)],
        wards: vec![
            ward(1, 1, 3, 4),
            ward(2, 1, 2, 3),
            ward(3, 2, 3, 3),
            ward(4, 2, 2, 4),
        ],
        doctors: (1..=4).map(|d| doctor(d, 1 + (d - 1) / 2)).collect(),
        roads: Vec::new(),
        referral_paths: Vec::new(),
    }
}

/// Every doctor's slots: `SLOTS_PER_DOCTOR` 15-minute slots from `first_start`, even ones
/// remote.
pub fn schedules(first_start: LogTime) -> Vec<(DoctorId, Vec<SlotSpec>)> {
    (1..=4)
        .map(|d| {
            let specs = (0..SLOTS_PER_DOCTOR)
                .map(|k| SlotSpec {
                    start: first_start.plus_ms(k * 15 * MS_PER_MINUTE),
                    duration_minutes: 15,
                    mode: if k % 2 == 0 {
                        Mode::Remote
                    } else {
                        Mode::InPerson
                    },
                    capacity: 1 + (k % 3 == 0) as u16,
                    overbook: u16::from(d % 2 == 0),
                    referral_quota: (k % 4 == 1) as u16,
                })
                .collect();
            (DoctorId(d), specs)
        })
        .collect()
}

/// The bootstrap commands (region import, then schedules), in log order.
pub fn bootstrap(first_start: LogTime) -> Vec<Command> {
    ninety_engine::bootstrap_commands(&region_file(), &schedules(first_start))
}

/// Loads the region locally (the same commands the cluster replicates) to learn the ids
/// the engine assigns.
pub fn info(first_start: LogTime, at: LogTime) -> Result<RegionInfo, String> {
    let engine: Engine = ninety_engine::load(&region_file(), &schedules(first_start), at)
        .map_err(|e| format!("region does not load: {e}"))?;
    let wards = engine.beds().wards().map(|w| w.id).collect();
    let ward_hospitals = engine.beds().wards().map(|w| w.hospital).collect();
    let hospitals = engine.hospitals().map(|h| h.id).collect();
    let beds = (1..engine.counters().next_bed)
        .map(BedId)
        .filter(|b| engine.beds().bed(*b).is_some())
        .collect();
    let mut slots = vec![Vec::new(); 4];
    for s in engine.slots().slots() {
        let d = s.doctor.0 as usize - 1;
        if let Some(v) = slots.get_mut(d) {
            v.push(s.id);
        }
    }
    Ok(RegionInfo {
        wards,
        ward_hospitals,
        hospitals,
        beds,
        slots,
        remote_k: (0..SLOTS_PER_DOCTOR as usize).step_by(2).collect(),
        slot_window: (
            first_start,
            first_start.plus_ms(SLOTS_PER_DOCTOR * 15 * MS_PER_MINUTE),
        ),
    })
}
