//! The snapshot writer, simulated: a node's poll only hands out a `SnapshotJob` (an image
//! of its state, `Output::snapshot`); some time later (drawn from the seed, 1–400 ms, so the
//! report lands among other polls, appends, received snapshots and crashes in any order)
//! the "writer thread" writes the snapshot file durably (`Disk::write_snapshot_file`: beside
//! the journal, never syncing its pending records) and steps `Input::SnapshotWritten`, and
//! the node's next poll records it in the store and compacts the log.
//!
//! The fault `Faults::crash_in_snapshot_per_mille` crashes the node between the file and
//! its record: the restarted store must ignore the orphan file and start from the snapshot
//! it had recorded before, its log intact behind it.

use super::{Event, NodeState, Sim, US};
use ninety_cluster::eraftpb::Snapshot;
use ninety_cluster::node::{Input, SnapshotJob};

/// How long the simulated writer takes to encode and write a snapshot, µs.
const WRITE_US: (u64, u64) = (1_000, 400_000);

impl Sim {
    /// After a poll of node `id` that handed out a snapshot job: encodes it now (the image
    /// is immutable, so when does not matter) and schedules its completion.
    pub(super) fn queue_snapshot(&mut self, id: u64, job: SnapshotJob) {
        let Some(n) = self.nodes.get(&id) else {
            return;
        };
        let incarnation = n.incarnation;
        let snapshot = job.encode();
        let after = self.snapshot_rng.range(WRITE_US.0, WRITE_US.1);
        let event = Event::SnapshotWritten {
            node: id,
            incarnation,
            snapshot: Box::new(snapshot),
        };
        self.schedule(after, event);
    }

    /// The simulated writer finished node `node`'s job (unless the node crashed meanwhile:
    /// the thread died with it, the file never written, or written and never recorded).
    pub(super) fn on_snapshot_written(&mut self, node: u64, incarnation: u64, snapshot: Snapshot) {
        let Some(n) = self.nodes.get(&node) else {
            return;
        };
        if n.incarnation != incarnation || n.state != NodeState::Up || n.core.is_none() {
            return;
        }
        let written = n.disk.borrow_mut().write_snapshot_file(&snapshot);
        if let Err(e) = written {
            self.violation(format!("node {node}: snapshot file not written: {e}"));
            return;
        }
        self.stats.snapshots_written += 1;
        let crash = self.phase == super::Phase::Safety
            && self
                .snapshot_rng
                .chance(self.faults.crash_in_snapshot_per_mille);
        if crash {
            self.crash_before_recording(node, &snapshot);
            return;
        }
        self.step(node, Input::SnapshotWritten { snapshot });
    }

    /// Crashes node `id` with its snapshot file written and not recorded.
    fn crash_before_recording(&mut self, id: u64, snapshot: &Snapshot) {
        self.crash_node(id, false);
        self.stats.crashes_in_snapshot += 1;
        let (lo, hi) = self.faults.down_ms;
        let down = self.snapshot_rng.range(lo, hi) * US;
        let inc = self.nodes.get(&id).map_or(0, |n| n.incarnation);
        let index = snapshot.get_metadata().index;
        self.log(|| {
            format!(
                "node {id} crashed between writing its snapshot file at {index} and recording \
                 it, down {} ms",
                down / US
            )
        });
        let restart = Event::Restart {
            node: id,
            incarnation: inc,
        };
        self.schedule(down, restart);
    }
}
