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
        // A referral closed and past the region's retention is pruned with its bed (the
        // engine keeps only a bed whose release is still owed): a referral cannot close
        // while its bed is being confirmed, so a pruned one's confirmed hold was its
        // `Confirmed` bed.
        let pruned = o.referrals().get(referral).is_none() && o.remote().get(referral).is_none();
        let wrong = match hold_state(d, hold) {
            Some(HoldState::Pending) if !named(R::Held) => Some("pending"),
            Some(HoldState::Confirmed { .. }) if !named(R::Confirmed) && !pruned => {
                Some("confirmed")
            }
            _ => None,
        };
        if let Some(wrong) = wrong {
            out.push(format!(
                "the destination's hold {hold} for referral {referral} (attempt {attempt}) is \
                 {wrong}, but the origin's bed is {:?} DBG referral {:?} bed {:?}",
                b.map(|b| b.stage.name()),
                o.referrals()
                    .get(referral)
                    .map(|r| (r.state, r.history.clone())),
                o.remote().get(referral)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region;
    use ninety_engine::remote::{RemoteOutcome, RemoteStep};
    use ninety_engine::{Command, Outcome, PatientRef, Reply, Request, RequestId, Specialty};
    use ninety_engine::{HospitalId, Urgency};

    const START: u64 = 1_800_000_000_000;

    /// An origin and a destination, each the simulator's region.
    fn two() -> (Engine, Engine) {
        let at = LogTime(START);
        let first = LogTime(START + 86_400_000);
        let load = || ninety_engine::load(&region::region_file(), &region::schedules(first), at);
        (load().expect("origin"), load().expect("destination"))
    }

    fn run(e: &mut Engine, id: u128, command: Command) -> Outcome {
        e.apply(
            &Request {
                id: RequestId(id),
                command,
            },
            LogTime(START + 1_000),
        )
    }

    /// A triaged referral of the origin asking for a bed in the destination.
    fn asked(o: &mut Engine) -> ReferralId {
        let from = HospitalId(1);
        let created = run(
            o,
            1,
            Command::RequestReferral {
                from,
                to: None,
                patient: PatientRef(7),
            },
        );
        let Ok(Reply::ReferralCreated { referral, .. }) = created else {
            panic!("{created:?}");
        };
        let (specialty, urgency) = (Specialty::Cardiology, Urgency::P2);
        let triaged = run(
            o,
            2,
            Command::TriageReferral {
                referral,
                specialty,
                urgency,
            },
        );
        assert!(triaged.is_ok(), "{triaged:?}");
        let ward = ninety_engine::WardId(1);
        let ttl_ms = 60_000;
        let region = crate::cross_region::DESTINATION.to_string();
        let held = run(
            o,
            3,
            Command::HoldRemoteBed {
                referral,
                region,
                ward,
                ttl_ms,
            },
        );
        assert!(held.is_ok(), "{held:?}");
        referral
    }

    /// Sends the origin's first owed step to the destination (unless `unsent`, when
    /// `instead` is recorded) and records the answer.
    fn drive(
        o: &mut Engine,
        d: &mut Engine,
        sent: &mut BTreeSet<(ReferralId, u32)>,
        instead: Option<RemoteOutcome>,
    ) {
        let step: RemoteStep = o.remote_work(1).remove(0);
        sent.insert((step.referral, step.attempt));
        let outcome = instead.unwrap_or_else(|| {
            let answer = d.apply(&step.request(ORIGIN), LogTime(START + 2_000));
            step.outcome(&answer)
        });
        let (referral, attempt) = (step.referral, step.attempt);
        let id = 10 + u128::from(o.remote().get(referral).map_or(0, |b| b.stage as u8));
        let recorded = run(
            o,
            id,
            Command::RecordRemote {
                referral,
                attempt,
                outcome,
            },
        );
        assert!(recorded.is_ok(), "{recorded:?}");
    }

    #[test]
    fn a_confirmation_never_sent_is_found_and_a_sent_one_is_not() {
        for unsent in [false, true] {
            let (mut o, mut d) = two();
            let mut sent = BTreeSet::new();
            let referral = asked(&mut o);
            assert!(
                !final_state(&o, &d, &sent).is_empty(),
                "holding is not final"
            );
            drive(&mut o, &mut d, &mut sent, None);
            assert_eq!(final_state(&o, &d, &sent), Vec::<String>::new());
            assert!(orphans(&o, &d, &sent).is_empty());
            let accepted = run(&mut o, 4, Command::AcceptReferral { referral });
            assert!(accepted.is_ok(), "{accepted:?}");
            drive(
                &mut o,
                &mut d,
                &mut sent,
                unsent.then_some(RemoteOutcome::Confirmed),
            );
            let found = final_state(&o, &d, &sent);
            assert_eq!(found.is_empty(), !unsent, "unsent {unsent}: {found:?}");
            assert_eq!(orphans(&o, &d, &sent).len(), usize::from(unsent));
        }
    }

    #[test]
    fn a_hold_pending_past_its_expiry_is_found_until_a_tick() {
        let (mut o, mut d) = two();
        let mut sent = BTreeSet::new();
        asked(&mut o);
        drive(&mut o, &mut d, &mut sent, None);
        let late = START + 2_000 + 60_000;
        assert!(no_hold_past_expiry(&d, late).is_err());
        let tick = Request {
            id: RequestId(99),
            command: Command::Tick,
        };
        assert!(d.apply(&tick, LogTime(late)).is_ok());
        assert!(no_hold_past_expiry(&d, late).is_ok());
    }
}
