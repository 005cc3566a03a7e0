//! One conformance suite for every [`RaftStore`]: each check is a generic function;
//! [`every_check`] runs them all on fresh stores from a constructor, and [`reopen`] checks
//! that a store reopened on the same disk sees everything. Inside this crate the
//! `conformance!` macro instantiates them as separate tests for `MemStore`, `LogStore` and
//! `SledStore`; other crates (the simulator's `SimStore`) reach it through the cargo feature
//! `conformance`.

use crate::io::RaftStore;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, Storage, StorageError};

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: vec![index as u8; 4].into(),
        ..Default::default()
    }
}

fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    range.map(|i| entry(i, term)).collect()
}

fn read(s: &impl Storage, low: u64, high: u64) -> raft::Result<Vec<Entry>> {
    s.entries(low, high, None, GetEntriesContext::empty(false))
}

fn terms(s: &impl Storage, low: u64, high: u64) -> Vec<(u64, u64)> {
    read(s, low, high)
        .unwrap()
        .iter()
        .map(|e| (e.index, e.term))
        .collect()
}

fn snapshot(index: u64, term: u64, voters: Vec<u64>) -> Snapshot {
    let mut s = Snapshot::default();
    s.mut_metadata().index = index;
    s.mut_metadata().term = term;
    s.mut_metadata().mut_conf_state().voters = voters;
    s.data = b"state".to_vec().into();
    s
}

pub fn append_overwrites_conflicting_suffix<S: RaftStore>(mut s: S) {
    assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (1, 0));
    s.persist(&entries(1..=5, 1), None).unwrap();
    assert_eq!(s.last_index().unwrap(), 5);
    // A new leader overwrites 3.. with a shorter suffix of term 2: 4 and 5 must vanish.
    s.persist(&entries(3..=3, 2), None).unwrap();
    assert_eq!(s.last_index().unwrap(), 3);
    assert_eq!(terms(&s, 1, 4), vec![(1, 1), (2, 1), (3, 2)]);
    assert!(matches!(
        s.term(4),
        Err(raft::Error::Store(StorageError::Unavailable))
    ));
    s.persist(&entries(4..=6, 2), None).unwrap();
    assert_eq!(s.term(6).unwrap(), 2);
    // A gap is refused rather than silently corrupting the log.
    assert!(s.persist(&entries(9..=9, 2), None).is_err());
    // max_size keeps at least one entry.
    let one = s.entries(1, 7, Some(1), GetEntriesContext::empty(false));
    assert_eq!(one.unwrap().len(), 1);
}

pub fn compaction<S: RaftStore>(mut s: S) {
    s.persist(&entries(1..=10, 3), None).unwrap();
    // Compaction beyond the stored snapshot would lose entries no snapshot covers.
    assert!(s.compact(5).is_err());
    s.save_snapshot(&snapshot(6, 3, vec![1])).unwrap();
    s.compact(5).unwrap();
    assert_eq!(s.first_index().unwrap(), 5);
    assert_eq!(s.last_index().unwrap(), 10);
    assert_eq!(
        s.term(4).unwrap(),
        3,
        "term of the last discarded entry is kept"
    );
    assert!(matches!(
        s.term(3),
        Err(raft::Error::Store(StorageError::Compacted))
    ));
    assert!(matches!(
        read(&s, 4, 6),
        Err(raft::Error::Store(StorageError::Compacted))
    ));
    assert_eq!(terms(&s, 5, 7), vec![(5, 3), (6, 3)]);
    s.compact(3).unwrap(); // older index: no-op
    assert_eq!(s.first_index().unwrap(), 5);
    assert_eq!(s.applied_index(), 6);
    assert!(
        s.snapshot(7, 2).is_err(),
        "stored snapshot too old for request"
    );
    assert_eq!(s.snapshot(6, 1).unwrap().get_metadata().index, 6);
    // raft-rs ignores a snapshot whose configuration does not name the receiver: "not yet".
    assert!(matches!(
        s.snapshot(6, 2),
        Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable
        ))
    ));
}

pub fn hard_state<S: RaftStore>(mut s: S) {
    let hs = HardState {
        term: 4,
        vote: 2,
        commit: 3,
        ..Default::default()
    };
    s.persist(&entries(1..=3, 4), Some(&hs)).unwrap();
    assert_eq!(s.initial_state().unwrap().hard_state, hs);
    s.set_commit(2).unwrap(); // never goes back
    assert_eq!(s.initial_state().unwrap().hard_state.commit, 3);
    s.set_commit(5).unwrap();
    assert_eq!(s.initial_state().unwrap().hard_state.commit, 5);
}

pub fn snapshot_install<S: RaftStore>(mut s: S) {
    let cs = ConfState {
        voters: vec![1, 2, 3],
        ..Default::default()
    };
    s.initialize(cs.clone()).unwrap();
    assert_eq!(s.initial_state().unwrap().conf_state, cs);
    s.persist(&entries(1..=4, 1), None).unwrap();
    s.apply_snapshot(&snapshot(20, 5, vec![1, 2])).unwrap();
    assert_eq!(s.first_index().unwrap(), 21);
    assert_eq!(s.last_index().unwrap(), 20);
    assert_eq!(s.term(20).unwrap(), 5);
    let state = s.initial_state().unwrap();
    assert_eq!(state.conf_state.voters, vec![1, 2]);
    assert_eq!((state.hard_state.term, state.hard_state.commit), (5, 20));
    assert_eq!(s.applied_index(), 20);
    let stored = s.stored_snapshot().unwrap().unwrap();
    assert_eq!(stored.get_data(), b"state");
    s.persist(&entries(21..=22, 5), None).unwrap();
    assert_eq!(terms(&s, 21, 23), vec![(21, 5), (22, 5)]);
    // An older snapshot than what was discarded is refused.
    assert!(s.apply_snapshot(&snapshot(10, 4, vec![1])).is_err());
}

/// Writes through one handle, drops it, and checks a reopened handle sees everything.
pub fn reopen<S: RaftStore>(open: impl Fn() -> S) {
    {
        let mut s = open();
        let mut hs = HardState::default();
        (hs.term, hs.vote, hs.commit) = (2, 1, 6);
        s.persist(&entries(1..=8, 2), Some(&hs)).unwrap();
        s.save_snapshot(&snapshot(6, 2, vec![1, 2, 3])).unwrap();
        s.compact(4).unwrap();
        s.persist(&entries(8..=8, 3), None).unwrap();
    }
    let s = open();
    let state = s.initial_state().unwrap();
    assert_eq!((state.hard_state.term, state.hard_state.vote), (2, 1));
    assert_eq!(state.hard_state.commit, 6);
    assert_eq!(state.conf_state.voters, vec![1, 2, 3]);
    assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (4, 8));
    assert_eq!(s.term(3).unwrap(), 2);
    assert_eq!(s.term(8).unwrap(), 3);
    assert_eq!(s.applied_index(), 6);
    assert_eq!(s.stored_snapshot().unwrap().unwrap().get_data(), b"state");
}

/// Runs every check of the suite, each on a fresh store from `make`.
pub fn every_check<S: RaftStore>(mut make: impl FnMut() -> S) {
    append_overwrites_conflicting_suffix(make());
    compaction(make());
    hard_state(make());
    snapshot_install(make());
    snapshot_replaces_the_whole_log(make());
}

/// A received snapshot replaces the whole log, also when it lies inside it, and the log
/// goes on from the snapshot.
pub fn snapshot_replaces_the_whole_log<S: RaftStore>(mut s: S) {
    s.persist(&entries(1..=10, 1), None).unwrap();
    // Leader's history differs at 6: its snapshot at 6 (term 2) replaces everything.
    s.apply_snapshot(&snapshot(6, 2, vec![1, 2, 3])).unwrap();
    assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (7, 6));
    assert!(matches!(
        s.term(7),
        Err(raft::Error::Store(StorageError::Unavailable))
    ));
    s.persist(&entries(7..=8, 2), None).unwrap();
    assert_eq!(terms(&s, 7, 9), vec![(7, 2), (8, 2)]);
    assert_eq!(s.snapshot(6, 3).unwrap().get_metadata().index, 6);
    // A newer local snapshot replaces the stored one; the older one is not served.
    s.save_snapshot(&snapshot(8, 2, vec![1, 2, 3])).unwrap();
    assert_eq!(
        s.stored_snapshot().unwrap().unwrap().get_metadata().index,
        8
    );
    assert_eq!(s.applied_index(), 8);
}

#[cfg(test)]
macro_rules! conformance {
    ($modname:ident, $make:expr) => {
        mod $modname {
            #[test]
            fn append_overwrites_conflicting_suffix() {
                let (store, _guard) = $make;
                super::append_overwrites_conflicting_suffix(store);
            }
            #[test]
            fn compaction() {
                let (store, _guard) = $make;
                super::compaction(store);
            }
            #[test]
            fn hard_state() {
                let (store, _guard) = $make;
                super::hard_state(store);
            }
            #[test]
            fn snapshot_install() {
                let (store, _guard) = $make;
                super::snapshot_install(store);
            }
            #[test]
            fn snapshot_replaces_the_whole_log() {
                let (store, _guard) = $make;
                super::snapshot_replaces_the_whole_log(store);
            }
        }
    };
}

// Each constructor returns (store, guard); the guard (a tempdir) outlives the checks.
#[cfg(test)]
conformance!(mem, (crate::storage::MemStore::new(), ()));
#[cfg(test)]
conformance!(log, {
    let dir = tempfile::tempdir().unwrap();
    (super::open_log_store(dir.path()), dir)
});
#[cfg(test)]
conformance!(sled, {
    let dir = tempfile::tempdir().unwrap();
    (crate::storage::SledStore::open(dir.path()).unwrap(), dir)
});

#[cfg(test)]
fn open_log_store(dir: &std::path::Path) -> crate::storage::LogStore {
    let opts = crate::storage::LogStoreOptions::default();
    crate::storage::LogStore::open(dir.join("raft-log"), dir.join("snapshots"), &opts).unwrap()
}

#[test]
fn log_store_reopen_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    reopen(|| open_log_store(dir.path()));
}

#[test]
fn every_check_runs_on_mem_store() {
    every_check(crate::storage::MemStore::new);
}

#[test]
fn sled_reopen_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    reopen(|| crate::storage::SledStore::open(dir.path()).unwrap());
}
