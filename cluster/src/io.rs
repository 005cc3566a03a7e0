//! The seams between the sans-I/O core and the world.
//!
//! The real tokio/tonic runtime and the deterministic simulator each implement these:
//! [`Clock`] (the only source of wall time), [`Transport`] (how messages leave the node) and
//! [`RaftStore`] (the durable Raft log and metadata, on top of raft-rs's read-only `Storage`).

use crate::error::Error;
use raft::eraftpb::{ConfState, Entry, HardState, Message, Snapshot};

/// Wall-clock time in milliseconds since the Unix epoch. The node core reads it only to
/// stamp log-time into entries it proposes as leader.
pub trait Clock {
    fn now_ms(&self) -> u64;
}

/// Sends Raft messages to peers. Delivery may be lossy and reordered; Raft tolerates that.
pub trait Transport {
    /// Sends ordinary Raft messages (votes, appends, heartbeats, ...) to peer `to`.
    fn send(&mut self, to: u64, messages: Vec<Message>);
    /// Sends a `MsgSnapshot` (possibly large: streamed by the real transport). The transport
    /// must later report the result with `Input::SnapshotStatus`.
    fn send_snapshot(&mut self, to: u64, message: Message);
}

/// What [`RaftStore::write_async`] did with a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Durable when the call returned.
    Durable,
    /// Readable now, durable once the driver reports it (`Input::Persisted`).
    Queued,
}

/// A durable Raft store: what the node writes. Reads go through `raft::Storage`.
///
/// Every method that returns `Ok` has made its write durable unless it says otherwise.
pub trait RaftStore: raft::Storage {
    /// Bootstraps an empty store with the initial voters of a new cluster.
    fn initialize(&mut self, conf_state: ConfState) -> Result<(), Error>;

    /// Appends `entries` (dropping any existing suffix from `entries[0].index` on, which
    /// Raft has decided conflicts) and sets `hard_state`, in one atomic durable write.
    fn persist(&mut self, entries: &[Entry], hard_state: Option<&HardState>) -> Result<(), Error>;

    /// Writes `entries` + `hard_state` like [`RaftStore::persist`], but may return before
    /// the write is durable (the pipelined commit round, `docs/protocol.md`): they are
    /// readable through `raft::Storage` at once, and a persistence worker makes them
    /// durable, in the order they were handed over, one fdatasync per group. `number` is
    /// the raft-rs Ready they come from. Returns [`Durability::Queued`] when the driver will
    /// report them durable with `Input::Persisted { number }` (or a later number), and
    /// [`Durability::Durable`] when the write already was (the default: `persist`).
    ///
    /// Every other write of the store (`persist`, `apply_snapshot`, `save_snapshot`,
    /// `compact`, `set_commit`) is ordered after the queued ones: a crash never keeps a
    /// later write and loses an earlier one, and the durable ones wait for the queue.
    fn write_async(
        &mut self,
        number: u64,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<Durability, Error> {
        let _ = number;
        self.persist(entries, hard_state)?;
        Ok(Durability::Durable)
    }

    /// The driver reported the queued writes up to Ready `number` durable
    /// (`Input::Persisted`): the store may drop what it kept to answer reads of them.
    fn on_persisted(&mut self, number: u64) {
        let _ = number;
    }

    /// Records a higher commit index. Not synced: after a crash the commit index may go
    /// back to the last synced value, which Raft recovers from (it is never below `applied`).
    fn set_commit(&mut self, commit: u64) -> Result<(), Error>;

    /// Installs a snapshot received from the leader: replaces the whole log, the
    /// configuration and the applied index. Durable and atomic.
    fn apply_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), Error>;

    /// Stores a snapshot of the local applied state (the log is kept; compact separately).
    /// Also moves `applied_index` to the snapshot index. Durable and atomic.
    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), Error>;

    /// Records `snapshot` as the stored snapshot (like `save_snapshot`) when a snapshot
    /// writer already made its data durable where the store keeps snapshot data (the
    /// runtime's writer thread: [`crate::storage::SnapshotFiles::write`], the same file
    /// `save_snapshot` would write). Durable and atomic; until it returns, a restart ignores
    /// (and deletes) that file. The default stores it as `save_snapshot` does.
    fn record_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), Error> {
        self.save_snapshot(snapshot)
    }

    /// Discards entries before `index` (keeping the term of `index - 1` for matching).
    /// `index` must be at most the stored snapshot index + 1.
    fn compact(&mut self, index: u64) -> Result<(), Error>;

    /// The latest stored snapshot (local or received), if any.
    fn stored_snapshot(&self) -> Result<Option<Snapshot>, Error>;

    /// The index up to which the state machine image in `stored_snapshot` reflects the log:
    /// the `Config.applied` to restart Raft with.
    fn applied_index(&self) -> u64;
}
