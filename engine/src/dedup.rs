//! The idempotency table: request key → first outcome, bounded in count and in log time.
//!
//! A mutating command that succeeds is remembered with a [`Fingerprint`] of the command
//! (SHA-256, so two different commands never pass for one), its reply and the log index that
//! applied it (which a replayed answer reports). A repeat of the request id with the same command returns the remembered reply and
//! changes nothing; with a different command it is refused (`RequestIdReused`). Refused
//! commands are not remembered: they changed nothing, so a retry is simply evaluated again.
//! That rule is what lets a node answer a refusal as a read, without a log entry
//! (`Engine::decided`, `apply::precheck`): a refusal is a function of the state alone.
//!
//! The guarantee holds for retries within `Policy::dedup_window_ms` of log time *and* within
//! the last `DEDUP_ENTRIES_MAX` remembered requests, whichever is shorter; the oldest entries
//! are evicted first. Eviction is driven by apply only, so every replica evicts the same ones.

use crate::command::Reply;
use crate::ids::{RequestId, RequestKey};
use crate::shard_map::ShardMap;
use crate::time::{LogTime, MS_PER_MINUTE};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Default dedup window: longer than any client's retry budget.
pub const DEDUP_WINDOW_MS_DEFAULT: u64 = 15 * MS_PER_MINUTE;
/// Most request ids remembered at once (about 100 MiB of memory at the limit).
pub const DEDUP_ENTRIES_MAX: usize = 1 << 20;

/// What the table keeps per request key (the key and time live in the arrival queue).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Remembered {
    /// The command's fingerprint, to tell a retry from a reused request id.
    pub fingerprint: Fingerprint,
    /// The log index that first applied the request (0 when not applied from a log).
    pub index: u64,
    pub reply: Reply,
}

/// One remembered request, as serialized.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct DedupEntry {
    pub request: RequestKey,
    pub at: LogTime,
    /// The log index that first applied the request (0 when not applied from a log).
    pub index: u64,
    /// The command's fingerprint, to tell a retry from a reused request id.
    pub fingerprint: Fingerprint,
    pub reply: Reply,
}

/// A remembered key in the arrival queue, packed to 32 bytes: a `(RequestKey, LogTime)`
/// pair takes 48, because the `u128` inside forces 16-byte alignment.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Arrival {
    key: PackedKey,
    at: LogTime,
}

/// The remembered kinds of [`RequestKey`] (ticks never are), with 8-byte alignment.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum PackedKey {
    /// A client's id as its low and high halves.
    Client([u64; 2]),
    Bootstrap(u32),
}

// The queue holds up to `DEDUP_ENTRIES_MAX` of these; keep them packed.
const _: () = assert!(std::mem::size_of::<Arrival>() <= 32);

impl Arrival {
    /// The arrival of `key` at `at`; `None` for a tick, which is never remembered.
    fn new(key: RequestKey, at: LogTime) -> Option<Arrival> {
        let key = match key {
            RequestKey::Client(RequestId(id)) => PackedKey::Client([id as u64, (id >> 64) as u64]),
            RequestKey::Bootstrap(n) => PackedKey::Bootstrap(n),
            RequestKey::Tick(_) => return None,
        };
        Some(Arrival { key, at })
    }

    fn key(self) -> RequestKey {
        match self.key {
            PackedKey::Client([low, high]) => {
                RequestKey::Client(RequestId(u128::from(low) | (u128::from(high) << 64)))
            }
            PackedKey::Bootstrap(n) => RequestKey::Bootstrap(n),
        }
    }
}

/// The table. Canonical form: entries in arrival order.
///
/// Client ids, nearly every entry, are keyed by their bare 16-byte [`RequestId`]; the
/// region bootstrap's few keys live in a small map of their own, and ticks are never
/// remembered. Keying the big map by the whole [`RequestKey`] enum (32 bytes with its tag and
/// padding) made every slot of a ~100 MB table larger for no information.
#[derive(Clone, Debug, Default)]
pub struct DedupTable {
    /// Arrival order with arrival time, so expiry never has to look into the maps.
    order: VecDeque<Arrival>,
    /// In shards (`shard_map`): at 10^6 remembered ids one table's resize stalled every
    /// replica on the same entry for up to a second.
    clients: ShardMap<RequestId, Remembered>,
    bootstrap: BTreeMap<u32, Remembered>,
}

impl PartialEq for DedupTable {
    fn eq(&self, o: &Self) -> bool {
        self.order == o.order
            && self
                .order
                .iter()
                .all(|a| self.lookup(a.key()) == o.lookup(a.key()))
    }
}

impl DedupTable {
    /// The remembered entry for `key` (a client's `RequestId` or any `RequestKey`).
    pub fn get(&self, key: impl Into<RequestKey>) -> Option<&Remembered> {
        self.lookup(key.into())
    }

    fn lookup(&self, key: RequestKey) -> Option<&Remembered> {
        match key {
            RequestKey::Client(id) => self.clients.get(&id),
            RequestKey::Bootstrap(n) => self.bootstrap.get(&n),
            RequestKey::Tick(_) => None,
        }
    }

    fn forget(&mut self, key: RequestKey) {
        match key {
            RequestKey::Client(id) => {
                self.clients.remove(&id);
            }
            RequestKey::Bootstrap(n) => {
                self.bootstrap.remove(&n);
            }
            RequestKey::Tick(_) => {}
        }
    }

    /// Number of remembered requests.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Remembers a successful request, evicting the oldest entry when full. Ticks are never
    /// remembered (each log index is applied once), so one is ignored here.
    pub(crate) fn insert(&mut self, entry: DedupEntry) {
        let Some(arrival) = Arrival::new(entry.request, entry.at) else {
            return;
        };
        if self.order.len() >= DEDUP_ENTRIES_MAX {
            if let Some(old) = self.order.pop_front() {
                self.forget(old.key());
            }
        }
        self.order.push_back(arrival);
        let remembered = Remembered {
            fingerprint: entry.fingerprint,
            index: entry.index,
            reply: entry.reply,
        };
        match entry.request {
            RequestKey::Client(id) => {
                self.clients.insert(id, remembered);
            }
            RequestKey::Bootstrap(n) => {
                self.bootstrap.insert(n, remembered);
            }
            RequestKey::Tick(_) => {}
        }
    }

    /// Forgets entries older than `cutoff`, at most `max`.
    pub(crate) fn expire(&mut self, cutoff: LogTime, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            let Some(&arrival) = self.order.front() else {
                break;
            };
            if arrival.at > cutoff {
                break;
            }
            self.order.pop_front();
            self.forget(arrival.key());
            n += 1;
        }
        n
    }

    /// Entries in arrival order (the canonical, serialized form).
    pub fn entries(&self) -> impl Iterator<Item = DedupEntry> + '_ {
        self.order.iter().filter_map(|&arrival| {
            let request = arrival.key();
            self.lookup(request).map(|r| DedupEntry {
                request,
                at: arrival.at,
                index: r.index,
                fingerprint: r.fingerprint,
                reply: r.reply.clone(),
            })
        })
    }
}

impl Serialize for DedupTable {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // postcard needs the length up front, which a filtered iterator does not give.
        let list: Vec<DedupEntry> = self.entries().collect();
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

pub use crate::hashing::Fingerprint;

#[cfg(test)]
mod tests {
    use crate::command::{Command, Reply, Request};
    use crate::engine::Engine;
    use crate::error::Rejection;
    use crate::ids::{RequestId, RequestKey};
    use crate::region::Policy;
    use crate::time::LogTime;

    const AT: LogTime = LogTime(1_000_000);

    fn policy(reach_minutes: u32) -> Command {
        Command::SetPolicy(Policy {
            reach_minutes,
            ..Policy::default()
        })
    }

    /// The node's own keys and client ids live apart: a client id equal to a bootstrap
    /// number (or to the old reserved range, 2^127 + n) neither replays nor blocks it.
    #[test]
    fn client_ids_never_meet_the_nodes_own_keys() {
        let mut e = Engine::new();
        e.apply_as(RequestKey::Bootstrap(0), &policy(60), AT, 1)
            .unwrap();
        for id in [0, 1 << 127, 1 << 126] {
            let client = Request {
                id: RequestId(id),
                command: policy(70),
            };
            assert_eq!(e.apply(&client, AT), Ok(Reply::Done), "{id:x}");
        }
        assert_eq!(e.policy().reach_minutes, 70);
        let reused = e.apply_as(RequestKey::Bootstrap(0), &policy(80), AT, 2);
        assert!(
            matches!(reused, Err(Rejection::Invalid { .. })),
            "{reused:?}"
        );
        assert_eq!(e.dedup().len(), 4);
    }

    /// A replay answers from the table, which keeps the index that first applied it.
    #[test]
    fn the_first_log_index_is_remembered_and_ticks_are_not() {
        let mut e = Engine::new();
        let key = RequestKey::Client(RequestId(7));
        e.apply_as(key, &policy(60), AT, 41).unwrap();
        let hash = e.state_hash();
        assert_eq!(e.apply_as(key, &policy(60), AT, 99), Ok(Reply::Done));
        assert_eq!(e.dedup().get(key).map(|r| r.index), Some(41));
        assert_eq!(e.state_hash(), hash, "a replay changes nothing");
        assert_eq!(
            e.apply_as(key, &policy(61), AT, 100),
            Err(Rejection::RequestIdReused(RequestId(7)))
        );
        e.apply_as(RequestKey::Tick(101), &Command::Tick, AT, 101)
            .unwrap();
        assert_eq!(e.dedup().len(), 1, "ticks are not remembered");
    }

    /// Fingerprints tell commands apart by their whole encoding, not a 64-bit mix.
    #[test]
    fn fingerprints_differ_for_different_commands_and_are_pinned() {
        use super::Fingerprint;
        let a = Fingerprint::of(&policy(60)).unwrap();
        assert_eq!(Fingerprint::of(&policy(60)), Some(a));
        assert_ne!(Fingerprint::of(&policy(61)), Some(a));
        assert_ne!(Fingerprint::of(&Command::Tick), Some(a));
        // SHA-256 over the tag and postcard's encoding of `Tick` (variant 0).
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(b"ninety.command_fingerprint.v1\0\x00");
        assert_eq!(Fingerprint::of(&Command::Tick).unwrap().0, digest[..16]);
    }

    /// The packed arrival queue gives back every remembered key exactly.
    #[test]
    fn arrivals_keep_whole_client_ids_and_bootstrap_numbers() {
        use super::Arrival;
        for key in [
            RequestKey::Client(RequestId(0)),
            RequestKey::Client(RequestId(u128::MAX)),
            RequestKey::Client(RequestId(1 << 64)),
            RequestKey::Client(RequestId((1 << 64) - 1)),
            RequestKey::Bootstrap(0),
            RequestKey::Bootstrap(u32::MAX),
        ] {
            assert_eq!(
                Arrival::new(key, AT).map(|a| (a.key(), a.at)),
                Some((key, AT))
            );
        }
        assert_eq!(Arrival::new(RequestKey::Tick(5), AT), None);
    }

    /// Small encodings are hashed from a stack buffer and large ones streamed: both are
    /// SHA-256 over the tag and the whole postcard encoding.
    #[test]
    fn buffered_and_streamed_fingerprints_hash_the_same_bytes() {
        use super::Fingerprint;
        use crate::command::Command;
        use crate::ids::{DoctorId, PatientRef};
        use sha2::{Digest, Sha256};
        let whole = |c: &Command| {
            let bytes = postcard::to_stdvec(c).unwrap();
            let digest = Sha256::new()
                .chain_update(crate::hashing::FINGERPRINT_DOMAIN_TAG)
                .chain_update(&bytes)
                .finalize();
            (bytes.len(), digest[..16].to_vec())
        };
        let small = policy(60);
        let large = Command::HoldJointConsultIn {
            doctors: (0..500).map(DoctorId).collect(),
            earliest: LogTime(0),
            latest: LogTime(1),
            duration_minutes: 30,
            patient: PatientRef(9),
            ttl_ms: 1,
        };
        for (command, stack) in [(small, true), (large, false)] {
            let (len, digest) = whole(&command);
            assert_eq!(len <= 256, stack, "{len} bytes");
            assert_eq!(Fingerprint::of(&command).unwrap().0[..], digest[..]);
        }
    }
}
