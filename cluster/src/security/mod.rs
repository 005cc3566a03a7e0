//! Security of a node (issue 12). (Placeholder until the lead's mod.rs lands on main.)

pub mod identity;
pub mod tls;
