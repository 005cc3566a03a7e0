//! The Tick command: log time advances; due holds, consultations and referrals expire;
//! weekly templates roll the schedule horizon forward; old resolved records, ended slots
//! and dedup entries are pruned. Every step is bounded per tick.

use crate::beds::HoldState;
use crate::command::Reply;
use crate::engine::Engine;
use crate::limits::{EXPIRIES_PER_TICK_MAX, PRUNES_PER_TICK_MAX};
use crate::referrals::{ReferralReason, ReferralState};
use crate::slots::SeatState;
use crate::time::LogTime;

impl Engine {
    pub(crate) fn tick(&mut self, now: LogTime) -> Reply {
        let mut expired_holds = 0u32;
        let mut offers = Vec::new();
        for hold in self.beds.due(now, EXPIRIES_PER_TICK_MAX) {
            if self
                .beds
                .resolve(hold, HoldState::Expired { at: now })
                .is_some()
            {
                expired_holds += 1;
                self.seat_lost(hold, "bed hold expired", now);
            }
        }
        for hold in self.slots.due(now, EXPIRIES_PER_TICK_MAX) {
            let Some(seat) = self.slots.seat(hold) else {
                continue;
            };
            if seat.state != SeatState::Held {
                continue;
            }
            if let Some(c) = seat.consult {
                // The whole consultation lapses together; its seats share one expiry.
                let n = self.slots.consult(c).map_or(0, |jc| jc.seats.len() as u32);
                offers.extend(self.end_consult(c, HoldState::Expired { at: now }, now));
                expired_holds += n;
                continue;
            }
            let slot = seat.slot;
            self.slots.set_seat(hold, SeatState::Expired { at: now });
            expired_holds += 1;
            self.seat_lost(hold, "slot hold expired", now);
            offers.extend(self.offer_freed(slot, now));
        }
        let mut expired_referrals = 0u32;
        for id in self.referrals.due(now, EXPIRIES_PER_TICK_MAX) {
            if self.postpone_for_remote(id, now) {
                continue;
            }
            self.release_referral_holds(id, now);
            self.referrals.transition(
                id,
                ReferralState::Expired,
                ReferralReason::DeadlinePassed,
                now,
            );
            expired_referrals += 1;
        }
        self.roll_horizons(now);
        self.prune(now);
        Reply::Ticked {
            now,
            expired_holds,
            expired_referrals,
            offers,
        }
    }

    fn prune(&mut self, now: LogTime) {
        let cutoff = now.minus_ms(self.policy.resolved_retention_ms);
        self.beds.prune(cutoff, PRUNES_PER_TICK_MAX);
        self.slots.prune(cutoff, PRUNES_PER_TICK_MAX);
        self.prune_slots(now, PRUNES_PER_TICK_MAX);
        let pruned = self.referrals.prune(cutoff, PRUNES_PER_TICK_MAX);
        self.prune_remote(&pruned, cutoff);
        let dedup_cutoff = now.minus_ms(self.policy.dedup_window_ms);
        self.dedup.expire(dedup_cutoff, PRUNES_PER_TICK_MAX);
    }
}
