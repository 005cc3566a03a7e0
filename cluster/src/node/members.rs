//! The replicated member registry: who each member is, beyond its Raft id.
//!
//! Node id → [`Record`] (its incarnation, once registered, and its addresses when an
//! `AddMember` named them). Changed only by applied log entries, so every replica holds the
//! same registry at the same applied index, and carried in the snapshot envelope
//! (`payload::encode_snapshot`). Sans-I/O and deterministic (ordered maps only).
//!
//! **Incarnation.** A random number a node draws once, when it first creates its data
//! directory (`runtime::identity`). A node that lost its data directory comes back with a
//! new one. The leader registers the incarnation of every member it hears from
//! ([`SystemEntry::RegisterIncarnation`]); the first registration wins, and peers refuse
//! Raft traffic from a member presenting another (`runtime::peer_service::PeerGate`).
//! Removing a member deletes its record, so an id added back starts unregistered.

use super::membership::MembershipChange;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// How many applied membership requests the registry remembers by key (oldest forgotten
/// first): a retry of one of these is answered without a second change.
pub const MEMBERSHIP_REQUESTS_REMEMBERED: usize = 256;

/// What the registry knows of one member.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The member's incarnation, once the leader registered it (first wins).
    pub incarnation: Option<u64>,
    /// Its peer address, when the `AddMember` that added it named one.
    pub peer: Option<String>,
    /// Its client address, when the `AddMember` that added it named one.
    pub client: Option<String>,
}

/// The registry of one replica.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    records: BTreeMap<u64, Record>,
    /// The last applied membership requests, oldest first (at most
    /// [`MEMBERSHIP_REQUESTS_REMEMBERED`]). Encoded after `records`, so an older encoding
    /// (records only) still decodes ([`Registry::decode`]).
    requests: VecDeque<MembershipRequest>,
}

/// The registry encoding before membership requests were remembered.
#[derive(Deserialize)]
struct RegistryV1 {
    records: BTreeMap<u64, Record>,
}

/// What a membership change did, in a form the log and the registry carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    AddLearner,
    PromoteVoter,
    Remove,
}

/// One applied membership request: the client's request key (`request_id`) and its change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipRequest {
    pub key: u128,
    pub kind: ChangeKind,
    pub node: u64,
}

impl MembershipRequest {
    pub fn new(key: u128, change: MembershipChange) -> MembershipRequest {
        let (kind, node) = match change {
            MembershipChange::AddLearner(n) => (ChangeKind::AddLearner, n),
            MembershipChange::PromoteVoter(n) => (ChangeKind::PromoteVoter, n),
            MembershipChange::Remove(n) => (ChangeKind::Remove, n),
        };
        MembershipRequest { key, kind, node }
    }
}

/// The `context` of a conf change entry the leader proposes (empty in older entries).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeContext {
    /// The request that asked for the change, when it named a `request_id`.
    pub request: Option<MembershipRequest>,
}

impl ChangeContext {
    pub fn encode(&self) -> Vec<u8> {
        if *self == ChangeContext::default() {
            return Vec::new();
        }
        postcard::to_stdvec(self).unwrap_or_default()
    }

    /// Empty bytes (older entries, calls without a request id) decode to the default.
    pub fn decode(bytes: &[u8]) -> Result<ChangeContext, String> {
        if bytes.is_empty() {
            return Ok(ChangeContext::default());
        }
        postcard::from_bytes(bytes).map_err(|e| format!("conf change context: {e}"))
    }
}

/// An entry the cluster itself writes into the log (not a client command batch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SystemEntry {
    /// Records `incarnation` for `node` unless one is recorded already (first wins).
    RegisterIncarnation { node: u64, incarnation: u64 },
}

impl Registry {
    /// The record of `node`, if it has one.
    pub fn get(&self, node: u64) -> Option<&Record> {
        self.records.get(&node)
    }

    /// The recorded incarnation of `node`.
    pub fn incarnation(&self, node: u64) -> Option<u64> {
        self.records.get(&node).and_then(|r| r.incarnation)
    }

    /// Every record, in node order.
    pub fn records(&self) -> impl Iterator<Item = (u64, &Record)> {
        self.records.iter().map(|(id, r)| (*id, r))
    }

    /// Node id → recorded incarnation, for the peer gate.
    pub fn incarnations(&self) -> BTreeMap<u64, u64> {
        self.records
            .iter()
            .filter_map(|(id, r)| r.incarnation.map(|i| (*id, i)))
            .collect()
    }

    /// Applies a system entry; returns whether it changed anything. A registration for a
    /// node that already has an incarnation is ignored (the gate refuses the other one).
    pub fn apply(&mut self, entry: &SystemEntry) -> bool {
        match *entry {
            SystemEntry::RegisterIncarnation { node, incarnation } => {
                let record = self.records.entry(node).or_default();
                if record.incarnation.is_some() {
                    return false;
                }
                record.incarnation = Some(incarnation);
                true
            }
        }
    }

    /// A member was added (as a learner): records its addresses, if given. An existing
    /// record keeps its incarnation.
    pub fn added(&mut self, node: u64, peer: Option<String>, client: Option<String>) {
        let record = self.records.entry(node).or_default();
        if peer.is_some() {
            record.peer = peer;
        }
        if client.is_some() {
            record.client = client;
        }
    }

    /// An applied membership request, remembered by key (the oldest beyond
    /// [`MEMBERSHIP_REQUESTS_REMEMBERED`] is forgotten).
    pub fn remember(&mut self, request: MembershipRequest) {
        self.requests.retain(|r| r.key != request.key);
        self.requests.push_back(request);
        while self.requests.len() > MEMBERSHIP_REQUESTS_REMEMBERED {
            self.requests.pop_front();
        }
    }

    /// The applied membership request with key `key`, if still remembered.
    pub fn request(&self, key: u128) -> Option<&MembershipRequest> {
        self.requests.iter().find(|r| r.key == key)
    }

    /// A member was removed: its record goes, so the id added back starts unregistered.
    pub fn removed(&mut self, node: u64) {
        self.records.remove(&node);
    }

    /// The registry's bytes in the snapshot envelope.
    pub fn encode(&self) -> Vec<u8> {
        // A BTreeMap of plain values: encoding cannot fail; empty bytes would decode to an
        // empty registry, never to a wrong one.
        postcard::to_stdvec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Registry, String> {
        if bytes.is_empty() {
            return Ok(Registry::default());
        }
        match postcard::from_bytes::<Registry>(bytes) {
            Ok(r) => Ok(r),
            Err(e) => match postcard::from_bytes::<RegistryV1>(bytes) {
                Ok(v1) => Ok(Registry {
                    records: v1.records,
                    requests: VecDeque::new(),
                }),
                Err(_) => Err(format!("member registry: {e}")),
            },
        }
    }
}

impl SystemEntry {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<SystemEntry, String> {
        postcard::from_bytes(bytes).map_err(|e| format!("system entry: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_registration_wins_and_removal_forgets() {
        let mut r = Registry::default();
        let reg = |node, incarnation| SystemEntry::RegisterIncarnation { node, incarnation };
        assert!(r.apply(&reg(3, 7)));
        assert!(!r.apply(&reg(3, 8)), "a second incarnation is ignored");
        assert_eq!(r.incarnation(3), Some(7));
        r.added(3, Some("p".into()), None);
        assert_eq!(r.incarnation(3), Some(7), "adding keeps the incarnation");
        r.removed(3);
        assert_eq!(r.get(3), None);
        assert!(r.apply(&reg(3, 8)), "an id added back registers anew");
        let back = Registry::decode(&r.encode()).unwrap();
        assert_eq!(back, r);
        assert_eq!(Registry::decode(&[]).unwrap(), Registry::default());
        assert!(Registry::decode(&[0xff, 0xff, 0xff]).is_err());
        let e = reg(1, u64::MAX);
        assert_eq!(SystemEntry::decode(&e.encode()).unwrap(), e);
    }

    #[test]
    fn membership_requests_are_remembered_bounded_and_survive_encoding() {
        let mut r = Registry::default();
        r.added(2, None, None);
        let old = postcard::to_stdvec(&r.records).unwrap();
        assert_eq!(
            Registry::decode(&old).unwrap(),
            r,
            "the older encoding decodes"
        );
        for key in 0..(MEMBERSHIP_REQUESTS_REMEMBERED as u128 + 1) {
            r.remember(MembershipRequest::new(key, MembershipChange::Remove(3)));
        }
        assert_eq!(r.request(0), None, "the oldest is forgotten");
        let last = MEMBERSHIP_REQUESTS_REMEMBERED as u128;
        assert_eq!(r.request(last).map(|q| q.kind), Some(ChangeKind::Remove));
        assert_eq!(Registry::decode(&r.encode()).unwrap(), r);
        let ctx = ChangeContext {
            request: Some(MembershipRequest::new(9, MembershipChange::AddLearner(4))),
        };
        assert_eq!(ChangeContext::decode(&ctx.encode()).unwrap(), ctx);
        assert_eq!(
            ChangeContext::decode(&[]).unwrap(),
            ChangeContext::default()
        );
    }
}
