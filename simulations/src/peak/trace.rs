//! The peak-day trace format, version 2 (version 1 still read): JSON lines.
//!
//! Line 1 is a [`Header`]; every further line is one [`Event`]: when to send it (`at_ms`
//! after the header's `start_ms`), the client-chosen `request_id`, the operation and its
//! arguments. An argument that names a record created by an earlier event (the hold of
//! event 17) is written `{"event": 17}` and resolved at replay time; a plain number is a
//! record id of the target cluster. Version 2 adds: traces of up to a year whose windows
//! reach any day, events timed relative to their slot (`after_slot_ms`), patient
//! attributes that matching uses ([`PatientAttrs`]), the one-call `book` and the bed
//! lifecycle (`discharge`, `mark_bed_clean`), and provenance in the header. See
//! `docs/simulation.md`, "Trace format (version 2)".

use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};

/// The `format` of the header line.
pub const TRACE_FORMAT: &str = "ninety-trace";
/// The version this code writes.
pub const TRACE_VERSION: u32 = 2;
/// The versions this code reads.
pub const TRACE_VERSIONS_READ: [u32; 2] = [1, 2];
/// Milliseconds in a day.
pub const MS_PER_DAY: u64 = 24 * 60 * 60 * 1000;
/// Latest `at_ms` of an event of a version-2 trace: a year (366 days) after its start.
pub const TRACE_SPAN_MS_MAX: u64 = 366 * MS_PER_DAY;
/// Latest `at_ms` of an event of a version-1 trace: a week after its start.
pub const TRACE_SPAN_MS_MAX_V1: u64 = 7 * MS_PER_DAY;
/// Most bytes of a header's free-text fields (description, source, licence).
pub const HEADER_TEXT_BYTES_MAX: usize = 4096;

/// The latest `at_ms` a trace of `version` may carry.
pub fn span_max(version: u32) -> u64 {
    if version == 1 {
        TRACE_SPAN_MS_MAX_V1
    } else {
        TRACE_SPAN_MS_MAX
    }
}

/// The first line of a trace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Always "ninety-trace".
    pub format: String,
    /// 1 or 2.
    pub version: u32,
    /// The scenario's name (free text for converted traces).
    pub scenario: String,
    /// The generator's seed (0 for converted traces).
    pub seed: u64,
    /// Wall-clock time of offset 0, Unix ms, in the trace's own time base.
    pub start_ms: u64,
    /// The `ninety_engine::generate` preset the ids refer to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// That preset's seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region_seed: Option<u64>,
    /// Length of the trace, minutes (informational; of each day when `days` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minutes: Option<u32>,
    /// Version 2: the days the trace spans (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<u32>,
    /// Version 2: what the trace is, one paragraph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Version 2: where it comes from (a URL, a dataset name, the command that made it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Version 2: the time zone of the trace's local clock ([`tz_offset_minutes`]:
    /// `UTC`, `+08:00`, `UTC-03:00` or a fixed-offset IANA name such as
    /// `Asia/Shanghai`); its local midnights are the trace's days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Version 2: the licence of the data (an SPDX id such as `CC0-1.0`, or free text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub licence: Option<String>,
}

impl Header {
    /// A header of the current version.
    pub fn new(scenario: &str, seed: u64, start_ms: u64) -> Header {
        Header {
            format: TRACE_FORMAT.into(),
            version: TRACE_VERSION,
            scenario: scenario.into(),
            seed,
            start_ms,
            region: None,
            region_seed: None,
            minutes: None,
            days: None,
            description: None,
            source: None,
            time_zone: None,
            licence: None,
        }
    }

    /// The offset of the trace's local clock from UTC, minutes (0 without a time zone).
    pub fn utc_offset_minutes(&self) -> i32 {
        self.time_zone
            .as_deref()
            .and_then(|tz| tz_offset_minutes(tz).ok())
            .unwrap_or(0)
    }

    /// The local midnight (Unix ms) that starts the trace's day 0: the day of `start_ms`
    /// on the trace's local clock.
    pub fn day0_ms(&self) -> u64 {
        local_midnight(self.start_ms, self.utc_offset_minutes())
    }

    /// The trace day (0 for the first) of a Unix ms of the trace's time base; negative
    /// before day 0.
    pub fn day_of(&self, unix_ms: u64) -> i64 {
        let d = i128::from(unix_ms) - i128::from(self.day0_ms());
        d.div_euclid(i128::from(MS_PER_DAY)) as i64
    }

    /// What is wrong with the version-2 header fields, if anything.
    fn check_v2(&self) -> Result<(), String> {
        let v2 = [
            ("days", self.days.is_some()),
            ("description", self.description.is_some()),
            ("source", self.source.is_some()),
            ("time_zone", self.time_zone.is_some()),
            ("licence", self.licence.is_some()),
        ];
        if self.version == 1 {
            if let Some((name, _)) = v2.iter().find(|(_, set)| *set) {
                return Err(format!("header field {name:?} needs trace version 2"));
            }
        }
        for (name, text) in [
            ("description", &self.description),
            ("source", &self.source),
            ("licence", &self.licence),
        ] {
            if text
                .as_ref()
                .is_some_and(|t| t.len() > HEADER_TEXT_BYTES_MAX)
            {
                return Err(format!(
                    "header field {name:?} is longer than {HEADER_TEXT_BYTES_MAX} bytes"
                ));
            }
        }
        if let Some(tz) = &self.time_zone {
            tz_offset_minutes(tz).map_err(|e| format!("header field \"time_zone\": {e}"))?;
        }
        Ok(())
    }
}

/// Fixed-offset IANA time zones of the built-in regions (none keeps daylight saving time).
pub const FIXED_ZONES: [(&str, i32); 12] = [
    ("Asia/Shanghai", 480),
    ("Asia/Hong_Kong", 480),
    ("Asia/Macau", 480),
    ("Asia/Kuala_Lumpur", 480),
    ("Asia/Manila", 480),
    ("Asia/Bangkok", 420),
    ("Asia/Ho_Chi_Minh", 420),
    ("Asia/Vientiane", 420),
    ("Asia/Phnom_Penh", 420),
    ("Asia/Jakarta", 420),
    ("Asia/Yangon", 390),
    ("America/Sao_Paulo", -180),
];

/// The UTC offset, minutes, of a time zone: `UTC`, `Z`, `+08:00`, `-0300`, `UTC+8`,
/// `UTC-03:00`, or one of [`FIXED_ZONES`] (zones without daylight saving time only: a
/// trace's clock is one fixed offset).
pub fn tz_offset_minutes(tz: &str) -> Result<i32, String> {
    let t = tz.trim();
    if let Some((_, m)) = FIXED_ZONES.iter().find(|(n, _)| *n == t) {
        return Ok(*m);
    }
    let rest = t
        .strip_prefix("UTC")
        .or_else(|| t.strip_prefix("GMT"))
        .unwrap_or(t);
    if rest.is_empty() || rest == "Z" {
        return Ok(0);
    }
    let bad = || {
        format!(
            "{tz:?} is not a time zone: expected UTC, +HH:MM, -HHMM, UTC+H or a fixed-offset \
             name ({})",
            FIXED_ZONES.map(|z| z.0).join(", ")
        )
    };
    let (sign, digits) = match rest.as_bytes().first() {
        Some(b'+') => (1, &rest[1..]),
        Some(b'-') => (-1, &rest[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = match digits.split_once(':') {
        Some((h, m)) => (h, m),
        None if digits.len() == 4 => digits.split_at(2),
        None => (digits, "0"),
    };
    let all_digits =
        |s: &str| !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(h) || !all_digits(m) {
        return Err(bad());
    }
    let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 14 || m > 59 {
        return Err(bad());
    }
    Ok(sign * (h * 60 + m))
}

/// The local midnight (Unix ms) of the day `unix_ms` falls on, at `offset_minutes` from UTC.
pub fn local_midnight(unix_ms: u64, offset_minutes: i32) -> u64 {
    let off = i128::from(offset_minutes) * 60_000;
    let local = i128::from(unix_ms) + off;
    let midnight = local - local.rem_euclid(i128::from(MS_PER_DAY)) - off;
    midnight.clamp(0, i128::from(u64::MAX)) as u64
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm);
/// `None` for a month or day out of range or a year outside 1970..=9999.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> Option<i64> {
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if d > month_days[(m - 1) as usize] {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// The UTC date (year, month, day) of a Unix ms.
pub fn civil_from_unix_ms(unix_ms: u64) -> (i64, u32, u32) {
    let z = (unix_ms / MS_PER_DAY) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `YYYY-MM-DD` of the UTC day of a Unix ms.
pub fn utc_date(unix_ms: u64) -> String {
    let (y, m, d) = civil_from_unix_ms(unix_ms);
    format!("{y:04}-{m:02}-{d:02}")
}

/// What matching may use of a patient (version 2), each optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatientAttrs {
    /// An age band: `LO-HI` or `LO+` years (`0-14`, `65+`). A child's band (`HI` at most
    /// [`CHILD_AGE_MAX`]) makes `allocate_bed` without a specialty ask for a pediatric ward.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_band: Option<String>,
    /// `male` or `female`: `allocate_bed` sends it (single-sex wards).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sex: Option<String>,
    /// A language the doctor must speak (engine codes `zh yue en pt vi th lo km my ms id`):
    /// `match_specialist`, `allocate_slot` and `book` send it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// The oldest age a child's band may reach.
pub const CHILD_AGE_MAX: u32 = 14;
/// Language codes of the engine.
pub const LANGUAGES: [&str; 11] = [
    "zh", "yue", "en", "pt", "vi", "th", "lo", "km", "my", "ms", "id",
];

/// The band's (low, high) years; `high` is `None` for `LO+`.
pub fn parse_age_band(band: &str) -> Result<(u32, Option<u32>), String> {
    let bad = || format!("age_band {band:?}: expected LO-HI or LO+ years (0-14, 65+)");
    let num = |s: &str| -> Result<u32, String> {
        match s.parse::<u32>() {
            Ok(n) if n <= 130 && !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
            _ => Err(bad()),
        }
    };
    if let Some(lo) = band.strip_suffix('+') {
        return Ok((num(lo)?, None));
    }
    let (lo, hi) = band.split_once('-').ok_or_else(bad)?;
    let (lo, hi) = (num(lo)?, num(hi)?);
    if lo > hi {
        return Err(bad());
    }
    Ok((lo, Some(hi)))
}

/// The band of an age in years: `0-14`, `15-44`, `45-64`, `65+`.
pub fn age_band_of(age: u32) -> &'static str {
    match age {
        0..=14 => "0-14",
        15..=44 => "15-44",
        45..=64 => "45-64",
        _ => "65+",
    }
}

impl PatientAttrs {
    /// Whether the band is a child's.
    pub fn is_child(&self) -> bool {
        self.age_band
            .as_deref()
            .and_then(|b| parse_age_band(b).ok())
            .is_some_and(|(_, hi)| hi.is_some_and(|h| h <= CHILD_AGE_MAX))
    }

    /// Whether no attribute is set.
    pub fn is_empty(&self) -> bool {
        self.age_band.is_none() && self.sex.is_none() && self.language.is_none()
    }

    fn check(&self) -> Result<(), String> {
        if let Some(b) = &self.age_band {
            parse_age_band(b)?;
        }
        if let Some(s) = &self.sex {
            if s != "male" && s != "female" {
                return Err(format!("patient_attrs.sex {s:?}: expected male or female"));
            }
        }
        if let Some(l) = &self.language {
            if !LANGUAGES.contains(&l.as_str()) {
                return Err(format!(
                    "patient_attrs.language {l:?}: expected one of {}",
                    LANGUAGES.join(" ")
                ));
            }
        }
        Ok(())
    }
}

/// A record id: either literal, or the record created by an earlier event of the trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Ref {
    /// An id that exists on the target cluster.
    Id(u64),
    /// What event `event` created: its hold, booking, consultation or referral, or (for a
    /// hospital argument) the hospital it matched.
    Event { event: u64 },
}

impl Ref {
    /// The event referred to, if any.
    pub fn event(self) -> Option<u64> {
        match self {
            Ref::Id(_) => None,
            Ref::Event { event } => Some(event),
        }
    }
}

/// Clinical urgency, P1 the most urgent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    P1,
    P2,
    P3,
    P4,
}

/// How a consultation takes place.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Any,
    InPerson,
    Remote,
}

/// Which door a request comes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Public,
    Referral,
}

/// A hospital tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Primary,
    Secondary,
    Tertiary,
}

/// Where the patient lives: a hospital or grassroots point of the region, or a map point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Home {
    Hospital {
        hospital: u32,
    },
    Point {
        lat_micro_deg: i32,
        lon_micro_deg: i32,
    },
}

/// One operation and its arguments (the `op` field names it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Ranks slots for a need (read-only). `Matching/MatchSpecialist`.
    MatchSpecialist {
        from_hospital: u32,
        specialty: String,
        urgency: Urgency,
        mode: Mode,
        window_start_ms: u64,
        window_end_ms: u64,
        max_travel_minutes: u32,
        channel: Channel,
        limit: u32,
    },
    /// Chooses and holds the best slot. `Matching/AllocateSlot`.
    AllocateSlot {
        patient: String,
        from_hospital: u32,
        specialty: String,
        urgency: Urgency,
        mode: Mode,
        window_start_ms: u64,
        window_end_ms: u64,
        max_travel_minutes: u32,
        ttl_ms: u64,
        channel: Channel,
        /// The triaged referral a referral-channel seat serves (required for that channel).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        referral: Option<Ref>,
    },
    /// Holds a seat of a given slot. `Scheduling/HoldSlot`.
    HoldSlot {
        slot: Ref,
        patient: String,
        ttl_ms: u64,
        channel: Channel,
    },
    /// Books a slot hold. `Scheduling/BookSlot`.
    BookSlot { hold: Ref },
    /// Cancels a booking or releases a slot hold. `Scheduling/CancelBooking`.
    CancelBooking { hold: Ref, reason: String },
    /// The patient did not come. `Scheduling/MarkNoShow`.
    MarkNoShow { hold: Ref },
    /// Holds a bed of a ward (`bed` 0: any). `BedHolds/HoldBed`.
    HoldBed {
        ward: u32,
        bed: u32,
        patient: String,
        ttl_ms: u64,
        urgency: Urgency,
        channel: Channel,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        referral: Option<Ref>,
    },
    /// Chooses and holds the best bed. `Matching/AllocateBed`.
    AllocateBed {
        patient: String,
        from_hospital: u32,
        specialty: String,
        urgency: Urgency,
        max_travel_minutes: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_tier: Option<Tier>,
        ttl_ms: u64,
        channel: Channel,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        referral: Option<Ref>,
    },
    /// Admits the patient of a bed hold. `BedHolds/ConfirmHold`.
    ConfirmHold { hold: Ref },
    /// Releases a bed hold. `BedHolds/ReleaseHold`.
    ReleaseHold { hold: Ref, reason: String },
    /// Reads a bed hold (e.g. to see it expired). `BedHolds/GetHold`.
    GetHold { hold: Ref },
    /// Counts a hospital's beds by state. `BedHolds/WardAvailability`.
    WardAvailability { hospital: u32 },
    /// Holds a common remote time of several doctors. `Scheduling/HoldJointConsult`.
    HoldJointConsult {
        patient: String,
        doctors: Vec<u32>,
        window_start_ms: u64,
        window_end_ms: u64,
        duration_minutes: u32,
        ttl_ms: u64,
        requesting_hospital: u32,
    },
    /// `Scheduling/BookJointConsult`.
    BookJointConsult { consult: Ref },
    /// `Scheduling/ReleaseJointConsult`.
    ReleaseJointConsult { consult: Ref, reason: String },
    /// `Referrals/RequestReferral`.
    RequestReferral {
        patient: String,
        from_hospital: u32,
        specialty: String,
        urgency: Urgency,
        mode: Mode,
        needs_bed: bool,
        reason_code: String,
        ttl_ms: u64,
    },
    /// `Referrals/TriageReferral`.
    TriageReferral {
        referral: Ref,
        urgency: Urgency,
        specialty: String,
    },
    /// Attaches capacity held for the referral's patient (a bed hold and/or a slot hold,
    /// usually `{"event": <the allocate_bed>}`) to a triaged referral; `to_hospital`,
    /// `hold_ttl_ms`, `max_travel_minutes` 0 let the server choose (the current server
    /// accepts only 0). `Referrals/MatchReferral`.
    MatchReferral {
        referral: Ref,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bed_hold: Option<Ref>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        slot_hold: Option<Ref>,
        to_hospital: u32,
        hold_ttl_ms: u64,
        max_travel_minutes: u32,
    },
    /// `Referrals/AcceptReferral`; `hospital` is usually `{"event": <the match>}`.
    AcceptReferral { referral: Ref, hospital: Ref },
    /// `Referrals/StartTransit`; the ETA is the send time plus `eta_after_ms`.
    StartTransit { referral: Ref, eta_after_ms: u64 },
    /// `Referrals/AdmitReferral` (confirms the bed held ahead).
    AdmitReferral { referral: Ref },
    /// `Referrals/CompleteReferral`.
    CompleteReferral { referral: Ref, outcome: String },
    /// `Referrals/CancelReferral`.
    CancelReferral { referral: Ref, reason: String },
    /// Version 2. Finds, holds and books the best slot in one event (as IHE `$book` after
    /// `$find`): `Matching/AllocateSlot`, then `Scheduling/BookSlot` of its hold.
    Book {
        patient: String,
        from_hospital: u32,
        specialty: String,
        urgency: Urgency,
        mode: Mode,
        window_start_ms: u64,
        window_end_ms: u64,
        max_travel_minutes: u32,
        channel: Channel,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        referral: Option<Ref>,
    },
    /// Version 2. The patient in the bed leaves: `Capacity/Discharge`. `bed` is a bed id,
    /// or `{"event": N}`: the bed event N's hold (`hold_bed`, `allocate_bed`) took.
    Discharge { bed: Ref },
    /// Version 2. The discharged bed was cleaned: `Capacity/MarkBedClean`.
    MarkBedClean { bed: Ref },
}

impl Op {
    /// The op's name as written in the trace.
    pub fn name(&self) -> &'static str {
        match self {
            Op::MatchSpecialist { .. } => "match_specialist",
            Op::AllocateSlot { .. } => "allocate_slot",
            Op::HoldSlot { .. } => "hold_slot",
            Op::BookSlot { .. } => "book_slot",
            Op::CancelBooking { .. } => "cancel_booking",
            Op::MarkNoShow { .. } => "mark_no_show",
            Op::HoldBed { .. } => "hold_bed",
            Op::AllocateBed { .. } => "allocate_bed",
            Op::ConfirmHold { .. } => "confirm_hold",
            Op::ReleaseHold { .. } => "release_hold",
            Op::GetHold { .. } => "get_hold",
            Op::WardAvailability { .. } => "ward_availability",
            Op::HoldJointConsult { .. } => "hold_joint_consult",
            Op::BookJointConsult { .. } => "book_joint_consult",
            Op::ReleaseJointConsult { .. } => "release_joint_consult",
            Op::RequestReferral { .. } => "request_referral",
            Op::TriageReferral { .. } => "triage_referral",
            Op::MatchReferral { .. } => "match_referral",
            Op::AcceptReferral { .. } => "accept_referral",
            Op::StartTransit { .. } => "start_transit",
            Op::AdmitReferral { .. } => "admit_referral",
            Op::CompleteReferral { .. } => "complete_referral",
            Op::CancelReferral { .. } => "cancel_referral",
            Op::Book { .. } => "book",
            Op::Discharge { .. } => "discharge",
            Op::MarkBedClean { .. } => "mark_bed_clean",
        }
    }

    /// Whether the op is new in version 2.
    pub fn is_v2(&self) -> bool {
        matches!(
            self,
            Op::Book { .. } | Op::Discharge { .. } | Op::MarkBedClean { .. }
        )
    }

    /// Whether the op holds a slot seat (what `after_slot_ms` and a `hold` may refer to).
    pub fn holds_slot(&self) -> bool {
        matches!(
            self,
            Op::AllocateSlot { .. } | Op::HoldSlot { .. } | Op::Book { .. }
        )
    }

    /// Whether the op holds a bed (what a `bed` reference may refer to).
    pub fn holds_bed(&self) -> bool {
        matches!(self, Op::HoldBed { .. } | Op::AllocateBed { .. })
    }

    /// The slot hold an op acts on, when it is one of an earlier event (what
    /// `after_slot_ms` times the event from).
    pub fn slot_hold_ref(&self) -> Option<u64> {
        match self {
            Op::BookSlot { hold } | Op::CancelBooking { hold, .. } | Op::MarkNoShow { hold } => {
                hold.event()
            }
            _ => None,
        }
    }

    /// The patient the op is for, if it names one.
    pub fn patient(&self) -> Option<&str> {
        match self {
            Op::AllocateSlot { patient, .. }
            | Op::HoldSlot { patient, .. }
            | Op::HoldBed { patient, .. }
            | Op::AllocateBed { patient, .. }
            | Op::HoldJointConsult { patient, .. }
            | Op::RequestReferral { patient, .. }
            | Op::Book { patient, .. } => Some(patient),
            _ => None,
        }
    }

    /// The slot window the op searches, if any: (start, end), Unix ms.
    pub fn window(&self) -> Option<(u64, u64)> {
        match self {
            Op::MatchSpecialist {
                window_start_ms,
                window_end_ms,
                ..
            }
            | Op::AllocateSlot {
                window_start_ms,
                window_end_ms,
                ..
            }
            | Op::HoldJointConsult {
                window_start_ms,
                window_end_ms,
                ..
            }
            | Op::Book {
                window_start_ms,
                window_end_ms,
                ..
            } => Some((*window_start_ms, *window_end_ms)),
            _ => None,
        }
    }

    /// The op's slot window, mutable.
    pub fn window_mut(&mut self) -> Option<(&mut u64, &mut u64)> {
        match self {
            Op::MatchSpecialist {
                window_start_ms,
                window_end_ms,
                ..
            }
            | Op::AllocateSlot {
                window_start_ms,
                window_end_ms,
                ..
            }
            | Op::HoldJointConsult {
                window_start_ms,
                window_end_ms,
                ..
            }
            | Op::Book {
                window_start_ms,
                window_end_ms,
                ..
            } => Some((window_start_ms, window_end_ms)),
            _ => None,
        }
    }

    /// Every reference to an earlier event among the arguments.
    pub fn refs(&self) -> Vec<Ref> {
        match self {
            Op::HoldSlot { slot, .. } => vec![*slot],
            Op::BookSlot { hold }
            | Op::CancelBooking { hold, .. }
            | Op::MarkNoShow { hold }
            | Op::ConfirmHold { hold }
            | Op::ReleaseHold { hold, .. }
            | Op::GetHold { hold } => vec![*hold],
            Op::HoldBed { referral, .. }
            | Op::AllocateBed { referral, .. }
            | Op::AllocateSlot { referral, .. }
            | Op::Book { referral, .. } => referral.iter().copied().collect(),
            Op::Discharge { bed } | Op::MarkBedClean { bed } => vec![*bed],
            Op::BookJointConsult { consult } | Op::ReleaseJointConsult { consult, .. } => {
                vec![*consult]
            }
            Op::AcceptReferral { referral, hospital } => vec![*referral, *hospital],
            Op::MatchReferral {
                referral,
                bed_hold,
                slot_hold,
                ..
            } => std::iter::once(*referral)
                .chain(*bed_hold)
                .chain(*slot_hold)
                .collect(),
            Op::TriageReferral { referral, .. }
            | Op::StartTransit { referral, .. }
            | Op::AdmitReferral { referral }
            | Op::CompleteReferral { referral, .. }
            | Op::CancelReferral { referral, .. } => vec![*referral],
            Op::MatchSpecialist { .. }
            | Op::WardAvailability { .. }
            | Op::HoldJointConsult { .. }
            | Op::RequestReferral { .. } => Vec::new(),
        }
    }

    /// Rewrites every reference to an earlier event with `f(event)`.
    pub fn map_event_refs(&mut self, f: &dyn Fn(u64) -> u64) {
        let fix = |r: &mut Ref| {
            if let Ref::Event { event } = r {
                *event = f(*event);
            }
        };
        match self {
            Op::HoldSlot { slot, .. } => fix(slot),
            Op::BookSlot { hold }
            | Op::CancelBooking { hold, .. }
            | Op::MarkNoShow { hold }
            | Op::ConfirmHold { hold }
            | Op::ReleaseHold { hold, .. }
            | Op::GetHold { hold } => fix(hold),
            Op::HoldBed { referral, .. }
            | Op::AllocateBed { referral, .. }
            | Op::AllocateSlot { referral, .. }
            | Op::Book { referral, .. } => {
                if let Some(r) = referral {
                    fix(r)
                }
            }
            Op::Discharge { bed } | Op::MarkBedClean { bed } => fix(bed),
            Op::BookJointConsult { consult } | Op::ReleaseJointConsult { consult, .. } => {
                fix(consult)
            }
            Op::AcceptReferral { referral, hospital } => {
                fix(referral);
                fix(hospital);
            }
            Op::MatchReferral {
                referral,
                bed_hold,
                slot_hold,
                ..
            } => {
                fix(referral);
                if let Some(r) = bed_hold {
                    fix(r);
                }
                if let Some(r) = slot_hold {
                    fix(r);
                }
            }
            Op::TriageReferral { referral, .. }
            | Op::StartTransit { referral, .. }
            | Op::AdmitReferral { referral }
            | Op::CompleteReferral { referral, .. }
            | Op::CancelReferral { referral, .. } => fix(referral),
            Op::MatchSpecialist { .. }
            | Op::WardAvailability { .. }
            | Op::HoldJointConsult { .. }
            | Op::RequestReferral { .. } => {}
        }
    }

    /// Whether the op only reads.
    pub fn is_read(&self) -> bool {
        matches!(
            self,
            Op::MatchSpecialist { .. } | Op::GetHold { .. } | Op::WardAvailability { .. }
        )
    }
}

/// One request of the trace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The event's id: unique, increasing; what later events refer to.
    pub id: u64,
    /// When to send it: milliseconds after the header's `start_ms`.
    pub at_ms: u64,
    /// The idempotency key (32 lowercase hex digits or a UUID), chosen by the client.
    pub request_id: String,
    #[serde(flatten)]
    pub op: Op,
    /// The patient's language (engine code: zh, yue, en, vi, ...), if known. Informational
    /// (what the patient speaks; a language the doctor *must* speak is
    /// `patient_attrs.language`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// The patient's home, if known. Informational (the API measures travel from
    /// `from_hospital`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<Home>,
    /// Version 2: send the event this long after the start of the slot its `hold` (an
    /// earlier `allocate_slot`, `hold_slot` or `book`) holds, as the cluster answered it;
    /// negative: before the start (a late cancellation). `at_ms` is then the trace's own
    /// estimate, and the replay sends at the later of the two. Only on `book_slot`,
    /// `cancel_booking` and `mark_no_show` whose `hold` is `{"event": N}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_slot_ms: Option<i64>,
    /// Version 2: what matching may use of the patient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_attrs: Option<PatientAttrs>,
}

impl Event {
    /// An event with no informational fields.
    pub fn new(id: u64, at_ms: u64, request_id: String, op: Op) -> Event {
        Event {
            id,
            at_ms,
            request_id,
            op,
            language: None,
            home: None,
            after_slot_ms: None,
            patient_attrs: None,
        }
    }

    /// Whether the event uses anything new in version 2.
    pub fn is_v2(&self) -> bool {
        self.op.is_v2() || self.after_slot_ms.is_some() || self.patient_attrs.is_some()
    }
}

/// A whole trace in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    pub header: Header,
    pub events: Vec<Event>,
}

/// Why a trace could not be read: the 1-based line and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trace line {line}: {message}")]
pub struct TraceError {
    pub line: usize,
    pub message: String,
}

fn span_error(at_ms: u64, version: u32) -> String {
    let (max, what) = if version == 1 {
        (TRACE_SPAN_MS_MAX_V1, "a week: version 1")
    } else {
        (TRACE_SPAN_MS_MAX, "366 days")
    };
    format!("at_ms {at_ms} is beyond the longest trace span, {max} ms ({what})")
}

fn err(line: usize, message: impl Into<String>) -> TraceError {
    TraceError {
        line,
        message: message.into(),
    }
}

/// What an earlier event holds, for checking references to it.
#[derive(Clone, Copy)]
struct Made {
    slot: bool,
    bed: bool,
}

/// Checks an event's references: to earlier events only, a `bed` to a bed hold, and
/// `after_slot_ms` from a slot hold.
fn check_refs(e: &Event, known: &std::collections::HashMap<u64, Made>) -> Result<(), String> {
    for r in e.op.refs() {
        if let Some(target) = r.event() {
            if !known.contains_key(&target) {
                return Err(format!(
                    "event {} refers to event {target}, which is not an earlier event",
                    e.id
                ));
            }
        }
    }
    if let Op::Discharge { bed } | Op::MarkBedClean { bed } = &e.op {
        if let Some(target) = bed.event() {
            if !known.get(&target).is_some_and(|m| m.bed) {
                return Err(format!(
                    "event {}: bed {{\"event\": {target}}} must be an earlier hold_bed or allocate_bed",
                    e.id
                ));
            }
        }
    }
    let Some(off) = e.after_slot_ms else {
        return Ok(());
    };
    let target = e.op.slot_hold_ref().ok_or_else(|| {
        format!(
            "event {}: after_slot_ms needs book_slot, cancel_booking or mark_no_show with \
             hold {{\"event\": N}}",
            e.id
        )
    })?;
    if !known.get(&target).is_some_and(|m| m.slot) {
        return Err(format!(
            "event {}: after_slot_ms times it from event {target}, which holds no slot \
             (allocate_slot, hold_slot or book)",
            e.id
        ));
    }
    if off.unsigned_abs() > TRACE_SPAN_MS_MAX {
        return Err(format!(
            "event {}: after_slot_ms {off} is beyond a year either way",
            e.id
        ));
    }
    Ok(())
}

/// Checks one event against the header's version and the events before it (by id).
fn check_event(
    e: &Event,
    prev: Option<&Event>,
    version: u32,
    known: &std::collections::HashMap<u64, Made>,
) -> Result<(), String> {
    if version == 1 && e.is_v2() {
        return Err(format!(
            "event {} uses {} of trace version 2, but the header says version 1",
            e.id,
            if e.op.is_v2() {
                format!("op {:?}", e.op.name())
            } else if e.after_slot_ms.is_some() {
                "\"after_slot_ms\"".into()
            } else {
                "\"patient_attrs\"".into()
            }
        ));
    }
    if e.at_ms > span_max(version) {
        return Err(span_error(e.at_ms, version));
    }
    if let Some(prev) = prev {
        if e.id <= prev.id {
            return Err(format!(
                "event id {} is not above the previous {}",
                e.id, prev.id
            ));
        }
        if e.at_ms < prev.at_ms {
            return Err(format!(
                "at_ms {} is before the previous {}",
                e.at_ms, prev.at_ms
            ));
        }
    }
    check_refs(e, known)?;
    if let Some(a) = &e.patient_attrs {
        a.check().map_err(|m| format!("event {}: {m}", e.id))?;
    }
    Ok(())
}

impl Trace {
    /// Writes the trace as JSON lines.
    pub fn write(&self, mut out: impl Write) -> std::io::Result<()> {
        serde_json::to_writer(&mut out, &self.header)?;
        out.write_all(b"\n")?;
        for e in &self.events {
            serde_json::to_writer(&mut out, e)?;
            out.write_all(b"\n")?;
        }
        out.flush()
    }

    /// The trace as one string of JSON lines.
    pub fn to_jsonl(&self) -> String {
        let mut v = Vec::new();
        let _ = self.write(&mut v);
        String::from_utf8(v).unwrap_or_default()
    }

    /// Reads and checks a header line.
    fn read_header(first: &str) -> Result<Header, TraceError> {
        let raw: serde_json::Value =
            serde_json::from_str(first).map_err(|e| err(1, format!("header is not JSON: {e}")))?;
        match raw.get("format").and_then(|f| f.as_str()) {
            Some(TRACE_FORMAT) => {}
            other => {
                return Err(err(
                    1,
                    format!("header format is {other:?}, expected \"{TRACE_FORMAT}\""),
                ))
            }
        }
        match raw.get("version").and_then(|v| v.as_u64()) {
            Some(v) if TRACE_VERSIONS_READ.iter().any(|&r| u64::from(r) == v) => {}
            Some(v) => {
                return Err(err(
                    1,
                    format!("unsupported trace version {v} (this build reads versions 1 and 2)"),
                ))
            }
            None => return Err(err(1, "header has no numeric \"version\"")),
        }
        let header: Header =
            serde_json::from_value(raw).map_err(|e| err(1, format!("bad header: {e}")))?;
        header.check_v2().map_err(|m| err(1, m))?;
        Ok(header)
    }

    /// Reads and checks a trace: the header's format and version, every line's JSON,
    /// increasing ids, non-decreasing `at_ms` within the version's span, references to
    /// earlier events only (a `bed` to a bed hold, `after_slot_ms` to a slot hold), valid
    /// patient attributes, and nothing of version 2 in a version-1 trace.
    pub fn read(input: impl BufRead) -> Result<Trace, TraceError> {
        let mut lines = input.lines();
        let first = match lines.next() {
            None => return Err(err(1, "empty trace: expected a header line")),
            Some(l) => l.map_err(|e| err(1, format!("cannot read: {e}")))?,
        };
        let header = Trace::read_header(&first)?;
        let mut events: Vec<Event> = Vec::new();
        let mut known = std::collections::HashMap::new();
        for (i, line) in lines.enumerate() {
            let n = i + 2;
            let line = line.map_err(|e| err(n, format!("cannot read: {e}")))?;
            if line.trim().is_empty() {
                return Err(err(n, "empty line"));
            }
            let e: Event = serde_json::from_str(&line).map_err(|e| err(n, e.to_string()))?;
            check_event(&e, events.last(), header.version, &known).map_err(|m| err(n, m))?;
            let made = Made {
                slot: e.op.holds_slot(),
                bed: e.op.holds_bed(),
            };
            known.insert(e.id, made);
            events.push(e);
        }
        Ok(Trace { header, events })
    }

    /// Checks that every event is due within the version's span (what `read` checks per
    /// line, for traces built in memory).
    pub fn check_span(&self) -> Result<(), String> {
        let v = self.header.version;
        match self.events.iter().find(|e| e.at_ms > span_max(v)) {
            Some(e) => Err(format!("event {}: {}", e.id, span_error(e.at_ms, v))),
            None => Ok(()),
        }
    }

    /// Checks a trace built in memory as `read` checks a file (the header and every
    /// event), naming the event.
    pub fn check(&self) -> Result<(), String> {
        self.header.check_v2()?;
        let mut known = std::collections::HashMap::new();
        let mut prev: Option<&Event> = None;
        for e in &self.events {
            check_event(e, prev, self.header.version, &known)?;
            let made = Made {
                slot: e.op.holds_slot(),
                bed: e.op.holds_bed(),
            };
            known.insert(e.id, made);
            prev = Some(e);
        }
        Ok(())
    }

    /// Reads a trace file.
    pub fn read_file(path: &std::path::Path) -> Result<Trace, String> {
        let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Trace::read(std::io::BufReader::new(f)).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The trace cut to its first `days` days (events due before the end of local day
    /// `days - 1`, [`Header::day_of`]); references only point back, so nothing dangles.
    pub fn first_days(&self, days: u32) -> Trace {
        let end = self.header.day0_ms() + u64::from(days) * MS_PER_DAY;
        let events = self
            .events
            .iter()
            .take_while(|e| self.header.start_ms.saturating_add(e.at_ms) < end)
            .cloned()
            .collect();
        Trace {
            header: self.header.clone(),
            events,
        }
    }

    /// The trace days (0 for the first, [`Header::day_of`]) that slot windows reach:
    /// (first, last), or `None` when no event searches slots.
    pub fn window_days(&self) -> Option<(i64, i64)> {
        let mut span: Option<(i64, i64)> = None;
        for (s, e) in self.events.iter().filter_map(|e| e.op.window()) {
            let (a, b) = (
                self.header.day_of(s),
                self.header.day_of(e.saturating_sub(1).max(s)),
            );
            span = Some(span.map_or((a, b), |(lo, hi)| (lo.min(a), hi.max(b))));
        }
        span
    }
}
