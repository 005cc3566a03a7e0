//! Node tuning: every Raft and queue limit, as named constants with the reason for each
//! value, gathered in [`NodeConfig`].

use crate::error::Error;

/// Wall time of one Raft tick. The driver calls `Input::Tick` at this period; 100 ms keeps
/// timer work negligible while letting elections finish within about a second.
pub const TICK_INTERVAL_MS: u64 = 100;
/// Heartbeat every 2 ticks (200 ms): followers hear from the leader ~5 times per election
/// timeout, so a single lost heartbeat never triggers an election.
pub const HEARTBEAT_TICKS: usize = 2;
/// Election timeout 10 ticks (1 s; raft-rs randomizes it in [1 s, 2 s)): the thesis' 10 x
/// heartbeat, short enough for quick failover, long enough for GC/fsync pauses.
pub const ELECTION_TICKS: usize = 10;
/// At most 1 MiB of entries per append message: keeps catch-up messages well below gRPC's
/// default 4 MiB message limit and bounds the cost of a lost message.
pub const MAX_SIZE_PER_MSG_BYTES: u64 = 1024 * 1024;
/// At most 64 appends in flight per follower: enough pipelining to fill a LAN link, and
/// bounds leader memory per slow follower to ~64 MiB (64 x 1 MiB).
pub const MAX_INFLIGHT_MSGS: usize = 64;
/// At most 32 MiB of uncommitted log on the leader: past that, raft drops proposals and we
/// return `Busy` (back-pressure when followers or the disk fall behind).
pub const MAX_UNCOMMITTED_SIZE_BYTES: u64 = 32 * 1024 * 1024;
/// At most 16 MiB of committed entries per Ready: bounds the time of one apply round, so
/// ticks and heartbeats are not starved by a large catch-up.
pub const MAX_COMMITTED_SIZE_PER_READY_BYTES: u64 = 16 * 1024 * 1024;
/// Group commit: one Raft entry carries at most 256 KiB of commands...
pub const PROPOSAL_BATCH_BYTES_MAX: usize = 256 * 1024;
/// ...and at most 512 commands, so one entry's apply stays short.
pub const PROPOSAL_BATCH_COUNT_MAX: usize = 512;
/// Client commands queued or in flight (proposed, not applied) before `Busy`.
pub const PROPOSAL_QUEUE_MAX: usize = 8192;
/// Linearizable reads queued or waiting before `Busy`.
pub const READ_QUEUE_MAX: usize = 8192;
/// A ReadIndex not answered within one election timeout is re-issued: raft drops it silently
/// when there is no leader or the leader has not committed in its term yet.
pub const READ_TIMEOUT_TICKS: u64 = ELECTION_TICKS as u64;
/// Tries per read (first + retries) before `ReadTimeout`, ~3 s in total.
pub const READ_ATTEMPTS_MAX: u32 = 3;
/// The leader writes a log-time tick entry when no entry carried time for 1 s, so time-based
/// rules in the state machine advance even without client traffic.
pub const LOG_TIME_INTERVAL_MS: u64 = 1000;
/// Snapshot the state machine every 10 000 applied entries (bounds replay after restart):
/// the sans-I/O default, which tests and the simulator keep; a real node's is
/// `runtime::config::SNAPSHOT_INTERVAL_ENTRIES_DEFAULT` with a size bound beside it.
pub const SNAPSHOT_INTERVAL_ENTRIES: u64 = 10_000;
/// Entries kept behind a snapshot so briefly lagging followers catch up from the log
/// instead of a full snapshot transfer.
pub const LOG_RETAIN_ENTRIES: u64 = 2_000;

/// Per-node configuration; `NodeConfig::new(id)` gives the defaults above.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub id: u64,
    pub heartbeat_ticks: usize,
    pub election_ticks: usize,
    /// raft-rs draws each randomized election timeout from the half-open range
    /// `[min_election_ticks, max_election_ticks)`; 0 means raft-rs's default
    /// (`election_ticks`, `2 * election_ticks`). A deterministic driver (the simulator) sets
    /// `max = min + 1`, which removes raft-rs's `thread_rng` draw, and picks `min` itself.
    pub min_election_ticks: usize,
    pub max_election_ticks: usize,
    pub proposal_batch_bytes_max: usize,
    pub proposal_batch_count_max: usize,
    pub proposal_queue_max: usize,
    pub read_queue_max: usize,
    pub read_timeout_ticks: u64,
    pub read_attempts_max: u32,
    pub log_time_interval_ms: u64,
    pub snapshot_interval_entries: u64,
    /// Also snapshot once the entries applied since the last snapshot add up to this many
    /// bytes (0: by count only), so a log of large entries stays bounded on disk however
    /// rarely the count comes round.
    pub snapshot_log_bytes_max: u64,
    pub log_retain_entries: u64,
    /// Stop the node when a leader's heartbeat shows it lost entries it had acknowledged
    /// (`node::startup::heartbeat_shows_lost_data`) instead of letting raft-rs panic. Always
    /// on; off only in the simulator's `wiped_node_rejoins` bug, which shows what the
    /// checks see without it.
    pub lost_data_guard: bool,
    /// Take snapshots off the driver's thread (`node::snapshots`): the poll hands a
    /// [`crate::node::SnapshotJob`] out in `Output::snapshot` and the driver reports it
    /// written with `Input::SnapshotWritten`. Off: the poll writes snapshots itself
    /// (drivers without a writer, e.g. tests stepping a node by hand).
    pub background_snapshots: bool,
}

impl NodeConfig {
    pub fn new(id: u64) -> Self {
        NodeConfig {
            id,
            heartbeat_ticks: HEARTBEAT_TICKS,
            election_ticks: ELECTION_TICKS,
            min_election_ticks: 0,
            max_election_ticks: 0,
            proposal_batch_bytes_max: PROPOSAL_BATCH_BYTES_MAX,
            proposal_batch_count_max: PROPOSAL_BATCH_COUNT_MAX,
            proposal_queue_max: PROPOSAL_QUEUE_MAX,
            read_queue_max: READ_QUEUE_MAX,
            read_timeout_ticks: READ_TIMEOUT_TICKS,
            read_attempts_max: READ_ATTEMPTS_MAX,
            log_time_interval_ms: LOG_TIME_INTERVAL_MS,
            snapshot_interval_entries: SNAPSHOT_INTERVAL_ENTRIES,
            snapshot_log_bytes_max: 0,
            log_retain_entries: LOG_RETAIN_ENTRIES,
            lost_data_guard: true,
            background_snapshots: false,
        }
    }

    /// The raft-rs config, restarting at `applied` (the stored state machine image's index).
    pub(crate) fn raft_config(&self, applied: u64) -> Result<raft::Config, Error> {
        let cfg = raft::Config {
            id: self.id,
            election_tick: self.election_ticks,
            min_election_tick: self.min_election_ticks,
            max_election_tick: self.max_election_ticks,
            heartbeat_tick: self.heartbeat_ticks,
            applied,
            max_size_per_msg: MAX_SIZE_PER_MSG_BYTES,
            max_inflight_msgs: MAX_INFLIGHT_MSGS,
            max_uncommitted_size: MAX_UNCOMMITTED_SIZE_BYTES,
            max_committed_size_per_ready: MAX_COMMITTED_SIZE_PER_READY_BYTES,
            // Pre-vote: a rejoining partitioned node cannot bump the term and depose a
            // healthy leader. Check-quorum: a leader cut off from a majority steps down
            // instead of accepting writes that cannot commit.
            pre_vote: true,
            check_quorum: true,
            read_only_option: raft::ReadOnlyOption::Safe,
            ..Default::default()
        };
        cfg.validate().map_err(|e| Error::Config(e.to_string()))?;
        if self.proposal_batch_count_max == 0 || self.proposal_batch_bytes_max == 0 {
            return Err(Error::Config("proposal batch limits must be > 0".into()));
        }
        Ok(cfg)
    }
}
