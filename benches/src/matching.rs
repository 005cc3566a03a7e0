//! The matching workloads: a recorded referral burst on the GBA region (origins drawn by a
//! seeded PRNG, mostly primary-care points) and the quality measures of an allocation run
//! (travel, reach, urgent time to care, tier split, total cost).

use ninety_engine::generate::{self, SplitMix64};
use ninety_engine::matching::*;
use ninety_engine::*;

/// Share of burst requests that are remote follow-ups at home, per cent (the 50% tier).
pub const REMOTE_PERCENT: u64 = 50;
/// Share of in-person requests that start at a primary-care hospital, per cent.
pub const FROM_PRIMARY_PERCENT: u64 = 80;
/// Share of requests triaged urgent (P1/P2), per cent.
pub const URGENT_PERCENT: u64 = 20;

/// The log time of a burst: the evening before the generated day of schedules.
pub fn burst_time() -> LogTime {
    generate::DEFAULT_DAY_START.minus_ms(6 * time::MS_PER_MINUTE * 60)
}

/// `n` allocation requests with ids from `first_id`; the same seed gives the same burst.
pub fn burst(engine: &Engine, n: usize, seed: u64, first_id: u128) -> Vec<Request> {
    let mut rng = SplitMix64::new(seed);
    let primary: Vec<HospitalId> = engine
        .hospitals()
        .filter(|h| h.tier == Tier::Primary)
        .map(|h| h.id)
        .collect();
    let all: Vec<HospitalId> = engine.hospitals().map(|h| h.id).collect();
    let start = generate::DEFAULT_DAY_START;
    (0..n)
        .map(|i| {
            let from_primary = rng.chance(FROM_PRIMARY_PERCENT) && !primary.is_empty();
            let pool = if from_primary { &primary } else { &all };
            let origin = pool[rng.below(pool.len() as u64) as usize];
            let remote = rng.chance(REMOTE_PERCENT);
            // Primary care asks general practice most; specialists otherwise.
            let specialty = if rng.chance(45) {
                Specialty::GeneralPractice
            } else {
                Specialty::ALL[rng.below(Specialty::ALL.len() as u64) as usize]
            };
            let urgency = match rng.below(100) {
                x if x < URGENT_PERCENT / 4 => Urgency::P1,
                x if x < URGENT_PERCENT => Urgency::P2,
                x if x < 60 => Urgency::P3,
                _ => Urgency::P4,
            };
            let query = SlotQuery {
                origin: Origin::Hospital(origin),
                specialty,
                urgency,
                language: None,
                mode: if remote { Mode::Remote } else { Mode::InPerson },
                earliest: start,
                latest: start.plus_ms(time::MS_PER_DAY),
                channel: Channel::Referral,
                limit: 1,
            };
            Request {
                id: RequestId(first_id + i as u128),
                command: Command::AllocateSlot {
                    query,
                    patient: PatientRef(first_id + i as u128),
                },
            }
        })
        .collect()
}

/// What an allocation run achieved.
#[derive(Clone, Debug, Default)]
pub struct Quality {
    pub requests: u64,
    pub placed: u64,
    pub travel_minutes: u64,
    pub inside_reach: u64,
    pub urgent: u64,
    pub urgent_time_to_care_minutes: u64,
    /// Placed remote (home), at primary, at secondary or tertiary hospitals.
    pub tiers: [u64; 3],
    /// Sum of the chosen candidates' scores (the solver's objective).
    pub total_score: u64,
}

impl Quality {
    /// Measures the outcomes of a burst applied to `engine`.
    pub fn measure(engine: &Engine, burst: &[Request], outcomes: &[Outcome]) -> Quality {
        let mut q = Quality {
            requests: burst.len() as u64,
            ..Quality::default()
        };
        for (r, o) in burst.iter().zip(outcomes) {
            let (Command::AllocateSlot { query, .. }, Ok(reply)) = (&r.command, o) else {
                continue;
            };
            let Reply::SlotAllocated {
                hospital,
                travel_minutes,
                wait_minutes,
                beyond_reach,
                score,
                ..
            } = reply
            else {
                continue;
            };
            q.placed += 1;
            q.travel_minutes += u64::from(*travel_minutes);
            q.inside_reach += u64::from(!beyond_reach);
            q.total_score += score;
            if query.urgency.is_urgent() {
                q.urgent += 1;
                q.urgent_time_to_care_minutes += u64::from(travel_minutes + wait_minutes);
            }
            let tier = engine.hospital(*hospital).map(|h| h.tier);
            let i = match (query.mode, tier) {
                (Mode::Remote, _) => 0,
                (_, Some(Tier::Primary)) => 1,
                _ => 2,
            };
            q.tiers[i] += 1;
        }
        q
    }

    /// One table row.
    pub fn row(&self, name: &str) -> String {
        let pct = |x: u64, of: u64| 100.0 * x as f64 / of.max(1) as f64;
        format!(
            "| {name} | {}/{} | {} | {:.1}% | {:.1} | {:.0}/{:.0}/{:.0} | {} |",
            self.placed,
            self.requests,
            self.travel_minutes,
            pct(self.inside_reach, self.requests),
            self.urgent_time_to_care_minutes as f64 / self.urgent.max(1) as f64,
            pct(self.tiers[0], self.placed),
            pct(self.tiers[1], self.placed),
            pct(self.tiers[2], self.placed),
            self.total_score,
        )
    }
}
