//! Conversions every service shares: request field parsing (patient refs, ids, enums, time
//! ranges, limits, free text) into engine types, and engine enums back to the wire.
//!
//! Parsers return a `Rejection::Invalid` naming the field as the client sent it; the unary
//! handlers turn it into `INVALID_ARGUMENT` (`rejection_status`), batch items report it per
//! item. A field inside a batch item is named with the item's prefix (`items.3.ttl_ms`), see
//! [`Field`].

use ninety_engine::matching::Bounds;
use ninety_engine::read::ReferralStage;
use ninety_engine::{
    Channel, HoldState, LogTime, Mode, PatientRef, ReferralKind, ReferralState, Rejection,
    Specialty, Tier, Urgency,
};
use ninety_proto::v1 as pb;
use serde::de::DeserializeOwned;

/// Longest client value quoted back in a refusal, in characters ([`echo`]).
pub const ECHO_CHARS_MAX: usize = 64;
/// Longest specialty name accepted, in bytes (the longest known name is far shorter; a
/// longer one is refused before it is looked up or quoted).
pub const SPECIALTY_BYTES_MAX: usize = 64;

/// `text` cut to `max` characters, with "…" when cut.
pub fn cap_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((end, _)) => format!("{}…", text.get(..end).unwrap_or_default()),
    }
}

/// A client value as quoted in a refusal: Debug-quoted and capped at [`ECHO_CHARS_MAX`].
pub fn echo(text: &str) -> String {
    format!("{:?}", cap_chars(text, ECHO_CHARS_MAX))
}

/// Names fields, optionally inside a batch item (`items.3.`).
#[derive(Clone, Debug, Default)]
pub struct Field(String);

impl Field {
    /// Top-level fields.
    pub fn top() -> Field {
        Field(String::new())
    }

    /// Fields of `list[index]`, named `list.index.field`.
    pub fn item(list: &str, index: usize) -> Field {
        Field(format!("{list}.{index}."))
    }

    /// The full name of `field`.
    pub fn name(&self, field: &str) -> String {
        format!("{}{field}", self.0)
    }

    /// An invalid-field rejection.
    pub fn invalid(&self, field: &str, reason: impl Into<String>) -> Rejection {
        Rejection::invalid(self.name(field), reason)
    }

    /// A patient reference: exactly 32 lowercase hex digits.
    pub fn patient(&self, field: &str, text: &str) -> Result<PatientRef, Rejection> {
        PatientRef::parse_hex(text)
            .filter(|_| text.chars().all(|c| !c.is_ascii_uppercase()))
            .ok_or_else(|| self.invalid(field, "must be exactly 32 lowercase hex digits"))
    }

    /// A required id (0 is never valid).
    pub fn id<T: Copy + PartialEq + Default>(&self, field: &str, v: T) -> Result<T, Rejection> {
        if v == T::default() {
            return Err(self.invalid(field, "must not be 0"));
        }
        Ok(v)
    }

    /// An optional id: 0 means none.
    pub fn opt_id<T: Copy + PartialEq + Default>(&self, v: T) -> Option<T> {
        (v != T::default()).then_some(v)
    }

    /// A free-text field (reason and note codes) bounded by `TEXT_BYTES_MAX`.
    pub fn text(&self, field: &str, text: &str) -> Result<(), Rejection> {
        let max = ninety_engine::limits::TEXT_BYTES_MAX;
        if text.len() > max {
            return Err(self.invalid(field, format!("longer than {max} bytes")));
        }
        Ok(())
    }

    /// A field the engine cannot honour: refused unless it has its default value.
    pub fn unsupported<T: PartialEq + Default>(
        &self,
        field: &str,
        v: &T,
        why: &str,
    ) -> Result<(), Rejection> {
        if *v != T::default() {
            return Err(self.invalid(field, format!("not supported: {why}")));
        }
        Ok(())
    }

    /// A hold ttl, or `None` for 0 when 0 means "the region's policy".
    pub fn ttl_or_policy(&self, field: &str, ttl_ms: u64) -> Result<Option<u64>, Rejection> {
        use ninety_engine::limits::{HOLD_TTL_MS_MAX, HOLD_TTL_MS_MIN};
        match ttl_ms {
            0 => Ok(None),
            t if (HOLD_TTL_MS_MIN..=HOLD_TTL_MS_MAX).contains(&t) => Ok(Some(t)),
            _ => Err(self.invalid(
                field,
                format!(
                    "must be 0 (the region's policy) or {HOLD_TTL_MS_MIN} to {HOLD_TTL_MS_MAX} ms"
                ),
            )),
        }
    }

    /// A page or answer size: 0 gives `default`, above `max` is refused.
    pub fn limit(
        &self,
        field: &str,
        v: u32,
        default: usize,
        max: usize,
    ) -> Result<usize, Rejection> {
        match v as usize {
            0 => Ok(default),
            n if n <= max => Ok(n),
            _ => Err(self.invalid(field, format!("must be at most {max}"))),
        }
    }

    /// A required urgency.
    pub fn urgency(&self, field: &str, v: i32) -> Result<Urgency, Rejection> {
        self.opt_urgency(field, v)?
            .ok_or_else(|| self.invalid(field, "must be specified"))
    }

    /// An urgency where UNSPECIFIED means "none"/"keep".
    pub fn opt_urgency(&self, field: &str, v: i32) -> Result<Option<Urgency>, Rejection> {
        use pb::Urgency as U;
        match U::try_from(v) {
            Ok(U::Unspecified) => Ok(None),
            Ok(U::P1) => Ok(Some(Urgency::P1)),
            Ok(U::P2) => Ok(Some(Urgency::P2)),
            Ok(U::P3) => Ok(Some(Urgency::P3)),
            Ok(U::P4) => Ok(Some(Urgency::P4)),
            Err(_) => Err(self.invalid(field, format!("unknown urgency {v}"))),
        }
    }

    /// A mode where UNSPECIFIED means "either" (`None`).
    pub fn opt_mode(&self, field: &str, v: i32) -> Result<Option<Mode>, Rejection> {
        match pb::Mode::try_from(v) {
            Ok(pb::Mode::Unspecified) => Ok(None),
            Ok(pb::Mode::InPerson) => Ok(Some(Mode::InPerson)),
            Ok(pb::Mode::Remote) => Ok(Some(Mode::Remote)),
            Err(_) => Err(self.invalid(field, format!("unknown mode {v}"))),
        }
    }

    /// A required mode.
    pub fn mode(&self, field: &str, v: i32) -> Result<Mode, Rejection> {
        self.opt_mode(field, v)?
            .ok_or_else(|| self.invalid(field, "must be specified"))
    }

    /// A channel where UNSPECIFIED means `default`.
    pub fn channel_or(
        &self,
        field: &str,
        v: i32,
        default: Option<Channel>,
    ) -> Result<Channel, Rejection> {
        match pb::Channel::try_from(v) {
            Ok(pb::Channel::Public) => Ok(Channel::Public),
            Ok(pb::Channel::Referral) => Ok(Channel::Referral),
            Ok(pb::Channel::Unspecified) => {
                default.ok_or_else(|| self.invalid(field, "must be specified"))
            }
            Err(_) => Err(self.invalid(field, format!("unknown channel {v}"))),
        }
    }

    /// A read consistency: `true` for LOCAL, `false` for LINEARIZABLE or UNSPECIFIED (the
    /// default); any other value is refused.
    pub fn local(&self, field: &str, v: i32) -> Result<bool, Rejection> {
        use pb::ReadConsistency as C;
        match C::try_from(v) {
            Ok(C::Local) => Ok(true),
            Ok(C::Linearizable | C::Unspecified) => Ok(false),
            Err(_) => Err(self.invalid(field, format!("unknown read consistency {v}"))),
        }
    }

    /// A minimum tier where UNSPECIFIED means any.
    pub fn opt_tier(&self, field: &str, v: i32) -> Result<Option<Tier>, Rejection> {
        match pb::Tier::try_from(v) {
            Ok(pb::Tier::Unspecified) => Ok(None),
            Ok(pb::Tier::Primary) => Ok(Some(Tier::Primary)),
            Ok(pb::Tier::Secondary) => Ok(Some(Tier::Secondary)),
            Ok(pb::Tier::Tertiary) => Ok(Some(Tier::Tertiary)),
            Err(_) => Err(self.invalid(field, format!("unknown tier {v}"))),
        }
    }

    /// An engine enum by its region-file name (`"icu"`, `"zh"`, `"male"`), `None` when
    /// empty; an unknown name is refused naming `field`.
    pub fn opt_named<T: DeserializeOwned>(
        &self,
        field: &str,
        text: &str,
    ) -> Result<Option<T>, Rejection> {
        if text.is_empty() {
            return Ok(None);
        }
        serde_json::from_value(serde_json::Value::String(text.to_string()))
            .map(Some)
            .map_err(|_| self.invalid(field, format!("unknown value {}", echo(text))))
    }

    /// Each of `texts` by name ([`Field::opt_named`]), the i-th named `field.i`; at most
    /// `max` items.
    pub fn all_named<T: DeserializeOwned>(
        &self,
        field: &str,
        texts: &[String],
        max: usize,
    ) -> Result<Vec<T>, Rejection> {
        if texts.len() > max {
            return Err(self.invalid(field, format!("at most {max} items")));
        }
        let mut out = Vec::with_capacity(texts.len());
        for (i, t) in texts.iter().enumerate() {
            let name = format!("{field}.{i}");
            out.push(
                self.opt_named(&name, t)?
                    .ok_or_else(|| self.invalid(&name, "must not be empty"))?,
            );
        }
        Ok(out)
    }

    /// Travel and tier limits of a search or an allocation: 0 and UNSPECIFIED mean none.
    pub fn bounds(&self, max_travel_minutes: u32, min_tier: i32) -> Result<Bounds, Rejection> {
        Ok(Bounds {
            max_travel_minutes: (max_travel_minutes != 0).then_some(max_travel_minutes),
            min_tier: self.opt_tier("min_tier", min_tier)?,
        })
    }

    /// A referral direction where UNSPECIFIED means "not stated".
    pub fn direction(&self, field: &str, v: i32) -> Result<Option<ReferralKind>, Rejection> {
        use pb::ReferralDirection as D;
        match D::try_from(v) {
            Ok(D::Unspecified) => Ok(None),
            Ok(D::Up) => Ok(Some(ReferralKind::UpTier)),
            Ok(D::Down) => Ok(Some(ReferralKind::DownTier)),
            Ok(D::SameLevel) => Ok(Some(ReferralKind::SameLevel)),
            Err(_) => Err(self.invalid(field, format!("unknown direction {v}"))),
        }
    }

    /// A specialty name ([`specialty_name`]; case, `_` and `-` do not matter), or `None`
    /// when empty.
    pub fn opt_specialty(&self, field: &str, text: &str) -> Result<Option<Specialty>, Rejection> {
        if text.is_empty() {
            return Ok(None);
        }
        if text.len() > SPECIALTY_BYTES_MAX {
            return Err(self.invalid(field, format!("longer than {SPECIALTY_BYTES_MAX} bytes")));
        }
        let norm = |s: &str| {
            s.chars()
                .filter(|c| *c != '_' && *c != '-' && *c != ' ')
                .collect::<String>()
                .to_ascii_lowercase()
        };
        let want = norm(text);
        Specialty::ALL
            .iter()
            .find(|s| norm(&specialty_name(**s)) == want)
            .copied()
            .map(Some)
            .ok_or_else(|| self.invalid(field, format!("unknown specialty {}", echo(text))))
    }

    /// A required specialty.
    pub fn specialty(&self, field: &str, text: &str) -> Result<Specialty, Rejection> {
        self.opt_specialty(field, text)?
            .ok_or_else(|| self.invalid(field, "must be specified"))
    }

    /// A time range `[start_ms, end_ms)`; unset (or all zero) gives `None`.
    pub fn opt_window(
        &self,
        field: &str,
        w: Option<&pb::TimeRange>,
    ) -> Result<Option<(LogTime, LogTime)>, Rejection> {
        match w {
            None
            | Some(pb::TimeRange {
                start_ms: 0,
                end_ms: 0,
            }) => Ok(None),
            Some(w) if w.end_ms <= w.start_ms => {
                Err(self.invalid(&format!("{field}.end_ms"), "must be after start_ms"))
            }
            Some(w) => Ok(Some((LogTime(w.start_ms), LogTime(w.end_ms)))),
        }
    }

    /// A required time range.
    pub fn window(
        &self,
        field: &str,
        w: Option<&pb::TimeRange>,
    ) -> Result<(LogTime, LogTime), Rejection> {
        self.opt_window(field, w)?
            .ok_or_else(|| self.invalid(field, "must be set"))
    }
}

/// A specialty's wire name, snake case ("general_practice", "cardiology").
pub fn specialty_name(s: Specialty) -> String {
    let debug = format!("{s:?}");
    let mut out = String::with_capacity(debug.len() + 4);
    for (i, c) in debug.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

pub fn urgency_pb(u: Option<Urgency>) -> pb::Urgency {
    match u {
        None => pb::Urgency::Unspecified,
        Some(Urgency::P1) => pb::Urgency::P1,
        Some(Urgency::P2) => pb::Urgency::P2,
        Some(Urgency::P3) => pb::Urgency::P3,
        Some(Urgency::P4) => pb::Urgency::P4,
    }
}

pub fn mode_pb(m: Mode) -> pb::Mode {
    match m {
        Mode::InPerson => pb::Mode::InPerson,
        Mode::Remote => pb::Mode::Remote,
    }
}

pub fn channel_pb(c: Channel) -> pb::Channel {
    match c {
        Channel::Public => pb::Channel::Public,
        Channel::Referral => pb::Channel::Referral,
    }
}

/// A referral's direction on the wire.
pub fn direction_pb(k: ReferralKind) -> pb::ReferralDirection {
    match k {
        ReferralKind::UpTier => pb::ReferralDirection::Up,
        ReferralKind::DownTier => pb::ReferralDirection::Down,
        ReferralKind::SameLevel => pb::ReferralDirection::SameLevel,
    }
}

pub fn tier_pb(t: Tier) -> pb::Tier {
    match t {
        Tier::Primary => pb::Tier::Primary,
        Tier::Secondary => pb::Tier::Secondary,
        Tier::Tertiary => pb::Tier::Tertiary,
    }
}

pub fn consult_state_pb(s: &HoldState) -> pb::ConsultState {
    match s {
        HoldState::Pending => pb::ConsultState::Held,
        HoldState::Confirmed { .. } => pb::ConsultState::Booked,
        HoldState::Released { .. } => pb::ConsultState::Released,
        HoldState::Expired { .. } => pb::ConsultState::Expired,
    }
}

pub fn stage_pb(s: ReferralStage) -> pb::ReferralState {
    use pb::ReferralState as P;
    match s {
        ReferralStage::NoCapacity => P::NoCapacity,
        ReferralStage::State(s) => match s {
            ReferralState::Requested => P::Requested,
            ReferralState::Triaged => P::Triaged,
            ReferralState::Matched => P::Matched,
            ReferralState::Accepted => P::Accepted,
            ReferralState::InTransit => P::InTransit,
            ReferralState::Admitted => P::Admitted,
            ReferralState::Completed => P::Completed,
            ReferralState::Rejected => P::Rejected,
            ReferralState::Cancelled => P::Cancelled,
            ReferralState::Expired => P::Expired,
        },
    }
}

impl Field {
    /// A referral state filter value.
    pub fn stage(&self, field: &str, v: i32) -> Result<ReferralStage, Rejection> {
        use pb::ReferralState as P;
        let s = match P::try_from(v) {
            Ok(P::NoCapacity) => return Ok(ReferralStage::NoCapacity),
            Ok(P::Requested) => ReferralState::Requested,
            Ok(P::Triaged) => ReferralState::Triaged,
            Ok(P::Matched) => ReferralState::Matched,
            Ok(P::Accepted) => ReferralState::Accepted,
            Ok(P::InTransit) => ReferralState::InTransit,
            Ok(P::Admitted) => ReferralState::Admitted,
            Ok(P::Completed) => ReferralState::Completed,
            Ok(P::Rejected) => ReferralState::Rejected,
            Ok(P::Cancelled) => ReferralState::Cancelled,
            Ok(P::Expired) => ReferralState::Expired,
            Ok(P::Unspecified) | Err(_) => {
                return Err(self.invalid(field, format!("not a referral state: {v}")))
            }
        };
        Ok(ReferralStage::State(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_named_with_the_item_prefix() {
        let f = Field::item("items", 3);
        let Rejection::Invalid { field, .. } = f.ttl_or_policy("ttl_ms", 5).unwrap_err() else {
            panic!()
        };
        assert_eq!(field, "items.3.ttl_ms");
        assert_eq!(f.ttl_or_policy("ttl_ms", 0).unwrap(), None);
        assert!(f.patient("patient_ref", &"A".repeat(32)).is_err());
        assert!(f.patient("patient_ref", &"a".repeat(31)).is_err());
        assert_eq!(
            f.patient("p", &"a".repeat(32)).unwrap().0,
            u128::MAX / 15 * 10
        );
    }

    #[test]
    fn specialties_round_trip_and_enums_refuse_unknown_values() {
        let f = Field::top();
        for s in Specialty::ALL {
            assert_eq!(f.opt_specialty("s", &specialty_name(s)).unwrap(), Some(s));
        }
        assert_eq!(
            specialty_name(Specialty::GeneralPractice),
            "general_practice"
        );
        assert_eq!(
            f.opt_specialty("s", "GeneralPractice").unwrap(),
            Some(Specialty::GeneralPractice)
        );
        assert!(f.opt_specialty("s", "astrology").is_err());
        assert_eq!(f.opt_specialty("s", "").unwrap(), None);
        assert!(f.urgency("urgency", 0).is_err());
        assert!(f.urgency("urgency", 9).is_err());
        assert_eq!(f.urgency("urgency", 1).unwrap(), Urgency::P1);
        assert!(f.mode("mode", 0).is_err());
        assert_eq!(f.opt_mode("mode", 0).unwrap(), None);
        assert_eq!(
            f.channel_or("c", 0, Some(Channel::Public)).unwrap(),
            Channel::Public
        );
        assert!(f.channel_or("c", 0, None).is_err());
        assert!(f.window("w", None).is_err());
        let bad = pb::TimeRange {
            start_ms: 5,
            end_ms: 5,
        };
        let Rejection::Invalid { field, .. } = f.window("window", Some(&bad)).unwrap_err() else {
            panic!()
        };
        assert_eq!(field, "window.end_ms");
        for v in 1..=11 {
            assert_eq!(stage_pb(f.stage("s", v).unwrap()) as i32, v);
        }
        assert!(f.stage("s", 0).is_err());
    }
}
