//! Limits on everything a command can ask for, with units in the names.
//!
//! A command that exceeds a limit is rejected with `Rejection::Invalid` naming the field; the
//! limits keep every apply bounded in time and memory.

use crate::time::{MS_PER_DAY, MS_PER_MINUTE};

/// Longest hold a caller may ask for: a transfer from a remote county can take a day.
pub const HOLD_TTL_MS_MAX: u64 = 7 * MS_PER_DAY;
/// Shortest hold: anything shorter would expire before a client could confirm it.
pub const HOLD_TTL_MS_MIN: u64 = 1_000;
/// Slots in one `PublishSchedule` command (a doctor's month at 30 a day fits).
pub const SLOTS_PER_PUBLISH_MAX: usize = 1_024;
/// Longest slot.
pub const SLOT_DURATION_MINUTES_MAX: u16 = 8 * 60;
/// Patients one slot may take (capacity plus overbooking).
pub const SLOT_CAPACITY_MAX: u16 = 200;
/// Doctors in one joint consultation (a county doctor and a few provincial specialists).
pub const JOINT_CONSULT_DOCTORS_MAX: usize = 8;
/// Patients waiting for one doctor.
pub const WAITLIST_PER_DOCTOR_MAX: usize = 1_024;
/// Beds added to a ward in one command.
pub const BEDS_PER_COMMAND_MAX: u32 = 512;
/// Beds in one ward.
pub const BEDS_PER_WARD_MAX: usize = 4_096;
/// Length of free-text fields (names, reasons, sub-specialty tags), in bytes.
pub const TEXT_BYTES_MAX: usize = 256;
/// Length of a referral's reason or outcome code (an ICD-10 code, "discharged"), in bytes.
pub const REFERRAL_CODE_BYTES_MAX: usize = 32;
/// Steps one referral's history keeps (a referral bouncing between matched and no capacity
/// would otherwise grow without bound): the request and the newest after it.
pub const REFERRAL_STEPS_MAX: usize = 64;
/// Items in one list field of a region record (a doctor's specialties, languages and
/// sub-specialty tags, a hospital's languages and alliances, a ward's equipment): every
/// index and view entry is built per item, so the lists are bounded like the texts.
pub const RECORD_LIST_ITEMS_MAX: usize = 32;
/// Hospitals in one region (the national preset has 2,400 plus 12,000 grassroots points).
pub const HOSPITALS_MAX: usize = 20_000;
/// Wards in one region (the national preset has 30,530).
pub const WARDS_PER_REGION_MAX: usize = 100_000;
/// Physical beds in one region (the national preset has 902,107). Beds are records in the
/// replicated state: without a bound, one import of many wards of `BEDS_PER_WARD_MAX` beds
/// each would exhaust memory inside apply, on every replica.
pub const BEDS_PER_REGION_MAX: usize = 2_000_000;
/// Doctors in one region (the national preset has 266,517).
pub const DOCTORS_PER_REGION_MAX: usize = 500_000;
/// Roads in one region (the national preset has 51,921).
pub const ROADS_PER_REGION_MAX: usize = 200_000;
/// Typed referral paths in one region (the national preset has 284,058).
pub const REFERRAL_PATHS_PER_REGION_MAX: usize = 1_000_000;
/// Longest travel edge, in minutes (a 700 km county-to-province journey fits).
pub const TRAVEL_MINUTES_MAX: u32 = 24 * 60;
/// Longest a referral may stay open.
pub const REFERRAL_TTL_MS_MAX: u64 = 30 * MS_PER_DAY;
/// Hospitals beyond the origin's reach that one allocation or match looks at when nothing
/// inside the reach matched: the nearest ones that have the specialty (or a fitting ward).
/// Bounds the cost of a refusal (nothing free anywhere) to the reach plus this step, instead
/// of a walk of every doctor of the region; a patient sent further than this many hospitals
/// beyond the reach is better refused and escalated by a person.
pub const BEYOND_REACH_HOSPITALS_MAX: usize = 8;
/// Hospitals beyond the reach that step settles at most, whether they could serve or not, so
/// a request nothing in a national region could serve does not walk the whole country (a
/// hospital that cannot serve costs only a look at its ward list).
pub const BEYOND_REACH_HOSPITALS_SEEN_MAX: usize = 512;
/// Holds a single Tick may expire; the rest expire on the following ticks, so one tick
/// stays bounded in time even after a long leaderless gap.
pub const EXPIRIES_PER_TICK_MAX: usize = 65_536;
/// Resolved records pruned per tick, for the same reason.
pub const PRUNES_PER_TICK_MAX: usize = 65_536;
/// Resolved bed holds kept for reads: those of the last `resolved_retention_ms` (a day by
/// default) or the newest this many, whichever are fewer, so memory stays bounded under any
/// rate of holds (~150 MB of holds at ~70 bytes each; a region the size of the GBA resolves
/// ~10^5 holds a day). The oldest resolved hold is forgotten as a new one is resolved.
pub const RESOLVED_BED_HOLDS_MAX: usize = 1 << 21;
/// Slots in one doctor's weekly template (a week of 15-minute slots, mornings and
/// afternoons, is 30 a day with every weekday set on each).
pub const TEMPLATE_SLOTS_MAX: usize = 128;
/// Longest rolling horizon, in days (a month ahead, as hospitals publish).
pub const HORIZON_DAYS_MAX: u16 = 31;
/// Doctor-days of templates one Tick expands: with `TEMPLATE_SLOTS_MAX` slots a day this
/// bounds a tick to 65,536 new slots; when midnight brings a new day for more doctors, the
/// rest roll on the following ticks (one a second).
pub const HORIZON_DOCTOR_DAYS_PER_TICK_MAX: usize = 512;
/// Slots one `WithdrawSlots` names.
pub const SLOTS_PER_WITHDRAW_MAX: usize = 1_024;

// Clients retry within seconds; the dedup window must cover a client's whole retry budget.
const _: () = assert!(crate::dedup::DEDUP_WINDOW_MS_DEFAULT >= MS_PER_MINUTE);
const _: () = assert!(HOLD_TTL_MS_MIN < MS_PER_MINUTE);

/// Most records one patient read (bookings and holds, waitlist entries) answers: a read
/// scans the retained seats and holds, so the answer, not the scan, is what this bounds.
pub const PATIENT_RECORDS_MAX: usize = 256;
/// Most slots one `FindSlots` answer may hold.
pub const FIND_SLOTS_LIMIT_MAX: usize = 500;
/// Most referrals one worklist page may hold.
pub const WORKLIST_LIMIT_MAX: usize = 500;
/// Most wards one `ListWards` page may hold.
pub const WARDS_PAGE_MAX: usize = 500;
/// Most hospitals one reach answer lists.
pub const REACH_HOSPITALS_MAX: usize = 1_000;

/// Length of a region id (the destination of a cross-region referral), in bytes; the
/// cluster's `[[regions]]` ids follow the same rule (`remote::is_region_key`).
pub const REGION_KEY_BYTES_MAX: usize = 32;
/// How long a referral's deadline waits, each time it passes, for a cross-region
/// confirmation already under way (`RemoteStage::Confirming`): the referral is not
/// expired while the destination may have confirmed its bed.
pub const REMOTE_CONFIRM_GRACE_MS: u64 = 60_000;
