//! Referral reads: one referral with its receiving hospital, its stage as the API reports
//! it and its history (each step with its log index, time, actor, reason and code), and
//! worklist pages of a hospital or the whole region, filtered by stage,
//! reason and urgency.

use crate::engine::Engine;
use crate::ids::*;
use crate::limits::WORKLIST_LIMIT_MAX;
use crate::referrals::{Referral, ReferralActor, ReferralReason, ReferralState, ReferralStep};
use crate::region::Urgency;
use crate::time::LogTime;
use serde::{Deserialize, Serialize};

/// A referral with the receiving hospital as far as it is known.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferralInfo {
    pub referral: Referral,
    /// The requested hospital, else the hospital of its bed hold or slot hold.
    pub to_hospital: Option<HospitalId>,
    /// Log time of its last transition.
    pub updated: LogTime,
    /// Its state as the API reports it.
    pub stage: ReferralStage,
    /// The kind of its current reason.
    pub reason: ReasonKind,
    /// Its history, oldest first, as the API reports it.
    pub history: Vec<StepInfo>,
    /// Its bed in another region, if it asked for one (`remote`).
    pub remote: Option<crate::remote::RemoteBed>,
}

/// One step of a referral's history as the API reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepInfo {
    pub step: ReferralStep,
    /// The stage the step moved the referral to.
    pub stage: ReferralStage,
    /// The kind of the reason after the step.
    pub reason: ReasonKind,
    /// The actor's hospital where its side is known: the referring hospital for
    /// `Referring`, the receiving one (when known) for `Receiving`.
    pub hospital: Option<HospitalId>,
}

/// The API's view of a referral's state: the engine keeps a referral that found no
/// capacity in `Triaged` with the reason; the API reports that as `NoCapacity`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReferralStage {
    State(ReferralState),
    NoCapacity,
}

impl ReferralStage {
    pub fn of(r: &Referral) -> ReferralStage {
        ReferralStage::of_parts(r.state, &r.reason)
    }

    /// The stage a history step moved the referral to.
    pub fn of_step(s: &ReferralStep) -> ReferralStage {
        ReferralStage::of_parts(s.state, &s.reason)
    }

    fn of_parts(state: ReferralState, reason: &ReferralReason) -> ReferralStage {
        match (state, reason) {
            (ReferralState::Triaged, ReferralReason::NoCapacity(_)) => ReferralStage::NoCapacity,
            (s, _) => ReferralStage::State(s),
        }
    }
}

/// The kind of a referral's current reason, for filtering (the reason's text aside).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReasonKind {
    AwaitingTriage,
    AwaitingMatch,
    NoCapacity,
    HoldExpired,
    Stated,
    DeadlinePassed,
    /// Waiting on, or fallen through in, another region.
    Remote,
}

impl ReasonKind {
    /// Every kind, in the order of the docs.
    pub const ALL: [ReasonKind; 7] = [
        ReasonKind::AwaitingTriage,
        ReasonKind::AwaitingMatch,
        ReasonKind::NoCapacity,
        ReasonKind::HoldExpired,
        ReasonKind::Stated,
        ReasonKind::DeadlinePassed,
        ReasonKind::Remote,
    ];

    pub fn of(reason: &ReferralReason) -> ReasonKind {
        match reason {
            ReferralReason::AwaitingTriage => ReasonKind::AwaitingTriage,
            ReferralReason::AwaitingMatch => ReasonKind::AwaitingMatch,
            ReferralReason::NoCapacity(_) => ReasonKind::NoCapacity,
            ReferralReason::HoldExpired(_) => ReasonKind::HoldExpired,
            ReferralReason::Stated(_) => ReasonKind::Stated,
            ReferralReason::DeadlinePassed => ReasonKind::DeadlinePassed,
            ReferralReason::Remote { .. } => ReasonKind::Remote,
        }
    }

    /// The kind's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            ReasonKind::AwaitingTriage => "awaiting_triage",
            ReasonKind::AwaitingMatch => "awaiting_match",
            ReasonKind::NoCapacity => "no_capacity",
            ReasonKind::HoldExpired => "hold_expired",
            ReasonKind::Stated => "stated",
            ReasonKind::DeadlinePassed => "deadline_passed",
            ReasonKind::Remote => "remote",
        }
    }

    /// The kind called `name`, if any.
    pub fn parse(name: &str) -> Option<ReasonKind> {
        ReasonKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// A worklist page (`Worklist`): referrals with ids above `after`, at most `limit`
/// (capped at `WORKLIST_LIMIT_MAX`). Empty filters mean any; empty `stages` means every
/// open (non-final) state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorklistQuery {
    /// `None`: the whole region (`incoming`/`outgoing` are then ignored).
    pub hospital: Option<HospitalId>,
    pub incoming: bool,
    pub outgoing: bool,
    pub stages: Vec<ReferralStage>,
    pub reasons: Vec<ReasonKind>,
    pub urgencies: Vec<Urgency>,
    pub after: ReferralId,
    pub limit: usize,
}

impl WorklistQuery {
    fn shows(&self, r: &Referral) -> bool {
        let stage_ok = if self.stages.is_empty() {
            !r.state.is_final()
        } else {
            self.stages.contains(&ReferralStage::of(r))
        };
        stage_ok
            && (self.reasons.is_empty() || self.reasons.contains(&ReasonKind::of(&r.reason)))
            && (self.urgencies.is_empty() || r.urgency.is_some_and(|u| self.urgencies.contains(&u)))
    }

    fn involves(&self, info: &ReferralInfo) -> bool {
        let Some(h) = self.hospital else {
            return true;
        };
        (self.incoming && info.to_hospital == Some(h)) || (self.outgoing && info.referral.from == h)
    }
}

impl Engine {
    pub(crate) fn referral_info(&self, id: ReferralId) -> Option<ReferralInfo> {
        Some(self.describe_referral(self.referrals().get(id)?))
    }

    fn describe_referral(&self, r: &Referral) -> ReferralInfo {
        let bed_hospital = r
            .bed_hold
            .and_then(|h| self.beds().hold(h))
            .and_then(|h| self.beds().ward(h.ward))
            .map(|w| w.hospital);
        let slot_hospital = r
            .slot_hold
            .and_then(|h| self.slots().seat(h))
            .and_then(|s| self.doctor(s.doctor))
            .map(|d| d.hospital);
        let to_hospital = r.to.or(bed_hospital).or(slot_hospital);
        let history = r
            .history
            .iter()
            .map(|s| StepInfo {
                stage: ReferralStage::of_step(s),
                reason: ReasonKind::of(&s.reason),
                hospital: match s.actor {
                    Some(ReferralActor::Referring) => Some(r.from),
                    Some(ReferralActor::Receiving) => to_hospital,
                    _ => None,
                },
                step: s.clone(),
            })
            .collect();
        ReferralInfo {
            to_hospital,
            updated: r.history.last().map_or(r.created_at, |s| s.at),
            stage: ReferralStage::of(r),
            reason: ReasonKind::of(&r.reason),
            history,
            remote: self.remote().get(r.id).cloned(),
            referral: r.clone(),
        }
    }

    /// A page of the worklist, most urgent first, then oldest; `None` when the hospital is
    /// unknown. The second value is the id to page on when more follow.
    pub(crate) fn worklist(
        &self,
        q: &WorklistQuery,
    ) -> Option<(Vec<ReferralInfo>, Option<ReferralId>)> {
        if let Some(h) = q.hospital {
            self.hospital(h)?;
        }
        let limit = q.limit.min(WORKLIST_LIMIT_MAX);
        let mut page: Vec<ReferralInfo> = Vec::new();
        let mut more = false;
        for r in self.referrals().all() {
            if r.id <= q.after || !q.shows(r) {
                continue;
            }
            let info = self.describe_referral(r);
            if !q.involves(&info) {
                continue;
            }
            if page.len() == limit {
                more = true;
                break;
            }
            page.push(info);
        }
        let next = more.then(|| page.last().map(|r| r.referral.id)).flatten();
        page.sort_by_key(|i| {
            let r = &i.referral;
            (r.urgency.unwrap_or(Urgency::P4), r.created_at, r.id)
        });
        Some((page, next))
    }
}
