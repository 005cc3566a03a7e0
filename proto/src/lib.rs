//! `ninety-proto`: the wire contract of ninety.
//!
//! Owns the `.proto` files under `proto/proto/` (package `ninety.v1` for clients, and the
//! node-to-node peer protocol) and the Rust code generated from them at build time with
//! `protox` + `tonic-prost-build`, so no `protoc` binary is ever needed.
//!
//! Must not depend on the engine, the cluster or any I/O: it is data definitions only.
//!
//! Packages and their modules:
//!
//! * `ninety.v1` ([`v1`], files `proto/ninety/v1/*.proto`): the client API, services
//!   `BedHolds`, `Scheduling`, `Matching`, `Referrals`, `Admin`, `Capacity` and `Watch`, with
//!   the conventions (idempotent `request_id`, opaque `patient_ref`, units in field names)
//!   written at the top of `common.proto`.
//! * `ninety.peer.v1` ([`peer::v1`], file `proto/ninety/peer/v1/peer.proto`): the protocol
//!   between the nodes of one cluster, service `Peer`; Raft messages travel in it as opaque
//!   bytes encoded by raft-rs.
//!
//! Each package module holds the prost messages, a `<service>_client` module with a tonic
//! client and a `<service>_server` module with the server trait and its tonic service
//! (for example `v1::bed_holds_server::BedHoldsServer`).
//!
//! The generated servers decode requests with [`codec::RequestCodec`]: a request that does
//! not decode is answered `INVALID_ARGUMENT` naming the field, not `INTERNAL`. Every refusal
//! carries its details as a standard `google.rpc.Status` ([`status`]).
//!
//! The code in those modules is generated into `OUT_DIR` by `build.rs` and must not be
//! edited: change the `.proto` files instead.

#![warn(missing_docs)]

pub mod codec;
pub mod status;

/// The node-to-node protocol (generated code).
pub mod peer {
    /// Package `ninety.peer.v1` (generated code).
    #[allow(
        missing_docs,
        clippy::all,
        clippy::pedantic,
        clippy::nursery,
        rustdoc::all
    )]
    pub mod v1 {
        tonic::include_proto!("ninety.peer.v1");
    }
}

/// Package `ninety.v1`, the client API (generated code).
#[allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    clippy::nursery,
    rustdoc::all
)]
pub mod v1 {
    tonic::include_proto!("ninety.v1");
}

/// The encoded `google.protobuf.FileDescriptorSet` of every `.proto` file of this crate
/// (with imports and source info), for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/ninety_descriptor_set.bin"));
