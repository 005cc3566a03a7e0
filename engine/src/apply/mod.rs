//! The command handlers of `Engine::apply`, one module per area.
//!
//! Every handler checks everything first and changes state only when nothing can fail any
//! more, so a refused command leaves the state exactly as it was. The hot handlers decide
//! through a `&self` function that `precheck` calls too, so a refusal can be known without
//! applying (`Engine::would_refuse`).

mod admin;
mod beds;
mod horizon;
mod precheck;
pub(crate) mod referrals;
pub(crate) mod remote;
mod schedule;
mod tick;
