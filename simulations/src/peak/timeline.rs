//! How a trace's times meet the cluster's schedule ([`Timeline`]).
//!
//! * **calendar** (the default): every slot time of the trace moves by the same whole
//!   number of days, so trace day *N* lands on the cluster's day *first + N* with its time
//!   of day, weekday offsets and lead times kept. The cluster's clock runs on wall time,
//!   so a slot is never reached during a fast replay: events that must come after their
//!   slot starts (no-shows) are not sent (`SKIPPED/SLOT_NOT_STARTED`).
//! * **live**: the replay publishes the schedule itself ([`super::live`]), on the
//!   replay's own clock: trace time *t* is wall time `w0 + (t - start_ms) / speed`, for
//!   events, slots and windows alike, so slots start while the replay runs and no-shows
//!   and other after-start events happen. Durations the cluster measures (hold TTLs, a
//!   consultation's length, a transfer's ETA) are divided by the speed too.

use super::send::Conn;
use super::trace::{Header, Op, Trace, MS_PER_DAY};
use ninety_client::pb;

/// Which schedule the replay books against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScheduleMode {
    /// The cluster's own published days, the trace's days moved onto them by whole days.
    Calendar,
    /// A schedule the replay publishes on its own clock (slots relative to its start).
    Live,
}

/// Which day of the cluster the trace's first slot day lands on in calendar mode. A trace
/// is written for its own days (the GBA scenario's 2026-11-24); a cluster started with
/// `region = "gba"` publishes from the next clinic day after its founding node's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotDay {
    /// Ask the cluster (one `FindSlots` for the earliest open slot, [`discover_slot_day`]);
    /// as written when it has none.
    Discover,
    /// As `Discover`, then on to the first day with the weekday of the trace's first slot
    /// day (up to six days later): weekly clinic rotas then meet the days they were
    /// written for, at the cost of those days of the cluster's horizon.
    Weekday,
    /// Send the windows as written.
    AsWritten,
    /// The UTC day starting at this Unix ms (00:00 UTC).
    At(u64),
}

/// The shortest slot the engine publishes: a live slot lasts at least this long, and a
/// doctor's trace slots that fall within it on the replay's clock share one.
pub const LIVE_SLOT_MIN_MS: u64 = 60_000;

/// The mapping of trace time to the cluster's time for one replay.
#[derive(Clone, Debug, PartialEq)]
pub struct Timeline {
    pub mode: ScheduleMode,
    /// Calendar: added to every slot time (whole days).
    pub shift_ms: i64,
    /// Live: the wall-clock Unix ms of the trace's `start_ms` (`at_ms` 0).
    pub w0_ms: u64,
    /// The trace's `start_ms`.
    pub start_ms: u64,
    /// Trace ms per wall ms.
    pub speed: f64,
    /// Live: how much later than its trace time (on the replay's clock) a published slot
    /// may start ([`super::live::LivePlan::max_delay_ms`]); windows reach this much further.
    pub widen_ms: u64,
    /// The trace's header (its days and time zone).
    pub header: Header,
}

impl Timeline {
    /// Calendar mode: slot times moved by `shift_ms`.
    pub fn calendar(header: &Header, shift_ms: i64, speed: f64) -> Timeline {
        Timeline {
            mode: ScheduleMode::Calendar,
            shift_ms,
            w0_ms: 0,
            start_ms: header.start_ms,
            speed,
            widen_ms: 0,
            header: header.clone(),
        }
    }

    /// Live mode: the trace's `start_ms` is wall time `w0_ms`.
    pub fn live(header: &Header, w0_ms: u64, speed: f64) -> Timeline {
        Timeline {
            mode: ScheduleMode::Live,
            shift_ms: 0,
            w0_ms,
            start_ms: header.start_ms,
            speed,
            widen_ms: 0,
            header: header.clone(),
        }
    }

    /// A time of the trace (Unix ms, its time base) on the cluster's clock.
    pub fn to_cluster(&self, t: u64) -> u64 {
        match self.mode {
            ScheduleMode::Calendar => t.saturating_add_signed(self.shift_ms),
            ScheduleMode::Live => {
                let rel = (i128::from(t) - i128::from(self.start_ms)) as f64 / self.speed;
                (i128::from(self.w0_ms) + rel.round() as i128).clamp(0, i128::from(u64::MAX)) as u64
            }
        }
    }

    /// A time of the cluster's clock back on the trace's (the inverse of `to_cluster`).
    pub fn to_trace(&self, c: u64) -> u64 {
        match self.mode {
            ScheduleMode::Calendar => c.saturating_add_signed(self.shift_ms.saturating_neg()),
            ScheduleMode::Live => {
                let rel = (i128::from(c) - i128::from(self.w0_ms)) as f64 * self.speed;
                (i128::from(self.start_ms) + rel.round() as i128).clamp(0, i128::from(u64::MAX))
                    as u64
            }
        }
    }

    /// A duration the cluster measures (a TTL, an ETA), on its clock: divided by the
    /// speed in live mode, at least `min_ms` (when the trace's was).
    pub fn duration(&self, ms: u64, min_ms: u64) -> u64 {
        match self.mode {
            ScheduleMode::Calendar => ms,
            ScheduleMode::Live if ms == 0 => 0,
            ScheduleMode::Live => ((ms as f64 / self.speed).ceil() as u64).max(min_ms),
        }
    }

    /// A slot window on the cluster's clock; in live mode its end reaches `widen_ms`
    /// further (a published slot starts at or after its trace time, never before).
    pub fn window(&self, start: u64, end: u64) -> (u64, u64) {
        let (s, e) = (self.to_cluster(start), self.to_cluster(end));
        match self.mode {
            ScheduleMode::Calendar => (s, e),
            ScheduleMode::Live => (s, e.saturating_add(self.widen_ms)),
        }
    }

    /// The trace day (0 for the first) of a slot time of the cluster.
    pub fn trace_day(&self, cluster_ms: u64) -> i64 {
        self.header.day_of(self.to_trace(cluster_ms))
    }

    /// The op with its times on the cluster's clock: windows moved (calendar) or mapped
    /// (live); in live mode also TTLs, a joint consultation's length and a transfer's ETA
    /// divided by the speed.
    pub fn map_op(&self, op: &Op) -> Op {
        let mut op = op.clone();
        if let Some((s, e)) = op.window_mut() {
            let (a, b) = self.window(*s, *e);
            (*s, *e) = (a, b);
        }
        if self.mode == ScheduleMode::Calendar {
            return op;
        }
        let ttl_min = ninety_engine::limits::HOLD_TTL_MS_MIN;
        match &mut op {
            Op::HoldBed { ttl_ms, .. }
            | Op::AllocateBed { ttl_ms, .. }
            | Op::HoldSlot { ttl_ms, .. }
            | Op::RequestReferral { ttl_ms, .. } => *ttl_ms = self.duration(*ttl_ms, ttl_min),
            Op::HoldJointConsult {
                ttl_ms,
                duration_minutes,
                ..
            } => {
                *ttl_ms = self.duration(*ttl_ms, ttl_min);
                let ms = live_minutes(u64::from(*duration_minutes) * 60_000, self.speed);
                *duration_minutes = (ms / 60_000).min(u64::from(u32::MAX)) as u32;
            }
            Op::StartTransit { eta_after_ms, .. } => {
                *eta_after_ms = self.duration(*eta_after_ms, 0)
            }
            _ => {}
        }
        op
    }

    /// One line for the report: how the trace's days met the cluster's.
    pub fn describe(&self, trace: &Trace) -> String {
        let days = trace.window_days();
        let span = days.map_or("no slot windows".to_string(), |(a, b)| {
            format!("slot windows on trace days {a}..={b}")
        });
        match self.mode {
            ScheduleMode::Calendar => {
                let first = days.map_or(self.header.day0_ms(), |(a, _)| {
                    self.header
                        .day0_ms()
                        .saturating_add_signed(a * MS_PER_DAY as i64)
                });
                let local = |ms: u64| {
                    let off = i64::from(self.header.utc_offset_minutes()) * 60_000;
                    super::trace::utc_date(ms.saturating_add_signed(off))
                };
                format!(
                    "calendar: {span}; trace day {} ({}) on the cluster's {} (moved {} days)",
                    days.map_or(0, |d| d.0),
                    local(first),
                    local(self.to_cluster(first)),
                    self.shift_ms / MS_PER_DAY as i64
                )
            }
            ScheduleMode::Live => format!(
                "live: {span}; the replay published the schedule, trace start at {} \
                 (Unix ms), {} trace ms per wall ms",
                self.w0_ms, self.speed
            ),
        }
    }
}

/// A slot's length on the live clock: its trace length divided by the speed, in whole
/// minutes (rounded down), at least [`LIVE_SLOT_MIN_MS`].
pub fn live_minutes(trace_ms: u64, speed: f64) -> u64 {
    let ms = (trace_ms as f64 / speed) as u64;
    (ms / 60_000 * 60_000).max(LIVE_SLOT_MIN_MS)
}

/// The UTC day (its 00:00, Unix ms) a trace's slot windows search first: the day of the
/// earliest window start in the trace; `None` when no event has a window.
pub fn trace_slot_day(trace: &Trace) -> Option<u64> {
    trace
        .events
        .iter()
        .filter_map(|e| e.op.window().map(|w| w.0))
        .min()
        .map(|t| t / MS_PER_DAY * MS_PER_DAY)
}

/// The UTC day (00:00, Unix ms) of the earliest open slot the cluster offers from now to
/// three days ahead (one `Scheduling.FindSlots`), or `None` when it has none.
pub async fn discover_slot_day(conn: &Conn) -> Result<Option<u64>, String> {
    let now = now_ms();
    let r = conn
        .client()
        .find_slots(pb::FindSlotsRequest {
            window: super::send::window(now, now + 3 * MS_PER_DAY),
            limit: 1,
            consistency: pb::ReadConsistency::Local as i32,
            ..Default::default()
        })
        .await
        .map_err(|s| format!("discovering the schedule day (FindSlots): {}", s.message()))?;
    Ok(r.slots
        .first()
        .map(|s| s.start_ms / MS_PER_DAY * MS_PER_DAY))
}

/// How far calendar mode moves the trace's slot times for `day` (whole days; 0 when
/// either day is unknown).
pub async fn calendar_shift(trace: &Trace, day: SlotDay, conn: &Conn) -> Result<i64, String> {
    let Some(from) = trace_slot_day(trace) else {
        return Ok(0);
    };
    let to = match day {
        SlotDay::AsWritten => return Ok(0),
        SlotDay::At(ms) => ms,
        SlotDay::Discover | SlotDay::Weekday => match discover_slot_day(conn).await? {
            Some(d) if day == SlotDay::Weekday => {
                // 1970-01-01 was a Thursday: the weekday is the day number mod 7.
                let ahead = (from / MS_PER_DAY + 7 - d / MS_PER_DAY % 7) % 7;
                d + ahead * MS_PER_DAY
            }
            Some(d) => d,
            None => return Ok(0),
        },
    };
    // In i128: a trace may carry any u64 window (the replayer sends it as written).
    let shift = i128::from(to) - i128::from(from);
    Ok(shift.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
}

/// The trace days (0 for the first) whose mapped clinic day has no open slot on the
/// cluster (one `FindSlots` per day the windows reach, at most `max_days`): days beyond
/// the cluster's published horizon show here.
pub async fn days_without_slots(
    trace: &Trace,
    tl: &Timeline,
    conn: &Conn,
    max_days: i64,
) -> Result<Vec<i64>, String> {
    let Some((first, last)) = trace.window_days() else {
        return Ok(Vec::new());
    };
    let mut empty = Vec::new();
    for d in first..=last.min(first + max_days - 1) {
        let start = tl
            .header
            .day0_ms()
            .saturating_add_signed(d * MS_PER_DAY as i64);
        let (s, e) = (tl.to_cluster(start), tl.to_cluster(start + MS_PER_DAY));
        if e <= now_ms() {
            // A day already past on the cluster's clock: nothing there can be booked.
            empty.push(d);
            continue;
        }
        let r = conn
            .client()
            .find_slots(pb::FindSlotsRequest {
                window: super::send::window(s.max(now_ms()), e),
                limit: 1,
                consistency: pb::ReadConsistency::Local as i32,
                ..Default::default()
            })
            .await
            .map_err(|st| format!("checking the schedule (FindSlots): {}", st.message()))?;
        if r.slots.is_empty() {
            empty.push(d);
        }
    }
    Ok(empty)
}

/// Wall-clock Unix ms.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Days as ranges for a message: `3, 5..=9`.
pub fn day_ranges(days: &[i64]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < days.len() {
        let mut j = i;
        while j + 1 < days.len() && days[j + 1] == days[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            days[i].to_string()
        } else {
            format!("{}..={}", days[i], days[j])
        });
        i = j + 1;
    }
    out.join(", ")
}
