//! Stable hashing: a seedless hasher whose output is the same on every replica, machine and
//! Rust release, the hash map built on it (the big ones are `shard_map::ShardMap`s, encoded
//! sorted so snapshots and state hashes stay canonical), and the collision-resistant [`Fingerprint`] of
//! a value.
//!
//! `StableHasher` only lays out tables (a collision costs a probe, never a wrong answer);
//! anything that decides by equality of hashes uses [`Fingerprint`] (SHA-256).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash};

/// A hash map with a stable hasher. Never iterate it where the order could reach a decision
/// or an encoding.
pub type StableMap<K, V> = HashMap<K, V, BuildHasherDefault<StableHasher>>;

/// A fixed, seedless, word-at-a-time hash (the rustc "Fx" mixing step), so table layout is
/// equal on every replica and machine — std's `DefaultHasher` makes no such
/// promise across releases, and a byte-at-a-time FNV was a measured hot spot.
#[derive(Clone, Copy, Debug, Default)]
pub struct StableHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl StableHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl std::hash::Hasher for StableHasher {
    #[inline]
    fn finish(&self) -> u64 {
        // A final avalanche so that low bits (used for table buckets) depend on every input bit.
        let mut z = self.0;
        z = (z ^ (z >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        z ^ (z >> 33)
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 56));
        }
    }

    // Integers are hashed by value and `usize`/`isize` as 64 bits, so the result is the same
    // on every machine whatever its endianness or pointer width.
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.add(i as u64);
        self.add((i >> 64) as u64);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn write_i32(&mut self, i: i32) {
        self.add(i as u32 as u64);
    }
    #[inline]
    fn write_i64(&mut self, i: i64) {
        self.add(i as u64);
    }
    #[inline]
    fn write_isize(&mut self, i: isize) {
        self.add(i as i64 as u64);
    }
}

/// A 128-bit collision-resistant digest of a value: the first half of SHA-256 over a domain
/// tag and the value's postcard encoding (the same canonical bytes the log and snapshots
/// use). The dedup table compares these to tell a retry from a reused request id, so two
/// different commands must never share one, even when a client crafts them.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct Fingerprint(pub [u8; 16]);

/// Encodings up to this many bytes are fingerprinted from a stack buffer (see `Fingerprint::of`).
const FINGERPRINT_STACK_BYTES: usize = 256;

/// The domain tag of command fingerprints; the version changes with the derivation.
pub const FINGERPRINT_DOMAIN_TAG: &[u8] = b"ninety.command_fingerprint.v1\0";

impl Fingerprint {
    /// The fingerprint of `value`, or `None` if postcard cannot encode it (never for the
    /// engine's in-memory types; the caller then refuses instead of guessing).
    pub fn of<T: Serialize + ?Sized>(value: &T) -> Option<Fingerprint> {
        let mut sha = Sha256::new();
        sha.update(FINGERPRINT_DOMAIN_TAG);
        // Nearly every command encodes in a few dozen bytes: encoding it on the stack and
        // hashing it in one call costs far less than feeding SHA-256 a byte at a time. A
        // larger one (a region import) streams, which hashes the very same bytes.
        let mut buf = [0u8; FINGERPRINT_STACK_BYTES];
        let sha = match postcard::to_slice(value, &mut buf) {
            Ok(bytes) => {
                sha.update(bytes);
                sha
            }
            Err(_) => postcard::serialize_with_flavor(value, HashFlavor(sha)).ok()?,
        };
        let digest = sha.finalize();
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest[..16]);
        Some(Fingerprint(first))
    }
}

/// A postcard output that feeds SHA-256 instead of a buffer, so fingerprinting a command
/// (a 3 MB region import included) allocates nothing.
struct HashFlavor(Sha256);

impl postcard::ser_flavors::Flavor for HashFlavor {
    type Output = Sha256;

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.update([byte]);
        Ok(())
    }

    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        self.0.update(bytes);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Sha256> {
        Ok(self.0)
    }
}
