//! Referrals (双向转诊): the lifecycle from request to completion, and the worklist.
//!
//! requested → triaged (specialty, urgency) → matched (slot and/or bed held) → accepted →
//! in transit → admitted → completed; or rejected / cancelled / expired with a reason.
//! A referral that finds no capacity, or whose holds lapse, goes back to `triaged` with the
//! reason on it: it stays on the worklist and is never left in limbo.

use crate::error::Rejection;
use crate::events::{Event, Pending};
use crate::graph::ReferralKind;
use crate::ids::*;
use crate::region::{Specialty, Urgency};
use crate::time::LogTime;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Where a referral stands.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferralState {
    Requested,
    Triaged,
    Matched,
    Accepted,
    InTransit,
    Admitted,
    Completed,
    Rejected,
    Cancelled,
    Expired,
}

impl ReferralState {
    /// The state's name for messages.
    pub fn name(self) -> &'static str {
        match self {
            ReferralState::Requested => "requested",
            ReferralState::Triaged => "triaged",
            ReferralState::Matched => "matched",
            ReferralState::Accepted => "accepted",
            ReferralState::InTransit => "in_transit",
            ReferralState::Admitted => "admitted",
            ReferralState::Completed => "completed",
            ReferralState::Rejected => "rejected",
            ReferralState::Cancelled => "cancelled",
            ReferralState::Expired => "expired",
        }
    }

    /// Whether the referral is closed for good.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ReferralState::Completed
                | ReferralState::Rejected
                | ReferralState::Cancelled
                | ReferralState::Expired
        )
    }

    /// Whether the referral sits on the worklist (waiting for someone to act).
    pub fn on_worklist(self) -> bool {
        matches!(self, ReferralState::Requested | ReferralState::Triaged)
    }
}

/// Why a referral is waiting, or why it closed.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferralReason {
    AwaitingTriage,
    AwaitingMatch,
    /// Matching found no capacity; the text says what was missing.
    NoCapacity(String),
    /// A hold of the referral lapsed before the patient arrived.
    HoldExpired(HoldId),
    /// Free text from the person who rejected or cancelled.
    Stated(String),
    /// The referral stayed open past its deadline.
    DeadlinePassed,
}

/// One step of a referral's history.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ReferralStep {
    pub at: LogTime,
    pub state: ReferralState,
}

/// A referral from one hospital to another.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Referral {
    pub id: ReferralId,
    pub from: HospitalId,
    pub to: Option<HospitalId>,
    pub kind: ReferralKind,
    pub patient: PatientRef,
    pub specialty: Option<Specialty>,
    pub urgency: Option<Urgency>,
    pub slot_hold: Option<HoldId>,
    pub bed_hold: Option<HoldId>,
    pub state: ReferralState,
    pub reason: ReferralReason,
    pub created_at: LogTime,
    pub deadline: LogTime,
    pub history: Vec<ReferralStep>,
}

/// Every referral, with indexes for the worklist, deadlines and holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReferralBook {
    pub(crate) referrals: BTreeMap<ReferralId, Referral>,
    /// Open referrals by deadline.
    pub(crate) deadlines: BTreeSet<(LogTime, ReferralId)>,
    /// Closed referrals by close time, for pruning.
    pub(crate) closed: BTreeSet<(LogTime, ReferralId)>,
    /// Which referral a hold serves.
    pub(crate) by_hold: BTreeMap<HoldId, ReferralId>,
    /// The change feed's events of the current command (`events`); always equal.
    #[serde(skip)]
    pub(crate) events: Pending,
}

impl ReferralBook {
    /// The referral record.
    pub fn get(&self, id: ReferralId) -> Option<&Referral> {
        self.referrals.get(&id)
    }

    /// Every referral.
    pub fn all(&self) -> impl Iterator<Item = &Referral> {
        self.referrals.values()
    }

    /// Open referrals waiting for action that involve `hospital` (as sender or receiver),
    /// oldest first; with `None`, the whole region's.
    pub fn worklist(&self, hospital: Option<HospitalId>) -> Vec<&Referral> {
        let mut v: Vec<&Referral> = self
            .referrals
            .values()
            .filter(|r| r.state.on_worklist())
            .filter(|r| hospital.is_none_or(|h| r.from == h || r.to == Some(h)))
            .collect();
        v.sort_by_key(|r| {
            (
                r.urgency.unwrap_or(crate::region::Urgency::P4),
                r.created_at,
                r.id,
            )
        });
        v
    }

    /// The referral a hold serves.
    pub fn for_hold(&self, hold: HoldId) -> Option<ReferralId> {
        self.by_hold.get(&hold).copied()
    }

    /// Checks that `id` exists and is in one of `allowed`, for `action`.
    pub fn check(
        &self,
        id: ReferralId,
        allowed: &[ReferralState],
        action: &str,
    ) -> Result<&Referral, Rejection> {
        let r = self
            .referrals
            .get(&id)
            .ok_or(Rejection::UnknownReferral(id))?;
        if !allowed.contains(&r.state) {
            if r.state.is_final() {
                return Err(Rejection::AlreadyResolved {
                    what: format!("referral {id}"),
                    state: r.state.name().to_string(),
                });
            }
            return Err(crate::beds::invalid_transition(
                "referral",
                id,
                r.state.name(),
                action,
            ));
        }
        Ok(r)
    }

    pub(crate) fn insert(&mut self, r: Referral) {
        self.events.push(Event::ReferralMoved {
            referral: r.id,
            from: r.from,
            to: r.to,
            state: r.state,
            reason: r.reason.clone(),
        });
        self.deadlines.insert((r.deadline, r.id));
        self.referrals.insert(r.id, r);
    }

    /// Moves a referral to `state` with `reason`, keeping the indexes in step.
    pub(crate) fn transition(
        &mut self,
        id: ReferralId,
        state: ReferralState,
        reason: ReferralReason,
        at: LogTime,
    ) {
        let Some(r) = self.referrals.get_mut(&id) else {
            return;
        };
        r.state = state;
        r.history.push(ReferralStep { at, state });
        self.events.push(Event::ReferralMoved {
            referral: id,
            from: r.from,
            to: r.to,
            state,
            reason: reason.clone(),
        });
        r.reason = reason;
        if state.is_final() {
            self.deadlines.remove(&(r.deadline, id));
            self.closed.insert((at, id));
            for h in [r.slot_hold, r.bed_hold].into_iter().flatten() {
                self.by_hold.remove(&h);
            }
        }
    }

    /// Attaches holds to a referral.
    pub(crate) fn attach(
        &mut self,
        id: ReferralId,
        slot_hold: Option<HoldId>,
        bed_hold: Option<HoldId>,
    ) {
        let Some(r) = self.referrals.get_mut(&id) else {
            return;
        };
        for h in [r.slot_hold, r.bed_hold].into_iter().flatten() {
            self.by_hold.remove(&h);
        }
        r.slot_hold = slot_hold;
        r.bed_hold = bed_hold;
        for h in [slot_hold, bed_hold].into_iter().flatten() {
            self.by_hold.insert(h, id);
        }
    }

    /// Open referrals whose deadline is at or before `now`, at most `max`.
    pub(crate) fn due(&self, now: LogTime, max: usize) -> Vec<ReferralId> {
        crate::time::due(&self.deadlines, now, max)
    }

    /// Forgets referrals closed at or before `cutoff`, at most `max`.
    pub(crate) fn prune(&mut self, cutoff: LogTime, max: usize) -> usize {
        let old = crate::time::drain_due(&mut self.closed, cutoff, max);
        for id in &old {
            self.referrals.remove(id);
        }
        old.len()
    }
}
