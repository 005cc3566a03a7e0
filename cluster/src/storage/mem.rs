//! In-memory Raft store: the reference implementation of the store semantics, used by tests
//! and the deterministic simulator. Nothing survives the process.

use super::snapshot_for_request;
use crate::error::Error;
use crate::io::RaftStore;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};

/// In-memory store. `entries[i]` has index `truncated_index + 1 + i`.
#[derive(Default, Clone)]
pub struct MemStore {
    hard_state: HardState,
    conf_state: ConfState,
    entries: Vec<Entry>,
    truncated_index: u64,
    truncated_term: u64,
    snapshot: Option<Snapshot>,
    applied: u64,
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn first(&self) -> u64 {
        self.truncated_index + 1
    }

    fn last(&self) -> u64 {
        self.truncated_index + self.entries.len() as u64
    }

    fn offset(&self, index: u64) -> usize {
        (index - self.first()) as usize
    }
}

impl raft::Storage for MemStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        super::check_entries_range(low, high, self.truncated_index, self.last())?;
        let mut out = self.entries[self.offset(low)..self.offset(high)].to_vec();
        raft::util::limit_size(&mut out, max_size.into());
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.truncated_index {
            return Ok(self.truncated_term);
        }
        if idx < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(self.entries[self.offset(idx)].term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        snapshot_for_request(self.snapshot.clone(), request_index, to)
    }
}

impl RaftStore for MemStore {
    fn initialize(&mut self, conf_state: ConfState) -> Result<(), Error> {
        self.conf_state = conf_state;
        Ok(())
    }

    fn persist(&mut self, entries: &[Entry], hard_state: Option<&HardState>) -> Result<(), Error> {
        if let Some(first) = entries.first() {
            check_append(first.index, self.first(), self.last())?;
            self.entries.truncate(self.offset(first.index));
            self.entries.extend_from_slice(entries);
        }
        if let Some(hs) = hard_state {
            self.hard_state = hs.clone();
        }
        Ok(())
    }

    fn set_commit(&mut self, commit: u64) -> Result<(), Error> {
        self.hard_state.commit = self.hard_state.commit.max(commit);
        Ok(())
    }

    fn apply_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), Error> {
        let meta = snapshot.get_metadata();
        check_snapshot_newer(meta.index, self.truncated_index)?;
        self.entries.clear();
        self.truncated_index = meta.index;
        self.truncated_term = meta.term;
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        self.conf_state = meta.get_conf_state().clone();
        self.applied = meta.index;
        self.snapshot = Some(snapshot.clone());
        Ok(())
    }

    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), Error> {
        let meta = snapshot.get_metadata();
        check_local_snapshot(meta.index, self.truncated_index, self.last())?;
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        self.conf_state = meta.get_conf_state().clone();
        self.applied = meta.index;
        self.snapshot = Some(snapshot.clone());
        Ok(())
    }

    fn compact(&mut self, index: u64) -> Result<(), Error> {
        let snap_index = self.snapshot.as_ref().map_or(0, |s| s.get_metadata().index);
        if !check_compact(index, self.first(), snap_index)? {
            return Ok(());
        }
        let term = raft::Storage::term(self, index - 1).map_err(super::other)?;
        self.entries.drain(..self.offset(index));
        self.truncated_index = index - 1;
        self.truncated_term = term;
        Ok(())
    }

    fn stored_snapshot(&self) -> Result<Option<Snapshot>, Error> {
        Ok(self.snapshot.clone())
    }

    fn applied_index(&self) -> u64 {
        self.applied
    }
}

/// Appends must start inside the live log or right after it (Raft never leaves gaps).
pub(crate) fn check_append(index: u64, first: u64, last: u64) -> Result<(), Error> {
    if index < first || index > last + 1 {
        return Err(Error::Storage(format!(
            "append at {index} outside live log [{first}, {}]",
            last + 1
        )));
    }
    Ok(())
}

/// A received snapshot older than what we already discarded would lose data.
pub(crate) fn check_snapshot_newer(index: u64, truncated: u64) -> Result<(), Error> {
    if index < truncated {
        return Err(Error::Storage(format!(
            "snapshot at {index} is older than compacted index {truncated}"
        )));
    }
    Ok(())
}

/// A local snapshot must cover an index we still hold (it is taken at the applied index).
pub(crate) fn check_local_snapshot(index: u64, truncated: u64, last: u64) -> Result<(), Error> {
    if index < truncated || index > last {
        return Err(Error::Storage(format!(
            "local snapshot at {index} outside log [{truncated}, {last}]"
        )));
    }
    Ok(())
}

/// Returns whether compaction to `index` has work to do; errors if it would discard entries
/// not covered by the stored snapshot (a follower could then never catch up).
pub(crate) fn check_compact(index: u64, first: u64, snap_index: u64) -> Result<bool, Error> {
    if index <= first {
        return Ok(false);
    }
    if index > snap_index + 1 {
        return Err(Error::Storage(format!(
            "compact to {index} beyond snapshot index {snap_index}"
        )));
    }
    Ok(true)
}
