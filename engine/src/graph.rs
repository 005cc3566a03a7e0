//! The referral graph: hospitals as nodes; road, alliance and typed referral edges (petgraph).
//!
//! The canonical state is three ordered edge maps (serialized, hashed); the petgraph graph and
//! each hospital's 90-minute reach are derived from them and rebuilt when they change, so
//! reach queries are a lookup, not a search.

use crate::ids::{AllianceId, HospitalId};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

/// The direction of a referral along the tiers (双向转诊).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferralKind {
    /// Towards a higher tier, for serious cases.
    UpTier,
    /// Towards a lower tier, for recovery and follow-up.
    DownTier,
    /// Between hospitals of the same tier.
    SameLevel,
}

/// An edge of the petgraph graph.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Link {
    /// Road travel, in minutes (stored in both directions).
    Road { travel_minutes: u32 },
    /// Both ends belong to the alliance (stored in both directions).
    Alliance(AllianceId),
    /// A referral path from the source to the target.
    Referral(ReferralKind),
}

/// The referral graph's canonical edges plus derived indexes.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ReferralGraph {
    /// Road travel minutes between two hospitals, keyed with the smaller id first.
    roads: BTreeMap<(HospitalId, HospitalId), u32>,
    /// Alliance memberships.
    alliances: BTreeMap<AllianceId, BTreeSet<HospitalId>>,
    /// Typed, directed referral paths.
    referrals: BTreeMap<(HospitalId, HospitalId), ReferralKind>,
    #[serde(skip)]
    derived: Derived,
}

#[derive(Clone, Debug, Default)]
struct Derived {
    graph: DiGraph<HospitalId, Link>,
    nodes: BTreeMap<HospitalId, NodeIndex>,
    /// Each hospital's reach: (hospital, minutes) sorted by minutes then id, itself first.
    reach: BTreeMap<HospitalId, Vec<(HospitalId, u32)>>,
    /// The same as a lookup table.
    reach_minutes: BTreeMap<(HospitalId, HospitalId), u32>,
}

impl PartialEq for ReferralGraph {
    fn eq(&self, other: &Self) -> bool {
        self.roads == other.roads
            && self.alliances == other.alliances
            && self.referrals == other.referrals
    }
}

impl ReferralGraph {
    /// Sets (or with `None`, removes) the road travel time between two hospitals.
    pub fn set_road(&mut self, a: HospitalId, b: HospitalId, travel_minutes: Option<u32>) {
        let key = if a <= b { (a, b) } else { (b, a) };
        match travel_minutes {
            Some(m) => self.roads.insert(key, m),
            None => self.roads.remove(&key),
        };
    }

    /// Sets (or removes) a typed referral path.
    pub fn set_referral(&mut self, from: HospitalId, to: HospitalId, kind: Option<ReferralKind>) {
        match kind {
            Some(k) => self.referrals.insert((from, to), k),
            None => self.referrals.remove(&(from, to)),
        };
    }

    /// Replaces the alliances a hospital belongs to.
    pub fn set_memberships(&mut self, hospital: HospitalId, alliances: &[AllianceId]) {
        for members in self.alliances.values_mut() {
            members.remove(&hospital);
        }
        for a in alliances {
            self.alliances.entry(*a).or_default().insert(hospital);
        }
        self.alliances.retain(|_, m| !m.is_empty());
    }

    /// The typed referral path from `from` to `to`, if any.
    pub fn referral_kind(&self, from: HospitalId, to: HospitalId) -> Option<ReferralKind> {
        self.referrals.get(&(from, to)).copied()
    }

    /// Whether two hospitals share an alliance.
    pub fn allied(&self, a: HospitalId, b: HospitalId) -> bool {
        self.alliances
            .values()
            .any(|m| m.contains(&a) && m.contains(&b))
    }

    /// Road edges, for export.
    pub fn roads(&self) -> impl Iterator<Item = (HospitalId, HospitalId, u32)> + '_ {
        self.roads.iter().map(|(&(a, b), &m)| (a, b, m))
    }

    /// Referral edges, for export.
    pub fn referral_paths(
        &self,
    ) -> impl Iterator<Item = (HospitalId, HospitalId, ReferralKind)> + '_ {
        self.referrals.iter().map(|(&(a, b), &k)| (a, b, k))
    }

    /// Hospitals within the reach radius of `origin`, nearest first, `origin` itself first.
    pub fn reach(&self, origin: HospitalId) -> &[(HospitalId, u32)] {
        self.derived
            .reach
            .get(&origin)
            .map(|v| v.as_slice())
            .unwrap_or(&[])
    }

    /// Travel minutes from `a` to `b` if `b` is inside `a`'s reach.
    pub fn travel_within_reach(&self, a: HospitalId, b: HospitalId) -> Option<u32> {
        self.derived.reach_minutes.get(&(a, b)).copied()
    }

    /// Shortest road travel minutes from `a` to `b` with no cutoff; `None` if unreachable.
    pub fn travel_minutes(&self, a: HospitalId, b: HospitalId) -> Option<u32> {
        if let Some(m) = self.travel_within_reach(a, b) {
            return Some(m);
        }
        let start = *self.derived.nodes.get(&a)?;
        let goal = *self.derived.nodes.get(&b)?;
        dijkstra(&self.derived.graph, start, u32::MAX)
            .into_iter()
            .find(|(n, _)| *n == goal)
            .map(|(_, m)| m)
    }

    /// Rebuilds the petgraph graph and every hospital's reach within `reach_minutes`.
    pub fn rebuild(&mut self, hospitals: impl Iterator<Item = HospitalId>, reach_minutes: u32) {
        let mut d = Derived::default();
        for h in hospitals {
            let n = d.graph.add_node(h);
            d.nodes.insert(h, n);
        }
        for (&(a, b), &m) in &self.roads {
            if let (Some(&na), Some(&nb)) = (d.nodes.get(&a), d.nodes.get(&b)) {
                d.graph.add_edge(na, nb, Link::Road { travel_minutes: m });
                d.graph.add_edge(nb, na, Link::Road { travel_minutes: m });
            }
        }
        for (&id, members) in &self.alliances {
            let nodes: Vec<NodeIndex> = members
                .iter()
                .filter_map(|h| d.nodes.get(h))
                .copied()
                .collect();
            for (i, &x) in nodes.iter().enumerate() {
                for &y in &nodes[i + 1..] {
                    d.graph.add_edge(x, y, Link::Alliance(id));
                    d.graph.add_edge(y, x, Link::Alliance(id));
                }
            }
        }
        for (&(a, b), &k) in &self.referrals {
            if let (Some(&na), Some(&nb)) = (d.nodes.get(&a), d.nodes.get(&b)) {
                d.graph.add_edge(na, nb, Link::Referral(k));
            }
        }
        for (&h, &n) in &d.nodes {
            let mut reached: Vec<(HospitalId, u32)> = dijkstra(&d.graph, n, reach_minutes)
                .into_iter()
                .map(|(node, m)| (d.graph[node], m))
                .collect();
            reached.sort_by_key(|&(id, m)| (m, id));
            for &(to, m) in &reached {
                d.reach_minutes.insert((h, to), m);
            }
            d.reach.insert(h, reached);
        }
        self.derived = d;
    }
}

/// Dijkstra over road edges from `start`, stopping at `cutoff_minutes` (inclusive).
/// Returns every node reached with its shortest travel time.
fn dijkstra(
    graph: &DiGraph<HospitalId, Link>,
    start: NodeIndex,
    cutoff_minutes: u32,
) -> Vec<(NodeIndex, u32)> {
    let mut best: BTreeMap<NodeIndex, u32> = BTreeMap::new();
    let mut heap = BinaryHeap::new();
    best.insert(start, 0);
    heap.push(Reverse((0u32, start)));
    let mut done = Vec::new();
    let mut settled = BTreeSet::new();
    while let Some(Reverse((dist, node))) = heap.pop() {
        if !settled.insert(node) {
            continue;
        }
        done.push((node, dist));
        for edge in graph.edges(node) {
            let Link::Road { travel_minutes } = *edge.weight() else {
                continue;
            };
            let next = dist.saturating_add(travel_minutes);
            if next > cutoff_minutes {
                continue;
            }
            let target = edge.target();
            if best.get(&target).is_none_or(|&b| next < b) {
                best.insert(target, next);
                heap.push(Reverse((next, target)));
            }
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u32) -> HospitalId {
        HospitalId(n)
    }

    /// A line 1 —30— 2 —40— 3 —30— 4 and a shortcut 1 —100— 4.
    fn line() -> ReferralGraph {
        let mut g = ReferralGraph::default();
        g.set_road(h(1), h(2), Some(30));
        g.set_road(h(2), h(3), Some(40));
        g.set_road(h(3), h(4), Some(30));
        g.set_road(h(1), h(4), Some(100));
        g.rebuild([1, 2, 3, 4, 5].map(h).into_iter(), 90);
        g
    }

    #[test]
    fn reach_is_cut_at_the_radius() {
        let g = line();
        // 1→2 30, 1→3 70, 1→4 min(100, 100) = 100 > 90: outside.
        assert_eq!(g.reach(h(1)), &[(h(1), 0), (h(2), 30), (h(3), 70)]);
        assert_eq!(
            g.reach(h(2)),
            &[(h(2), 0), (h(1), 30), (h(3), 40), (h(4), 70)]
        );
    }

    #[test]
    fn reach_uses_multi_hop_paths_and_includes_the_boundary() {
        let mut g = line();
        g.set_road(h(1), h(4), Some(95));
        g.rebuild([1, 2, 3, 4, 5].map(h).into_iter(), 95);
        // 1→4 is 95 both directly and via 2,3 (30+40+30=100): the direct road wins, exactly at the radius.
        assert_eq!(g.travel_within_reach(h(1), h(4)), Some(95));
        assert_eq!(g.travel_within_reach(h(4), h(2)), Some(70));
    }

    #[test]
    fn unconnected_hospitals_reach_only_themselves() {
        let g = line();
        assert_eq!(g.reach(h(5)), &[(h(5), 0)]);
        assert_eq!(g.travel_minutes(h(1), h(5)), None);
        assert_eq!(g.reach(h(9)), &[] as &[(HospitalId, u32)]);
    }

    #[test]
    fn travel_beyond_reach_is_found_without_cutoff() {
        let g = line();
        assert_eq!(g.travel_within_reach(h(1), h(4)), None);
        assert_eq!(g.travel_minutes(h(1), h(4)), Some(100));
    }

    #[test]
    fn alliances_and_referral_paths() {
        let mut g = line();
        g.set_memberships(h(1), &[AllianceId(7)]);
        g.set_memberships(h(3), &[AllianceId(7), AllianceId(8)]);
        g.set_referral(h(1), h(3), Some(ReferralKind::UpTier));
        assert!(g.allied(h(1), h(3)));
        assert!(!g.allied(h(1), h(2)));
        g.set_memberships(h(3), &[AllianceId(8)]);
        assert!(!g.allied(h(1), h(3)));
        assert_eq!(g.referral_kind(h(1), h(3)), Some(ReferralKind::UpTier));
        assert_eq!(g.referral_kind(h(3), h(1)), None);
    }
}
