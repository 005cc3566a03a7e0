//! The wiped-disk fault: a crash that also loses the node's whole data directory, and what
//! the real runtime does about it, modelled on the same pure functions.
//!
//! A wiped node comes back with an empty disk and a new incarnation (a new `IDENTITY` file).
//! Before it starts it asks the peers it can reach, as `runtime::startup` does with the peer
//! `Status` call, and [`startup::decide`] answers: refuse (the cluster records this node
//! with another incarnation, or it is a registered voter of a cluster past its bootstrap),
//! start empty, bootstrap (a founder of a cluster that does not exist yet), or wait. A
//! refused node is `Failed`: the operator replaces it under a new id (remove, add a learner,
//! promote), the documented procedure. Delivery goes through the same gate as the peer
//! service: a message from an incarnation the receiver's registry does not record is
//! refused, and one from a member without a record makes the leader register it.
//!
//! [`crate::Bugs::wiped_node_rejoins`] skips all of that (the node restarts empty under its
//! old id, a founder bootstraps again, as before issue 13): the checks must catch it.

use super::{NodeState, Sim};
use ninety_cluster::engine_sm::EngineMachine;
use ninety_cluster::node::startup::{self, PeerAnswer, PeerView, StartDecision, StartFacts};
use ninety_cluster::node::{bootstrap, Input};
use std::collections::BTreeMap;

/// How long a wiped node that could not decide yet waits before asking again, µs.
const WIPED_RETRY_US: u64 = 1_000_000;

impl Sim {
    /// A new nonzero incarnation for a data directory created now.
    pub(super) fn new_data_incarnation(&mut self) -> u64 {
        self.wipe_rng.range(1, u64::MAX)
    }

    /// After node `id` crashed: maybe its whole data directory is lost too. At most one
    /// node at a time is without its data (two of three would be a lost quorum, which no
    /// protocol survives), and never while a replacement is under way.
    pub(super) fn maybe_wipe(&mut self, id: u64) {
        let busy = self.a_node_lost_its_data();
        if busy || !self.wipe_rng.chance(self.faults.wipe_per_mille) {
            return;
        }
        let incarnation = self.new_data_incarnation();
        let bug = self.opts.bugs.store_ack_before_durable;
        let Some(n) = self.nodes.get_mut(&id) else {
            return;
        };
        n.disk = crate::disk::Disk::new_handle(bug);
        n.data_incarnation = incarnation;
        n.wiped = true;
        self.stats.wipes += 1;
        self.log(|| format!("node {id} lost its data directory (new incarnation {incarnation:x})"));
    }

    /// Whether a node is out for good until the operator replaces it (failed disk, retired,
    /// or wiped and not running again), or a replacement is under way: no second node may
    /// then lose its data (corruption, wipe, retirement), or the quorum would be lost with
    /// it, which no protocol survives.
    pub(super) fn a_node_lost_its_data(&self) -> bool {
        self.replacing.is_some()
            || self
                .nodes
                .values()
                .any(|n| n.state == NodeState::Failed || (n.wiped && n.state != NodeState::Up))
    }

    /// Before node `id` restarts: a node whose disk is empty decides how to start. Returns
    /// whether to go on starting it as usual.
    pub(super) fn prepare_start(&mut self, id: u64) -> bool {
        let Some(n) = self.nodes.get(&id) else {
            return false;
        };
        if !n.wiped || n.disk.borrow().durable_len() > 0 {
            return true;
        }
        if self.opts.bugs.wiped_node_rejoins {
            return self.bootstrap_again(id);
        }
        let facts = StartFacts {
            me: id,
            incarnation: n.data_incarnation,
            may_bootstrap: n.founder,
            voters: (1..=self.faults.nodes).collect(),
        };
        let answers = self.peer_answers(id);
        self.log(|| format!("node {id} (empty) asks its peers: {answers:?}"));
        match startup::decide(&facts, &answers) {
            StartDecision::Refuse(why) => {
                self.stats.wiped_refused += 1;
                self.log(|| format!("node {id} refuses to start: {why}"));
                if let Some(n) = self.nodes.get_mut(&id) {
                    n.state = NodeState::Failed;
                }
                false
            }
            StartDecision::Wait { waiting_for } => {
                self.log(|| format!("node {id} (empty) waits for {waiting_for:?}"));
                self.schedule_restart(id, WIPED_RETRY_US);
                false
            }
            StartDecision::StartEmpty => true,
            StartDecision::Bootstrap => self.bootstrap_again(id),
        }
    }

    /// The bug's (and a not-yet-existing cluster's) way: a founder bootstraps its empty disk.
    fn bootstrap_again(&mut self, id: u64) -> bool {
        let Some(n) = self.nodes.get(&id) else {
            return false;
        };
        if !n.founder {
            return true;
        }
        let voters: Vec<u64> = (1..=self.faults.nodes).collect();
        let started = crate::disk::SimStore::open(n.disk.clone())
            .and_then(|mut store| bootstrap(&mut store, &voters, &EngineMachine::new()));
        if let Err(e) = started {
            self.violation(format!("node {id} could not bootstrap its empty disk: {e}"));
            return false;
        }
        true
    }

    /// Schedules another start attempt of node `id` (it stays down until then).
    fn schedule_restart(&mut self, id: u64, after_us: u64) {
        let Some(incarnation) = self.nodes.get(&id).map(|n| n.incarnation) else {
            return;
        };
        self.schedule(
            after_us,
            super::Event::Restart {
                node: id,
                incarnation,
            },
        );
    }

    /// What the peers node `id` can reach answer to its `Status` call (their record of it
    /// includes registrations in their log not applied yet, as the runtime's does).
    fn peer_answers(&mut self, id: u64) -> BTreeMap<u64, PeerAnswer> {
        let reachable: Vec<u64> = self
            .nodes
            .keys()
            .copied()
            .filter(|&p| p != id && self.is_up(p))
            .filter(|&p| !self.blocked.contains(&(id, p)) && !self.blocked.contains(&(p, id)))
            .collect();
        let mut answers = BTreeMap::new();
        for p in reachable {
            let Some(core) = self.nodes.get_mut(&p).and_then(|n| n.core.as_mut()) else {
                continue;
            };
            let view = PeerView {
                last_index: core.last_index(),
                recorded_incarnation: core.known_incarnations().get(&id).copied(),
                voters: core.status().conf_state.voters.clone(),
                starting: false,
            };
            answers.insert(p, PeerAnswer::Status(view));
        }
        answers
    }

    /// The peer gate, on delivery of a message from `from` to `to`: refuses an incarnation
    /// the receiver's registry does not record for the sender; asks the receiver to
    /// register a member that has no record. Returns whether to deliver.
    pub(super) fn gate_delivery(&mut self, from: u64, to: u64) -> bool {
        if self.opts.bugs.wiped_node_rejoins {
            return true;
        }
        let Some(presented) = self.nodes.get(&from).map(|n| n.data_incarnation) else {
            return true;
        };
        let Some(core) = self.nodes.get_mut(&to).and_then(|n| n.core.as_mut()) else {
            return true;
        };
        match core.known_incarnations().get(&from).copied() {
            Some(recorded) if recorded != presented => {
                self.stats.refused_incarnation += 1;
                false
            }
            Some(_) => true,
            None => {
                let input = Input::RegisterIncarnation {
                    node: from,
                    incarnation: presented,
                };
                if let Some(core) = self.nodes.get_mut(&to).and_then(|n| n.core.as_mut()) {
                    core.step(input);
                }
                true
            }
        }
    }

    /// Whether node `id`'s fatal error is the protective stop of a node that lost its data
    /// (a leader's heartbeat showed entries it had acknowledged are gone): expected of a
    /// wiped node, a violation of any other.
    pub(super) fn stopped_for_lost_data(&mut self, id: u64, error: &str) -> bool {
        let wiped = self.nodes.get(&id).is_some_and(|n| n.wiped);
        if wiped && error.contains("lost log entries it had acknowledged") {
            self.stats.wiped_refused += 1;
            self.log(|| format!("node {id} stopped: {error}"));
            return true;
        }
        false
    }
}
