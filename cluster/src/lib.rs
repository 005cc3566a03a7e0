//! `ninety-cluster`: the replicated regional node.
//!
//! Owns everything that does I/O around the engine: the Raft driver (raft-rs `RawNode`), the
//! Raft storage (raft-engine log, snapshot files), the tonic transport between peers, the client-facing gRPC server
//! and the `ninety` operator binary.
//!
//! Must not contain domain rules: every decision about beds, slots and referrals lives in
//! `ninety-engine` and reaches the state only through the Raft log.
//!
//! Layout:
//! - [`io`]: the seams (clock, transport, durable Raft store) where the tokio runtime or the
//!   deterministic simulator plug in.
//! - [`state_machine`]: what the replicated state machine must implement.
//! - [`storage`]: the Raft stores (raft-engine `LogStore` with snapshot files, in-memory
//!   `MemStore`, the format-2 `SledStore` kept for migration) and their conformance suite.
//! - [`node`]: the sans-I/O Raft node core (`Node`), driven by inputs, producing outputs; it
//!   catches a panic of the state machine's apply and stops on it (`node::ApplyPanic`).
//! - [`runtime`]: the tokio node process: config checks before anything is touched, the
//!   node task, transport, gRPC server, and the record of a panic in apply.
//! - [`feed`]: the change feed: the engine's events per applied entry, a bounded ring and
//!   the broadcast the `Watch` service streams from.
//! - [`security`]: certificates, identities, callers and roles, the audit log.
//! - [`backup`]: the online backup file (`Admin.Backup`, `ninety cluster backup`) and the
//!   data directories of a new cluster restored from one.
//! - [`test_support`]: a deterministic key/value state machine and a manual clock for tests
//!   and simulations.

pub mod backup;
pub mod engine_sm;
pub mod error;
pub mod feed;
pub mod io;
pub mod metrics;
pub mod node;
pub mod runtime;
pub mod security;
pub mod server;
pub mod state_machine;
pub mod storage;
pub mod test_support;

pub use error::{Error, RequestError};
pub use io::{Clock, Durability, RaftStore, Transport};

pub use node::{Completion, Input, Node, NodeConfig, NodeStatus, Output, Reply, RequestId};
pub use state_machine::{ApplyContext, StateMachine};

/// Raft protobuf messages (`Message`, `Entry`, `Snapshot`, ...) as used by this crate's API.
pub use raft::eraftpb;
