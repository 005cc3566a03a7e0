//! Rejections: the typed answers for commands the engine refuses.
//!
//! A rejected command changes nothing (not even the dedup table), so a client may fix the
//! request and retry with the same request id.
//!
//! The messages are what a client reads: ids appear as the API's plain numbers ("unknown
//! ward 7", "hold 12 expired at 1764547200000 (Unix ms)"), times as Unix milliseconds.

use crate::ids::*;
use crate::time::LogTime;
use serde::{Deserialize, Serialize};

/// What kind of refusal a rejection is; the API maps it to a gRPC status code.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RejectionKind {
    /// The request itself is wrong (bad field, unknown id): `INVALID_ARGUMENT` / `NOT_FOUND`.
    InvalidArgument,
    /// An id that names no record: `NOT_FOUND`.
    NotFound,
    /// The request is well formed but the state refuses it: `FAILED_PRECONDITION`.
    FailedPrecondition,
}

/// Why a command was refused.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, thiserror::Error)]
pub enum Rejection {
    /// A field is invalid; `field` names it as the client sent it.
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("unknown hospital {0}")]
    UnknownHospital(HospitalId),
    #[error("unknown ward {0}")]
    UnknownWard(WardId),
    #[error("unknown bed {0}")]
    UnknownBed(BedId),
    #[error("unknown doctor {0}")]
    UnknownDoctor(DoctorId),
    #[error("unknown slot {0}")]
    UnknownSlot(SlotId),
    #[error("unknown hold {0}")]
    UnknownHold(HoldId),
    #[error("unknown referral {0}")]
    UnknownReferral(ReferralId),
    #[error("unknown consultation {0}")]
    UnknownConsult(ConsultId),
    /// No admissible bed, slot or seat is left.
    #[error("no capacity: {0}")]
    NoCapacity(String),
    /// The hold's expiry has passed; the next tick resolves it as expired.
    #[error("hold {hold} expired at {} (Unix ms)", .expired_at.0)]
    Expired { hold: HoldId, expired_at: LogTime },
    /// The hold, booking, referral or consultation was already resolved.
    #[error("{what} already resolved as {state}")]
    AlreadyResolved { what: String, state: String },
    /// The record is in a state from which this transition is not allowed.
    #[error("cannot {action} {what} in state {state}")]
    InvalidTransition {
        what: String,
        state: String,
        action: String,
    },
    /// The request id was used before for a different command.
    #[error("request id {0} was already used for a different command")]
    RequestIdReused(RequestId),
    /// The patient may not book online until the given time (no-show policy).
    #[error("online booking blocked until {} (Unix ms) after repeated no-shows", .until.0)]
    BookingBlocked { until: LogTime },
    /// The cancellation deadline for the booking has passed.
    #[error("cancellation deadline passed at {} (Unix ms)", .deadline.0)]
    CancellationTooLate { deadline: LogTime },
    /// A bed or slot is blocked or does not meet the request's needs.
    #[error("not admissible: {0}")]
    NotAdmissible(String),
    /// The region already holds data and the command needs an empty engine.
    #[error("region already loaded")]
    RegionAlreadyLoaded,
}

impl Rejection {
    /// Convenience constructor for an invalid field.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Rejection {
        Rejection::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The class of refusal, for mapping to transport status codes.
    pub fn kind(&self) -> RejectionKind {
        use Rejection::*;
        match self {
            Invalid { .. } | RequestIdReused(_) => RejectionKind::InvalidArgument,
            UnknownHospital(_) | UnknownWard(_) | UnknownBed(_) | UnknownDoctor(_)
            | UnknownSlot(_) | UnknownHold(_) | UnknownReferral(_) | UnknownConsult(_) => {
                RejectionKind::NotFound
            }
            NoCapacity(_)
            | Expired { .. }
            | AlreadyResolved { .. }
            | InvalidTransition { .. }
            | BookingBlocked { .. }
            | CancellationTooLate { .. }
            | NotAdmissible(_)
            | RegionAlreadyLoaded => RejectionKind::FailedPrecondition,
        }
    }
}

/// Checks a free-text field against `TEXT_BYTES_MAX`.
pub(crate) fn check_text(field: &str, text: &str) -> Result<(), Rejection> {
    if text.len() > crate::limits::TEXT_BYTES_MAX {
        return Err(Rejection::invalid(
            field,
            format!("longer than {} bytes", crate::limits::TEXT_BYTES_MAX),
        ));
    }
    Ok(())
}
