//! Cross-region referrals in the origin region's workload (multi-region runs only): a
//! triaged referral of the client's asks the destination region for a bed
//! (`HoldRemoteBed`, a ward of the destination, a TTL of 1-30 s so some lapse), and the
//! client then accepts it (`AcceptReferral`: the bed is confirmed there), cancels or rejects
//! it, or reports no capacity (the bed is released there), or asks again after an attempt
//! ended. Deadlines pass on their own. The origin's driver (`crate::remote`) carries each
//! step to the destination.

use super::{keep, referral_seat, take, Owned, REFERRALS_KEPT_MAX};
use crate::region::RegionInfo;
use crate::rng::Rng;
use ninety_engine::{Command, HospitalId, PatientRef, ReferralId, Reply, Request, WardId};

/// The destination region, as the origin's workload names it.
#[derive(Clone, Debug)]
pub struct RemoteDest {
    /// The destination's region id (`HoldRemoteBed::region`).
    pub region: String,
    /// Its wards (the destination's ids).
    pub wards: Vec<WardId>,
}

/// A destination hold's TTL, ms: short enough that some lapse before the accept.
const TTL_MS: (u64, u64) = (1_000, 30_000);

/// Draws one cross-region command.
pub fn command(
    rng: &mut Rng,
    region: &RegionInfo,
    dest: &RemoteDest,
    owned: &Owned,
    patient: PatientRef,
) -> Command {
    let remote = take(rng, &owned.remote).map(|(_, r)| r);
    let reason = |s: &str| s.to_string();
    let cmd = match (rng.below(12), remote) {
        (0..=4, Some(referral)) => Some(Command::AcceptReferral { referral }),
        (5, Some(referral)) => Some(Command::CancelReferral {
            referral,
            reason: reason("patient treated locally"),
        }),
        (6, Some(referral)) => Some(Command::RejectReferral {
            referral,
            reason: reason("outside the receiving hospital's services"),
        }),
        (7, Some(referral)) => Some(Command::ReportNoCapacity {
            referral,
            reason: reason("no bed at the receiving hospital"),
        }),
        (8, Some(referral)) => Some(hold(rng, dest, referral)),
        _ => None,
    };
    if let Some(cmd) = cmd {
        return cmd;
    }
    match referral_seat(rng, region, owned, patient) {
        Ok((_, Some(referral))) => hold(rng, dest, referral),
        Ok((patient, None)) => Command::RequestReferral {
            from: take(rng, &region.hospitals).unwrap_or(HospitalId(1)),
            to: None,
            patient,
        },
        Err(first) => first,
    }
}

/// `HoldRemoteBed` for `referral` in a random ward of the destination.
fn hold(rng: &mut Rng, dest: &RemoteDest, referral: ReferralId) -> Command {
    Command::HoldRemoteBed {
        referral,
        region: dest.region.clone(),
        ward: take(rng, &dest.wards).unwrap_or(WardId(1)),
        ttl_ms: rng.range(TTL_MS.0, TTL_MS.1),
    }
}

/// Keeps the client's cross-region referrals up to date: one that asked for a remote bed
/// leaves the triaged ones (its other traffic must not hold local seats for it).
pub fn learn(owned: &mut Owned, request: &Request, outcome: &ninety_engine::Outcome) {
    if let (Command::HoldRemoteBed { referral, .. }, Ok(Reply::RemoteBedRecorded { .. })) =
        (&request.command, outcome)
    {
        let found = owned.triaged.iter().find(|(_, r)| r == referral).copied();
        owned.triaged.retain(|(_, r)| r != referral);
        if let Some(x) = found.filter(|x| !owned.remote.contains(x)) {
            keep(&mut owned.remote, x, REFERRALS_KEPT_MAX);
        }
    }
}
