//! Cross-region referral commands (`remote`): asking for a bed in another region,
//! recording the destination's answers, and what the referral lifecycle does to a
//! cross-region bed (accept confirms it, cancel/reject/expiry/no-capacity release it).

use crate::command::Reply;
use crate::engine::Engine;
use crate::error::Rejection;
use crate::ids::*;
use crate::limits::{
    HOLD_TTL_MS_MAX, HOLD_TTL_MS_MIN, PRUNES_PER_TICK_MAX, REMOTE_CONFIRM_GRACE_MS,
};
use crate::referrals::{By, ReferralActor as A, ReferralReason, ReferralState as S};
use crate::remote::{
    check_region_key, RemoteAction, RemoteBed, RemoteOutcome, RemoteStage as R, RemoteStep,
};
use crate::time::LogTime;

/// What `HoldRemoteBed` asks for.
pub(crate) struct RemoteAsk<'a> {
    pub region: &'a str,
    pub ward: WardId,
    pub ttl_ms: u64,
}

impl Engine {
    /// Starts a new attempt to hold a bed in another region for a triaged referral that
    /// holds nothing here.
    pub(crate) fn hold_remote_bed(
        &mut self,
        id: ReferralId,
        ask: &RemoteAsk,
        now: LogTime,
    ) -> Result<Reply, Rejection> {
        check_region_key("region", ask.region)?;
        if !(HOLD_TTL_MS_MIN..=HOLD_TTL_MS_MAX).contains(&ask.ttl_ms) {
            return Err(Rejection::invalid(
                "ttl_ms",
                format!("must be {HOLD_TTL_MS_MIN} to {HOLD_TTL_MS_MAX} ms"),
            ));
        }
        let r = self
            .referrals
            .check(id, &[S::Triaged], "hold a bed in another region for")?;
        if r.slot_hold.is_some() || r.bed_hold.is_some() {
            return Err(crate::beds::invalid_transition(
                "referral",
                id,
                "triaged with holds in this region",
                "hold a bed in another region for",
            ));
        }
        let attempt = match self.remote.beds.get(&id) {
            Some(b) if !b.stage.is_final() => {
                return Err(crate::beds::invalid_transition(
                    "referral",
                    id,
                    &format!("{} a bed in region {}", b.stage.name(), b.region),
                    "hold a bed in another region for",
                ))
            }
            Some(b) => b.attempt.saturating_add(1),
            None => 1,
        };
        self.remote.beds.insert(
            id,
            RemoteBed {
                region: ask.region.to_string(),
                ward: ask.ward,
                ttl_ms: ask.ttl_ms,
                attempt,
                stage: R::Holding,
                hold: None,
                since: now,
                stuck: None,
            },
        );
        let reason = remote_reason(ask.region, "holding a bed");
        let by = By::actor(now, A::Coordinator);
        self.referrals.transition_by(id, S::Triaged, reason, by);
        Ok(Reply::RemoteBedRecorded {
            referral: id,
            attempt,
            stage: R::Holding,
        })
    }

    /// Records the destination's answer to a step of attempt `attempt`. An answer to an
    /// older attempt, or one the stage no longer waits for (a repeated record), changes
    /// nothing and answers the current stage.
    pub(crate) fn record_remote(
        &mut self,
        id: ReferralId,
        attempt: u32,
        outcome: &RemoteOutcome,
        now: LogTime,
    ) -> Result<Reply, Rejection> {
        if let RemoteOutcome::Refused { reason } | RemoteOutcome::Stuck { reason } = outcome {
            crate::error::check_text("reason", reason)?;
        }
        let b = self
            .remote
            .beds
            .get(&id)
            .ok_or(Rejection::UnknownReferral(id))?;
        let current = Reply::RemoteBedRecorded {
            referral: id,
            attempt: b.attempt,
            stage: b.stage,
        };
        if b.attempt != attempt {
            return Ok(current);
        }
        let (stage, region) = (b.stage, b.region.clone());
        match (stage, outcome) {
            (R::Holding, RemoteOutcome::Held { hold }) => self.remote_held(id, *hold, now),
            (R::Releasing, RemoteOutcome::Held { hold }) => {
                self.set_remote(id, R::Releasing, Some(*hold), now)
            }
            (R::Holding, RemoteOutcome::Refused { reason }) => {
                self.set_remote(id, R::Released, None, now);
                let why = ReferralReason::NoCapacity(format!("region {region}: {reason}"));
                self.remote_back_to_worklist(id, why, now);
            }
            (R::Confirming, RemoteOutcome::Confirmed) => {
                self.set_remote(id, R::Confirmed, None, now);
                if self
                    .referrals
                    .get(id)
                    .is_some_and(|r| r.state == S::Matched)
                {
                    let by = By::actor(now, A::Receiving);
                    self.referrals.transition_by(
                        id,
                        S::Accepted,
                        ReferralReason::AwaitingMatch,
                        by,
                    );
                }
            }
            (R::Confirming, RemoteOutcome::Refused { reason }) => {
                self.set_remote(id, R::Released, None, now);
                let why = remote_reason(&region, &format!("the bed was not confirmed: {reason}"));
                self.remote_back_to_worklist(id, why, now);
            }
            (R::Releasing, RemoteOutcome::Released | RemoteOutcome::Refused { .. }) => {
                self.set_remote(id, R::Released, None, now);
            }
            (s, RemoteOutcome::Stuck { reason }) if s.pending() => {
                if let Some(b) = self.remote.beds.get_mut(&id) {
                    b.stuck = Some(reason.clone());
                }
            }
            _ => return Ok(current),
        }
        let b = &self.remote.beds[&id];
        Ok(Reply::RemoteBedRecorded {
            referral: id,
            attempt,
            stage: b.stage,
        })
    }

    /// The destination holds the bed: a referral still waiting is matched to it; one that
    /// moved on meanwhile (it cannot, but stay safe) lets it go.
    fn remote_held(&mut self, id: ReferralId, hold: HoldId, now: LogTime) {
        let waiting = self
            .referrals
            .get(id)
            .is_some_and(|r| r.state == S::Triaged);
        if !waiting {
            self.set_remote(id, R::Releasing, Some(hold), now);
            return;
        }
        self.set_remote(id, R::Held, Some(hold), now);
        let by = By::actor(now, A::Coordinator);
        self.referrals
            .transition_by(id, S::Matched, ReferralReason::AwaitingMatch, by);
    }

    /// Moves the cross-region bed to `stage` (keeping a known hold unless `hold` names
    /// one) and clears its stuck note: an answer came.
    fn set_remote(&mut self, id: ReferralId, stage: R, hold: Option<HoldId>, now: LogTime) {
        if let Some(b) = self.remote.beds.get_mut(&id) {
            b.stage = stage;
            b.hold = hold.or(b.hold);
            b.since = now;
            b.stuck = None;
        }
    }

    /// A referral whose cross-region bed fell through goes back to the worklist (triaged)
    /// with the reason, if it is still open there.
    fn remote_back_to_worklist(&mut self, id: ReferralId, why: ReferralReason, now: LogTime) {
        let open = self
            .referrals
            .get(id)
            .is_some_and(|r| matches!(r.state, S::Triaged | S::Matched));
        if open {
            let by = By::actor(now, A::Coordinator);
            self.referrals.transition_by(id, S::Triaged, why, by);
        }
    }

    /// `AcceptReferral` of a referral whose bed is held in another region: the bed is to
    /// be confirmed there (`Confirming`); the referral is accepted when it is. `None` when
    /// the referral has no such bed (the local rules apply).
    pub(crate) fn accept_remote(&mut self, id: ReferralId, now: LogTime) -> Option<Reply> {
        let b = self.remote.beds.get(&id)?;
        match b.stage {
            R::Held => self.set_remote(id, R::Confirming, None, now),
            R::Confirming => {}
            _ => return None,
        }
        Some(Reply::ReferralUpdated {
            referral: id,
            state: S::Matched,
        })
    }

    /// Refuses to close a referral while its bed is being confirmed in another region.
    pub(crate) fn check_remote_closable(
        &self,
        id: ReferralId,
        action: &str,
    ) -> Result<(), Rejection> {
        self.refuse_in_remote_stage(id, R::Confirming, "confirming its bed", action)
    }

    /// Refuses to give a referral local holds while a bed is being asked for in another
    /// region for it (`Holding`): the destination's answer matches it.
    pub(crate) fn check_remote_waiting(
        &self,
        id: ReferralId,
        action: &str,
    ) -> Result<(), Rejection> {
        self.refuse_in_remote_stage(id, R::Holding, "holding a bed", action)
    }

    /// `action` on referral `id` is an invalid transition while its cross-region bed is at
    /// `stage` (the referral is `doing` in the bed's region).
    fn refuse_in_remote_stage(
        &self,
        id: ReferralId,
        stage: R,
        doing: &str,
        action: &str,
    ) -> Result<(), Rejection> {
        match self.remote.beds.get(&id) {
            Some(b) if b.stage == stage => Err(crate::beds::invalid_transition(
                "referral",
                id,
                &format!("{doing} in region {}", b.region),
                action,
            )),
            _ => Ok(()),
        }
    }

    /// A referral lets go of its holds: a cross-region bed being asked for or held is
    /// released in its region too.
    pub(crate) fn release_remote(&mut self, id: ReferralId, now: LogTime) {
        let stage = self.remote.beds.get(&id).map(|b| b.stage);
        if matches!(stage, Some(R::Holding | R::Held)) {
            self.set_remote(id, R::Releasing, None, now);
        }
    }

    /// Whether a due referral must wait instead of expiring: its bed is being confirmed in
    /// another region. Its deadline moves by `REMOTE_CONFIRM_GRACE_MS`.
    pub(crate) fn postpone_for_remote(&mut self, id: ReferralId, now: LogTime) -> bool {
        let confirming = self
            .remote
            .beds
            .get(&id)
            .is_some_and(|b| b.stage == R::Confirming);
        if confirming {
            self.referrals
                .postpone(id, now.plus_ms(REMOTE_CONFIRM_GRACE_MS));
        }
        confirming
    }

    /// As a destination: holds a bed for another region's step, or answers the hold the
    /// same step made before (whatever became of it since) while it is on record.
    pub(crate) fn hold_bed_for_region(
        &mut self,
        origin: &str,
        step: RequestId,
        ward: WardId,
        patient: PatientRef,
        ttl_ms: u64,
        now: LogTime,
    ) -> Result<Reply, Rejection> {
        check_region_key("origin", origin)?;
        if let Some(h) = self.remote.granted(step).and_then(|h| self.beds.hold(h)) {
            return Ok(Reply::BedHeld {
                hold: h.id,
                bed: h.bed,
                ward: h.ward,
                expires_at: h.expires_at,
            });
        }
        let reply = self.hold_bed(crate::BedTarget::Ward(ward), patient, ttl_ms, now)?;
        if let Reply::BedHeld { hold, .. } = reply {
            self.remote.granted.insert(step, hold);
            self.remote.granted_at.insert((now, step));
        }
        Ok(reply)
    }

    /// Forgets the cross-region beds of referrals just pruned once their saga has ended (a
    /// pending one stays until its driver finishes it), and the grants older than any
    /// hold still on record (granted before `cutoff` less the longest hold), at most
    /// `PRUNES_PER_TICK_MAX`.
    pub(crate) fn prune_remote(&mut self, pruned: &[ReferralId], cutoff: LogTime) {
        for id in pruned {
            let sendable = self
                .remote
                .beds
                .get(id)
                .is_some_and(|b| b.stage == R::Releasing && b.hold.is_some());
            if !sendable {
                self.remote.beds.remove(id);
            }
        }
        let before = LogTime(cutoff.0.saturating_sub(HOLD_TTL_MS_MAX));
        let old = crate::time::drain_due(&mut self.remote.granted_at, before, PRUNES_PER_TICK_MAX);
        for step in old {
            self.remote.granted.remove(&step);
        }
    }

    /// The steps the driver owes other regions, oldest referral first, at most `max`: a
    /// function of the state, so any leader finds the same work after an election.
    pub fn remote_work(&self, max: usize) -> Vec<RemoteStep> {
        let mut out = Vec::new();
        for (id, b) in self.remote.all() {
            if out.len() == max {
                break;
            }
            let action = match (b.stage, b.hold) {
                (R::Holding, _) => RemoteAction::Hold,
                (R::Confirming, Some(hold)) => RemoteAction::Confirm { hold },
                (R::Releasing, hold) => RemoteAction::Release { hold },
                _ => continue,
            };
            let Some(r) = self.referrals.get(id) else {
                // A pruned referral's patient is gone with it; a hold the origin never
                // learned expires by its TTL (and `prune_remote` forgets it).
                if let (R::Releasing, Some(hold)) = (b.stage, b.hold) {
                    out.push(step(
                        id,
                        b,
                        PatientRef(0),
                        RemoteAction::Release { hold: Some(hold) },
                    ));
                }
                continue;
            };
            out.push(step(id, b, r.patient, action));
        }
        out
    }
}

fn step(id: ReferralId, b: &RemoteBed, patient: PatientRef, action: RemoteAction) -> RemoteStep {
    RemoteStep {
        referral: id,
        attempt: b.attempt,
        region: b.region.clone(),
        ward: b.ward,
        patient,
        ttl_ms: b.ttl_ms,
        action,
    }
}

/// The worklist reason of a referral waiting on another region.
fn remote_reason(region: &str, note: &str) -> ReferralReason {
    ReferralReason::Remote {
        region: region.to_string(),
        note: note.to_string(),
    }
}
