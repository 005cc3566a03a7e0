//! `ninety-proto`: the wire contract of ninety.
//!
//! Owns the `.proto` files under `proto/proto/` (package `ninety.v1` for clients, and the
//! node-to-node peer protocol) and the Rust code generated from them at build time with
//! `protox` + `tonic-prost-build`, so no `protoc` binary is ever needed.
//!
//! Must not depend on the engine, the cluster or any I/O: it is data definitions only.
