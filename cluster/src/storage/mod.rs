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

use raft::eraftpb::Snapshot;
use raft::StorageError;

/// Wraps a storage failure in raft-rs's error type, for `raft::Storage` methods.
pub(crate) fn other(e: impl std::fmt::Display) -> raft::Error {
    raft::Error::Store(StorageError::Other(e.to_string().into()))
}

/// What `raft::Storage::snapshot` returns for a stored snapshot: raft asks for one at least
/// as new as `request_index`; an older one means "not yet", and the node makes a newer one.
pub(crate) fn snapshot_for_request(
    stored: Option<Snapshot>,
    request_index: u64,
) -> raft::Result<Snapshot> {
    match stored {
        Some(s) if s.get_metadata().index >= request_index => Ok(s),
        _ => Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable,
        )),
    }
}
