//! [`CowMap`]: an ordered map whose entries live in shared chunks, so that a copy of it (the
//! image a snapshot is written from, off the node task) costs one reference count per
//! chunk instead of a copy of every entry, and a later write copies only the chunk it
//! touches while an image still shares it (`Arc::make_mut`).
//!
//! It holds the region's beds (8.19 M in the largest region): a `BTreeMap` of them took
//! most of a full copy of the state. Entries are grouped by [`Chunked::chunk`], which must
//! be monotonic in the key, so iterating chunk after chunk is key order; the serde form is
//! exactly a `BTreeMap`'s (a map in key order), so snapshots and the state hash do not
//! change.

use serde::de::Deserializer;
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// A key that knows its chunk: `a <= b` implies `a.chunk() <= b.chunk()`.
pub trait Chunked {
    fn chunk(&self) -> u64;
}

/// Bed ids are dense from 1: this many consecutive ids share a chunk (a write during a
/// snapshot copies at most one chunk of ~32 KiB per bed it touches).
pub const BEDS_PER_CHUNK: u64 = 1024;

impl Chunked for crate::ids::BedId {
    fn chunk(&self) -> u64 {
        u64::from(self.0) / BEDS_PER_CHUNK
    }
}

/// Slot ids are dense from 1 (allocated in publication order): this many consecutive ids
/// share a chunk (a write during a snapshot copies at most ~60 KiB per slot it touches).
pub const SLOTS_PER_CHUNK: u64 = 1024;

impl Chunked for crate::ids::SlotId {
    fn chunk(&self) -> u64 {
        self.0 / SLOTS_PER_CHUNK
    }
}

/// The map (see the module doc).
pub struct CowMap<K, V> {
    chunks: BTreeMap<u64, Arc<BTreeMap<K, V>>>,
    len: usize,
}

impl<K, V> Default for CowMap<K, V> {
    fn default() -> Self {
        CowMap {
            chunks: BTreeMap::new(),
            len: 0,
        }
    }
}

/// A shallow copy: the chunks are shared until one side writes to one.
impl<K, V> Clone for CowMap<K, V> {
    fn clone(&self) -> Self {
        CowMap {
            chunks: self.chunks.clone(),
            len: self.len,
        }
    }
}

impl<K: Ord + Chunked + Clone, V: Clone> CowMap<K, V> {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The value of `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.chunks.get(&key.chunk())?.get(key)
    }

    /// The value of `key`, to change: copies its chunk first if an image shares it.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let chunk = self.chunks.get_mut(&key.chunk())?;
        if !chunk.contains_key(key) {
            return None;
        }
        Arc::make_mut(chunk).get_mut(key)
    }

    /// Inserts or replaces; returns the value replaced.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let chunk = self.chunks.entry(key.chunk()).or_default();
        let old = Arc::make_mut(chunk).insert(key, value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes `key`; returns its value. A chunk left empty is dropped.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let c = key.chunk();
        let chunk = self.chunks.get_mut(&c)?;
        if !chunk.contains_key(key) {
            return None;
        }
        let old = Arc::make_mut(chunk).remove(key);
        if chunk.is_empty() {
            self.chunks.remove(&c);
        }
        self.len -= 1;
        old
    }

    /// Whether the map holds `key`.
    pub fn contains_key(&self, key: &K) -> bool {
        self.get(key).is_some()
    }

    /// Every key in order.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.chunks.values().flat_map(|c| c.keys())
    }

    /// Every entry in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.chunks.values().flat_map(|c| c.iter())
    }

    /// Every value in key order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.chunks.values().flat_map(|c| c.values())
    }
}

impl<K: Ord + Chunked + Clone, V: Clone> FromIterator<(K, V)> for CowMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut map = CowMap::default();
        for (k, v) in iter {
            map.insert(k, v);
        }
        map
    }
}

impl<K: Ord + Chunked + Clone, V: Clone + PartialEq> PartialEq for CowMap<K, V> {
    fn eq(&self, o: &Self) -> bool {
        self.len == o.len && self.iter().eq(o.iter())
    }
}

impl<K: Ord + Chunked + Clone + fmt::Debug, V: Clone + fmt::Debug> fmt::Debug for CowMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Exactly a `BTreeMap`'s encoding: a map of `len` entries in key order.
impl<K: Ord + Chunked + Clone + Serialize, V: Clone + Serialize> Serialize for CowMap<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.len))?;
        for (k, v) in self.iter() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de, K, V> Deserialize<'de> for CowMap<K, V>
where
    K: Ord + Chunked + Clone + Deserialize<'de>,
    V: Clone + Deserialize<'de>,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(BTreeMap::<K, V>::deserialize(d)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::BedId;

    #[test]
    fn a_copy_shares_chunks_until_written_and_encodes_like_a_btreemap() {
        let ids = [1u32, 5, 1023, 1024, 1025, 4096, 70_000];
        let tree: BTreeMap<BedId, u32> = ids.iter().map(|&i| (BedId(i), i)).collect();
        let mut map: CowMap<BedId, u32> = ids.iter().map(|&i| (BedId(i), i)).collect();
        assert_eq!(map.len(), ids.len());
        assert_eq!(
            postcard::to_stdvec(&map).unwrap(),
            postcard::to_stdvec(&tree).unwrap()
        );
        let image = map.clone();
        *map.get_mut(&BedId(1024)).unwrap() = 7;
        assert_eq!(
            image.get(&BedId(1024)),
            Some(&1024),
            "the image is unchanged"
        );
        assert_eq!(map.get(&BedId(1024)), Some(&7));
        assert!(map.get_mut(&BedId(2)).is_none());
        assert_eq!(map.insert(BedId(2), 2), None);
        assert_eq!(map.len(), ids.len() + 1);
        assert_eq!(image.len(), ids.len());
        let keys: Vec<u32> = map.iter().map(|(k, _)| k.0).collect();
        assert_eq!(keys, [1, 2, 5, 1023, 1024, 1025, 4096, 70_000]);
        let back: CowMap<BedId, u32> =
            postcard::from_bytes(&postcard::to_stdvec(&image).unwrap()).unwrap();
        assert_eq!(back, image);
    }

    proptest::proptest! {
        /// Any sequence of inserts, removes and writes, with images taken along the way,
        /// leaves the map equal to a `BTreeMap` given the same operations, and every image
        /// equal to the `BTreeMap` as it was when the image was taken.
        #[test]
        fn behaves_like_a_btreemap(ops in proptest::collection::vec((0u8..4, 0u32..5_000, proptest::prelude::any::<u32>()), 0..400)) {
            let mut map: CowMap<BedId, u32> = CowMap::default();
            let mut tree: BTreeMap<BedId, u32> = BTreeMap::new();
            let mut images = Vec::new();
            for (op, k, v) in ops {
                let key = BedId(k);
                match op {
                    0 => proptest::prop_assert_eq!(map.insert(key, v), tree.insert(key, v)),
                    1 => proptest::prop_assert_eq!(map.remove(&key), tree.remove(&key)),
                    2 => {
                        if let (Some(a), Some(b)) = (map.get_mut(&key), tree.get_mut(&key)) {
                            *a = v;
                            *b = v;
                        }
                    }
                    _ => images.push((map.clone(), tree.clone())),
                }
                proptest::prop_assert_eq!(map.len(), tree.len());
                proptest::prop_assert_eq!(map.contains_key(&key), tree.contains_key(&key));
            }
            proptest::prop_assert!(map.keys().eq(tree.keys()));
            proptest::prop_assert!(map.iter().eq(tree.iter()));
            for (image, then) in images {
                proptest::prop_assert!(image.iter().eq(then.iter()));
                proptest::prop_assert_eq!(image.len(), then.len());
            }
        }
    }
}
