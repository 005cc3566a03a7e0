//! The origin region's driver, as its leader runs it in the real cluster: it reads the
//! leader's engine ([`ninety_engine::Engine::remote_work`]), sends one step at a time to the
//! destination through that region's simulated client path (loss, timeouts, its leader
//! changes, retries under the step's derived request id), turns the answer into a
//! `RemoteOutcome` and records it in the origin with `RecordRemote` (again through the
//! client path). It **crashes** — forgets the step in flight — whenever the origin's leader
//! crashes or changes, and at random (its own rate per seed, 0-300‰) between a step sent
//! and its answer recorded; the next leader resumes from the replicated state.

use super::{RemoteStats, DESTINATION, ORIGIN};
use crate::options::Bugs;
use crate::rng::Rng;
use crate::sim::{External, LeaderId, Sim};
use ninety_engine::remote::{RemoteAction, RemoteOutcome, RemoteStep};
use ninety_engine::{Command, ReferralId, RequestId};
use std::collections::BTreeSet;

/// Steps read from the engine at a time (the driver sends one of them, drawn at random).
const STEPS_READ_MAX: usize = 8;

/// What the driver is waiting for.
#[derive(Clone, Debug)]
enum InFlight {
    /// The destination's answer to `step` (sent as request `id`).
    Sent { step: RemoteStep, id: RequestId },
    /// The origin's answer to the `RecordRemote` request `id`.
    Recording { id: RequestId },
}

/// The simulated driver of the origin region.
#[derive(Debug)]
pub struct Driver {
    rng: Rng,
    bugs: Bugs,
    /// Chance of a crash between a step sent and its answer recorded, per mille (of the
    /// answers; a hundredth of it per round while the answer is awaited).
    crash_per_mille: u64,
    /// The origin's leader the driver runs on.
    attached: Option<LeaderId>,
    inflight: Option<InFlight>,
    /// Every referral and attempt whose hold step was sent (the holds the destination may
    /// have made for the origin).
    pub sent_holds: BTreeSet<(ReferralId, u32)>,
    pub stats: RemoteStats,
}

impl Driver {
    /// A driver drawing its choices and crashes from `rng`.
    pub fn new(mut rng: Rng, bugs: Bugs) -> Driver {
        let crash_per_mille = rng.range(0, 300);
        Driver {
            rng,
            bugs,
            crash_per_mille,
            attached: None,
            inflight: None,
            sent_holds: BTreeSet::new(),
            stats: RemoteStats::default(),
        }
    }

    /// Whether nothing is in flight (the origin may still owe steps).
    pub fn idle(&self) -> bool {
        self.inflight.is_none()
    }

    /// One round: follow the origin's leader (a new one is a crash of the old driver), take
    /// the answers that came, and send the next step when nothing is in flight.
    pub fn poll(&mut self, o: &mut Sim, d: &mut Sim) {
        let leader = o.leader().map(|(who, _)| who);
        if leader != self.attached {
            if self.inflight.is_some() {
                self.stats.crashes_on_leader_change += 1;
            }
            self.crash(o, d);
            self.attached = leader;
        }
        let (from_d, from_o) = (d.take_external(), o.take_external());
        match self.inflight.take() {
            Some(InFlight::Sent { step, id }) => self.on_sent(o, d, step, id, from_d),
            Some(InFlight::Recording { id }) if !from_o.iter().any(|e| e.id == id) => {
                self.inflight = Some(InFlight::Recording { id });
            }
            Some(InFlight::Recording { .. }) | None => {}
        }
        if self.inflight.is_none() && self.attached.is_some() {
            self.next_step(o, d);
        }
    }

    /// The driver process dies: what it waited for is forgotten.
    fn crash(&mut self, o: &mut Sim, d: &mut Sim) {
        self.inflight = None;
        o.abandon_external();
        d.abandon_external();
    }

    /// Waiting for the destination's answer to `step`: records it when it came (unless the
    /// driver crashes first), keeps waiting otherwise.
    fn on_sent(
        &mut self,
        o: &mut Sim,
        d: &mut Sim,
        step: RemoteStep,
        id: RequestId,
        from_d: Vec<External>,
    ) {
        let faulty = o.faulty();
        let Some(done) = from_d.into_iter().find(|e| e.id == id) else {
            if faulty && self.rng.chance(self.crash_per_mille / 100) {
                self.stats.crashes_between += 1;
                self.crash(o, d);
            } else {
                self.inflight = Some(InFlight::Sent { step, id });
            }
            return;
        };
        if faulty && self.rng.chance(self.crash_per_mille) {
            self.stats.crashes_between += 1;
            self.crash(o, d);
            return;
        }
        let outcome = match &done.answer {
            Ok(answer) => step.outcome(answer),
            Err(why) => RemoteOutcome::Stuck {
                reason: format!("region {DESTINATION}: {why}"),
            },
        };
        self.record(o, &step, outcome);
    }

    /// Proposes `RecordRemote` for `step`'s answer in the origin.
    fn record(&mut self, o: &mut Sim, step: &RemoteStep, outcome: RemoteOutcome) {
        let s = &mut self.stats;
        match outcome {
            RemoteOutcome::Held { .. } => s.held += 1,
            RemoteOutcome::Confirmed => s.confirmed += 1,
            RemoteOutcome::Released => s.released += 1,
            RemoteOutcome::Refused { .. } => s.refused += 1,
            RemoteOutcome::Stuck { .. } => s.stuck += 1,
        }
        let command = Command::RecordRemote {
            referral: step.referral,
            attempt: step.attempt,
            outcome,
        };
        let id = o.submit(None, command);
        self.inflight = Some(InFlight::Recording { id });
    }

    /// Reads the leader's work and sends one step of it to the destination.
    fn next_step(&mut self, o: &mut Sim, d: &mut Sim) {
        let steps = match o.leader() {
            Some((_, engine)) => engine.remote_work(STEPS_READ_MAX),
            None => return,
        };
        let Some(step) = self.rng.pick(&steps).cloned() else {
            return;
        };
        if step.region != DESTINATION {
            let reason = format!("region {} is unknown to the cluster", step.region);
            self.record(o, &step, RemoteOutcome::Stuck { reason });
            return;
        }
        if self.bugs.remote_confirm_unsent && matches!(step.action, RemoteAction::Confirm { .. }) {
            self.record(o, &step, RemoteOutcome::Confirmed);
            return;
        }
        if step.step_name() == "hold" {
            self.sent_holds.insert((step.referral, step.attempt));
        }
        let request = step.request(ORIGIN);
        let id = d.submit(Some(request.id), request.command);
        self.stats.sent += 1;
        self.inflight = Some(InFlight::Sent { step, id });
    }
}
