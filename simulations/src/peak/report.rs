//! What a replay measured ([`ReplayResult`], also the JSON summary) and the HTML report.
//!
//! Every headline is relative to the trace: a share of the events the trace holds, not of
//! the requests that happened to be sent. Whatever the trace's length, the summary stays
//! small: the timeline has at most [`TIMELINE_BUCKETS_MAX`] buckets and each watched
//! hospital at most [`OCCUPANCY_SAMPLES_MAX`] occupancy samples.

use super::charts::{self, count, duration, pct, rate, Clock};
use super::replay::{Answer, Produced, ReplayOptions};
use super::trace::{Event, Op, Tier, Trace};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The tier split the platforms aim at: primary / secondary / tertiary, percent
/// (the brief's 50/35/15 goal, article 000).
pub const TIER_TARGET_PERCENT: [u32; 3] = [50, 35, 15];
/// Width of one travel-minutes histogram bucket.
pub const TRAVEL_BUCKET_MINUTES: u32 = 10;
/// Most timeline buckets, whatever the trace's length (a bucket is at least a wall second).
pub const TIMELINE_BUCKETS_MAX: u64 = 1_000;
/// Most bed-occupancy samples kept per hospital, whatever the trace's length.
pub const OCCUPANCY_SAMPLES_MAX: u64 = 1_000;
/// Most doctors listed in [`ReplayResult::top_doctors`].
pub const TOP_DOCTORS: usize = 20;

/// Latency percentiles, milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

/// One bucket of the timeline: the events due in `[at_ms, at_ms + bucket)` of trace time.
/// Every bucket from the trace's start to its last event is present (zeros included).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Start of the bucket, trace ms (after the trace's start).
    pub at_ms: u64,
    /// Events due in the bucket (sent or not).
    pub scheduled: u64,
    /// Sent (answered, refused or failed).
    pub sent: u64,
    pub ok: u64,
    /// Sent and refused or failed.
    pub failed: u64,
    /// Not sent: the in-flight limit was reached, or a dependency failed.
    pub not_sent: u64,
    /// Latency of the bucket's sent requests (0 when none was sent).
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Per operation: what became of the trace's events of that operation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OpSummary {
    /// Events of this operation in the trace.
    pub in_trace: u64,
    pub sent: u64,
    pub ok: u64,
    /// Sent and refused or failed.
    pub failed: u64,
    /// Not sent: the in-flight limit was reached at their scheduled time.
    pub overloaded: u64,
    /// Not sent: an event they refer to had failed or had not answered in time.
    pub skipped: u64,
    pub latency: Latency,
}

/// How many of the trace's requests of a kind succeeded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Events of the kind in the trace.
    pub requested: u64,
    /// Of those, how many were sent.
    pub sent: u64,
    /// Of those, how many succeeded (placed, admitted, matched).
    pub done: u64,
}

/// Matching quality.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Matching {
    /// Match requests (match_specialist, allocate_slot, allocate_bed, match_referral): in
    /// the trace, sent, and matched (found capacity, a hold, or candidates).
    pub all: Outcome,
    /// matched / in the trace, 0..1.
    pub rate: f64,
    /// matched / sent, 0..1.
    pub rate_of_sent: f64,
    /// Travel minutes of matched care, by bucket start (10-minute buckets).
    pub travel_minutes: BTreeMap<u32, u64>,
    /// Care taken (holds, bookings, matched referrals) by tier of the hospital: primary,
    /// secondary, tertiary.
    pub tiers: [u64; 3],
    /// The target split, percent.
    pub tier_target_percent: [u32; 3],
    /// Per match operation.
    pub by_op: BTreeMap<String, Outcome>,
}

/// Bed occupancy of one hospital over the trace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Occupancy {
    pub hospital: u32,
    pub name: String,
    /// (trace ms, occupied, held, total beds), at most [`OCCUPANCY_SAMPLES_MAX`]: the
    /// fullest sample of each stretch of trace time.
    pub samples: Vec<(u64, u32, u32, u32)>,
}

/// Everything a replay measured. Serialized as the JSON summary.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplayResult {
    pub scenario: String,
    pub description: String,
    pub seed: u64,
    pub targets: Vec<String>,
    pub speed: f64,
    pub max_in_flight: u64,
    /// When the replay started, Unix ms.
    pub started_unix_ms: u64,
    pub wall_ms: u64,
    /// The trace's clock at its offset 0 (the header's `start_ms`), Unix ms.
    pub trace_start_ms: u64,
    /// The trace clock's offset from UTC, minutes (480: UTC+08:00); the report's clock
    /// times are in it.
    pub clock_offset_minutes: i32,
    /// Trace time of the last event, ms.
    pub span_ms: u64,
    /// Events in the trace: every other count is a share of this.
    pub events: u64,
    /// Requests actually sent (not overloaded, not skipped).
    pub sent: u64,
    pub ok: u64,
    /// Sent and refused or failed.
    pub failed: u64,
    /// Not sent: the in-flight limit was reached at their scheduled time.
    pub overloaded: u64,
    /// Not sent: an event they refer to had failed or had not answered in time.
    pub skipped: u64,
    /// Events of the trace with no recorded fate (0 unless a replay was cut short).
    pub unrecorded: u64,
    /// Requests answered (ok or refused) per wall second, over the replay.
    pub achieved_rps: f64,
    /// The trace's average rate at this speed, requests per wall second.
    pub offered_rps: f64,
    /// Events due in the trace's busiest wall second at this speed.
    pub offered_peak_rps: u64,
    /// Trace time at which that second starts, ms.
    pub offered_peak_at_ms: u64,
    /// Bookings (book_slot, book_joint_consult): in the trace, sent, placed.
    pub bookings: Outcome,
    /// Bed holds confirmed (confirm_hold, admit_referral): in the trace, sent, admitted.
    pub admissions: Outcome,
    /// No-shows (mark_no_show): in the trace, sent, recorded.
    pub no_shows: Outcome,
    /// Requests refused because the patient is blocked (`.../BOOKING_BLOCKED`, after
    /// repeated no-shows).
    pub blocked: u64,
    /// Latency of every sent request, from its scheduled time.
    pub latency: Latency,
    /// Trace ms per timeline bucket (at least one wall second).
    pub timeline_bucket_ms: u64,
    pub timeline: Vec<Bucket>,
    /// Errors by kind: gRPC code, then the rejection code when the server attached one
    /// (`FAILED_PRECONDITION/NO_CAPACITY`), or `CLIENT_OVERLOAD`, `SKIPPED/...`.
    pub errors: BTreeMap<String, u64>,
    /// Errors by `op: kind`.
    pub errors_by_op: BTreeMap<String, u64>,
    /// The first server message seen for each `op: kind`, to tell why.
    pub error_examples: BTreeMap<String, String>,
    pub by_op: BTreeMap<String, OpSummary>,
    pub matching: Matching,
    /// Events of the trace that hold, admit or release beds.
    pub bed_events: u64,
    pub occupancy: Vec<Occupancy>,
    /// (doctor, hospital, slot and consultation holds given to them), busiest first, at
    /// most [`TOP_DOCTORS`]. Searches (read-only matches) are not load.
    pub top_doctors: Vec<(u32, u32, u64)>,
    /// `nproc` and the load average when the replay ended.
    pub machine: String,
    /// How the trace's days met the cluster's schedule (calendar or live mode, the days
    /// mapped, days without open slots).
    #[serde(default)]
    pub schedule: String,
    /// No-shows that blocked their patient from online booking (the policy's limit
    /// reached), each patient counted once.
    #[serde(default)]
    pub no_show_blocks: u64,
    /// Seats placed (holds and bookings of slots), by the trace day of their slot.
    #[serde(default)]
    pub slot_days: BTreeMap<u32, u64>,
}

fn histogram(sigfig: u8) -> Histogram<u64> {
    // 1 µs .. 10 min. new_with_bounds fails only on bad bounds or sigfig > 5.
    Histogram::new_with_bounds(1, 600_000_000, sigfig)
        .or_else(|_| Histogram::new(sigfig.min(5)))
        .unwrap_or_else(|e| panic!("histogram: {e}"))
}

fn latency(h: &Histogram<u64>) -> Latency {
    let ms = |us: u64| us as f64 / 1000.0;
    if h.is_empty() {
        return Latency::default();
    }
    Latency {
        count: h.len(),
        p50_ms: ms(h.value_at_quantile(0.5)),
        p90_ms: ms(h.value_at_quantile(0.9)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
        mean_ms: h.mean() / 1000.0,
    }
}

/// What became of one event.
enum Fate {
    Ok(Produced),
    /// Sent and refused or failed: (kind, server message).
    Failed(String, String),
    Overloaded,
    Skipped(String),
}

impl Fate {
    fn of(answer: Answer) -> Fate {
        match answer {
            Ok(p) => Fate::Ok(p),
            Err(kind_and_message) => {
                let (kind, message) = match kind_and_message.split_once('|') {
                    Some((k, m)) => (k.to_string(), m.to_string()),
                    None => (kind_and_message, String::new()),
                };
                if kind == "CLIENT_OVERLOAD" {
                    Fate::Overloaded
                } else if kind.starts_with("SKIPPED/") {
                    Fate::Skipped(kind)
                } else {
                    Fate::Failed(kind, message)
                }
            }
        }
    }

    fn sent(&self) -> bool {
        matches!(self, Fate::Ok(_) | Fate::Failed(..))
    }
}

/// Match requests: they find capacity or candidates, or not.
fn is_match(op: &Op) -> bool {
    matches!(
        op,
        Op::MatchSpecialist { .. }
            | Op::AllocateSlot { .. }
            | Op::AllocateBed { .. }
            | Op::MatchReferral { .. }
            | Op::Book { .. }
    )
}

/// Care actually taken at a hospital: a hold, booking or matched referral (searches are not).
fn takes_care(op: &Op) -> bool {
    matches!(
        op,
        Op::AllocateSlot { .. }
            | Op::AllocateBed { .. }
            | Op::HoldBed { .. }
            | Op::HoldSlot { .. }
            | Op::MatchReferral { .. }
            | Op::Book { .. }
    )
}

/// Ops that give a doctor a patient: slot holds, one-call bookings and joint consultations. A search
/// (`match_specialist`) names a doctor without taking their time.
fn loads_doctor(op: &Op) -> bool {
    matches!(
        op,
        Op::AllocateSlot { .. }
            | Op::HoldSlot { .. }
            | Op::Book { .. }
            | Op::HoldJointConsult { .. }
    )
}

/// Bookings placed, by operation name (a one-call booking op is named `book`).
fn is_booking(name: &str) -> bool {
    matches!(name, "book_slot" | "book_joint_consult" | "book")
}

/// Admissions: a bed hold confirmed.
fn is_admission(op: &Op) -> bool {
    matches!(op, Op::ConfirmHold { .. } | Op::AdmitReferral { .. })
}

/// The headline outcomes an op counts in: bookings, admissions, no-shows.
fn outcomes<'a>(r: &'a mut ReplayResult, op: &Op) -> Vec<&'a mut Outcome> {
    let mut v = Vec::new();
    if is_booking(op.name()) {
        v.push(&mut r.bookings);
    }
    if is_admission(op) {
        v.push(&mut r.admissions);
    }
    if matches!(op, Op::MarkNoShow { .. }) {
        v.push(&mut r.no_shows);
    }
    v
}

/// Bed traffic: ops that hold, admit or release beds.
fn is_bed(op: &Op) -> bool {
    matches!(
        op,
        Op::HoldBed { .. }
            | Op::AllocateBed { .. }
            | Op::ConfirmHold { .. }
            | Op::ReleaseHold { .. }
            | Op::AdmitReferral { .. }
    )
}

/// The trace clock's offset from UTC, minutes: the built-in regions' scenarios are written
/// in China time (UTC+08:00); other traces are read as UTC.
pub fn clock_offset_minutes(trace: &Trace) -> i32 {
    match trace.header.region.as_deref() {
        Some("gba" | "yunnan" | "asean" | "national") => 480,
        _ => 0,
    }
}

/// Trace ms per timeline bucket: at least a wall second at `speed`, and few enough
/// buckets ([`TIMELINE_BUCKETS_MAX`]) over `span_ms`.
pub fn timeline_bucket_ms(span_ms: u64, speed: f64) -> u64 {
    let wall_second = (1000.0 * speed.max(1e-9)).ceil().max(1.0) as u64;
    wall_second.max(span_ms.saturating_add(1).div_ceil(TIMELINE_BUCKETS_MAX))
}

/// Trace ms between occupancy samples: `requested`, or longer when the trace is so long
/// that more than [`OCCUPANCY_SAMPLES_MAX`] samples would be taken.
pub fn occupancy_interval_ms(span_ms: u64, requested: u64) -> u64 {
    requested
        .max(1)
        .max(span_ms.saturating_add(1).div_ceil(OCCUPANCY_SAMPLES_MAX))
}

/// The busiest wall second of a trace replayed at `speed`: (events due in it, its start
/// in trace ms).
pub fn busiest_second(trace: &Trace, speed: f64) -> (u64, u64) {
    let per_second = 1000.0 * speed.max(1e-9);
    let mut seconds: Vec<u64> = trace
        .events
        .iter()
        .map(|e| (e.at_ms as f64 / per_second).floor() as u64)
        .collect();
    seconds.sort_unstable();
    let best = seconds
        .chunk_by(|a, b| a == b)
        .map(|run| (run.len() as u64, run[0]))
        .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
        .unwrap_or((0, 0));
    (best.0, (best.1 as f64 * per_second).ceil() as u64)
}

/// (trace ms, occupied, held, total beds).
type Sample = (u64, u32, u32, u32);

/// One timeline bucket while collecting.
#[derive(Default)]
struct Tally {
    bucket: Bucket,
    latency: Option<Histogram<u64>>,
}

/// Accumulates a replay's measurements.
#[derive(Default)]
pub struct Collector {
    result: ReplayResult,
    all: Option<Histogram<u64>>,
    timeline: Vec<Tally>,
    ops: BTreeMap<String, (OpSummary, Option<Histogram<u64>>)>,
    doctors: BTreeMap<u32, (u32, u64)>,
    names: BTreeMap<u32, (String, Tier)>,
    wards: BTreeMap<u32, u32>,
    occupancy_every_ms: u64,
    /// Per hospital: (name, sample bucket → fullest sample in it).
    occupancy: BTreeMap<u32, (String, BTreeMap<u64, Sample>)>,
}

impl Collector {
    /// A collector for one replay of `trace`.
    pub fn new(
        trace: &Trace,
        opts: &ReplayOptions,
        region: Option<&ninety_engine::region_file::RegionFile>,
    ) -> Collector {
        let mut c = Collector {
            all: Some(histogram(3)),
            ..Collector::default()
        };
        c.result = Self::start(trace, opts);
        let r = &c.result;
        let buckets = r.span_ms / r.timeline_bucket_ms.max(1) + 1;
        c.timeline = (0..buckets)
            .map(|i| Tally {
                bucket: Bucket {
                    at_ms: i * r.timeline_bucket_ms,
                    ..Bucket::default()
                },
                latency: None,
            })
            .collect();
        c.occupancy_every_ms = occupancy_interval_ms(r.span_ms, 1);
        if let Some(region) = region {
            for h in &region.hospitals {
                c.names
                    .insert(h.id.0, (h.name.clone(), super::generate::tier_of(h.tier)));
            }
            for w in &region.wards {
                c.wards.insert(w.ward.id.0, w.ward.hospital.0);
            }
        }
        c.count_requests(trace);
        c
    }

    /// The result's fields known before the replay.
    fn start(trace: &Trace, opts: &ReplayOptions) -> ReplayResult {
        let span_ms = trace.events.iter().map(|e| e.at_ms).max().unwrap_or(0);
        let speed = opts.speed.max(1e-9);
        let (peak, peak_at) = busiest_second(trace, speed);
        // The trace's span in whole wall seconds (at least one): a trace whose events are
        // all due in one second offers them all in that second.
        let wall_secs = (span_ms as f64 / speed / 1000.0).floor() + 1.0;
        ReplayResult {
            scenario: trace.header.scenario.clone(),
            seed: trace.header.seed,
            targets: opts.targets.clone(),
            speed: opts.speed,
            max_in_flight: opts.max_in_flight as u64,
            started_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            trace_start_ms: trace.header.start_ms,
            clock_offset_minutes: clock_offset_minutes(trace),
            span_ms,
            events: trace.events.len() as u64,
            offered_rps: trace.events.len() as f64 / wall_secs,
            offered_peak_rps: peak,
            offered_peak_at_ms: peak_at,
            timeline_bucket_ms: timeline_bucket_ms(span_ms, speed),
            matching: Matching {
                tier_target_percent: TIER_TARGET_PERCENT,
                ..Matching::default()
            },
            ..ReplayResult::default()
        }
    }

    /// Counts the trace's requests by kind: the denominators of the report.
    fn count_requests(&mut self, trace: &Trace) {
        let r = &mut self.result;
        for e in &trace.events {
            let name = e.op.name();
            self.ops.entry(name.to_string()).or_default().0.in_trace += 1;
            if is_match(&e.op) {
                r.matching.all.requested += 1;
                r.matching
                    .by_op
                    .entry(name.to_string())
                    .or_default()
                    .requested += 1;
            }
            outcomes(r, &e.op)
                .into_iter()
                .for_each(|o| o.requested += 1);
            r.bed_events += u64::from(is_bed(&e.op));
        }
    }

    /// The hospitals with the most bed traffic in the trace (by ward, when the region is
    /// known; else the referral hospitals), at most `n`.
    pub fn busiest_hospitals(&self, trace: &Trace, n: usize) -> Vec<u32> {
        let mut count: BTreeMap<u32, u64> = BTreeMap::new();
        for e in &trace.events {
            let h = match &e.op {
                Op::AllocateBed { from_hospital, .. } => *from_hospital,
                Op::HoldBed { ward, .. } => self.ward_hospital(*ward),
                _ => 0,
            };
            if h != 0 {
                *count.entry(h).or_default() += 1;
            }
        }
        let mut v: Vec<(u64, u32)> = count.into_iter().map(|(h, c)| (c, h)).collect();
        v.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        v.into_iter().take(n).map(|(_, h)| h).collect()
    }

    fn ward_hospital(&self, ward: u32) -> u32 {
        self.wards.get(&ward).copied().unwrap_or(0)
    }

    /// Trace ms between occupancy samples for a sampler that would take one every
    /// `requested` ms: longer for a long trace, so at most about
    /// [`OCCUPANCY_SAMPLES_MAX`] are taken.
    pub fn occupancy_every_ms(&self, requested: u64) -> u64 {
        requested.max(self.occupancy_every_ms)
    }

    /// Records a bed-occupancy sample: (occupied, held, total). Of the samples of one
    /// stretch of trace time, the fullest is kept.
    pub fn occupancy_sample(&mut self, hospital: u32, trace_ms: u64, (o, h, t): (u32, u32, u32)) {
        let name = || {
            self.names
                .get(&hospital)
                .map_or_else(|| format!("hospital {hospital}"), |n| n.0.clone())
        };
        let every = self.occupancy_every_ms.max(1);
        let samples = &mut self
            .occupancy
            .entry(hospital)
            .or_insert_with(|| (name(), BTreeMap::new()))
            .1;
        let share = |s: &Sample| u64::from(s.1 + s.2) * u64::from(t.max(1));
        let new = (trace_ms, o, h, t);
        let slot = samples
            .entry((trace_ms / every).min(OCCUPANCY_SAMPLES_MAX))
            .or_insert(new);
        // Compare (o + h) / t across samples without division.
        if u64::from(o + h) * u64::from(slot.3.max(1)) > share(slot) {
            *slot = new;
        }
    }

    /// Records one event's fate. `latency` (from its scheduled time) is None when it was
    /// not sent; `answer` is what came back (or why it was not sent).
    pub fn record(&mut self, e: &Event, latency: Option<Duration>, answer: Answer) {
        let fate = Fate::of(answer);
        let us = latency
            .filter(|_| fate.sent())
            .map(|d| (d.as_micros() as u64).clamp(1, 600_000_000));
        self.tally(e, &fate, us);
        let name = e.op.name();
        let r = &mut self.result;
        if fate.sent() {
            r.sent += 1;
            outcomes(r, &e.op).into_iter().for_each(|o| o.sent += 1);
        }
        match fate {
            Fate::Ok(p) => {
                r.ok += 1;
                outcomes(r, &e.op).into_iter().for_each(|o| o.done += 1);
                self.took(e, &p);
            }
            Fate::Failed(kind, message) => {
                r.failed += 1;
                self.error(name, kind, message);
                if is_match(&e.op) {
                    self.result.matching.all.sent += 1;
                    self.result
                        .matching
                        .by_op
                        .entry(name.into())
                        .or_default()
                        .sent += 1;
                }
            }
            Fate::Overloaded => {
                r.overloaded += 1;
                self.error(name, "CLIENT_OVERLOAD".into(), String::new());
            }
            Fate::Skipped(kind) => {
                r.skipped += 1;
                self.error(name, kind, String::new());
            }
        }
    }

    /// Counts an event in its timeline bucket and its operation.
    fn tally(&mut self, e: &Event, fate: &Fate, us: Option<u64>) {
        let last = self.timeline.len().saturating_sub(1);
        let i = (e.at_ms / self.result.timeline_bucket_ms.max(1)).min(last as u64) as usize;
        let (ok, failed) = (
            matches!(fate, Fate::Ok(_)),
            matches!(fate, Fate::Failed(..)),
        );
        if let Some(t) = self.timeline.get_mut(i) {
            let b = &mut t.bucket;
            b.scheduled += 1;
            b.sent += u64::from(fate.sent());
            b.ok += u64::from(ok);
            b.failed += u64::from(failed);
            b.not_sent += u64::from(!fate.sent());
            if let Some(us) = us {
                let _ = t.latency.get_or_insert_with(|| histogram(2)).record(us);
            }
        }
        let op = &mut self.ops.entry(e.op.name().to_string()).or_default();
        op.0.sent += u64::from(fate.sent());
        op.0.ok += u64::from(ok);
        op.0.failed += u64::from(failed);
        op.0.overloaded += u64::from(matches!(fate, Fate::Overloaded));
        op.0.skipped += u64::from(matches!(fate, Fate::Skipped(_)));
        if let Some(us) = us {
            let _ = op.1.get_or_insert_with(|| histogram(3)).record(us);
            if let Some(all) = self.all.as_mut() {
                let _ = all.record(us);
            }
        }
    }

    /// Counts an error by kind and by `op: kind`, keeping the first server message.
    fn error(&mut self, op: &str, kind: String, message: String) {
        let r = &mut self.result;
        let key = format!("{op}: {kind}");
        if !message.is_empty() {
            r.error_examples.entry(key.clone()).or_insert(message);
        }
        *r.errors_by_op.entry(key).or_default() += 1;
        *r.errors.entry(kind).or_default() += 1;
    }

    /// What a successful request matched, took, and whose time it took.
    fn took(&mut self, e: &Event, p: &Produced) {
        self.result.no_show_blocks += u64::from(p.new_block);
        if let Some(d) = p.slot_day {
            *self.result.slot_days.entry(d).or_default() += 1;
        }
        let m = &mut self.result.matching;
        if is_match(&e.op) {
            let per = m.by_op.entry(e.op.name().to_string()).or_default();
            per.sent += 1;
            m.all.sent += 1;
            if p.matched {
                per.done += 1;
                m.all.done += 1;
                if let Some(t) = p.travel_minutes {
                    let b = t / TRAVEL_BUCKET_MINUTES * TRAVEL_BUCKET_MINUTES;
                    *m.travel_minutes.entry(b).or_default() += 1;
                }
            }
        }
        if takes_care(&e.op) && p.hospital != 0 {
            let tier = p.tier.or_else(|| self.names.get(&p.hospital).map(|n| n.1));
            if let Some(t) = tier {
                m.tiers[t as usize] += 1;
            }
        }
        if loads_doctor(&e.op) {
            for d in std::iter::once(p.doctor).chain(p.more_doctors) {
                if d != 0 {
                    self.doctors.entry(d).or_insert((p.hospital, 0)).1 += 1;
                }
            }
        }
    }

    /// The final result, after `wall` of replay.
    pub fn finish(mut self, wall: Duration) -> ReplayResult {
        let r = &mut self.result;
        r.wall_ms = wall.as_millis() as u64;
        r.achieved_rps = (r.ok + r.failed) as f64 / wall.as_secs_f64().max(1e-3);
        r.unrecorded = r
            .events
            .saturating_sub(r.ok + r.failed + r.overloaded + r.skipped);
        r.blocked = r
            .errors
            .iter()
            .filter(|(kind, _)| kind.ends_with("/BOOKING_BLOCKED"))
            .map(|(_, n)| n)
            .sum();
        if let Some(all) = &self.all {
            r.latency = latency(all);
        }
        r.timeline = self.timeline.into_iter().map(bucket).collect();
        r.by_op = self
            .ops
            .into_iter()
            .map(|(k, (mut s, h))| {
                s.latency = h.as_ref().map(latency).unwrap_or_default();
                (k, s)
            })
            .collect();
        let m = &mut r.matching;
        m.rate = ratio(m.all.done, m.all.requested);
        m.rate_of_sent = ratio(m.all.done, m.all.sent);
        r.occupancy = self
            .occupancy
            .into_iter()
            .map(|(hospital, (name, samples))| Occupancy {
                hospital,
                name,
                samples: samples.into_values().collect(),
            })
            .collect();
        let mut docs: Vec<(u32, u32, u64)> = self
            .doctors
            .into_iter()
            .map(|(d, (h, n))| (d, h, n))
            .collect();
        docs.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        docs.truncate(TOP_DOCTORS);
        r.top_doctors = docs;
        r.machine = machine();
        self.result
    }
}

fn bucket(t: Tally) -> Bucket {
    let mut b = t.bucket;
    if let Some(h) = &t.latency {
        let l = latency(h);
        b.p50_ms = l.p50_ms;
        b.p99_ms = l.p99_ms;
    }
    b
}

/// `n / of`, 0 when `of` is 0.
pub fn ratio(n: u64, of: u64) -> f64 {
    if of == 0 {
        0.0
    } else {
        n as f64 / of as f64
    }
}

/// `nproc` and the 1/5/15-minute load average, for the record.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into());
    format!("{cpus} cpus, load average {load}")
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `done of requested <what> in the trace (share); sent, share of those`.
fn outcome(o: Outcome, what: &str) -> String {
    if o.requested == 0 {
        return format!("none: the trace has no {what}");
    }
    format!(
        "{} of {} {what} in the trace ({}); {} were sent ({} of them succeeded)",
        count(o.done),
        count(o.requested),
        pct(o.done, o.requested),
        count(o.sent),
        pct(o.done, o.sent)
    )
}

/// The headline rows: every count a share of the trace's events.
pub fn headline(r: &ReplayResult) -> Vec<(&'static str, String)> {
    let of = |n: u64| format!("{} ({} of the trace)", count(n), pct(n, r.events));
    let clock = Clock::of(r);
    let mut rows = vec![
        (
            "events in the trace",
            format!(
                "{} over {} of trace time, {} to {}",
                count(r.events),
                duration(r.span_ms),
                clock.at(0),
                clock.at(r.span_ms)
            ),
        ),
        ("answered ok", of(r.ok)),
        ("sent and refused or failed", of(r.failed)),
        (
            "not sent: in-flight limit reached",
            format!("{} (limit {})", of(r.overloaded), count(r.max_in_flight)),
        ),
        (
            "not sent: an earlier event it needs failed or did not answer",
            of(r.skipped),
        ),
    ];
    if r.unrecorded > 0 {
        rows.push(("no outcome recorded", of(r.unrecorded)));
    }
    rows.push(("bookings placed", outcome(r.bookings, "booking requests")));
    if r.admissions.requested > 0 {
        rows.push(("beds admitted", outcome(r.admissions, "admission requests")));
    }
    if r.no_shows.requested > 0 {
        rows.push(("no-shows recorded", outcome(r.no_shows, "no-show marks")));
    }
    if r.no_show_blocks > 0 {
        let why = "patients blocked by the no-show policy";
        rows.push((
            why,
            format!("{} (a new block after a no-show)", count(r.no_show_blocks)),
        ));
    }
    if !r.schedule.is_empty() {
        rows.push(("schedule", r.schedule.clone()));
    }
    if !r.slot_days.is_empty() {
        rows.push(("seats placed by trace day of the slot", slot_days_line(r)));
    }
    if r.blocked > 0 {
        let why = "refused: patient blocked (BOOKING_BLOCKED)";
        rows.push((why, format!("{} (after repeated no-shows)", of(r.blocked))));
    }
    rows.push((
        "match requests matched",
        outcome(r.matching.all, "match requests"),
    ));
    rows.extend(rates(r));
    rows.push(("targets", r.targets.join(", ")));
    rows.push(("machine", r.machine.clone()));
    rows
}

/// Offered (average and busiest second), answered, and latency.
fn rates(r: &ReplayResult) -> Vec<(&'static str, String)> {
    let clock = Clock::of(r);
    vec![
        (
            "offered at this speed",
            format!(
                "{} on average over the trace; busiest second: {} requests due, at {}",
                rate(r.offered_rps),
                count(r.offered_peak_rps),
                clock.at(r.offered_peak_at_ms)
            ),
        ),
        (
            "answered (ok or refused)",
            format!(
                "{} over {:.1} s of wall time",
                rate(r.achieved_rps),
                r.wall_ms as f64 / 1000.0
            ),
        ),
        (
            "latency from scheduled time p50 / p99 / max",
            format!(
                "{:.2} / {:.2} / {:.2} ms ({} sent)",
                r.latency.p50_ms,
                r.latency.p99_ms,
                r.latency.max_ms,
                count(r.sent)
            ),
        ),
    ]
}

/// One line for a terminal: what became of the trace.
pub fn summary_line(r: &ReplayResult) -> String {
    format!(
        "{} events: {} ok ({}), {} refused/failed, not sent {} (in-flight limit) + {} \
         (dependency); bookings placed {} of {}; matched {} of {} match requests ({}); \
         offered {} avg, {} in the busiest second; answered {}; latency p50 {:.2} ms p99 \
         {:.2} ms; {}",
        r.events,
        r.ok,
        pct(r.ok, r.events),
        r.failed,
        r.overloaded,
        r.skipped,
        r.bookings.done,
        r.bookings.requested,
        r.matching.all.done,
        r.matching.all.requested,
        pct(r.matching.all.done, r.matching.all.requested),
        rate(r.offered_rps),
        r.offered_peak_rps,
        rate(r.achieved_rps),
        r.latency.p50_ms,
        r.latency.p99_ms,
        r.machine
    )
}

const STYLE: &str = "<style>body{font-family:sans-serif;max-width:960px;margin:2em auto;\
    padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid \
    #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}td:first-child,th:first-child\
    {text-align:left}table.headline td:last-child{text-align:left}section{margin:2em 0}\
    .note{color:#555;font-size:90%}.chart{overflow-x:auto}.chart svg{display:block}\
    .chart.empty p{border:1px dashed #bbb;padding:1em;color:#555;background:#fafafa}</style>\n";

/// The report as one self-contained HTML page (inline SVG, no scripts, no external
/// resources).
pub fn html(r: &ReplayResult) -> String {
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    h.push_str(&format!(
        "<title>ninety peak-day replay: {}</title>\n{STYLE}</head><body>\n",
        esc(&r.scenario)
    ));
    h.push_str(&format!(
        "<h1>Peak-day replay: {}</h1>\n<p>{}</p>\n<p class=\"note\">Trace seed {}, replayed at \
         {}× ({} of trace time per wall second). Every share below is of the {} events in the \
         trace, sent or not.</p>\n<table class=\"headline\">\n",
        esc(&r.scenario),
        esc(&r.description),
        r.seed,
        r.speed,
        duration((r.speed * 1000.0) as u64),
        count(r.events)
    ));
    for (k, v) in headline(r) {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td></tr>\n",
            esc(k),
            esc(&v)
        ));
    }
    h.push_str("</table>\n");
    for (id, title, note, chart) in sections(r) {
        h.push_str(&format!(
            "<section id=\"{id}\"><h2>{}</h2>\n<p class=\"note\">{}</p>\n{chart}\n</section>\n",
            esc(title),
            esc(&note)
        ));
    }
    h.push_str(&ops_table(r));
    h.push_str(&errors_table(r));
    h.push_str("</body></html>\n");
    h
}

/// (id, title, note, chart) of each chart section.
fn sections(r: &ReplayResult) -> Vec<(&'static str, &'static str, String, String)> {
    let bucket = format!(
        "Each point is {} of trace time ({:.0} wall s at {}×); seconds without events count as zeros.",
        duration(r.timeline_bucket_ms),
        r.timeline_bucket_ms as f64 / r.speed.max(1e-9) / 1000.0,
        r.speed
    );
    vec![
        ("throughput", "Throughput over time",
         format!("Requests per wall second by scheduled time: due (offered), answered ok, refused or failed, not sent. {bucket} Busiest second: {} requests due.", count(r.offered_peak_rps)),
         charts::throughput(r)),
        ("latency", "Latency over time (p50 and p99)",
         format!("Measured from each request's scheduled time, not from when it was sent: a server that falls behind shows here. {bucket}"),
         charts::latency(r)),
        ("errors", "Errors by kind",
         "Every event not answered ok, sent or not, with its count (log scale). gRPC code / rejection code; CLIENT_OVERLOAD: not sent, the in-flight limit was reached; SKIPPED: an event it needs failed; UNIMPLEMENTED: the target does not serve that API.".into(),
         charts::errors(r)),
        ("match-rate", "Match rate by operation",
         "Share of the trace's match requests that found capacity (a hold) or at least one candidate; requests not sent count as not matched.".into(),
         charts::match_rate(r)),
        ("travel", "Travel minutes of matched care",
         "From the patient's hospital to the matched one, in 10-minute buckets (remote care is 0).".into(),
         charts::travel(r)),
        ("tiers", "Tier split of care taken vs the 50/35/15 target",
         "Primary / secondary / tertiary share of holds, bookings and matched referrals, against the platforms' goal.".into(),
         charts::tiers(r)),
        ("occupancy", "Bed occupancy (busiest hospitals)",
         "Occupied + held share of each hospital's beds over the trace's clock; of several samples close together, the fullest.".into(),
         charts::occupancy(r)),
        ("doctors", "Top doctors' load",
         "Slot holds and joint consultations given to each doctor. Searches (match_specialist) name doctors without taking their time and are not counted.".into(),
         charts::doctors(r)),
    ]
}

/// Per operation: what became of the trace's events.
fn ops_table(r: &ReplayResult) -> String {
    let mut h = String::from(
        "<section id=\"ops\"><h2>By operation</h2>\n<table><tr><th>op</th><th>in the trace</th>\
         <th>ok</th><th>ok %</th><th>refused or failed</th><th>not sent: in-flight limit</th>\
         <th>not sent: dependency</th><th>p50 ms</th><th>p99 ms</th><th>max ms</th></tr>\n",
    );
    for (op, s) in &r.by_op {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{:.2}</td><td>{:.2}</td><td>{:.2}</td></tr>\n",
            esc(op),
            count(s.in_trace),
            count(s.ok),
            pct(s.ok, s.in_trace),
            count(s.failed),
            count(s.overloaded),
            count(s.skipped),
            s.latency.p50_ms,
            s.latency.p99_ms,
            s.latency.max_ms
        ));
    }
    h.push_str("</table></section>\n");
    h
}

/// Errors by `op: kind` with the server's first message.
fn errors_table(r: &ReplayResult) -> String {
    let mut h = String::from(
        "<section id=\"error-table\"><h2>Errors by operation</h2><table><tr><th>op: kind</th>\
         <th>count</th><th>first message</th></tr>\n",
    );
    for (k, n) in &r.errors_by_op {
        let why = r.error_examples.get(k).map_or("", String::as_str);
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td style=\"text-align:left\">{}</td></tr>\n",
            esc(k),
            count(*n),
            esc(why)
        ));
    }
    h.push_str("</table></section>\n");
    h
}

/// Writes `report.html` and `summary.json` (compact JSON; bounded in size whatever the
/// trace's length) into `dir` (created if needed); returns the HTML page's path.
pub fn write_report(dir: &Path, r: &ReplayResult) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let page = dir.join("report.html");
    std::fs::write(&page, html(r)).map_err(|e| format!("{}: {e}", page.display()))?;
    let json = dir.join("summary.json");
    let text = serde_json::to_string(r).map_err(|e| e.to_string())? + "\n";
    std::fs::write(&json, text).map_err(|e| format!("{}: {e}", json.display()))?;
    Ok(page)
}

/// Seats placed per trace day of their slot, `day: count` (days kept by the replay).
fn slot_days_line(r: &ReplayResult) -> String {
    let days: Vec<String> = r
        .slot_days
        .iter()
        .map(|(d, n)| format!("{d}: {n}"))
        .collect();
    format!("{} days; {}", r.slot_days.len(), days.join(", "))
}
