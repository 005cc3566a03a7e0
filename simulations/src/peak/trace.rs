//! The peak-day trace format, version 1: JSON lines.
//!
//! Line 1 is a [`Header`]; every further line is one [`Event`]: when to send it (`at_ms`
//! after the header's `start_ms`), the client-chosen `request_id`, the operation and its
//! arguments. An argument that names a record created by an earlier event (the hold of
//! event 17) is written `{"event": 17}` and resolved at replay time; a plain number is a
//! record id of the target cluster. See `docs/simulation.md`, "Trace format (version 1)".

use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};

/// The `format` of the header line.
pub const TRACE_FORMAT: &str = "ninety-trace";
/// The version this code writes and reads.
pub const TRACE_VERSION: u32 = 1;
/// Latest `at_ms` of an event: a trace spans at most a week after its start.
pub const TRACE_SPAN_MS_MAX: u64 = 7 * 24 * 60 * 60 * 1000;

/// The first line of a trace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Always "ninety-trace".
    pub format: String,
    /// Always 1 for this format.
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
    /// Length of the trace, minutes (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minutes: Option<u32>,
}

impl Header {
    /// A version-1 header.
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
        }
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
            | Op::AllocateSlot { referral, .. } => referral.iter().copied().collect(),
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
            | Op::AllocateSlot { referral, .. } => {
                if let Some(r) = referral {
                    fix(r)
                }
            }
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
    /// The patient's language (engine code: zh, yue, en, vi, ...), if known. Informational:
    /// the current API has no language argument.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// The patient's home, if known. Informational (the API measures travel from
    /// `from_hospital`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<Home>,
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

fn span_error(at_ms: u64) -> String {
    format!("at_ms {at_ms} is beyond the longest trace span, {TRACE_SPAN_MS_MAX} ms (a week)")
}

fn err(line: usize, message: impl Into<String>) -> TraceError {
    TraceError {
        line,
        message: message.into(),
    }
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

    /// Reads and checks a trace: the header's format and version, every line's JSON,
    /// increasing ids, non-decreasing `at_ms`, and references to earlier events only.
    pub fn read(input: impl BufRead) -> Result<Trace, TraceError> {
        let mut lines = input.lines();
        let first = match lines.next() {
            None => return Err(err(1, "empty trace: expected a header line")),
            Some(l) => l.map_err(|e| err(1, format!("cannot read: {e}")))?,
        };
        let raw: serde_json::Value =
            serde_json::from_str(&first).map_err(|e| err(1, format!("header is not JSON: {e}")))?;
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
            Some(v) if v == u64::from(TRACE_VERSION) => {}
            Some(v) => {
                return Err(err(
                    1,
                    format!(
                        "unsupported trace version {v} (this build reads version {TRACE_VERSION})"
                    ),
                ))
            }
            None => return Err(err(1, "header has no numeric \"version\"")),
        }
        let header: Header =
            serde_json::from_value(raw).map_err(|e| err(1, format!("bad header: {e}")))?;
        let mut events: Vec<Event> = Vec::new();
        let mut known = std::collections::HashSet::new();
        for (i, line) in lines.enumerate() {
            let n = i + 2;
            let line = line.map_err(|e| err(n, format!("cannot read: {e}")))?;
            if line.trim().is_empty() {
                return Err(err(n, "empty line"));
            }
            let e: Event = serde_json::from_str(&line).map_err(|e| err(n, e.to_string()))?;
            if e.at_ms > TRACE_SPAN_MS_MAX {
                return Err(err(n, span_error(e.at_ms)));
            }
            if let Some(prev) = events.last() {
                if e.id <= prev.id {
                    return Err(err(
                        n,
                        format!("event id {} is not above the previous {}", e.id, prev.id),
                    ));
                }
                if e.at_ms < prev.at_ms {
                    return Err(err(
                        n,
                        format!("at_ms {} is before the previous {}", e.at_ms, prev.at_ms),
                    ));
                }
            }
            for r in e.op.refs() {
                if let Some(target) = r.event() {
                    if !known.contains(&target) {
                        return Err(err(
                            n,
                            format!(
                                "event {} refers to event {target}, which is not an earlier event",
                                e.id
                            ),
                        ));
                    }
                }
            }
            known.insert(e.id);
            events.push(e);
        }
        Ok(Trace { header, events })
    }

    /// Checks that every event is due within [`TRACE_SPAN_MS_MAX`] (what `read` checks per
    /// line, for traces built in memory).
    pub fn check_span(&self) -> Result<(), String> {
        match self.events.iter().find(|e| e.at_ms > TRACE_SPAN_MS_MAX) {
            Some(e) => Err(format!("event {}: {}", e.id, span_error(e.at_ms))),
            None => Ok(()),
        }
    }

    /// Reads a trace file.
    pub fn read_file(path: &std::path::Path) -> Result<Trace, String> {
        let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Trace::read(std::io::BufReader::new(f)).map_err(|e| format!("{}: {e}", path.display()))
    }
}
