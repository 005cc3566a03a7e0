//! Online backups: the file `ninety cluster backup` writes from `Admin.Backup`, its checks,
//! and the data directories of a new cluster made from one (`ninety cluster restore`).
//!
//! # File format
//! Line 1: `ninety-backup 1`. Line 2: the header, one line of JSON ([`BackupMeta`]): the
//! source cluster and node, the snapshot's index, term and log time, its byte count, its
//! SHA-256 and the engine state's hash (both hex). Then the snapshot bytes exactly as the
//! node stored them: the `eraftpb::Snapshot` protobuf (metadata, and the envelope of log
//! time, member registry and engine state; the engine state carries its own checksum).
//! [`read_file`] refuses a file whose bytes do not match the header's SHA-256, whose
//! snapshot does not decode, or whose state does not hash to the header's state hash.
//!
//! # Restore
//! A restored cluster is a **new** cluster: a new cluster id, new incarnations, a member
//! registry emptied of the old cluster's (its incarnations and addresses belong to another
//! cluster; the new nodes register themselves as founding nodes do), and the voters its
//! new configs name. [`seed`] writes the snapshot into each node's empty data directory as
//! its Raft store's base, at the backup's index and term, the way a founding node's
//! bootstrap writes an empty one at index 1: each node starts with the backup's state
//! applied at the backup's index, and the log goes on from there.

use crate::engine_sm::EngineMachine;
use crate::error::Error;
use crate::io::RaftStore;
use crate::node::members::Registry;
use crate::node::payload;
use crate::runtime::{data_format, identity};
use crate::state_machine::StateMachine;
use crate::storage::{LogStore, LogStoreOptions};
use protobuf::Message as PbMessage;
use raft::eraftpb::{ConfState, Snapshot};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{BufRead, Read, Write};
use std::path::Path;

/// The file's first line.
pub const BACKUP_MAGIC_LINE: &str = "ninety-backup 1";
/// The longest header line read, bytes (a few short fields).
const HEADER_LINE_BYTES_MAX: u64 = 4096;
/// The largest snapshot a backup file may hold, bytes: what a node would read back
/// (`storage::SNAPSHOT_FILE_BYTES_MAX`).
pub const BACKUP_SNAPSHOT_BYTES_MAX: u64 = crate::storage::SNAPSHOT_FILE_BYTES_MAX;

/// A backup file's header line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupMeta {
    /// The cluster it was taken from.
    pub cluster_id: String,
    /// The node that sent it.
    pub node_id: u64,
    /// The log index and term the snapshot covers.
    pub snapshot_index: u64,
    pub snapshot_term: u64,
    /// Log time of the last entry applied in it, Unix ms.
    pub log_time_ms: u64,
    /// The snapshot's size, bytes.
    pub snapshot_bytes: u64,
    /// SHA-256 of the snapshot bytes, hex.
    pub sha256: String,
    /// SHA-256 of the engine state (as `ClusterStatus` `state_hash` reports it), hex.
    pub state_hash: String,
}

/// What a snapshot holds, found by decoding it completely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    pub index: u64,
    pub term: u64,
    pub log_time_ms: u64,
    pub state_hash: [u8; 32],
    /// The voters of the configuration it was taken in.
    pub voters: Vec<u64>,
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Decodes a stored snapshot's bytes down to the engine state (whose own checksum and
/// invariants the engine checks) and hashes that state.
pub fn inspect(body: &[u8]) -> Result<Inspected, String> {
    let snap = Snapshot::parse_from_bytes(body).map_err(|e| format!("not a snapshot: {e}"))?;
    let env = payload::decode_snapshot_envelope(snap.get_data())?;
    let mut machine = EngineMachine::new();
    machine
        .restore(env.state)
        .map_err(|e| format!("the engine state does not load: {e}"))?;
    let meta = snap.get_metadata();
    Ok(Inspected {
        index: meta.index,
        term: meta.term,
        log_time_ms: env.log_time_ms,
        state_hash: machine.state_hash(),
        voters: meta.get_conf_state().voters.clone(),
    })
}

/// The header of the snapshot `body` sent by `node_id` of `cluster_id`, after checking it
/// decodes (`inspect`).
pub fn meta_of(cluster_id: &str, node_id: u64, body: &[u8]) -> Result<BackupMeta, String> {
    let found = inspect(body)?;
    Ok(BackupMeta {
        cluster_id: cluster_id.to_string(),
        node_id,
        snapshot_index: found.index,
        snapshot_term: found.term,
        log_time_ms: found.log_time_ms,
        snapshot_bytes: body.len() as u64,
        sha256: hex(&sha256(body)),
        state_hash: hex(&found.state_hash),
    })
}

/// Writes a backup file durably: a temporary file beside `path`, fsync, rename.
pub fn write_file(path: &Path, meta: &BackupMeta, body: &[u8]) -> Result<(), String> {
    let at = |e: std::io::Error| format!("{}: {e}", path.display());
    let header = serde_json::to_string(meta).map_err(|e| e.to_string())?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp).map_err(at)?;
    f.write_all(format!("{BACKUP_MAGIC_LINE}\n{header}\n").as_bytes())
        .and_then(|()| f.write_all(body))
        .and_then(|()| f.sync_all())
        .map_err(at)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(at)
}

/// Reads and checks a backup file completely (module doc); every refusal names the file
/// and what does not match.
pub fn read_file(path: &Path) -> Result<(BackupMeta, Vec<u8>), String> {
    let name = path.display();
    let f = std::fs::File::open(path).map_err(|e| format!("{name}: {e}"))?;
    let mut r = std::io::BufReader::new(f);
    let mut line = |what: &str| -> Result<String, String> {
        let mut s = String::new();
        (&mut r)
            .take(HEADER_LINE_BYTES_MAX)
            .read_line(&mut s)
            .map_err(|e| format!("{name}: {what}: {e}"))?;
        Ok(s.trim_end_matches('\n').to_string())
    };
    if line("first line")? != BACKUP_MAGIC_LINE {
        return Err(format!(
            "{name} is not a ninety backup (its first line is not {BACKUP_MAGIC_LINE:?})"
        ));
    }
    let meta: BackupMeta = serde_json::from_str(&line("header")?)
        .map_err(|e| format!("{name}: damaged header line: {e}"))?;
    if meta.snapshot_bytes > BACKUP_SNAPSHOT_BYTES_MAX {
        return Err(format!(
            "{name}: the header claims {} snapshot bytes, more than {BACKUP_SNAPSHOT_BYTES_MAX}",
            meta.snapshot_bytes
        ));
    }
    let mut body = Vec::new();
    r.take(meta.snapshot_bytes + 1)
        .read_to_end(&mut body)
        .map_err(|e| format!("{name}: {e}"))?;
    if body.len() as u64 != meta.snapshot_bytes {
        return Err(format!(
            "{name}: holds {} snapshot bytes, its header says {}: the file is truncated or \
             has trailing bytes",
            body.len(),
            meta.snapshot_bytes
        ));
    }
    check(&meta, &body).map_err(|why| format!("{name}: {why}"))?;
    Ok((meta, body))
}

/// Checks `body` against its header: the SHA-256 first (damage), then what it decodes to.
pub fn check(meta: &BackupMeta, body: &[u8]) -> Result<Inspected, String> {
    let sum = hex(&sha256(body));
    if sum != meta.sha256 {
        return Err(format!(
            "checksum mismatch: the snapshot bytes' SHA-256 is {sum}, the header says {}: \
             the backup is damaged; use another copy",
            meta.sha256
        ));
    }
    let found = inspect(body)?;
    if (found.index, found.term) != (meta.snapshot_index, meta.snapshot_term) {
        return Err(format!(
            "the snapshot is at index {} term {}, the header says index {} term {}",
            found.index, found.term, meta.snapshot_index, meta.snapshot_term
        ));
    }
    if hex(&found.state_hash) != meta.state_hash {
        return Err(format!(
            "state hash mismatch: the state hashes to {}, the header says {}",
            hex(&found.state_hash),
            meta.state_hash
        ));
    }
    Ok(found)
}

/// Makes `data_dir` (missing or empty) node `node_id`'s data directory in the new cluster
/// `cluster_id` of `voters`, holding the backup `body` (module doc). Returns the identity
/// it stamped.
pub fn seed(
    data_dir: &Path,
    cluster_id: &str,
    node_id: u64,
    voters: &[u64],
    body: &[u8],
) -> Result<identity::Identity, Error> {
    if std::fs::read_dir(data_dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(Error::Config(format!(
            "{} is not empty: a restore makes new data directories (move it away or choose \
             another --data-root)",
            data_dir.display()
        )));
    }
    let source = Snapshot::parse_from_bytes(body)
        .map_err(|e| Error::Restore(format!("not a snapshot: {e}")))?;
    let env = payload::decode_snapshot_envelope(source.get_data()).map_err(Error::Restore)?;
    let me = identity::establish(data_dir, Some(cluster_id), node_id)?;
    let layout = data_format::prepare(data_dir)?;
    let mut store = LogStore::open(
        &layout.raft_log,
        &layout.snapshots,
        &LogStoreOptions::default(),
    )?;
    let mut snap = Snapshot {
        data: payload::encode_snapshot_with(env.log_time_ms, &Registry::default(), env.state)
            .into(),
        ..Default::default()
    };
    let meta = snap.mut_metadata();
    meta.index = source.get_metadata().index;
    meta.term = source.get_metadata().term;
    meta.set_conf_state(ConfState {
        voters: voters.to_vec(),
        ..Default::default()
    });
    store.apply_snapshot(&snap)?;
    Ok(me)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored-snapshot body of a small engine at index 42, term 3.
    fn body() -> Vec<u8> {
        let machine = EngineMachine::new();
        let mut snap = Snapshot {
            data: payload::encode_snapshot(1_700_000_000_000, &machine.snapshot()).into(),
            ..Default::default()
        };
        snap.mut_metadata().index = 42;
        snap.mut_metadata().term = 3;
        snap.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
        snap.write_to_bytes().unwrap()
    }

    #[test]
    fn a_backup_file_round_trips_and_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.ninety-backup");
        let body = body();
        let meta = meta_of("c1", 2, &body).unwrap();
        assert_eq!((meta.snapshot_index, meta.snapshot_term), (42, 3));
        write_file(&path, &meta, &body).unwrap();
        assert_eq!(read_file(&path).unwrap(), (meta.clone(), body.clone()));
        let good = std::fs::read(&path).unwrap();
        let mut bad = good.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        let e = read_file(&path).unwrap_err();
        assert!(e.contains("checksum mismatch"), "{e}");
        std::fs::write(&path, &good[..good.len() - 1]).unwrap();
        assert!(read_file(&path).unwrap_err().contains("truncated"));
        std::fs::write(&path, b"hello\n").unwrap();
        assert!(read_file(&path)
            .unwrap_err()
            .contains("not a ninety backup"));
    }

    #[test]
    fn a_seeded_directory_starts_at_the_backup_index_in_a_new_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("n1");
        let body = body();
        let me = seed(&data, "new-cluster", 1, &[1, 2, 3], &body).unwrap();
        assert_eq!(me.cluster_id, "new-cluster");
        let e = seed(&data, "new-cluster", 1, &[1, 2, 3], &body).unwrap_err();
        assert!(e.to_string().contains("not empty"), "{e}");
        let layout = data_format::Layout::of(&data);
        let store = LogStore::open(
            &layout.raft_log,
            &layout.snapshots,
            &LogStoreOptions::default(),
        )
        .unwrap();
        let state = raft::Storage::initial_state(&store).unwrap();
        assert_eq!(state.conf_state.voters, vec![1, 2, 3]);
        assert_eq!(state.hard_state.commit, 42);
        let stored = store.stored_snapshot().unwrap().expect("a snapshot");
        let found = inspect(&stored.write_to_bytes().unwrap()).unwrap();
        assert_eq!(found.state_hash, inspect(&body).unwrap().state_hash);
        assert_eq!((found.index, found.term), (42, 3));
    }
}
