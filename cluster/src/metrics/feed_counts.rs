//! Counts of the engine's events (holds placed and resolved, seats, referral moves), added
//! by the change feed where it records each event (`Feed::count_with`): an atomic add per
//! event on the node task. They were first counted by a watcher task of their own; at
//! ~200,000 events/s (the batched bench) its receive and wake-up per event cost 15–20 %
//! of the batched throughput (docs/performance.md, "The cost of metrics"). Counted from the
//! node's start; a snapshot installed here skips the entries it covers: their events never
//! pass through this node.
//!
//! Each region's feed has its own counts; a scrape shows them all under a `region` label
//! ([`RegionFeedCounts`], one family per metric).

use ninety_engine::Event;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::sync::{Arc, RwLock};

/// Counters by the state an event moved something to: a handful of states per metric,
/// found by a scan under a read lock (the first event of a state adds its counter).
#[derive(Clone, Debug, Default)]
struct ByState(Arc<RwLock<Vec<(&'static str, Counter)>>>);

impl ByState {
    fn inc(&self, state: &'static str) {
        let known = self.0.read().unwrap_or_else(|p| p.into_inner());
        if let Some((_, c)) = known.iter().find(|(s, _)| *s == state) {
            c.inc();
            return;
        }
        drop(known);
        let mut all = self.0.write().unwrap_or_else(|p| p.into_inner());
        match all.iter().find(|(s, _)| *s == state) {
            Some((_, c)) => {
                c.inc();
            }
            None => {
                let c = Counter::default();
                c.inc();
                all.push((state, c));
            }
        }
    }

    /// The counters seen so far (handles sharing their atomics).
    fn counters(&self) -> Vec<(&'static str, Counter)> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The event counts (module doc).
#[derive(Clone, Debug, Default)]
pub struct FeedCounts {
    bed_holds_placed: Counter,
    bed_holds_resolved: ByState,
    seats_held: Counter,
    seat_changes: ByState,
    referral_moves: ByState,
}

impl FeedCounts {
    /// Registers the counts of every region (`regions`: region id, its feed's counts).
    pub(super) fn register(regions: Vec<(String, FeedCounts)>, r: &mut Registry) {
        r.register_collector(Box::new(RegionFeedCounts { regions }));
    }

    /// Counts one event.
    pub fn count(&self, event: &Event) {
        match event {
            Event::BedHoldPlaced { .. } => {
                self.bed_holds_placed.inc();
            }
            Event::BedHoldResolved { state, .. } => self.bed_holds_resolved.inc(state.name()),
            Event::SeatHeld { .. } | Event::SeatOffered { .. } => {
                self.seats_held.inc();
            }
            Event::SeatChanged { state, .. } => self.seat_changes.inc(state.name()),
            Event::ReferralMoved { state, .. } => self.referral_moves.inc(state.name()),
            Event::BedChanged { .. } => {}
        }
    }
}

/// Picks one plain counter of a region's [`FeedCounts`].
type Plain = fn(&FeedCounts) -> &Counter;
/// Picks one by-state counter of a region's [`FeedCounts`].
type States = fn(&FeedCounts) -> &ByState;

const PLAIN: [(&str, &str, Plain); 2] = [
    (
        "engine_bed_holds_placed",
        "Bed holds placed, as applied by this node since it started.",
        |f| &f.bed_holds_placed,
    ),
    (
        "engine_seats_held",
        "Seats held or offered from a waitlist, as applied by this node since it started.",
        |f| &f.seats_held,
    ),
];

const BY_STATE: [(&str, &str, States); 3] = [
    (
        "engine_bed_holds_resolved",
        "Bed holds resolved (confirmed, released, expired), as applied by this node since it started.",
        |f| &f.bed_holds_resolved,
    ),
    (
        "engine_seat_changes",
        "Seats moved on (booked, released, expired, cancelled, no_show) since this node started.",
        |f| &f.seat_changes,
    ),
    (
        "engine_referral_moves",
        "Referrals created or moved, by the state they moved to, since this node started.",
        |f| &f.referral_moves,
    ),
];

/// Every region's [`FeedCounts`] at scrape time, labelled with its `region`.
#[derive(Debug)]
struct RegionFeedCounts {
    regions: Vec<(String, FeedCounts)>,
}

impl Collector for RegionFeedCounts {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, help, pick) in PLAIN {
            let series = self.regions.iter().map(|(r, f)| (r.as_str(), pick(f)));
            super::encode_per_region(&mut encoder, (name, help, MetricType::Counter), series)?;
        }
        for (name, help, pick) in BY_STATE {
            let seen: Vec<(&str, Vec<(&'static str, Counter)>)> = self
                .regions
                .iter()
                .map(|(region, f)| (region.as_str(), pick(f).counters()))
                .collect();
            // No state seen yet in any region: no family (a header without samples is not
            // valid OpenMetrics).
            if seen.iter().all(|(_, counters)| counters.is_empty()) {
                continue;
            }
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (region, counters) in seen {
                for (state, c) in counters {
                    c.encode(family.encode_family(&[("region", region), ("state", state)])?)?;
                }
            }
        }
        Ok(())
    }
}
