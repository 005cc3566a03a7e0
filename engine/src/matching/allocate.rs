//! The allocation commands inside apply: `AllocateSlot`, `AllocateBed`, `SetMatchPolicy`,
//! and the batch path of `Engine::apply_batch`.
//!
//! Alone, an allocation takes its best candidate on the authoritative state (greedy in log
//! order). In a batch, each maximal run of consecutive allocation requests (at most
//! `ALLOCATION_BATCH_MAX`) is planned together: requests with the same query share one
//! candidate list, each request brings its top-K (`MatchPolicy::candidates_per_request`:
//! the shared best half plus a window that slides with the request's rank in its group, so
//! identical requests reach different slots), and `solve` finds the min-cost assignment over
//! slot seats and ward beds. The planned requests are then applied in log order, and the
//! rest of the run (unplaced, unsolved, repeats and retries) after them in log order, each
//! through the ordinary `apply`, so dedup, validation and "a refusal changes nothing" hold
//! per request. A plan is re-checked against the state before use; if it no longer holds,
//! the request falls back to greedy.

use super::candidates::{check_slot_query, rank_beds, rank_slots, Source, WithCapacity};
use super::index::RegionIndex;
use super::solve::{solve, Placement, Problem};
use super::*;
use crate::command::{Command, Outcome, Reply, Request};
use crate::engine::Engine;
use crate::error::Rejection;
use crate::limits::{HOLD_TTL_MS_MAX, HOLD_TTL_MS_MIN};
use crate::slots::SeatAsk;
use crate::time::MS_PER_DAY;
use std::collections::{BTreeMap, BTreeSet};

/// Equipment items one bed request may ask for.
pub const EQUIPMENT_PER_REQUEST_MAX: usize = 8;
/// Slots one doctor may bring to a group's candidates (the group's size, up to this).
pub const SLOTS_PER_DOCTOR_MAX: usize = 8;
/// Candidates one group of identical requests brings to the solve.
pub const CANDIDATES_PER_GROUP_MAX: usize = 1_024;

/// The solver's choice for one allocation request.
#[derive(Clone, Debug)]
pub(crate) enum Plan {
    Slot(Candidate),
    Bed(BedCandidate),
}

/// The authoritative state as a `Source`.
struct StateSource<'a> {
    e: &'a Engine,
    index: &'a RegionIndex,
    now: LogTime,
}

impl Source for StateSource<'_> {
    fn index(&self) -> &RegionIndex {
        self.index
    }
    fn policy(&self) -> &MatchPolicy {
        &self.e.match_policy
    }
    fn now(&self) -> LogTime {
        self.now
    }
    fn open_slots(
        &self,
        doctor: DoctorId,
        (from, to): (LogTime, LogTime),
        mode: Mode,
        channel: Channel,
        f: &mut dyn FnMut(SlotId, LogTime, u16) -> bool,
    ) {
        // Only slots with a seat open to the channel: full ones are not walked.
        for s in self.e.slots.open_doctor_slots(doctor, channel, from, to) {
            let open = s.open_seats(channel);
            if s.spec.mode == mode && open > 0 && !f(s.id, s.spec.start, open) {
                return;
            }
        }
    }
    fn day_load_permille(&self, doctor: DoctorId, day: u64) -> u32 {
        let from = LogTime(day.saturating_mul(MS_PER_DAY));
        let (mut seats, mut taken) = (0u64, 0u64);
        for s in self
            .e
            .slots
            .doctor_slots(doctor, from, from.plus_ms(MS_PER_DAY))
        {
            seats += u64::from(s.spec.capacity);
            taken += u64::from(s.taken());
        }
        (taken * 1_000 / seats.max(1)).min(1_000) as u32
    }
    fn ward_beds(&self, ward: WardId) -> (u32, u32, u32) {
        let staffed = self.e.beds.ward(ward).map_or(0, |w| w.staffed_beds);
        (
            self.e.beds.admissible(ward),
            self.e.beds.in_use(ward),
            staffed,
        )
    }
}

/// Whether a command takes part in batch planning.
fn is_allocation(c: &Command) -> bool {
    matches!(
        c,
        Command::AllocateSlot { .. } | Command::AllocateBed { .. }
    )
}

/// Checks a hold's time to live (the same bounds as `HoldBed`).
fn check_ttl(field: &str, ttl_ms: u64) -> Result<(), Rejection> {
    if !(HOLD_TTL_MS_MIN..=HOLD_TTL_MS_MAX).contains(&ttl_ms) {
        return Err(Rejection::invalid(
            field,
            format!("must be {HOLD_TTL_MS_MIN} to {HOLD_TTL_MS_MAX} ms"),
        ));
    }
    Ok(())
}

fn check_bed_query(q: &BedQuery) -> Result<(), Rejection> {
    if q.needs.equipment.len() > EQUIPMENT_PER_REQUEST_MAX {
        return Err(Rejection::invalid(
            "needs.equipment",
            format!("at most {EQUIPMENT_PER_REQUEST_MAX} items"),
        ));
    }
    Ok(())
}

impl Engine {
    /// The region's matching policy.
    pub fn match_policy(&self) -> &MatchPolicy {
        &self.match_policy
    }

    pub(crate) fn set_match_policy(&mut self, p: &MatchPolicy) -> Result<Reply, Rejection> {
        p.check()?;
        self.match_policy = p.clone();
        Ok(Reply::Done)
    }

    pub(crate) fn allocate_slot(
        &mut self,
        q: &SlotQuery,
        patient: PatientRef,
        referral: Option<ReferralId>,
        now: LogTime,
    ) -> Result<Reply, Rejection> {
        let planned = match self.live.plan.take() {
            Some(Plan::Slot(c)) => Some(c),
            _ => None,
        };
        let index = self.region_index();
        let c = self.slot_to_allocate(q, patient, referral, planned, &index, now)?;
        let hold = self.take_hold_id();
        let expires_at = now.plus_ms(self.policy.slot_hold_ttl_ms);
        let claim = crate::slots::SeatClaim {
            patient,
            channel: q.channel,
            consult: None,
        };
        self.slots.hold(hold, c.slot, claim, now, expires_at);
        Ok(Reply::SlotAllocated {
            hold,
            slot: c.slot,
            doctor: c.doctor,
            hospital: c.hospital,
            start: c.start,
            travel_minutes: c.travel_minutes,
            wait_minutes: c.wait_minutes,
            beyond_reach: c.beyond_reach,
            score: c.score,
            expires_at,
        })
    }

    /// The slot an `AllocateSlot` would hold a seat in now (the batch's `planned` choice if
    /// it still holds, else the best candidate), or its refusal. Changes nothing:
    /// `allocate_slot` and the refusal precheck (`apply::precheck`) both decide through it.
    pub(crate) fn slot_to_allocate(
        &self,
        q: &SlotQuery,
        patient: PatientRef,
        referral: Option<ReferralId>,
        planned: Option<Candidate>,
        index: &RegionIndex,
        now: LogTime,
    ) -> Result<Candidate, Rejection> {
        check_slot_query(q)?;
        self.check_referral_seat(&SeatAsk::new(patient, q.channel, referral))?;
        if q.channel == Channel::Public {
            if let Some(until) = self.slots.blocked(patient, now) {
                return Err(Rejection::BookingBlocked { until });
            }
        }
        let holdable = |c: &Candidate| {
            self.slots
                .check_holdable(c.slot, patient, q.channel, now)
                .is_ok()
        };
        let c = match planned.filter(holdable) {
            Some(c) => c,
            None => {
                let src = StateSource {
                    e: self,
                    index,
                    now,
                };
                let (mut list, _) = rank_slots(&src, q, 1, 1)?;
                list.pop().map(|(c, _)| c).ok_or_else(|| {
                    Rejection::NoCapacity(format!(
                        "no {:?} {:?} slot with an open {:?} seat in the window",
                        q.specialty, q.mode, q.channel
                    ))
                })?
            }
        };
        self.slots.check_holdable(c.slot, patient, q.channel, now)?;
        Ok(c)
    }

    pub(crate) fn allocate_bed(
        &mut self,
        q: &BedQuery,
        ttl_ms: u64,
        patient: PatientRef,
        now: LogTime,
    ) -> Result<Reply, Rejection> {
        let planned = match self.live.plan.take() {
            Some(Plan::Bed(c)) => Some(c),
            _ => None,
        };
        let index = self.region_index();
        let (c, bed) = self.bed_to_allocate(q, ttl_ms, planned, &index, now)?;
        let hold = self.take_hold_id();
        let expires_at = now.plus_ms(ttl_ms);
        self.beds.place_hold(hold, bed, patient, now, expires_at)?;
        Ok(Reply::BedAllocated {
            hold,
            bed,
            ward: c.ward,
            hospital: c.hospital,
            travel_minutes: c.travel_minutes,
            beyond_reach: c.beyond_reach,
            score: c.score,
            expires_at,
        })
    }

    /// `AllocateBed` through the referral channel: the referral is checked as for a
    /// referral seat (it exists, is the same patient's and waits for capacity), then the
    /// bed is chosen and held as by `AllocateBed`. Never planned with a batch: greedy.
    pub(crate) fn allocate_bed_for_referral(
        &mut self,
        q: &BedQuery,
        ttl_ms: u64,
        patient: PatientRef,
        referral: ReferralId,
        now: LogTime,
    ) -> Result<Reply, Rejection> {
        let ask = SeatAsk::new(patient, Channel::Referral, Some(referral));
        self.check_referral_seat(&ask)?;
        self.allocate_bed(q, ttl_ms, patient, now)
    }

    /// The ward and bed an `AllocateBed` would hold now (the batch's `planned` choice if it
    /// still holds, else the best candidate), or its refusal. Changes nothing:
    /// `allocate_bed` and the refusal precheck (`apply::precheck`) both decide through it.
    pub(crate) fn bed_to_allocate(
        &self,
        q: &BedQuery,
        ttl_ms: u64,
        planned: Option<BedCandidate>,
        index: &RegionIndex,
        now: LogTime,
    ) -> Result<(BedCandidate, BedId), Rejection> {
        check_ttl("ttl_ms", ttl_ms)?;
        check_bed_query(q)?;
        let c = match planned.filter(|c| self.beds.pick_bed(c.ward).is_ok()) {
            Some(c) => c,
            None => {
                let src = StateSource {
                    e: self,
                    index,
                    now,
                };
                let (mut list, _) = rank_beds(&src, q, 1)?;
                list.pop().map(|(c, _)| c).ok_or_else(|| {
                    Rejection::NoCapacity(format!(
                        "no admissible bed for {:?} (specialty {:?}, isolation {})",
                        q.needs, q.specialty, q.isolation
                    ))
                })?
            }
        };
        let bed = self.beds.pick_bed(c.ward)?;
        self.beds.check_holdable(bed)?;
        Ok((c, bed))
    }
}

/// One request of a run, as the planner sees it.
enum Ask<'a> {
    Slot(&'a SlotQuery),
    Bed(&'a BedQuery),
}

/// Per group of identical queries, its members (run positions) and its candidates.
type Groups<C> = BTreeMap<Vec<u8>, (Vec<usize>, Vec<WithCapacity<C>>)>;

impl Engine {
    /// Applies requests in log order, planning each run of consecutive allocations (at most
    /// `batch_max` long) together. `apply_batch` uses `ALLOCATION_BATCH_MAX`; offline
    /// analysis (the quality tool's optimum) may pass more.
    pub fn apply_batch_with_limit(
        &mut self,
        requests: &[Request],
        at: LogTime,
        batch_max: usize,
    ) -> Vec<Outcome> {
        let mut out: Vec<Option<Outcome>> = vec![None; requests.len()];
        let mut i = 0;
        while i < requests.len() {
            let run = requests[i..]
                .iter()
                .take(batch_max.max(1))
                .take_while(|r| is_allocation(&r.command))
                .count();
            if run < 2 {
                out[i] = Some(self.apply(&requests[i], at));
                i += 1;
                continue;
            }
            let plans = self.plan_run(&requests[i..i + run], at);
            for planned_pass in [true, false] {
                for (j, plan) in plans.iter().enumerate() {
                    if plan.is_some() == planned_pass {
                        self.live.plan = plan.clone();
                        out[i + j] = Some(self.apply(&requests[i + j], at));
                        self.live.plan = None;
                    }
                }
            }
            i += run;
        }
        let fallback = || Err(Rejection::invalid("batch", "request was not applied"));
        out.into_iter()
            .map(|o| o.unwrap_or_else(fallback))
            .collect()
    }

    /// Plans a run of allocation requests: one optional plan per request.
    fn plan_run(&mut self, run: &[Request], at: LogTime) -> Vec<Option<Plan>> {
        let now = self.now.max(at);
        let index = self.region_index();
        let src = StateSource {
            e: self,
            index: &index,
            now,
        };
        let mut seen = BTreeSet::new();
        let mut asks: Vec<Option<Ask>> = Vec::with_capacity(run.len());
        for r in run {
            // Retries and repeats return remembered replies: they take no part.
            let fresh = self.dedup.get(r.id).is_none() && seen.insert(r.id);
            asks.push(match &r.command {
                Command::AllocateSlot {
                    query,
                    patient,
                    referral,
                } if fresh => {
                    let blocked = query.channel == Channel::Public
                        && self.slots.blocked(*patient, now).is_some();
                    let ask = SeatAsk::new(*patient, query.channel, *referral);
                    let ok = !blocked
                        && check_slot_query(query).is_ok()
                        && self.check_referral_seat(&ask).is_ok();
                    ok.then_some(Ask::Slot(query))
                }
                Command::AllocateBed { query, .. } if fresh => {
                    check_bed_query(query).is_ok().then_some(Ask::Bed(query))
                }
                _ => None,
            });
        }
        let k = usize::from(self.match_policy.candidates_per_request.max(1));
        let mut plans = vec![None; run.len()];
        let slot_groups = group(
            &asks,
            k,
            |a| match a {
                Ask::Slot(q) => Some((postcard::to_stdvec(q).ok()?, *q)),
                Ask::Bed(_) => None,
            },
            |q, n, rows| {
                let per_doctor = rows.min(SLOTS_PER_DOCTOR_MAX);
                rank_slots(&src, q, n, per_doctor)
                    .map(|x| x.0)
                    .unwrap_or_default()
            },
        );
        assign(
            &slot_groups,
            k,
            |c: &Candidate| c.slot.0,
            |c| Plan::Slot(c.clone()),
            &mut plans,
        );
        let bed_groups = group(
            &asks,
            k,
            |a| match a {
                Ask::Bed(q) => Some((postcard::to_stdvec(q).ok()?, *q)),
                Ask::Slot(_) => None,
            },
            |q, n, _| rank_beds(&src, q, n).map(|x| x.0).unwrap_or_default(),
        );
        assign(
            &bed_groups,
            k,
            |c: &BedCandidate| u64::from(c.ward.0),
            |c| Plan::Bed(c.clone()),
            &mut plans,
        );
        plans
    }
}

/// Groups identical queries (by their encoding) and ranks each group's candidates once:
/// enough for every member to have `k` of its own.
fn group<'a, Q: 'a, C>(
    asks: &[Option<Ask<'a>>],
    k: usize,
    key: impl Fn(&Ask<'a>) -> Option<(Vec<u8>, &'a Q)>,
    rank: impl Fn(&Q, usize, usize) -> Vec<WithCapacity<C>>,
) -> Groups<C> {
    let mut members: BTreeMap<Vec<u8>, (Vec<usize>, &'a Q)> = BTreeMap::new();
    for (i, a) in asks.iter().enumerate() {
        if let Some((bytes, q)) = a.as_ref().and_then(&key) {
            members
                .entry(bytes)
                .or_insert_with(|| (Vec::new(), q))
                .0
                .push(i);
        }
    }
    members
        .into_iter()
        .map(|(bytes, (rows, q))| {
            let n = (k + rows.len() - 1).min(CANDIDATES_PER_GROUP_MAX);
            let list = rank(q, n, rows.len());
            (bytes, (rows, list))
        })
        .collect()
}

/// Builds the assignment problem of some groups, solves it and records the plans.
fn assign<C>(
    groups: &Groups<C>,
    k: usize,
    resource: impl Fn(&C) -> u64,
    plan: impl Fn(&C) -> Plan,
    plans: &mut [Option<Plan>],
) where
    C: HasScore,
{
    let mut columns: BTreeMap<u64, usize> = BTreeMap::new();
    let mut problem = Problem::default();
    let mut rows: Vec<(usize, Vec<&C>)> = Vec::new();
    for (members, list) in groups.values() {
        for (rank, &pos) in members.iter().enumerate() {
            let mut edges = Vec::with_capacity(k);
            let mut picked = Vec::with_capacity(k);
            for &ci in &row_window(rank, k, list.len()) {
                let (c, cap) = &list[ci];
                let next = columns.len();
                let col = *columns.entry(resource(c)).or_insert(next);
                if col == problem.capacity.len() {
                    problem.capacity.push(*cap);
                }
                // The same resource seen through another channel may show fewer seats.
                problem.capacity[col] = problem.capacity[col].min(*cap);
                edges.push((col, c.score()));
                picked.push(c);
            }
            problem.rows.push(edges);
            rows.push((pos, picked));
        }
    }
    for (placement, (i, (pos, picked))) in solve(&problem).into_iter().zip(rows.iter().enumerate())
    {
        if let Placement::Column(col) = placement {
            let chosen = problem.rows[i].iter().position(|e| e.0 == col);
            plans[*pos] = chosen.map(|j| plan(picked[j]));
        }
    }
}

/// The candidate positions a group member at `rank` brings: the group's best half of `k`,
/// then a window of the rest that slides with the rank, so identical requests spread over
/// different candidates instead of all fighting for the same `k`.
fn row_window(rank: usize, k: usize, len: usize) -> Vec<usize> {
    let head = (k / 2).max(1).min(len);
    let tail_start = (head + rank).min(len.saturating_sub(k - head));
    let tail_start = tail_start.max(head);
    let tail_end = (tail_start + (k - head)).min(len);
    (0..head).chain(tail_start..tail_end).collect()
}

/// Candidates the solver can cost.
trait HasScore {
    fn score(&self) -> u64;
}

impl HasScore for Candidate {
    fn score(&self) -> u64 {
        self.score
    }
}

impl HasScore for BedCandidate {
    fn score(&self) -> u64 {
        self.score
    }
}
