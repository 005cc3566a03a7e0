//! Candidate generation and ranking, generic over a `Source` of availability: the published
//! view (read path) or the authoritative engine state (inside apply), so a query and an
//! allocation on the same state rank alike.
//!
//! In-person searches walk the origin's reach (nearest hospital first) and only when nothing
//! inside it matches walk the hospitals beyond it, nearest first, stopping at the first
//! hospital that has a match. Each doctor contributes one candidate: their earliest open slot
//! in the window, so the list spreads over doctors. Ranking computes the cheap base cost for
//! everyone and the load (a scan of the doctor's day) only while it can still change the top.

use super::index::RegionIndex;
use super::policy::{CostInput, MatchPolicy};
use super::*;
use crate::error::Rejection;
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

/// A slot found for a doctor, before load is known.
struct Found {
    doctor: DoctorId,
    slot: SlotId,
    start: LogTime,
    seats: u16,
    hospital: HospitalId,
    travel: u32,
    beyond: bool,
}

/// The top `k` slot candidates with their open seats, and a note. Each doctor brings up to
/// `per_doctor` slots (one for queries; more for a batch of identical requests, so the
/// solver can fill a near doctor's day instead of spreading to far ones).
pub(crate) fn rank_slots<S: Source>(
    src: &S,
    q: &SlotQuery,
    k: usize,
    per_doctor: usize,
) -> Result<(Vec<WithCapacity<Candidate>>, Option<String>), Rejection> {
    check_slot_query(q)?;
    let ix = src.index();
    let (origin, access) = ix.resolve(q.origin)?;
    let from = q.earliest.max(src.now().plus_ms(1));
    let window = (from, q.latest.plus_ms(1));
    let mut found = Vec::new();
    let mut note = None;
    let look = |d: DoctorId, at: (HospitalId, u32), beyond: bool, found: &mut Vec<Found>| {
        let Some(info) = ix.doctors.get(&d) else {
            return;
        };
        if q.language.is_some_and(|l| !info.languages.contains(&l)) {
            return;
        }
        let mut taken = 0;
        src.open_slots(d, window, q.mode, q.channel, &mut |slot, start, seats| {
            taken += 1;
            found.push(Found {
                doctor: d,
                slot,
                start,
                seats,
                hospital: at.0,
                travel: at.1,
                beyond,
            });
            taken < per_doctor
        });
    };
    if q.mode == Mode::Remote {
        for &d in ix
            .remote_by_specialty
            .get(&q.specialty)
            .into_iter()
            .flatten()
        {
            let h = ix.doctors.get(&d).map_or(HospitalId(0), |i| i.hospital);
            look(d, (h, 0), false, &mut found);
        }
    } else {
        let doctors_at = |h: HospitalId| ix.by_hospital_specialty.get(&(h, q.specialty));
        for &(h, m) in ix.reach.get(&origin).into_iter().flatten() {
            for &d in doctors_at(h).into_iter().flatten() {
                look(d, (h, access.saturating_add(m)), false, &mut found);
            }
        }
        if found.is_empty() {
            for (h, m) in beyond_reach(ix, origin) {
                let travel = access.saturating_add(m);
                for &d in doctors_at(h).into_iter().flatten() {
                    look(d, (h, travel), true, &mut found);
                }
                if !found.is_empty() {
                    note = Some(nothing_within(ix, h, travel));
                    break;
                }
            }
        }
    }
    Ok((top_slots(src, q, origin, found, k), note))
}

fn nothing_within(ix: &RegionIndex, h: HospitalId, minutes: u32) -> String {
    format!(
        "nothing matched within {} minutes; nearest beyond reach: {h} at {minutes} minutes",
        ix.reach_minutes
    )
}

/// Hospitals outside the origin's reach that roads connect it to, nearest first.
fn beyond_reach(ix: &RegionIndex, origin: HospitalId) -> Vec<(HospitalId, u32)> {
    let inside: BTreeSet<HospitalId> = ix
        .reach
        .get(&origin)
        .into_iter()
        .flatten()
        .map(|&(h, _)| h)
        .collect();
    let mut out: Vec<(HospitalId, u32)> = ix
        .travel_from(origin)
        .into_iter()
        .filter(|(h, _)| !inside.contains(h))
        .collect();
    out.sort_by_key(|&(h, m)| (m, h));
    out
}

/// Scores found slots and keeps the best `k`, computing load only while it can matter.
fn top_slots<S: Source>(
    src: &S,
    q: &SlotQuery,
    origin: HospitalId,
    found: Vec<Found>,
    k: usize,
) -> Vec<WithCapacity<Candidate>> {
    let (ix, policy, now) = (src.index(), src.policy(), src.now());
    let mut scored: Vec<(u64, CostInput, Found)> = found
        .into_iter()
        .map(|f| {
            let input = CostInput {
                urgency: q.urgency,
                travel_minutes: f.travel,
                wait_minutes: now.minutes_until(f.start).min(u64::from(u32::MAX)) as u32,
                tier: ix
                    .hospitals
                    .get(&f.hospital)
                    .map_or(Tier::Tertiary, |h| h.tier),
                allied: ix.allied(origin, f.hospital),
                load_permille: 0,
            };
            (policy.base_cost(&input), input, f)
        })
        .collect();
    scored.sort_by_key(|(base, _, f)| (*base, f.slot));
    let mut top: Vec<WithCapacity<Candidate>> = Vec::with_capacity(k + 1);
    for (base, mut input, f) in scored {
        if top.len() >= k && top.last().is_some_and(|(c, _)| base >= c.score) {
            // Load only adds to the base cost: nothing further can enter the top.
            break;
        }
        input.load_permille = src.day_load_permille(f.doctor, f.start.0 / MS_PER_DAY);
        let c = Candidate {
            doctor: f.doctor,
            slot: f.slot,
            start: f.start,
            hospital: f.hospital,
            travel_minutes: input.travel_minutes,
            wait_minutes: input.wait_minutes,
            tier: input.tier,
            allied: input.allied,
            beyond_reach: f.beyond,
            load_permille: input.load_permille,
            score: policy.cost(&input),
            explain: policy.explain(&input),
        };
        let at = top.partition_point(|(x, _)| (x.score, x.slot) <= (c.score, c.slot));
        top.insert(at, (c, u32::from(f.seats)));
        top.truncate(k);
    }
    top
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
        for (h, m) in beyond_reach(ix, origin) {
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
    out.sort_by_key(|(c, _): &WithCapacity<BedCandidate>| (c.score, c.ward));
    out.truncate(k);
    Ok((out, note))
}

fn bed_candidates<S: Source>(
    src: &S,
    q: &BedQuery,
    origin: HospitalId,
    (h, travel): (HospitalId, u32),
    beyond: bool,
    out: &mut Vec<WithCapacity<BedCandidate>>,
) {
    let (ix, policy) = (src.index(), src.policy());
    let tier = ix.hospitals.get(&h).map_or(Tier::Tertiary, |x| x.tier);
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
            explain: policy.explain(&input),
        };
        out.push((c, admissible));
    }
}
