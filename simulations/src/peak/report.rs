//! What a replay measured ([`ReplayResult`], also the JSON summary) and the HTML report.

use super::charts;
use super::replay::{Answer, ReplayOptions};
use super::trace::{Event, Op, Tier, Trace};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The tier split the platforms aim at: primary / secondary / tertiary, percent
/// (the brief's 50/35/15 goal, article 000).
pub const TIER_TARGET_PERCENT: [u32; 3] = [50, 35, 15];
/// Width of one travel-minutes histogram bucket.
pub const TRAVEL_BUCKET_MINUTES: u32 = 10;

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

/// One wall-clock second of the replay (by scheduled send time).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Second {
    pub second: u64,
    /// Requests scheduled in this second (sent or not).
    pub scheduled: u64,
    pub ok: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Per operation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OpSummary {
    pub scheduled: u64,
    pub ok: u64,
    pub errors: u64,
    pub latency: Latency,
}

/// Matching quality of what was matched.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Matching {
    /// Match attempts sent (match_specialist, allocate_slot, allocate_bed, match_referral,
    /// book).
    pub attempted: u64,
    /// Of those, how many found capacity (a hold) or candidates.
    pub matched: u64,
    /// matched / attempted, 0..1.
    pub rate: f64,
    /// Travel minutes of matched care, by bucket start (10-minute buckets).
    pub travel_minutes: BTreeMap<u32, u64>,
    /// Care taken (holds, bookings, matches) by tier of the hospital: primary, secondary,
    /// tertiary.
    pub tiers: [u64; 3],
    /// The target split, percent.
    pub tier_target_percent: [u32; 3],
    /// (attempted, matched) per match operation.
    pub by_op: BTreeMap<String, (u64, u64)>,
}

/// Bed occupancy of one hospital over the trace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Occupancy {
    pub hospital: u32,
    pub name: String,
    /// (trace minute, occupied, held, total beds).
    pub samples: Vec<(f64, u32, u32, u32)>,
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
    /// Events in the trace.
    pub events: u64,
    /// Requests actually sent (not overloaded, not skipped).
    pub sent: u64,
    pub ok: u64,
    /// Sent and refused or failed.
    pub failed: u64,
    /// Not sent: the in-flight bound was reached at their scheduled time.
    pub overloaded: u64,
    /// Not sent: an event they refer to had failed or had not answered in time.
    pub skipped: u64,
    /// Requests answered (ok or refused) per wall second.
    pub achieved_rps: f64,
    /// The trace's own rate at this speed, requests per wall second.
    pub offered_rps: f64,
    /// Latency of every sent request, from its scheduled time.
    pub latency: Latency,
    pub per_second: Vec<Second>,
    /// Errors by kind: gRPC code, then the rejection code when the server attached one
    /// (`FAILED_PRECONDITION/NO_CAPACITY`), or `CLIENT_OVERLOAD`, `SKIPPED/...`.
    pub errors: BTreeMap<String, u64>,
    /// Errors by `op: kind`.
    pub errors_by_op: BTreeMap<String, u64>,
    /// The first server message seen for each `op: kind`, to tell why.
    pub error_examples: BTreeMap<String, String>,
    pub by_op: BTreeMap<String, OpSummary>,
    pub matching: Matching,
    pub occupancy: Vec<Occupancy>,
    /// (doctor, hospital, holds and bookings given to them), busiest first, at most 20.
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

fn histogram() -> Histogram<u64> {
    // 1 µs .. 10 min, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable_histogram()))
}

fn unreachable_histogram() -> Histogram<u64> {
    // new(3) cannot fail (sigfig in 0..=5); keep a total function anyway.
    Histogram::new(2).unwrap_or_else(|_| Histogram::new(1).unwrap_or_else(|e| panic!("{e}")))
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

/// Accumulates a replay's measurements.
#[derive(Default)]
pub struct Collector {
    result: ReplayResult,
    all: Option<Histogram<u64>>,
    seconds: BTreeMap<u64, (Second, Histogram<u64>)>,
    ops: BTreeMap<String, (OpSummary, Histogram<u64>)>,
    doctors: BTreeMap<u32, (u32, u64)>,
    names: BTreeMap<u32, (String, Tier)>,
    wards: BTreeMap<u32, u32>,
    occupancy: BTreeMap<u32, Occupancy>,
    last_at_ms: u64,
}

impl Collector {
    /// A collector for one replay of `trace`.
    pub fn new(
        trace: &Trace,
        opts: &ReplayOptions,
        region: Option<&ninety_engine::region_file::RegionFile>,
    ) -> Collector {
        let mut c = Collector {
            all: Some(histogram()),
            ..Collector::default()
        };
        let r = &mut c.result;
        r.scenario = trace.header.scenario.clone();
        r.seed = trace.header.seed;
        r.targets = opts.targets.clone();
        r.speed = opts.speed;
        r.max_in_flight = opts.max_in_flight as u64;
        r.events = trace.events.len() as u64;
        r.started_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        r.matching.tier_target_percent = TIER_TARGET_PERCENT;
        if let Some(region) = region {
            for h in &region.hospitals {
                c.names
                    .insert(h.id.0, (h.name.clone(), super::generate::tier_of(h.tier)));
            }
            for w in &region.wards {
                c.wards.insert(w.ward.id.0, w.ward.hospital.0);
            }
        }
        c.last_at_ms = trace.events.last().map_or(0, |e| e.at_ms);
        c
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

    /// Records a bed-occupancy sample.
    pub fn occupancy_sample(&mut self, hospital: u32, trace_ms: u64, (o, h, t): (u32, u32, u32)) {
        let name = self
            .names
            .get(&hospital)
            .map_or_else(|| format!("hospital {hospital}"), |n| n.0.clone());
        let s = self.occupancy.entry(hospital).or_insert_with(|| Occupancy {
            hospital,
            name,
            samples: Vec::new(),
        });
        s.samples.push((trace_ms as f64 / 60_000.0, o, h, t));
    }

    /// Records one event's fate. `latency` is None when it was not sent.
    pub fn record(
        &mut self,
        e: &Event,
        scheduled: Instant,
        start: Instant,
        latency: Option<Duration>,
        answer: Answer,
    ) {
        let name = e.op.name();
        let second = scheduled.saturating_duration_since(start).as_secs();
        let us = latency.map(|d| (d.as_micros() as u64).clamp(1, 600_000_000));
        let r = &mut self.result;
        let sec = &mut self.seconds.entry(second).or_insert_with(|| {
            (
                Second {
                    second,
                    ..Second::default()
                },
                histogram(),
            )
        });
        sec.0.scheduled += 1;
        let op = self
            .ops
            .entry(name.to_string())
            .or_insert_with(|| (OpSummary::default(), histogram()));
        op.0.scheduled += 1;
        if let Some(us) = us {
            r.sent += 1;
            let _ = sec.1.record(us);
            let _ = op.1.record(us);
            if let Some(all) = self.all.as_mut() {
                let _ = all.record(us);
            }
        }
        let is_match = matches!(
            e.op,
            Op::MatchSpecialist { .. }
                | Op::AllocateSlot { .. }
                | Op::AllocateBed { .. }
                | Op::MatchReferral { .. }
                | Op::Book { .. }
        );
        match answer {
            Ok(p) => {
                r.ok += 1;
                r.no_show_blocks += u64::from(p.new_block);
                if let Some(d) = p.slot_day {
                    *r.slot_days.entry(d).or_default() += 1;
                }
                sec.0.ok += 1;
                op.0.ok += 1;
                if is_match {
                    r.matching.attempted += 1;
                    let per = r.matching.by_op.entry(name.to_string()).or_default();
                    per.0 += 1;
                    if p.matched {
                        per.1 += 1;
                        r.matching.matched += 1;
                        if let Some(t) = p.travel_minutes {
                            let b = t / TRAVEL_BUCKET_MINUTES * TRAVEL_BUCKET_MINUTES;
                            *r.matching.travel_minutes.entry(b).or_default() += 1;
                        }
                    }
                }
                // Care actually taken: a hold or booking at a hospital (searches don't count).
                let takes_care = matches!(
                    e.op,
                    Op::AllocateSlot { .. }
                        | Op::AllocateBed { .. }
                        | Op::HoldBed { .. }
                        | Op::HoldSlot { .. }
                        | Op::MatchReferral { .. }
                        | Op::Book { .. }
                );
                if takes_care && p.hospital != 0 {
                    let tier = p.tier.or_else(|| self.names.get(&p.hospital).map(|n| n.1));
                    if let Some(t) = tier {
                        r.matching.tiers[t as usize] += 1;
                    }
                }
                for d in std::iter::once(p.doctor).chain(p.more_doctors) {
                    if d != 0 {
                        let entry = self.doctors.entry(d).or_insert((p.hospital, 0));
                        entry.1 += 1;
                    }
                }
            }
            Err(kind_and_message) => {
                let (kind, message) = match kind_and_message.split_once('|') {
                    Some((k, m)) => (k.to_string(), m.to_string()),
                    None => (kind_and_message, String::new()),
                };
                if is_match && us.is_some() {
                    r.matching.attempted += 1;
                    r.matching.by_op.entry(name.to_string()).or_default().0 += 1;
                }
                match kind.as_str() {
                    "CLIENT_OVERLOAD" => r.overloaded += 1,
                    k if k.starts_with("SKIPPED/") => r.skipped += 1,
                    _ => {
                        r.failed += 1;
                        sec.0.errors += 1;
                        op.0.errors += 1;
                    }
                }
                let key = format!("{name}: {kind}");
                if !message.is_empty() {
                    r.error_examples.entry(key.clone()).or_insert(message);
                }
                *r.errors_by_op.entry(key).or_default() += 1;
                *r.errors.entry(kind).or_default() += 1;
            }
        }
    }

    /// The final result, after `wall` of replay.
    pub fn finish(mut self, wall: Duration) -> ReplayResult {
        let r = &mut self.result;
        r.wall_ms = wall.as_millis() as u64;
        let secs = wall.as_secs_f64().max(1e-3);
        r.achieved_rps = (r.ok + r.failed) as f64 / secs;
        let trace_secs = (self.last_at_ms as f64 / 1000.0 / r.speed.max(1e-9)).max(1e-3);
        r.offered_rps = r.events as f64 / trace_secs;
        if let Some(all) = &self.all {
            r.latency = latency(all);
        }
        r.per_second = self
            .seconds
            .into_values()
            .map(|(mut s, h)| {
                let l = latency(&h);
                s.p50_ms = l.p50_ms;
                s.p99_ms = l.p99_ms;
                s
            })
            .collect();
        r.by_op = self
            .ops
            .into_iter()
            .map(|(k, (mut s, h))| {
                s.latency = latency(&h);
                (k, s)
            })
            .collect();
        r.matching.rate = if r.matching.attempted == 0 {
            0.0
        } else {
            r.matching.matched as f64 / r.matching.attempted as f64
        };
        r.occupancy = self.occupancy.into_values().collect();
        let mut docs: Vec<(u32, u32, u64)> = self
            .doctors
            .into_iter()
            .map(|(d, (h, n))| (d, h, n))
            .collect();
        docs.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        docs.truncate(20);
        r.top_doctors = docs;
        r.machine = machine();
        self.result
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

/// Seats placed per trace day of their slot, `day: count` (days kept by the replay).
fn slot_days_line(r: &ReplayResult) -> String {
    if r.slot_days.is_empty() {
        return "none".into();
    }
    let days: Vec<String> = r
        .slot_days
        .iter()
        .map(|(d, n)| format!("{d}: {n}"))
        .collect();
    format!("{} days; {}", r.slot_days.len(), days.join(", "))
}

/// The report as one self-contained HTML page (inline SVG, no external resources).
pub fn html(r: &ReplayResult) -> String {
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    h.push_str(&format!(
        "<title>ninety peak-day replay: {}</title>\n",
        esc(&r.scenario)
    ));
    h.push_str(
        "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}\
         table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;\
         text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}\
         section{margin:2em 0}.note{color:#555;font-size:90%}</style>\n</head><body>\n",
    );
    h.push_str(&format!(
        "<h1>Peak-day replay: {}</h1>\n<p>{}</p>\n",
        esc(&r.scenario),
        esc(&r.description)
    ));
    h.push_str("<table>\n");
    let rows: Vec<(&str, String)> = vec![
        ("trace seed", r.seed.to_string()),
        ("targets", r.targets.join(", ")),
        ("speed", format!("{}x", r.speed)),
        ("events in the trace", r.events.to_string()),
        ("sent", r.sent.to_string()),
        ("answered ok", r.ok.to_string()),
        ("refused or failed", r.failed.to_string()),
        (
            "not sent: client overload (in-flight bound)",
            format!("{} (bound {})", r.overloaded, r.max_in_flight),
        ),
        (
            "not sent: dependency failed or pending",
            r.skipped.to_string(),
        ),
        ("wall time", format!("{:.1} s", r.wall_ms as f64 / 1000.0)),
        (
            "throughput achieved / offered",
            format!("{:.0} / {:.0} requests/s", r.achieved_rps, r.offered_rps),
        ),
        (
            "latency from scheduled time p50 / p99 / max",
            format!(
                "{:.2} / {:.2} / {:.2} ms",
                r.latency.p50_ms, r.latency.p99_ms, r.latency.max_ms
            ),
        ),
        (
            "match rate",
            format!(
                "{:.1}% ({} of {})",
                r.matching.rate * 100.0,
                r.matching.matched,
                r.matching.attempted
            ),
        ),
        ("schedule", r.schedule.clone()),
        (
            "no-show blocks (patients blocked from online booking)",
            r.no_show_blocks.to_string(),
        ),
        ("seats placed by trace day of the slot", slot_days_line(r)),
        ("machine", r.machine.clone()),
    ];
    for (k, v) in rows {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td></tr>\n",
            esc(k),
            esc(&v)
        ));
    }
    h.push_str("</table>\n");
    let section = |h: &mut String, id: &str, title: &str, note: &str, svg: String| {
        h.push_str(&format!(
            "<section id=\"{id}\"><h2>{}</h2>\n<p class=\"note\">{}</p>\n{svg}\n</section>\n",
            esc(title),
            esc(note)
        ));
    };
    section(
        &mut h,
        "throughput",
        "Throughput over time",
        "Requests per wall second by scheduled send time: scheduled, answered ok, refused or failed.",
        charts::throughput(r),
    );
    section(
        &mut h,
        "latency",
        "Latency over time (p50 and p99)",
        "Measured from each request's scheduled time, not from when it was sent: a server that falls behind shows here.",
        charts::latency(r),
    );
    section(
        &mut h,
        "errors",
        "Errors by kind",
        "gRPC code / rejection code. CLIENT_OVERLOAD: not sent because the in-flight bound was reached. SKIPPED: an event it refers to failed. UNIMPLEMENTED: the target does not serve that API.",
        charts::errors(r),
    );
    section(
        &mut h,
        "match-rate",
        "Match rate by operation",
        "Share of match attempts that found capacity (a hold) or at least one candidate.",
        charts::match_rate(r),
    );
    section(
        &mut h,
        "travel",
        "Travel minutes of matched care",
        "From the patient's hospital to the matched one, in 10-minute buckets (remote care is 0).",
        charts::travel(r),
    );
    section(
        &mut h,
        "tiers",
        "Tier split of matched care vs the 50/35/15 target",
        "Primary / secondary / tertiary share of holds, bookings and matched referrals, against the platforms' goal.",
        charts::tiers(r),
    );
    section(
        &mut h,
        "occupancy",
        "Bed occupancy over the day (busiest hospitals)",
        "Occupied + held share of each hospital's beds, sampled on trace time.",
        charts::occupancy(r),
    );
    section(
        &mut h,
        "doctors",
        "Top doctors' load",
        "Holds, bookings and consultations given to each doctor during the replay.",
        charts::doctors(r),
    );
    h.push_str("<section id=\"ops\"><h2>By operation</h2>\n<table><tr><th>op</th><th>scheduled</th><th>ok</th><th>errors</th><th>p50 ms</th><th>p99 ms</th><th>max ms</th></tr>\n");
    for (op, s) in &r.by_op {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td></tr>\n",
            esc(op),
            s.scheduled,
            s.ok,
            s.errors,
            s.latency.p50_ms,
            s.latency.p99_ms,
            s.latency.max_ms
        ));
    }
    h.push_str("</table></section>\n<section id=\"error-table\"><h2>Errors by operation</h2><table><tr><th>op: kind</th><th>count</th><th>first message</th></tr>\n");
    for (k, n) in &r.errors_by_op {
        let why = r.error_examples.get(k).map_or("", String::as_str);
        h.push_str(&format!(
            "<tr><td>{}</td><td>{n}</td><td style=\"text-align:left\">{}</td></tr>\n",
            esc(k),
            esc(why)
        ));
    }
    h.push_str("</table></section>\n</body></html>\n");
    h
}

/// Writes `report.html` and `summary.json` into `dir` (created if needed); returns the
/// HTML page's path.
pub fn write_report(dir: &Path, r: &ReplayResult) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let page = dir.join("report.html");
    std::fs::write(&page, html(r)).map_err(|e| format!("{}: {e}", page.display()))?;
    let json = dir.join("summary.json");
    let text = serde_json::to_string_pretty(r).map_err(|e| e.to_string())?;
    std::fs::write(&json, text).map_err(|e| format!("{}: {e}", json.display()))?;
    Ok(page)
}
