//! `ninety-cluster`: the replicated regional node.
//!
//! Owns everything that does I/O around the engine: the Raft driver (raft-rs `RawNode`), the
//! sled-backed Raft storage, the tonic transport between peers, the client-facing gRPC server
//! and the `ninety` operator binary.
//!
//! Must not contain domain rules: every decision about beds, slots and referrals lives in
//! `ninety-engine` and reaches the state only through the Raft log.
