//! The refusal precheck: what `apply` would refuse, decided without changing anything.
//!
//! A refused command changes nothing, not even the dedup table (`dedup`: only successes are
//! remembered), so its answer is a function of the state alone. [`Engine::would_refuse`]
//! gives that answer for the hot commands without applying them, which lets a node answer
//! a command that would be refused as a linearizable read instead of a log entry
//! (`docs/protocol.md`, "Refusals are reads").
//!
//! The precheck and `apply` can never disagree because they run the same code: each
//! covered handler decides through a `&self` function (`bed_to_hold`, `check_seat_hold`,
//! `bed_to_allocate`, ...) and changes state only after it said yes; the precheck calls
//! that function and stops. Commands whose handler is not split that way get `None` and go
//! through the log.

use crate::command::Command;
use crate::engine::Engine;
use crate::error::Rejection;
use crate::matching::RegionIndex;
use crate::slots::{SeatAsk, SeatState};
use crate::time::LogTime;
use std::sync::Arc;

impl Engine {
    /// The rejection `apply` would answer for `command` at log time `at` (clamped to the
    /// engine's, as `apply` does) from this state, for a request id the dedup table does
    /// not remember; `None` when apply would accept it *or* might change anything (an
    /// uncovered command). Changes nothing.
    ///
    /// Covered: `HoldBed`, `ConfirmHold`, `ReleaseHold`, `HoldSlot`, `HoldSlotFor`,
    /// `BookSlot`, `ReleaseSlot`, `CancelSeat`, `AllocateSlot`, `AllocateBed` and
    /// `AllocateBedForReferral` (the
    /// commands that meet a full ward, a taken seat or a lapsed hold under contention).
    /// For a remembered request id use [`Engine::decided`], which answers as `apply_as`.
    pub fn would_refuse(&self, command: &Command, at: LogTime) -> Option<Rejection> {
        let now = self.now.max(at);
        use Command::*;
        let decided = match command {
            HoldBed { target, ttl_ms, .. } => self.bed_to_hold(*target, *ttl_ms).map(drop),
            ConfirmHold { hold } => self.beds.check_pending(*hold, now).map(drop),
            ReleaseHold { hold } => self.check_bed_release(*hold),
            HoldSlot {
                slot,
                patient,
                channel,
                referral,
            } => {
                let ask = SeatAsk::new(*patient, *channel, *referral);
                self.check_seat_hold(*slot, &ask, None, now)
            }
            HoldSlotFor {
                slot,
                patient,
                channel,
                ttl_ms,
                referral,
            } => {
                let ask = SeatAsk::new(*patient, *channel, *referral);
                self.check_seat_hold(*slot, &ask, Some(*ttl_ms), now)
            }
            BookSlot { hold } => self.slots.check_held(*hold, now, true).map(drop),
            ReleaseSlot { hold } => self.check_seat_release(*hold).map(drop),
            CancelSeat { hold } => self.check_seat_cancel(*hold, now),
            AllocateSlot {
                query,
                patient,
                referral,
            } => {
                let index = self.region_index_now();
                self.slot_to_allocate(query, *patient, *referral, None, &index, now)
                    .map(drop)
            }
            AllocateBed { query, ttl_ms, .. } => {
                let index = self.region_index_now();
                self.bed_to_allocate(query, *ttl_ms, None, &index, now)
                    .map(drop)
            }
            AllocateBedForReferral {
                query,
                ttl_ms,
                patient,
                referral,
            } => {
                let ask = SeatAsk::new(*patient, crate::region::Channel::Referral, Some(*referral));
                self.check_referral_seat(&ask).and_then(|()| {
                    let index = self.region_index_now();
                    self.bed_to_allocate(query, *ttl_ms, None, &index, now)
                        .map(drop)
                })
            }
            _ => return None,
        };
        decided.err()
    }

    /// Whether a `CancelSeat` is refused: as `cancel_seat` dispatches, a booking is
    /// cancelled and anything else released.
    fn check_seat_cancel(&self, hold: crate::ids::HoldId, now: LogTime) -> Result<(), Rejection> {
        let seat = self.slots.seat(hold).ok_or(Rejection::UnknownHold(hold))?;
        match seat.state {
            SeatState::Booked { .. } => self.check_booking_cancel(hold, now),
            _ => self.check_seat_release(hold).map(drop),
        }
    }

    /// The region index an allocation ranks with: the cached one, or (after an admin
    /// command dropped it) one built now. The same value either way: the index is a
    /// function of the region's records, which allocations do not change.
    fn region_index_now(&self) -> Arc<RegionIndex> {
        match &self.live.index {
            Some(index) => index.clone(),
            None => Arc::new(RegionIndex::build(self)),
        }
    }
}
