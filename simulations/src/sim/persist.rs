//! The persistence worker of the pipelined commit round, simulated: a node's poll only
//! queues its writes (`SimStore::write_async`: journalled, not synced) and returns the
//! Ready number in `Output::persist`; some time later the "worker" syncs the node's disk
//! and steps `Input::Persisted`, after which the node sends what waited for the write (a
//! follower's acknowledgements, votes) and counts its own copy towards the quorum. A crash
//! before that loses the queued writes, which nothing acknowledged yet.
//!
//! A crash armed for the node's next write (`crash_in_write`) hits the worker's fsync when
//! one is due: a random prefix of the queued records reaches the disk (the first of the
//! rest possibly torn), the rest is lost, and the node never hears of it.
//!
//! The bugs: [`crate::Bugs::ack_before_write`] reports the writes durable at once, before
//! they are (the sync still comes later); [`crate::Bugs::store_ack_before_durable`] reports
//! them without syncing at all (the background flush does, every second).

use super::{Event, NodeState, Sim, US};
use ninety_cluster::node::Input;

/// How long the simulated worker takes to make a queued write durable, µs (a range: an
/// fsync overlaps the network's delays and other polls).
const SYNC_US: (u64, u64) = (300, 3_000);

impl Sim {
    /// After a poll of node `id` whose writes up to Ready `number` were queued.
    pub(super) fn queue_persist(&mut self, id: u64, number: u64) {
        let Some(n) = self.nodes.get(&id) else {
            return;
        };
        let incarnation = n.incarnation;
        if self.opts.bugs.ack_before_write {
            // The bug: the node hears "durable" before the write is.
            self.step(id, Input::Persisted { number });
        }
        let after = self.persist_rng.range(SYNC_US.0, SYNC_US.1);
        let event = Event::Persisted {
            node: id,
            incarnation,
            number,
        };
        self.schedule(after, event);
    }

    /// The simulated worker's fsync for node `node` is done (unless the node crashed
    /// meanwhile, or crashes in it now).
    pub(super) fn on_persisted(&mut self, node: u64, incarnation: u64, number: u64) {
        let Some(n) = self.nodes.get(&node) else {
            return;
        };
        if n.incarnation != incarnation || n.state != NodeState::Up || n.core.is_none() {
            return;
        }
        if self.crash_in_sync(node) {
            return;
        }
        if let Some(n) = self.nodes.get(&node) {
            if !self.opts.bugs.store_ack_before_durable {
                n.disk.borrow_mut().sync();
            }
        }
        if !self.opts.bugs.ack_before_write {
            self.step(node, Input::Persisted { number });
        }
    }

    /// A crash armed for node `id`'s next write hits this fsync: a random prefix of its
    /// queued records reaches the disk. Returns whether it crashed.
    fn crash_in_sync(&mut self, id: u64) -> bool {
        let Some(n) = self.nodes.get_mut(&id) else {
            return false;
        };
        let Some(crash) = n.crash_in_write else {
            return false;
        };
        let pending = n.disk.borrow().pending_len();
        if pending == 0 {
            return false;
        }
        let reached = self.crash_rng.below(pending as u64 + 1) as usize;
        n.core = None;
        n.state = NodeState::Down;
        n.incarnation += 1;
        n.crash_in_write = None;
        let inc = n.incarnation;
        n.disk
            .borrow_mut()
            .crash_in_sync(reached, &mut self.crash_rng, crash.torn);
        self.stats.crashes += 1;
        self.stats.crashes_in_write += 1;
        self.stats.torn_writes += u64::from(crash.torn);
        self.log(|| {
            format!(
                "node {id} crashed in its queued write's fsync: {reached} of {pending} records \
                 reached the disk (torn: {}), down {} ms",
                crash.torn,
                crash.down_us / US
            )
        });
        let restart = Event::Restart {
            node: id,
            incarnation: inc,
        };
        self.schedule(crash.down_us, restart);
        true
    }
}
