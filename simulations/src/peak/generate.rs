//! The peak-day generator: a scenario and a seed in, a trace out, byte for byte the same
//! for the same inputs (the engine's SplitMix64, integer draws and exact float arithmetic).

use super::scenario::Scenario;
use super::trace::{
    Channel, Event, Header, Home, Mode, Op, PatientAttrs, Ref, Tier, Trace, Urgency, MS_PER_DAY,
};
use ninety_engine::generate::{self, SplitMix64};
use ninety_engine::region::{Specialty, Tier as EngineTier};
use ninety_engine::region_file::RegionFile;
use std::collections::BTreeMap;

const MS_PER_MINUTE: u64 = 60_000;
/// Emergency bed holds last fifteen minutes.
const BED_HOLD_TTL_MS: u64 = 15 * MS_PER_MINUTE;
/// Joint consultations are held ten minutes.
const CONSULT_TTL_MS: u64 = 10 * MS_PER_MINUTE;
/// Longest bed hold the generator asks for (a day).
const HOLD_TTL_MS_CAP: u64 = 24 * 60 * MS_PER_MINUTE;
/// Minutes in a day: a start minute is below it.
pub const MINUTES_PER_DAY: u32 = 24 * 60;
/// Longest traffic of one day the generator writes, minutes (a day).
pub const TRACE_MINUTES_MAX: u32 = MINUTES_PER_DAY;
/// Most days one trace spans (a quarter).
pub const TRACE_DAYS_MAX: u32 = 92;
/// Largest multiplier of a scenario's arrival rate.
pub const SCALE_MAX: f64 = 1000.0;
/// Most journeys one trace may start (bounds memory; national at full scale for 10 minutes
/// is ~400,000).
pub const JOURNEYS_MAX: u64 = 5_000_000;

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    pub seed: u64,
    /// Minutes of trace; `None` for the scenario's default.
    pub minutes: Option<u32>,
    /// Minute of the local day to start at; `None` for the scenario's default.
    pub start_minute: Option<u32>,
    /// Multiplier of the scenario's arrival rate (0.1 for a tenth of the traffic).
    pub scale: f64,
    /// Days of traffic (each from `start_minute` for `minutes`); `None` for the
    /// scenario's default.
    pub days: Option<u32>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            seed: 1,
            minutes: None,
            start_minute: None,
            scale: 1.0,
            days: None,
        }
    }
}

/// What the generator knows of the region.
struct World {
    region: RegionFile,
    /// Every hospital and point, by index.
    tiers: Vec<EngineTier>,
    /// Indexes of primary-tier hospitals and points.
    primary: Vec<usize>,
    /// Indexes of hospitals (not points) of each city.
    by_city: BTreeMap<String, Vec<usize>>,
    /// (ward id, specialty) of each hospital index.
    wards: Vec<Vec<(u32, Specialty)>>,
    /// Doctors' main specialties, one entry per doctor (draws follow the doctors' mix).
    specialties: Vec<Specialty>,
    /// Remote doctors of tertiary hospitals, by specialty.
    remote_specialists: BTreeMap<Specialty, Vec<u32>>,
    /// Remote doctors of each hospital index.
    remote_by_hospital: Vec<Vec<u32>>,
    /// Hospital indexes with at least one ward, secondary or tertiary.
    bedded: Vec<usize>,
}

impl World {
    fn new(region: RegionFile) -> World {
        let index: BTreeMap<u32, usize> = region
            .hospitals
            .iter()
            .enumerate()
            .map(|(i, h)| (h.id.0, i))
            .collect();
        let n = region.hospitals.len();
        let mut w = World {
            tiers: region.hospitals.iter().map(|h| h.tier).collect(),
            primary: Vec::new(),
            by_city: BTreeMap::new(),
            wards: vec![Vec::new(); n],
            specialties: Vec::new(),
            remote_specialists: BTreeMap::new(),
            remote_by_hospital: vec![Vec::new(); n],
            bedded: Vec::new(),
            region: RegionFile { ..region.clone() },
        };
        for (i, h) in region.hospitals.iter().enumerate() {
            if h.tier == EngineTier::Primary {
                w.primary.push(i);
            }
            if !h.name.starts_with("Point") {
                w.by_city.entry(h.city.clone()).or_default().push(i);
            }
        }
        for we in &region.wards {
            if let Some(&i) = index.get(&we.ward.hospital.0) {
                w.wards[i].push((we.ward.id.0, we.ward.specialty));
            }
        }
        for d in &region.doctors {
            let main = d
                .specialties
                .first()
                .copied()
                .unwrap_or(Specialty::GeneralPractice);
            w.specialties.push(main);
            let Some(&i) = index.get(&d.hospital.0) else {
                continue;
            };
            if d.remote {
                w.remote_by_hospital[i].push(d.id.0);
                if w.tiers[i] == EngineTier::Tertiary {
                    w.remote_specialists.entry(main).or_default().push(d.id.0);
                }
            }
        }
        w.remote_specialists.retain(|_, v| v.len() >= 2);
        w.bedded = (0..n)
            .filter(|&i| w.tiers[i] != EngineTier::Primary && !w.wards[i].is_empty())
            .collect();
        if w.specialties.is_empty() {
            w.specialties.push(Specialty::GeneralPractice);
        }
        w
    }
}

fn pick<T: Copy>(rng: &mut SplitMix64, v: &[T]) -> Option<T> {
    if v.is_empty() {
        None
    } else {
        Some(v[rng.below(v.len() as u64) as usize])
    }
}

fn weighted(rng: &mut SplitMix64, weights: &[u32]) -> usize {
    let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    let mut x = rng.below(total.max(1));
    for (i, &w) in weights.iter().enumerate() {
        if x < u64::from(w) {
            return i;
        }
        x -= u64::from(w);
    }
    weights.len().saturating_sub(1)
}

fn between(rng: &mut SplitMix64, lo: u64, hi: u64) -> u64 {
    lo + rng.below(hi.saturating_sub(lo).max(1))
}

/// The engine's snake_case name of a specialty, as the API takes it.
pub fn specialty_name(s: Specialty) -> String {
    match serde_json::to_value(s) {
        Ok(serde_json::Value::String(name)) => name,
        _ => format!("{s:?}").to_lowercase(),
    }
}

/// Converts an engine tier.
pub fn tier_of(t: EngineTier) -> Tier {
    match t {
        EngineTier::Primary => Tier::Primary,
        EngineTier::Secondary => Tier::Secondary,
        EngineTier::Tertiary => Tier::Tertiary,
    }
}

/// One patient: stable across their journeys.
struct Patient {
    reference: String,
    hospital: usize,
    home: Home,
    language: String,
    attrs: PatientAttrs,
}

/// Repeat no-show patients are numbered from here (their own streams, apart from the
/// pool's).
const PRONE_BASE: u64 = 1 << 40;

struct Gen<'a> {
    sc: &'a Scenario,
    world: &'a World,
    rng: SplitMix64,
    seed: u64,
    horizon_ms: u64,
    /// The trace's start, Unix ms (windows are absolute).
    start_ms: u64,
    /// (at_ms, temporary index, op, patient index, after_slot_ms) — sorted and numbered
    /// at the end.
    pending: Vec<Pending>,
    patients: Vec<Patient>,
    /// Indexes (into `patients`) of the repeat no-show pool, drawn lazily.
    prone: Vec<Option<usize>>,
    /// Indexes (into `patients`) of the main pool's patients met so far, by number.
    main: BTreeMap<u64, usize>,
}

struct Pending {
    at_ms: u64,
    tmp: u64,
    op: Op,
    patient: Option<usize>,
    after_slot_ms: Option<i64>,
}

/// A booking's window: (start, end), Unix ms.
type Window = (u64, u64);

impl Gen<'_> {
    /// Schedules an op; returns its temporary index (a reference for later ops), or None
    /// if it falls after the end of the trace.
    fn push(&mut self, at_ms: u64, op: Op, patient: Option<usize>) -> Option<Ref> {
        self.push_timed(at_ms, op, patient, None)
    }

    /// As `push`, for an op timed `after_slot_ms` from its slot (`at_ms` the estimate).
    fn push_timed(
        &mut self,
        at_ms: u64,
        op: Op,
        patient: Option<usize>,
        after_slot_ms: Option<i64>,
    ) -> Option<Ref> {
        if at_ms >= self.horizon_ms {
            return None;
        }
        let tmp = self.pending.len() as u64;
        self.pending.push(Pending {
            at_ms,
            tmp,
            op,
            patient,
            after_slot_ms,
        });
        Some(Ref::Event { event: tmp })
    }

    fn patient(&mut self, journeys: u64) -> usize {
        let pool = (journeys * u64::from(self.sc.patients.distinct_per_100) / 100).max(1);
        let k = self.rng.below(pool);
        self.patient_at(k)
    }

    /// The patient numbered `n`, made on first use.
    fn patient_at(&mut self, n: u64) -> usize {
        if n >= PRONE_BASE {
            let k = (n - PRONE_BASE) as usize;
            if let Some(Some(i)) = self.prone.get(k) {
                return *i;
            }
            let p = self.new_patient(n);
            self.patients.push(p);
            let i = self.patients.len() - 1;
            if let Some(slot) = self.prone.get_mut(k) {
                *slot = Some(i);
            }
            return i;
        }
        if let Some(&i) = self.main.get(&n) {
            return i;
        }
        let p = self.new_patient(n);
        self.patients.push(p);
        self.main.insert(n, self.patients.len() - 1);
        self.patients.len() - 1
    }

    /// A repeat no-show patient of the pool.
    fn prone_patient(&mut self) -> usize {
        let k = self.rng.below(self.prone.len().max(1) as u64);
        self.patient_at(PRONE_BASE + k)
    }

    fn new_patient(&self, n: u64) -> Patient {
        // Each patient is drawn from their own stream so that their attributes do not
        // depend on when they first appear.
        let mut r = SplitMix64::new(self.seed ^ 0x7061_7469_656e_7473 ^ n.wrapping_mul(0x9e37));
        let reference = format!("{:016x}{:016x}", r.next_u64(), r.next_u64());
        let p = &self.sc.patients;
        let w = self.world;
        let hospital = if r.chance(u64::from(p.start_at_primary)) && !w.primary.is_empty() {
            pick(&mut r, &w.primary).unwrap_or(0)
        } else {
            r.below(w.tiers.len() as u64) as usize
        };
        let h = &w.region.hospitals[hospital];
        let home = if r.chance(u64::from(p.home_as_coordinates)) {
            Home::Point {
                lat_micro_deg: h.lat_micro_deg + r.below(20_001) as i32 - 10_000,
                lon_micro_deg: h.lon_micro_deg + r.below(20_001) as i32 - 10_000,
            }
        } else {
            Home::Hospital { hospital: h.id.0 }
        };
        let weights: Vec<u32> = p.languages.iter().map(|(_, w)| *w).collect();
        let language = p.languages[weighted(&mut r, &weights)].0.clone();
        let bands: Vec<u32> = p.age_bands.iter().map(|(_, w)| *w).collect();
        let attrs = PatientAttrs {
            age_band: Some(p.age_bands[weighted(&mut r, &bands)].0.clone()),
            sex: Some(if r.chance(50) { "female" } else { "male" }.into()),
            language: (!p.common_languages.contains(&language)).then(|| language.clone()),
        };
        Patient {
            reference,
            hospital,
            home,
            language,
            attrs,
        }
    }

    fn urgency(&mut self) -> Urgency {
        [Urgency::P1, Urgency::P2, Urgency::P3, Urgency::P4]
            [weighted(&mut self.rng, &self.sc.patients.urgency)]
    }

    fn specialty(&mut self) -> String {
        let s = pick(&mut self.rng, &self.world.specialties).unwrap_or(Specialty::GeneralPractice);
        specialty_name(s)
    }

    fn home_hospital_id(&self, p: usize) -> u32 {
        self.world.region.hospitals[self.patients[p].hospital].id.0
    }

    /// The window of a booking made at `t`: the clinic day `lead` days after the day of
    /// `t` (lead drawn from `schedule.lead_days`), spanning `schedule.window_days`.
    fn window(&mut self, t: u64) -> Window {
        let d = &self.sc.day;
        let s = &self.sc.schedule;
        let day = (self.start_ms + t).saturating_sub(d.midnight_ms) / MS_PER_DAY;
        let lead = weighted(&mut self.rng, &s.lead_days) as u64;
        let from = d.slots_from_ms + (day + lead) * MS_PER_DAY;
        let to = d.slots_to_ms + (day + lead + u64::from(s.window_days) - 1) * MS_PER_DAY;
        (from, to)
    }

    /// When the trace expects the slot of a booking made at `booked_at` in `w` to start
    /// (trace ms): the window's start, and not before the booking.
    fn slot_estimate(&self, booked_at: u64, w: Window) -> u64 {
        w.0.saturating_sub(self.start_ms)
            .max(booked_at + MS_PER_MINUTE)
    }

    /// After a slot hold: booked, then perhaps cancelled or missed; or left to expire.
    fn after_slot_hold(&mut self, t: u64, hold: Option<Ref>, p: usize, w: Window, prone: bool) {
        let Some(hold) = hold else { return };
        let r = self.rng.below(100) as u32;
        if r < self.sc.mix.expire && !prone {
            return;
        }
        let booked_at = t + between(&mut self.rng, 20_000, 90_000);
        if self
            .push(booked_at, Op::BookSlot { hold }, Some(p))
            .is_none()
        {
            return;
        }
        self.after_booking(booked_at, hold, p, w, r, prone);
    }

    /// A booking's end: cancelled (perhaps late), a no-show, or attended. `r` (0..100)
    /// picks by the mix; a repeat no-show patient never comes.
    fn after_booking(
        &mut self,
        booked_at: u64,
        hold: Ref,
        p: usize,
        w: Window,
        r: u32,
        prone: bool,
    ) {
        let m = &self.sc.mix;
        let (expire, cancel, no_show, late) = (m.expire, m.cancel, m.no_show, m.late_cancel);
        let slot = self.slot_estimate(booked_at, w);
        if !prone && r < expire + cancel {
            let reason = "patient-cancelled".to_string();
            let before = between(&mut self.rng, 30 * MS_PER_MINUTE, 110 * MS_PER_MINUTE);
            if self.rng.chance(u64::from(late)) && slot > booked_at + before + MS_PER_MINUTE {
                let op = Op::CancelBooking { hold, reason };
                self.push_timed(slot - before, op, Some(p), Some(-(before as i64)));
            } else {
                let at = booked_at + between(&mut self.rng, 2 * MS_PER_MINUTE, 20 * MS_PER_MINUTE);
                self.push(at, Op::CancelBooking { hold, reason }, Some(p));
            }
        } else if prone || r < expire + cancel + no_show {
            let after = between(&mut self.rng, 10 * MS_PER_MINUTE, 30 * MS_PER_MINUTE);
            let op = Op::MarkNoShow { hold };
            self.push_timed(slot + after, op, Some(p), Some(after as i64));
        }
    }

    /// After a bed hold: confirmed, released, or left to expire (then read back).
    fn after_bed_hold(&mut self, t: u64, hold: Option<Ref>, ttl_ms: u64, p: usize) {
        let Some(hold) = hold else { return };
        let m = &self.sc.mix;
        let r = self.rng.below(100) as u32;
        let at = t + between(&mut self.rng, MS_PER_MINUTE, 10 * MS_PER_MINUTE);
        if r < m.expire {
            self.push(t + ttl_ms + 30_000, Op::GetHold { hold }, Some(p));
        } else if r < m.expire + m.release {
            self.push(
                at,
                Op::ReleaseHold {
                    hold,
                    reason: "patient-declined".into(),
                },
                Some(p),
            );
        } else if self.push(at, Op::ConfirmHold { hold }, Some(p)).is_some() {
            self.discharge(at, hold, p);
        }
    }

    /// An admitted patient's stay ends: the bed of `hold` is discharged, then cleaned.
    fn discharge(&mut self, admitted: u64, hold: Ref, p: usize) -> Option<u64> {
        let b = &self.sc.beds;
        if !self.rng.chance(u64::from(b.discharged)) {
            return None;
        }
        let [lo, hi] = b.stay_minutes.map(|m| u64::from(m) * MS_PER_MINUTE);
        let [clo, chi] = b.clean_minutes.map(|m| u64::from(m) * MS_PER_MINUTE);
        let out = admitted + between(&mut self.rng, lo, hi + 1);
        self.push(out, Op::Discharge { bed: hold }, Some(p))?;
        let clean = out + between(&mut self.rng, clo, chi + 1);
        self.push(clean, Op::MarkBedClean { bed: hold }, Some(p));
        Some(out)
    }

    /// A repeat no-show patient in place of `p` for a booking journey, per the pool's
    /// share.
    fn maybe_prone(&mut self, p: usize) -> (usize, bool) {
        if self.prone.is_empty()
            || self.rng.below(1000) >= u64::from(self.sc.patients.no_show_prone)
        {
            return (p, false);
        }
        (self.prone_patient(), true)
    }

    fn follow_up(&mut self, t: u64, p: usize) {
        let (p, prone) = self.maybe_prone(p);
        let remote = self.rng.chance(u64::from(self.sc.mix.follow_up_remote));
        let mode = if remote { Mode::Remote } else { Mode::InPerson };
        let w = self.window(t);
        let op = Op::AllocateSlot {
            patient: self.patients[p].reference.clone(),
            from_hospital: self.home_hospital_id(p),
            specialty: self.specialty(),
            urgency: Urgency::P4,
            mode,
            window_start_ms: w.0,
            window_end_ms: w.1,
            max_travel_minutes: 0,
            ttl_ms: 0,
            channel: Channel::Public,
            referral: None,
        };
        let hold = self.push(t, op, Some(p));
        self.after_slot_hold(t, hold, p, w, prone);
    }

    fn match_specialist(
        &mut self,
        t: u64,
        p: usize,
        specialty: String,
        urgency: Urgency,
        w: Window,
    ) {
        let op = Op::MatchSpecialist {
            from_hospital: self.home_hospital_id(p),
            specialty,
            urgency,
            mode: Mode::Any,
            window_start_ms: w.0,
            window_end_ms: w.1,
            max_travel_minutes: 90,
            channel: Channel::Public,
            limit: 10,
        };
        self.push(t, op, Some(p));
    }

    /// A search (`$find`), then the one-call `book` of the best slot (`$book`).
    fn new_booking(&mut self, t: u64, p: usize) {
        let (p, prone) = self.maybe_prone(p);
        let specialty = self.specialty();
        let urgency = self.urgency();
        let w = self.window(t);
        self.match_specialist(t, p, specialty.clone(), urgency, w);
        let at = t + between(&mut self.rng, 10_000, 60_000);
        let op = Op::Book {
            patient: self.patients[p].reference.clone(),
            from_hospital: self.home_hospital_id(p),
            specialty,
            urgency,
            mode: Mode::InPerson,
            window_start_ms: w.0,
            window_end_ms: w.1,
            max_travel_minutes: 0,
            channel: Channel::Public,
            referral: None,
        };
        let Some(hold) = self.push(at, op, Some(p)) else {
            return;
        };
        // A booking made in one call cannot be left to expire: skip that share.
        let expire = self.sc.mix.expire;
        let r = expire + self.rng.below(u64::from(100 - expire.min(99))) as u32;
        self.after_booking(at, hold, p, w, r, prone);
    }

    fn match_query(&mut self, t: u64, p: usize) {
        let n = 1 + self.rng.below(3);
        let mut at = t;
        for _ in 0..n {
            let s = self.specialty();
            let u = self.urgency();
            let w = self.window(at);
            self.match_specialist(at, p, s, u, w);
            at += between(&mut self.rng, 5_000, 30_000);
        }
    }

    /// A hospital with wards near the patient: same city when possible.
    fn bedded_near(&mut self, p: usize) -> Option<usize> {
        let w = self.world;
        let city = &w.region.hospitals[self.patients[p].hospital].city;
        let local: Vec<usize> = w
            .by_city
            .get(city)
            .map(|v| {
                v.iter()
                    .copied()
                    .filter(|&i| w.tiers[i] != EngineTier::Primary && !w.wards[i].is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if !local.is_empty() && self.rng.chance(85) {
            pick(&mut self.rng, &local)
        } else {
            pick(&mut self.rng, &w.bedded)
        }
    }

    fn bed_hold(&mut self, t: u64, p: usize) {
        let Some(h) = self.bedded_near(p) else { return };
        let Some((ward, _)) = pick(&mut self.rng, &self.world.wards[h]) else {
            return;
        };
        let urgency = [Urgency::P1, Urgency::P2, Urgency::P3][weighted(&mut self.rng, &[2, 5, 3])];
        let op = Op::HoldBed {
            ward,
            bed: 0,
            patient: self.patients[p].reference.clone(),
            ttl_ms: BED_HOLD_TTL_MS,
            urgency,
            channel: Channel::Public,
            referral: None,
        };
        let hold = self.push(t, op, Some(p));
        self.after_bed_hold(t, hold, BED_HOLD_TTL_MS, p);
    }

    fn bed_allocation(&mut self, t: u64, p: usize) {
        let Some(h) = self.bedded_near(p) else { return };
        let Some((_, specialty)) = pick(&mut self.rng, &self.world.wards[h]) else {
            return;
        };
        let ttl = 30 * MS_PER_MINUTE;
        let op = Op::AllocateBed {
            patient: self.patients[p].reference.clone(),
            from_hospital: self.home_hospital_id(p),
            specialty: specialty_name(specialty),
            urgency: self.urgency(),
            max_travel_minutes: 0,
            min_tier: None,
            ttl_ms: ttl,
            channel: Channel::Public,
            referral: None,
        };
        let hold = self.push(t, op, Some(p));
        self.after_bed_hold(t, hold, ttl, p);
    }

    /// Two or three remote specialists of one specialty (plus the requesting hospital's
    /// own remote doctor when it has one: the Yunnan three-party consultation).
    fn consult_doctors(&mut self, p: usize, with_local: bool) -> Vec<u32> {
        let w = self.world;
        let groups: Vec<&Vec<u32>> = w.remote_specialists.values().collect();
        let Some(group) = pick(&mut self.rng, &groups) else {
            return Vec::new();
        };
        let mut doctors = Vec::new();
        if with_local {
            if let Some(d) = pick(
                &mut self.rng,
                &w.remote_by_hospital[self.patients[p].hospital],
            ) {
                doctors.push(d);
            }
        }
        let want = if with_local {
            3
        } else {
            2 + self.rng.below(2) as usize
        };
        let mut tries = 0;
        while doctors.len() < want && tries < 16 {
            tries += 1;
            if let Some(d) = pick(&mut self.rng, group) {
                if !doctors.contains(&d) {
                    doctors.push(d);
                }
            }
        }
        doctors
    }

    /// Holds a joint consultation; returns when it ends (booked) if it was scheduled.
    fn joint_consult(&mut self, t: u64, p: usize, with_local: bool) -> Option<u64> {
        let doctors = self.consult_doctors(p, with_local);
        if doctors.len() < 2 {
            return None;
        }
        let w = self.window(t);
        let op = Op::HoldJointConsult {
            patient: self.patients[p].reference.clone(),
            doctors,
            window_start_ms: w.0,
            window_end_ms: w.1,
            duration_minutes: 15,
            ttl_ms: CONSULT_TTL_MS,
            requesting_hospital: self.home_hospital_id(p),
        };
        let consult = self.push(t, op, Some(p))?;
        let r = self.rng.below(100) as u32;
        let at = t + between(&mut self.rng, 30_000, 120_000);
        if r < self.sc.mix.expire {
            None
        } else if r < self.sc.mix.expire + 10 {
            self.push(
                at,
                Op::ReleaseJointConsult {
                    consult,
                    reason: "rescheduled".into(),
                },
                Some(p),
            );
            None
        } else {
            self.push(at, Op::BookJointConsult { consult }, Some(p));
            Some(at)
        }
    }

    /// A referral: request, triage, capacity held, matched, then accepted and travelled
    /// (or cancelled).
    fn referral(&mut self, t: u64, p: usize) {
        let mut at = t;
        if self.sc.mix.consult_before_referral {
            // Remote consultation first; the referral follows the decision.
            match self.joint_consult(t, p, true) {
                Some(booked) => {
                    at = booked + between(&mut self.rng, 5 * MS_PER_MINUTE, 20 * MS_PER_MINUTE)
                }
                None => return,
            }
        }
        let needs_bed = self.rng.chance(80);
        let specialty = match self.bedded_near(p) {
            Some(h) if needs_bed => pick(&mut self.rng, &self.world.wards[h])
                .map(|(_, s)| specialty_name(s))
                .unwrap_or_else(|| self.specialty()),
            _ => self.specialty(),
        };
        let urgency = [Urgency::P1, Urgency::P2, Urgency::P3][weighted(&mut self.rng, &[2, 5, 3])];
        let op = Op::RequestReferral {
            patient: self.patients[p].reference.clone(),
            from_hospital: self.home_hospital_id(p),
            specialty: specialty.clone(),
            urgency,
            mode: Mode::InPerson,
            needs_bed,
            reason_code: "I21.9".into(),
            ttl_ms: 0,
        };
        let Some(referral) = self.push(at, op, Some(p)) else {
            return;
        };
        at += between(&mut self.rng, MS_PER_MINUTE, 5 * MS_PER_MINUTE);
        let op = Op::TriageReferral {
            referral,
            urgency,
            specialty: specialty.clone(),
        };
        if self.push(at, op, Some(p)).is_none() {
            return;
        }
        at += between(&mut self.rng, 30_000, 3 * MS_PER_MINUTE);
        let held = self.referral_capacity(at, p, referral, needs_bed, specialty, urgency);
        let Some(held) = held else { return };
        at += between(&mut self.rng, 10_000, 60_000);
        let op = Op::MatchReferral {
            referral,
            bed_hold: needs_bed.then_some(held),
            slot_hold: (!needs_bed).then_some(held),
            to_hospital: 0,
            hold_ttl_ms: 0,
            max_travel_minutes: 0,
        };
        let Some(matched) = self.push(at, op, Some(p)) else {
            return;
        };
        self.transfer(at, p, referral, matched, needs_bed.then_some(held));
    }

    /// Capacity held ahead for a triaged referral: a bed for the whole journey, or a slot.
    fn referral_capacity(
        &mut self,
        at: u64,
        p: usize,
        referral: Ref,
        needs_bed: bool,
        specialty: String,
        urgency: Urgency,
    ) -> Option<Ref> {
        let hold_ms = u64::from(self.sc.mix.transfer_hold_minutes) * MS_PER_MINUTE;
        let patient = self.patients[p].reference.clone();
        let from_hospital = self.home_hospital_id(p);
        let op = if needs_bed {
            Op::AllocateBed {
                patient,
                from_hospital,
                specialty,
                urgency,
                max_travel_minutes: 0,
                min_tier: None,
                ttl_ms: hold_ms.min(HOLD_TTL_MS_CAP),
                channel: Channel::Referral,
                referral: Some(referral),
            }
        } else {
            let w = self.window(at);
            Op::AllocateSlot {
                patient,
                from_hospital,
                specialty,
                urgency,
                mode: Mode::InPerson,
                window_start_ms: w.0,
                window_end_ms: w.1,
                max_travel_minutes: 0,
                ttl_ms: 0,
                channel: Channel::Referral,
                referral: Some(referral),
            }
        };
        self.push(at, op, Some(p))
    }

    /// A matched referral: accepted, the patient travels and is admitted, stays, and is
    /// discharged (the referral completed, the bed freed and cleaned); 5% cancelled.
    fn transfer(&mut self, mut at: u64, p: usize, referral: Ref, matched: Ref, bed: Option<Ref>) {
        if self.rng.chance(5) {
            at += between(&mut self.rng, MS_PER_MINUTE, 10 * MS_PER_MINUTE);
            let op = Op::CancelReferral {
                referral,
                reason: "family-declined".into(),
            };
            self.push(at, op, Some(p));
            return;
        }
        at += between(&mut self.rng, MS_PER_MINUTE, 5 * MS_PER_MINUTE);
        let op = Op::AcceptReferral {
            referral,
            hospital: matched,
        };
        if self.push(at, op, Some(p)).is_none() {
            return;
        }
        at += between(&mut self.rng, 5 * MS_PER_MINUTE, 20 * MS_PER_MINUTE);
        let eta = u64::from(self.sc.mix.transfer_minutes) * MS_PER_MINUTE;
        let op = Op::StartTransit {
            referral,
            eta_after_ms: eta,
        };
        if self.push(at, op, Some(p)).is_none() {
            return;
        }
        at += eta;
        if self
            .push(at, Op::AdmitReferral { referral }, Some(p))
            .is_none()
        {
            return;
        }
        if let Some(bed) = bed {
            if let Some(out) = self.discharge(at, bed, p) {
                let op = Op::CompleteReferral {
                    referral,
                    outcome: "discharged".into(),
                };
                self.push(out, op, Some(p));
            }
        }
    }

    /// The arrival-rate multiplier at a minute of the local day, and the rush's share of it.
    fn factor(&self, local_minute: f64) -> (f64, f64) {
        let t = &self.sc.traffic;
        let mut f = t.base_factor;
        for p in &t.clinic_peaks {
            if local_minute >= p[0] && local_minute < p[1] && p[2] > f {
                f = p[2];
            }
        }
        let mut rush = 1.0;
        for &r in &t.slot_release_minutes {
            let since = local_minute - f64::from(r);
            if since >= 0.0 && since < f64::from(t.rush_minutes.max(1)) {
                let left = 1.0 - since / f64::from(t.rush_minutes.max(1));
                let m = 1.0 + (t.rush_factor - 1.0) * left;
                if m > rush {
                    rush = m;
                }
            }
        }
        (f * rush, (rush - 1.0) / rush)
    }
}

/// The trace's length, start minute and days (the options', else the scenario's), refused
/// when out of range rather than clamped: `scale` in (0, [`SCALE_MAX`]], `minutes` in
/// 1..=[`TRACE_MINUTES_MAX`], `start_minute` below [`MINUTES_PER_DAY`], `days` in
/// 1..=[`TRACE_DAYS_MAX`].
pub fn check_options(sc: &Scenario, opts: &GenerateOptions) -> Result<(u32, u32, u32), String> {
    if !(opts.scale > 0.0 && opts.scale <= SCALE_MAX) {
        return Err(format!(
            "scale: {:?} is outside (0, {SCALE_MAX}]",
            opts.scale
        ));
    }
    let minutes = opts.minutes.unwrap_or(sc.day.minutes);
    if !(1..=TRACE_MINUTES_MAX).contains(&minutes) {
        return Err(format!(
            "minutes: {minutes} is outside 1..={TRACE_MINUTES_MAX} (a trace's day is at most a day)"
        ));
    }
    let start_minute = opts.start_minute.unwrap_or(sc.day.start_minute);
    if start_minute >= MINUTES_PER_DAY {
        return Err(format!(
            "start_minute: {start_minute} is not a minute of the day (0..={})",
            MINUTES_PER_DAY - 1
        ));
    }
    let days = opts.days.unwrap_or(sc.day.days);
    if !(1..=TRACE_DAYS_MAX).contains(&days) {
        return Err(format!("days: {days} is outside 1..={TRACE_DAYS_MAX}"));
    }
    Ok((minutes, start_minute, days))
}

/// Expected journeys of the whole trace (for the size of the patient pool).
fn expected_journeys(
    g: &Gen,
    sc: &Scenario,
    opts: &GenerateOptions,
    minutes: u32,
    start: u32,
    days: u32,
) -> f64 {
    let mut expected = 0.0;
    for m in 0..minutes {
        let local = f64::from((start + m) % MINUTES_PER_DAY) + 0.5;
        expected += sc.traffic.journeys_per_minute * opts.scale * g.factor(local).0;
    }
    expected * f64::from(days)
}

/// One minute's arrivals: how many, and each one's journey.
fn minute(g: &mut Gen, base_ms: u64, local: f64, scale: f64, journeys: u64) {
    let sc = g.sc;
    let mx = &sc.mix;
    let weights = [
        mx.follow_up,
        mx.new_booking,
        mx.match_query,
        mx.bed_hold,
        mx.bed_allocation,
        mx.referral,
        mx.joint_consult,
    ];
    let (factor, rush_share) = g.factor(local);
    let rate = sc.traffic.journeys_per_minute * scale * factor;
    let whole = rate.floor();
    let frac_permille = ((rate - whole) * 1000.0) as u64;
    let count = whole as u64 + u64::from(g.rng.below(1000) < frac_permille);
    let rush_permille = (rush_share * 1000.0) as u64;
    let mut offsets: Vec<u64> = (0..count).map(|_| g.rng.below(MS_PER_MINUTE)).collect();
    offsets.sort_unstable();
    for off in offsets {
        let t = base_ms + off;
        let p = g.patient(journeys);
        // The extra arrivals of a rush come for the freshly released slots.
        let kind = if g.rng.below(1000) < rush_permille {
            1
        } else {
            weighted(&mut g.rng, &weights)
        };
        match kind {
            0 => g.follow_up(t, p),
            1 => g.new_booking(t, p),
            2 => g.match_query(t, p),
            3 => g.bed_hold(t, p),
            4 => g.bed_allocation(t, p),
            5 => g.referral(t, p),
            _ => {
                g.joint_consult(t, p, false);
            }
        }
    }
}

/// Generates a peak-day trace (a day's window of traffic on each of `days` days).
pub fn generate(sc: &Scenario, opts: &GenerateOptions) -> Result<Trace, String> {
    let preset = sc.preset()?;
    let (minutes, start_minute, days) = check_options(sc, opts)?;
    let region = generate::region(preset, sc.region.seed);
    let world = World::new(region);
    let start_ms = sc
        .day
        .midnight_ms
        .checked_add(u64::from(start_minute) * MS_PER_MINUTE)
        .ok_or_else(|| format!("day.midnight_ms: {} is too large", sc.day.midnight_ms))?;
    let span_minutes = u64::from(days - 1) * u64::from(MINUTES_PER_DAY) + u64::from(minutes);
    let mut g = Gen {
        sc,
        world: &world,
        rng: SplitMix64::new(opts.seed ^ 0x7065_616b_2d64_6179),
        seed: opts.seed,
        horizon_ms: span_minutes * MS_PER_MINUTE,
        start_ms,
        pending: Vec::new(),
        patients: Vec::new(),
        prone: Vec::new(),
        main: BTreeMap::new(),
    };
    let expected = expected_journeys(&g, sc, opts, minutes, start_minute, days);
    if expected > JOURNEYS_MAX as f64 {
        return Err(format!(
            "{expected:.0} journeys expected, more than {JOURNEYS_MAX}: use fewer minutes or days, or a smaller scale"
        ));
    }
    let journeys = expected as u64 + 1;
    let p = &sc.patients;
    if p.no_show_prone > 0 {
        let mx = &sc.mix;
        let all = mx.follow_up
            + mx.new_booking
            + mx.match_query
            + mx.bed_hold
            + mx.bed_allocation
            + mx.referral
            + mx.joint_consult;
        let booking = journeys * u64::from(mx.follow_up + mx.new_booking) / u64::from(all.max(1));
        let prone = booking * u64::from(p.no_show_prone) / 1000 / u64::from(p.prone_bookings);
        g.prone = vec![None; prone.max(1) as usize];
    }
    for day in 0..days {
        for m in 0..minutes {
            let local = f64::from((start_minute + m) % MINUTES_PER_DAY) + 0.5;
            let base = u64::from(day) * MS_PER_DAY + u64::from(m) * MS_PER_MINUTE;
            minute(&mut g, base, local, opts.scale, journeys);
        }
    }
    let mut trace = finish(g, opts.seed);
    trace.header = header(sc, opts, start_ms, minutes, days);
    Ok(trace)
}

/// Sorts the pending ops by time, numbers them and writes the events.
fn finish(g: Gen, seed: u64) -> Trace {
    let Gen {
        mut pending,
        patients,
        ..
    } = g;
    pending.sort_by_key(|p| (p.at_ms, p.tmp));
    let mut final_id = vec![0u64; pending.len()];
    for (pos, p) in pending.iter().enumerate() {
        final_id[p.tmp as usize] = pos as u64 + 1;
    }
    let mut ids = SplitMix64::new(seed ^ 0x7265_7175_6573_7473);
    let events = pending
        .into_iter()
        .enumerate()
        .map(|(pos, mut p)| {
            p.op.map_event_refs(&|tmp| final_id[tmp as usize]);
            let request_id = format!("{:016x}{:016x}", ids.next_u64(), ids.next_u64());
            let mut e = Event::new(pos as u64 + 1, p.at_ms, request_id, p.op);
            e.after_slot_ms = p.after_slot_ms;
            if let Some(i) = p.patient {
                let who = &patients[i];
                e.language = Some(who.language.clone());
                e.home = Some(who.home);
                e.patient_attrs = Some(who.attrs.clone());
            }
            e
        })
        .collect();
    Trace {
        header: Header::new("", seed, 0),
        events,
    }
}

fn header(sc: &Scenario, opts: &GenerateOptions, start_ms: u64, minutes: u32, days: u32) -> Header {
    let mut h = Header::new(&sc.name, opts.seed, start_ms);
    h.region = Some(sc.region.preset.clone());
    h.region_seed = Some(sc.region.seed);
    h.minutes = Some(minutes);
    h.days = Some(days);
    h.description = Some(sc.description.clone());
    h.source = Some(format!(
        "ninety sim generate --scenario {} --seed {} --days {days} --minutes {minutes} --scale {}",
        sc.name, opts.seed, opts.scale
    ));
    h.time_zone = sc.day.time_zone.clone();
    h.licence = Some("CC0-1.0".into());
    h
}
