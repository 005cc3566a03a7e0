//! Error types of the crate.
//!
//! Two kinds: [`Error`] is fatal for a node (storage failed, Raft invariant broken: the driver
//! must stop the node), [`RequestError`] is the answer to one client request and says whether
//! retrying is safe.

use thiserror::Error;

/// A failure that leaves the node unable to continue; the driver must stop it.
#[derive(Debug, Error)]
pub enum Error {
    /// The durable store failed (I/O, corruption, decoding).
    #[error("storage: {0}")]
    Storage(String),
    /// raft-rs refused an internal operation that must not fail.
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    /// The state machine could not load a snapshot.
    #[error("state machine restore failed: {0}")]
    Restore(String),
    /// A committed log entry could not be decoded: the log is corrupt or from another version.
    #[error("corrupt log entry at index {index}: {reason}")]
    CorruptEntry { index: u64, reason: String },
    /// The configuration is invalid.
    #[error("invalid config: {0}")]
    Config(String),
    /// The node refuses to start (a recorded panic in apply, its port in use, ...); the
    /// message names the file, address or field and what to do.
    #[error("cannot start: {0}")]
    Startup(String),
    /// The state machine panicked while applying a committed entry. The node stops: its
    /// state may be half-changed, and every replica applying the same entry would do the
    /// same, so it must not go on (see `node::ApplyPanic` and docs/operations.md).
    #[error("{0}")]
    ApplyPanicked(Box<crate::node::ApplyPanic>),
}

impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Self {
        Error::Storage(e.to_string())
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Storage(e.to_string())
    }
}

impl From<protobuf::ProtobufError> for Error {
    fn from(e: protobuf::ProtobufError) -> Self {
        Error::Storage(format!("protobuf: {e}"))
    }
}

/// The answer to one failed client request (proposal, read, membership change).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// A bounded queue is full; back off and retry.
    #[error("busy: {queue} is full")]
    Busy { queue: &'static str },
    /// This node is not the leader; retry on `leader` if known.
    #[error("not the leader (leader hint: {leader:?})")]
    NotLeader { leader: Option<u64> },
    /// This node lost leadership while the request was in flight. The entry may or may not
    /// commit later: retry only with an idempotent command (the engine dedups by request key).
    #[error("leadership lost before the outcome was known")]
    LeadershipLost,
    /// The log slot of the proposal was taken by another leader's entry: it never committed.
    #[error("proposal at index {index} superseded by an entry of term {term}")]
    Superseded { index: u64, term: u64 },
    /// A leadership transfer is in progress; proposals are refused until it ends.
    #[error("leadership transfer in progress")]
    TransferInProgress,
    /// ReadIndex got no answer within its timeout, even after retries.
    #[error("read timed out after {attempts} attempts")]
    ReadTimeout { attempts: u32 },
    /// The command is larger than a proposal batch may be.
    #[error("command of {bytes} bytes exceeds the limit of {max} bytes")]
    TooLarge { bytes: usize, max: usize },
    /// Another membership change has not been applied yet; one change at a time.
    #[error("another membership change is in progress")]
    ConfChangeInProgress,
    /// The membership change is invalid for the current configuration.
    #[error("membership change rejected: {0}")]
    ConfChangeRejected(String),
    /// This node applied a configuration without itself: it was removed from the cluster
    /// and serves nothing any more (send the request to a member).
    #[error("node {id} was removed from the cluster")]
    Removed { id: u64 },
    /// The state machine produced a result that does not match the batch (a bug there).
    #[error("internal: {0}")]
    Internal(String),
}

impl RequestError {
    /// Whether the same request may be sent again (possibly to another node).
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            RequestError::TooLarge { .. }
                | RequestError::ConfChangeRejected(_)
                | RequestError::Internal(_)
        )
    }
}
