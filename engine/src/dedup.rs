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
    order: VecDeque<RequestId>,
    entries: HashMap<RequestId, DedupEntry, BuildHasherDefault<Fnv64>>,
}

impl PartialEq for DedupTable {
    fn eq(&self, o: &Self) -> bool {
        self.order == o.order
            && self
                .order
                .iter()
                .all(|id| self.entries.get(id) == o.entries.get(id))
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
            if let Some(old) = self.order.pop_front() {
                self.entries.remove(&old);
            }
        }
        self.order.push_back(entry.request);
        self.entries.insert(entry.request, entry);
    }

    /// Forgets entries older than `cutoff`, at most `max`.
    pub(crate) fn expire(&mut self, cutoff: LogTime, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            let Some(id) = self.order.front().copied() else {
                break;
            };
            if self.entries.get(&id).is_some_and(|e| e.at > cutoff) {
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
        self.order.iter().filter_map(|id| self.entries.get(id))
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

/// FNV-1a, 64-bit: a fixed, seedless hash so fingerprints are equal on every replica and
/// machine (std's `DefaultHasher` makes no such promise across releases).
#[derive(Clone, Copy, Debug)]
pub struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv64 {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    // Integers are hashed little-endian and `usize` as 64 bits, so the fingerprint is the
    // same on every machine whatever its endianness or pointer width.
    fn write_u16(&mut self, i: u16) {
        self.write(&i.to_le_bytes());
    }
    fn write_u32(&mut self, i: u32) {
        self.write(&i.to_le_bytes());
    }
    fn write_u64(&mut self, i: u64) {
        self.write(&i.to_le_bytes());
    }
    fn write_u128(&mut self, i: u128) {
        self.write(&i.to_le_bytes());
    }
    fn write_usize(&mut self, i: usize) {
        self.write(&(i as u64).to_le_bytes());
    }
    fn write_i32(&mut self, i: i32) {
        self.write(&i.to_le_bytes());
    }
    fn write_i64(&mut self, i: i64) {
        self.write(&i.to_le_bytes());
    }
    fn write_isize(&mut self, i: isize) {
        self.write(&(i as i64).to_le_bytes());
    }
}

/// The fingerprint of a value: FNV-1a over its `Hash` stream.
pub fn fingerprint<T: std::hash::Hash>(value: &T) -> u64 {
    use std::hash::Hasher;
    let mut h = Fnv64::default();
    value.hash(&mut h);
    h.finish()
}
