//! The idempotency table: request id → first outcome, bounded in count and in log time.
//!
//! A mutating command that succeeds is remembered with a fingerprint of the command and its
//! reply. A repeat of the request id with the same command returns the remembered reply and
//! changes nothing; with a different command it is refused (`RequestIdReused`). Refused
//! commands are not remembered: they changed nothing, so a retry is simply evaluated again.
//!
//! The guarantee holds for retries within `Policy::dedup_window_ms` of log time *and* within
//! the last `DEDUP_ENTRIES_MAX` remembered requests, whichever is shorter; the oldest entries
//! are evicted first. Eviction is driven by apply only, so every replica evicts the same ones.

use crate::command::Reply;
use crate::ids::RequestId;
use crate::time::{LogTime, MS_PER_MINUTE};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;

/// Default dedup window: longer than any client's retry budget.
pub const DEDUP_WINDOW_MS_DEFAULT: u64 = 15 * MS_PER_MINUTE;
/// Most request ids remembered at once (about 100 MiB of memory at the limit).
pub const DEDUP_ENTRIES_MAX: usize = 1 << 20;

/// One remembered request.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct DedupEntry {
    pub request: RequestId,
    pub at: LogTime,
    /// A stable 64-bit fingerprint of the command, to catch id reuse.
    pub fingerprint: u64,
    pub reply: Reply,
}

/// The table. Canonical form: entries in arrival order.
#[derive(Clone, Debug, Default)]
pub struct DedupTable {
    /// Arrival order with arrival time, so expiry never has to look into the map.
    order: VecDeque<(RequestId, LogTime)>,
    entries: HashMap<RequestId, DedupEntry, BuildHasherDefault<StableHasher>>,
}

impl PartialEq for DedupTable {
    fn eq(&self, o: &Self) -> bool {
        self.order == o.order
            && self
                .order
                .iter()
                .all(|(id, _)| self.entries.get(id) == o.entries.get(id))
    }
}

impl DedupTable {
    /// The remembered entry for `id`.
    pub fn get(&self, id: RequestId) -> Option<&DedupEntry> {
        self.entries.get(&id)
    }

    /// Number of remembered requests.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Remembers a successful request, evicting the oldest entry when full.
    pub(crate) fn insert(&mut self, entry: DedupEntry) {
        if self.order.len() >= DEDUP_ENTRIES_MAX {
            if let Some((old, _)) = self.order.pop_front() {
                self.entries.remove(&old);
            }
        }
        self.order.push_back((entry.request, entry.at));
        self.entries.insert(entry.request, entry);
    }

    /// Forgets entries older than `cutoff`, at most `max`.
    pub(crate) fn expire(&mut self, cutoff: LogTime, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            let Some(&(id, at)) = self.order.front() else {
                break;
            };
            if at > cutoff {
                break;
            }
            self.order.pop_front();
            self.entries.remove(&id);
            n += 1;
        }
        n
    }

    /// Entries in arrival order (the canonical, serialized form).
    pub fn entries(&self) -> impl Iterator<Item = &DedupEntry> {
        self.order.iter().filter_map(|(id, _)| self.entries.get(id))
    }
}

impl Serialize for DedupTable {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // postcard needs the length up front, which a filtered iterator does not give.
        let list: Vec<&DedupEntry> = self.entries().collect();
        list.serialize(s)
    }
}

impl<'de> Deserialize<'de> for DedupTable {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let list: Vec<DedupEntry> = Vec::deserialize(d)?;
        let mut t = DedupTable::default();
        for e in list {
            t.insert(e);
        }
        Ok(t)
    }
}

/// A fixed, seedless, word-at-a-time hash (the rustc "Fx" mixing step), so fingerprints and
/// table layout are equal on every replica and machine — std's `DefaultHasher` makes no such
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

/// The fingerprint of a value: `StableHasher` over its `Hash` stream.
pub fn fingerprint<T: std::hash::Hash>(value: &T) -> u64 {
    use std::hash::Hasher;
    let mut h = StableHasher::default();
    value.hash(&mut h);
    h.finish()
}
