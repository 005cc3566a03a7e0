//! Bed hold commands: hold, confirm (admit), release.

use crate::beds::HoldState;
use crate::command::{BedTarget, Reply};
use crate::engine::Engine;
use crate::error::Rejection;
use crate::ids::*;
use crate::limits::{HOLD_TTL_MS_MAX, HOLD_TTL_MS_MIN};
use crate::region::Channel;
use crate::slots::SeatAsk;
use crate::time::LogTime;

/// Checks a hold's time to live.
pub(crate) fn check_ttl(field: &str, ttl_ms: u64) -> Result<(), Rejection> {
    if !(HOLD_TTL_MS_MIN..=HOLD_TTL_MS_MAX).contains(&ttl_ms) {
        return Err(Rejection::invalid(
            field,
            format!("must be {HOLD_TTL_MS_MIN} to {HOLD_TTL_MS_MAX} ms"),
        ));
    }
    Ok(())
}

impl Engine {
    pub(crate) fn hold_bed(
        &mut self,
        target: BedTarget,
        patient: PatientRef,
        ttl_ms: u64,
        now: LogTime,
    ) -> Result<Reply, Rejection> {
        let bed = self.bed_to_hold(target, ttl_ms)?;
        let id = self.take_hold_id();
        let expires_at = now.plus_ms(ttl_ms);
        let hold = self.beds.place_hold(id, bed, patient, now, expires_at)?;
        Ok(Reply::BedHeld {
            hold: id,
            bed,
            ward: hold.ward,
            expires_at,
        })
    }

    /// The bed a `HoldBed` would take now, or its refusal. Changes nothing: `hold_bed` and
    /// the refusal precheck (`precheck`) both decide through it.
    pub(crate) fn bed_to_hold(&self, target: BedTarget, ttl_ms: u64) -> Result<BedId, Rejection> {
        check_ttl("ttl_ms", ttl_ms)?;
        match target {
            BedTarget::Ward(w) => self.beds.pick_bed(w),
            BedTarget::Bed(b) => self.beds.check_holdable(b).map(|_| b),
            BedTarget::BedInWard { ward, bed } => {
                self.beds.ward(ward).ok_or(Rejection::UnknownWard(ward))?;
                let in_ward = self.beds.bed(bed).ok_or(Rejection::UnknownBed(bed))?.ward;
                if in_ward != ward {
                    return Err(Rejection::invalid(
                        "bed_id",
                        format!("bed {bed} is in ward {in_ward}, not in ward {ward} (ward_id)"),
                    ));
                }
                self.beds.check_holdable(bed).map(|_| bed)
            }
        }
    }

    /// A referral-channel bed hold: the referral is checked as for a referral seat, then
    /// the bed is held as by `HoldBed`.
    pub(crate) fn hold_bed_for_referral(
        &mut self,
        target: BedTarget,
        patient: PatientRef,
        ttl_ms: u64,
        referral: ReferralId,
        now: LogTime,
    ) -> Result<Reply, Rejection> {
        let ask = SeatAsk::new(patient, Channel::Referral, Some(referral));
        self.check_referral_seat(&ask)?;
        self.hold_bed(target, patient, ttl_ms, now)
    }

    pub(crate) fn confirm_bed(&mut self, hold: HoldId, now: LogTime) -> Result<Reply, Rejection> {
        let bed = self.beds.check_pending(hold, now)?.bed;
        self.beds.resolve(hold, HoldState::Confirmed { at: now });
        self.bed_confirmed(hold, now);
        Ok(Reply::HoldConfirmed { hold, bed })
    }

    pub(crate) fn release_bed(&mut self, hold: HoldId, now: LogTime) -> Result<Reply, Rejection> {
        self.check_bed_release(hold)?;
        // A lapsed hold may still be released before the tick expires it: the outcome for
        // the bed is the same, and the caller's intent is clear.
        self.beds.resolve(hold, HoldState::Released { at: now });
        self.seat_lost(hold, "bed hold released", now);
        Ok(Reply::HoldReleased { hold })
    }

    /// Whether a `ReleaseHold` of `hold` is refused: unknown, or no longer pending.
    pub(crate) fn check_bed_release(&self, hold: HoldId) -> Result<(), Rejection> {
        let h = self.beds.hold(hold).ok_or(Rejection::UnknownHold(hold))?;
        if h.state != HoldState::Pending {
            return Err(Rejection::AlreadyResolved {
                what: format!("hold {hold}"),
                state: h.state.name().to_string(),
            });
        }
        Ok(())
    }
}
