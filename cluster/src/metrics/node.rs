//! The node's event metrics: counters and histograms bumped where the event happens (the
//! node task, the persistence worker, the transport, the peer service, the queues' senders).
//! Every handle is a cheap clone sharing one atomic (or one histogram), and exists whether
//! or not metrics are served: registering them is what makes them visible.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
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

/// The queue a refusal or a drop happened on.
pub type QueueLabel = [(&'static str, &'static str); 1];

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
    /// Items refused or dropped because a bounded queue was full, by queue.
    pub queue_refusals: Family<QueueLabel, Counter>,
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
            queue_refusals: Family::default(),
        }
    }
}

impl NodeCounters {
    /// A full command queue refused a client command (`RESOURCE_EXHAUSTED`).
    pub fn command_refused(&self) {
        self.queue_refusals
            .get_or_create(&[("queue", "commands")])
            .inc();
    }

    /// A full peer-event queue dropped a peer message (Raft retransmits).
    pub fn peer_event_dropped(&self) {
        self.queue_refusals
            .get_or_create(&[("queue", "peer_events")])
            .inc();
    }

    /// Observes one fdatasync.
    pub fn observe_fsync(&self, took: Duration) {
        self.fsync.observe(took.as_secs_f64());
    }

    /// Observes one commit round.
    pub fn observe_commit_round(&self, took: Duration) {
        self.commit_round.observe(took.as_secs_f64());
    }

    pub(super) fn register(&self, r: &mut Registry) {
        let counters: [(&str, &str, &Counter); 6] = [
            (
                "raft_leader_changes",
                "Times the leader this node knows of changed",
                &self.leader_changes,
            ),
            (
                "raft_elections_won",
                "Times this node became leader",
                &self.elections_won,
            ),
            (
                "raft_entries_applied",
                "Log entries applied by this node",
                &self.entries_applied,
            ),
            (
                "raft_snapshots",
                "Times the snapshot point advanced (taken here or installed)",
                &self.snapshots,
            ),
            (
                "raft_snapshots_sent",
                "Snapshots streamed to a peer completely",
                &self.snapshots_sent,
            ),
            (
                "raft_snapshots_received",
                "Snapshots received, validated and handed to Raft",
                &self.snapshots_received,
            ),
        ];
        for (name, help, c) in counters {
            r.register(name, help, c.clone());
        }
        r.register(
            "raft_commit_round_seconds",
            "From a proposal reaching the node task to its answer (committed, applied here)",
            self.commit_round.clone(),
        );
        r.register(
            "raft_fsync_seconds",
            "One fdatasync of a group of Raft writes",
            self.fsync.clone(),
        );
        r.register(
            "raft_requests_pending",
            "Client proposals and reads the node task holds until they are answered",
            self.requests_pending.clone(),
        );
        r.register(
            "queue_refusals",
            "Items refused or dropped because a bounded queue was full",
            self.queue_refusals.clone(),
        );
    }
}
