//! Counts of the engine's events (holds placed and resolved, seats, referral moves), added
//! by the change feed where it records each event (`Feed::count_with`): an atomic add per
//! event on the node task. They were first counted by a watcher task of their own; at
//! ~200,000 events/s (the batched bench) its receive and wake-up per event cost 15–20 %
//! of the batched throughput (docs/performance.md, "The cost of metrics"). Counted from the
//! node's start; a snapshot installed here skips the entries it covers: their events never
//! pass through this node.

use ninety_engine::Event;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

type StateLabel = [(&'static str, &'static str); 1];

/// The event counts (module doc).
#[derive(Clone, Debug, Default)]
pub struct FeedCounts {
    bed_holds_placed: Counter,
    bed_holds_resolved: Family<StateLabel, Counter>,
    seats_held: Counter,
    seat_changes: Family<StateLabel, Counter>,
    referral_moves: Family<StateLabel, Counter>,
}

impl FeedCounts {
    pub(super) fn register(&self, r: &mut Registry) {
        r.register(
            "engine_bed_holds_placed",
            "Bed holds placed, as applied by this node since it started",
            self.bed_holds_placed.clone(),
        );
        r.register(
            "engine_bed_holds_resolved",
            "Bed holds resolved (confirmed, released, expired), as applied by this node since it started",
            self.bed_holds_resolved.clone(),
        );
        r.register(
            "engine_seats_held",
            "Seats held or offered from a waitlist, as applied by this node since it started",
            self.seats_held.clone(),
        );
        r.register(
            "engine_seat_changes",
            "Seats moved on (booked, released, expired, cancelled, no_show) since this node started",
            self.seat_changes.clone(),
        );
        r.register(
            "engine_referral_moves",
            "Referrals created or moved, by the state they moved to, since this node started",
            self.referral_moves.clone(),
        );
    }

    /// Counts one event.
    pub fn count(&self, event: &Event) {
        match event {
            Event::BedHoldPlaced { .. } => {
                self.bed_holds_placed.inc();
            }
            Event::BedHoldResolved { state, .. } => {
                self.bed_holds_resolved
                    .get_or_create(&[("state", state.name())])
                    .inc();
            }
            Event::SeatHeld { .. } | Event::SeatOffered { .. } => {
                self.seats_held.inc();
            }
            Event::SeatChanged { state, .. } => {
                self.seat_changes
                    .get_or_create(&[("state", state.name())])
                    .inc();
            }
            Event::ReferralMoved { state, .. } => {
                self.referral_moves
                    .get_or_create(&[("state", state.name())])
                    .inc();
            }
            Event::BedChanged { .. } => {}
        }
    }
}
