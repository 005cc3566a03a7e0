//! Cross-region referrals: the origin region's half of the saga (`docs/protocol.md`,
//! "Cross-region referral").
//!
//! A referral recorded in this region (the **origin**) may hold a bed in another region
//! (the **destination**). The origin's replicated state is the coordinator's memory: a
//! [`RemoteBed`] per referral names the destination, the stage the saga has reached and the
//! destination's hold once known. The engine never talks to another region (no I/O in
//! `apply`): the cluster's driver asks [`Engine::remote_work`] what to send, sends it with a
//! request id derived from the step ([`RemoteStep::request_id`]) so that every retry is
//! answered by the destination's dedup table, and records the answer with
//! `Command::RecordRemote` ([`RemoteStep::outcome`] turns the destination's answer into
//! it). A new leader resumes where the old one stopped: the work is a function of the
//! state.
//!
//! Stages: `Holding → Held → Confirming → Confirmed`, or `→ Releasing → Released` from any
//! of the first two (cancel, reject, deadline, no capacity) and `Released` directly when the
//! destination refuses. `Confirming` is entered by `AcceptReferral` and may not be
//! cancelled: once recorded, the bed is confirmed in the destination or its hold lapsed.
//! A hold the origin never learned of (an answer lost, then the dedup entry gone) expires by
//! its own TTL in the destination: no bed is held forever.

use crate::command::{Outcome, Reply};
use crate::error::Rejection;
use crate::ids::*;
use crate::limits::REGION_KEY_BYTES_MAX;
use crate::time::LogTime;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// How far a cross-region bed hold has come.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteStage {
    /// Asking the destination for the hold.
    Holding,
    /// The destination holds the bed (`hold`) until its TTL.
    Held,
    /// The receiving side accepted: confirming the hold in the destination.
    Confirming,
    /// Confirmed in the destination: the bed is the patient's there. Final.
    Confirmed,
    /// Letting go of the hold in the destination (cancelled, rejected, expired, refused).
    Releasing,
    /// Nothing is held in the destination for this attempt. Final.
    Released,
}

impl RemoteStage {
    /// The stage's name for messages and the API.
    pub fn name(self) -> &'static str {
        match self {
            RemoteStage::Holding => "holding",
            RemoteStage::Held => "held",
            RemoteStage::Confirming => "confirming",
            RemoteStage::Confirmed => "confirmed",
            RemoteStage::Releasing => "releasing",
            RemoteStage::Released => "released",
        }
    }

    /// Whether the driver still has a step to send.
    pub fn pending(self) -> bool {
        matches!(
            self,
            RemoteStage::Holding | RemoteStage::Confirming | RemoteStage::Releasing
        )
    }

    /// Whether the saga ended for this attempt.
    pub fn is_final(self) -> bool {
        matches!(self, RemoteStage::Confirmed | RemoteStage::Released)
    }
}

/// A referral's bed in another region.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct RemoteBed {
    /// The destination region's id (its routing key).
    pub region: String,
    /// The ward asked for, in the destination's ids.
    pub ward: WardId,
    /// The hold's TTL in the destination.
    pub ttl_ms: u64,
    /// Which attempt of this referral (1, 2, …): each has its own derived request ids.
    pub attempt: u32,
    pub stage: RemoteStage,
    /// The destination's hold, once its answer is recorded.
    pub hold: Option<HoldId>,
    /// When the stage began (log time of the origin).
    pub since: LogTime,
    /// Why the driver could not finish the current step so far (a transport error, the
    /// region unknown to the cluster): set by `RemoteOutcome::Stuck`, cleared by the next
    /// recorded answer. A stuck referral is on the worklist with this reason.
    pub stuck: Option<String>,
}

/// Every cross-region bed, by referral.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteBook {
    pub(crate) beds: BTreeMap<ReferralId, RemoteBed>,
    /// As a destination: the hold each other region's step made here, by the step's
    /// derived request id, while the hold is on record.
    pub(crate) granted: BTreeMap<RequestId, HoldId>,
    /// `granted` by the log time of the grant, for pruning.
    pub(crate) granted_at: BTreeSet<(LogTime, RequestId)>,
}

impl RemoteBook {
    /// The referral's cross-region bed (its newest attempt).
    pub fn get(&self, referral: ReferralId) -> Option<&RemoteBed> {
        self.beds.get(&referral)
    }

    /// Every cross-region bed, by referral.
    pub fn all(&self) -> impl Iterator<Item = (ReferralId, &RemoteBed)> {
        self.beds.iter().map(|(id, b)| (*id, b))
    }

    /// As a destination: the hold another region's step (by its derived id) made here.
    pub fn granted(&self, step: RequestId) -> Option<HoldId> {
        self.granted.get(&step).copied()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.beds.len()
    }

    /// Whether there are none, as origin or destination.
    pub fn is_empty(&self) -> bool {
        self.beds.is_empty() && self.granted.is_empty()
    }
}

/// What the destination answered to a step, as the origin records it.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteOutcome {
    /// The destination holds the bed.
    Held { hold: HoldId },
    /// The destination refused the step (no bed, the hold lapsed or was resolved): the
    /// text is its rejection.
    Refused { reason: String },
    /// The destination confirmed the hold.
    Confirmed,
    /// The destination let go of the hold (or it was gone already).
    Released,
    /// The step could not be made for a while (`reason`); the driver keeps trying. Changes
    /// no stage; puts the referral on the worklist until the next answer.
    Stuck { reason: String },
}

/// The request the destination is sent for one step.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum RemoteAction {
    /// `HoldBed{Ward(ward), patient, ttl_ms}` with the `hold` step's id.
    Hold,
    /// `ConfirmHold{hold}` with the `confirm` step's id.
    Confirm { hold: HoldId },
    /// `ReleaseHold{hold}` with the `release` step's id. When the origin never learned the
    /// hold (`Releasing` from `Holding`), the driver first repeats the `hold` step (same
    /// id: the destination answers the hold it made, or makes one) and records it.
    Release { hold: Option<HoldId> },
}

/// One step the driver owes the destination.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct RemoteStep {
    pub referral: ReferralId,
    pub attempt: u32,
    /// The destination region's id.
    pub region: String,
    /// The ward asked for, in the destination's ids.
    pub ward: WardId,
    /// The referral's patient (an opaque reference, the same in every region).
    pub patient: PatientRef,
    /// The hold's TTL in the destination.
    pub ttl_ms: u64,
    pub action: RemoteAction,
}

/// How a bed hold's confirmed state is named in `Rejection::AlreadyResolved`.
const CONFIRMED_HOLD_STATE: &str = "confirmed";

/// The domain tag hashed before a derived step id; clients' textual ids use another
/// (`REQUEST_ID_DOMAIN_TAG`), so no client text derives the same id.
pub const REMOTE_STEP_DOMAIN_TAG: &[u8] = b"ninety.remote_step.v1\0";

/// The request id of a step: the first 128 bits of SHA-256 over the domain tag, the origin
/// region, the referral, the attempt and the step's name (`hold`, `confirm`, `release`).
/// Every leader of the origin derives the same id, so the destination's dedup table
/// answers a repeated step with its first answer.
pub fn step_request_id(origin: &str, referral: ReferralId, attempt: u32, step: &str) -> RequestId {
    let digest = Sha256::new()
        .chain_update(REMOTE_STEP_DOMAIN_TAG)
        .chain_update((origin.len() as u32).to_le_bytes())
        .chain_update(origin.as_bytes())
        .chain_update(referral.0.to_le_bytes())
        .chain_update(attempt.to_le_bytes())
        .chain_update(step.as_bytes())
        .finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    RequestId(u128::from_be_bytes(first))
}

impl RemoteStep {
    /// The step's name in its derived request id.
    pub fn step_name(&self) -> &'static str {
        match self.action {
            RemoteAction::Hold => "hold",
            RemoteAction::Confirm { .. } => "confirm",
            RemoteAction::Release { hold: None } => "hold",
            RemoteAction::Release { hold: Some(_) } => "release",
        }
    }

    /// The id the destination is sent for this step by origin region `origin`.
    pub fn request_id(&self, origin: &str) -> RequestId {
        step_request_id(origin, self.referral, self.attempt, self.step_name())
    }

    /// The destination's command for this step, sent by origin region `origin`.
    /// `Release` without a known hold repeats the hold step (see
    /// [`RemoteAction::Release`]): the same command as the first.
    pub fn command(&self, origin: &str) -> crate::Command {
        use crate::command::Command;
        match self.action {
            RemoteAction::Hold | RemoteAction::Release { hold: None } => {
                Command::HoldBedForRegion {
                    origin: origin.to_string(),
                    step: self.request_id(origin),
                    ward: self.ward,
                    patient: self.patient,
                    ttl_ms: self.ttl_ms,
                }
            }
            RemoteAction::Confirm { hold } => Command::ConfirmHold { hold },
            RemoteAction::Release { hold: Some(hold) } => Command::ReleaseHold { hold },
        }
    }

    /// The request the destination is sent for this step by origin region `origin`.
    pub fn request(&self, origin: &str) -> crate::Request {
        crate::Request {
            id: self.request_id(origin),
            command: self.command(origin),
        }
    }

    /// What the origin records for the destination's answer to this step; `None` for an
    /// answer that says nothing (none of the destination's own refusals is one: every
    /// rejection is final for the step, because a retry with the same id would be refused
    /// the same way or answered from the dedup table).
    pub fn outcome(&self, answer: &Outcome) -> RemoteOutcome {
        match (self.action, answer) {
            (
                RemoteAction::Hold | RemoteAction::Release { hold: None },
                Ok(Reply::BedHeld { hold, .. }),
            ) => RemoteOutcome::Held { hold: *hold },
            (RemoteAction::Confirm { .. }, Ok(Reply::HoldConfirmed { .. })) => {
                RemoteOutcome::Confirmed
            }
            // A confirm repeated after the dedup entry went: the hold is confirmed already.
            (RemoteAction::Confirm { .. }, Err(Rejection::AlreadyResolved { state, .. }))
                if state == CONFIRMED_HOLD_STATE =>
            {
                RemoteOutcome::Confirmed
            }
            (RemoteAction::Release { hold: Some(_) }, _) => RemoteOutcome::Released,
            (_, Err(rejection)) => RemoteOutcome::Refused {
                reason: rejection.to_string(),
            },
            (_, Ok(other)) => RemoteOutcome::Refused {
                reason: format!("unexpected answer {other:?}"),
            },
        }
    }
}

/// Checks a region id as the API and the cluster's configuration spell it: 1 to
/// [`REGION_KEY_BYTES_MAX`] lowercase ASCII letters, digits, `-` or `_`.
pub fn check_region_key(field: &str, key: &str) -> Result<(), Rejection> {
    if is_region_key(key) {
        return Ok(());
    }
    Err(Rejection::invalid(
        field,
        format!("must be 1 to {REGION_KEY_BYTES_MAX} lowercase letters, digits, - or _"),
    ))
}

/// Whether `key` is a valid region id (see [`check_region_key`]).
pub fn is_region_key(key: &str) -> bool {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    !key.is_empty() && key.len() <= REGION_KEY_BYTES_MAX && key.chars().all(ok)
}
