//! The data directory's format stamp and layout: a `FORMAT` file that says which encoding of
//! the Raft log and snapshots the directory holds, so a node never misreads data of another
//! format, and the migration of a format-2 directory to format 3.
//!
//! Format 3 (this build): `FORMAT`, `raft-log/` (raft-engine: entries, hard state and
//! metadata, `storage::LogStore`) and `snapshots/` (`snap-<index>-<term>` files,
//! `storage::SnapshotFiles`).
//! Format 2: the same log encoding (request keys as `ninety_engine::RequestKey`, SHA-256
//! fingerprints), stored in sled under `raft/`. It is migrated on start ([`prepare`]): the
//! sled store is copied into a new `raft-log/` and `snapshots/`, made durable, `FORMAT` is
//! restamped 3 (atomically, last), and `raft/` is renamed `raft.format2-migrated/`. A crash
//! before the restamp leaves `FORMAT` at 2 and the next start discards the half-built new
//! store and migrates again; a crash after it leaves only the rename to finish.
//! Format 1 directories have no `FORMAT` file; their log entries would decode as something
//! else, not fail, so the node refuses to start on them and names the procedure
//! (`docs/operations.md`, "Upgrading from format 1").

use crate::error::Error;
use crate::storage::{migrate, LogStore, LogStoreOptions, SledStore};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The format this build reads and writes.
pub const DATA_FORMAT_VERSION: u32 = 3;
/// The format this build migrates from on start.
pub const MIGRATED_FORMAT_VERSION: u32 = 2;
/// The stamp's file name inside the data directory.
pub const FORMAT_FILE: &str = "FORMAT";
/// raft-engine's directory inside the data directory.
pub const RAFT_LOG_DIR: &str = "raft-log";
/// The snapshot files' directory inside the data directory.
pub const SNAPSHOT_DIR: &str = "snapshots";
/// The sled directory of formats 1 and 2 (its presence without a stamp means format 1).
pub const LEGACY_SLED_DIR: &str = "raft";
/// Where a migrated format-2 sled directory is kept (docs/operations.md, "Upgrading").
pub const MIGRATED_SLED_DIR: &str = "raft.format2-migrated";
/// The stamp's first word.
const STAMP_PREFIX: &str = "ninety-data-format";
/// The longest stamp file read, in bytes (a stamp is one short line).
const STAMP_BYTES_MAX: u64 = 256;

/// The store's directories inside a format-3 data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub raft_log: PathBuf,
    pub snapshots: PathBuf,
}

impl Layout {
    /// The layout of `data_dir`.
    pub fn of(data_dir: &Path) -> Layout {
        Layout {
            raft_log: data_dir.join(RAFT_LOG_DIR),
            snapshots: data_dir.join(SNAPSHOT_DIR),
        }
    }
}

/// Makes `data_dir` a format-3 directory and returns its layout: stamps a directory without
/// data, migrates a format-2 one, finishes an interrupted migration. Refuses (with the
/// versions and the operator procedure) any other format, including format 1 (data without
/// a stamp).
pub fn prepare(data_dir: &Path) -> Result<Layout, Error> {
    let stamp = data_dir.join(FORMAT_FILE);
    match read_stamp(&stamp)? {
        Some(DATA_FORMAT_VERSION) => finish_migration(data_dir)?,
        Some(MIGRATED_FORMAT_VERSION) => migrate_format_2(data_dir)?,
        Some(v) => return Err(refusal(data_dir, &v.to_string())),
        None if data_dir.join(LEGACY_SLED_DIR).exists() => {
            return Err(refusal(data_dir, "1 (no FORMAT file)"))
        }
        None => write_stamp(data_dir, DATA_FORMAT_VERSION)?,
    }
    Ok(Layout::of(data_dir))
}

/// Copies the format-2 sled store into a new format-3 store, then restamps (see the module
/// doc for the crash cases).
fn migrate_format_2(data_dir: &Path) -> Result<(), Error> {
    let layout = Layout::of(data_dir);
    // A half-built store of an interrupted migration is discarded and built again.
    for dir in [&layout.raft_log, &layout.snapshots] {
        remove_dir_if_present(dir)?;
    }
    let sled_dir = data_dir.join(LEGACY_SLED_DIR);
    if sled_dir.exists() {
        let from = SledStore::open(&sled_dir)?;
        let mut to = LogStore::open(
            &layout.raft_log,
            &layout.snapshots,
            &LogStoreOptions::default(),
        )?;
        let done = migrate::copy_sled_to_log_store(&from, &mut to)?;
        tracing::info!(
            first_index = done.first_index,
            last_index = done.last_index,
            snapshot_index = ?done.snapshot_index,
            data_dir = %data_dir.display(),
            "migrated the data directory from format 2 (sled) to format 3 (raft-engine)"
        );
    }
    write_stamp(data_dir, DATA_FORMAT_VERSION)?;
    finish_migration(data_dir)
}

/// Moves a migrated sled directory aside (a no-op when there is none).
fn finish_migration(data_dir: &Path) -> Result<(), Error> {
    let (from, to) = (
        data_dir.join(LEGACY_SLED_DIR),
        data_dir.join(MIGRATED_SLED_DIR),
    );
    if !from.exists() {
        return Ok(());
    }
    std::fs::rename(&from, &to).map_err(|e| {
        Error::Storage(format!(
            "moving the migrated {} to {}: {e}",
            from.display(),
            to.display()
        ))
    })?;
    sync_dir(data_dir)
}

fn remove_dir_if_present(dir: &Path) -> Result<(), Error> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::Storage(format!("{}: {e}", dir.display())))
        }
        _ => Ok(()),
    }
}

/// The stamp's version, `None` when there is no stamp.
fn read_stamp(stamp: &Path) -> Result<Option<u32>, Error> {
    let text = match std::fs::File::open(stamp) {
        Ok(f) => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::Read::take(f, STAMP_BYTES_MAX), &mut text)
                .map_err(|e| Error::Storage(format!("{}: {e}", stamp.display())))?;
            text
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::Storage(format!("{}: {e}", stamp.display()))),
    };
    let version = text
        .trim()
        .strip_prefix(STAMP_PREFIX)
        .and_then(|v| v.trim().parse::<u32>().ok())
        .ok_or_else(|| {
            Error::Config(format!(
                "{}: not a data format stamp (expected `{STAMP_PREFIX} <n>`, found {:?})",
                stamp.display(),
                text.chars().take(64).collect::<String>()
            ))
        })?;
    Ok(Some(version))
}

/// Writes the stamp durably and atomically: a temporary file, fsync, rename over `FORMAT`,
/// fsync of the directory. A crash leaves the old stamp or the new one, never half of one.
fn write_stamp(data_dir: &Path, version: u32) -> Result<(), Error> {
    let stamp = data_dir.join(FORMAT_FILE);
    let temp = data_dir.join(format!("{FORMAT_FILE}.tmp"));
    let io = |e: std::io::Error| Error::Storage(format!("{}: {e}", stamp.display()));
    let mut f = std::fs::File::create(&temp).map_err(io)?;
    writeln!(f, "{STAMP_PREFIX} {version}").map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&temp, &stamp).map_err(io)?;
    sync_dir(data_dir)
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::Storage(format!("{}: {e}", dir.display())))
}

fn refusal(data_dir: &Path, found: &str) -> Error {
    Error::Config(format!(
        "data directory {} holds data format {found}; this build reads data format \
         {DATA_FORMAT_VERSION} (and migrates format {MIGRATED_FORMAT_VERSION} on start); request \
         ids and command fingerprints changed in format 2 and it will not misread older data. \
         There is no in-place upgrade from format 1: keep running the old build on it, or \
         start a new cluster of this build on empty data directories and import the region \
         (a single node of a format-{DATA_FORMAT_VERSION} cluster: empty its data directory \
         and add it back with remove-member, add-member). See docs/operations.md, \
         \"Upgrading from format 1\"",
        data_dir.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::RaftStore;
    use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
    use raft::{RaftState, Storage};

    #[test]
    fn stamps_a_new_directory_and_refuses_other_formats() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        prepare(dir).unwrap();
        prepare(dir).unwrap();
        assert_eq!(read_stamp(&dir.join(FORMAT_FILE)).unwrap(), Some(3));
        std::fs::write(dir.join(FORMAT_FILE), "ninety-data-format 1\n").unwrap();
        let e = prepare(dir).unwrap_err().to_string();
        assert!(
            e.contains("format 1;") && e.contains("Upgrading from format 1"),
            "{e}"
        );
        std::fs::remove_file(dir.join(FORMAT_FILE)).unwrap();
        std::fs::create_dir_all(dir.join(LEGACY_SLED_DIR)).unwrap();
        let e = prepare(dir).unwrap_err().to_string();
        assert!(e.contains("format 1 (no FORMAT file)"), "{e}");
        std::fs::write(dir.join(FORMAT_FILE), "garbage").unwrap();
        assert!(prepare(dir).is_err());
    }

    /// A format-2 directory as the previous build leaves it: entries, a snapshot, compacted.
    fn format_2_dir(data_dir: &Path) -> (RaftState, Vec<Entry>, Snapshot) {
        std::fs::write(data_dir.join(FORMAT_FILE), "ninety-data-format 2\n").unwrap();
        let mut sled = SledStore::open(data_dir.join(LEGACY_SLED_DIR)).unwrap();
        sled.initialize(ConfState {
            voters: vec![1, 2, 3],
            ..Default::default()
        })
        .unwrap();
        let entries: Vec<Entry> = (1..=500)
            .map(|index| Entry {
                index,
                term: 2,
                data: index.to_be_bytes().to_vec().into(),
                ..Default::default()
            })
            .collect();
        let hs = HardState {
            term: 2,
            vote: 1,
            commit: 480,
            ..Default::default()
        };
        sled.persist(&entries, Some(&hs)).unwrap();
        let mut snap = Snapshot::default();
        snap.mut_metadata().index = 400;
        snap.mut_metadata().term = 2;
        snap.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
        snap.data = vec![9u8; 50_000].into();
        sled.save_snapshot(&snap).unwrap();
        sled.compact(300).unwrap();
        let state = sled.initial_state().unwrap();
        (state, entries[299..].to_vec(), snap)
    }

    /// `prepare`, once the fixture's sled store has let go of its lock file: sled releases
    /// it from its flusher thread some time after the handle is dropped, so in a test that
    /// opened the store a moment before, the first open may find it still locked (as a
    /// second process would). A migration may be retried at any point (module doc).
    fn prepare_when_unlocked(data_dir: &Path) -> Layout {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match prepare(data_dir) {
                Ok(layout) => return layout,
                Err(e)
                    if e.to_string().contains("could not acquire lock")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => panic!("prepare: {e}"),
            }
        }
    }

    fn check_migrated(data_dir: &Path, (state, entries, snap): &(RaftState, Vec<Entry>, Snapshot)) {
        let layout = prepare_when_unlocked(data_dir);
        assert_eq!(read_stamp(&data_dir.join(FORMAT_FILE)).unwrap(), Some(3));
        assert!(!data_dir.join(LEGACY_SLED_DIR).exists());
        assert!(data_dir.join(MIGRATED_SLED_DIR).exists());
        let store = LogStore::open(
            &layout.raft_log,
            &layout.snapshots,
            &LogStoreOptions::default(),
        )
        .unwrap();
        let got = store.initial_state().unwrap();
        assert_eq!(
            (&got.hard_state, &got.conf_state),
            (&state.hard_state, &state.conf_state)
        );
        assert_eq!(
            (store.first_index().unwrap(), store.last_index().unwrap()),
            (300, 500)
        );
        assert_eq!(store.term(299).unwrap(), 2);
        let ctx = raft::GetEntriesContext::empty(false);
        assert_eq!(&store.entries(300, 501, None, ctx).unwrap(), entries);
        assert_eq!(store.applied_index(), 400);
        assert_eq!(store.stored_snapshot().unwrap().as_ref(), Some(snap));
    }

    #[test]
    fn a_format_2_directory_is_migrated_and_keeps_its_state() {
        let dir = tempfile::tempdir().unwrap();
        let old = format_2_dir(dir.path());
        check_migrated(dir.path(), &old);
        // A second start is a plain format-3 start.
        check_migrated(dir.path(), &old);
    }

    #[test]
    fn an_interrupted_migration_is_discarded_and_done_again() {
        let dir = tempfile::tempdir().unwrap();
        let old = format_2_dir(dir.path());
        // A crash during the copy: FORMAT still says 2, a half-built new store exists.
        let layout = Layout::of(dir.path());
        std::fs::create_dir_all(&layout.raft_log).unwrap();
        std::fs::write(layout.raft_log.join("0000000000000001.raftlog"), b"half").unwrap();
        std::fs::create_dir_all(&layout.snapshots).unwrap();
        std::fs::write(layout.snapshots.join("snap-999-9"), b"half").unwrap();
        check_migrated(dir.path(), &old);
        // A crash after the restamp, before the move: the next start finishes the move.
        std::fs::rename(
            dir.path().join(MIGRATED_SLED_DIR),
            dir.path().join(LEGACY_SLED_DIR),
        )
        .unwrap();
        check_migrated(dir.path(), &old);
    }
}
