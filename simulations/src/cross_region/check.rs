//! The cross-region checks: on every replica of every region, no pending bed hold outlives
//! its expiry past a tick ([`no_hold_past_expiry`]); at the end of a multi-region run, after
//! the liveness phase where faults healed and the driver ran to quiescence, every
//! cross-region bed of the origin agrees with the destination ([`final_state`]), and no
//! hold the destination made for the origin is left pending unnamed ([`orphans`]).

use super::ORIGIN;
use ninety_engine::remote::{step_request_id, RemoteStage as R};
use ninety_engine::{Engine, HoldId, HoldState, LogTime, ReferralId, ReferralState};
use std::collections::BTreeSet;

/// After an entry with a tick at log time `now_ms`: no bed hold is still pending at or past
/// its expiry (the tick expires every due hold; `EXPIRIES_PER_TICK_MAX` is far above what a
/// simulated region holds).
pub fn no_hold_past_expiry(engine: &Engine, now_ms: u64) -> Result<(), String> {
    let now = LogTime(now_ms);
    match engine.beds().pending_holds().find(|h| h.expires_at <= now) {
        Some(h) => Err(format!(
            "hold {} on bed {} is pending at {} ms after a tick, past its expiry at {} ms",
            h.id, h.bed, now.0, h.expires_at.0
        )),
        None => Ok(()),
    }
}

/// The destination's hold made for the hold step of `referral`'s attempt `attempt`.
fn granted(d: &Engine, referral: ReferralId, attempt: u32) -> Option<HoldId> {
    d.remote()
        .granted(step_request_id(ORIGIN, referral, attempt, "hold"))
}

fn hold_state(d: &Engine, hold: HoldId) -> Option<HoldState> {
    d.beds().hold(hold).map(|h| h.state)
}

/// The destination's holds still pending that it made for a hold step the driver sent
/// (`sent`: referral and attempt) and that the origin does not name as its `Held` bed.
pub fn orphans(o: &Engine, d: &Engine, sent: &BTreeSet<(ReferralId, u32)>) -> Vec<HoldId> {
    sent.iter()
        .filter_map(|&(referral, attempt)| {
            let hold = granted(d, referral, attempt)?;
            let pending = hold_state(d, hold) == Some(HoldState::Pending);
            let named = o.remote().get(referral).is_some_and(|b| {
                b.attempt == attempt && b.stage == R::Held && b.hold == Some(hold)
            });
            (pending && !named).then_some(hold)
        })
        .collect()
}

/// Every cross-region bed of origin replica `o` against the destination `d` once the driver
/// is quiescent: final, or `Held` with its referral `Matched`; `Confirmed` only with the
/// destination's hold confirmed, `Released` only with it not pending or confirmed, `Held`
/// never with it confirmed; and every hold the destination made for a step of the origin's
/// that is still pending is the origin's `Held` bed, every confirmed one its `Confirmed` one.
pub fn final_state(o: &Engine, d: &Engine, sent: &BTreeSet<(ReferralId, u32)>) -> Vec<String> {
    let mut out = Vec::new();
    for (id, b) in o.remote().all() {
        let state = b.hold.and_then(|h| hold_state(d, h));
        let matched = o.referrals().get(id).map(|r| r.state) == Some(ReferralState::Matched);
        let confirmed = matches!(state, Some(HoldState::Confirmed { .. }));
        let wrong = match b.stage {
            R::Holding | R::Confirming | R::Releasing => Some("still pending"),
            R::Held if !matched => Some("held for a referral that is not matched"),
            R::Held if confirmed => Some("held, but confirmed in the destination"),
            R::Confirmed if !confirmed && state.is_some() => {
                Some("confirmed, but not confirmed in the destination")
            }
            R::Released if confirmed || state == Some(HoldState::Pending) => {
                Some("released, but live in the destination")
            }
            _ => None,
        };
        if let Some(wrong) = wrong {
            out.push(format!(
                "cross-region bed of referral {id} (attempt {}, hold {:?}: {}) is {wrong} \
                 after the liveness phase",
                b.attempt,
                b.hold,
                state.map_or("not on record", |s| s.name())
            ));
        }
    }
    for &(referral, attempt) in sent {
        let Some(hold) = granted(d, referral, attempt) else {
            continue;
        };
        let b = o.remote().get(referral).filter(|b| b.attempt == attempt);
        let named = |stage| b.is_some_and(|b| b.stage == stage && b.hold == Some(hold));
        let wrong = match hold_state(d, hold) {
            Some(HoldState::Pending) if !named(R::Held) => Some("pending"),
            Some(HoldState::Confirmed { .. }) if !named(R::Confirmed) => Some("confirmed"),
            _ => None,
        };
        if let Some(wrong) = wrong {
            out.push(format!(
                "the destination's hold {hold} for referral {referral} (attempt {attempt}) is \
                 {wrong}, but the origin's bed is {:?}",
                b.map(|b| b.stage.name())
            ));
        }
    }
    out
}
