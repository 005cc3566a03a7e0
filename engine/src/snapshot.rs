//! Snapshots and the state hash.
//!
//! A snapshot is `MAGIC`, a format version (u16, little-endian), the postcard encoding of the
//! canonical state, and a SHA-256 of everything before it, so a torn or corrupted snapshot is
//! refused, never loaded. Derived indexes are not stored; they are rebuilt on restore.
//!
//! The state hash is the SHA-256 of the postcard encoding of the canonical state: ordered
//! maps only, fixed-width integers, no floats, so it is the same across runs, replicas and
//! machines. Replicas that applied the same log have the same hash.
//!
//! An [`Image`] is an immutable copy of the canonical state for encoding elsewhere (the
//! cluster writes snapshots on a thread of their own): [`Engine::image`] copies the small
//! records and shares the beds' chunks (`cow_map`), and leaves the beds' derived indexes and
//! the published view out, so taking one costs less than a clone of the engine (the slot
//! book is still copied whole: `docs/storage.md`, "Snapshots off the node task").

use crate::engine::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// The first bytes of every snapshot.
pub const MAGIC: &[u8; 8] = b"NINETY\x00S";
/// Version of the snapshot encoding. 2: the dedup table is keyed by `RequestKey` (client
/// ids keep all 128 bits) and stores SHA-256 command fingerprints and first log indices;
/// version 1 snapshots are refused (see `docs/operations.md`, "Upgrading from format 1").
/// 3: slots record their withdrawal, seats may end withdrawn, and the slot book keeps the
/// doctors' rolling weekly templates (`horizon`); version 2 snapshots are refused.
/// 4: the state ends with the cross-region beds (`remote`); a version 3 snapshot is read
/// as one with none (its encoding followed by an empty book's).
pub const SNAPSHOT_FORMAT_VERSION: u16 = 4;
/// The oldest snapshot version this build reads.
pub const SNAPSHOT_FORMAT_VERSION_MIN: u16 = 3;

/// A 256-bit digest of the canonical state.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct StateHash(pub [u8; 32]);

impl fmt::Display for StateHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Why a snapshot could not be restored.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a ninety snapshot (bad magic)")]
    BadMagic,
    #[error(
        "snapshot format version {0} is not supported (this build reads {SNAPSHOT_FORMAT_VERSION})"
    )]
    UnsupportedVersion(u16),
    #[error("snapshot checksum mismatch: torn or corrupted")]
    Corrupt,
    #[error("snapshot does not decode: {0}")]
    Decode(String),
    #[error("snapshot could not be encoded: {0}")]
    Encode(String),
}

/// An immutable copy of the canonical state (module doc); encodes and hashes exactly as
/// the engine it was taken from did at that moment.
#[derive(Debug)]
pub struct Image(Engine);

impl Image {
    /// [`Engine::snapshot`] of the state the image was taken from.
    pub fn snapshot(&self) -> Result<Vec<u8>, SnapshotError> {
        self.0.snapshot()
    }

    /// [`Engine::state_hash`] of the state the image was taken from.
    pub fn state_hash(&self) -> StateHash {
        self.0.state_hash()
    }
}

impl Engine {
    /// An immutable copy of the canonical state, to encode on another thread (beds and
    /// slots shared, derived indexes left out).
    pub fn image(&self) -> Image {
        Image(Engine {
            name: self.name.clone(),
            policy: self.policy.clone(),
            now: self.now,
            counters: self.counters,
            hospitals: self.hospitals.clone(),
            alliances: self.alliances.clone(),
            doctors: self.doctors.clone(),
            graph: self.graph.clone(),
            beds: self.beds.image(),
            slots: self.slots.image(),
            referrals: self.referrals.clone(),
            dedup: self.dedup.clone(),
            match_policy: self.match_policy.clone(),
            remote: self.remote.clone(),
            live: Default::default(),
            emitted: Default::default(),
        })
    }

    /// Encodes the whole state.
    pub fn snapshot(&self) -> Result<Vec<u8>, SnapshotError> {
        let body = postcard::to_stdvec(self).map_err(|e| SnapshotError::Encode(e.to_string()))?;
        let mut out = Vec::with_capacity(body.len() + 42);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&SNAPSHOT_FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&body);
        let sum = Sha256::digest(&out);
        out.extend_from_slice(&sum);
        Ok(out)
    }

    /// Decodes a snapshot made by `snapshot`.
    pub fn restore(bytes: &[u8]) -> Result<Engine, SnapshotError> {
        let header = MAGIC.len() + 2;
        if bytes.len() < header + 32 || &bytes[..MAGIC.len()] != MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let version = u16::from_le_bytes([bytes[MAGIC.len()], bytes[MAGIC.len() + 1]]);
        if !(SNAPSHOT_FORMAT_VERSION_MIN..=SNAPSHOT_FORMAT_VERSION).contains(&version) {
            return Err(SnapshotError::UnsupportedVersion(version));
        }
        let (content, sum) = bytes.split_at(bytes.len() - 32);
        if Sha256::digest(content).as_slice() != sum {
            return Err(SnapshotError::Corrupt);
        }
        let body = upgrade(&content[header..], version)?;
        let mut engine: Engine =
            postcard::from_bytes(&body).map_err(|e| SnapshotError::Decode(e.to_string()))?;
        engine.rebuild_indexes();
        Ok(engine)
    }

    /// The cross-region beds of this region's referrals.
    pub fn remote(&self) -> &crate::remote::RemoteBook {
        &self.remote
    }

    /// The hash of the canonical state.
    pub fn state_hash(&self) -> StateHash {
        let mut hasher = Sha256::new();
        // Encoding to a Vec first keeps this simple; the cost is measured in the benches.
        match postcard::to_stdvec(self) {
            Ok(body) => hasher.update(&body),
            // Encoding an in-memory state cannot fail with postcard's std flavour; hash the
            // debug form rather than panic if it ever does.
            Err(e) => hasher.update(e.to_string().as_bytes()),
        }
        StateHash(hasher.finalize().into())
    }
}

/// The body of a snapshot of `version` in this build's encoding: version 3 lacks the
/// trailing cross-region book, whose empty encoding is appended.
fn upgrade(body: &[u8], version: u16) -> Result<std::borrow::Cow<'_, [u8]>, SnapshotError> {
    if version == SNAPSHOT_FORMAT_VERSION {
        return Ok(std::borrow::Cow::Borrowed(body));
    }
    let empty = postcard::to_stdvec(&crate::remote::RemoteBook::default())
        .map_err(|e| SnapshotError::Encode(e.to_string()))?;
    let mut out = Vec::with_capacity(body.len() + empty.len());
    out.extend_from_slice(body);
    out.extend_from_slice(&empty);
    Ok(std::borrow::Cow::Owned(out))
}
