//! Security of a node: who may call it and what is recorded.
//!
//! - [`roles`]: the roles and the one table classifying every client RPC.
//! - [`auth`]: callers' credentials and the tower layer refusing calls before any work.
//! - [`audit`]: the audit log of state-changing, administrative and refused calls.

pub mod audit;
pub mod auth;
pub mod roles;
