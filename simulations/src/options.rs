//! Run options: everything a seed decides (cluster size, fault rates, clocks, workload mix),
//! plus the switches of the deliberate bugs that prove the checks work.

use crate::rng::Rng;
use std::fmt;

/// Deliberately wrong behaviour the simulator can switch on (all off in real runs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    /// The store acknowledges `persist` before the write is durable (it is flushed later, in
    /// the background), so a crash can lose acknowledged entries and votes.
    pub store_ack_before_durable: bool,
    /// The state machine applies every committed batch twice (the second time answers).
    pub apply_twice: bool,
    /// The state machine runs on the node's local clock instead of the log time.
    pub local_clock_time: bool,
    /// Reads are answered at once from the receiving node's local state (leader, follower,
    /// learner or a deposed leader alike), without ReadIndex: possibly stale.
    pub stale_reads: bool,
    /// A node's messages leave before the write they depend on is durable (a follower
    /// acknowledges appends, a candidate votes, before its fsync): the simulated
    /// persistence worker reports a queued write durable at once (`sim::persist`), and a
    /// crash before its fsync (or in the middle of a poll's synchronous write) loses what
    /// the node already acknowledged.
    pub ack_before_write: bool,
    /// A node that lost its data directory restarts under its old id as if new (empty,
    /// a founder bootstraps again), and peers take its messages whatever its incarnation:
    /// the behaviour before issue 13.
    pub wiped_node_rejoins: bool,
    /// Every replica reads `AmendSlot`'s seat numbers in an older field order (capacity,
    /// referral quota, overbooking), so an amendment sets overbooking and the quota swapped:
    /// the replicas agree with each other, not with what the log said.
    pub amend_fields_swapped: bool,
    /// The cross-region driver (`remote::driver`) records a `Confirming` referral's bed as
    /// `Confirmed` in the origin without sending `ConfirmHold` to the destination, whose
    /// hold then lapses by its TTL: the origin believes in a bed the destination let go.
    pub remote_confirm_unsent: bool,
}

impl Bugs {
    /// Whether any bug is switched on.
    pub fn any(&self) -> bool {
        self.store_ack_before_durable
            || self.apply_twice
            || self.local_clock_time
            || self.stale_reads
            || self.ack_before_write
            || self.wiped_node_rejoins
            || self.amend_fields_swapped
            || self.remote_confirm_unsent
    }
}

/// What the caller chooses; the seed chooses the rest (see [`Faults`]).
#[derive(Clone, Debug)]
pub struct Options {
    /// Client operations to complete (acknowledged or given up) in the safety phase.
    pub ops: u64,
    /// Simulated time budget of the safety phase, ms (the phase ends earlier when `ops` ran).
    pub safety_budget_ms: u64,
    /// Simulated time within which the cluster must serve requests once faults stop, ms.
    pub liveness_budget_ms: u64,
    /// Hard cap on processed events per run (a guard against runaway loops).
    pub max_events: u64,
    /// Print every notable event (crash, partition, membership step, violation) to stderr.
    pub verbose: bool,
    /// Deliberate bugs (for the tests that show the checks catch them).
    pub bugs: Bugs,
    /// Fault rates are scaled by this factor in per-mille (1000 = as the seed chose).
    pub fault_scale_per_mille: u64,
    /// Regions (Raft groups) in one run: 1 is the single cluster of old; 2 runs an origin
    /// and a destination region side by side on one simulated clock, with cross-region
    /// referrals and the origin's driver between them (`multi`).
    pub regions: u8,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ops: 1000,
            safety_budget_ms: 600_000,
            liveness_budget_ms: 60_000,
            max_events: 5_000_000,
            verbose: false,
            bugs: Bugs::default(),
            fault_scale_per_mille: 1000,
            regions: 1,
        }
    }
}

/// The fault model of one run, drawn from its seed and printed first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Faults {
    /// Founding voters (3 or 5).
    pub nodes: u64,
    /// Concurrent closed-loop clients.
    pub clients: u64,
    /// One-way network delay range, ms (random per message: reorders).
    pub delay_ms: (u64, u64),
    /// Message loss, per mille.
    pub loss_per_mille: u64,
    /// Message duplication, per mille.
    pub dup_per_mille: u64,
    /// Mean time between partition changes, ms (0: never).
    pub partition_every_ms: u64,
    /// Mean time between node crashes, ms (0: never).
    pub crash_every_ms: u64,
    /// How long a crashed node stays down, ms.
    pub down_ms: (u64, u64),
    /// Chance that a crash tears the write in flight, per mille.
    pub torn_per_mille: u64,
    /// Chance that a restart finds a durable record corrupted, per mille.
    pub corrupt_per_mille: u64,
    /// Chance that a crash hits the node in the middle of its next write, per mille: the
    /// persistence worker's fsync of its queued writes (a prefix of them reaches the disk),
    /// or a poll's synchronous write after it handed some of its messages to the network (a
    /// leader's appends go before its own write) and before the rest was durable.
    pub crash_in_write_per_mille: u64,
    /// Chance that a crash also loses the node's whole data directory, per mille.
    pub wipe_per_mille: u64,
    /// Chance that a node crashes between writing a snapshot file and recording it in its
    /// store, per mille of written snapshots (`sim::snapshot`).
    pub crash_in_snapshot_per_mille: u64,
    /// Chance per second that the operator replaces a healthy node (membership change).
    pub replace_per_mille: u64,
    /// Largest clock offset between a node and true time, ms.
    pub skew_ms: u64,
    /// Largest clock rate error, parts per million.
    pub drift_ppm: u64,
    /// Client timeout before a retry with the same request id, ms.
    pub client_timeout_ms: u64,
    /// Node snapshot interval in entries (small, so snapshots and compaction happen).
    pub snapshot_every: u64,
    /// Entries kept behind a snapshot.
    pub log_retain: u64,
    /// Full state hashes are compared at every index that is a multiple of this (the deep
    /// per-seat invariants run at every multiple of a quarter of it).
    pub hash_every: u64,
}

impl Faults {
    /// Draws the fault model from a seed (scaled by `scale` per mille).
    pub fn from_seed(seed: u64, scale: u64) -> Faults {
        let mut r = Rng::new(seed).fork(1);
        let s = |v: u64| v.saturating_mul(scale) / 1000;
        let every = |v: u64| v.saturating_mul(1000).checked_div(scale).unwrap_or(0);
        let lo = r.range(1, 5);
        let calm = r.chance(100);
        Faults {
            nodes: if r.chance(300) { 5 } else { 3 },
            clients: r.range(2, 8),
            delay_ms: (lo, lo + r.range(1, 40)),
            loss_per_mille: if calm { 0 } else { s(r.range(0, 80)) },
            dup_per_mille: s(r.range(0, 50)),
            partition_every_ms: if calm {
                0
            } else {
                every(r.range(2_000, 20_000))
            },
            crash_every_ms: if calm {
                0
            } else {
                every(r.range(2_000, 15_000))
            },
            down_ms: (200, r.range(500, 8_000)),
            torn_per_mille: s(r.range(0, 500)),
            corrupt_per_mille: s(r.range(0, 150)),
            replace_per_mille: s(r.range(0, 30)),
            skew_ms: r.range(0, 5_000),
            drift_ppm: r.range(0, 20_000),
            client_timeout_ms: r.range(300, 3_000),
            snapshot_every: r.range(20, 300),
            log_retain: r.range(5, 50),
            hash_every: r.range(16, 48),
            // Drawn last, so the fields above are what they were before it existed.
            crash_in_write_per_mille: r.range(0, 700),
            wipe_per_mille: if calm { 0 } else { r.range(0, 300) },
            crash_in_snapshot_per_mille: if calm { 0 } else { r.range(0, 300) },
        }
    }
}

impl fmt::Display for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "nodes={} clients={} delay={}..{}ms loss={}‰ dup={}‰ partition_every={}ms \
             crash_every={}ms down={}..{}ms torn={}‰ corrupt={}‰ crash_in_write={}‰ wipe={}‰ \
             crash_in_snapshot={}‰ replace={}‰/s skew<={}ms drift<={}ppm \
             client_timeout={}ms snapshot_every={} log_retain={} hash_every={}",
            self.nodes,
            self.clients,
            self.delay_ms.0,
            self.delay_ms.1,
            self.loss_per_mille,
            self.dup_per_mille,
            self.partition_every_ms,
            self.crash_every_ms,
            self.down_ms.0,
            self.down_ms.1,
            self.torn_per_mille,
            self.corrupt_per_mille,
            self.crash_in_write_per_mille,
            self.wipe_per_mille,
            self.crash_in_snapshot_per_mille,
            self.replace_per_mille,
            self.skew_ms,
            self.drift_ppm,
            self.client_timeout_ms,
            self.snapshot_every,
            self.log_retain,
            self.hash_every
        )
    }
}
