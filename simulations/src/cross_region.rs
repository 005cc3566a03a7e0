//! Cross-region referrals in a multi-region run (`crate::multi`): the origin region's
//! driver ([`driver`]), what it saw ([`RemoteStats`]), and the checks ([`check`]: no hold
//! past its expiry on any replica, the origin's stages only move forward on any replica,
//! and at the end every cross-region bed of the origin agrees with the destination).

pub mod check;
pub mod driver;
pub mod stages;

/// The origin region's id in a multi-region run.
pub const ORIGIN: &str = "sim-o";
/// The destination region's id.
pub const DESTINATION: &str = "sim-d";

/// How often each cross-region step happened in one run (the driver's view).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoteStats {
    /// Steps sent to the destination (hold, confirm, release; repeats included).
    pub sent: u64,
    /// Answers recorded in the origin, by what they were.
    pub held: u64,
    pub confirmed: u64,
    pub released: u64,
    pub refused: u64,
    pub stuck: u64,
    /// Driver crashes: the origin's leader crashed or changed while a step was in flight,
    /// and at random between a step sent and its answer recorded.
    pub crashes_on_leader_change: u64,
    pub crashes_between: u64,
    /// Holds the destination made for a step the origin never learned of (or learned of
    /// too late), waited out by their TTL at the end of the run.
    pub orphans_at_end: u64,
    /// At the end: the origin's cross-region beds confirmed, and released.
    pub final_confirmed: u64,
    pub final_released: u64,
}

impl RemoteStats {
    /// Adds another run's counts.
    pub fn add(&mut self, o: &RemoteStats) {
        self.sent += o.sent;
        self.held += o.held;
        self.confirmed += o.confirmed;
        self.released += o.released;
        self.refused += o.refused;
        self.stuck += o.stuck;
        self.crashes_on_leader_change += o.crashes_on_leader_change;
        self.crashes_between += o.crashes_between;
        self.orphans_at_end += o.orphans_at_end;
        self.final_confirmed += o.final_confirmed;
        self.final_released += o.final_released;
    }
}
