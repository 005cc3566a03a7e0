//! The referral lifecycle beyond triage: a triaged referral matched to the seat or bed held
//! for it (`MatchReferral`), the matched hospital reporting it has no capacity after all
//! (`ReportNoCapacity` on a MATCHED referral: its holds go, it returns to the worklist; on a
//! TRIAGED one, the coordinator's "nothing found"), the receiving side rejecting it
//! (`RejectReferral`) and the sender cancelling it (`CancelReferral`). Now and then a
//! closed referral is rejected again (refused: a closed referral never moves).
//!
//! A client matches what it holds: the seats and beds it held for a triaged referral of its
//! own (`Owned::referral_seats`, `Owned::referral_beds`). Without one it sends the step that
//! gets there first: request, triage, a referral-channel seat (`HoldSlotFor`, a short hold).

use super::{referral_seat, take, Owned};
use crate::region::RegionInfo;
use crate::rng::Rng;
use ninety_engine::{Channel, Command, HoldId, HospitalId, PatientRef, ReferralId, SlotId};

/// How long a seat held to match a referral with lasts, ms: some lapse before the match
/// (refused) or after it (the referral goes back to triaged).
const SEAT_TTL_MS: (u64, u64) = (20_000, 300_000);
/// Of the matches with a seat, how many in a thousand also name a bed held for the referral
/// (bed holds are short: a lapsed one makes the match refused).
const WITH_BED_PER_MILLE: u64 = 333;

/// Draws one referral command.
pub fn command(rng: &mut Rng, region: &RegionInfo, owned: &Owned, patient: PatientRef) -> Command {
    let cmd = match rng.below(10) {
        0..=3 => report_no_capacity(rng, owned),
        4..=5 => reject(rng, owned),
        6 => take(rng, &owned.requested)
            .or_else(|| take(rng, &owned.matched))
            .or_else(|| take(rng, &owned.triaged))
            .map(|(_, referral)| Command::CancelReferral {
                referral,
                reason: "patient treated locally".into(),
            }),
        _ => None,
    };
    cmd.unwrap_or_else(|| to_matched(rng, region, owned, patient))
}

/// `ReportNoCapacity`: on a matched referral of the client's (the receiving hospital cannot
/// take the patient after all); without one, one time in three on a triaged one (matching
/// found nothing), else `None` (the caller takes a step towards a matched one).
fn report_no_capacity(rng: &mut Rng, owned: &Owned) -> Option<Command> {
    let triaged = |rng: &mut Rng| take(rng, &owned.triaged).filter(|_| rng.chance(333));
    let (_, referral) = take(rng, &owned.matched).or_else(|| triaged(rng))?;
    Some(Command::ReportNoCapacity {
        referral,
        reason: "no bed at the receiving hospital".into(),
    })
}

/// `RejectReferral`: a matched (half the time), triaged or requested referral of the
/// client's; one time in ten one it closed already (refused).
fn reject(rng: &mut Rng, owned: &Owned) -> Option<Command> {
    let closed = take(rng, &owned.closed).filter(|_| rng.chance(100));
    let referral = closed.or_else(|| {
        let open = match rng.below(4) {
            0 | 1 => take(rng, &owned.matched),
            2 => take(rng, &owned.triaged),
            _ => take(rng, &owned.requested),
        };
        open.or_else(|| take(rng, &owned.matched))
            .or_else(|| take(rng, &owned.triaged))
            .map(|(_, r)| r)
    })?;
    Some(Command::RejectReferral {
        referral,
        reason: "outside the receiving hospital's services".into(),
    })
}

/// The next step towards a matched referral: match a referral with the seat the client
/// holds for it (and one time in three the bed too), else hold a referral-channel seat for a triaged one (`HoldSlotFor`:
/// the client keeps it for the match, its other seat traffic does not book or release it),
/// else triage or request one.
fn to_matched(rng: &mut Rng, region: &RegionInfo, owned: &Owned, patient: PatientRef) -> Command {
    let held = take(rng, &owned.referral_seats).or_else(|| take(rng, &owned.referral_beds));
    if let Some((referral, _)) = held {
        let of = |v: &[(ReferralId, HoldId)]| {
            v.iter()
                .rev()
                .find(|(r, _)| *r == referral)
                .map(|(_, h)| *h)
        };
        let slot_hold = of(&owned.referral_seats);
        let with_bed = slot_hold.is_none() || rng.chance(WITH_BED_PER_MILLE);
        return Command::MatchReferral {
            referral,
            slot_hold,
            bed_hold: of(&owned.referral_beds).filter(|_| with_bed),
        };
    }
    match referral_seat(rng, region, owned, patient) {
        Ok((patient, Some(referral))) => {
            let slot = rng
                .pick(&region.slots)
                .and_then(|d| rng.pick(d))
                .copied()
                .unwrap_or(SlotId(1));
            Command::HoldSlotFor {
                slot,
                patient,
                channel: Channel::Referral,
                ttl_ms: rng.range(SEAT_TTL_MS.0, SEAT_TTL_MS.1),
                referral: Some(referral),
            }
        }
        Ok((patient, None)) => Command::RequestReferral {
            from: take(rng, &region.hospitals).unwrap_or(HospitalId(1)),
            to: None,
            patient,
        },
        Err(first) => first,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ninety_engine::LogTime;
    use std::collections::BTreeSet;

    /// A client with a referral in every state draws every referral command; one without
    /// any takes the first step towards a matched one.
    #[test]
    fn every_referral_command_is_drawn() {
        let start = LogTime(1_800_000_000_000);
        let region = crate::region::info(start, LogTime(start.0 - 3_600_000)).expect("region");
        let owned = Owned {
            requested: vec![(PatientRef(7), ReferralId(1))],
            triaged: vec![(PatientRef(7), ReferralId(2))],
            matched: vec![(PatientRef(7), ReferralId(3))],
            referral_seats: vec![(ReferralId(2), HoldId(9))],
            closed: vec![ReferralId(4)],
            ..Owned::default()
        };
        let mut rng = Rng::new(4);
        let mut names = BTreeSet::new();
        let mut on_matched = false;
        for _ in 0..1_000 {
            let c = command(&mut rng, &region, &owned, PatientRef(7));
            if let Command::ReportNoCapacity { referral, .. } = c {
                on_matched |= referral == ReferralId(3);
            }
            names.insert(super::super::lifecycle_name(&c).unwrap_or("other"));
        }
        for name in [
            "MatchReferral",
            "ReportNoCapacity",
            "RejectReferral",
            "CancelReferral",
        ] {
            assert!(names.contains(name), "{name} never drawn: {names:?}");
        }
        assert!(on_matched, "no report on the matched referral");
        let first = command(&mut rng, &region, &Owned::default(), PatientRef(7));
        assert!(
            matches!(first, Command::RequestReferral { .. }),
            "{first:?}"
        );
    }
}
