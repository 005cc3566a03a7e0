//! Candidate generation and ranking, generic over a `Source` of availability: the published
//! view (read path) or the authoritative engine state (inside apply), so a query and an
//! allocation on the same state rank alike.
//!
//! In-person searches walk the origin's reach (nearest hospital first) and only when nothing
//! inside it matches walk the hospitals beyond it, nearest first, stopping at the first
//! hospital that has a match. Hospitals outside the query's `Bounds` (travel, tier) are
//! never walked, inside or beyond the reach. Each doctor contributes one candidate: their earliest open slot
//! in the window, so the list spreads over doctors. Ranking computes the cheap base cost for
//! everyone and the load (a scan of the doctor's day) only while it can still change the top.

use super::index::RegionIndex;
use super::policy::{CostInput, MatchPolicy};
use super::*;
use crate::error::Rejection;
use crate::limits::{BEYOND_REACH_HOSPITALS_MAX, BEYOND_REACH_HOSPITALS_SEEN_MAX};
use crate::region::{Equipment, WardKind};
use crate::time::MS_PER_DAY;
use std::collections::BTreeSet;

/// Where availability comes from.
pub trait Source {
    fn index(&self) -> &RegionIndex;
    fn policy(&self) -> &MatchPolicy;
    fn now(&self) -> LogTime;
    /// Calls `f(slot, start, open_seats)` for each slot of `doctor` starting in `[from, to)`
    /// in `mode` with a seat open to `channel`, by start, until `f` returns false.
    fn open_slots(
        &self,
        doctor: DoctorId,
        window: (LogTime, LogTime),
        mode: Mode,
        channel: Channel,
        f: &mut dyn FnMut(SlotId, LogTime, u16) -> bool,
    );
    /// The doctor's held+booked share of the seats of day `day` (days since the epoch).
    fn day_load_permille(&self, doctor: DoctorId, day: u64) -> u32;
    /// A ward's (admissible, held+occupied, staffed) beds.
    fn ward_beds(&self, ward: WardId) -> (u32, u32, u32);
    /// The doctors `RegionIndex::doctors_at(h, specialty, mode)` names, ordered by a lower
    /// bound of their first open slot in `mode` (`LogTime(u64::MAX)`: none), if the source
    /// keeps that order (the published view does). `None`: searches walk the index's order
    /// and bound every doctor by the window's start.
    fn first_open(
        &self,
        _h: HospitalId,
        _specialty: Specialty,
        _mode: Mode,
    ) -> Option<&[(LogTime, DoctorId)]> {
        None
    }
}

/// A candidate with the capacity the solver may give out (open seats or admissible beds).
pub(crate) type WithCapacity<C> = (C, u32);

/// Ranks slots for a query: the best `limit` candidates.
pub fn match_specialist<S: Source>(src: &S, q: &SlotQuery) -> Result<Ranked<Candidate>, Rejection> {
    check_limit(q.limit)?;
    let (list, note) = rank_slots(src, q, usize::from(q.limit), 1)?;
    Ok(Ranked {
        candidates: list.into_iter().map(|(c, _)| c).collect(),
        note,
    })
}

/// Ranks wards for a bed query: the best `limit` candidates.
pub fn match_beds<S: Source>(src: &S, q: &BedQuery) -> Result<Ranked<BedCandidate>, Rejection> {
    check_limit(q.limit)?;
    let (list, note) = rank_beds(src, q, usize::from(q.limit))?;
    Ok(Ranked {
        candidates: list.into_iter().map(|(c, _)| c).collect(),
        note,
    })
}

pub(crate) fn check_limit(limit: u16) -> Result<(), Rejection> {
    if limit == 0 || limit > MATCH_LIMIT_MAX {
        return Err(Rejection::invalid(
            "limit",
            format!("must be 1 to {MATCH_LIMIT_MAX}"),
        ));
    }
    Ok(())
}

/// Checks a slot query's window.
pub(crate) fn check_slot_query(q: &SlotQuery) -> Result<(), Rejection> {
    if q.latest < q.earliest || q.latest.0 - q.earliest.0 > MATCH_WINDOW_MS_MAX {
        return Err(Rejection::invalid(
            "latest",
            format!("must be from earliest to earliest + {MATCH_WINDOW_MS_MAX} ms"),
        ));
    }
    Ok(())
}

/// The top `k` slot candidates with their open seats, and a note. Each doctor brings up to
/// `per_doctor` slots (one for queries; more for a batch of identical requests, so the
/// solver can fill a near doctor's day instead of spreading to far ones).
///
/// The search is bounded: hospitals are walked cheapest lower bound first (travel, tier,
/// alliance and the earliest possible wait are known per hospital; only the doctor's start
/// and load are not), and inside a hospital doctors are walked by their first open slot when
/// the source keeps that order (`Source::first_open`). The walk stops as soon as the next
/// lower bound cannot beat the `k`-th candidate (a candidate tying the `k`-th on score and
/// found later does not enter), or once `MATCH_CANDIDATES_VISITED_MAX` doctors were looked
/// at and something was found.
pub(crate) fn rank_slots<S: Source>(
    src: &S,
    q: &SlotQuery,
    k: usize,
    per_doctor: usize,
) -> Result<(Vec<WithCapacity<Candidate>>, Option<String>), Rejection> {
    check_slot_query(q)?;
    let ix = src.index();
    let (origin, access) = ix.resolve(q.origin)?;
    let (earliest, latest) = q.window_at(src.now());
    let from = earliest.max(src.now().plus_ms(1));
    let mut walk = Walk {
        src,
        q,
        origin,
        window: (from, latest.plus_ms(1)),
        k: k.max(1),
        per_doctor: per_doctor.max(1),
        top: Vec::with_capacity(k + 1),
        visited: 0,
        slots: Vec::new(),
    };
    let mut note = None;
    let groups: Vec<(HospitalId, u32)> = if q.mode == Mode::Remote {
        let hs = ix.remote_hospitals.get(&q.specialty).into_iter().flatten();
        hs.map(|&h| (h, 0)).collect()
    } else {
        let reach = ix.reach.get(&origin).into_iter().flatten();
        reach.map(|&(h, m)| (h, access.saturating_add(m))).collect()
    };
    let groups: Vec<(HospitalId, u32)> = groups
        .into_iter()
        .filter(|&(h, travel)| within(ix, &q.bounds, h, travel))
        .collect();
    let mut order: Vec<(u64, usize)> = groups
        .iter()
        .enumerate()
        .map(|(i, &(h, travel))| (walk.base(h, travel, from), i))
        .collect();
    order.sort_unstable();
    for (bound, i) in order {
        if walk.cannot_enter(bound) || walk.exhausted() {
            break;
        }
        let (h, travel) = groups[i];
        walk.hospital(h, travel, false);
    }
    if walk.top.is_empty() && q.mode == Mode::InPerson {
        let relevant = |h| !ix.doctors_at(h, q.specialty, q.mode).is_empty();
        for (h, m) in beyond_reach(ix, origin, relevant) {
            let travel = access.saturating_add(m);
            if !within(ix, &q.bounds, h, travel) {
                continue;
            }
            walk.hospital(h, travel, true);
            if !walk.top.is_empty() {
                note = Some(nothing_within(ix, h, travel));
                break;
            }
        }
    }
    let policy = src.policy();
    let top = walk
        .top
        .into_iter()
        .map(|(mut c, seats, input)| {
            c.explain = policy.explain(&input);
            (c, seats)
        })
        .collect();
    Ok((top, note))
}

/// One bounded search for slot candidates (see `rank_slots`).
struct Walk<'a, S> {
    src: &'a S,
    q: &'a SlotQuery,
    origin: HospitalId,
    window: (LogTime, LogTime),
    k: usize,
    per_doctor: usize,
    /// The best candidates so far by (score, slot), with open seats and cost inputs.
    top: Vec<(Candidate, u32, CostInput)>,
    /// Doctors looked at.
    visited: usize,
    /// Scratch: the slots of the doctor being looked at.
    slots: Vec<(SlotId, LogTime, u16)>,
}

impl<S: Source> Walk<'_, S> {
    fn input(&self, h: HospitalId, travel: u32, start: LogTime) -> CostInput {
        let ix = self.src.index();
        CostInput {
            urgency: self.q.urgency,
            travel_minutes: travel,
            wait_minutes: self.src.now().minutes_until(start).min(u64::from(u32::MAX)) as u32,
            tier: ix.hospitals.get(&h).map_or(Tier::Tertiary, |x| x.tier),
            allied: ix.allied(self.origin, h),
            load_permille: 0,
        }
    }

    /// The cost before load of a slot at `start` in hospital `h`.
    fn base(&self, h: HospitalId, travel: u32, start: LogTime) -> u64 {
        self.src.policy().base_cost(&self.input(h, travel, start))
    }

    /// Whether nothing costing at least `bound` can enter the top any more.
    fn cannot_enter(&self, bound: u64) -> bool {
        self.top.len() >= self.k && self.top.last().is_some_and(|(c, _, _)| bound >= c.score)
    }

    fn exhausted(&self) -> bool {
        self.visited >= MATCH_CANDIDATES_VISITED_MAX && !self.top.is_empty()
    }

    /// Looks at the doctors of one hospital, by first open slot where the source knows it.
    fn hospital(&mut self, h: HospitalId, travel: u32, beyond: bool) {
        let (src, q) = (self.src, self.q);
        let ix = src.index();
        let ordered = src.first_open(h, q.specialty, q.mode);
        let ids = ix.doctors_at(h, q.specialty, q.mode);
        let n = ordered.map_or(ids.len(), <[_]>::len);
        let from = self.window.0;
        // Everything in this hospital shares travel, tier and alliance.
        let input = self.input(h, travel, from);
        let policy = src.policy();
        let base_at = |start: LogTime| {
            let wait = src.now().minutes_until(start).min(u64::from(u32::MAX)) as u32;
            policy.base_cost(&CostInput {
                wait_minutes: wait,
                ..input
            })
        };
        for i in 0..n {
            let (first, d) = match ordered {
                Some(o) => o[i],
                None => (from, ids[i]),
            };
            if self.cannot_enter(base_at(first.max(from))) {
                // Doctors are ordered by first open slot: later ones cost at least as much.
                break;
            }
            if self.exhausted() {
                return;
            }
            let Some(info) = ix.doctors.get(&d) else {
                continue;
            };
            if q.language.is_some_and(|l| !info.languages.contains(&l)) {
                continue;
            }
            self.visited += 1;
            let cut = if self.top.len() >= self.k {
                self.top.last().map(|(c, _, _)| c.score)
            } else {
                None
            };
            let mut slots = std::mem::take(&mut self.slots);
            slots.clear();
            let per_doctor = self.per_doctor;
            src.open_slots(
                d,
                self.window,
                q.mode,
                q.channel,
                &mut |slot, start, seats| {
                    // Slots come by start, so later ones cost at least as much before load.
                    if cut.is_some_and(|c| base_at(start) >= c) {
                        return false;
                    }
                    slots.push((slot, start, seats));
                    slots.len() < per_doctor
                },
            );
            for &(slot, start, seats) in &slots {
                let mut input = CostInput {
                    wait_minutes: src.now().minutes_until(start).min(u64::from(u32::MAX)) as u32,
                    ..input
                };
                if self.cannot_enter(policy.base_cost(&input)) {
                    break;
                }
                input.load_permille = src.day_load_permille(d, start.0 / MS_PER_DAY);
                let c = Candidate {
                    doctor: d,
                    slot,
                    start,
                    hospital: h,
                    travel_minutes: travel,
                    wait_minutes: input.wait_minutes,
                    tier: input.tier,
                    allied: input.allied,
                    beyond_reach: beyond,
                    load_permille: input.load_permille,
                    score: policy.cost(&input),
                    explain: String::new(),
                };
                let at = self
                    .top
                    .partition_point(|(x, _, _)| (x.score, x.slot) <= (c.score, c.slot));
                if at < self.k {
                    self.top.insert(at, (c, u32::from(seats), input));
                    self.top.truncate(self.k);
                }
            }
            self.slots = slots;
        }
    }
}

/// Whether hospital `h` at `travel` minutes passes the query's travel and tier bounds.
fn within(ix: &RegionIndex, bounds: &Bounds, h: HospitalId, travel: u32) -> bool {
    let tier = ix.hospitals.get(&h).map_or(Tier::Tertiary, |x| x.tier);
    bounds.admits(travel, tier)
}

fn nothing_within(ix: &RegionIndex, h: HospitalId, minutes: u32) -> String {
    format!(
        "nothing matched within {} minutes; nearest beyond reach: {h} at {minutes} minutes",
        ix.reach_minutes
    )
}

/// The bounded step beyond the reach: the `BEYOND_REACH_HOSPITALS_MAX` nearest hospitals
/// outside the origin's reach that roads connect it to and that could serve the request
/// (`relevant`: they have its specialty or a fitting ward), nearest first, among the
/// `BEYOND_REACH_HOSPITALS_SEEN_MAX` nearest outside the reach. Hospitals that
/// cannot serve it cost a heap step each, never a walk of their doctors or wards, so a
/// refusal (nothing anywhere) costs the reach plus this many hospitals, not the region.
fn beyond_reach<'a>(
    ix: &'a RegionIndex,
    origin: HospitalId,
    relevant: impl Fn(HospitalId) -> bool + 'a,
) -> impl Iterator<Item = (HospitalId, u32)> + 'a {
    let inside: BTreeSet<HospitalId> = ix
        .reach
        .get(&origin)
        .into_iter()
        .flatten()
        .map(|&(h, _)| h)
        .collect();
    ix.nearest_from(origin)
        .filter(move |(h, _)| !inside.contains(h))
        .take(BEYOND_REACH_HOSPITALS_SEEN_MAX)
        .filter(move |(h, _)| relevant(*h))
        .take(BEYOND_REACH_HOSPITALS_MAX)
}

/// Whether a ward meets a bed query (kind, sex, equipment, specialty, isolation).
pub(crate) fn ward_fits(q: &BedQuery, w: &crate::region::Ward) -> bool {
    q.needs.met_by(w)
        && q.specialty.is_none_or(|s| s == w.specialty)
        && (!q.isolation
            || w.kind == WardKind::Isolation
            || w.equipment.contains(&Equipment::NegativePressure))
}

/// The top `k` ward candidates with their admissible beds, and a note.
pub(crate) fn rank_beds<S: Source>(
    src: &S,
    q: &BedQuery,
    k: usize,
) -> Result<(Vec<WithCapacity<BedCandidate>>, Option<String>), Rejection> {
    let ix = src.index();
    let (origin, access) = ix.resolve(q.origin)?;
    let mut out = Vec::new();
    let mut note = None;
    let reach: Vec<(HospitalId, u32)> = ix.reach.get(&origin).cloned().unwrap_or_default();
    for (h, m) in reach {
        bed_candidates(
            src,
            q,
            origin,
            (h, access.saturating_add(m)),
            false,
            &mut out,
        );
    }
    if out.is_empty() {
        let relevant = |h| {
            let wards = ix.wards_by_hospital.get(&h).into_iter().flatten();
            wards
                .filter_map(|w| ix.wards.get(w))
                .any(|w| ward_fits(q, w))
        };
        for (h, m) in beyond_reach(ix, origin, relevant) {
            bed_candidates(
                src,
                q,
                origin,
                (h, access.saturating_add(m)),
                true,
                &mut out,
            );
            if !out.is_empty() {
                note = Some(nothing_within(ix, h, access.saturating_add(m)));
                break;
            }
        }
    }
    out.sort_by_key(|(c, _, _)| (c.score, c.ward));
    out.truncate(k);
    // Explanations only for what is answered: formatting one per ward of the reach was
    // most of a granted bed allocation's cost.
    let policy = src.policy();
    let out = out
        .into_iter()
        .map(|(mut c, beds, input)| {
            c.explain = policy.explain(&input);
            (c, beds)
        })
        .collect();
    Ok((out, note))
}

fn bed_candidates<S: Source>(
    src: &S,
    q: &BedQuery,
    origin: HospitalId,
    (h, travel): (HospitalId, u32),
    beyond: bool,
    out: &mut Vec<(BedCandidate, u32, CostInput)>,
) {
    let (ix, policy) = (src.index(), src.policy());
    let tier = ix.hospitals.get(&h).map_or(Tier::Tertiary, |x| x.tier);
    if !q.bounds.admits(travel, tier) {
        return;
    }
    for &w in ix.wards_by_hospital.get(&h).into_iter().flatten() {
        let Some(ward) = ix.wards.get(&w) else {
            continue;
        };
        if !ward_fits(q, ward) {
            continue;
        }
        let (admissible, in_use, staffed) = src.ward_beds(w);
        if admissible == 0 {
            continue;
        }
        let load = (u64::from(in_use) * 1_000 / u64::from(staffed.max(1))).min(1_000) as u32;
        let input = CostInput {
            urgency: q.urgency,
            travel_minutes: travel,
            wait_minutes: 0,
            tier,
            allied: ix.allied(origin, h),
            load_permille: load,
        };
        let c = BedCandidate {
            ward: w,
            hospital: h,
            travel_minutes: travel,
            tier,
            allied: input.allied,
            beyond_reach: beyond,
            admissible,
            load_permille: load,
            score: policy.cost(&input),
            explain: String::new(),
        };
        out.push((c, admissible, input));
    }
}
