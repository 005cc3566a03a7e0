//! The multi-region run's hooks into one region's run (`crate::multi`): the cross-region
//! driver sends its requests through this region's simulated client path (one client of
//! its own, with the same delays, loss, timeouts, leader hints and retries under the same
//! request id as the workload's clients), reads the region's leader and its engine, and
//! moves the run from phase to phase together with the other regions.

use super::{Client, NodeState, Op, Phase, Sim, US};
use crate::workload::RemoteDest;
use ninety_cluster::engine_sm::encode_request;
use ninety_engine::{Engine, Outcome, Request, RequestId};

/// What became of a request the driver submitted.
#[derive(Clone, Debug)]
pub struct External {
    /// The request's id.
    pub id: RequestId,
    /// The region's answer, or why none came (given up, a non-retryable error).
    pub answer: Result<Outcome, String>,
}

/// Who leads a region now: node, its incarnation (a restart is another process) and term.
pub type LeaderId = (u64, u64, u64);

impl Sim {
    /// Links this run to a multi-region run: its phases are moved by [`Sim::start_liveness`]
    /// and [`Sim::end`], and its workload asks beds of `dest` too when it is given.
    pub(crate) fn link(&mut self, dest: Option<RemoteDest>) {
        self.linked = true;
        self.remote_dest = dest;
    }

    /// Simulated time of the next event (µs).
    pub(crate) fn next_at(&self) -> Option<u64> {
        self.queue.peek().map(|s| s.at)
    }

    /// Runs this region's next event; `false` when the run must stop.
    pub(crate) fn step_linked(&mut self) -> bool {
        self.step_event()
    }

    /// Moves this region's clock to `now_us` (never back): the driver acts at that time.
    pub(crate) fn advance_to(&mut self, now_us: u64) {
        self.now = self.now.max(now_us);
    }

    pub(crate) fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Whether the safety phase's work is done (or its budget spent).
    pub(crate) fn safety_done(&self) -> bool {
        self.phase == Phase::Safety && self.safety_over()
    }

    /// Whether every client got its answers and all members converged (liveness phase).
    pub(crate) fn live(&self) -> bool {
        self.phase == Phase::Liveness && self.clients_done() && self.converged()
    }

    /// Simulated time spent in the current phase, ms.
    pub(crate) fn phase_ms(&self) -> u64 {
        (self.now - self.phase_started_us) / US
    }

    /// Starts the liveness phase (faults off) on the multi-region run's word.
    pub(crate) fn begin_liveness(&mut self) {
        if self.phase == Phase::Safety {
            self.start_liveness();
        }
    }

    /// Ends the run on the multi-region run's word (liveness reached everywhere).
    pub(crate) fn end(&mut self) {
        if self.phase == Phase::Liveness {
            self.stats.liveness_ms = self.phase_ms();
        }
        self.phase = Phase::Done;
    }

    /// Records a violation found by the multi-region run.
    pub(crate) fn report_violation(&mut self, v: String) {
        self.violation(v);
    }

    pub(crate) fn has_violations(&self) -> bool {
        !self.violations.is_empty()
    }

    /// Whether the run is in a phase with faults (loss, crashes: the driver may crash too).
    pub(crate) fn faulty(&self) -> bool {
        self.lossy()
    }

    /// The current leader (the highest term's), with its engine as applied so far.
    pub(crate) fn leader(&self) -> Option<(LeaderId, &Engine)> {
        let id = self.current_leader()?;
        let n = self.nodes.get(&id)?;
        let core = n.core.as_ref().filter(|_| n.state == NodeState::Up)?;
        let who = (id, n.incarnation, core.status().term);
        Some((who, core.state_machine().engine()))
    }

    /// The engines of the members that are up at the end, by node.
    pub(crate) fn final_engines(&self) -> Vec<(u64, &Engine)> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.state == NodeState::Up)
            .filter_map(|(id, n)| n.core.as_ref().map(|c| (*id, c.state_machine().engine())))
            .collect()
    }

    /// Sends `command` through the driver's client: `id` is the request id to use (a
    /// derived step id), or `None` for a fresh one of the driver's client. Replaces any
    /// request the client still waits for (its answer is no longer awaited). Returns the
    /// request's id.
    pub(crate) fn submit(
        &mut self,
        id: Option<RequestId>,
        command: ninety_engine::Command,
    ) -> RequestId {
        let client = self.external_client();
        let seq = self.clients.get_mut(client).map_or(0, |c| {
            c.seq += 1;
            c.seq
        });
        let id = id.unwrap_or_else(|| crate::workload::request_id(client as u64, seq));
        let request = Request { id, command };
        let bytes = match encode_request(&request) {
            Ok(b) => b,
            Err(e) => {
                self.violation(format!("cannot encode the driver's request: {e}"));
                return id;
            }
        };
        // A step's derived id is sent again by every driver that owes it: the operation
        // was invoked when it was first sent (its entry may be older than this send).
        let now = *self.external_invoked.entry(id).or_insert(self.now);
        let after_index = self.max_acked_index;
        if let Some(c) = self.clients.get_mut(client) {
            c.current = Some(Op {
                id,
                write: Some(request),
                read: None,
                after_index,
                bytes,
                invoked_us: now,
                attempts: 0,
                attempt: 0,
            });
        }
        self.send_attempt(client);
        id
    }

    /// The driver crashed: the request its client waits for is abandoned.
    pub(crate) fn abandon_external(&mut self) {
        if let Some(c) = self.clients.iter_mut().find(|c| c.external) {
            c.current = None;
        }
    }

    /// The answers that came since the last call.
    pub(crate) fn take_external(&mut self) -> Vec<External> {
        std::mem::take(&mut self.external_done)
    }

    /// The driver's client, created on first use (after the workload's).
    fn external_client(&mut self) -> usize {
        if let Some(i) = self.clients.iter().position(|c| c.external) {
            return i;
        }
        self.clients.push(Client::fresh(true));
        self.clients.len() - 1
    }

    /// The driver's client got an answer to `id`.
    pub(super) fn external_answered(&mut self, client: usize, id: RequestId, answer: Outcome) {
        self.external_done.push(External {
            id,
            answer: Ok(answer),
        });
        self.finish_op(client);
    }

    /// The driver's client stops trying (`why`); `false` when `client` is not the driver's.
    pub(super) fn external_gave_up(&mut self, client: usize, why: &str) -> bool {
        let Some(c) = self.clients.get_mut(client).filter(|c| c.external) else {
            return false;
        };
        if let Some(op) = c.current.take() {
            self.external_done.push(External {
                id: op.id,
                answer: Err(why.to_string()),
            });
        }
        true
    }
}

impl Sim {
    /// The region's wards (the workload of another region asks beds of them).
    pub(crate) fn ward_ids(&self) -> Vec<ninety_engine::WardId> {
        self.region.wards.clone()
    }

    /// Ends a linked run: its figures and its own history check.
    pub(crate) fn finish_linked(&mut self) {
        self.finish();
    }

    /// The report of a finished linked run.
    pub(crate) fn report_linked(self) -> super::RunReport {
        self.into_report()
    }
}
