//! Referral commands: the lifecycle, and what happens to a referral when its holds go.

use crate::beds::{BedState, HoldState};
use crate::command::Reply;
use crate::engine::Engine;
use crate::error::{check_text, Rejection};
use crate::graph::ReferralKind;
use crate::ids::*;
use crate::referrals::{
    check_code, check_note, By, Referral, ReferralActor as A, ReferralReason, ReferralState as S,
    ReferralStep,
};
use crate::region::{Specialty, Urgency};
use crate::slots::SeatState;
use crate::time::LogTime;

/// What a referring hospital states with a request (`Command::RequestReferralWith`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Stated<'a> {
    /// The direction when no destination is named; with one, it must match the path.
    pub direction: Option<ReferralKind>,
    pub reason_code: Option<&'a str>,
    pub note: Option<&'a str>,
}

impl Engine {
    pub(crate) fn request_referral(
        &mut self,
        from: HospitalId,
        to: Option<HospitalId>,
        patient: PatientRef,
        stated: &Stated,
        now: LogTime,
    ) -> Result<Reply, Rejection> {
        if let Some(code) = stated.reason_code {
            check_code("reason_code", code)?;
        }
        if let Some(note) = stated.note {
            check_note("note", note)?;
        }
        let kind = self.referral_direction(from, to, stated.direction)?;
        let id = ReferralId(self.counters.next_referral);
        self.counters.next_referral += 1;
        let deadline = now.plus_ms(self.policy.referral_ttl_ms);
        let owned = |t: Option<&str>| t.filter(|t| !t.is_empty()).map(str::to_string);
        self.referrals.insert(Referral {
            id,
            from,
            to,
            kind,
            patient,
            specialty: None,
            urgency: None,
            slot_hold: None,
            bed_hold: None,
            state: S::Requested,
            reason: ReferralReason::AwaitingTriage,
            created_at: now,
            deadline,
            history: vec![ReferralStep {
                at: now,
                state: S::Requested,
                index: self.referrals.applying.0,
                actor: Some(A::Referring),
                reason: ReferralReason::AwaitingTriage,
                note: owned(stated.reason_code),
            }],
            reason_code: owned(stated.reason_code),
            note: owned(stated.note),
            outcome: None,
        });
        Ok(Reply::ReferralCreated { referral: id, kind })
    }

    /// The direction of a referral from `from` to `to`: the referral path's kind when a
    /// destination is named (`stated` must agree), else what the request states, up-tier
    /// by default.
    fn referral_direction(
        &self,
        from: HospitalId,
        to: Option<HospitalId>,
        stated: Option<ReferralKind>,
    ) -> Result<ReferralKind, Rejection> {
        let from_h = self
            .hospitals
            .get(&from)
            .ok_or_else(|| Rejection::invalid("from", format!("unknown hospital {from}")))?;
        let Some(t) = to else {
            return Ok(stated.unwrap_or(ReferralKind::UpTier));
        };
        let to_h = self
            .hospitals
            .get(&t)
            .ok_or_else(|| Rejection::invalid("to", format!("unknown hospital {t}")))?;
        if t == from {
            return Err(Rejection::invalid(
                "to",
                "a hospital cannot refer to itself",
            ));
        }
        let Some(kind) = self.graph.referral_kind(from, t) else {
            return Err(Rejection::invalid(
                "to",
                format!(
                    "no referral path from {from} ({:?}) to {t} ({:?})",
                    from_h.tier, to_h.tier
                ),
            ));
        };
        if stated.is_some_and(|k| k != kind) {
            return Err(Rejection::invalid(
                "direction",
                format!("the referral path from {from} to {t} is {kind:?}"),
            ));
        }
        Ok(kind)
    }

    pub(crate) fn triage_referral(
        &mut self,
        id: ReferralId,
        specialty: Specialty,
        urgency: Urgency,
        note: Option<&str>,
        now: LogTime,
    ) -> Result<Reply, Rejection> {
        if let Some(note) = note {
            check_note("note", note)?;
        }
        self.referrals
            .check(id, &[S::Requested, S::Triaged], "triage")?;
        if let Some(r) = self.referrals.referrals.get_mut(&id) {
            r.specialty = Some(specialty);
            r.urgency = Some(urgency);
        }
        let by = By::actor(now, A::Triage).noted(note);
        self.referrals
            .transition_by(id, S::Triaged, ReferralReason::AwaitingMatch, by);
        Ok(updated(id, S::Triaged))
    }

    pub(crate) fn match_referral(
        &mut self,
        id: ReferralId,
        slot_hold: Option<HoldId>,
        bed_hold: Option<HoldId>,
        now: LogTime,
    ) -> Result<Reply, Rejection> {
        let r = self.referrals.check(id, &[S::Triaged], "match")?;
        let patient = r.patient;
        // A referral waiting for a bed in another region is matched by its answer: local
        // holds now would leave it with two beds (and the remote one unaccounted for).
        self.check_remote_waiting(id, "match")?;
        if slot_hold.is_none() && bed_hold.is_none() {
            return Err(Rejection::invalid(
                "slot_hold",
                "name a slot hold, a bed hold or both",
            ));
        }
        if let Some(h) = slot_hold {
            let seat = self.slots.check_held(h, now, true)?;
            if seat.patient != patient {
                return Err(Rejection::invalid("slot_hold", "held for another patient"));
            }
            if self.referrals.for_hold(h).is_some() {
                return Err(Rejection::invalid("slot_hold", "already serves a referral"));
            }
        }
        if let Some(h) = bed_hold {
            let hold = self.beds.check_pending(h, now)?;
            if hold.patient != patient {
                return Err(Rejection::invalid("bed_hold", "held for another patient"));
            }
            if self.referrals.for_hold(h).is_some() {
                return Err(Rejection::invalid("bed_hold", "already serves a referral"));
            }
        }
        self.referrals.attach(id, slot_hold, bed_hold);
        let by = By::actor(now, A::Coordinator);
        self.referrals
            .transition_by(id, S::Matched, ReferralReason::AwaitingMatch, by);
        Ok(updated(id, S::Matched))
    }

    pub(crate) fn report_no_capacity(
        &mut self,
        id: ReferralId,
        reason: &str,
        now: LogTime,
    ) -> Result<Reply, Rejection> {
        check_text("reason", reason)?;
        let matched = self
            .referrals
            .check(id, &[S::Triaged, S::Matched], "report no capacity for")?
            .state
            == S::Matched;
        self.check_remote_closable(id, "report no capacity for")?;
        // A bed asked for or held in another region goes too.
        self.release_remote(id, now);
        // The matched hospital cannot take the patient after all: its holds go, and the
        // referral returns to the worklist to be matched again (referrals.proto).
        // Matching found nothing (the coordinator), or the matched hospital refuses.
        let actor = if matched {
            A::Receiving
        } else {
            A::Coordinator
        };
        if matched {
            self.release_referral_holds(id, now);
            self.referrals.attach(id, None, None);
        }
        self.referrals.transition_by(
            id,
            S::Triaged,
            ReferralReason::NoCapacity(reason.to_string()),
            By::actor(now, actor),
        );
        Ok(updated(id, S::Triaged))
    }

    pub(crate) fn accept_referral(
        &mut self,
        id: ReferralId,
        now: LogTime,
    ) -> Result<Reply, Rejection> {
        self.referrals.check(id, &[S::Matched], "accept")?;
        if let Some(reply) = self.accept_remote(id, now) {
            return Ok(reply);
        }
        let r = self.referrals.check(id, &[S::Matched], "accept")?;
        let slot_hold = r.slot_hold;
        if let Some(h) = slot_hold {
            self.slots.check_held(h, now, true)?;
        }
        if let Some(h) = r.bed_hold {
            self.beds.check_pending(h, now)?;
        }
        if let Some(h) = slot_hold {
            self.slots.set_seat(h, SeatState::Booked { at: now });
        }
        let by = By::actor(now, A::Receiving);
        self.referrals
            .transition_by(id, S::Accepted, ReferralReason::AwaitingMatch, by);
        Ok(updated(id, S::Accepted))
    }

    pub(crate) fn start_transit(
        &mut self,
        id: ReferralId,
        now: LogTime,
    ) -> Result<Reply, Rejection> {
        self.referrals
            .check(id, &[S::Accepted], "start transit for")?;
        let by = By::actor(now, A::Referring);
        self.referrals
            .transition_by(id, S::InTransit, ReferralReason::AwaitingMatch, by);
        Ok(updated(id, S::InTransit))
    }

    pub(crate) fn admit_referral(
        &mut self,
        id: ReferralId,
        now: LogTime,
    ) -> Result<Reply, Rejection> {
        let r = self
            .referrals
            .check(id, &[S::Accepted, S::InTransit], "admit")?;
        if let Some(h) = r.bed_hold {
            self.beds.check_pending(h, now)?;
            self.beds.resolve(h, HoldState::Confirmed { at: now });
        }
        let by = By::actor(now, A::Receiving);
        self.referrals
            .transition_by(id, S::Admitted, ReferralReason::AwaitingMatch, by);
        Ok(updated(id, S::Admitted))
    }

    pub(crate) fn complete_referral(
        &mut self,
        id: ReferralId,
        outcome: Option<&str>,
        now: LogTime,
    ) -> Result<Reply, Rejection> {
        if let Some(code) = outcome {
            check_code("outcome", code)?;
        }
        let r = self.referrals.check(id, &[S::Admitted], "complete")?;
        // Care at the receiving hospital is over, whatever the outcome (discharged home,
        // referred down): the patient leaves the bed, which goes to cleaning.
        if let Some(bed) = self.admitted_bed(r) {
            self.beds.discharge(bed)?;
        }
        if let Some(r) = self.referrals.referrals.get_mut(&id) {
            r.outcome = outcome.filter(|o| !o.is_empty()).map(str::to_string);
        }
        let by = By::actor(now, A::Receiving).noted(outcome);
        self.referrals
            .transition_by(id, S::Completed, ReferralReason::AwaitingMatch, by);
        Ok(updated(id, S::Completed))
    }

    /// The bed an admitted referral's patient still occupies since the admission: the bed
    /// of its confirmed hold, or (the hold pruned) the patient's bed at the receiving
    /// hospital occupied since that moment. `None` when the referral held no bed or the
    /// hospital has discharged the patient already.
    fn admitted_bed(&self, r: &Referral) -> Option<BedId> {
        let hold = r.bed_hold?;
        let since = r.history.iter().rev().find(|s| s.state == S::Admitted)?.at;
        let occupied = BedState::Occupied {
            patient: r.patient,
            since,
        };
        match self.beds.hold(hold) {
            Some(h) => {
                Some(h.bed).filter(|b| self.beds.bed(*b).is_some_and(|b| b.state == occupied))
            }
            None => self.beds.occupied_bed(occupied, r.to),
        }
    }

    /// Rejects (by the receiver) or cancels (by the sender) an open referral and lets go of
    /// its pending holds.
    pub(crate) fn close_referral(
        &mut self,
        id: ReferralId,
        reason: &str,
        cancel: bool,
        now: LogTime,
    ) -> Result<Reply, Rejection> {
        check_text("reason", reason)?;
        let open = [
            S::Requested,
            S::Triaged,
            S::Matched,
            S::Accepted,
            S::InTransit,
        ];
        let action = if cancel { "cancel" } else { "reject" };
        self.referrals.check(id, &open, action)?;
        self.check_remote_closable(id, action)?;
        let state = if cancel { S::Cancelled } else { S::Rejected };
        self.release_referral_holds(id, now);
        let by = By::actor(now, if cancel { A::Referring } else { A::Receiving });
        self.referrals
            .transition_by(id, state, ReferralReason::Stated(reason.to_string()), by);
        Ok(updated(id, state))
    }

    /// Lets go of a closing referral's pending bed hold and its slot hold or booking.
    pub(crate) fn release_referral_holds(&mut self, id: ReferralId, now: LogTime) {
        self.release_remote(id, now);
        let Some(r) = self.referrals.get(id) else {
            return;
        };
        let (slot_hold, bed_hold) = (r.slot_hold, r.bed_hold);
        if let Some(h) = bed_hold {
            if self
                .beds
                .hold(h)
                .is_some_and(|x| x.state == HoldState::Pending)
            {
                self.beds.resolve(h, HoldState::Released { at: now });
            }
        }
        if let Some(h) = slot_hold {
            let state = self.slots.seat(h).map(|s| s.state);
            let next = match state {
                Some(SeatState::Held) => Some(SeatState::Released { at: now }),
                Some(SeatState::Booked { .. }) => Some(SeatState::Cancelled { at: now }),
                _ => None,
            };
            if let Some(next) = next {
                if let Some(seat) = self.slots.set_seat(h, next) {
                    self.offer_freed(seat.slot, now);
                }
            }
        }
    }

    /// A hold of a live referral was released or expired: the referral goes back to the
    /// worklist (triaged) with the reason, its other holds kept for re-matching.
    pub(crate) fn seat_lost(&mut self, hold: HoldId, _why: &str, now: LogTime) {
        let Some(id) = self.referrals.for_hold(hold) else {
            return;
        };
        let Some(r) = self.referrals.get(id) else {
            return;
        };
        if !matches!(r.state, S::Matched | S::Accepted | S::InTransit) {
            return;
        }
        let keep_slot = r.slot_hold.filter(|&h| h != hold);
        let keep_bed = r.bed_hold.filter(|&h| h != hold);
        self.referrals.attach(id, keep_slot, keep_bed);
        // Released by someone or lapsed: the command does not say who.
        let by = By {
            at: now,
            actor: None,
            note: None,
        };
        self.referrals
            .transition_by(id, S::Triaged, ReferralReason::HoldExpired(hold), by);
    }
}

impl Engine {
    /// A referral's bed hold was confirmed directly (the ward admitted the patient): the
    /// referral is admitted too.
    pub(crate) fn bed_confirmed(&mut self, hold: HoldId, now: LogTime) {
        let Some(id) = self.referrals.for_hold(hold) else {
            return;
        };
        let live = self
            .referrals
            .get(id)
            .is_some_and(|r| matches!(r.state, S::Matched | S::Accepted | S::InTransit));
        if live {
            let by = By::actor(now, A::Receiving);
            self.referrals
                .transition_by(id, S::Admitted, ReferralReason::AwaitingMatch, by);
        }
    }
}

fn updated(referral: ReferralId, state: S) -> Reply {
    Reply::ReferralUpdated { referral, state }
}
