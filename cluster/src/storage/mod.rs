//! Raft stores, all implementing raft-rs `Storage` (reads) and [`crate::io::RaftStore`]
//! (writes) with the same semantics, checked by one conformance suite ([`conformance`]):
//! - [`LogStore`]: the durable store of real nodes: the log, hard state and metadata in
//!   TiKV's raft-engine, snapshots as files ([`SnapshotFiles`]). See `docs/storage.md`.
//! - [`MemStore`]: in memory, the reference semantics, for tests and the simulator.
//! - [`SledStore`]: the format-2 store, kept only to migrate a format-2 data directory
//!   ([`migrate`]).

mod log_store;
mod mem;
pub mod migrate;
mod sled_store;
mod snapshot_files;
mod write_queue;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use log_store::{
    open_engine, LogStore, LogStoreOptions, LogWriter, SharedEngine, LOG_FILE_BYTES,
    LOG_PURGE_THRESHOLD_BYTES, RAFT_GROUP_ID,
};
pub use mem::MemStore;
pub use sled_store::{SledStore, SLED_CACHE_CAPACITY_BYTES};
pub use snapshot_files::{SnapshotFiles, SnapshotId, SNAPSHOT_FILES_KEPT, SNAPSHOT_FILE_BYTES_MAX};
pub use write_queue::{DurableMark, QueuedWrite, WriteSink};

use raft::eraftpb::{ConfState, Snapshot, SnapshotMetadata};
use raft::StorageError;

/// Wraps a storage failure in raft-rs's error type, for `raft::Storage` methods.
pub(crate) fn other(e: impl std::fmt::Display) -> raft::Error {
    raft::Error::Store(StorageError::Other(e.to_string().into()))
}

/// What `raft::Storage::snapshot` returns for a stored snapshot: raft asks for one at least
/// as new as `request_index`, for peer `to`. An older one, or one whose configuration does
/// not name `to` (raft-rs ignores a snapshot that does not include the receiver, so sending
/// it would make a new learner wait forever), means "not yet": `SnapshotTemporarilyUnavailable`,
/// raft-rs retries later, and the leader's node takes a newer one (`Node::poll`).
pub(crate) fn snapshot_for_request(
    stored: Option<Snapshot>,
    request_index: u64,
    to: u64,
) -> raft::Result<Snapshot> {
    match stored {
        Some(s) if snapshot_serves(s.get_metadata(), request_index, to) => Ok(s),
        _ => Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable,
        )),
    }
}

/// Whether a stored snapshot with metadata `meta` answers raft's request (see
/// [`snapshot_for_request`]); decided on the metadata alone, before any data is read.
pub(crate) fn snapshot_serves(meta: &SnapshotMetadata, request_index: u64, to: u64) -> bool {
    meta.index >= request_index && conf_names(meta.get_conf_state(), to)
}

/// Whether `id` is a member (voter or learner, incoming or outgoing) of `cs`.
pub(crate) fn conf_names(cs: &ConfState, id: u64) -> bool {
    cs.voters.contains(&id)
        || cs.learners.contains(&id)
        || cs.voters_outgoing.contains(&id)
        || cs.learners_next.contains(&id)
}

/// Checks an `entries(low, high)` request against a log holding `truncated_index + 1 ..=
/// last_index`: the one bounds rule both stores answer raft-rs with.
pub(crate) fn check_entries_range(
    low: u64,
    high: u64,
    truncated_index: u64,
    last_index: u64,
) -> raft::Result<()> {
    if low <= truncated_index {
        return Err(raft::Error::Store(StorageError::Compacted));
    }
    if high > last_index + 1 || low > high {
        return Err(raft::Error::Store(StorageError::Unavailable));
    }
    Ok(())
}
