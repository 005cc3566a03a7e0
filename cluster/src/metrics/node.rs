//! The node's event metrics: counters and histograms bumped where the event happens (the
//! node task, the persistence worker, the transport, the peer service, the queues' senders).
//! Every handle is a cheap clone sharing one atomic (or one histogram), and exists whether
//! or not metrics are served: registering them is what makes them visible. Each region's
//! group has its own; a scrape shows them all under a `region` label (`RegionCounters`).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::time::Duration;

/// Smallest fsync bucket, seconds (50 µs: an NVMe flush), doubling over
/// [`FSYNC_BUCKETS`] buckets (to 0.8 s: a disk in trouble).
const FSYNC_BUCKET_MIN_SECONDS: f64 = 0.000_05;
const FSYNC_BUCKETS: u16 = 15;
/// Smallest commit-round bucket, seconds (100 µs), doubling over [`COMMIT_BUCKETS`]
/// buckets (to 3.3 s, past the client's write deadline).
const COMMIT_BUCKET_MIN_SECONDS: f64 = 0.000_1;
const COMMIT_BUCKETS: u16 = 16;

/// The node's event metrics (module doc).
#[derive(Clone, Debug)]
pub struct NodeCounters {
    /// Times the leader this node knows of changed (to another node or to none).
    pub leader_changes: Counter,
    /// Times this node became leader.
    pub elections_won: Counter,
    /// Log entries this node applied.
    pub entries_applied: Counter,
    /// From a proposal reaching the node task to its answer (committed and applied here).
    pub commit_round: Histogram,
    /// One fdatasync of a group of Raft writes by the persistence worker.
    pub fsync: Histogram,
    /// Times the snapshot point advanced (a snapshot taken here or installed from the leader).
    pub snapshots: Counter,
    /// Snapshots this node streamed to a peer completely.
    pub snapshots_sent: Counter,
    /// Snapshots this node received, validated and handed to Raft.
    pub snapshots_received: Counter,
    /// Client requests the node task holds: proposals and reads waiting for their answer.
    pub requests_pending: Gauge,
    /// Client calls refused because the command queue was full.
    pub commands_refused: Counter,
    /// Raft messages dropped because the peer event queue was full.
    pub peer_events_dropped: Counter,
}

impl Default for NodeCounters {
    fn default() -> Self {
        NodeCounters {
            leader_changes: Counter::default(),
            elections_won: Counter::default(),
            entries_applied: Counter::default(),
            commit_round: Histogram::new(exponential_buckets(
                COMMIT_BUCKET_MIN_SECONDS,
                2.0,
                COMMIT_BUCKETS,
            )),
            fsync: Histogram::new(exponential_buckets(
                FSYNC_BUCKET_MIN_SECONDS,
                2.0,
                FSYNC_BUCKETS,
            )),
            snapshots: Counter::default(),
            snapshots_sent: Counter::default(),
            snapshots_received: Counter::default(),
            requests_pending: Gauge::default(),
            commands_refused: Counter::default(),
            peer_events_dropped: Counter::default(),
        }
    }
}

impl NodeCounters {
    /// A full command queue refused a client command (`RESOURCE_EXHAUSTED`).
    pub fn command_refused(&self) {
        self.commands_refused.inc();
    }

    /// A full peer-event queue dropped a peer message (Raft retransmits).
    pub fn peer_event_dropped(&self) {
        self.peer_events_dropped.inc();
    }

    /// Observes one fdatasync.
    pub fn observe_fsync(&self, took: Duration) {
        self.fsync.observe(took.as_secs_f64());
    }

    /// Observes one commit round.
    pub fn observe_commit_round(&self, took: Duration) {
        self.commit_round.observe(took.as_secs_f64());
    }

    /// Registers the node-wide fsync histogram (the persistence worker writes every
    /// region's entries) and, per region, everything else ([`RegionCounters`]).
    pub(super) fn register(regions: Vec<(String, NodeCounters)>, r: &mut Registry) {
        if let Some((_, first)) = regions.first() {
            r.register(
                "raft_fsync_seconds",
                "One fdatasync of a group of Raft writes",
                first.fsync.clone(),
            );
        }
        r.register_collector(Box::new(RegionCounters { regions }));
    }
}

/// Picks one counter of a region's [`NodeCounters`].
type Pick = fn(&NodeCounters) -> &Counter;

/// The per-region counters: name, help, which.
const COUNTERS: [(&str, &str, Pick); 6] = [
    (
        "raft_leader_changes",
        "Times the leader this node knows of changed.",
        |c| &c.leader_changes,
    ),
    (
        "raft_elections_won",
        "Times this node became leader.",
        |c| &c.elections_won,
    ),
    (
        "raft_entries_applied",
        "Log entries applied by this node.",
        |c| &c.entries_applied,
    ),
    (
        "raft_snapshots",
        "Times the snapshot point advanced (taken here or installed).",
        |c| &c.snapshots,
    ),
    (
        "raft_snapshots_sent",
        "Snapshots streamed to a peer completely.",
        |c| &c.snapshots_sent,
    ),
    (
        "raft_snapshots_received",
        "Snapshots received, validated and handed to Raft.",
        |c| &c.snapshots_received,
    ),
];

/// Every region's [`NodeCounters`] at scrape time, each series labelled with its
/// `region`: one family per metric, whatever the number of regions (a sub-registry per
/// region would repeat each family's header, which OpenMetrics forbids).
#[derive(Debug)]
struct RegionCounters {
    /// (region id, its group's counters), the default region first.
    regions: Vec<(String, NodeCounters)>,
}

impl Collector for RegionCounters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let regions = || self.regions.iter().map(|(r, c)| (r.as_str(), c));
        for (name, help, pick) in COUNTERS {
            let series = regions().map(|(r, c)| (r, pick(c)));
            super::encode_per_region(&mut encoder, (name, help, MetricType::Counter), series)?;
        }
        super::encode_per_region(
            &mut encoder,
            (
                "raft_commit_round_seconds",
                "From a proposal reaching the node task to its answer (committed, applied here).",
                MetricType::Histogram,
            ),
            regions().map(|(r, c)| (r, &c.commit_round)),
        )?;
        super::encode_per_region(
            &mut encoder,
            (
                "raft_requests_pending",
                "Client proposals and reads the node task holds until they are answered.",
                MetricType::Gauge,
            ),
            regions().map(|(r, c)| (r, &c.requests_pending)),
        )?;
        let mut family = encoder.encode_descriptor(
            "queue_refusals",
            "Items refused or dropped because a bounded queue was full.",
            None,
            MetricType::Counter,
        )?;
        for (region, c) in regions() {
            for (queue, counter) in [
                ("commands", &c.commands_refused),
                ("peer_events", &c.peer_events_dropped),
            ] {
                counter.encode(family.encode_family(&[("region", region), ("queue", queue)])?)?;
            }
        }
        Ok(())
    }
}
