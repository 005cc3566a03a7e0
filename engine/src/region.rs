//! The region model: hospitals, wards, doctors, alliances and the region's policy.
//!
//! These are the slowly changing records an operator imports or edits with admin commands.
//! Fast-changing state (bed states, holds, slots, referrals) lives in `beds`, `slots` and
//! `referrals`.

use crate::ids::*;
use serde::{Deserialize, Serialize};

/// The care tier of a hospital (三甲 / 二级 / 基层).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Grassroots point, community or township health centre (基层).
    Primary,
    /// County or district hospital (二级).
    Secondary,
    /// Big city or provincial hospital (三甲).
    Tertiary,
}

impl Tier {
    /// The tier's rank, lowest first.
    pub fn rank(self) -> u8 {
        match self {
            Tier::Primary => 0,
            Tier::Secondary => 1,
            Tier::Tertiary => 2,
        }
    }
}

/// Medical specialties used for triage, wards and doctors.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Specialty {
    GeneralPractice,
    InternalMedicine,
    Cardiology,
    Neurology,
    Oncology,
    Respiratory,
    Gastroenterology,
    Endocrinology,
    Nephrology,
    GeneralSurgery,
    Orthopedics,
    Neurosurgery,
    Obstetrics,
    Pediatrics,
    Neonatology,
    Emergency,
    InfectiousDisease,
    Psychiatry,
    Ophthalmology,
    Dermatology,
    Rehabilitation,
    TraditionalChineseMedicine,
}

impl Specialty {
    /// Every specialty, in a fixed order (used by generators and tests).
    pub const ALL: [Specialty; 22] = [
        Specialty::GeneralPractice,
        Specialty::InternalMedicine,
        Specialty::Cardiology,
        Specialty::Neurology,
        Specialty::Oncology,
        Specialty::Respiratory,
        Specialty::Gastroenterology,
        Specialty::Endocrinology,
        Specialty::Nephrology,
        Specialty::GeneralSurgery,
        Specialty::Orthopedics,
        Specialty::Neurosurgery,
        Specialty::Obstetrics,
        Specialty::Pediatrics,
        Specialty::Neonatology,
        Specialty::Emergency,
        Specialty::InfectiousDisease,
        Specialty::Psychiatry,
        Specialty::Ophthalmology,
        Specialty::Dermatology,
        Specialty::Rehabilitation,
        Specialty::TraditionalChineseMedicine,
    ];
}

/// Languages a hospital or doctor serves in (the China–ASEAN platform uses eight).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub enum Language {
    #[serde(rename = "zh")]
    Mandarin,
    #[serde(rename = "yue")]
    Cantonese,
    #[serde(rename = "en")]
    English,
    #[serde(rename = "pt")]
    Portuguese,
    #[serde(rename = "vi")]
    Vietnamese,
    #[serde(rename = "th")]
    Thai,
    #[serde(rename = "lo")]
    Lao,
    #[serde(rename = "km")]
    Khmer,
    #[serde(rename = "my")]
    Burmese,
    #[serde(rename = "ms")]
    Malay,
    #[serde(rename = "id")]
    Indonesian,
}

/// The kind of a ward, which decides which patients it can admit.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WardKind {
    General,
    Icu,
    Nicu,
    Isolation,
    Maternity,
    Pediatric,
    Surgical,
    Rehabilitation,
}

/// Which patients a ward's beds may take.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SexPolicy {
    Male,
    Female,
    Mixed,
}

/// A patient's sex as far as ward placement is concerned (no other identity).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    Male,
    Female,
}

impl SexPolicy {
    /// Whether a patient of sex `sex` may be placed under this policy.
    pub fn admits(self, sex: Option<Sex>) -> bool {
        matches!(
            (self, sex),
            (SexPolicy::Mixed, _)
                | (_, None)
                | (SexPolicy::Male, Some(Sex::Male))
                | (SexPolicy::Female, Some(Sex::Female))
        )
    }
}

/// Equipment a ward offers at its beds.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Equipment {
    Monitor,
    Oxygen,
    Ventilator,
    Dialysis,
    Incubator,
    NegativePressure,
}

/// A doctor's title (grade).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Title {
    Resident,
    Attending,
    AssociateChief,
    Chief,
}

/// Whether a slot or consultation is in person or remote (online follow-up, 远程会诊).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    InPerson,
    Remote,
}

/// The booking channel: the public platform, or a referral from an alliance partner.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Public,
    Referral,
}

/// Clinical urgency from triage: P1 (immediate) to P4 (routine).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub enum Urgency {
    P1,
    P2,
    P3,
    P4,
}

impl Urgency {
    /// P1 and P2 are urgent: they rank by time to care.
    pub fn is_urgent(self) -> bool {
        matches!(self, Urgency::P1 | Urgency::P2)
    }
}

/// A hospital or grassroots care point.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct Hospital {
    pub id: HospitalId,
    pub name: String,
    pub city: String,
    /// Latitude in micro-degrees (WGS84), integer so hashing and equality are exact.
    pub lat_micro_deg: i32,
    /// Longitude in micro-degrees (WGS84).
    pub lon_micro_deg: i32,
    pub tier: Tier,
    pub languages: Vec<Language>,
    pub alliances: Vec<AllianceId>,
}

/// An alliance of hospitals: preferred referral partners.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct Alliance {
    pub id: AllianceId,
    pub name: String,
    pub kind: AllianceKind,
}

/// The kinds of hospital alliance.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AllianceKind {
    /// 医联体: a medical alliance led by a big hospital.
    MedicalAlliance,
    /// 医共体: a county medical community.
    CountyCommunity,
    /// 专科联盟: a specialty alliance.
    Specialty,
}

/// A ward: beds of one specialty and kind in one hospital.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct Ward {
    pub id: WardId,
    pub hospital: HospitalId,
    pub name: String,
    pub specialty: Specialty,
    pub kind: WardKind,
    pub sex: SexPolicy,
    pub equipment: Vec<Equipment>,
    /// Beds that staff can run. Physical beds above this count are not admissible.
    pub staffed_beds: u32,
}

/// A doctor and what they can take.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct Doctor {
    pub id: DoctorId,
    pub hospital: HospitalId,
    pub specialties: Vec<Specialty>,
    /// Free-text sub-specialty tags, e.g. "interventional".
    pub sub_specialties: Vec<String>,
    pub title: Title,
    pub languages: Vec<Language>,
    /// Whether the doctor takes remote consultations and online follow-ups.
    pub remote: bool,
}

/// A region's policy. Every number has its unit in its name.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Policy {
    /// The health-circle radius (90 in the GBA).
    pub reach_minutes: u32,
    /// How long a slot hold lasts before it expires; returned to the caller.
    pub slot_hold_ttl_ms: u64,
    /// Bookings may not be cancelled later than this before the slot starts.
    pub cancel_deadline_minutes: u32,
    /// No-shows within `no_show_window_days` that block online booking.
    pub no_show_limit: u32,
    pub no_show_window_days: u32,
    /// How long online booking is blocked after reaching the no-show limit.
    pub no_show_block_days: u32,
    /// How long a referral may stay open before it expires.
    pub referral_ttl_ms: u64,
    /// How long resolved holds and closed referrals are kept for lookups before pruning.
    pub resolved_retention_ms: u64,
    /// How long a request id is remembered for idempotent retries.
    pub dedup_window_ms: u64,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            reach_minutes: 90,
            slot_hold_ttl_ms: 10 * crate::time::MS_PER_MINUTE,
            cancel_deadline_minutes: 120,
            no_show_limit: 3,
            no_show_window_days: 365,
            no_show_block_days: 30,
            referral_ttl_ms: 3 * crate::time::MS_PER_DAY,
            resolved_retention_ms: crate::time::MS_PER_DAY,
            dedup_window_ms: crate::dedup::DEDUP_WINDOW_MS_DEFAULT,
        }
    }
}
