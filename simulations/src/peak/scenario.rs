//! Peak-day scenarios: documented TOML files in `simulations/scenarios/`, also built into
//! the crate so `--scenario gba` works without a path.

use ninety_engine::generate::Preset;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The built-in scenarios, by name: (name, TOML text).
pub const BUILT_IN: [(&str, &str); 4] = [
    ("gba", include_str!("../../scenarios/gba.toml")),
    ("yunnan", include_str!("../../scenarios/yunnan.toml")),
    ("asean", include_str!("../../scenarios/asean.toml")),
    ("national", include_str!("../../scenarios/national.toml")),
];

/// A peak-day scenario: the region and the traffic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, written into the trace header.
    pub name: String,
    /// One paragraph for the report.
    pub description: String,
    pub region: RegionSpec,
    pub day: DaySpec,
    pub traffic: Traffic,
    pub mix: Mix,
    pub patients: Patients,
    /// How far ahead bookings look (version-2 traces; defaults: the same day).
    #[serde(default)]
    pub schedule: ScheduleSpec,
    /// The bed lifecycle after an admission (defaults in [`BedSpec`]).
    #[serde(default)]
    pub beds: BedSpec,
}

/// Which days bookings search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// Weights of the booking lead time in days: entry `k` is how often a booking searches
    /// the clinic day `k` days after the day it is made (`[1]`: always the same day).
    pub lead_days: Vec<u32>,
    /// Days one booking's window spans from its lead day (1: that day only; at most 31,
    /// the API's longest window).
    pub window_days: u32,
}

impl Default for ScheduleSpec {
    fn default() -> Self {
        ScheduleSpec {
            lead_days: vec![1],
            window_days: 1,
        }
    }
}

/// What happens to a bed after its patient is admitted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BedSpec {
    /// Percent of admissions discharged (`discharge`) at the end of their stay (when that
    /// falls inside the trace); the rest stay.
    pub discharged: u32,
    /// Length of stay, minutes: `[shortest, longest]`, uniform.
    pub stay_minutes: [u32; 2],
    /// From discharge to the bed marked clean (`mark_bed_clean`), minutes.
    pub clean_minutes: [u32; 2],
}

impl Default for BedSpec {
    fn default() -> Self {
        BedSpec {
            discharged: 100,
            stay_minutes: [4 * 60, 5 * 24 * 60],
            clean_minutes: [20, 90],
        }
    }
}

/// The region the traffic runs against: a preset of `ninety_engine::generate`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionSpec {
    /// "gba", "national", "yunnan" or "asean".
    pub preset: String,
    /// The region's generator seed (the cluster's built-in regions use 90).
    pub seed: u64,
}

/// When the day happens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaySpec {
    /// The local midnight of the peak day, Unix ms (the trace's `start_ms` is this plus
    /// `start_minute`).
    pub midnight_ms: u64,
    /// Minute of the local day the trace starts at by default.
    pub start_minute: u32,
    /// Minutes of the trace by default (`--minutes` overrides).
    pub minutes: u32,
    /// First and last Unix ms of the published slots that bookings may take on the first
    /// day (each later day's are a day later).
    pub slots_from_ms: u64,
    pub slots_to_ms: u64,
    /// Days of traffic by default (`--days` overrides): each day from `start_minute` for
    /// `minutes`.
    #[serde(default = "one")]
    pub days: u32,
    /// The local clock's time zone (`+08:00`, `Asia/Shanghai`), written into the trace.
    #[serde(default)]
    pub time_zone: Option<String>,
}

fn one() -> u32 {
    1
}

/// How many requests arrive, and when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Traffic {
    /// Patient journeys starting per minute at the day's mean rate (each journey is one to
    /// six requests).
    pub journeys_per_minute: f64,
    /// Minutes of the local day at which slots are released.
    pub slot_release_minutes: Vec<u32>,
    /// How long the rush after a release lasts, minutes.
    pub rush_minutes: u32,
    /// Arrival rate multiplier at the start of a rush (decays linearly to 1).
    pub rush_factor: f64,
    /// Clinic-hour peaks: `[from_minute, to_minute, factor]` of the local day.
    pub clinic_peaks: Vec<[f64; 3]>,
    /// Arrival rate multiplier outside every peak (night is quieter).
    pub base_factor: f64,
}

/// The journey mix, in percent of journeys (need not add up to 100: they are weights).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    /// Follow-up visits (复诊): a slot allocated with the patient's previous specialty.
    pub follow_up: u32,
    /// Of the follow-ups, the share held online (remote), percent.
    pub follow_up_remote: u32,
    /// New bookings: a specialist search, then a slot allocated and booked.
    pub new_booking: u32,
    /// Searches only (patients browsing).
    pub match_query: u32,
    /// Emergency admissions: a bed held in a given ward, then confirmed, released or left
    /// to expire.
    pub bed_hold: u32,
    /// Bed allocations by the matcher (transfers between hospitals).
    pub bed_allocation: u32,
    /// Referrals with a bed held ahead: request, triage, match, accept, transit, admit.
    pub referral: u32,
    /// Joint (multi-doctor, remote) consultations.
    pub joint_consult: u32,
    /// Of the bookings, percent cancelled later.
    pub cancel: u32,
    /// Of the bookings, percent marked no-show at the appointment.
    pub no_show: u32,
    /// Of the cancellations, percent made late: 30 to 110 minutes before the slot starts
    /// (timed from the slot, inside the usual 120-minute cancellation deadline).
    #[serde(default)]
    pub late_cancel: u32,
    /// Of the slot and bed holds, percent never confirmed (they expire).
    pub expire: u32,
    /// Of the bed holds, percent released instead of confirmed.
    pub release: u32,
    /// Referrals start with a remote consultation (county doctor + two provincial
    /// specialists) before the transfer.
    pub consult_before_referral: bool,
    /// Travel time of a transfer, minutes (the admission comes this long after transit).
    pub transfer_minutes: u32,
    /// TTL of a bed held ahead of a transfer, minutes (must cover the journey).
    pub transfer_hold_minutes: u32,
}

/// Who the patients are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patients {
    /// Weights of P1..P4.
    pub urgency: [u32; 4],
    /// Languages (engine codes: zh, yue, en, pt, vi, th, lo, km, my, ms, id) and weights.
    pub languages: Vec<(String, u32)>,
    /// Where patients' homes are: percent given as coordinates (the rest as the id of
    /// the care point or hospital they start from).
    pub home_as_coordinates: u32,
    /// Percent of journeys that start at a primary-tier point (the rest anywhere).
    pub start_at_primary: u32,
    /// Distinct patients per 100 journeys (returning patients make several journeys).
    pub distinct_per_100: u32,
    /// Per mille of booking journeys (follow-ups, new bookings) made by repeat no-show
    /// patients: a small pool who book again and again and never come.
    #[serde(default)]
    pub no_show_prone: u32,
    /// Bookings per repeat no-show patient on average (the pool's size follows).
    #[serde(default = "four")]
    pub prone_bookings: u32,
    /// Age bands (`LO-HI`, `LO+`) and weights.
    #[serde(default = "age_bands")]
    pub age_bands: Vec<(String, u32)>,
    /// Languages every doctor is taken to speak; a patient speaking another asks matching
    /// for a doctor who speaks theirs.
    #[serde(default = "common_languages")]
    pub common_languages: Vec<String>,
}

fn four() -> u32 {
    4
}

fn age_bands() -> Vec<(String, u32)> {
    [("0-14", 15), ("15-44", 40), ("45-64", 27), ("65+", 18)]
        .map(|(b, w)| (b.to_string(), w))
        .to_vec()
}

fn common_languages() -> Vec<String> {
    vec!["zh".into()]
}

impl Scenario {
    /// Parses a scenario's TOML text.
    pub fn parse(text: &str) -> Result<Scenario, String> {
        let s: Scenario = toml::from_str(text).map_err(|e| e.to_string())?;
        s.validate()?;
        Ok(s)
    }

    /// A built-in scenario by name, or a TOML file by path.
    pub fn load(name_or_path: &str) -> Result<Scenario, String> {
        if let Some((_, text)) = BUILT_IN.iter().find(|(n, _)| *n == name_or_path) {
            return Scenario::parse(text).map_err(|e| format!("built-in {name_or_path}: {e}"));
        }
        let path = Path::new(name_or_path);
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "{name_or_path}: not a built-in scenario (gba, yunnan, asean, national) \
                 and not a readable file: {e}"
            )
        })?;
        Scenario::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The region preset.
    pub fn preset(&self) -> Result<Preset, String> {
        self.region.preset.parse()
    }

    fn validate(&self) -> Result<(), String> {
        self.preset()?;
        let t = &self.traffic;
        if !(t.journeys_per_minute > 0.0 && t.journeys_per_minute <= 1_000_000.0) {
            return Err("traffic.journeys_per_minute must be in (0, 1000000]".into());
        }
        if t.rush_factor < 1.0 || t.base_factor <= 0.0 {
            return Err("traffic.rush_factor must be >= 1 and base_factor > 0".into());
        }
        for p in &t.clinic_peaks {
            if p[0] < 0.0 || p[1] < p[0] || p[2] <= 0.0 {
                return Err("traffic.clinic_peaks entries are [from, to, factor>0]".into());
            }
        }
        let m = &self.mix;
        let total = m.follow_up
            + m.new_booking
            + m.match_query
            + m.bed_hold
            + m.bed_allocation
            + m.referral
            + m.joint_consult;
        if total == 0 {
            return Err("mix: every journey weight is 0".into());
        }
        for (name, v) in [
            ("follow_up_remote", m.follow_up_remote),
            ("cancel", m.cancel),
            ("no_show", m.no_show),
            ("expire", m.expire),
            ("release", m.release),
            (
                "patients.home_as_coordinates",
                self.patients.home_as_coordinates,
            ),
            ("patients.start_at_primary", self.patients.start_at_primary),
        ] {
            if v > 100 {
                return Err(format!("{name} is a percentage (0..=100), got {v}"));
            }
        }
        if m.cancel + m.no_show + m.expire > 100 || m.release + m.expire > 100 {
            return Err(
                "mix: cancel + no_show + expire and release + expire must be <= 100".into(),
            );
        }
        if self.patients.urgency.iter().sum::<u32>() == 0 {
            return Err("patients.urgency: every weight is 0".into());
        }
        if self.patients.languages.is_empty() {
            return Err("patients.languages is empty".into());
        }
        for (code, _) in &self.patients.languages {
            serde_json::from_value::<ninety_engine::region::Language>(serde_json::Value::String(
                code.clone(),
            ))
            .map_err(|_| format!("patients.languages: unknown language code {code:?}"))?;
        }
        if !(1..=100).contains(&self.patients.distinct_per_100) {
            return Err("patients.distinct_per_100 must be in 1..=100".into());
        }
        if self.day.slots_to_ms <= self.day.slots_from_ms {
            return Err("day.slots_to_ms must be after day.slots_from_ms".into());
        }
        if self.day.start_minute >= 24 * 60 {
            return Err("day.start_minute must be < 1440".into());
        }
        self.validate_v2()
    }

    fn validate_v2(&self) -> Result<(), String> {
        if !(1..=super::generate::TRACE_DAYS_MAX).contains(&self.day.days) {
            return Err(format!(
                "day.days must be 1..={}",
                super::generate::TRACE_DAYS_MAX
            ));
        }
        if let Some(tz) = &self.day.time_zone {
            super::trace::tz_offset_minutes(tz).map_err(|e| format!("day.time_zone: {e}"))?;
        }
        let s = &self.schedule;
        if s.lead_days.is_empty() || s.lead_days.len() > 31 || s.lead_days.iter().sum::<u32>() == 0
        {
            return Err("schedule.lead_days: 1 to 31 weights, not all 0".into());
        }
        if !(1..=31).contains(&s.window_days) {
            return Err("schedule.window_days must be 1..=31".into());
        }
        let b = &self.beds;
        for (name, [lo, hi]) in [
            ("stay_minutes", b.stay_minutes),
            ("clean_minutes", b.clean_minutes),
        ] {
            if lo == 0 || hi < lo {
                return Err(format!("beds.{name}: [shortest > 0, longest >= shortest]"));
            }
        }
        let p = &self.patients;
        for (name, v) in [
            ("mix.late_cancel", self.mix.late_cancel),
            ("beds.discharged", b.discharged),
        ] {
            if v > 100 {
                return Err(format!("{name} is a percentage (0..=100), got {v}"));
            }
        }
        if p.no_show_prone > 1000 || p.prone_bookings == 0 {
            return Err(
                "patients.no_show_prone is per mille (0..=1000), prone_bookings >= 1".into(),
            );
        }
        if p.age_bands.is_empty() || p.age_bands.iter().map(|b| b.1).sum::<u32>() == 0 {
            return Err("patients.age_bands: at least one band with a weight".into());
        }
        for (band, _) in &p.age_bands {
            super::trace::parse_age_band(band).map_err(|e| format!("patients.age_bands: {e}"))?;
        }
        for code in &p.common_languages {
            if !super::trace::LANGUAGES.contains(&code.as_str()) {
                return Err(format!(
                    "patients.common_languages: unknown language code {code:?}"
                ));
            }
        }
        Ok(())
    }
}
