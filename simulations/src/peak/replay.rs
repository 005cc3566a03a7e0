//! Open-loop replay of a trace against a cluster.
//!
//! Each event is sent at its scheduled time (`at_ms / speed` after the start), whether or
//! not earlier requests were answered; latency is measured from the scheduled time, so a
//! server that falls behind shows it instead of slowing the load down (no coordinated
//! omission). In-flight requests are bounded: an event due while the bound is reached is
//! not sent and is counted as `CLIENT_OVERLOAD`.

use super::report::{Collector, ReplayResult};
use super::send::{send, Call, Part};
use super::timeline::{now_ms, ScheduleMode, Timeline};
use super::trace::{Event, Ref, Trace};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};

pub use super::send::{error_kind, salted, Answer, Conn, Produced, REPLAY_ATTEMPT_TIMEOUT};
pub use super::timeline::{discover_slot_day, trace_slot_day, SlotDay};

/// Slowest replay: trace time per wall time (a tenth of an hour of trace per wall hour);
/// slower would turn a day's trace into months of waiting.
pub const SPEED_MIN: f64 = 0.1;
/// Fastest replay: trace time per wall time (a day of trace in under a second).
pub const SPEED_MAX: f64 = 100_000.0;
/// Most requests in flight at once.
pub const IN_FLIGHT_MAX: usize = 100_000;

/// Checks a replay speed: a number in [`SPEED_MIN`]..=[`SPEED_MAX`] (NaN and infinities
/// are not).
pub fn check_speed(speed: f64) -> Result<f64, String> {
    if (SPEED_MIN..=SPEED_MAX).contains(&speed) {
        Ok(speed)
    } else {
        Err(format!(
            "speed: {speed:?} is outside {SPEED_MIN}..={SPEED_MAX} (trace time per wall time)"
        ))
    }
}

/// Checks a bound on requests in flight: 1..=[`IN_FLIGHT_MAX`].
pub fn check_max_in_flight(n: usize) -> Result<usize, String> {
    if (1..=IN_FLIGHT_MAX).contains(&n) {
        Ok(n)
    } else {
        Err(format!("max_in_flight: {n} is outside 1..={IN_FLIGHT_MAX}"))
    }
}

/// How to replay.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// Node addresses (host:port); requests go to the first that answers, then the next.
    pub targets: Vec<String>,
    /// Trace milliseconds per wall millisecond (60: an hour in a minute).
    pub speed: f64,
    /// Most requests in flight at once.
    pub max_in_flight: usize,
    /// Mixed into every request id (0: send the trace's ids as written). Replaying the same
    /// trace twice against one cluster with the same ids returns the first answers.
    pub salt: u64,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// How long one request may take before it counts as `DEADLINE_EXCEEDED`.
    pub request_timeout: Duration,
    /// How long an event waits for the event it refers to, after its own scheduled time.
    pub dependency_wait: Duration,
    /// Hospitals whose bed occupancy is sampled over the day (the busiest in the trace).
    pub occupancy_hospitals: usize,
    /// Which schedule the replay books against: the cluster's own days (calendar) or one
    /// it publishes on its own clock (live); see [`super::timeline`].
    pub schedule: ScheduleMode,
    /// Calendar mode: the cluster day the trace's first slot day lands on ([`SlotDay`]).
    pub slot_day: SlotDay,
    /// Replay only the trace's first `days` days (`None`: all of it).
    pub days: Option<u32>,
    /// Live mode: the region to publish the schedule of (`None`: the trace's preset).
    pub region: Option<ninety_engine::region_file::RegionFile>,
    /// Live mode: how long before the trace's start publishing may take (`None`: two
    /// seconds plus a millisecond per doctor).
    pub live_lead: Option<Duration>,
    /// Live mode: `PublishSchedule` calls in flight.
    pub publish_concurrency: usize,
    /// Trace time between occupancy samples, ms.
    pub occupancy_every_ms: u64,
    /// TLS towards the targets (`ninety --cacert`); `None`: plain HTTP/2.
    pub tls: Option<ninety_client::ClientTls>,
    /// Bearer token for every call (`ninety --token-file`).
    pub token: Option<String>,
    /// The region every call names (`ninety-region` header); `None`: each node's default
    /// region ([`super::national`] sets it per region).
    pub route: Option<String>,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            targets: Vec::new(),
            speed: 60.0,
            max_in_flight: 512,
            salt: 0,
            progress: true,
            request_timeout: Duration::from_secs(10),
            dependency_wait: Duration::from_secs(10),
            occupancy_hospitals: 8,
            occupancy_every_ms: 60_000,
            schedule: ScheduleMode::Calendar,
            slot_day: SlotDay::Discover,
            days: None,
            region: None,
            live_lead: None,
            publish_concurrency: 32,
            tls: None,
            route: None,
            token: None,
        }
    }
}

/// Most occupancy samples per hospital over a whole replay, however long the trace: the
/// sampling step grows with the trace.
pub const OCCUPANCY_SAMPLES_MAX: u64 = 500;
/// Most days of the schedule calendar mode checks for open slots before the replay.
pub const COVERAGE_DAYS_MAX: i64 = 92;

struct Shared {
    conn: Conn,
    /// Trace time on the cluster's clock.
    tl: Timeline,
    results: Mutex<HashMap<u64, Option<Produced>>>,
    done: Notify,
    collector: Mutex<Collector>,
    /// Patients a no-show of this replay has blocked (their keys).
    blocked: Mutex<HashSet<u64>>,
    opts: ReplayOptions,
    /// When `at_ms` 0 is due, and the Unix ms of the cluster's clock then.
    start: tokio::time::Instant,
    start_unix_ms: u64,
}

impl Shared {
    /// Waits until every event `e` refers to is answered; an error kind if one failed or
    /// did not answer in time.
    async fn dependencies(&self, e: &Event) -> Result<HashMap<u64, Produced>, &'static str> {
        let deadline = tokio::time::Instant::now() + self.opts.dependency_wait;
        let mut got = HashMap::new();
        for r in e.op.refs() {
            let Some(target) = r.event() else { continue };
            loop {
                let notified = self.done.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let seen = self
                    .results
                    .lock()
                    .ok()
                    .and_then(|m| m.get(&target).copied());
                match seen {
                    Some(Some(p)) => {
                        got.insert(target, p);
                        break;
                    }
                    Some(None) => return Err("SKIPPED/DEPENDENCY_FAILED"),
                    None => {
                        if tokio::time::timeout_at(deadline, notified).await.is_err() {
                            return Err("SKIPPED/DEPENDENCY_PENDING");
                        }
                    }
                }
            }
        }
        Ok(got)
    }

    /// When trace offset `at_ms` (may be negative) is due.
    fn due(&self, at_ms: i128) -> tokio::time::Instant {
        let secs = (at_ms.max(0) as f64 / self.opts.speed / 1000.0).min(1e9);
        self.start + Duration::from_secs_f64(secs)
    }

    /// The Unix ms of the cluster's clock at `t`.
    fn unix_at(&self, t: tokio::time::Instant) -> u64 {
        self.start_unix_ms + t.saturating_duration_since(self.start).as_millis() as u64
    }

    /// When an event timed relative to its slot (`after_slot_ms`) is due: that far from
    /// the start of the slot the cluster gave its hold, read back onto the trace's clock,
    /// and not before its `at_ms`. Not sent when it must follow the slot's start and the
    /// cluster's clock will not have reached it (calendar mode).
    fn slot_due(
        &self,
        e: &Event,
        deps: &HashMap<u64, Produced>,
        scheduled: tokio::time::Instant,
    ) -> Result<tokio::time::Instant, String> {
        let (Some(off), Some(target)) = (e.after_slot_ms, e.op.slot_hold_ref()) else {
            return Ok(scheduled);
        };
        let slot = deps.get(&target).map_or(0, |p| p.slot_start_ms);
        if slot == 0 {
            return Ok(scheduled);
        }
        let t = i128::from(self.tl.to_trace(slot)) + i128::from(off);
        let due = self.due(t - i128::from(self.tl.start_ms)).max(scheduled);
        if off >= 0 && self.unix_at(due) < slot {
            return Err("SKIPPED/SLOT_NOT_STARTED".into());
        }
        Ok(due)
    }

    /// Sends an event whose dependencies answered `deps`.
    async fn send_event(&self, e: &Event, deps: &HashMap<u64, Produced>) -> Answer {
        let resolve = |r: Ref, part: Part| match r {
            Ref::Id(id) => id,
            Ref::Event { event } => deps.get(&event).map_or(0, |p| match part {
                Part::Id => p.id,
                Part::Hospital => u64::from(p.hospital),
                Part::Bed => u64::from(p.bed),
            }),
        };
        let op = self.tl.map_op(&e.op);
        let call = Call {
            request_id: salted(&e.request_id, self.opts.salt),
            resolve: &resolve,
            attrs: e.patient_attrs.as_ref(),
        };
        // The client retries (same request id) within the request timeout; this bound is
        // only a backstop for a call stuck in transport.
        let bound = self.opts.request_timeout * 2 + Duration::from_secs(1);
        let answer = match tokio::time::timeout(bound, send(&self.conn, &op, call)).await {
            Err(_) => Err("DEADLINE_EXCEEDED/CLIENT_TIMEOUT".into()),
            Ok(Ok(p)) => Ok(p),
            Ok(Err(s)) if s.code() == tonic::Code::DeadlineExceeded => {
                Err(format!("DEADLINE_EXCEEDED/CLIENT_TIMEOUT|{}", s.message()))
            }
            Ok(Err(s)) => Err(format!("{}|{}", error_kind(&s), s.message())),
        };
        answer.map(|p| self.annotate(e, p))
    }

    /// Adds what only the replay knows to an answer: the trace day of its slot, and
    /// whether its no-show is the first to block the patient.
    fn annotate(&self, e: &Event, mut p: Produced) -> Produced {
        if e.op.holds_slot() && p.slot_start_ms != 0 {
            p.slot_day = u32::try_from(self.tl.trace_day(p.slot_start_ms)).ok();
        }
        if p.blocked_patient != 0 {
            p.new_block = self
                .blocked
                .lock()
                .is_ok_and(|mut b| b.insert(p.blocked_patient));
        }
        p
    }

    /// Records an event's fate: for later events and for the report.
    fn finish_event(
        &self,
        e: &Event,
        scheduled: tokio::time::Instant,
        sent: Option<Duration>,
        answer: Answer,
    ) {
        if let Ok(mut m) = self.results.lock() {
            m.insert(e.id, answer.as_ref().ok().copied());
        }
        self.done.notify_waiters();
        let _ = scheduled;
        if let Ok(mut c) = self.collector.lock() {
            c.record(e, sent, answer);
        }
    }
}

/// One event from its scheduled time on: its dependencies, its own due time when it is
/// timed from its slot (only then is its in-flight permit taken late), the call.
async fn run_event(
    shared: Arc<Shared>,
    e: Event,
    scheduled: tokio::time::Instant,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    permits: Arc<Semaphore>,
) {
    let deps = match shared.dependencies(&e).await {
        Ok(d) => d,
        Err(kind) => return shared.finish_event(&e, scheduled, None, Err(kind.into())),
    };
    let mut due = scheduled;
    let mut permit = permit;
    if e.after_slot_ms.is_some() {
        due = match shared.slot_due(&e, &deps, scheduled) {
            Ok(d) => d,
            Err(kind) => return shared.finish_event(&e, scheduled, None, Err(kind)),
        };
        tokio::time::sleep_until(due).await;
        match permits.try_acquire_owned() {
            Ok(p) => permit = Some(p),
            Err(_) => {
                return shared.finish_event(&e, due, None, Err("CLIENT_OVERLOAD".into()));
            }
        }
    }
    let answer = shared.send_event(&e, &deps).await;
    let latency = tokio::time::Instant::now().saturating_duration_since(due);
    shared.finish_event(&e, due, Some(latency), answer);
    drop(permit);
}

fn progress_bar(show: bool, len: u64) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(len);
    b.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} requests {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    b
}

/// Sends every event at its time, open loop; returns when all have finished.
async fn dispatch(shared: &Arc<Shared>, trace: &Trace, bar: &indicatif::ProgressBar) {
    let permits = Arc::new(Semaphore::new(shared.opts.max_in_flight.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for e in &trace.events {
        let scheduled = shared.due(i128::from(e.at_ms));
        tokio::time::sleep_until(scheduled).await;
        // An event timed from its slot takes its permit when it is really due.
        let permit = if e.after_slot_ms.is_some() {
            None
        } else {
            match permits.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    shared.finish_event(e, scheduled, None, Err("CLIENT_OVERLOAD".into()));
                    bar.inc(1);
                    continue;
                }
            }
        };
        let (shared, e, bar) = (shared.clone(), e.clone(), bar.clone());
        let permits = permits.clone();
        tasks.spawn(async move {
            run_event(shared, e, scheduled, permit, permits).await;
            bar.inc(1);
        });
        // Reap finished tasks as we go so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// Samples the bed occupancy of `watched` hospitals on trace time until the last event,
/// at most [`OCCUPANCY_SAMPLES_MAX`] times.
fn spawn_sampler(
    shared: Arc<Shared>,
    watched: Vec<u32>,
    last_ms: u64,
) -> tokio::task::JoinHandle<()> {
    let every = shared
        .opts
        .occupancy_every_ms
        .max(1)
        .max(last_ms.div_ceil(OCCUPANCY_SAMPLES_MAX));
    tokio::spawn(async move {
        let mut trace_ms = 0u64;
        loop {
            tokio::time::sleep_until(shared.due(i128::from(trace_ms))).await;
            for &h in &watched {
                if let Ok(o) = shared.conn.occupancy(h).await {
                    if let Ok(mut c) = shared.collector.lock() {
                        c.occupancy_sample(h, trace_ms, o);
                    }
                }
            }
            if trace_ms >= last_ms {
                break;
            }
            trace_ms = (trace_ms + every).min(last_ms);
        }
    })
}

/// Calendar mode: the shift onto the cluster's days, and a note of the days its windows
/// reach that have no open slot there.
async fn calendar(
    trace: &Trace,
    opts: &ReplayOptions,
    conn: &Conn,
) -> Result<(Timeline, String), String> {
    let shift = super::timeline::calendar_shift(trace, opts.slot_day, conn).await?;
    let tl = Timeline::calendar(&trace.header, shift, opts.speed);
    let mut note = tl.describe(trace);
    // Best effort: a failed check is noted, not fatal.
    match super::timeline::days_without_slots(trace, &tl, conn, COVERAGE_DAYS_MAX).await {
        Ok(empty) if empty.is_empty() => {}
        Ok(empty) => note.push_str(&format!(
            "; no open slot on the cluster on trace days {} (a closed day, past, or beyond \
             its published horizon)",
            super::timeline::day_ranges(&empty)
        )),
        Err(e) => note.push_str(&format!("; the schedule was not checked: {e}")),
    }
    Ok((tl, note))
}

/// Live mode: publishes the region's schedule on the replay's clock, `lead` ahead.
async fn live(
    trace: &Trace,
    opts: &ReplayOptions,
    region: Option<&ninety_engine::region_file::RegionFile>,
    conn: &Conn,
) -> Result<(Timeline, String), String> {
    let region = opts.region.as_ref().or(region).ok_or(
        "live schedule: the trace names no built-in region (header \"region\"); give the \
         cluster's region (--region)",
    )?;
    let lead = opts
        .live_lead
        .unwrap_or_else(|| Duration::from_millis(2_000 + region.doctors.len() as u64));
    let w0 = now_ms() + lead.as_millis() as u64;
    let mut tl = Timeline::live(&trace.header, w0, opts.speed);
    let plan = super::live::plan(region, trace, &tl);
    tl.widen_ms = plan.max_delay_ms;
    let (seats, dropped, before) = (plan.seats, plan.seats_dropped, plan.slots_before_start);
    let p = super::live::publish(conn, plan, opts.publish_concurrency).await;
    if p.slots == 0 {
        return Err(format!(
            "live schedule: nothing published ({} refused: {}; {} too late)",
            p.refused,
            p.first_refusal.unwrap_or_default(),
            p.late
        ));
    }
    let mut note = tl.describe(trace);
    note.push_str(&format!(
        "; {} slots published for {seats} seats ({dropped} seats over the per-slot maximum, \
         {before} slots before the trace's start, {} slots too late for the lead, {} \
         doctors refused{})",
        p.slots,
        p.late,
        p.refused,
        p.first_refusal
            .map(|m| format!(": {m}"))
            .unwrap_or_default()
    ));
    Ok((tl, note))
}

/// Replays a trace against a running cluster and collects what happened.
///
/// `region` (the trace's preset, if known) gives hospital names and tiers to the report,
/// and live mode its schedule.
pub async fn replay(
    trace: &Trace,
    opts: &ReplayOptions,
    region: Option<&ninety_engine::region_file::RegionFile>,
) -> Result<ReplayResult, String> {
    if opts.targets.is_empty() {
        return Err("no target address".into());
    }
    check_speed(opts.speed)?;
    check_max_in_flight(opts.max_in_flight)?;
    trace.check_span()?;
    let cut;
    let trace = match opts.days {
        Some(0) => return Err("days: must be at least 1".into()),
        Some(n) => {
            cut = trace.first_days(n);
            &cut
        }
        None => trace,
    };
    let conn = Conn::new(
        &opts.targets,
        opts.request_timeout,
        opts.tls.clone(),
        opts.token.clone(),
    )?;
    let conn = match &opts.route {
        Some(region) => conn.routed(region)?,
        None => conn,
    };
    let (tl, note) = match opts.schedule {
        ScheduleMode::Calendar => calendar(trace, opts, &conn).await?,
        ScheduleMode::Live => live(trace, opts, region, &conn).await?,
    };
    let mut result = run(trace, opts, region, conn, tl).await?;
    result.schedule = note;
    Ok(result)
}

/// Runs the replay proper once the schedule is set.
async fn run(
    trace: &Trace,
    opts: &ReplayOptions,
    region: Option<&ninety_engine::region_file::RegionFile>,
    conn: Conn,
    tl: Timeline,
) -> Result<ReplayResult, String> {
    let mut collector = Collector::new(trace, opts, region);
    let watched = collector.busiest_hospitals(trace, opts.occupancy_hospitals);
    // Live mode starts at w0, when the published schedule's clock starts.
    let now = now_ms();
    let wait = if tl.mode == ScheduleMode::Live {
        Duration::from_millis(tl.w0_ms.saturating_sub(now))
    } else {
        Duration::ZERO
    };
    let shared = Arc::new(Shared {
        conn,
        tl,
        results: Mutex::new(HashMap::with_capacity(trace.events.len())),
        done: Notify::new(),
        collector: Mutex::new(std::mem::take(&mut collector)),
        blocked: Mutex::new(HashSet::new()),
        opts: opts.clone(),
        start: tokio::time::Instant::now() + wait,
        start_unix_ms: now + wait.as_millis() as u64,
    });
    tokio::time::sleep_until(shared.start).await;
    let bar = progress_bar(opts.progress, trace.events.len() as u64);
    let wall_start = Instant::now();
    let last_ms = trace.events.last().map_or(0, |e| e.at_ms);
    let sampler = spawn_sampler(shared.clone(), watched, last_ms);
    dispatch(&shared, trace, &bar).await;
    let _ = sampler.await;
    bar.finish_and_clear();
    let wall = wall_start.elapsed();
    let collector = shared
        .collector
        .lock()
        .map(|mut c| std::mem::take(&mut *c))
        .map_err(|_| "collector poisoned".to_string())?;
    Ok(collector.finish(wall))
}
