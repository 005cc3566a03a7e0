//! The copy of a format-2 store ([`SledStore`]) into a [`LogStore`]: what the data directory
//! migration (`runtime::data_format`) does with the Raft state.
//!
//! Everything the node restarts from is copied: the hard state, the configuration, the
//! truncation point (index and term of the last discarded entry), every live entry and the
//! stored snapshot (whose index is the applied index). The copy reads the old store only
//! through `raft::Storage` and `RaftStore::stored_snapshot`, so it sees exactly what a node
//! restarted on it would see.

use super::{LogStore, SledStore};
use crate::error::Error;
use crate::io::RaftStore;
use raft::{GetEntriesContext, Storage};

/// Entries copied per durable write during a migration.
const MIGRATE_CHUNK_ENTRIES: u64 = 1024;

/// What a migration copied, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    pub first_index: u64,
    pub last_index: u64,
    pub snapshot_index: Option<u64>,
}

/// Copies `from` into the empty store `to`; returns when the copy is durable. A crash part
/// way leaves `to` half built: the caller discards it and starts again.
pub fn copy_sled_to_log_store(from: &SledStore, to: &mut LogStore) -> Result<Migrated, Error> {
    let read = |e: raft::Error| Error::Storage(format!("reading the format-2 store: {e}"));
    let state = from.initial_state().map_err(read)?;
    let first = from.first_index().map_err(read)?;
    let last = from.last_index().map_err(read)?;
    let truncated = (first - 1, from.term(first - 1).map_err(read)?);
    let snapshot = from.stored_snapshot()?;
    to.import_base(
        truncated,
        snapshot.as_ref(),
        &state.conf_state,
        &state.hard_state,
    )?;
    let mut next = first;
    while next <= last {
        let high = last.min(next + MIGRATE_CHUNK_ENTRIES - 1) + 1;
        let entries = from
            .entries(next, high, None, GetEntriesContext::empty(false))
            .map_err(read)?;
        to.persist(&entries, None)?;
        next = high;
    }
    Ok(Migrated {
        first_index: first,
        last_index: last,
        snapshot_index: snapshot.map(|s| s.get_metadata().index),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::LogStoreOptions;
    use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: vec![index as u8; 100].into(),
            ..Default::default()
        }
    }

    /// The same state through `raft::Storage` and `RaftStore`, entry by entry.
    fn same_state(a: &impl RaftStore, b: &impl RaftStore) {
        let (sa, sb) = (a.initial_state().unwrap(), b.initial_state().unwrap());
        assert_eq!(sa.hard_state, sb.hard_state);
        assert_eq!(sa.conf_state, sb.conf_state);
        let (first, last) = (a.first_index().unwrap(), a.last_index().unwrap());
        assert_eq!(
            (first, last),
            (b.first_index().unwrap(), b.last_index().unwrap())
        );
        assert_eq!(a.term(first - 1).unwrap(), b.term(first - 1).unwrap());
        let ctx = || GetEntriesContext::empty(false);
        let ea = a.entries(first, last + 1, None, ctx()).unwrap();
        assert_eq!(ea, b.entries(first, last + 1, None, ctx()).unwrap());
        assert_eq!(a.applied_index(), b.applied_index());
        assert_eq!(a.stored_snapshot().unwrap(), b.stored_snapshot().unwrap());
    }

    #[test]
    fn a_format_2_store_with_entries_and_a_snapshot_copies_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let mut sled = SledStore::open(dir.path().join("raft")).unwrap();
        sled.initialize(ConfState {
            voters: vec![1, 2, 3],
            ..Default::default()
        })
        .unwrap();
        let ents: Vec<Entry> = (1..=3000).map(|i| entry(i, 1 + i / 1000)).collect();
        let hs = HardState {
            term: 4,
            vote: 2,
            commit: 2900,
            ..Default::default()
        };
        sled.persist(&ents, Some(&hs)).unwrap();
        let mut snap = Snapshot::default();
        snap.mut_metadata().index = 2500;
        snap.mut_metadata().term = 3;
        snap.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
        snap.data = vec![7u8; 100_000].into();
        sled.save_snapshot(&snap).unwrap();
        sled.compact(2000).unwrap();
        let opts = LogStoreOptions::default();
        let (log, snaps) = (dir.path().join("raft-log"), dir.path().join("snapshots"));
        {
            let mut to = LogStore::open(&log, &snaps, &opts).unwrap();
            let done = copy_sled_to_log_store(&sled, &mut to).unwrap();
            assert_eq!((done.first_index, done.last_index), (2000, 3000));
            same_state(&sled, &to);
        }
        let reopened = LogStore::open(&log, &snaps, &opts).unwrap();
        same_state(&sled, &reopened);
    }
}
