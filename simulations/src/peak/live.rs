//! Live mode's schedule: the replay publishes the region's clinic days on its own clock
//! (`PublishSchedule`), so slots start while the replay runs (see [`super::timeline`]).
//!
//! The slots are what a built-in region bootstraps with (`ninety_engine::generate`): every
//! doctor's full clinic day on the trace's first slot day, and each doctor's weekly
//! template on every day the trace's windows reach. A trace slot's time on the replay's
//! clock is `w0 + (start - start_ms) / speed`, its length divided by the speed in whole
//! minutes, at least one (the engine's shortest slot, [`live_minutes`]). A doctor's slots
//! that then start within one such length of the first are merged into one group, which
//! starts at the latest of them (so every booking meant for one of them comes before it
//! starts) and no earlier than the doctor's previous group ends, and takes one sub-slot
//! per consultation mode (in person first, then remote); seats add up to the engine's
//! per-slot maximum (the rest are counted as dropped). So at speed 15 or less every
//! 15-minute slot keeps its own time; faster, a doctor's nearby slots share one, a little
//! later: windows reach [`LivePlan::max_delay_ms`] further to find it.

use super::send::Conn;
use super::timeline::{live_minutes, now_ms, Timeline};
use super::trace::{Trace, MS_PER_DAY};
use ninety_client::pb;
use ninety_engine::generate;
use ninety_engine::limits::{SLOTS_PER_PUBLISH_MAX, SLOT_CAPACITY_MAX};
use ninety_engine::region_file::RegionFile;
use ninety_engine::{Mode, SlotSpec};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What live mode will publish: each doctor's slots on the cluster's clock.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LivePlan {
    /// (doctor, slots by start) for every doctor with a slot.
    pub doctors: Vec<(u32, Vec<pb::SlotSpec>)>,
    /// Seats of the trace's days, before merging.
    pub seats: u64,
    /// Seats beyond the engine's per-slot maximum once merged, not published.
    pub seats_dropped: u64,
    /// Slots starting before the trace does (in the past on the live clock), left out.
    pub slots_before_start: u64,
    /// The most a published sub-slot starts after the trace time of a slot it took.
    pub max_delay_ms: u64,
}

/// Seats of one mode of a slot group.
#[derive(Clone, Copy, Default)]
struct Seats {
    capacity: u32,
    overbook: u32,
    referral_quota: u32,
}

/// One doctor's merged slots, one sub-slot per mode.
struct Group {
    /// The first member's time on the live clock.
    first: u64,
    /// The latest member's.
    last: u64,
    /// Where it starts (set once the group is closed).
    start: u64,
    /// One sub-slot's length, ms.
    len: u64,
    modes: BTreeMap<u8, Seats>,
}

impl Group {
    fn end(&self) -> u64 {
        self.start + self.modes.len().max(1) as u64 * self.len
    }
}

/// The trace's slots of one doctor, as the built-in regions publish them: the full day on
/// `first_day` and the weekly template on every day in `first_day..=last_day` (UTC days).
fn trace_slots(
    full: &[SlotSpec],
    template: Option<&ninety_engine::WeeklyTemplate>,
    first_day: u64,
    last_day: u64,
) -> Vec<SlotSpec> {
    let mut slots: Vec<SlotSpec> = full.to_vec();
    if let Some(t) = template {
        for day in first_day..=last_day {
            for s in t.specs_for(day) {
                // Only the full day can overlap a template slot (as the cluster skips it).
                let end = s.start.0 + u64::from(s.duration_minutes) * 60_000;
                let overlaps = day == first_day
                    && full.iter().any(|o| {
                        o.start.0 < end
                            && s.start.0 < o.start.0 + u64::from(o.duration_minutes) * 60_000
                    });
                if !overlaps {
                    slots.push(s);
                }
            }
        }
    }
    slots.sort_by_key(|s| s.start);
    slots
}

/// Merges one doctor's trace slots onto the live clock (see the module doc).
fn groups(slots: &[SlotSpec], tl: &Timeline, plan: &mut LivePlan) -> Vec<Group> {
    let mut out: Vec<Group> = Vec::new();
    for s in slots {
        plan.seats += u64::from(s.capacity);
        if s.start.0 < tl.start_ms {
            plan.slots_before_start += 1;
            continue;
        }
        let at = tl.to_cluster(s.start.0);
        let len = live_minutes(u64::from(s.duration_minutes) * 60_000, tl.speed);
        let fresh = out.last().is_none_or(|g| at >= g.first + g.len);
        if fresh {
            out.push(Group {
                first: at,
                last: at,
                start: 0,
                len,
                modes: BTreeMap::new(),
            });
        }
        if let Some(g) = out.last_mut() {
            g.last = g.last.max(at);
            let seats = g.modes.entry(u8::from(s.mode == Mode::Remote)).or_default();
            seats.capacity += u32::from(s.capacity);
            seats.overbook += u32::from(s.overbook);
            seats.referral_quota += u32::from(s.referral_quota);
        }
    }
    let mut prev_end = 0;
    for g in &mut out {
        g.start = g.last.max(prev_end);
        prev_end = g.end();
        // The first member's latest sub-slot starts this much after the member.
        plan.max_delay_ms = plan.max_delay_ms.max(g.end() - g.len - g.first);
    }
    out
}

/// The published specs of a doctor's groups; seats beyond the per-slot maximum dropped.
fn specs(groups: Vec<Group>, plan: &mut LivePlan) -> Vec<pb::SlotSpec> {
    let max = u32::from(SLOT_CAPACITY_MAX);
    let mut out = Vec::new();
    for g in groups {
        for (i, (mode, seats)) in g.modes.into_iter().enumerate() {
            let capacity = seats.capacity.min(max);
            let overbook = seats.overbook.min(max - capacity);
            plan.seats_dropped += u64::from(seats.capacity - capacity);
            out.push(pb::SlotSpec {
                start_ms: g.start + i as u64 * g.len,
                duration_minutes: (g.len / 60_000).min(u64::from(u32::MAX)) as u32,
                mode: if mode == 1 {
                    pb::Mode::Remote as i32
                } else {
                    pb::Mode::InPerson as i32
                },
                capacity,
                referral_reserved: seats.referral_quota.min(capacity),
                cancel_before_minutes: 0,
                overbook,
            });
        }
    }
    out
}

/// What live mode publishes for `trace` on `region`: the UTC days from the trace's first
/// window day to its last.
pub fn plan(region: &RegionFile, trace: &Trace, tl: &Timeline) -> LivePlan {
    let mut plan = LivePlan::default();
    let windows: Vec<(u64, u64)> = trace.events.iter().filter_map(|e| e.op.window()).collect();
    let Some(first) = windows.iter().map(|w| w.0).min() else {
        return plan;
    };
    let last = windows.iter().map(|w| w.1.max(w.0)).max().unwrap_or(first);
    let (first_day, last_day) = (
        first / MS_PER_DAY,
        last.saturating_sub(1).max(first) / MS_PER_DAY,
    );
    let day = ninety_engine::LogTime(first_day * MS_PER_DAY);
    let full: BTreeMap<u32, Vec<SlotSpec>> = generate::schedules(region, day, 1)
        .into_iter()
        .map(|(d, s)| (d.0, s))
        .collect();
    let templates: BTreeMap<u32, ninety_engine::WeeklyTemplate> =
        generate::templates(region, generate::HORIZON_DAYS_DEFAULT)
            .into_iter()
            .map(|(d, t)| (d.0, t))
            .collect();
    for d in &region.doctors {
        let empty = Vec::new();
        let slots = trace_slots(
            full.get(&d.id.0).unwrap_or(&empty),
            templates.get(&d.id.0),
            first_day,
            last_day,
        );
        let g = groups(&slots, tl, &mut plan);
        let s = specs(g, &mut plan);
        if !s.is_empty() {
            plan.doctors.push((d.id.0, s));
        }
    }
    // The earliest first: publishing races the clock, the earliest slots are due first.
    plan.doctors
        .sort_by_key(|(d, s)| (s.first().map_or(u64::MAX, |x| x.start_ms), *d));
    plan
}

/// What publishing achieved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Published {
    pub slots: u64,
    /// Slots already started when their turn came (the lead was too short), left out.
    pub late: u64,
    /// `PublishSchedule` calls refused (the first message kept).
    pub refused: u64,
    pub first_refusal: Option<String>,
}

/// Publishes the plan, `concurrency` doctors at a time; each call leaves out the slots
/// that start within a second (they would be refused as not in the future).
pub async fn publish(conn: &Conn, plan: LivePlan, concurrency: usize) -> Published {
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (doctor, slots) in plan.doctors {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let conn = conn.clone();
        tasks.spawn(async move {
            let r = publish_doctor(&conn, doctor, slots).await;
            drop(permit);
            r
        });
    }
    let mut out = Published::default();
    while let Some(r) = tasks.join_next().await {
        let Ok((slots, late, refusal)) = r else {
            continue;
        };
        out.slots += slots;
        out.late += late;
        if let Some(m) = refusal {
            out.refused += 1;
            out.first_refusal.get_or_insert(m);
        }
    }
    out
}

/// One doctor's slots, in chunks of the engine's most per call: (published, late,
/// refusal).
async fn publish_doctor(
    conn: &Conn,
    doctor: u32,
    slots: Vec<pb::SlotSpec>,
) -> (u64, u64, Option<String>) {
    let soon = now_ms() + 1_000;
    let (late, slots): (Vec<_>, Vec<_>) = slots.into_iter().partition(|s| s.start_ms < soon);
    let mut published = 0;
    for chunk in slots.chunks(SLOTS_PER_PUBLISH_MAX) {
        let r = conn
            .client()
            .publish_schedule(pb::PublishScheduleRequest {
                request_id: ninety_client::new_request_id(),
                doctor_id: doctor,
                slots: chunk.to_vec(),
            })
            .await;
        match r {
            Ok(_) => published += chunk.len() as u64,
            Err(s) => {
                let m = format!("doctor {doctor}: {}", s.message());
                return (published, late.len() as u64, Some(m));
            }
        }
    }
    (published, late.len() as u64, None)
}
