//! Matching: who should see this patient, and which bed should take them.
//!
//! Owns the request and answer types of the matching API, the region index matching reads
//! (`index`), the integer scoring policy (`policy`), candidate generation over any source of
//! availability (`candidates`: the published view on the read path, the authoritative state
//! inside apply), the batch assignment solver (`solve`) and the allocation commands
//! (`allocate`), and the merge of several regions' rankings (`across`).
//!
//! Read path: `match_specialist` and `match_beds` rank candidates on an immutable
//! `AvailabilityView` (see `view`) without locks. Write path: `AllocateSlot` and
//! `AllocateBed` choose and hold in one command inside apply; a run of consecutive allocation
//! requests in one `Engine::apply_batch` is solved together as a min-cost assignment
//! (`solve`), so every replica makes the same choices and no seat or bed is given twice.
//! See `docs/matching.md`.

pub mod across;
pub(crate) mod allocate;
pub mod candidates;
pub mod index;
pub mod policy;
pub mod solve;

pub use allocate::EQUIPMENT_PER_REQUEST_MAX;
pub use candidates::{match_beds, match_specialist, Source};
pub use index::RegionIndex;
pub use policy::MatchPolicy;

use crate::beds::BedNeeds;
use crate::ids::*;
use crate::region::{Channel, Language, Mode, Specialty, Tier, Urgency};
use crate::time::LogTime;
use serde::{Deserialize, Serialize};

/// Most candidates one query may ask for.
pub const MATCH_LIMIT_MAX: u16 = 50;
/// Widest search window of one query (`latest - earliest`): a month of schedules.
pub const MATCH_WINDOW_MS_MAX: u64 = 31 * crate::time::MS_PER_DAY;
/// The window of a slot search that gives none (`earliest` and `latest` both 0): the next
/// seven days of log time from the moment it runs. Resolved where the search runs (inside
/// apply for `AllocateSlot`, on the view for a query), so the command itself stays the same
/// on a retry and every replica resolves it alike.
pub const MATCH_WINDOW_MS_DEFAULT: u64 = 7 * crate::time::MS_PER_DAY;
/// Doctors one slot search looks at once it has found something: the bound on a query's
/// work (at ~100 ns a doctor, about 50 µs). The walk is cheapest-first, so it is reached only
/// when very many doctors tie; what it leaves out then ties or nearly ties what it kept.
pub const MATCH_CANDIDATES_VISITED_MAX: usize = 512;
/// Most allocation requests solved together; longer runs are cut into runs of this size.
pub const ALLOCATION_BATCH_MAX: usize = 1_024;
/// Upper bound of `MatchPolicy::candidates_per_request` (the top-K of each request).
pub const CANDIDATES_PER_REQUEST_MAX: u16 = 64;

/// Where the patient is: a hospital or care point of the region, or a map point (the
/// patient's home), which is attached to the nearest hospital by straight-line distance.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Hospital(HospitalId),
    Point {
        lat_micro_deg: i32,
        lon_micro_deg: i32,
    },
}

/// A specialist search (`MatchSpecialist`), also the body of `AllocateSlot`.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct SlotQuery {
    pub origin: Origin,
    pub specialty: Specialty,
    pub urgency: Urgency,
    /// A language the doctor must speak, if any.
    pub language: Option<Language>,
    /// Remote follow-ups ignore travel; in-person visits stay inside the reach.
    pub mode: Mode,
    /// Slots starting in `[earliest, latest]` (and after now).
    pub earliest: LogTime,
    pub latest: LogTime,
    /// Which seats count: the public quota, or referral seats (quota plus overbooking).
    pub channel: Channel,
    /// Candidates wanted (ignored by `AllocateSlot`, which takes one).
    pub limit: u16,
    /// Travel and tier limits: candidates outside them are never considered.
    pub bounds: Bounds,
}

/// Hard limits on where a patient may be sent, applied while candidates are generated (so
/// a bounded answer is the best of what passes, not a filtered top list). A remote
/// consultation has no travel, so `max_travel_minutes` never excludes it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, Serialize, Deserialize)]
pub struct Bounds {
    /// Candidates farther than this many road minutes from the origin are left out.
    pub max_travel_minutes: Option<u32>,
    /// Hospitals of a lower tier are left out.
    pub min_tier: Option<Tier>,
}

impl Bounds {
    /// No limits.
    pub const NONE: Bounds = Bounds {
        max_travel_minutes: None,
        min_tier: None,
    };

    /// Whether a hospital of `tier` at `travel_minutes` passes.
    pub fn admits(&self, travel_minutes: u32, tier: Tier) -> bool {
        self.max_travel_minutes.is_none_or(|m| travel_minutes <= m)
            && self.min_tier.is_none_or(|t| tier >= t)
    }
}

impl SlotQuery {
    /// `[earliest, latest]`, with the unset window (both 0) read as the next
    /// `MATCH_WINDOW_MS_DEFAULT` from `now`.
    pub fn window_at(&self, now: LogTime) -> (LogTime, LogTime) {
        if self.earliest == LogTime(0) && self.latest == LogTime(0) {
            (now, now.plus_ms(MATCH_WINDOW_MS_DEFAULT))
        } else {
            (self.earliest, self.latest)
        }
    }
}

/// A bed search, also the body of `AllocateBed`.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct BedQuery {
    pub origin: Origin,
    pub needs: BedNeeds,
    /// The ward's specialty, if it matters.
    pub specialty: Option<Specialty>,
    /// The patient needs isolation: an isolation ward or a negative-pressure room.
    pub isolation: bool,
    pub urgency: Urgency,
    /// Candidates wanted (ignored by `AllocateBed`).
    pub limit: u16,
    /// Travel and tier limits (see [`Bounds`]).
    pub bounds: Bounds,
}

/// One ranked slot candidate. `score` is a cost: lower is better.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Candidate {
    pub doctor: DoctorId,
    pub slot: SlotId,
    pub start: LogTime,
    pub hospital: HospitalId,
    pub travel_minutes: u32,
    pub wait_minutes: u32,
    pub tier: Tier,
    /// The doctor's hospital shares an alliance with the origin.
    pub allied: bool,
    /// Outside the reach radius: offered only because nothing inside it matched.
    pub beyond_reach: bool,
    /// The doctor's held+booked share of the slot's day, per mille.
    pub load_permille: u32,
    pub score: u64,
    pub explain: String,
}

/// One ranked ward candidate. `score` is a cost: lower is better.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct BedCandidate {
    pub ward: WardId,
    pub hospital: HospitalId,
    pub travel_minutes: u32,
    pub tier: Tier,
    pub allied: bool,
    pub beyond_reach: bool,
    /// Beds that could be held now.
    pub admissible: u32,
    /// Held plus occupied share of staffed beds, per mille.
    pub load_permille: u32,
    pub score: u64,
    pub explain: String,
}

/// A ranked answer: best first, and a note when the search had to leave the reach.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Ranked<C> {
    pub candidates: Vec<C>,
    pub note: Option<String>,
}
