//! Security: who may reach a node, and as whom.
//!
//! Owns the cluster's certificates and credentials and the checks made on them before any
//! work is done: TLS material ([`certs`] makes it, `tls` loads it), identities proven by
//! a certificate (`identity`: a node id for peers, a name for clients), callers and their
//! roles on the client listener (`auth`, `roles`), and the audit log (`audit`).
//!
//! Must not touch the engine or Raft: it answers "who is this and may they do that", and the
//! runtime decides where to ask. No cryptography is written here: rustls (through tonic's TLS
//! features) does TLS, rcgen makes certificates, x509-parser reads them, sha2 hashes tokens.

pub mod audit;
pub mod auth;
pub mod certs;
pub mod identity;
pub mod roles;
pub mod tls;
