//! The one place the replay speaks the wire API: [`Conn`] over a `ninety_client::Client`,
//! and [`send`], one trace op (its references resolved) to its gRPC call(s) and back to
//! what it [`Produced`].

use super::trace::{Channel, Mode, Op, PatientAttrs, Ref, Tier, Urgency};
use ninety_client::pb;
use std::time::Duration;

/// What a successful request created or chose, for later events and for the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Produced {
    /// The hold, booking, consultation or referral id.
    pub id: u64,
    /// The hospital chosen or holding the capacity, 0 if none.
    pub hospital: u32,
    /// The doctor of a slot, 0 if none.
    pub doctor: u32,
    /// Travel minutes of a matched candidate, if the answer says.
    pub travel_minutes: Option<u32>,
    /// Tier of a matched candidate, if the answer says.
    pub tier: Option<Tier>,
    /// Whether the op was a match attempt that found capacity (or candidates).
    pub matched: bool,
    /// Doctors of a joint consultation beyond `doctor` (up to three).
    pub more_doctors: [u32; 3],
    /// The start of the slot a seat holds, Unix ms of the cluster (0 if none).
    pub slot_start_ms: u64,
    /// The bed a bed hold took, 0 if none.
    pub bed: u32,
    /// A no-show answered that the patient is now blocked from online booking: a key of
    /// the patient (0 if not blocked).
    pub blocked_patient: u64,
    /// Set by the replay: this no-show is the first to block its patient in this replay.
    pub new_block: bool,
    /// Set by the replay: the trace day (0 for the first) of the slot a seat holds, read
    /// back through the schedule mapping (`None` if no seat or before day 0).
    pub slot_day: Option<u32>,
}

/// The result of sending one event.
pub type Answer = Result<Produced, String>;

/// Which part of what an earlier event produced a reference stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// Its hold, booking, consultation or referral id.
    Id,
    /// The hospital it matched or holds capacity at.
    Hospital,
    /// The bed its bed hold took.
    Bed,
}

/// Resolves a reference of an op to the id the cluster knows.
pub type Resolve<'a> = &'a (dyn Fn(Ref, Part) -> u64 + Sync);

/// The one place that speaks the wire API: a [`ninety_client::Client`] of the target nodes
/// (the last answering node first, leader hints followed, retries of the *same* message,
/// so the request id keeps a retry safe), configured for open-loop replay: a call gives up
/// within the replay's request timeout instead of the client's interactive defaults.
#[derive(Clone)]
pub struct Conn {
    pub(super) client: ninety_client::Client,
}

/// Longest one attempt of a replayed call may take (sent as `grpc-timeout`); a node that
/// cannot answer within it is retried, the same request id, on the next or hinted node.
pub const REPLAY_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

impl Conn {
    /// A client of `targets` (host:port); connections open lazily. Each call takes at most
    /// `request_timeout` over all its attempts.
    pub fn new(
        targets: &[String],
        request_timeout: Duration,
        tls: Option<ninety_client::ClientTls>,
        token: Option<String>,
    ) -> Result<Conn, String> {
        let config = ninety_client::Config {
            attempt_timeout: REPLAY_ATTEMPT_TIMEOUT.min(request_timeout),
            total_timeout: request_timeout,
            max_attempts: 8,
            backoff_initial: Duration::from_millis(10),
            backoff_max: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(3),
            tls,
            token,
        };
        let client = ninety_client::Client::new(targets, config).map_err(|e| e.to_string())?;
        Ok(Conn { client })
    }

    /// The same connections, every call naming `region` in the `ninety-region` header.
    pub fn routed(&self, region: &str) -> Result<Conn, String> {
        let client = self
            .client
            .with_region(region)
            .map_err(|e| format!("region: {e}"))?;
        Ok(Conn { client })
    }

    /// The client, for calls the replay makes besides the trace's (discovery, publishing).
    pub fn client(&self) -> &ninety_client::Client {
        &self.client
    }

    /// Counts a hospital's beds: (occupied, held, total).
    pub async fn occupancy(&self, hospital: u32) -> Result<(u32, u32, u32), tonic::Status> {
        let r = self
            .client
            .ward_availability(pb::WardAvailabilityRequest {
                hospital_id: hospital,
                ward_ids: Vec::new(),
                consistency: pb::ReadConsistency::Local as i32,
            })
            .await?;
        Ok(r.wards.iter().fold((0, 0, 0), |a, w| {
            (a.0 + w.occupied_beds, a.1 + w.held_beds, a.2 + w.total_beds)
        }))
    }
}

pub(super) fn urgency(u: Urgency) -> i32 {
    (match u {
        Urgency::P1 => pb::Urgency::P1,
        Urgency::P2 => pb::Urgency::P2,
        Urgency::P3 => pb::Urgency::P3,
        Urgency::P4 => pb::Urgency::P4,
    }) as i32
}

pub(super) fn mode(m: Mode) -> i32 {
    (match m {
        Mode::Any => pb::Mode::Unspecified,
        Mode::InPerson => pb::Mode::InPerson,
        Mode::Remote => pb::Mode::Remote,
    }) as i32
}

pub(super) fn channel(c: Channel) -> i32 {
    (match c {
        Channel::Public => pb::Channel::Public,
        Channel::Referral => pb::Channel::Referral,
    }) as i32
}

fn tier_pb(t: Tier) -> i32 {
    (match t {
        Tier::Primary => pb::Tier::Primary,
        Tier::Secondary => pb::Tier::Secondary,
        Tier::Tertiary => pb::Tier::Tertiary,
    }) as i32
}

fn tier_from_pb(t: i32) -> Option<Tier> {
    match pb::Tier::try_from(t).ok()? {
        pb::Tier::Primary => Some(Tier::Primary),
        pb::Tier::Secondary => Some(Tier::Secondary),
        pb::Tier::Tertiary => Some(Tier::Tertiary),
        pb::Tier::Unspecified => None,
    }
}

pub(super) fn window(start: u64, end: u64) -> Option<pb::TimeRange> {
    Some(pb::TimeRange {
        start_ms: start,
        end_ms: end,
    })
}

/// The error kind of a refused call: the gRPC code and, when attached, the rejection code
/// (`FAILED_PRECONDITION/NO_CAPACITY`).
pub fn error_kind(s: &tonic::Status) -> String {
    let code = format!("{:?}", s.code());
    let code = grpc_code_name(&code);
    match ninety_proto::status::rejection(s) {
        Some(r) if r.code != 0 => {
            let name = pb::RejectionCode::try_from(r.code)
                .map(|c| {
                    c.as_str_name()
                        .trim_start_matches("REJECTION_CODE_")
                        .to_string()
                })
                .unwrap_or_else(|_| r.code.to_string());
            format!("{code}/{name}")
        }
        _ => code,
    }
}

/// `FailedPrecondition` → `FAILED_PRECONDITION`.
fn grpc_code_name(debug: &str) -> String {
    let mut out = String::new();
    for (i, c) in debug.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// FNV-1a of a string, never 0 (a patient's key in [`Produced::blocked_patient`]).
pub fn key_of(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h.max(1)
}

/// Request ids as sent: the trace's, or mixed with the run's salt.
pub fn salted(request_id: &str, salt: u64) -> String {
    if salt == 0 {
        return request_id.to_string();
    }
    // FNV-1a over the id, then two SplitMix64 outputs: 32 hex digits.
    let mut r = ninety_engine::generate::SplitMix64::new(key_of(request_id) ^ salt);
    format!("{:016x}{:016x}", r.next_u64(), r.next_u64())
}

/// The request id of the second call of a two-call op (`book`'s `BookSlot`), derived
/// from the first's as sent: a retry of the replay sends the same pair.
pub fn second_request_id(first: &str) -> String {
    salted(&format!("{first}/book"), 0x626f_6f6b)
}

fn candidate(p: &mut Produced, c: Option<&pb::Candidate>) {
    if let Some(c) = c {
        p.hospital = c.hospital_id;
        p.doctor = c.doctor_id;
        p.travel_minutes = Some(c.travel_minutes);
        p.tier = tier_from_pb(c.tier);
        p.matched = true;
        if c.start_ms != 0 {
            p.slot_start_ms = c.start_ms;
        }
    }
}

fn seat(p: &mut Produced, b: Option<&pb::SlotBooking>) {
    if let Some(b) = b {
        p.id = b.hold_id;
        p.hospital = b.hospital_id;
        p.doctor = b.doctor_id;
        p.slot_start_ms = b.start_ms;
    }
}

fn bed_hold(p: &mut Produced, h: Option<&pb::BedHold>) {
    if let Some(h) = h {
        p.id = h.hold_id;
        p.hospital = h.hospital_id;
        p.bed = h.bed_id;
    }
}

/// What a call needs besides the op: the request id as sent, how to resolve references,
/// and the patient's attributes.
pub(super) struct Call<'a> {
    pub request_id: String,
    pub resolve: Resolve<'a>,
    pub attrs: Option<&'a PatientAttrs>,
}

impl Call<'_> {
    fn id(&self, r: Ref) -> u64 {
        (self.resolve)(r, Part::Id)
    }

    fn opt(&self, r: &Option<Ref>) -> u64 {
        r.map_or(0, |r| self.id(r))
    }

    fn language(&self) -> String {
        self.attrs
            .and_then(|a| a.language.clone())
            .unwrap_or_default()
    }
}

/// Sends one op (its references resolved through `call.resolve`) and reads what it
/// produced.
pub(super) async fn send(conn: &Conn, op: &Op, call: Call<'_>) -> Result<Produced, tonic::Status> {
    match op {
        Op::MatchSpecialist { .. } => match_specialist(conn, op, &call).await,
        Op::AllocateSlot { .. } => allocate_slot(conn, op, &call).await,
        Op::Book { .. } => book(conn, op, call).await,
        Op::HoldSlot { .. }
        | Op::BookSlot { .. }
        | Op::CancelBooking { .. }
        | Op::MarkNoShow { .. } => seat_op(conn, op, call).await,
        Op::HoldBed { .. } | Op::AllocateBed { .. } => hold_or_allocate_bed(conn, op, call).await,
        Op::ConfirmHold { .. }
        | Op::ReleaseHold { .. }
        | Op::GetHold { .. }
        | Op::WardAvailability { .. }
        | Op::Discharge { .. }
        | Op::MarkBedClean { .. } => bed_op(conn, op, call).await,
        Op::HoldJointConsult { .. }
        | Op::BookJointConsult { .. }
        | Op::ReleaseJointConsult { .. } => consult_op(conn, op, call).await,
        Op::RequestReferral { .. }
        | Op::TriageReferral { .. }
        | Op::MatchReferral { .. }
        | Op::AcceptReferral { .. } => referral_op(conn, op, call).await,
        Op::StartTransit { .. }
        | Op::AdmitReferral { .. }
        | Op::CompleteReferral { .. }
        | Op::CancelReferral { .. } => referral_end_op(conn, op, call).await,
    }
}

async fn match_specialist(
    conn: &Conn,
    op: &Op,
    call: &Call<'_>,
) -> Result<Produced, tonic::Status> {
    let Op::MatchSpecialist {
        from_hospital,
        specialty,
        urgency: u,
        mode: m,
        window_start_ms,
        window_end_ms,
        max_travel_minutes,
        channel: c,
        limit,
    } = op
    else {
        return Err(tonic::Status::internal("not match_specialist"));
    };
    let r = conn
        .client
        .match_specialist(pb::MatchSpecialistRequest {
            from_hospital_id: *from_hospital,
            specialty: specialty.clone(),
            urgency: urgency(*u),
            mode: mode(*m),
            window: window(*window_start_ms, *window_end_ms),
            max_travel_minutes: *max_travel_minutes,
            channel: channel(*c),
            limit: *limit,
            consistency: pb::ReadConsistency::Local as i32,
            language: call.language(),
            ..Default::default()
        })
        .await?;
    let mut p = Produced::default();
    candidate(&mut p, r.candidates.first());
    // A search holds nothing: its candidate's slot is not a seat.
    p.slot_start_ms = 0;
    Ok(p)
}

/// `Matching/AllocateSlot` for `allocate_slot` and the first half of `book`.
async fn allocate_slot(conn: &Conn, op: &Op, call: &Call<'_>) -> Result<Produced, tonic::Status> {
    let (patient, from_hospital, specialty, u, m, (ws, we), travel, c, referral) = match op {
        Op::AllocateSlot {
            patient,
            from_hospital,
            specialty,
            urgency,
            mode,
            window_start_ms,
            window_end_ms,
            max_travel_minutes,
            channel,
            referral,
            ..
        }
        | Op::Book {
            patient,
            from_hospital,
            specialty,
            urgency,
            mode,
            window_start_ms,
            window_end_ms,
            max_travel_minutes,
            channel,
            referral,
        } => (
            patient,
            from_hospital,
            specialty,
            urgency,
            mode,
            (window_start_ms, window_end_ms),
            max_travel_minutes,
            channel,
            referral,
        ),
        _ => return Err(tonic::Status::internal("not allocate_slot")),
    };
    let r = conn
        .client
        .allocate_slot(pb::AllocateSlotRequest {
            request_id: call.request_id.clone(),
            patient_ref: patient.clone(),
            from_hospital_id: *from_hospital,
            specialty: specialty.clone(),
            urgency: urgency(*u),
            mode: mode(*m),
            window: window(*ws, *we),
            max_travel_minutes: *travel,
            channel: channel(*c),
            referral_id: call.opt(referral),
            language: call.language(),
            ..Default::default()
        })
        .await?;
    let mut p = Produced::default();
    candidate(&mut p, r.chosen.as_ref());
    if let Some(b) = r.booking.as_ref() {
        seat(&mut p, Some(b));
        p.matched = true;
    }
    Ok(p)
}

/// `book`: the allocation, then `BookSlot` of its hold under a derived request id.
async fn book(conn: &Conn, op: &Op, call: Call<'_>) -> Result<Produced, tonic::Status> {
    let p = allocate_slot(conn, op, &call).await?;
    conn.client
        .book_slot(pb::BookSlotRequest {
            request_id: second_request_id(&call.request_id),
            hold_id: p.id,
        })
        .await?;
    Ok(p)
}

async fn seat_op(conn: &Conn, op: &Op, call: Call<'_>) -> Result<Produced, tonic::Status> {
    let mut p = Produced::default();
    let request_id = call.request_id.clone();
    match op {
        Op::HoldSlot {
            slot,
            patient,
            ttl_ms,
            channel: c,
        } => {
            let r = conn
                .client
                .hold_slot(pb::HoldSlotRequest {
                    request_id,
                    slot_id: call.id(*slot),
                    patient_ref: patient.clone(),
                    ttl_ms: *ttl_ms,
                    channel: channel(*c),
                    referral_id: 0,
                })
                .await?;
            seat(&mut p, r.booking.as_ref());
        }
        Op::BookSlot { hold } => {
            let hold_id = call.id(*hold);
            let r = conn
                .client
                .book_slot(pb::BookSlotRequest {
                    request_id,
                    hold_id,
                })
                .await?;
            seat(&mut p, r.booking.as_ref());
            p.id = hold_id;
        }
        Op::CancelBooking { hold, reason } => {
            let hold_id = call.id(*hold);
            conn.client
                .cancel_booking(pb::CancelBookingRequest {
                    request_id,
                    hold_id,
                    reason: reason.clone(),
                })
                .await?;
        }
        Op::MarkNoShow { hold } => {
            let r = conn
                .client
                .mark_no_show(pb::MarkNoShowRequest {
                    request_id,
                    hold_id: call.id(*hold),
                })
                .await?;
            if r.online_booking_blocked_until_ms != 0 {
                let patient = r.booking.as_ref().map_or("", |b| b.patient_ref.as_str());
                p.blocked_patient = key_of(patient);
            }
        }
        _ => return Err(tonic::Status::internal("not a seat op")),
    }
    Ok(p)
}

async fn hold_or_allocate_bed(
    conn: &Conn,
    op: &Op,
    call: Call<'_>,
) -> Result<Produced, tonic::Status> {
    let mut p = Produced::default();
    match op {
        Op::HoldBed {
            ward,
            bed,
            patient,
            ttl_ms,
            urgency: u,
            channel: c,
            referral,
        } => {
            let r = conn
                .client
                .hold_bed(pb::HoldBedRequest {
                    request_id: call.request_id.clone(),
                    ward_id: *ward,
                    bed_id: *bed,
                    patient_ref: patient.clone(),
                    ttl_ms: *ttl_ms,
                    urgency: urgency(*u),
                    channel: channel(*c),
                    referral_id: call.opt(referral),
                })
                .await?;
            bed_hold(&mut p, r.hold.as_ref());
        }
        Op::AllocateBed { .. } => {
            let r = conn
                .client
                .allocate_bed(allocate_bed_request(op, &call))
                .await?;
            candidate(&mut p, r.chosen.as_ref());
            bed_hold(&mut p, r.hold.as_ref());
            p.matched |= r.hold.is_some();
        }
        _ => return Err(tonic::Status::internal("not a bed hold op")),
    }
    Ok(p)
}

/// `AllocateBed` with the patient's sex, and a pediatric ward for a child's band when no
/// specialty narrows the search.
fn allocate_bed_request(op: &Op, call: &Call<'_>) -> pb::AllocateBedRequest {
    let Op::AllocateBed {
        patient,
        from_hospital,
        specialty,
        urgency: u,
        max_travel_minutes,
        min_tier,
        ttl_ms,
        channel: c,
        referral,
    } = op
    else {
        return pb::AllocateBedRequest::default();
    };
    let attrs = call.attrs.cloned().unwrap_or_default();
    let ward_kind = if specialty.is_empty() && attrs.is_child() {
        "pediatric".to_string()
    } else {
        String::new()
    };
    pb::AllocateBedRequest {
        request_id: call.request_id.clone(),
        patient_ref: patient.clone(),
        from_hospital_id: *from_hospital,
        specialty: specialty.clone(),
        urgency: urgency(*u),
        max_travel_minutes: *max_travel_minutes,
        min_tier: min_tier.map_or(0, tier_pb),
        ttl_ms: *ttl_ms,
        channel: channel(*c),
        referral_id: call.opt(referral),
        sex: attrs.sex.unwrap_or_default(),
        ward_kind,
        ..Default::default()
    }
}

async fn bed_op(conn: &Conn, op: &Op, call: Call<'_>) -> Result<Produced, tonic::Status> {
    let request_id = call.request_id.clone();
    let bed = |r: Ref| (call.resolve)(r, Part::Bed) as u32;
    match op {
        Op::ConfirmHold { hold } => {
            conn.client
                .confirm_hold(pb::ConfirmHoldRequest {
                    request_id,
                    hold_id: call.id(*hold),
                })
                .await?;
        }
        Op::ReleaseHold { hold, reason } => {
            conn.client
                .release_hold(pb::ReleaseHoldRequest {
                    request_id,
                    hold_id: call.id(*hold),
                    reason: reason.clone(),
                })
                .await?;
        }
        Op::GetHold { hold } => {
            conn.client
                .get_hold(pb::GetHoldRequest {
                    hold_id: call.id(*hold),
                    consistency: pb::ReadConsistency::Local as i32,
                })
                .await?;
        }
        Op::WardAvailability { hospital } => {
            conn.occupancy(*hospital).await?;
        }
        Op::Discharge { bed: b } => {
            let bed_id = bed(*b);
            conn.client
                .discharge(pb::DischargeRequest { request_id, bed_id })
                .await?;
        }
        Op::MarkBedClean { bed: b } => {
            let bed_id = bed(*b);
            conn.client
                .mark_bed_clean(pb::MarkBedCleanRequest { request_id, bed_id })
                .await?;
        }
        _ => return Err(tonic::Status::internal("not a bed op")),
    }
    Ok(Produced::default())
}

async fn consult_op(conn: &Conn, op: &Op, call: Call<'_>) -> Result<Produced, tonic::Status> {
    let mut p = Produced::default();
    let request_id = call.request_id.clone();
    match op {
        Op::HoldJointConsult {
            patient,
            doctors,
            window_start_ms,
            window_end_ms,
            duration_minutes,
            ttl_ms,
            requesting_hospital,
        } => {
            let r = conn
                .client
                .hold_joint_consult(pb::HoldJointConsultRequest {
                    request_id,
                    patient_ref: patient.clone(),
                    doctor_ids: doctors.clone(),
                    window: window(*window_start_ms, *window_end_ms),
                    duration_minutes: *duration_minutes,
                    ttl_ms: *ttl_ms,
                    requesting_hospital_id: *requesting_hospital,
                })
                .await?;
            if let Some(c) = r.consult {
                p.id = c.consult_id;
                p.doctor = c.doctor_ids.first().copied().unwrap_or(0);
                for (slot, d) in p.more_doctors.iter_mut().zip(c.doctor_ids.iter().skip(1)) {
                    *slot = *d;
                }
            }
        }
        Op::BookJointConsult { consult } => {
            conn.client
                .book_joint_consult(pb::BookJointConsultRequest {
                    request_id,
                    consult_id: call.id(*consult),
                })
                .await?;
        }
        Op::ReleaseJointConsult { consult, reason } => {
            conn.client
                .release_joint_consult(pb::ReleaseJointConsultRequest {
                    request_id,
                    consult_id: call.id(*consult),
                    reason: reason.clone(),
                })
                .await?;
        }
        _ => return Err(tonic::Status::internal("not a consultation op")),
    }
    Ok(p)
}

/// A referral's first steps: request, triage, match, accept.
async fn referral_op(conn: &Conn, op: &Op, call: Call<'_>) -> Result<Produced, tonic::Status> {
    let mut p = Produced::default();
    let request_id = call.request_id.clone();
    match op {
        Op::RequestReferral {
            patient,
            from_hospital,
            specialty,
            urgency: u,
            mode: m,
            needs_bed,
            reason_code,
            ttl_ms,
        } => {
            let r = conn
                .client
                .request_referral(pb::RequestReferralRequest {
                    request_id,
                    patient_ref: patient.clone(),
                    from_hospital_id: *from_hospital,
                    specialty: specialty.clone(),
                    urgency: urgency(*u),
                    mode: mode(*m),
                    needs_bed: *needs_bed,
                    reason_code: reason_code.clone(),
                    ttl_ms: *ttl_ms,
                    ..Default::default()
                })
                .await?;
            p.id = r.referral.map_or(0, |r| r.referral_id);
        }
        Op::TriageReferral {
            referral,
            urgency: u,
            specialty,
        } => {
            conn.client
                .triage_referral(pb::TriageReferralRequest {
                    request_id,
                    referral_id: call.id(*referral),
                    urgency: urgency(*u),
                    specialty: specialty.clone(),
                    note: String::new(),
                })
                .await?;
        }
        Op::MatchReferral { .. } => return match_referral(conn, op, call).await,
        Op::AcceptReferral { referral, hospital } => {
            conn.client
                .accept_referral(pb::AcceptReferralRequest {
                    request_id,
                    referral_id: call.id(*referral),
                    hospital_id: (call.resolve)(*hospital, Part::Hospital) as u32,
                })
                .await?;
        }
        _ => return Err(tonic::Status::internal("not a referral op")),
    }
    Ok(p)
}

async fn match_referral(conn: &Conn, op: &Op, call: Call<'_>) -> Result<Produced, tonic::Status> {
    let Op::MatchReferral {
        referral,
        bed_hold,
        slot_hold,
        to_hospital,
        hold_ttl_ms,
        max_travel_minutes,
    } = op
    else {
        return Err(tonic::Status::internal("not match_referral"));
    };
    let r = conn
        .client
        .match_referral(pb::MatchReferralRequest {
            request_id: call.request_id.clone(),
            referral_id: call.id(*referral),
            to_hospital_id: *to_hospital,
            hold_ttl_ms: *hold_ttl_ms,
            max_travel_minutes: *max_travel_minutes,
            bed_hold_id: call.opt(bed_hold),
            slot_hold_id: call.opt(slot_hold),
        })
        .await?;
    let mut p = Produced::default();
    if let Some(r) = r.referral {
        p.id = r.referral_id;
        candidate(&mut p, r.matched.as_ref());
        p.hospital = r.to_hospital_id;
        p.matched = r.to_hospital_id != 0;
        p.slot_start_ms = 0;
    }
    Ok(p)
}

/// A referral's last steps: transit, admission, completion, cancellation.
async fn referral_end_op(conn: &Conn, op: &Op, call: Call<'_>) -> Result<Produced, tonic::Status> {
    let request_id = call.request_id.clone();
    match op {
        Op::StartTransit {
            referral,
            eta_after_ms,
        } => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            conn.client
                .start_transit(pb::StartTransitRequest {
                    request_id,
                    referral_id: call.id(*referral),
                    eta_ms: now + eta_after_ms,
                })
                .await?;
        }
        Op::AdmitReferral { referral } => {
            conn.client
                .admit_referral(pb::AdmitReferralRequest {
                    request_id,
                    referral_id: call.id(*referral),
                })
                .await?;
        }
        Op::CompleteReferral { referral, outcome } => {
            conn.client
                .complete_referral(pb::CompleteReferralRequest {
                    request_id,
                    referral_id: call.id(*referral),
                    outcome: outcome.clone(),
                })
                .await?;
        }
        Op::CancelReferral { referral, reason } => {
            conn.client
                .cancel_referral(pb::CancelReferralRequest {
                    request_id,
                    referral_id: call.id(*referral),
                    reason: reason.clone(),
                })
                .await?;
        }
        _ => return Err(tonic::Status::internal("not a referral op")),
    }
    Ok(Produced::default())
}
