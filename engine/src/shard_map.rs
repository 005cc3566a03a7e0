//! [`ShardMap`]: a hash map with a stable hasher, split into [`SHARDS`] shards that are each
//! a shared (`Arc`) `StableMap`, for the two tables that grow to millions of entries under
//! load — the dedup table's client ids and the bed holds.
//!
//! **Why.** A single `HashMap` doubles its table in one go: at ~10^6 entries that is a
//! rehash of every entry inside one `apply`, and because replicas apply the same log, the
//! leader and both followers stall on the same entry at once. The cluster bench's batched
//! row showed it: no call completed for 0.5–1.2 s at the moments the dedup table crossed
//! 2^20 · 7/8 and 2^21 · 7/8 entries (docs/performance.md, "Tail latency: the stalls").
//! Split into 256 shards, a resize moves about 1/256 of the entries; and because the
//! shards take unequal shares of the keys (`SHARD_BOUNDS`), they cross their resize
//! thresholds one after another as the map grows, never all at once.
//!
//! **Shared shards.** A copy of the map (a snapshot image, taken on the node task) clones
//! 256 `Arc`s instead of every entry; the first later write to a shard still shared with an
//! image copies that shard alone (`Arc::make_mut`), so the copy is spread over the next
//! writes instead of stalling the node task in one piece.
//!
//! The encoding is a list of `(key, value)` pairs in key order (what the maps it replaced
//! were encoded as), so snapshots and state hashes do not depend on the layout. Iteration order is by shard
//! and never reaches a decision or an encoding.

use crate::hashing::{StableHasher, StableMap};
use serde::de::Deserializer;
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hash};
use std::sync::Arc;

/// Shards per map: a resize moves ~1/256 of the entries (~4,000 of 10^6).
pub const SHARDS: usize = 256;

/// The map (see the module doc).
pub struct ShardMap<K, V> {
    shards: Box<[Arc<StableMap<K, V>>]>,
    len: usize,
}

/// 2^(1/SHARDS) in fixed point with 62 fractional bits.
const GROWTH_Q62: u128 = 0x402c_6be9_6af2_fb58;

/// `SHARD_BOUNDS[i]` is where shard `i + 1` starts on the unit interval scaled to `u64`:
/// `(2^((i + 1) / SHARDS) - 1) · 2^64`. Shard `i` so takes a share of the keys proportional
/// to `2^(i / SHARDS)`, from 1 to 2 across the shards, so as the map doubles every shard
/// crosses its own resize threshold at a different size, one after another, instead of all
/// 256 at once (filled evenly they would, and the stall would be the whole table's again).
const SHARD_BOUNDS: [u64; SHARDS - 1] = shard_bounds();

const fn shard_bounds() -> [u64; SHARDS - 1] {
    let one: u128 = 1 << 62;
    let mut out = [0u64; SHARDS - 1];
    let mut x = one;
    let mut i = 0;
    while i < SHARDS - 1 {
        x = (x * GROWTH_Q62) >> 62;
        out[i] = ((x - one) << 2) as u64;
        i += 1;
    }
    out
}

/// Bits of the mixed hash that index [`SHARD_AT`].
const TOP_BITS: u32 = 12;

/// `SHARD_AT[t]` is the shard in which the `t`-th of 4,096 equal slices of the hash range
/// starts. A slice (2^52 wide) is narrower than the smallest shard (~2^55.5), so it holds
/// at most one shard boundary, and one comparison with `SHARD_BOUNDS` settles the shard:
/// constant time, where a binary search over 255 bounds took eight unpredictable branches.
const SHARD_AT: [u8; 1 << TOP_BITS] = shard_at();

const fn shard_at() -> [u8; 1 << TOP_BITS] {
    let mut out = [0u8; 1 << TOP_BITS];
    let mut t = 0;
    let mut shard = 0;
    while t < out.len() {
        let start = (t as u64) << (64 - TOP_BITS);
        while shard < SHARDS - 1 && SHARD_BOUNDS[shard] <= start {
            shard += 1;
        }
        out[t] = shard as u8;
        t += 1;
    }
    out
}

/// The shard of `key`: its stable hash, mixed again (splitmix64's finaliser) so the
/// shard does not follow the bits the table inside uses, placed on `SHARD_BOUNDS`. Only
/// the layout depends on it, never a decision or an encoding.
fn shard_of<K: Hash>(key: &K) -> usize {
    let mut h = BuildHasherDefault::<StableHasher>::default().hash_one(key);
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    shard_of_mixed(h)
}

/// The shard whose share of the hash range holds `h`.
fn shard_of_mixed(h: u64) -> usize {
    let s = usize::from(SHARD_AT[(h >> (64 - TOP_BITS)) as usize]);
    if s < SHARDS - 1 && h >= SHARD_BOUNDS[s] {
        s + 1
    } else {
        s
    }
}

impl<K, V> Default for ShardMap<K, V> {
    fn default() -> Self {
        ShardMap {
            shards: (0..SHARDS)
                .map(|_| Arc::new(StableMap::default()))
                .collect(),
            len: 0,
        }
    }
}

/// A shallow copy: the shards are shared until one side writes to one.
impl<K, V> Clone for ShardMap<K, V> {
    fn clone(&self) -> Self {
        ShardMap {
            shards: self.shards.clone(),
            len: self.len,
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> ShardMap<K, V> {
    /// The value of `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.shards[shard_of(key)].get(key)
    }

    /// Whether the map holds `key`.
    pub fn contains_key(&self, key: &K) -> bool {
        self.get(key).is_some()
    }

    /// The value of `key`, to change: copies its shard first if an image shares it.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let shard = &mut self.shards[shard_of(key)];
        if Arc::get_mut(shard).is_none() && !shard.contains_key(key) {
            return None;
        }
        Arc::make_mut(shard).get_mut(key)
    }

    /// Inserts or replaces; returns the value replaced.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let shard = &mut self.shards[shard_of(&key)];
        let old = Arc::make_mut(shard).insert(key, value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes `key`; returns its value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let shard = &mut self.shards[shard_of(key)];
        // A shard an image shares is looked into first, so a missing key never copies it.
        if Arc::get_mut(shard).is_none() && !shard.contains_key(key) {
            return None;
        }
        let old = Arc::make_mut(shard).remove(key);
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// Every entry, shard by shard (no meaningful order: module doc).
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards.iter().flat_map(|s| s.iter())
    }

    /// Every value, shard by shard.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.shards.iter().flat_map(|s| s.values())
    }
}

impl<K: Hash + Eq + Clone, V: Clone> FromIterator<(K, V)> for ShardMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut map = ShardMap::default();
        for (k, v) in iter {
            map.insert(k, v);
        }
        map
    }
}

impl<K: Hash + Eq + Clone, V: Clone + PartialEq> PartialEq for ShardMap<K, V> {
    fn eq(&self, o: &Self) -> bool {
        self.len == o.len && self.iter().all(|(k, v)| o.get(k) == Some(v))
    }
}

impl<K: Hash + Eq + Clone, V: Clone + Eq> Eq for ShardMap<K, V> {}

impl<K: Hash + Eq + Clone + Ord + fmt::Debug, V: Clone + fmt::Debug> fmt::Debug for ShardMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut pairs: Vec<(&K, &V)> = self.iter().collect();
        pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
        f.debug_map().entries(pairs).finish()
    }
}

/// The pairs in key order (as the `StableMap`s this replaced were encoded).
impl<K: Hash + Eq + Clone + Ord + Serialize, V: Clone + Serialize> Serialize for ShardMap<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut pairs: Vec<(&K, &V)> = self.iter().collect();
        pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
        pairs.serialize(s)
    }
}

impl<'de, K, V> Deserialize<'de> for ShardMap<K, V>
where
    K: Hash + Eq + Clone + Deserialize<'de>,
    V: Clone + Deserialize<'de>,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let pairs: Vec<(K, V)> = Vec::deserialize(d)?;
        Ok(pairs.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::HoldId;
    use std::collections::BTreeMap;

    #[test]
    fn encodes_like_a_sorted_stable_map() {
        let plain: StableMap<HoldId, u32> = (1..5_000).map(|i| (HoldId(i), i as u32)).collect();
        let sharded: ShardMap<HoldId, u32> = plain.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(sharded.len, plain.len());
        // What `BedBook::holds` was encoded as before: its pairs sorted by key.
        let mut pairs: Vec<(HoldId, u32)> = plain.into_iter().collect();
        pairs.sort_unstable();
        let old = postcard::to_stdvec(&pairs).unwrap();
        assert_eq!(postcard::to_stdvec(&sharded).unwrap(), old);
        let back: ShardMap<HoldId, u32> = postcard::from_bytes(&old).unwrap();
        assert_eq!(back, sharded);
        let used = sharded.shards.iter().filter(|s| !s.is_empty()).count();
        assert!(used > SHARDS * 9 / 10, "keys spread over {used} shards");
    }

    #[test]
    fn the_slice_table_places_like_a_search_of_the_bounds() {
        let mut x: u64 = 1;
        for t in 0..(1u64 << TOP_BITS) {
            for h in [
                t << (64 - TOP_BITS),
                (t << (64 - TOP_BITS)) | 0xF_FFFF_FFFF_FFFF,
            ] {
                let search = SHARD_BOUNDS.partition_point(|&b| b <= h);
                assert_eq!(shard_of_mixed(h), search, "{h:#x}");
            }
        }
        for bound in SHARD_BOUNDS {
            for h in [bound - 1, bound, bound + 1] {
                let search = SHARD_BOUNDS.partition_point(|&b| b <= h);
                assert_eq!(shard_of_mixed(h), search, "{h:#x}");
            }
        }
        for _ in 0..100_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let search = SHARD_BOUNDS.partition_point(|&b| b <= x);
            assert_eq!(shard_of_mixed(x), search, "{x:#x}");
        }
    }

    #[test]
    fn shards_resize_one_after_another() {
        assert!(SHARD_BOUNDS.windows(2).all(|w| w[0] < w[1]));
        assert!(SHARD_BOUNDS[SHARDS - 2] < u64::MAX - u64::MAX / 512);
        let mut map: ShardMap<HoldId, ()> = ShardMap::default();
        let n: u64 = 1 << 18;
        // Resizes per 1,024 inserts in the map's last doubling (2^17 -> 2^18 entries).
        let mut per_window = vec![0u32; (n >> 10) as usize];
        for i in 0..n {
            let key = HoldId(i);
            let s = shard_of(&key);
            let before = map.shards[s].capacity();
            map.insert(key, ());
            if map.shards[s].capacity() != before {
                per_window[(i >> 10) as usize] += 1;
            }
        }
        let last_doubling = &per_window[per_window.len() / 2..];
        let resizes: u32 = last_doubling.iter().sum();
        assert!((128..=512).contains(&resizes), "{resizes} resizes");
        let worst = last_doubling.iter().max().copied().unwrap_or(0);
        assert!(
            worst <= 9,
            "{worst} shards resized within 1,024 inserts: {per_window:?}"
        );
        // Shares grow from the first shard to the last, about 1 : 2.
        let (first, last) = (map.shards[0].len(), map.shards[SHARDS - 1].len());
        assert!(
            last > first * 3 / 2 && last < first * 5 / 2,
            "{first} vs {last}"
        );
    }

    proptest::proptest! {
        /// Any sequence of inserts, removes and writes, with copies taken along the way,
        /// leaves the map equal to a `BTreeMap` given the same operations, and every copy
        /// equal to the `BTreeMap` as it was when the copy was taken.
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec((0u8..4, 0u64..3_000, proptest::prelude::any::<u32>()), 0..400)) {
            let mut map: ShardMap<HoldId, u32> = ShardMap::default();
            let mut tree: BTreeMap<HoldId, u32> = BTreeMap::new();
            let mut copies = Vec::new();
            for (op, k, v) in ops {
                let key = HoldId(k);
                match op {
                    0 => proptest::prop_assert_eq!(map.insert(key, v), tree.insert(key, v)),
                    1 => proptest::prop_assert_eq!(map.remove(&key), tree.remove(&key)),
                    2 => {
                        if let (Some(a), Some(b)) = (map.get_mut(&key), tree.get_mut(&key)) {
                            *a = v;
                            *b = v;
                        }
                    }
                    _ => copies.push((map.clone(), tree.clone())),
                }
                proptest::prop_assert_eq!(map.len, tree.len());
                proptest::prop_assert_eq!(map.contains_key(&key), tree.contains_key(&key));
            }
            let mut pairs: Vec<(HoldId, u32)> = map.iter().map(|(k, v)| (*k, *v)).collect();
            pairs.sort_unstable();
            proptest::prop_assert!(pairs.iter().map(|(k, v)| (k, v)).eq(tree.iter()));
            for (copy, then) in copies {
                proptest::prop_assert_eq!(copy.len, then.len());
                proptest::prop_assert!(then.iter().all(|(k, v)| copy.get(k) == Some(v)));
            }
        }
    }
}
