//! `ninety-engine`: the deterministic state machine of one 90-minute health region.
//!
//! It owns the region model (hospitals, wards, beds, doctors, the referral graph), the
//! fast-changing state (bed holds, slot holds and bookings, waitlists, joint consultations,
//! referrals), the idempotency table, snapshots and the state hash, and the read model:
//! what every client question means ([`read`]: [`Query`] answered by [`Engine::query`],
//! matching and reach on a published [`AvailabilityView`]). A user needs
//! [`Engine::apply`], [`Engine::query`], the view and the command and answer types.
//!
//! **It must not** read a clock, use randomness, do I/O, spawn threads or depend on tokio,
//! tonic, sled or raft: time enters only as the `at` argument of [`Engine::apply`], which the
//! cluster takes from the Raft log, so every replica that applies the same log holds the same
//! state. A tidy test (`tests/engine.rs`, module `tidy`) enforces this on the source.
//! Patient identity never enters: patients are opaque 128-bit [`PatientRef`]s.
//!
//! ```
//! use ninety_engine::*;
//! let at = LogTime(1_000_000);
//! let mut engine = load(&generate::region(generate::Preset::Gba, 7), &[], at).unwrap();
//! let ward = engine.beds().wards().next().unwrap().id;
//! let held = engine.apply(
//!     &Request { id: RequestId(1), command: Command::HoldBed {
//!         target: BedTarget::Ward(ward), patient: PatientRef(42), ttl_ms: 3_600_000 } },
//!     at,
//! );
//! let Ok(Reply::BedHeld { hold, .. }) = held else { panic!("{held:?}") };
//! // A retry with the same request id returns the first answer.
//! let again = engine.apply(
//!     &Request { id: RequestId(1), command: Command::HoldBed {
//!         target: BedTarget::Ward(ward), patient: PatientRef(42), ttl_ms: 3_600_000 } },
//!     at,
//! );
//! assert_eq!(again, Ok(Reply::BedHeld { hold, bed: engine.beds().hold(hold).unwrap().bed,
//!     ward, expires_at: LogTime(4_600_000) }));
//! ```

mod apply;
mod beds;
mod command;
mod cow_map;
mod dedup;
mod engine;
mod error;
mod events;
pub mod generate;
pub mod graph;
mod hashing;
mod horizon;
mod ids;
mod invariants;
pub mod layout;
pub mod limits;
pub mod matching;
pub mod read;
pub mod referrals;
pub mod region;
pub mod region_file;
pub mod remote;
mod shard_map;
mod slots;
pub mod snapshot;
pub mod sync;
pub mod time;
mod view;

pub use beds::{BedHold, BedNeeds, BedState, BlockReason, HoldState, WardCounts};
pub use command::{BedTarget, Command, Outcome, Reply, Request, COMMAND_FORMAT_VERSION};
pub use engine::{Counters, Engine};
pub use error::{Rejection, RejectionKind};
pub use events::{Event, EventKind};
pub use graph::ReferralKind;
pub use horizon::{TemplateSlot, WeeklyTemplate};
pub use ids::*;
pub use read::{Answer, Query};
pub use referrals::{ReferralReason, ReferralState};
pub use region::*;
pub use region_file::RegionFile;
pub use slots::{SeatLimits, SeatState, SlotSpec};
pub use snapshot::{SnapshotError, StateHash};
pub use time::LogTime;
pub use view::{AvailabilityView, ViewReader};

/// Builds an engine from a region file and schedules by applying the same commands the
/// cluster would replicate (`ImportRegion`, then one `PublishSchedule` per doctor), each as
/// `RequestKey::Bootstrap(n)` in order.
pub fn load(
    file: &RegionFile,
    schedules: &[(DoctorId, Vec<SlotSpec>)],
    at: LogTime,
) -> Result<Engine, Rejection> {
    let mut engine = Engine::new();
    for (n, command) in (0u32..).zip(bootstrap_commands(file, schedules)) {
        engine.apply_as(RequestKey::Bootstrap(n), &command, at, 0)?;
    }
    Ok(engine)
}

/// The commands that load a region: its import, then each doctor's schedule in chunks.
pub fn bootstrap_commands(
    file: &RegionFile,
    schedules: &[(DoctorId, Vec<SlotSpec>)],
) -> Vec<Command> {
    let mut out = vec![Command::ImportRegion(Box::new(file.clone()))];
    for (doctor, specs) in schedules {
        for chunk in specs.chunks(limits::SLOTS_PER_PUBLISH_MAX) {
            out.push(Command::PublishSchedule {
                doctor: *doctor,
                slots: chunk.to_vec(),
            });
        }
    }
    out
}
