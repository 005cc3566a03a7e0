//! Identifiers: small copyable newtypes, one per kind of record.
//!
//! Ids of region records (hospitals, wards, beds, doctors) come from the region file or admin
//! commands. Ids of records the engine creates (slots, holds, referrals, consultations) are
//! assigned by the engine from counters, so every replica assigns the same id.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// Ids display as the plain number the API uses (`ward_id: 1` is "ward 1" in a message, not
/// an internal `W1`), so a refusal's text names what the client sent.
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// A hospital or a grassroots care point.
    HospitalId(u32)
);
id_type!(
    /// A ward of one hospital.
    WardId(u32)
);
id_type!(
    /// A physical bed of one ward.
    BedId(u32)
);
id_type!(
    /// A doctor of one hospital.
    DoctorId(u32)
);
id_type!(
    /// One bookable time segment of one doctor; assigned by `PublishSchedule`.
    SlotId(u64)
);
id_type!(
    /// A bed hold or a slot hold (a slot hold that is booked keeps its id as the booking id).
    HoldId(u64)
);
id_type!(
    /// A referral between two hospitals.
    ReferralId(u64)
);
id_type!(
    /// A joint (multi-doctor) remote consultation.
    ConsultId(u64)
);
id_type!(
    /// An alliance of hospitals (医联体, 医共体 or specialty alliance).
    AllianceId(u32)
);

/// The client's idempotency key: a retry with the same id returns the first answer.
///
/// All 128 bits belong to the client: the engine's own requests (region bootstrap, log-time
/// ticks) are told apart by [`RequestKey`], never by reserved ranges of this number.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(pub u128);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// Longest request id text a client may send, in bytes.
pub const REQUEST_ID_TEXT_BYTES_MAX: usize = 128;

/// The domain tag hashed before a textual request id. The version names the derivation:
/// changing it would give every textual id a new value, so it changes only with the data
/// format (`COMMAND_FORMAT_VERSION`).
pub const REQUEST_ID_DOMAIN_TAG: &[u8] = b"ninety.request_id.v1\0";

/// Why request id text was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum RequestIdError {
    #[error("must not be empty")]
    Empty,
    #[error("longer than {REQUEST_ID_TEXT_BYTES_MAX} bytes")]
    TooLong,
}

impl RequestId {
    /// The id a client's text names (the rules of `docs/api.md`, "Request ids"):
    ///
    /// * exactly 32 lowercase hex digits, or the same in the 8-4-4-4-12 UUID form: that
    ///   128-bit number, so a UUID keeps its value;
    /// * any other text of 1 to [`REQUEST_ID_TEXT_BYTES_MAX`] bytes: the first 128 bits of
    ///   SHA-256 over [`REQUEST_ID_DOMAIN_TAG`] and the text. Distinct texts collide only
    ///   with SHA-256's negligible probability, and a text cannot be made to land on a
    ///   chosen id; it may equal some hex id, which a client owning both forms would notice
    ///   as `RequestIdReused`, never as a silent mix-up of two clients.
    ///
    /// Nothing is stripped or folded: `+`, stray hyphens or uppercase make the text
    /// textual, not a different spelling of a hex id.
    pub fn from_text(text: &str) -> Result<RequestId, RequestIdError> {
        if text.is_empty() {
            return Err(RequestIdError::Empty);
        }
        if text.len() > REQUEST_ID_TEXT_BYTES_MAX {
            return Err(RequestIdError::TooLong);
        }
        if let Some(v) = parse_hex128(text).or_else(|| parse_uuid(text)) {
            return Ok(RequestId(v));
        }
        let digest = Sha256::new()
            .chain_update(REQUEST_ID_DOMAIN_TAG)
            .chain_update(text.as_bytes())
            .finalize();
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest[..16]);
        Ok(RequestId(u128::from_be_bytes(first)))
    }
}

/// Positions of the hyphens in the 8-4-4-4-12 UUID form.
const UUID_HYPHENS: [usize; 4] = [8, 13, 18, 23];
/// Length of the UUID text form.
const UUID_TEXT_BYTES: usize = 36;
/// Hex digits in a 128-bit number.
const HEX128_DIGITS: usize = 32;

/// Parses exactly 32 lowercase hex digits (`[0-9a-f]`) into a 128-bit number; anything else
/// (a sign, uppercase, a hyphen, 31 or 33 digits) is `None`. The one parser of 128-bit wire
/// values (request ids, patient refs), so each value has a single spelling.
pub fn parse_hex128(text: &str) -> Option<u128> {
    let bytes = text.as_bytes();
    if bytes.len() != HEX128_DIGITS {
        return None;
    }
    let mut value: u128 = 0;
    for &b in bytes {
        let nibble = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        value = (value << 4) | u128::from(nibble);
    }
    Some(value)
}

/// Parses a UUID in the 8-4-4-4-12 form (lowercase, hyphens only at those positions) into
/// its 128-bit number, through [`parse_hex128`].
pub fn parse_uuid(text: &str) -> Option<u128> {
    let bytes = text.as_bytes();
    if bytes.len() != UUID_TEXT_BYTES || !UUID_HYPHENS.iter().all(|&i| bytes.get(i) == Some(&b'-'))
    {
        return None;
    }
    let digits: String = text
        .char_indices()
        .filter(|(i, _)| !UUID_HYPHENS.contains(i))
        .map(|(_, c)| c)
        .collect();
    parse_hex128(&digits)
}

/// Who issued a request, and the key the dedup table remembers it under. Clients own the
/// whole [`RequestId`] space; the engine's own requests have their own variants, so no
/// client id can pre-empt or replay them.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub enum RequestKey {
    /// A client's request.
    Client(RequestId),
    /// The `n`-th command of the region bootstrap (`bootstrap_commands`), numbered so that a
    /// retry by this or a later leader applies it once.
    Bootstrap(u32),
    /// The log-time tick the cluster applies for the empty entry at this log index. Each
    /// index is applied once, so ticks are never remembered.
    Tick(u64),
}

impl fmt::Display for RequestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestKey::Client(id) => id.fmt(f),
            RequestKey::Bootstrap(n) => write!(f, "bootstrap-{n}"),
            RequestKey::Tick(index) => write!(f, "tick-{index}"),
        }
    }
}

impl From<RequestId> for RequestKey {
    fn from(id: RequestId) -> RequestKey {
        RequestKey::Client(id)
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
    /// Parses the wire form: exactly 32 lowercase hex digits ([`parse_hex128`]).
    pub fn parse_hex(text: &str) -> Option<PatientRef> {
        parse_hex128(text).map(PatientRef)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const HEX: &str = "0123456789abcdef0123456789abcdef";
    const HEX_VALUE: u128 = 0x0123456789abcdef0123456789abcdef;

    fn id(text: &str) -> RequestId {
        RequestId::from_text(text).expect(text)
    }

    /// The count: structured ids `prefix-<n>-<op>` once gave ~12 collisions per
    /// 6,000; a million of them must give a million ids.
    #[test]
    fn a_million_structured_ids_are_a_million_ids() {
        let ops = ["hold", "confirm", "release", "book"];
        let per_op = 250_000;
        let mut seen = HashSet::with_capacity(per_op * ops.len());
        for op in ops {
            for n in 0..per_op {
                let text = format!("prefix-{n}-{op}");
                assert!(seen.insert(id(&text)), "{text} collides");
            }
        }
        assert_eq!(seen.len(), 1_000_000);
    }

    #[test]
    fn hex_and_uuid_forms_keep_their_value_and_all_128_bits() {
        assert_eq!(id(HEX), RequestId(HEX_VALUE));
        assert_eq!(
            id("01234567-89ab-cdef-0123-456789abcdef"),
            RequestId(HEX_VALUE)
        );
        assert_eq!(id(&"f".repeat(32)), RequestId(u128::MAX));
        assert_eq!(id(&"0".repeat(32)), RequestId(0));
        assert_eq!(parse_hex128(HEX), Some(HEX_VALUE));
        assert_eq!(PatientRef::parse_hex(HEX), Some(PatientRef(HEX_VALUE)));
    }

    #[test]
    fn anything_else_is_text_never_a_respelling_of_a_hex_id() {
        let not_hex = [
            format!("+{}", &HEX[1..]),                // a sign (from_str_radix took it)
            format!("-{}", &HEX[1..]),                // a sign
            HEX.to_uppercase(),                       // uppercase
            HEX[..31].to_string(),                    // 31 digits
            format!("{HEX}0"),                        // 33 digits
            format!("{}-{}", &HEX[..16], &HEX[16..]), // a hyphen elsewhere
            "0123456789abcdef-0123-4567-89abcdef".into(), // misplaced UUID hyphens
            "01234567-89ab-cdef-0123-456789abcdeg".into(), // a non-hex digit
            " 0123456789abcdef0123456789abcdef".into(),
        ];
        for text in &not_hex {
            assert_eq!(parse_hex128(text), None, "{text}");
            assert_eq!(PatientRef::parse_hex(text), None, "{text}");
            let hashed = id(text);
            assert_ne!(hashed, RequestId(HEX_VALUE), "{text}");
        }
        let distinct: HashSet<RequestId> = not_hex.iter().map(|t| id(t)).collect();
        assert_eq!(distinct.len(), not_hex.len());
    }

    #[test]
    fn empty_and_overlong_ids_are_refused() {
        assert_eq!(RequestId::from_text(""), Err(RequestIdError::Empty));
        let max = "x".repeat(REQUEST_ID_TEXT_BYTES_MAX);
        assert!(RequestId::from_text(&max).is_ok());
        assert_eq!(
            RequestId::from_text(&format!("{max}x")),
            Err(RequestIdError::TooLong)
        );
    }

    /// A textual id is SHA-256 under the v1 tag: pinned, since changing it would make every
    /// retry across an upgrade a new request.
    #[test]
    fn textual_ids_are_pinned() {
        let digest = Sha256::digest(b"ninety.request_id.v1\0demo-1");
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest[..16]);
        assert_eq!(id("demo-1"), RequestId(u128::from_be_bytes(first)));
        assert_ne!(id("demo-1"), id("demo-2"));
    }

    #[test]
    fn request_keys_of_the_engine_are_not_client_ids() {
        let client = RequestKey::from(RequestId(0));
        assert_ne!(client, RequestKey::Bootstrap(0));
        assert_ne!(client, RequestKey::Tick(0));
        assert_eq!(RequestKey::Bootstrap(3).to_string(), "bootstrap-3");
        assert_eq!(RequestKey::Tick(9).to_string(), "tick-9");
        assert_eq!(client.to_string(), "0".repeat(32));
    }
}
