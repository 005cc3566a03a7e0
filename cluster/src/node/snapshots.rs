//! Local snapshots and log compaction, taken off the driver's thread.
//!
//! Encoding a big state and writing it (85 MB for 2,000 wards × 4,096 beds: 1.2 s) used to
//! run inside the poll, so every request waited behind it. Now, with
//! `NodeConfig::background_snapshots`, the poll only takes an immutable image of the state
//! (`StateMachine::image`: the engine copies its small records and shares its beds' chunks)
//! and hands it out as a [`SnapshotJob`] in `Output::snapshot`. The driver's snapshot
//! writer encodes it, writes the file durably and steps `Input::SnapshotWritten`; the next
//! poll records it in the store (`RaftStore::record_snapshot`: metadata only) and compacts
//! the log behind it. The same shape as the persistence worker (`persist`): the node emits,
//! the driver does the I/O, the result comes back as an input.
//!
//! One job is in flight at a time. Until it is recorded, the store still names the previous
//! snapshot: raft's requests for lagging followers are answered from that one (or
//! `SnapshotTemporarilyUnavailable` if it is too old, and raft-rs asks again), and the log
//! is not compacted past it. A crash between the file and its record leaves a file the
//! store does not name, deleted when the store opens (`SnapshotFiles::retain`). A written
//! snapshot that a received one overtook meanwhile (installed from the leader) is dropped.

use super::members::Registry;
use super::{payload, Node};
use crate::error::Error;
use crate::io::RaftStore;
use crate::state_machine::{StateImage, StateMachine};
use raft::eraftpb::{ConfState, Snapshot};

/// A snapshot to write: where it stands in the log and an image of the state there.
pub struct SnapshotJob {
    /// The applied index and term it reflects.
    pub index: u64,
    pub term: u64,
    /// Asked for by `Node::request_snapshot` (an operator's `SnapshotNow`).
    pub requested: bool,
    conf_state: ConfState,
    log_time_ms: u64,
    members: Registry,
    image: Box<dyn StateImage>,
}

impl std::fmt::Debug for SnapshotJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotJob")
            .field("index", &self.index)
            .field("term", &self.term)
            .field("requested", &self.requested)
            .finish_non_exhaustive()
    }
}

impl SnapshotJob {
    /// The Raft snapshot (metadata and the envelope of the state). Encodes the whole state:
    /// call it off the node's thread.
    pub fn encode(&self) -> Snapshot {
        let state = self.image.snapshot();
        let data = payload::encode_snapshot_with(self.log_time_ms, &self.members, &state);
        let mut snap = Snapshot {
            data: data.into(),
            ..Default::default()
        };
        let meta = snap.mut_metadata();
        meta.index = self.index;
        meta.term = self.term;
        meta.set_conf_state(self.conf_state.clone());
        snap
    }

    /// The state hash of the image (encodes the whole state again: off the node's thread).
    pub fn state_hash(&self) -> [u8; 32] {
        self.image.state_hash()
    }
}

/// The node's side: the job in flight, a written one to record, an operator's request.
#[derive(Debug, Default)]
pub(super) struct Snapshots {
    /// (index, term) of the job handed out and not reported written yet.
    in_flight: Option<(u64, u64)>,
    /// Reported written (`Input::SnapshotWritten`), recorded at the next poll.
    written: Option<Snapshot>,
    /// `Node::request_snapshot` was called: the next job is taken even if not due.
    requested: bool,
}

impl<S: RaftStore, M: StateMachine> Node<S, M> {
    /// Asks for a snapshot at the applied index as soon as none is in flight (an operator's
    /// `SnapshotNow`); its job says `requested`.
    pub fn request_snapshot(&mut self) {
        self.snapshots.requested = true;
    }

    /// Whether a snapshot job was handed out and not reported written yet.
    pub fn snapshot_in_flight(&self) -> bool {
        self.snapshots.in_flight.is_some()
    }

    /// `Input::SnapshotWritten`: kept for the next poll (recording it writes the store).
    pub(super) fn snapshot_written(&mut self, snapshot: Snapshot) {
        let meta = snapshot.get_metadata();
        if self.snapshots.in_flight == Some((meta.index, meta.term)) {
            self.snapshots.in_flight = None;
            self.snapshots.written = Some(snapshot);
        }
    }

    /// Every `snapshot_interval_entries` (or `snapshot_log_bytes_max` bytes of entries), a
    /// snapshot at the applied index, then compaction,
    /// keeping `log_retain_entries` behind it for lagging followers. A leader also
    /// snapshots as soon as its stored snapshot does not name every member: the store
    /// answers raft's request for such a peer with `SnapshotTemporarilyUnavailable`
    /// (raft-rs would ignore a snapshot that does not include the receiver), and on an idle
    /// cluster no periodic snapshot would ever come. In the background (module doc) or, without
    /// a writer, here.
    pub(super) fn maybe_snapshot(&mut self) -> Result<(), Error> {
        self.record_written()?;
        if self.snapshots.in_flight.is_some() || self.applied_index == 0 {
            return Ok(());
        }
        let by_count = self.applied_index
            >= self
                .snapshot_index
                .saturating_add(self.cfg.snapshot_interval_entries);
        let by_size = self.cfg.snapshot_log_bytes_max > 0
            && self.log_bytes_since_snapshot >= self.cfg.snapshot_log_bytes_max;
        let periodic = (by_count || by_size) && self.applied_index > self.snapshot_index;
        let for_new_member = self.is_leader() && self.snapshot_misses_members();
        let requested = self.snapshots.requested;
        if !periodic && !for_new_member && !requested {
            return Ok(());
        }
        self.snapshots.requested = false;
        self.log_bytes_since_snapshot = 0;
        if !self.cfg.background_snapshots {
            return self.take_snapshot().map(drop);
        }
        self.snapshots.in_flight = Some((self.applied_index, self.applied_term));
        self.out.snapshot = Some(self.snapshot_job(requested));
        Ok(())
    }

    /// The job for a snapshot at the applied index: an image of the state, no encoding.
    fn snapshot_job(&self, requested: bool) -> SnapshotJob {
        SnapshotJob {
            index: self.applied_index,
            term: self.applied_term,
            requested,
            conf_state: self.conf_state.clone(),
            log_time_ms: self.applied_log_time_ms,
            members: self.members.clone(),
            image: self.sm.image(),
        }
    }

    /// Records the snapshot reported written, unless a newer one was installed meanwhile
    /// (the file is then left to the store's cleanup), and compacts behind it.
    fn record_written(&mut self) -> Result<(), Error> {
        let Some(snap) = self.snapshots.written.take() else {
            return Ok(());
        };
        let (index, conf) = (
            snap.get_metadata().index,
            snap.get_metadata().get_conf_state(),
        );
        let first = raft::Storage::first_index(self.raw.store())?;
        if index < self.snapshot_index || index < first.saturating_sub(1) {
            return Ok(());
        }
        self.raw.mut_store().record_snapshot(&snap)?;
        self.snapshot_index = index;
        self.snapshot_conf = conf.clone();
        self.compact_behind(index)
    }

    /// Compacts the log up to `log_retain_entries` before the snapshot at `index`.
    fn compact_behind(&mut self, index: u64) -> Result<(), Error> {
        let keep_from = (index + 1).saturating_sub(self.cfg.log_retain_entries);
        self.raw.mut_store().compact(keep_from)
    }

    /// Whether a member of the applied configuration is missing from the stored snapshot's.
    fn snapshot_misses_members(&self) -> bool {
        let cs = &self.conf_state;
        cs.voters
            .iter()
            .chain(&cs.learners)
            .chain(&cs.voters_outgoing)
            .chain(&cs.learners_next)
            .any(|&id| !crate::storage::conf_names(&self.snapshot_conf, id))
    }

    /// Stores a snapshot at the applied index now, on this thread, and compacts the log
    /// behind it; returns (index, term, size of the stored snapshot data in bytes).
    pub(super) fn take_snapshot(&mut self) -> Result<(u64, u64, usize), Error> {
        let snap = self.snapshot_job(false).encode();
        self.raw.mut_store().save_snapshot(&snap)?;
        self.snapshot_index = self.applied_index;
        self.snapshot_conf = self.conf_state.clone();
        self.compact_behind(self.applied_index)?;
        Ok((self.applied_index, self.applied_term, snap.get_data().len()))
    }
}
