//! A run of several regions (Raft groups) side by side (`Options::regions` ≥ 2): an origin
//! region O and a destination region D, each a full simulated cluster ([`Sim`]: its own
//! nodes, disks, clocks, clients, membership and history check) with the seed's fault model,
//! on one simulated clock (the earliest event of either runs next). O's workload also asks
//! D for beds (`HoldRemoteBed`) and moves those referrals on; the origin's [`Driver`] carries
//! the steps between them. Both regions leave the safety phase together once both are done
//! with it, and the run ends when both converged, every client was answered, and the driver
//! is quiescent (no step owed, no hold of D's made for O left pending unnamed); then the
//! cross-region state is checked ([`check::final_state`]) besides each region's history.

use crate::cross_region::DESTINATION;
use crate::cross_region::{check, driver::Driver, ORIGIN};
use crate::options::Options;
use crate::rng::Rng;
use crate::sim::{RunReport, Sim};
use crate::workload::RemoteDest;

/// How often the driver looks at the origin's leader, µs.
const DRIVER_PERIOD_US: u64 = 50_000;

/// One multi-region run.
pub struct Multi {
    /// `[O, D]`.
    regions: Vec<Sim>,
    driver: Driver,
    /// Simulated time, µs: the latest event or driver round so far.
    now: u64,
    driver_next: u64,
    liveness_started: Option<u64>,
    liveness_budget_us: u64,
}

impl Multi {
    /// Builds the run of `seed`: region 0 (the origin) is the one-region run of that seed.
    pub fn new(seed: u64, opts: &Options) -> Result<Multi, String> {
        let mut o = Sim::new_region(seed, opts, 0)?;
        let mut d = Sim::new_region(seed, opts, 1)?;
        let dest = RemoteDest {
            region: DESTINATION.to_string(),
            wards: d.ward_ids(),
        };
        o.link(Some(dest));
        d.link(None);
        Ok(Multi {
            regions: vec![o, d],
            driver: Driver::new(Rng::new(seed).fork(200), opts.bugs),
            now: 0,
            driver_next: DRIVER_PERIOD_US,
            liveness_started: None,
            liveness_budget_us: opts.liveness_budget_ms * 1000,
        })
    }

    /// Runs to the end and checks every region and the cross-region state.
    pub fn run(mut self) -> RunReport {
        while self.step() {}
        self.finish()
    }

    /// Runs the earliest thing due (a region's event or a driver round); `false` at the end.
    fn step(&mut self) -> bool {
        let next = self
            .regions
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.next_at().map(|at| (at, i)))
            .min();
        let Some((at, i)) = next else {
            return false;
        };
        if self.driver_next <= at {
            self.now = self.driver_next;
            self.driver_next += DRIVER_PERIOD_US;
            let [o, d] = &mut self.regions[..] else {
                return false;
            };
            o.advance_to(self.now);
            d.advance_to(self.now);
            self.driver.poll(o, d);
            return !o.has_violations() && !d.has_violations();
        }
        self.now = at;
        self.regions[i].step_linked() && self.phases()
    }

    /// Moves both regions to liveness together, and to the end once everything is
    /// quiescent; `false` at the end (or past the liveness budget).
    fn phases(&mut self) -> bool {
        if self.regions.iter().all(|s| s.safety_done()) {
            for s in &mut self.regions {
                s.advance_to(self.now);
                s.begin_liveness();
            }
            self.liveness_started = Some(self.now);
        }
        let Some(started) = self.liveness_started else {
            return !self.regions.iter().any(|s| s.is_done());
        };
        if self.regions.iter().any(|s| s.is_done()) {
            return false;
        }
        if self.regions.iter().all(|s| s.live()) && self.quiescent() {
            for s in &mut self.regions {
                s.end();
            }
            return false;
        }
        if self.now - started > self.liveness_budget_us {
            let v = format!(
                "liveness: {} ms after faults stopped the driver is not quiescent (idle: {})",
                (self.now - started) / 1000,
                self.driver.idle()
            );
            self.regions[0].report_violation(v);
            return false;
        }
        true
    }

    /// Whether the driver is done: nothing in flight, no step owed, and no hold of D's made
    /// for O pending without O's `Held` bed naming it (such a hold must lapse by its TTL).
    fn quiescent(&mut self) -> bool {
        if !self.driver.idle() {
            return false;
        }
        let (Some((_, o)), Some((_, d))) = (self.regions[0].leader(), self.regions[1].leader())
        else {
            return false;
        };
        if !o.remote_work(1).is_empty() {
            return false;
        }
        let orphans = check::orphans(o, d, &self.driver.sent_holds).len() as u64;
        let stats = &mut self.driver.stats;
        stats.orphans_at_end = stats.orphans_at_end.max(orphans);
        orphans == 0
    }

    /// The cross-region checks on every final replica of O against D, then each region's
    /// own checks; one report (O's seed and faults, both regions' violations and counts).
    fn finish(mut self) -> RunReport {
        let clean = self.regions.iter().all(|s| !s.has_violations());
        let ended = self.regions.iter().all(|s| s.is_done());
        if clean && ended {
            let found = self.cross_checks();
            for v in found {
                self.regions[0].report_violation(v);
            }
        }
        let mut reports = Vec::new();
        for mut s in self.regions {
            s.finish_linked();
            reports.push(s.report_linked());
        }
        let mut report = reports.remove(0);
        for r in reports {
            for v in r.violations {
                report.violations.push(format!("region {DESTINATION}: {v}"));
            }
            report.stats.absorb(&r.stats);
        }
        report.stats.remote = self.driver.stats;
        report
    }

    fn cross_checks(&mut self) -> Vec<String> {
        let sent = &self.driver.sent_holds;
        let Some(&(_, d)) = self.regions[1].final_engines().first() else {
            return vec![format!("region {DESTINATION} has no replica up at the end")];
        };
        let mut out = Vec::new();
        for (node, o) in self.regions[0].final_engines() {
            for v in check::final_state(o, d, sent) {
                out.push(format!("region {ORIGIN} node {node}: {v}"));
            }
        }
        if let Some((_, o)) = self.regions[0].final_engines().first() {
            let s = &mut self.driver.stats;
            for (_, b) in o.remote().all() {
                s.final_confirmed +=
                    u64::from(b.stage == ninety_engine::remote::RemoteStage::Confirmed);
                s.final_released +=
                    u64::from(b.stage == ninety_engine::remote::RemoteStage::Released);
            }
        }
        out.truncate(16);
        out
    }
}
