//! The engine's integration tests, one binary with a module per area.

// A small hand-built region shared by the tests.
mod fixture;

// Beds: holds, confirm, release, expiry, staffed capacity, blocked beds.
mod beds;
// Slots: publish, hold, book, cancel deadline, no-shows, waitlist, joint consultations.
mod slots;
// Referrals: the lifecycle, the worklist, holds lapsing under a referral.
mod constraints;
mod referrals;
// Reads: every `Query` as the cluster asks it.
mod reads;
// Admin commands, region files, idempotency, snapshots and the generator.
mod region;
// Schedules over time: amend, withdraw, rolling templates, pruning, a month of state.
mod schedules;
// The change feed's events: what each command emits.
mod events;
// Property tests over random command sequences.
mod properties;
// The refusal precheck: a refusal known without applying is apply's answer.
mod precheck;
// Totality: any input, applied or read, never panics and never breaks an invariant
// (shared with the cargo-fuzz target in engine/fuzz through `harness.rs`).
mod harness;
mod totality;
// Tidy checks on the workspace's source.
mod tidy;
// Cross-region referrals: the origin's saga against a destination engine.
mod remote;
