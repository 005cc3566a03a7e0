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
use crate::hashing::StableMap;
use crate::ids::RequestId;
use crate::time::{LogTime, MS_PER_MINUTE};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Default dedup window: longer than any client's retry budget.
pub const DEDUP_WINDOW_MS_DEFAULT: u64 = 15 * MS_PER_MINUTE;
/// Most request ids remembered at once (about 100 MiB of memory at the limit).
pub const DEDUP_ENTRIES_MAX: usize = 1 << 20;

/// What the table keeps per request id (the id and time live in the arrival queue).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Remembered {
    /// A stable 64-bit fingerprint of the command, to catch id reuse.
    pub fingerprint: u64,
    pub reply: Reply,
}

/// One remembered request, as serialized.
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
    entries: StableMap<RequestId, Remembered>,
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
    pub fn get(&self, id: RequestId) -> Option<&Remembered> {
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
        let remembered = Remembered {
            fingerprint: entry.fingerprint,
            reply: entry.reply,
        };
        self.entries.insert(entry.request, remembered);
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
    pub fn entries(&self) -> impl Iterator<Item = DedupEntry> + '_ {
        self.order.iter().filter_map(|&(request, at)| {
            self.entries.get(&request).map(|r| DedupEntry {
                request,
                at,
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

pub use crate::hashing::{fingerprint, StableHasher};
