//! The peak-day generator: a scenario and a seed in, a trace out, byte for byte the same
//! for the same inputs (the engine's SplitMix64, integer draws and exact float arithmetic).

use super::scenario::Scenario;
use super::trace::{Channel, Event, Header, Home, Mode, Op, Ref, Tier, Trace, Urgency};
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
/// Longest trace the generator writes, minutes (a day).
pub const TRACE_MINUTES_MAX: u32 = MINUTES_PER_DAY;
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
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            seed: 1,
            minutes: None,
            start_minute: None,
            scale: 1.0,
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
}

struct Gen<'a> {
    sc: &'a Scenario,
    world: &'a World,
    rng: SplitMix64,
    seed: u64,
    horizon_ms: u64,
    /// (at_ms, temporary index, op, patient index) — sorted and numbered at the end.
    pending: Vec<(u64, u64, Op, Option<usize>)>,
    patients: Vec<Patient>,
    window: (u64, u64),
}

impl Gen<'_> {
    /// Schedules an op; returns its temporary index (a reference for later ops), or None
    /// if it falls after the end of the trace.
    fn push(&mut self, at_ms: u64, op: Op, patient: Option<usize>) -> Option<Ref> {
        if at_ms >= self.horizon_ms {
            return None;
        }
        let tmp = self.pending.len() as u64;
        self.pending.push((at_ms, tmp, op, patient));
        Some(Ref::Event { event: tmp })
    }

    fn patient(&mut self, journeys: u64) -> usize {
        let pool = (journeys * u64::from(self.sc.patients.distinct_per_100) / 100).max(1);
        let k = self.rng.below(pool) as usize;
        while self.patients.len() <= k {
            let n = self.patients.len() as u64;
            self.patients.push(self.new_patient(n));
        }
        k
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
        Patient {
            reference,
            hospital,
            home,
            language,
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

    /// After a slot hold: booked, then perhaps cancelled or missed; or left to expire.
    fn after_slot_hold(&mut self, t: u64, hold: Option<Ref>, p: usize) {
        let Some(hold) = hold else { return };
        let m = &self.sc.mix;
        let r = self.rng.below(100) as u32;
        if r < m.expire {
            return;
        }
        let booked_at = t + between(&mut self.rng, 20_000, 90_000);
        if self
            .push(booked_at, Op::BookSlot { hold }, Some(p))
            .is_none()
        {
            return;
        }
        if r < m.expire + m.cancel {
            let at = booked_at + between(&mut self.rng, 2 * MS_PER_MINUTE, 20 * MS_PER_MINUTE);
            self.push(
                at,
                Op::CancelBooking {
                    hold,
                    reason: "patient-cancelled".into(),
                },
                Some(p),
            );
        } else if r < m.expire + m.cancel + m.no_show {
            let at = booked_at + between(&mut self.rng, 30 * MS_PER_MINUTE, 50 * MS_PER_MINUTE);
            self.push(at, Op::MarkNoShow { hold }, Some(p));
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
        } else {
            self.push(at, Op::ConfirmHold { hold }, Some(p));
        }
    }

    fn follow_up(&mut self, t: u64, p: usize) {
        let remote = self.rng.chance(u64::from(self.sc.mix.follow_up_remote));
        let mode = if remote { Mode::Remote } else { Mode::InPerson };
        let op = Op::AllocateSlot {
            patient: self.patients[p].reference.clone(),
            from_hospital: self.home_hospital_id(p),
            specialty: self.specialty(),
            urgency: Urgency::P4,
            mode,
            window_start_ms: self.window.0,
            window_end_ms: self.window.1,
            max_travel_minutes: 0,
            ttl_ms: 0,
            channel: Channel::Public,
            referral: None,
        };
        let hold = self.push(t, op, Some(p));
        self.after_slot_hold(t, hold, p);
    }

    fn match_specialist(&mut self, t: u64, p: usize, specialty: String, urgency: Urgency) {
        let op = Op::MatchSpecialist {
            from_hospital: self.home_hospital_id(p),
            specialty,
            urgency,
            mode: Mode::Any,
            window_start_ms: self.window.0,
            window_end_ms: self.window.1,
            max_travel_minutes: 90,
            channel: Channel::Public,
            limit: 10,
        };
        self.push(t, op, Some(p));
    }

    fn new_booking(&mut self, t: u64, p: usize) {
        let specialty = self.specialty();
        let urgency = self.urgency();
        self.match_specialist(t, p, specialty.clone(), urgency);
        let at = t + between(&mut self.rng, 10_000, 60_000);
        let op = Op::AllocateSlot {
            patient: self.patients[p].reference.clone(),
            from_hospital: self.home_hospital_id(p),
            specialty,
            urgency,
            mode: Mode::InPerson,
            window_start_ms: self.window.0,
            window_end_ms: self.window.1,
            max_travel_minutes: 0,
            ttl_ms: 0,
            channel: Channel::Public,
            referral: None,
        };
        let hold = self.push(at, op, Some(p));
        self.after_slot_hold(at, hold, p);
    }

    fn match_query(&mut self, t: u64, p: usize) {
        let n = 1 + self.rng.below(3);
        let mut at = t;
        for _ in 0..n {
            let s = self.specialty();
            let u = self.urgency();
            self.match_specialist(at, p, s, u);
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
        let op = Op::HoldJointConsult {
            patient: self.patients[p].reference.clone(),
            doctors,
            window_start_ms: self.window.0,
            window_end_ms: self.window.1,
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
        let specialty_of_referral = specialty.clone();
        let op = Op::TriageReferral {
            referral,
            urgency,
            specialty,
        };
        if self.push(at, op, Some(p)).is_none() {
            return;
        }
        at += between(&mut self.rng, 30_000, 3 * MS_PER_MINUTE);
        // Capacity first (a bed held ahead for the whole journey, or a slot), then the
        // referral is matched to it.
        let hold_ms = u64::from(self.sc.mix.transfer_hold_minutes) * MS_PER_MINUTE;
        let transfer = self.sc.mix.transfer_minutes;
        let held = if needs_bed {
            let op = Op::AllocateBed {
                patient: self.patients[p].reference.clone(),
                from_hospital: self.home_hospital_id(p),
                specialty: specialty_of_referral.clone(),
                urgency,
                max_travel_minutes: 0,
                min_tier: None,
                ttl_ms: hold_ms.min(HOLD_TTL_MS_CAP),
                channel: Channel::Referral,
                referral: Some(referral),
            };
            self.push(at, op, Some(p))
        } else {
            let op = Op::AllocateSlot {
                patient: self.patients[p].reference.clone(),
                from_hospital: self.home_hospital_id(p),
                specialty: specialty_of_referral.clone(),
                urgency,
                mode: Mode::InPerson,
                window_start_ms: self.window.0,
                window_end_ms: self.window.1,
                max_travel_minutes: 0,
                ttl_ms: 0,
                channel: Channel::Referral,
                referral: Some(referral),
            };
            self.push(at, op, Some(p))
        };
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
        let eta = u64::from(transfer) * MS_PER_MINUTE;
        let op = Op::StartTransit {
            referral,
            eta_after_ms: eta,
        };
        if self.push(at, op, Some(p)).is_none() {
            return;
        }
        at += eta;
        self.push(at, Op::AdmitReferral { referral }, Some(p));
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

/// The trace's length and start minute (the options', else the scenario's), refused when
/// out of range rather than clamped: `scale` in (0, [`SCALE_MAX`]], `minutes` in
/// 1..=[`TRACE_MINUTES_MAX`], `start_minute` below [`MINUTES_PER_DAY`].
pub fn check_options(sc: &Scenario, opts: &GenerateOptions) -> Result<(u32, u32), String> {
    if !(opts.scale > 0.0 && opts.scale <= SCALE_MAX) {
        return Err(format!(
            "scale: {:?} is outside (0, {SCALE_MAX}]",
            opts.scale
        ));
    }
    let minutes = opts.minutes.unwrap_or(sc.day.minutes);
    if !(1..=TRACE_MINUTES_MAX).contains(&minutes) {
        return Err(format!(
            "minutes: {minutes} is outside 1..={TRACE_MINUTES_MAX} (a trace is at most a day)"
        ));
    }
    let start_minute = opts.start_minute.unwrap_or(sc.day.start_minute);
    if start_minute >= MINUTES_PER_DAY {
        return Err(format!(
            "start_minute: {start_minute} is not a minute of the day (0..={})",
            MINUTES_PER_DAY - 1
        ));
    }
    Ok((minutes, start_minute))
}

/// Generates a peak-day trace.
pub fn generate(sc: &Scenario, opts: &GenerateOptions) -> Result<Trace, String> {
    let preset = sc.preset()?;
    let (minutes, start_minute) = check_options(sc, opts)?;
    let region = generate::region(preset, sc.region.seed);
    let world = World::new(region);
    let start_ms = sc
        .day
        .midnight_ms
        .checked_add(u64::from(start_minute) * MS_PER_MINUTE)
        .ok_or_else(|| format!("day.midnight_ms: {} is too large", sc.day.midnight_ms))?;
    let mut g = Gen {
        sc,
        world: &world,
        rng: SplitMix64::new(opts.seed ^ 0x7065_616b_2d64_6179),
        seed: opts.seed,
        horizon_ms: u64::from(minutes) * MS_PER_MINUTE,
        pending: Vec::new(),
        patients: Vec::new(),
        window: (sc.day.slots_from_ms, sc.day.slots_to_ms),
    };
    // Expected journeys of the whole trace, for the size of the patient pool.
    let mut expected = 0.0;
    for m in 0..minutes {
        let local = f64::from((start_minute + m) % MINUTES_PER_DAY) + 0.5;
        expected += sc.traffic.journeys_per_minute * opts.scale * g.factor(local).0;
    }
    if expected > JOURNEYS_MAX as f64 {
        return Err(format!(
            "{expected:.0} journeys expected, more than {JOURNEYS_MAX}: use fewer minutes or a smaller scale"
        ));
    }
    let journeys = expected as u64 + 1;
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
    for m in 0..minutes {
        let local = f64::from((start_minute + m) % MINUTES_PER_DAY) + 0.5;
        let (factor, rush_share) = g.factor(local);
        let rate = sc.traffic.journeys_per_minute * opts.scale * factor;
        let whole = rate.floor();
        let frac_permille = ((rate - whole) * 1000.0) as u64;
        let count = whole as u64 + u64::from(g.rng.below(1000) < frac_permille);
        let rush_permille = (rush_share * 1000.0) as u64;
        let mut offsets: Vec<u64> = (0..count).map(|_| g.rng.below(MS_PER_MINUTE)).collect();
        offsets.sort_unstable();
        for off in offsets {
            let t = u64::from(m) * MS_PER_MINUTE + off;
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
    let Gen {
        mut pending,
        patients,
        ..
    } = g;
    pending.sort_by_key(|(at, tmp, _, _)| (*at, *tmp));
    let mut final_id = vec![0u64; pending.len()];
    for (pos, (_, tmp, _, _)) in pending.iter().enumerate() {
        final_id[*tmp as usize] = pos as u64 + 1;
    }
    let mut ids = SplitMix64::new(opts.seed ^ 0x7265_7175_6573_7473);
    let events = pending
        .into_iter()
        .enumerate()
        .map(|(pos, (at_ms, _, mut op, patient))| {
            op.map_event_refs(&|tmp| final_id[tmp as usize]);
            let (language, home) = match patient {
                Some(p) => (Some(patients[p].language.clone()), Some(patients[p].home)),
                None => (None, None),
            };
            Event {
                id: pos as u64 + 1,
                at_ms,
                request_id: format!("{:016x}{:016x}", ids.next_u64(), ids.next_u64()),
                op,
                language,
                home,
            }
        })
        .collect();
    let mut header = Header::new(&sc.name, opts.seed, start_ms);
    header.region = Some(sc.region.preset.clone());
    header.region_seed = Some(sc.region.seed);
    header.minutes = Some(minutes);
    Ok(Trace { header, events })
}
