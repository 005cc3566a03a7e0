//! Identifiers: small copyable newtypes, one per kind of record.
//!
//! Ids of region records (hospitals, wards, beds, doctors) come from the region file or admin
//! commands. Ids of records the engine creates (slots, holds, referrals, consultations) are
//! assigned by the engine from counters, so every replica assigns the same id.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident($inner:ty), $prefix:literal) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

id_type!(
    /// A hospital or a grassroots care point.
    HospitalId(u32), "H"
);
id_type!(
    /// A ward of one hospital.
    WardId(u32), "W"
);
id_type!(
    /// A physical bed of one ward.
    BedId(u32), "B"
);
id_type!(
    /// A doctor of one hospital.
    DoctorId(u32), "D"
);
id_type!(
    /// One bookable time segment of one doctor; assigned by `PublishSchedule`.
    SlotId(u64), "S"
);
id_type!(
    /// A bed hold or a slot hold (a slot hold that is booked keeps its id as the booking id).
    HoldId(u64), "K"
);
id_type!(
    /// A referral between two hospitals.
    ReferralId(u64), "R"
);
id_type!(
    /// A joint (multi-doctor) remote consultation.
    ConsultId(u64), "C"
);
id_type!(
    /// An alliance of hospitals (医联体, 医共体 or specialty alliance).
    AllianceId(u32), "A"
);

/// The client's idempotency key: a retry with the same id returns the first answer.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(pub u128);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// An opaque pseudonymous reference to a patient, issued by the platform.
///
/// Patient identity (names, ID numbers, phone numbers) never enters the engine: a fixed
/// 128-bit token cannot carry one by accident, unlike a free-text field.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PatientRef(pub u128);

impl fmt::Display for PatientRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl PatientRef {
    /// Parses the 32-hex-digit text form used on the wire.
    pub fn parse_hex(text: &str) -> Option<PatientRef> {
        if text.len() != 32 {
            return None;
        }
        u128::from_str_radix(text, 16).ok().map(PatientRef)
    }
}
