//! Spot checks: one call (or two, for `book`) against the cluster, printed as a small table
//! or JSON.

use super::table::{self, Table};
use super::{commit_json, emit, parse_duration_ms, request_id, short, with_id, Failure, Global};
use clap::{Args, ValueEnum};
use ninety_client::pb;
use serde_json::{json, Value};

/// Clinical urgency, P1 the most urgent.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum UrgencyArg {
    P1,
    P2,
    P3,
    P4,
}

impl UrgencyArg {
    fn pb(u: Option<UrgencyArg>) -> i32 {
        (match u {
            None => pb::Urgency::Unspecified,
            Some(UrgencyArg::P1) => pb::Urgency::P1,
            Some(UrgencyArg::P2) => pb::Urgency::P2,
            Some(UrgencyArg::P3) => pb::Urgency::P3,
            Some(UrgencyArg::P4) => pb::Urgency::P4,
        }) as i32
    }
}

/// Through which door the request comes.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ChannelArg {
    Public,
    Referral,
}

impl ChannelArg {
    fn pb(c: Option<ChannelArg>) -> i32 {
        (match c {
            None => pb::Channel::Unspecified,
            Some(ChannelArg::Public) => pb::Channel::Public,
            Some(ChannelArg::Referral) => pb::Channel::Referral,
        }) as i32
    }
}

/// How a consultation takes place.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ModeArg {
    InPerson,
    Remote,
}

/// A hospital tier.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TierArg {
    Primary,
    Secondary,
    Tertiary,
}

fn parse_ttl(s: &str) -> Result<u64, String> {
    parse_duration_ms(s)
}

#[derive(Args, Debug)]
pub struct HoldArgs {
    #[command(flatten)]
    pub g: Global,
    /// The ward to hold a bed in.
    #[arg(long)]
    pub ward: u32,
    /// A specific bed of the ward (default: any admissible free bed).
    #[arg(long, default_value_t = 0)]
    pub bed: u32,
    /// The patient's pseudonymous reference (32 lowercase hex digits).
    #[arg(long)]
    pub patient: String,
    /// How long the hold lasts unless confirmed or released (15m, 30s, 2h, 500ms).
    #[arg(long, default_value = "15m", value_parser = parse_ttl)]
    pub ttl: u64,
    #[arg(long, value_enum)]
    pub urgency: Option<UrgencyArg>,
    #[arg(long, value_enum)]
    pub channel: Option<ChannelArg>,
    /// The referral this hold serves (required with --channel referral).
    #[arg(long, default_value_t = 0)]
    pub referral: u64,
    /// Idempotency key (32 hex digits or a UUID); default: a fresh one, printed.
    #[arg(long)]
    pub request_id: Option<String>,
}

#[derive(Args, Debug)]
pub struct ConfirmArgs {
    #[command(flatten)]
    pub g: Global,
    /// The hold to confirm.
    pub hold: u64,
    /// Idempotency key; default: a fresh one, printed.
    #[arg(long)]
    pub request_id: Option<String>,
}

#[derive(Args, Debug)]
pub struct ReleaseArgs {
    #[command(flatten)]
    pub g: Global,
    /// The hold to release.
    pub hold: u64,
    /// Short reason code for the audit trail (no patient data).
    #[arg(long, default_value = "operator")]
    pub reason: String,
    /// Idempotency key; default: a fresh one, printed.
    #[arg(long)]
    pub request_id: Option<String>,
}

#[derive(Args, Debug)]
pub struct HoldStatusArgs {
    #[command(flatten)]
    pub g: Global,
    /// The hold to show.
    pub hold: u64,
    /// Read the answering node's state as it is (may lag) instead of a linearizable read.
    #[arg(long)]
    pub local: bool,
}

#[derive(Args, Debug)]
pub struct WardsArgs {
    #[command(flatten)]
    pub g: Global,
    /// The hospital.
    #[arg(long)]
    pub hospital: u32,
    /// Only these wards (repeat or comma separate); default every ward of the hospital.
    #[arg(long, value_delimiter = ',')]
    pub ward: Vec<u32>,
    /// Read the answering node's state as it is (may lag).
    #[arg(long)]
    pub local: bool,
}

#[derive(Args, Debug)]
pub struct MatchArgs {
    #[command(flatten)]
    pub g: Global,
    /// The specialty (e.g. cardiology; see docs/region-format.md).
    #[arg(long)]
    pub specialty: String,
    /// The patient's current hospital (travel is measured from there).
    #[arg(long)]
    pub from_hospital: u32,
    #[arg(long, default_value = "")]
    pub sub_specialty: String,
    #[arg(long, value_enum, default_value = "p4")]
    pub urgency: UrgencyArg,
    /// In person or remote; default either.
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// Slots starting from this Unix ms (default: now).
    #[arg(long)]
    pub from_ms: Option<u64>,
    /// Slots starting within this long after --from-ms (e.g. 7d, 12h).
    #[arg(long, default_value = "7d", value_parser = parse_ttl)]
    pub within: u64,
    /// Leave out candidates farther than this, minutes (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub max_travel: u32,
    #[arg(long, value_enum)]
    pub min_tier: Option<TierArg>,
    /// A language the doctor must speak (zh, yue, en, pt, ...; default any).
    #[arg(long, default_value = "")]
    pub language: String,
    #[arg(long, value_enum)]
    pub channel: Option<ChannelArg>,
    /// Most candidates (0: the server's default).
    #[arg(long, default_value_t = 10)]
    pub limit: u32,
    #[arg(long)]
    pub local: bool,
}

#[derive(Args, Debug)]
pub struct BookArgs {
    #[command(flatten)]
    pub g: Global,
    /// The slot to book.
    #[arg(long)]
    pub slot: u64,
    /// The patient's pseudonymous reference (32 lowercase hex digits).
    #[arg(long)]
    pub patient: String,
    /// How long the slot hold lasts before the booking (it is booked at once).
    #[arg(long, default_value = "10m", value_parser = parse_ttl)]
    pub ttl: u64,
    #[arg(long, value_enum, default_value = "public")]
    pub channel: ChannelArg,
    #[arg(long, default_value_t = 0)]
    pub referral: u64,
    /// Idempotency key of the hold (32 hex digits); the booking uses the next number, so a
    /// retry with the same key replays both steps. Default: a fresh one, printed.
    #[arg(long)]
    pub request_id: Option<String>,
}

fn consistency(local: bool) -> i32 {
    if local {
        pb::ReadConsistency::Local as i32
    } else {
        pb::ReadConsistency::Linearizable as i32
    }
}

fn hold_json(h: &pb::BedHold) -> Value {
    json!({
        "hold_id": h.hold_id,
        "hospital_id": h.hospital_id,
        "ward_id": h.ward_id,
        "bed_id": h.bed_id,
        "patient_ref": h.patient_ref,
        "state": h.state().as_str_name(),
        "urgency": h.urgency().as_str_name(),
        "channel": h.channel().as_str_name(),
        "referral_id": h.referral_id,
        "created_ms": h.created_ms,
        "expires_ms": h.expires_ms,
        "resolved_ms": h.resolved_ms,
    })
}

fn hold_rows(h: &pb::BedHold) -> Vec<(&'static str, String)> {
    let mut rows = vec![
        ("hold", h.hold_id.to_string()),
        ("state", short(h.state().as_str_name(), "HOLD_STATE_")),
        ("hospital", h.hospital_id.to_string()),
        ("ward", h.ward_id.to_string()),
        ("bed", h.bed_id.to_string()),
        ("patient", h.patient_ref.clone()),
        ("created", table::utc(h.created_ms)),
    ];
    if h.state() == pb::HoldState::Active {
        rows.push(("expires", table::utc(h.expires_ms)));
    } else {
        rows.push(("resolved", table::utc(h.resolved_ms)));
    }
    if h.referral_id != 0 {
        rows.push(("referral", h.referral_id.to_string()));
    }
    rows
}

pub(crate) fn commit_rows(
    c: &Option<pb::CommitInfo>,
    request_id: &str,
) -> Vec<(&'static str, String)> {
    let mut rows = vec![("request id", request_id.to_string())];
    if let Some(c) = c {
        rows.push(("log index", c.log_index.to_string()));
        rows.push(("log time", table::utc(c.log_time_ms)));
        if c.replayed {
            rows.push((
                "replayed",
                "yes: the first answer to this request id".into(),
            ));
        }
    }
    rows
}

fn print_hold_response(g: &Global, r: &pb::BedHoldResponse, request_id: &str) {
    let hold = r.hold.clone().unwrap_or_default();
    let value = json!({
        "request_id": request_id,
        "hold": hold_json(&hold),
        "commit": commit_json(&r.commit),
    });
    let mut rows = hold_rows(&hold);
    rows.extend(commit_rows(&r.commit, request_id));
    emit(g, value, table::record(&rows));
}

pub async fn hold(a: HoldArgs) -> Result<(), Failure> {
    let client = a.g.client()?;
    let id = request_id(&a.request_id);
    let req = pb::HoldBedRequest {
        request_id: id.clone(),
        ward_id: a.ward,
        bed_id: a.bed,
        patient_ref: a.patient.clone(),
        ttl_ms: a.ttl,
        urgency: UrgencyArg::pb(a.urgency),
        channel: ChannelArg::pb(a.channel),
        referral_id: a.referral,
    };
    let r = client.hold_bed(req).await.map_err(with_id(&id))?;
    print_hold_response(&a.g, &r, &id);
    Ok(())
}

pub async fn confirm(a: ConfirmArgs) -> Result<(), Failure> {
    let client = a.g.client()?;
    let id = request_id(&a.request_id);
    let r = client
        .confirm_hold(pb::ConfirmHoldRequest {
            request_id: id.clone(),
            hold_id: a.hold,
        })
        .await
        .map_err(with_id(&id))?;
    print_hold_response(&a.g, &r, &id);
    Ok(())
}

pub async fn release(a: ReleaseArgs) -> Result<(), Failure> {
    let client = a.g.client()?;
    let id = request_id(&a.request_id);
    let r = client
        .release_hold(pb::ReleaseHoldRequest {
            request_id: id.clone(),
            hold_id: a.hold,
            reason: a.reason.clone(),
        })
        .await
        .map_err(with_id(&id))?;
    print_hold_response(&a.g, &r, &id);
    Ok(())
}

pub async fn hold_status(a: HoldStatusArgs) -> Result<(), Failure> {
    let client = a.g.client()?;
    let r = client
        .get_hold(pb::GetHoldRequest {
            hold_id: a.hold,
            consistency: consistency(a.local),
        })
        .await?;
    let hold = r.hold.clone().unwrap_or_default();
    let value = json!({ "hold": hold_json(&hold), "applied_index": r.applied_index });
    let mut rows = hold_rows(&hold);
    rows.push(("read at index", r.applied_index.to_string()));
    emit(&a.g, value, table::record(&rows));
    Ok(())
}

pub async fn wards(a: WardsArgs) -> Result<(), Failure> {
    let client = a.g.client()?;
    let r = client
        .ward_availability(pb::WardAvailabilityRequest {
            hospital_id: a.hospital,
            ward_ids: a.ward.clone(),
            consistency: consistency(a.local),
        })
        .await?;
    let mut t = Table::new(&[
        "ward",
        "specialty",
        "total",
        "free",
        "held",
        "occupied",
        "to_clean",
        "blocked",
    ]);
    let mut list = Vec::new();
    for w in &r.wards {
        t.row(vec![
            w.ward_id.to_string(),
            w.specialty.clone(),
            w.total_beds.to_string(),
            w.free_beds.to_string(),
            w.held_beds.to_string(),
            w.occupied_beds.to_string(),
            w.to_clean_beds.to_string(),
            w.blocked_beds.to_string(),
        ]);
        list.push(json!({
            "hospital_id": w.hospital_id,
            "ward_id": w.ward_id,
            "specialty": w.specialty,
            "total_beds": w.total_beds,
            "free_beds": w.free_beds,
            "held_beds": w.held_beds,
            "occupied_beds": w.occupied_beds,
            "to_clean_beds": w.to_clean_beds,
            "blocked_beds": w.blocked_beds,
            "staffed_beds": w.staffed_beds,
        }));
    }
    let human = format!(
        "hospital {} ({} wards, read at index {})\n{}",
        a.hospital,
        r.wards.len(),
        r.applied_index,
        t.render()
    );
    emit(
        &a.g,
        json!({ "hospital_id": a.hospital, "wards": list, "applied_index": r.applied_index }),
        human,
    );
    Ok(())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub async fn match_specialist(a: MatchArgs) -> Result<(), Failure> {
    let client = a.g.client()?;
    let start = a.from_ms.unwrap_or_else(now_ms);
    let req = pb::MatchSpecialistRequest {
        from_hospital_id: a.from_hospital,
        specialty: a.specialty.clone(),
        sub_specialty: a.sub_specialty.clone(),
        urgency: UrgencyArg::pb(Some(a.urgency)),
        mode: (match a.mode {
            None => pb::Mode::Unspecified,
            Some(ModeArg::InPerson) => pb::Mode::InPerson,
            Some(ModeArg::Remote) => pb::Mode::Remote,
        }) as i32,
        window: Some(pb::TimeRange {
            start_ms: start,
            end_ms: start.saturating_add(a.within),
        }),
        max_travel_minutes: a.max_travel,
        min_tier: (match a.min_tier {
            None => pb::Tier::Unspecified,
            Some(TierArg::Primary) => pb::Tier::Primary,
            Some(TierArg::Secondary) => pb::Tier::Secondary,
            Some(TierArg::Tertiary) => pb::Tier::Tertiary,
        }) as i32,
        channel: ChannelArg::pb(a.channel),
        limit: a.limit,
        consistency: consistency(a.local),
        language: a.language.clone(),
    };
    let r = client.match_specialist(req).await?;
    let mut t = Table::new(&[
        "rank",
        "doctor",
        "slot",
        "hospital",
        "tier",
        "travel min",
        "wait min",
        "starts",
        "mode",
    ]);
    let mut list = Vec::new();
    for c in &r.candidates {
        t.row(vec![
            c.rank.to_string(),
            c.doctor_id.to_string(),
            c.slot_id.to_string(),
            c.hospital_id.to_string(),
            short(c.tier().as_str_name(), "TIER_"),
            c.travel_minutes.to_string(),
            c.wait_minutes.to_string(),
            table::utc(c.start_ms),
            short(c.mode().as_str_name(), "MODE_"),
        ]);
        list.push(json!({
            "rank": c.rank,
            "doctor_id": c.doctor_id,
            "slot_id": c.slot_id,
            "hospital_id": c.hospital_id,
            "ward_id": c.ward_id,
            "travel_minutes": c.travel_minutes,
            "wait_minutes": c.wait_minutes,
            "tier": c.tier().as_str_name(),
            "alliance_id": c.alliance_id,
            "score": c.score,
            "explanation": c.explanation,
            "start_ms": c.start_ms,
            "mode": c.mode().as_str_name(),
        }));
    }
    let mut human = format!(
        "{} candidates for {} from hospital {} (read at index {})\n{}",
        r.candidates.len(),
        a.specialty,
        a.from_hospital,
        r.applied_index,
        t.render()
    );
    if let Some(best) = r.candidates.first() {
        human.push_str(&format!("best: {}\n", best.explanation));
    }
    emit(
        &a.g,
        json!({ "candidates": list, "applied_index": r.applied_index }),
        human,
    );
    Ok(())
}

/// The request id of the second step of a two-step action: the first id's 128-bit value
/// (as the server derives it, `ninety_engine::RequestId::from_text`) plus one, as 32 hex
/// digits, so a retry with the same first id replays both steps. `None` for text the server
/// refuses as a request id (empty or too long).
pub fn next_id(id: &str) -> Option<String> {
    let n = ninety_engine::RequestId::from_text(id).ok()?.0;
    Some(format!("{:032x}", n.wrapping_add(1)))
}

fn booking_json(b: &pb::SlotBooking) -> Value {
    json!({
        "hold_id": b.hold_id,
        "slot_id": b.slot_id,
        "doctor_id": b.doctor_id,
        "hospital_id": b.hospital_id,
        "patient_ref": b.patient_ref,
        "state": b.state().as_str_name(),
        "channel": b.channel().as_str_name(),
        "referral_id": b.referral_id,
        "start_ms": b.start_ms,
        "mode": b.mode().as_str_name(),
        "created_ms": b.created_ms,
        "expires_ms": b.expires_ms,
        "cancel_deadline_ms": b.cancel_deadline_ms,
    })
}

pub async fn book(a: BookArgs) -> Result<(), Failure> {
    let client = a.g.client()?;
    let id = request_id(&a.request_id);
    let Some(book_id) = next_id(&id) else {
        return Err(Failure::Usage(format!(
            "--request-id {id:?}: not a request id (1 to 128 bytes; the booking uses the next number)"
        )));
    };
    let held = client
        .hold_slot(pb::HoldSlotRequest {
            request_id: id.clone(),
            slot_id: a.slot,
            patient_ref: a.patient.clone(),
            ttl_ms: a.ttl,
            channel: ChannelArg::pb(Some(a.channel)),
            referral_id: a.referral,
        })
        .await
        .map_err(with_id(&id))?;
    let hold_id = held.booking.as_ref().map(|b| b.hold_id).unwrap_or(0);
    let booked = client
        .book_slot(pb::BookSlotRequest {
            request_id: book_id.clone(),
            hold_id,
        })
        .await
        .map_err(with_id(&id))?;
    let b = booked.booking.clone().unwrap_or_default();
    let value = json!({
        "request_id": id,
        "book_request_id": book_id,
        "booking": booking_json(&b),
        "hold_commit": commit_json(&held.commit),
        "commit": commit_json(&booked.commit),
    });
    let mut rows = vec![
        ("booking", b.hold_id.to_string()),
        ("state", short(b.state().as_str_name(), "BOOKING_STATE_")),
        ("slot", b.slot_id.to_string()),
        ("doctor", b.doctor_id.to_string()),
        ("hospital", b.hospital_id.to_string()),
        ("patient", b.patient_ref.clone()),
        ("starts", table::utc(b.start_ms)),
        ("mode", short(b.mode().as_str_name(), "MODE_")),
        ("cancel by", table::utc(b.cancel_deadline_ms)),
    ];
    rows.extend(commit_rows(&booked.commit, &id));
    emit(&a.g, value, table::record(&rows));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_step_id_is_the_next_number() {
        assert_eq!(
            next_id("0000000000000000000000000000000f").as_deref(),
            Some("00000000000000000000000000000010")
        );
        assert_eq!(
            next_id("00000000-0000-0000-0000-00000000000f").as_deref(),
            Some("00000000000000000000000000000010")
        );
        // Text ids have a next number too: their hashed value plus one.
        let text = ninety_engine::RequestId::from_text("book-7").unwrap().0;
        assert_eq!(
            next_id("book-7"),
            Some(format!("{:032x}", text.wrapping_add(1)))
        );
        // A sign is not a spelling of a hex id.
        assert_ne!(
            next_id("+000000000000000000000000000000f").as_deref(),
            Some("00000000000000000000000000000010")
        );
        assert_eq!(next_id(""), None);
        assert_eq!(next_id(&"x".repeat(129)), None);
    }
}
