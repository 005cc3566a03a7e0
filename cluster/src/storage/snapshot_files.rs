//! Snapshots as files: one file per snapshot, `snap-<index>-<term>`, in a directory of their
//! own, never inside the log store.
//!
//! # Writing (crash-safe)
//! A snapshot is written to `snap-<index>-<term>.tmp`, `fsync`ed, renamed to its final name,
//! and the directory is `fsync`ed; only then does [`SnapshotFiles::write`] return. A crash
//! before the rename leaves a temporary file, deleted at the next open; a crash after it
//! leaves a complete file that the log store's metadata may not name yet (an orphan: the
//! save never returned), deleted by [`SnapshotFiles::retain`] at the next open.
//!
//! # File format
//! A 32-byte header, then the body (the whole `eraftpb::Snapshot` protobuf: metadata and
//! data): magic `NINETYSN` (8 bytes), format version (u32 LE), reserved (u32), body length
//! (u64 LE), CRC-32 of the body (u32 LE), CRC-32 of the 28 header bytes before it (u32 LE).
//! A file whose header or body does not check is damaged: [`SnapshotFiles::read`] names it.
//!
//! # Keeping
//! The newest [`SNAPSHOT_FILES_KEPT`] files are kept, so a damaged newest file can fall back
//! to the one before (the log store decides whether its log still covers the gap). Older
//! ones are deleted only after the newer one is durable and named by the store's metadata.
//!
//! Data is read from disk only when asked (a peer needs the snapshot, or a restart), never
//! cached in memory.

use crate::error::Error;
use protobuf::Message as PbMessage;
use raft::eraftpb::Snapshot;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// How many snapshot files are kept: the newest and one to fall back to.
pub const SNAPSHOT_FILES_KEPT: usize = 2;
/// The largest snapshot body read back, bytes (a GBA region is ~11 MB, 2,000 wards × 4,096
/// beds ~86 MB): a header claiming more is damaged, not an allocation to attempt.
pub const SNAPSHOT_FILE_BYTES_MAX: u64 = 4 * 1024 * 1024 * 1024;

const MAGIC: &[u8; 8] = b"NINETYSN";
const FILE_FORMAT_VERSION: u32 = 1;
const HEADER_BYTES: usize = 32;
/// Read size while verifying a file, bytes.
const VERIFY_CHUNK_BYTES: usize = 1024 * 1024;
const FILE_PREFIX: &str = "snap-";
const TEMP_SUFFIX: &str = ".tmp";

/// Which snapshot a file holds: its index and term (also its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SnapshotId {
    pub index: u64,
    pub term: u64,
}

impl SnapshotId {
    /// The id of `snap`, from its metadata.
    pub fn of(snap: &Snapshot) -> SnapshotId {
        let meta = snap.get_metadata();
        SnapshotId {
            index: meta.index,
            term: meta.term,
        }
    }

    fn file_name(self) -> String {
        format!("{FILE_PREFIX}{}-{}", self.index, self.term)
    }

    fn parse(name: &str) -> Option<SnapshotId> {
        let (index, term) = name.strip_prefix(FILE_PREFIX)?.split_once('-')?;
        Some(SnapshotId {
            index: index.parse().ok()?,
            term: term.parse().ok()?,
        })
    }
}

/// The snapshot directory of one Raft group.
#[derive(Debug, Clone)]
pub struct SnapshotFiles {
    dir: PathBuf,
}

impl SnapshotFiles {
    /// Opens (creating) `dir` and deletes temporary files left by a crash mid-write.
    pub fn open(dir: impl AsRef<Path>) -> Result<SnapshotFiles, Error> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| at(&dir, e))?;
        let files = SnapshotFiles { dir };
        for name in files.names()? {
            if name.starts_with(FILE_PREFIX) && name.ends_with(TEMP_SUFFIX) {
                let path = files.dir.join(&name);
                std::fs::remove_file(&path).map_err(|e| at(&path, e))?;
            }
        }
        Ok(files)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `snap` durably under its id (see the module doc); replaces a file of the same
    /// id atomically.
    pub fn write(&self, snap: &Snapshot) -> Result<SnapshotId, Error> {
        let id = SnapshotId::of(snap);
        let body = snap.write_to_bytes()?;
        let path = self.path(id);
        let temp = self.dir.join(format!("{}{TEMP_SUFFIX}", id.file_name()));
        let mut f = File::create(&temp).map_err(|e| at(&temp, e))?;
        f.write_all(&header(&body))
            .and_then(|()| f.write_all(&body))
            .and_then(|()| f.sync_all())
            .map_err(|e| at(&temp, e))?;
        drop(f);
        std::fs::rename(&temp, &path).map_err(|e| at(&path, e))?;
        self.sync_dir()?;
        Ok(id)
    }

    /// Reads and verifies the snapshot `id`. A missing, short or damaged file is an error
    /// naming it.
    pub fn read(&self, id: SnapshotId) -> Result<Snapshot, Error> {
        let path = self.path(id);
        let mut f = File::open(&path).map_err(|e| at(&path, e))?;
        let mut head = [0u8; HEADER_BYTES];
        f.read_exact(&mut head).map_err(|e| at(&path, e))?;
        let (body_len, body_crc) = check_header(&head).map_err(|e| at(&path, e))?;
        let mut body = Vec::new();
        (&mut f)
            .take(body_len)
            .read_to_end(&mut body)
            .map_err(|e| at(&path, e))?;
        if body.len() as u64 != body_len || crc32fast::hash(&body) != body_crc {
            return Err(at(&path, "damaged snapshot file (body length or CRC-32)"));
        }
        let snap = Snapshot::parse_from_bytes(&body).map_err(|e| at(&path, e))?;
        if SnapshotId::of(&snap) != id {
            return Err(at(&path, "snapshot metadata does not match the file name"));
        }
        Ok(snap)
    }

    /// Checks snapshot `id`'s header and body CRC-32 without keeping its data in memory.
    pub fn verify(&self, id: SnapshotId) -> Result<(), Error> {
        let path = self.path(id);
        let mut f = File::open(&path).map_err(|e| at(&path, e))?;
        let mut head = [0u8; HEADER_BYTES];
        f.read_exact(&mut head).map_err(|e| at(&path, e))?;
        let (body_len, body_crc) = check_header(&head).map_err(|e| at(&path, e))?;
        let mut hasher = crc32fast::Hasher::new();
        let mut buf = vec![0u8; VERIFY_CHUNK_BYTES];
        let mut seen = 0u64;
        loop {
            let n = f.read(&mut buf).map_err(|e| at(&path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            seen += n as u64;
        }
        if seen != body_len || hasher.finalize() != body_crc {
            return Err(at(&path, "damaged snapshot file (body length or CRC-32)"));
        }
        Ok(())
    }

    /// The snapshot directory `dir` as it is, for a reader beside the node that owns it
    /// (an online backup): unlike [`SnapshotFiles::open`], creates and deletes nothing.
    pub fn existing(dir: impl AsRef<Path>) -> SnapshotFiles {
        SnapshotFiles {
            dir: dir.as_ref().to_path_buf(),
        }
    }

    /// Opens snapshot `id` for streaming its body: checks the header and returns the file
    /// positioned at the body, the body's length and its CRC-32 (to check once read). The
    /// open file stays readable if the node deletes it meanwhile (a newer snapshot).
    pub fn open_body(&self, id: SnapshotId) -> Result<(File, u64, u32), Error> {
        let path = self.path(id);
        let mut f = File::open(&path).map_err(|e| at(&path, e))?;
        let mut head = [0u8; HEADER_BYTES];
        f.read_exact(&mut head).map_err(|e| at(&path, e))?;
        let (body_len, body_crc) = check_header(&head).map_err(|e| at(&path, e))?;
        Ok((f, body_len, body_crc))
    }

    /// The snapshot files present, oldest first (temporary files excluded).
    pub fn list(&self) -> Result<Vec<SnapshotId>, Error> {
        let mut ids: Vec<SnapshotId> = self
            .names()?
            .iter()
            .filter_map(|n| SnapshotId::parse(n))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Keeps `newest` and the [`SNAPSHOT_FILES_KEPT`] `- 1` files before it; deletes older
    /// ones and any newer than `newest` (orphans of a save that never returned).
    pub fn retain(&self, newest: SnapshotId) -> Result<(), Error> {
        let ids = self.list()?;
        let older: Vec<_> = ids.iter().filter(|&&id| id < newest).collect();
        let keep_older = SNAPSHOT_FILES_KEPT.saturating_sub(1);
        let drop_older = older.len().saturating_sub(keep_older);
        let doomed = older[..drop_older]
            .iter()
            .copied()
            .chain(ids.iter().filter(|&&id| id > newest));
        for &id in doomed {
            let path = self.path(id);
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(at(&path, e)),
                _ => {}
            }
        }
        self.sync_dir()
    }

    /// Deletes every snapshot file (a store that names none, e.g. a fresh one).
    pub fn remove_all(&self) -> Result<(), Error> {
        for id in self.list()? {
            let path = self.path(id);
            std::fs::remove_file(&path).map_err(|e| at(&path, e))?;
        }
        self.sync_dir()
    }

    /// The path of snapshot `id`.
    pub fn path(&self, id: SnapshotId) -> PathBuf {
        self.dir.join(id.file_name())
    }

    fn names(&self) -> Result<Vec<String>, Error> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(|e| at(&self.dir, e))? {
            let entry = entry.map_err(|e| at(&self.dir, e))?;
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn sync_dir(&self) -> Result<(), Error> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| at(&self.dir, e))
    }
}

fn header(body: &[u8]) -> [u8; HEADER_BYTES] {
    let mut h = [0u8; HEADER_BYTES];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&FILE_FORMAT_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&(body.len() as u64).to_le_bytes());
    h[24..28].copy_from_slice(&crc32fast::hash(body).to_le_bytes());
    let head_crc = crc32fast::hash(&h[..28]);
    h[28..].copy_from_slice(&head_crc.to_le_bytes());
    h
}

/// The body length and CRC-32 a header promises, or why it is damaged.
fn check_header(h: &[u8; HEADER_BYTES]) -> Result<(u64, u32), String> {
    let word = |r: std::ops::Range<usize>| {
        let mut b = [0u8; 4];
        b.copy_from_slice(&h[r]);
        u32::from_le_bytes(b)
    };
    if &h[..8] != MAGIC || crc32fast::hash(&h[..28]) != word(28..32) {
        return Err("damaged snapshot file (header magic or CRC-32)".into());
    }
    if word(8..12) != FILE_FORMAT_VERSION {
        return Err(format!("snapshot file format {} unknown", word(8..12)));
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&h[16..24]);
    let len = u64::from_le_bytes(len);
    if len > SNAPSHOT_FILE_BYTES_MAX {
        return Err(format!(
            "snapshot body of {len} bytes exceeds {SNAPSHOT_FILE_BYTES_MAX}"
        ));
    }
    Ok((len, word(24..28)))
}

/// A storage error naming the file or directory it happened on.
fn at(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Storage(format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(index: u64, term: u64) -> Snapshot {
        let mut s = Snapshot::default();
        s.mut_metadata().index = index;
        s.mut_metadata().term = term;
        s.data = vec![index as u8; 1000].into();
        s
    }

    #[test]
    fn writes_reads_and_keeps_the_last_two() {
        let dir = tempfile::tempdir().unwrap();
        let files = SnapshotFiles::open(dir.path()).unwrap();
        for i in 1..=4 {
            let id = files.write(&snap(i * 10, 1)).unwrap();
            files.retain(id).unwrap();
        }
        let ids: Vec<u64> = files.list().unwrap().iter().map(|i| i.index).collect();
        assert_eq!(ids, vec![30, 40]);
        let back = files.read(SnapshotId { index: 40, term: 1 }).unwrap();
        assert_eq!(back, snap(40, 1));
        // An orphan newer than what the store names is deleted.
        files.write(&snap(50, 2)).unwrap();
        files.retain(SnapshotId { index: 40, term: 1 }).unwrap();
        assert_eq!(files.list().unwrap().len(), 2);
    }

    #[test]
    fn every_damage_is_detected_and_temporaries_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let files = SnapshotFiles::open(dir.path()).unwrap();
        let id = files.write(&snap(7, 2)).unwrap();
        let path = files.path(id);
        let good = std::fs::read(&path).unwrap();
        for at in (0..good.len()).step_by(37) {
            let mut bad = good.clone();
            bad[at] ^= 0x01;
            std::fs::write(&path, &bad).unwrap();
            assert!(files.read(id).is_err(), "flip at {at}");
        }
        std::fs::write(&path, &good[..good.len() - 1]).unwrap();
        let e = files.read(id).unwrap_err().to_string();
        assert!(e.contains("snap-7-2"), "{e}");
        std::fs::write(dir.path().join("snap-9-2.tmp"), b"half").unwrap();
        SnapshotFiles::open(dir.path()).unwrap();
        assert!(!dir.path().join("snap-9-2.tmp").exists());
    }
}
