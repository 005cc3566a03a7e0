//! The command handlers of `Engine::apply`, one module per area.
//!
//! Every handler checks everything first and changes state only when nothing can fail any
//! more, so a refused command leaves the state exactly as it was.

mod admin;
mod beds;
mod referrals;
mod schedule;
mod tick;
