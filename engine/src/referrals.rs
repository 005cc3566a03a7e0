//! Referrals (双向转诊): the lifecycle from request to completion, and the worklist.
//!
//! requested → triaged (specialty, urgency) → matched (slot and/or bed held) → accepted →
//! in transit → admitted → completed; or rejected / cancelled / expired with a reason.
//! A referral that finds no capacity, or whose holds lapse, goes back to `triaged` with the
//! reason on it: it stays on the worklist and is never left in limbo.

use crate::error::{check_text, Rejection};
use crate::events::{Event, Pending};
use crate::graph::ReferralKind;
use crate::ids::*;
use crate::limits::{REFERRAL_CODE_BYTES_MAX, REFERRAL_STEPS_MAX};
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
    /// Waiting on a bed in another region, or it fell through there (`remote`).
    Remote {
        region: String,
        note: String,
    },
}

/// Who moved a referral, as far as the command that moved it tells (the engine knows the
/// command, not the caller's credentials).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferralActor {
    /// The referring hospital: requested, cancelled, sent the patient off.
    Referring,
    /// The receiving hospital: accepted, rejected, admitted, completed, or reported that
    /// it cannot take a matched patient after all.
    Receiving,
    /// Triage: set specialty and urgency.
    Triage,
    /// Whoever matched capacity for the referral (the region's coordinator or platform).
    Coordinator,
    /// The engine itself: a deadline passed.
    System,
}

impl ReferralActor {
    /// The actor's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            ReferralActor::Referring => "referring",
            ReferralActor::Receiving => "receiving",
            ReferralActor::Triage => "triage",
            ReferralActor::Coordinator => "coordinator",
            ReferralActor::System => "system",
        }
    }
}

/// One step of a referral's history.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ReferralStep {
    pub at: LogTime,
    pub state: ReferralState,
    /// The log index of the entry that made the step (0 when applied outside a log).
    pub index: u64,
    /// Who made it; `None` when the command does not tell (a hold released or lapsed).
    pub actor: Option<ReferralActor>,
    /// The referral's reason after the step.
    pub reason: ReferralReason,
    /// The code the step's request carried: the reason code of a request, the note of a
    /// triage, the outcome of a completion. Bounded text, never patient identity.
    pub note: Option<String>,
}

/// Who makes a step, when, and with which note (see `ReferralBook::transition_by`).
#[derive(Clone, Debug)]
pub(crate) struct By {
    pub at: LogTime,
    pub actor: Option<ReferralActor>,
    pub note: Option<String>,
}

impl By {
    pub(crate) fn actor(at: LogTime, actor: ReferralActor) -> By {
        By {
            at,
            actor: Some(actor),
            note: None,
        }
    }

    pub(crate) fn noted(self, note: Option<&str>) -> By {
        By {
            note: note.filter(|n| !n.is_empty()).map(str::to_string),
            ..self
        }
    }
}

/// The log index of the entry being applied, for history steps. Set by `apply_as` before
/// each command; not state of its own (the steps that copy it are), so never compared or
/// serialized.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Applying(pub(crate) u64);

impl PartialEq for Applying {
    fn eq(&self, _: &Applying) -> bool {
        true
    }
}

/// A referral from one hospital to another.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Referral {
    pub id: ReferralId,
    pub from: HospitalId,
    pub to: Option<HospitalId>,
    /// Up, down or same level: the referral path's kind, or what the request stated.
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
    /// Every step so far, oldest first; at most `REFERRAL_STEPS_MAX` (the first step, the
    /// request, is always kept; then the newest).
    pub history: Vec<ReferralStep>,
    /// The clinical reason code the referring hospital gave (an ICD-10 code, say).
    pub reason_code: Option<String>,
    /// The referring hospital's note: bounded text, opaque references only.
    pub note: Option<String>,
    /// The outcome code given at completion ("discharged", "referred-down").
    pub outcome: Option<String>,
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
    /// The log index of the command being applied; always equal.
    #[serde(skip)]
    pub(crate) applying: Applying,
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

    /// Moves a referral to `state` with `reason`, keeping the indexes in step; the engine
    /// itself made the step (a deadline passed).
    pub(crate) fn transition(
        &mut self,
        id: ReferralId,
        state: ReferralState,
        reason: ReferralReason,
        at: LogTime,
    ) {
        self.transition_by(id, state, reason, By::actor(at, ReferralActor::System));
    }

    /// Moves a referral to `state` with `reason`, recording who made the step.
    pub(crate) fn transition_by(
        &mut self,
        id: ReferralId,
        state: ReferralState,
        reason: ReferralReason,
        by: By,
    ) {
        let index = self.applying.0;
        let Some(r) = self.referrals.get_mut(&id) else {
            return;
        };
        r.state = state;
        if r.history.len() >= REFERRAL_STEPS_MAX {
            // Keep the request (the first step); forget the oldest step after it.
            r.history.remove(1);
        }
        r.history.push(ReferralStep {
            at: by.at,
            state,
            index,
            actor: by.actor,
            reason: reason.clone(),
            note: by.note,
        });
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
            self.closed.insert((by.at, id));
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

    /// Moves an open referral's deadline to `deadline`.
    pub(crate) fn postpone(&mut self, id: ReferralId, deadline: LogTime) {
        let Some(r) = self.referrals.get_mut(&id) else {
            return;
        };
        if self.deadlines.remove(&(r.deadline, id)) {
            self.deadlines.insert((deadline, id));
        }
        r.deadline = deadline;
    }

    /// Open referrals whose deadline is at or before `now`, at most `max`.
    pub(crate) fn due(&self, now: LogTime, max: usize) -> Vec<ReferralId> {
        crate::time::due(&self.deadlines, now, max)
    }

    /// Forgets referrals closed at or before `cutoff`, at most `max`; returns their ids.
    pub(crate) fn prune(&mut self, cutoff: LogTime, max: usize) -> Vec<ReferralId> {
        let old = crate::time::drain_due(&mut self.closed, cutoff, max);
        for id in &old {
            self.referrals.remove(id);
        }
        old
    }
}

/// A reason or outcome code: 1 to `REFERRAL_CODE_BYTES_MAX` bytes of ASCII letters, digits
/// and `. - _ : /` (ICD-10 "I21.4", "referred-down"), so a code can never carry prose.
pub fn check_code(field: &str, code: &str) -> Result<(), Rejection> {
    let ok = |c: char| c.is_ascii_alphanumeric() || ".-_:/".contains(c);
    if code.is_empty() || code.len() > REFERRAL_CODE_BYTES_MAX || !code.chars().all(ok) {
        return Err(Rejection::invalid(
            field,
            format!(
                "must be 1 to {REFERRAL_CODE_BYTES_MAX} letters, digits or . - _ : / (a code, not text)"
            ),
        ));
    }
    Ok(())
}

/// Digits in a row that make a note look like it carries an identity, phone or record
/// number. Patients are named by their opaque reference (32 hex digits) only.
pub const NOTE_DIGITS_IN_A_ROW_MAX: usize = 6;

/// A referral note: at most `TEXT_BYTES_MAX` bytes, no control characters, and no number
/// that could identify a patient (a run of more than `NOTE_DIGITS_IN_A_ROW_MAX` digits
/// outside an opaque 32-hex-digit reference).
pub fn check_note(field: &str, note: &str) -> Result<(), Rejection> {
    check_text(field, note)?;
    if note.chars().any(char::is_control) {
        return Err(Rejection::invalid(
            field,
            "must not hold control characters",
        ));
    }
    let opaque =
        |t: &str| t.len() == 32 && t.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let long_number = note
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !opaque(t))
        .any(|t| {
            t.split(|c: char| !c.is_ascii_digit())
                .any(|run| run.len() > NOTE_DIGITS_IN_A_ROW_MAX)
        });
    if long_number {
        return Err(Rejection::invalid(
            field,
            format!(
                "holds a number of more than {NOTE_DIGITS_IN_A_ROW_MAX} digits: no identity, phone or record numbers; name patients by their opaque reference only"
            ),
        ));
    }
    Ok(())
}
