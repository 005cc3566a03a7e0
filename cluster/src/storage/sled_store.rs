//! The format-2 Raft store on sled 0.34.7, kept only to migrate a format-2 data directory
//! (`storage::migrate`, `runtime::data_format`); real nodes run on `LogStore`.
//!
//! Why it was replaced (docs/storage.md): sled keeps a value over its blob threshold as
//! part of a whole-leaf blob file, and rewrites the leaf (so the ~11 MB `m:snapshot` value)
//! into a NEW blob each time the leaf is consolidated after a few updates of any key in it
//! (`m:hard_state` on every persist, entry keys while the tree is one leaf): an idle node
//! wrote one snapshot-sized blob every ~4 entries and never freed the old ones. And every
//! durable write cost a flush plus an fsync of every file in the directory.
//!
//! # Layout
//! One sled tree (the default one), so that every write below is ONE atomic `sled::Batch`:
//! - `e` + big-endian index → `Entry` (protobuf)
//! - `m:hard_state`, `m:conf_state` → protobuf; `m:truncated` → index,term of the last
//!   discarded entry (16 bytes BE); `m:snapshot` → the full `Snapshot` (metadata + data);
//!   `m:applied` → the index the stored snapshot's state machine image reflects.
//!
//! # Durability rule (exactly)
//! A call returns `Ok` only after: (1) its batch is applied to sled atomically, (2)
//! `Db::flush()` wrote sled's log (sled 0.34.7 then only waits on `sync_file_range`, which
//! does not flush the disk cache nor file metadata, sled issue #1452), and (3) every regular
//! file in the sled directory (and `blobs/`) is `fsync`ed and the directory itself is
//! `fsync`ed. Hence, after a crash:
//! - `persist` (entries + hard state), `apply_snapshot`, `save_snapshot`, `compact`,
//!   `initialize`: all-or-nothing, and present once the call returned.
//! - `set_commit` (from LightReady) is written to sled but NOT synced: it becomes durable
//!   with the next synced call. A crash may lose it; the commit index then goes back to a
//!   value that is still >= `applied` (snapshots write `max(commit, snapshot index)`), and
//!   Raft re-learns the commit index from the leader. (The node makes the commit index
//!   durable itself, through `persist`, when it applies a configuration change: see
//!   `node::apply`.)
//!
//! sled's background flusher is disabled (`flush_every_ms(None)`): writes become durable only
//! at the points above, and no extra thread runs per node. The cache is bounded by
//! [`SLED_CACHE_CAPACITY_BYTES`] so several nodes fit on one machine.

use super::mem::{check_append, check_compact, check_local_snapshot, check_snapshot_newer};
use super::{other, snapshot_for_request};
use crate::error::Error;
use crate::io::RaftStore;
use protobuf::Message as PbMessage;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};
use std::fs::File;
use std::path::{Path, PathBuf};

/// sled page cache per node: small, so a 3-node test or a multi-node dev box fits in memory.
pub const SLED_CACHE_CAPACITY_BYTES: u64 = 64 * 1024 * 1024;

const KEY_HARD_STATE: &[u8] = b"m:hard_state";
const KEY_CONF_STATE: &[u8] = b"m:conf_state";
const KEY_TRUNCATED: &[u8] = b"m:truncated";
const KEY_SNAPSHOT: &[u8] = b"m:snapshot";
const KEY_APPLIED: &[u8] = b"m:applied";
const ENTRY_PREFIX: u8 = b'e';

fn entry_key(index: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = ENTRY_PREFIX;
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

/// Durable store; metadata is cached in memory, entries are read from sled.
pub struct SledStore {
    db: sled::Db,
    dir: PathBuf,
    hard_state: HardState,
    conf_state: ConfState,
    truncated_index: u64,
    truncated_term: u64,
    last_index: u64,
    snapshot_index: u64,
    applied: u64,
}

impl SledStore {
    /// Opens (or creates) the store in directory `dir`. Errors name the directory.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, Error> {
        let dir = dir.as_ref().to_path_buf();
        let db = sled::Config::new()
            .path(&dir)
            .cache_capacity(SLED_CACHE_CAPACITY_BYTES)
            .flush_every_ms(None)
            .open()
            .map_err(|e| at(&dir, e))?;
        let mut store = SledStore {
            db,
            dir,
            hard_state: HardState::default(),
            conf_state: ConfState::default(),
            truncated_index: 0,
            truncated_term: 0,
            last_index: 0,
            snapshot_index: 0,
            applied: 0,
        };
        store.load().map_err(|e| at(&store.dir, e))?;
        Ok(store)
    }

    fn load(&mut self) -> Result<(), Error> {
        self.hard_state = self.get_pb(KEY_HARD_STATE)?.unwrap_or_default();
        self.conf_state = self.get_pb(KEY_CONF_STATE)?.unwrap_or_default();
        let snap: Option<Snapshot> = self.get_pb(KEY_SNAPSHOT)?;
        self.snapshot_index = snap.map_or(0, |s| s.get_metadata().index);
        (self.truncated_index, self.truncated_term) = self.get_pair(KEY_TRUNCATED)?;
        self.applied = self.get_pair(KEY_APPLIED)?.0;
        self.last_index = self.scan_last_index()?;
        Ok(())
    }

    fn scan_last_index(&self) -> Result<u64, Error> {
        let last = self
            .db
            .scan_prefix([ENTRY_PREFIX])
            .next_back()
            .transpose()?;
        match last {
            Some((key, _)) => decode_index(&key),
            None => Ok(self.truncated_index),
        }
    }

    fn get_pb<T: PbMessage>(&self, key: &[u8]) -> Result<Option<T>, Error> {
        match self.db.get(key)? {
            Some(bytes) => Ok(Some(T::parse_from_bytes(&bytes)?)),
            None => Ok(None),
        }
    }

    fn get_pair(&self, key: &[u8]) -> Result<(u64, u64), Error> {
        match self.db.get(key)? {
            Some(b) if b.len() == 16 => Ok((be_u64(&b[..8])?, be_u64(&b[8..])?)),
            Some(_) => Err(Error::Storage(format!("bad value length for {key:?}"))),
            None => Ok((0, 0)),
        }
    }

    fn read_entry(&self, index: u64) -> raft::Result<Entry> {
        let bytes = self.db.get(entry_key(index)).map_err(other)?;
        let bytes = bytes.ok_or(raft::Error::Store(StorageError::Unavailable))?;
        Entry::parse_from_bytes(&bytes).map_err(other)
    }

    /// Applies `batch` atomically and makes it durable (see the module doc).
    fn commit_durably(&self, batch: sled::Batch) -> Result<(), Error> {
        self.db.apply_batch(batch).map_err(|e| at(&self.dir, e))?;
        self.db.flush().map_err(|e| at(&self.dir, e))?;
        fsync_dir_tree(&self.dir)
    }

    fn put_hard_state(&self, batch: &mut sled::Batch, hs: &HardState) -> Result<(), Error> {
        batch.insert(KEY_HARD_STATE, hs.write_to_bytes()?);
        Ok(())
    }

    /// Removes entries with index in `[from, to]` from sled.
    fn remove_range(&self, batch: &mut sled::Batch, from: u64, to: u64) {
        for index in from..=to {
            batch.remove(&entry_key(index)[..]);
        }
    }

    /// Writes the snapshot, conf state, applied index and commit floor into `batch`.
    fn put_snapshot(&self, batch: &mut sled::Batch, snap: &Snapshot) -> Result<HardState, Error> {
        let meta = snap.get_metadata();
        let mut hs = self.hard_state.clone();
        hs.commit = hs.commit.max(meta.index);
        self.put_hard_state(batch, &hs)?;
        batch.insert(KEY_SNAPSHOT, snap.write_to_bytes()?);
        batch.insert(KEY_CONF_STATE, meta.get_conf_state().write_to_bytes()?);
        batch.insert(KEY_APPLIED, pair(meta.index, meta.term).to_vec());
        Ok(hs)
    }

    fn cache_snapshot(&mut self, snap: &Snapshot, hs: HardState) {
        let meta = snap.get_metadata();
        self.hard_state = hs;
        self.conf_state = meta.get_conf_state().clone();
        self.snapshot_index = meta.index;
        self.applied = meta.index;
    }
}

/// A storage error naming the file or directory it happened on.
fn at(path: &Path, e: impl std::fmt::Display) -> Error {
    let e = e.to_string();
    // Errors already built by this module name their path (and carry the prefix once).
    let e = e.strip_prefix("storage: ").unwrap_or(&e);
    Error::Storage(format!("{}: {e}", path.display()))
}

fn be_u64(b: &[u8]) -> Result<u64, Error> {
    let arr: [u8; 8] = b
        .try_into()
        .map_err(|_| Error::Storage("bad u64 length".into()))?;
    Ok(u64::from_be_bytes(arr))
}

fn decode_index(key: &[u8]) -> Result<u64, Error> {
    match key.split_first() {
        Some((&ENTRY_PREFIX, rest)) => be_u64(rest),
        _ => Err(Error::Storage("bad entry key".into())),
    }
}

fn pair(a: u64, b: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&a.to_be_bytes());
    out[8..].copy_from_slice(&b.to_be_bytes());
    out
}

/// fsyncs every regular file under `dir` (one level of subdirectories, for `blobs/`) and the
/// directories themselves, so file contents, sizes and newly created names are on disk.
///
/// sled's background threads delete old blob and segment files concurrently, so a name
/// listed here may be gone a moment later: a file that no longer exists needs no sync
/// (its removal is made durable by the directory's sync), so `NotFound` is skipped.
fn fsync_dir_tree(dir: &Path) -> Result<(), Error> {
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    for entry in std::fs::read_dir(dir).map_err(|e| at(dir, e))? {
        let entry = entry.map_err(|e| at(dir, e))?;
        let kind = match entry.file_type() {
            Ok(k) => k,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(at(&entry.path(), e)),
        };
        if kind.is_dir() {
            match fsync_dir_tree(&entry.path()) {
                Err(_) if !entry.path().exists() => {}
                other => other?,
            }
            continue;
        }
        let synced = if kind.is_file() {
            File::open(entry.path()).and_then(|f| f.sync_data())
        } else {
            Ok(())
        };
        match synced {
            Err(e) if gone(&e) => {}
            other => other.map_err(|e| at(&entry.path(), e))?,
        }
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| at(dir, e))
}

impl raft::Storage for SledStore {
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
        super::check_entries_range(low, high, self.truncated_index, self.last_index)?;
        let max_size = max_size.into();
        let mut out = Vec::with_capacity((high - low) as usize);
        let mut size = 0u64;
        for index in low..high {
            let e = self.read_entry(index)?;
            size += u64::from(e.compute_size());
            // Stop reading early once over the limit; limit_size keeps at least one entry.
            let over = max_size.is_some_and(|m| size > m);
            out.push(e);
            if over {
                break;
            }
        }
        raft::util::limit_size(&mut out, max_size);
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.truncated_index {
            return Ok(self.truncated_term);
        }
        if idx < self.truncated_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last_index {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(self.read_entry(idx)?.term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.truncated_index + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last_index)
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let stored = self.stored_snapshot().map_err(other)?;
        snapshot_for_request(stored, request_index, to)
    }
}

impl RaftStore for SledStore {
    fn initialize(&mut self, conf_state: ConfState) -> Result<(), Error> {
        let mut batch = sled::Batch::default();
        batch.insert(KEY_CONF_STATE, conf_state.write_to_bytes()?);
        self.commit_durably(batch)?;
        self.conf_state = conf_state;
        Ok(())
    }

    fn persist(&mut self, entries: &[Entry], hard_state: Option<&HardState>) -> Result<(), Error> {
        let mut batch = sled::Batch::default();
        let mut new_last = self.last_index;
        if let (Some(first), Some(last)) = (entries.first(), entries.last()) {
            check_append(first.index, self.truncated_index + 1, self.last_index)?;
            // Drop the conflicting suffix that the new entries do not overwrite.
            self.remove_range(&mut batch, last.index + 1, self.last_index);
            for e in entries {
                batch.insert(&entry_key(e.index)[..], e.write_to_bytes()?);
            }
            new_last = last.index;
        }
        if let Some(hs) = hard_state {
            self.put_hard_state(&mut batch, hs)?;
        }
        self.commit_durably(batch)?;
        self.last_index = new_last;
        if let Some(hs) = hard_state {
            self.hard_state = hs.clone();
        }
        Ok(())
    }

    fn set_commit(&mut self, commit: u64) -> Result<(), Error> {
        if commit <= self.hard_state.commit {
            return Ok(());
        }
        let mut hs = self.hard_state.clone();
        hs.commit = commit;
        self.db.insert(KEY_HARD_STATE, hs.write_to_bytes()?)?;
        self.hard_state = hs;
        Ok(())
    }

    fn apply_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), Error> {
        let meta = snapshot.get_metadata();
        check_snapshot_newer(meta.index, self.truncated_index)?;
        let mut batch = sled::Batch::default();
        self.remove_range(&mut batch, self.truncated_index + 1, self.last_index);
        batch.insert(KEY_TRUNCATED, pair(meta.index, meta.term).to_vec());
        let mut hs = self.put_snapshot(&mut batch, snapshot)?;
        hs.term = hs.term.max(meta.term);
        self.put_hard_state(&mut batch, &hs)?;
        self.commit_durably(batch)?;
        self.cache_snapshot(snapshot, hs);
        (self.truncated_index, self.truncated_term) = (meta.index, meta.term);
        self.last_index = meta.index;
        Ok(())
    }

    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), Error> {
        let index = snapshot.get_metadata().index;
        check_local_snapshot(index, self.truncated_index, self.last_index)?;
        let mut batch = sled::Batch::default();
        let hs = self.put_snapshot(&mut batch, snapshot)?;
        self.commit_durably(batch)?;
        self.cache_snapshot(snapshot, hs);
        Ok(())
    }

    fn compact(&mut self, index: u64) -> Result<(), Error> {
        if !check_compact(index, self.truncated_index + 1, self.snapshot_index)? {
            return Ok(());
        }
        let term =
            raft::Storage::term(self, index - 1).map_err(|e| Error::Storage(e.to_string()))?;
        let mut batch = sled::Batch::default();
        self.remove_range(&mut batch, self.truncated_index + 1, index - 1);
        batch.insert(KEY_TRUNCATED, pair(index - 1, term).to_vec());
        self.commit_durably(batch)?;
        (self.truncated_index, self.truncated_term) = (index - 1, term);
        Ok(())
    }

    fn stored_snapshot(&self) -> Result<Option<Snapshot>, Error> {
        self.get_pb(KEY_SNAPSHOT)
    }

    fn applied_index(&self) -> u64 {
        self.applied
    }
}
