//! A replay report without a cluster: a generated GBA trace (30 minutes around the 08:00
//! rush, a tenth of the scenario's traffic) whose outcomes are made up by a small model —
//! seats that run out, an in-flight limit the rush exceeds, dependencies that fail with
//! their holds, no-shows refused before the slot starts — fed through the replay's
//! `Collector` into `report.html` and `summary.json`.
//!
//! ```text
//! cargo run -p ninety-sim --example synthetic_report -- DIR
//! ```
//!
//! The screenshots in `docs/simulation.md` are of this report (see "Reading the report").

use ninety_engine::generate::SplitMix64;
use ninety_engine::region_file::RegionFile;
use ninety_sim::peak::replay::{Answer, Produced};
use ninety_sim::peak::report::{busiest_second, Collector};
use ninety_sim::peak::trace::{Op, Tier};
use ninety_sim::peak::{self, GenerateOptions, ReplayOptions, Scenario, Trace};
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

/// The made-up cluster: what it has left and what it has refused.
struct Model<'a> {
    region: &'a RegionFile,
    rng: SplitMix64,
    /// Slot seats left for allocate_slot.
    seats: u64,
    /// In flight per wall second the "cluster" takes before the client's limit is reached.
    limit_per_second: u64,
    /// Events that did not succeed (their dependents are skipped).
    failed: HashSet<u64>,
    /// (wall second, requests due in it so far).
    second: (u64, u64),
    speed: f64,
}

impl Model<'_> {
    fn hospital(&mut self) -> (u32, Tier) {
        let n = self.region.hospitals.len() as u64;
        let h = &self.region.hospitals[self.rng.below(n) as usize];
        (h.id.0, peak::generate::tier_of(h.tier))
    }

    /// A slot: a doctor drawn with a skew (a few are popular), their hospital and tier.
    fn slot(&mut self) -> Produced {
        let n = self.region.doctors.len() as u64;
        let spread = self.rng.below(n) + 1;
        let skewed = self.rng.below(spread);
        let d = &self.region.doctors[skewed as usize];
        let tier = self
            .region
            .hospitals
            .iter()
            .find(|h| h.id == d.hospital)
            .map(|h| peak::generate::tier_of(h.tier));
        Produced {
            id: 1,
            hospital: d.hospital.0,
            doctor: d.id.0,
            travel_minutes: Some(self.travel()),
            tier,
            matched: true,
            ..Produced::default()
        }
    }

    fn travel(&mut self) -> u32 {
        (self.rng.below(40) + self.rng.below(40) + self.rng.below(30)) as u32
    }

    /// (latency, answer) of one event.
    fn answer(&mut self, id: u64, at_ms: u64, op: &Op) -> (Option<Duration>, Answer) {
        let second = (at_ms as f64 / self.speed / 1000.0) as u64;
        self.second = if second == self.second.0 {
            (second, self.second.1 + 1)
        } else {
            (second, 1)
        };
        let answer = if op
            .refs()
            .iter()
            .filter_map(|r| r.event())
            .any(|e| self.failed.contains(&e))
        {
            return self.refuse(id, None, "SKIPPED/DEPENDENCY_FAILED");
        } else if self.second.1 > self.limit_per_second {
            return self.refuse(id, None, "CLIENT_OVERLOAD");
        } else {
            self.outcome(op)
        };
        let load = self.second.1 as f64 / self.limit_per_second as f64;
        let ms = 1.0 + 4.0 * load * load + self.rng.below(1000) as f64 / 1000.0;
        let latency = Some(Duration::from_secs_f64(ms / 1000.0));
        if answer.is_err() {
            self.failed.insert(id);
        }
        (latency, answer)
    }

    fn refuse(
        &mut self,
        id: u64,
        latency: Option<Duration>,
        kind: &str,
    ) -> (Option<Duration>, Answer) {
        self.failed.insert(id);
        (latency, Err(kind.to_string()))
    }

    fn outcome(&mut self, op: &Op) -> Answer {
        match op {
            Op::AllocateSlot { .. } | Op::HoldJointConsult { .. } if self.seats == 0 => {
                Err("FAILED_PRECONDITION/NO_CAPACITY|no open seat in the window".into())
            }
            Op::AllocateSlot { .. } | Op::HoldJointConsult { .. } => {
                self.seats -= 1;
                Ok(self.slot())
            }
            Op::MatchSpecialist { .. } => Ok(Produced {
                matched: self.seats > 0,
                ..self.slot()
            }),
            Op::HoldBed { .. } | Op::AllocateBed { .. } if self.rng.chance(15) => {
                Err("FAILED_PRECONDITION/NO_CAPACITY|no free bed".into())
            }
            Op::HoldBed { .. } | Op::AllocateBed { .. } => {
                let (hospital, tier) = self.hospital();
                let travel = matches!(op, Op::AllocateBed { .. }).then(|| self.travel());
                Ok(Produced {
                    id: 1,
                    hospital,
                    tier: Some(tier),
                    travel_minutes: travel,
                    matched: true,
                    ..Produced::default()
                })
            }
            Op::MarkNoShow { .. } => {
                Err("FAILED_PRECONDITION/INVALID_TRANSITION|the slot has not started".into())
            }
            _ if self.rng.chance(3) => Err("FAILED_PRECONDITION/EXPIRED|the hold expired".into()),
            _ => Ok(Produced {
                id: 1,
                ..Produced::default()
            }),
        }
    }
}

/// Feeds the trace's made-up outcomes and occupancy samples to a collector.
fn collect(trace: &Trace, opts: &ReplayOptions, region: &RegionFile) -> peak::ReplayResult {
    let mut c = Collector::new(trace, opts, Some(region));
    let watched = c.busiest_hospitals(trace, 3);
    let every = c.occupancy_every_ms(opts.occupancy_every_ms);
    let allocates = trace
        .events
        .iter()
        .filter(|e| matches!(e.op, Op::AllocateSlot { .. }))
        .count() as u64;
    let mut m = Model {
        region,
        rng: SplitMix64::new(7),
        seats: allocates * 7 / 10,
        limit_per_second: busiest_second(trace, opts.speed).0 * 3 / 4,
        failed: HashSet::new(),
        second: (u64::MAX, 0),
        speed: opts.speed,
    };
    let mut next_sample = 0;
    for e in &trace.events {
        while next_sample <= e.at_ms {
            for (i, h) in watched.iter().enumerate() {
                let minutes = (next_sample / 60_000) as u32;
                let occupied = 120 + 10 * i as u32 + minutes * (3 - i as u32);
                c.occupancy_sample(*h, next_sample, (occupied.min(200), 6 + minutes % 5, 220));
            }
            next_sample += every;
        }
        let (latency, answer) = m.answer(e.id, e.at_ms, &e.op);
        c.record(e, latency, answer);
    }
    let wall = trace.events.last().map_or(0, |e| e.at_ms) as f64 / opts.speed / 1000.0;
    c.finish(Duration::from_secs_f64(wall + 1.5))
}

fn main() -> Result<(), String> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "synthetic-report".into()),
    );
    let sc = Scenario::load("gba")?;
    let gen = GenerateOptions {
        seed: 1,
        minutes: Some(30),
        start_minute: Some(470),
        scale: 0.1,
        days: None,
    };
    let trace = peak::generate(&sc, &gen)?;
    let region = peak::trace_region(&trace).ok_or("the gba trace names its region")?;
    let opts = ReplayOptions {
        targets: vec!["(none: outcomes made up by examples/synthetic_report.rs)".into()],
        speed: 60.0,
        ..ReplayOptions::default()
    };
    let mut r = collect(&trace, &opts, &region);
    r.description = format!("{} (synthetic outcomes, no cluster)", sc.description);
    let page = peak::write_report(&dir, &r)?;
    println!("{}", peak::summary_line(&r));
    println!("report: {}", page.display());
    Ok(())
}
