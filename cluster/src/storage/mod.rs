//! Raft stores: [`MemStore`] (in memory, for tests and the simulator) and [`SledStore`]
//! (durable, for real nodes). Both implement raft-rs `Storage` (reads) and
//! [`crate::io::RaftStore`] (writes) with the same semantics, checked by one conformance
//! suite (`conformance`, run against both).

mod mem;
mod sled_store;

#[cfg(test)]
mod conformance;

pub use mem::MemStore;
pub use sled_store::{SledStore, SLED_CACHE_CAPACITY_BYTES};

use raft::eraftpb::{ConfState, Snapshot};
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
        Some(s)
            if s.get_metadata().index >= request_index
                && conf_names(s.get_metadata().get_conf_state(), to) =>
        {
            Ok(s)
        }
        _ => Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable,
        )),
    }
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
