//! Open-loop replay of a trace against a cluster.
//!
//! Each event is sent at its scheduled time (`at_ms / speed` after the start), whether or
//! not earlier requests were answered; latency is measured from the scheduled time, so a
//! server that falls behind shows it instead of slowing the load down (no coordinated
//! omission). In-flight requests are bounded: an event due while the bound is reached is
//! not sent and is counted as `CLIENT_OVERLOAD`.

use super::report::{Collector, ReplayResult};
use super::trace::{Channel, Event, Mode, Op, Ref, Tier, Trace, Urgency};
use ninety_client::pb;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};

/// Slowest replay: trace time per wall time (a tenth of an hour of trace per wall hour);
/// slower would turn a day's trace into months of waiting.
pub const SPEED_MIN: f64 = 0.1;
/// Fastest replay: trace time per wall time (a day of trace in under a second).
pub const SPEED_MAX: f64 = 100_000.0;
/// Most requests in flight at once.
pub const IN_FLIGHT_MAX: usize = 100_000;

/// Checks a replay speed: a number in [`SPEED_MIN`]..=[`SPEED_MAX`] (NaN and infinities
/// are not).
pub fn check_speed(speed: f64) -> Result<f64, String> {
    if (SPEED_MIN..=SPEED_MAX).contains(&speed) {
        Ok(speed)
    } else {
        Err(format!(
            "speed: {speed:?} is outside {SPEED_MIN}..={SPEED_MAX} (trace time per wall time)"
        ))
    }
}

/// Checks a bound on requests in flight: 1..=[`IN_FLIGHT_MAX`].
pub fn check_max_in_flight(n: usize) -> Result<usize, String> {
    if (1..=IN_FLIGHT_MAX).contains(&n) {
        Ok(n)
    } else {
        Err(format!("max_in_flight: {n} is outside 1..={IN_FLIGHT_MAX}"))
    }
}

/// How to replay.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// Node addresses (host:port); requests go to the first that answers, then the next.
    pub targets: Vec<String>,
    /// Trace milliseconds per wall millisecond (60: an hour in a minute).
    pub speed: f64,
    /// Most requests in flight at once.
    pub max_in_flight: usize,
    /// Mixed into every request id (0: send the trace's ids as written). Replaying the same
    /// trace twice against one cluster with the same ids returns the first answers.
    pub salt: u64,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// How long one request may take before it counts as `DEADLINE_EXCEEDED`.
    pub request_timeout: Duration,
    /// How long an event waits for the event it refers to, after its own scheduled time.
    pub dependency_wait: Duration,
    /// Hospitals whose bed occupancy is sampled over the day (the busiest in the trace).
    pub occupancy_hospitals: usize,
    /// The schedule day the trace's absolute slot windows are moved onto (see [`SlotDay`]).
    pub slot_day: SlotDay,
    /// Trace time between occupancy samples, ms.
    pub occupancy_every_ms: u64,
    /// TLS towards the targets (`ninety --cacert`); `None`: plain HTTP/2.
    pub tls: Option<ninety_client::ClientTls>,
    /// Bearer token for every call (`ninety --token-file`).
    pub token: Option<String>,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            targets: Vec::new(),
            speed: 60.0,
            max_in_flight: 512,
            salt: 0,
            progress: true,
            request_timeout: Duration::from_secs(10),
            dependency_wait: Duration::from_secs(10),
            occupancy_hospitals: 8,
            occupancy_every_ms: 60_000,
            slot_day: SlotDay::Discover,
            tls: None,
            token: None,
        }
    }
}

/// Which day the trace's slot windows (`window_start_ms`, `window_end_ms`) search. A trace
/// is written for one schedule day ([`trace_slot_day`]: the GBA scenario's 2026-11-24); a
/// cluster started with `region = "gba"` publishes its schedules for the next clinic day
/// after its founding node's clock, so the windows are moved by whole days onto the
/// cluster's day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotDay {
    /// Ask the cluster (one `FindSlots` for the earliest open slot, [`discover_slot_day`]);
    /// as written when it has none.
    Discover,
    /// Send the windows as written.
    AsWritten,
    /// The UTC day starting at this Unix ms (00:00 UTC).
    At(u64),
}

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
}

/// The result of sending one event.
pub type Answer = Result<Produced, String>;

/// The one place that speaks the wire API: a [`ninety_client::Client`] of the target nodes
/// (the last answering node first, leader hints followed, retries of the *same* message,
/// so the request id keeps a retry safe), configured for open-loop replay: a call gives up
/// within the replay's request timeout instead of the client's interactive defaults.
#[derive(Clone)]
pub struct Conn {
    client: ninety_client::Client,
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

    /// The client, for calls the replay makes besides the trace's (discovery).
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

fn urgency(u: Urgency) -> i32 {
    (match u {
        Urgency::P1 => pb::Urgency::P1,
        Urgency::P2 => pb::Urgency::P2,
        Urgency::P3 => pb::Urgency::P3,
        Urgency::P4 => pb::Urgency::P4,
    }) as i32
}

fn mode(m: Mode) -> i32 {
    (match m {
        Mode::Any => pb::Mode::Unspecified,
        Mode::InPerson => pb::Mode::InPerson,
        Mode::Remote => pb::Mode::Remote,
    }) as i32
}

fn channel(c: Channel) -> i32 {
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

fn window(start: u64, end: u64) -> Option<pb::TimeRange> {
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

fn candidate(p: &mut Produced, c: Option<&pb::Candidate>) {
    if let Some(c) = c {
        p.hospital = c.hospital_id;
        p.doctor = c.doctor_id;
        p.travel_minutes = Some(c.travel_minutes);
        p.tier = tier_from_pb(c.tier);
        p.matched = true;
    }
}

/// Sends one op (its references already resolved) and reads what it produced.
async fn send(
    conn: &Conn,
    op: &Op,
    request_id: String,
    resolve: &(dyn Fn(Ref, bool) -> u64 + Sync),
) -> Result<Produced, tonic::Status> {
    let id = |r: Ref| resolve(r, false);
    let mut p = Produced::default();
    match op {
        Op::MatchSpecialist {
            from_hospital,
            specialty,
            urgency: u,
            mode: m,
            window_start_ms,
            window_end_ms,
            max_travel_minutes,
            channel: c,
            limit,
        } => {
            let r = conn
                .client
                .match_specialist(pb::MatchSpecialistRequest {
                    from_hospital_id: *from_hospital,
                    specialty: specialty.clone(),
                    sub_specialty: String::new(),
                    urgency: urgency(*u),
                    mode: mode(*m),
                    window: window(*window_start_ms, *window_end_ms),
                    max_travel_minutes: *max_travel_minutes,
                    min_tier: 0,
                    channel: channel(*c),
                    limit: *limit,
                    consistency: pb::ReadConsistency::Local as i32,
                    ..Default::default()
                })
                .await?;
            candidate(&mut p, r.candidates.first());
        }
        Op::AllocateSlot {
            patient,
            from_hospital,
            specialty,
            urgency: u,
            mode: m,
            window_start_ms,
            window_end_ms,
            max_travel_minutes,
            ttl_ms,
            channel: c,
            referral,
        } => {
            let r = conn
                .client
                .allocate_slot(pb::AllocateSlotRequest {
                    request_id,
                    patient_ref: patient.clone(),
                    from_hospital_id: *from_hospital,
                    specialty: specialty.clone(),
                    sub_specialty: String::new(),
                    urgency: urgency(*u),
                    mode: mode(*m),
                    window: window(*window_start_ms, *window_end_ms),
                    max_travel_minutes: *max_travel_minutes,
                    min_tier: 0,
                    ttl_ms: *ttl_ms,
                    channel: channel(*c),
                    referral_id: referral.map_or(0, id),
                    ..Default::default()
                })
                .await?;
            candidate(&mut p, r.chosen.as_ref());
            if let Some(b) = r.booking {
                p.id = b.hold_id;
                p.hospital = b.hospital_id;
                p.doctor = b.doctor_id;
                p.matched = true;
            }
        }
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
                    slot_id: id(*slot),
                    patient_ref: patient.clone(),
                    ttl_ms: *ttl_ms,
                    channel: channel(*c),
                    referral_id: 0,
                })
                .await?;
            if let Some(b) = r.booking {
                p.id = b.hold_id;
                p.hospital = b.hospital_id;
                p.doctor = b.doctor_id;
            }
        }
        Op::BookSlot { hold } => {
            conn.client
                .book_slot(pb::BookSlotRequest {
                    request_id,
                    hold_id: id(*hold),
                })
                .await?;
            p.id = id(*hold);
        }
        Op::CancelBooking { hold, reason } => {
            conn.client
                .cancel_booking(pb::CancelBookingRequest {
                    request_id,
                    hold_id: id(*hold),
                    reason: reason.clone(),
                })
                .await?;
        }
        Op::MarkNoShow { hold } => {
            conn.client
                .mark_no_show(pb::MarkNoShowRequest {
                    request_id,
                    hold_id: id(*hold),
                })
                .await?;
        }
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
                    request_id,
                    ward_id: *ward,
                    bed_id: *bed,
                    patient_ref: patient.clone(),
                    ttl_ms: *ttl_ms,
                    urgency: urgency(*u),
                    channel: channel(*c),
                    referral_id: referral.map_or(0, id),
                })
                .await?;
            if let Some(h) = r.hold {
                p.id = h.hold_id;
                p.hospital = h.hospital_id;
            }
        }
        Op::AllocateBed {
            patient,
            from_hospital,
            specialty,
            urgency: u,
            max_travel_minutes,
            min_tier,
            ttl_ms,
            channel: c,
            referral,
        } => {
            let r = conn
                .client
                .allocate_bed(pb::AllocateBedRequest {
                    request_id,
                    patient_ref: patient.clone(),
                    from_hospital_id: *from_hospital,
                    specialty: specialty.clone(),
                    urgency: urgency(*u),
                    max_travel_minutes: *max_travel_minutes,
                    min_tier: min_tier.map_or(0, tier_pb),
                    ttl_ms: *ttl_ms,
                    channel: channel(*c),
                    referral_id: referral.map_or(0, id),
                    ..Default::default()
                })
                .await?;
            candidate(&mut p, r.chosen.as_ref());
            if let Some(h) = r.hold {
                p.id = h.hold_id;
                p.hospital = h.hospital_id;
                p.matched = true;
            }
        }
        Op::ConfirmHold { hold } => {
            conn.client
                .confirm_hold(pb::ConfirmHoldRequest {
                    request_id,
                    hold_id: id(*hold),
                })
                .await?;
        }
        Op::ReleaseHold { hold, reason } => {
            conn.client
                .release_hold(pb::ReleaseHoldRequest {
                    request_id,
                    hold_id: id(*hold),
                    reason: reason.clone(),
                })
                .await?;
        }
        Op::GetHold { hold } => {
            conn.client
                .get_hold(pb::GetHoldRequest {
                    hold_id: id(*hold),
                    consistency: pb::ReadConsistency::Local as i32,
                })
                .await?;
        }
        Op::WardAvailability { hospital } => {
            conn.occupancy(*hospital).await?;
        }
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
                    consult_id: id(*consult),
                })
                .await?;
        }
        Op::ReleaseJointConsult { consult, reason } => {
            conn.client
                .release_joint_consult(pb::ReleaseJointConsultRequest {
                    request_id,
                    consult_id: id(*consult),
                    reason: reason.clone(),
                })
                .await?;
        }
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
                    referral_id: id(*referral),
                    urgency: urgency(*u),
                    specialty: specialty.clone(),
                    note: String::new(),
                })
                .await?;
        }
        Op::MatchReferral {
            referral,
            bed_hold,
            slot_hold,
            to_hospital,
            hold_ttl_ms,
            max_travel_minutes,
        } => {
            let r = conn
                .client
                .match_referral(pb::MatchReferralRequest {
                    request_id,
                    referral_id: id(*referral),
                    to_hospital_id: *to_hospital,
                    hold_ttl_ms: *hold_ttl_ms,
                    max_travel_minutes: *max_travel_minutes,
                    bed_hold_id: bed_hold.map_or(0, id),
                    slot_hold_id: slot_hold.map_or(0, id),
                })
                .await?;
            if let Some(r) = r.referral {
                p.id = r.referral_id;
                candidate(&mut p, r.matched.as_ref());
                p.hospital = r.to_hospital_id;
                p.matched = r.to_hospital_id != 0;
            }
        }
        Op::AcceptReferral { referral, hospital } => {
            conn.client
                .accept_referral(pb::AcceptReferralRequest {
                    request_id,
                    referral_id: id(*referral),
                    hospital_id: resolve(*hospital, true) as u32,
                })
                .await?;
        }
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
                    referral_id: id(*referral),
                    eta_ms: now + eta_after_ms,
                })
                .await?;
        }
        Op::AdmitReferral { referral } => {
            conn.client
                .admit_referral(pb::AdmitReferralRequest {
                    request_id,
                    referral_id: id(*referral),
                })
                .await?;
        }
        Op::CompleteReferral { referral, outcome } => {
            conn.client
                .complete_referral(pb::CompleteReferralRequest {
                    request_id,
                    referral_id: id(*referral),
                    outcome: outcome.clone(),
                })
                .await?;
        }
        Op::CancelReferral { referral, reason } => {
            conn.client
                .cancel_referral(pb::CancelReferralRequest {
                    request_id,
                    referral_id: id(*referral),
                    reason: reason.clone(),
                })
                .await?;
        }
    }
    Ok(p)
}

/// Request ids as sent: the trace's, or mixed with the run's salt.
pub fn salted(request_id: &str, salt: u64) -> String {
    if salt == 0 {
        return request_id.to_string();
    }
    // FNV-1a over the id, then two SplitMix64 outputs: 32 hex digits.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in request_id.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut r = ninety_engine::generate::SplitMix64::new(h ^ salt);
    format!("{:016x}{:016x}", r.next_u64(), r.next_u64())
}

struct Shared {
    conn: Conn,
    /// Added to the trace's slot windows (see [`SlotDay`]).
    time_shift_ms: i64,
    results: Mutex<HashMap<u64, Option<Produced>>>,
    done: Notify,
    collector: Mutex<Collector>,
    opts: ReplayOptions,
}

impl Shared {
    /// Waits until every event `e` refers to is answered; None if one failed or timed out.
    async fn dependencies(&self, e: &Event) -> Result<HashMap<u64, Produced>, &'static str> {
        let deadline = tokio::time::Instant::now() + self.opts.dependency_wait;
        let mut got = HashMap::new();
        for r in e.op.refs() {
            let Some(target) = r.event() else { continue };
            loop {
                let notified = self.done.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let seen = self
                    .results
                    .lock()
                    .ok()
                    .and_then(|m| m.get(&target).copied());
                match seen {
                    Some(Some(p)) => {
                        got.insert(target, p);
                        break;
                    }
                    Some(None) => return Err("SKIPPED/DEPENDENCY_FAILED"),
                    None => {
                        if tokio::time::timeout_at(deadline, notified).await.is_err() {
                            return Err("SKIPPED/DEPENDENCY_PENDING");
                        }
                    }
                }
            }
        }
        Ok(got)
    }

    async fn run_event(&self, e: &Event) -> Answer {
        let deps = self.dependencies(e).await.map_err(str::to_string)?;
        let resolve = |r: Ref, hospital: bool| match r {
            Ref::Id(id) => id,
            Ref::Event { event } => deps.get(&event).map_or(0, |p| {
                if hospital {
                    u64::from(p.hospital)
                } else {
                    p.id
                }
            }),
        };
        let request_id = salted(&e.request_id, self.opts.salt);
        let op = shift_op(&e.op, self.time_shift_ms);
        // The client retries (same request id) within the request timeout; this bound is
        // only a backstop for a call stuck in transport.
        let call = send(&self.conn, &op, request_id, &resolve);
        match tokio::time::timeout(self.opts.request_timeout + Duration::from_secs(1), call).await {
            Err(_) => Err("DEADLINE_EXCEEDED/CLIENT_TIMEOUT".into()),
            Ok(Ok(p)) => Ok(p),
            Ok(Err(s)) if s.code() == tonic::Code::DeadlineExceeded => {
                Err(format!("DEADLINE_EXCEEDED/CLIENT_TIMEOUT|{}", s.message()))
            }
            Ok(Err(s)) => Err(format!("{}|{}", error_kind(&s), s.message())),
        }
    }
}

/// Moves an op's absolute slot windows by `shift_ms` (see [`ReplayOptions::time_shift_ms`]).
pub fn shift_op(op: &Op, shift_ms: i64) -> Op {
    let mut op = op.clone();
    if shift_ms == 0 {
        return op;
    }
    let at = |t: &mut u64| *t = t.saturating_add_signed(shift_ms);
    match &mut op {
        Op::MatchSpecialist {
            window_start_ms,
            window_end_ms,
            ..
        }
        | Op::AllocateSlot {
            window_start_ms,
            window_end_ms,
            ..
        }
        | Op::HoldJointConsult {
            window_start_ms,
            window_end_ms,
            ..
        } => {
            at(window_start_ms);
            at(window_end_ms);
        }
        _ => {}
    }
    op
}

/// The UTC day (its 00:00, Unix ms) a trace's slot windows search: the day of the earliest
/// window start in the trace; `None` when no event has a window.
pub fn trace_slot_day(trace: &Trace) -> Option<u64> {
    const MS_PER_DAY: u64 = 24 * 60 * 60 * 1000;
    trace
        .events
        .iter()
        .filter_map(|e| match &e.op {
            Op::MatchSpecialist {
                window_start_ms, ..
            }
            | Op::AllocateSlot {
                window_start_ms, ..
            }
            | Op::HoldJointConsult {
                window_start_ms, ..
            } => Some(*window_start_ms),
            _ => None,
        })
        .min()
        .map(|t| t / MS_PER_DAY * MS_PER_DAY)
}

/// The UTC day (00:00, Unix ms) of the earliest open slot the cluster offers from now to
/// three days ahead (one `Scheduling.FindSlots`), or `None` when it has none.
pub async fn discover_slot_day(conn: &Conn) -> Result<Option<u64>, String> {
    const MS_PER_DAY: u64 = 24 * 60 * 60 * 1000;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let r = conn
        .client
        .find_slots(pb::FindSlotsRequest {
            window: window(now, now + 3 * MS_PER_DAY),
            limit: 1,
            consistency: pb::ReadConsistency::Local as i32,
            ..Default::default()
        })
        .await
        .map_err(|s| format!("discovering the schedule day (FindSlots): {}", s.message()))?;
    Ok(r.slots
        .first()
        .map(|s| s.start_ms / MS_PER_DAY * MS_PER_DAY))
}

/// How far to move the trace's slot windows for `day` (whole days; 0 when either day is
/// unknown).
async fn time_shift(trace: &Trace, day: SlotDay, conn: &Conn) -> Result<i64, String> {
    let Some(from) = trace_slot_day(trace) else {
        return Ok(0);
    };
    let to = match day {
        SlotDay::AsWritten => return Ok(0),
        SlotDay::At(ms) => ms,
        SlotDay::Discover => match discover_slot_day(conn).await? {
            Some(d) => d,
            None => return Ok(0),
        },
    };
    // In i128: a trace may carry any u64 window (the replayer sends it as written).
    let shift = i128::from(to) - i128::from(from);
    Ok(shift.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
}

/// Replays a trace against a running cluster and collects what happened.
///
/// `region` (the trace's preset, if known) gives hospital names and tiers to the report.
pub async fn replay(
    trace: &Trace,
    opts: &ReplayOptions,
    region: Option<&ninety_engine::region_file::RegionFile>,
) -> Result<ReplayResult, String> {
    if opts.targets.is_empty() {
        return Err("no target address".into());
    }
    check_speed(opts.speed)?;
    check_max_in_flight(opts.max_in_flight)?;
    trace.check_span()?;
    let conn = Conn::new(
        &opts.targets,
        opts.request_timeout,
        opts.tls.clone(),
        opts.token.clone(),
    )?;
    let time_shift_ms = time_shift(trace, opts.slot_day, &conn).await?;
    let mut collector = Collector::new(trace, opts, region);
    let watched = collector.busiest_hospitals(trace, opts.occupancy_hospitals);
    let sample_every_ms = collector.occupancy_every_ms(opts.occupancy_every_ms);
    let shared = Arc::new(Shared {
        conn,
        time_shift_ms,
        results: Mutex::new(HashMap::with_capacity(trace.events.len())),
        done: Notify::new(),
        collector: Mutex::new(std::mem::take(&mut collector)),
        opts: opts.clone(),
    });
    let bar = if opts.progress {
        let b = indicatif::ProgressBar::new(trace.events.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} requests {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let permits = Arc::new(Semaphore::new(opts.max_in_flight.max(1)));
    let start = tokio::time::Instant::now();
    let wall_start = Instant::now();
    // Occupancy sampler: its own task, on trace time.
    let sampler = {
        let shared = shared.clone();
        let every = sample_every_ms;
        let speed = opts.speed;
        let last_ms = trace.events.last().map_or(0, |e| e.at_ms);
        tokio::spawn(async move {
            let mut trace_ms = 0u64;
            loop {
                let due = start + Duration::from_secs_f64(trace_ms as f64 / speed / 1000.0);
                tokio::time::sleep_until(due).await;
                for &h in &watched {
                    if let Ok(o) = shared.conn.occupancy(h).await {
                        if let Ok(mut c) = shared.collector.lock() {
                            c.occupancy_sample(h, trace_ms, o);
                        }
                    }
                }
                if trace_ms >= last_ms {
                    break;
                }
                trace_ms = (trace_ms + every).min(last_ms);
            }
        })
    };
    let mut tasks = tokio::task::JoinSet::new();
    for e in &trace.events {
        let due = start + Duration::from_secs_f64(e.at_ms as f64 / opts.speed / 1000.0);
        tokio::time::sleep_until(due).await;
        let scheduled_wall = wall_start + due.duration_since(start);
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            if let Ok(mut m) = shared.results.lock() {
                m.insert(e.id, None);
            }
            shared.done.notify_waiters();
            if let Ok(mut c) = shared.collector.lock() {
                c.record(e, None, Err("CLIENT_OVERLOAD".into()));
            }
            bar.inc(1);
            continue;
        };
        let shared = shared.clone();
        let e = e.clone();
        let bar = bar.clone();
        tasks.spawn(async move {
            let answer = shared.run_event(&e).await;
            let latency = Instant::now().saturating_duration_since(scheduled_wall);
            if let Ok(mut m) = shared.results.lock() {
                m.insert(e.id, answer.as_ref().ok().copied());
            }
            shared.done.notify_waiters();
            let sent = !matches!(&answer, Err(k) if k.starts_with("SKIPPED/"));
            if let Ok(mut c) = shared.collector.lock() {
                c.record(&e, sent.then_some(latency), answer);
            }
            bar.inc(1);
            drop(permit);
        });
        // Reap finished tasks as we go so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let _ = sampler.await;
    bar.finish_and_clear();
    let wall = wall_start.elapsed();
    let collector = shared
        .collector
        .lock()
        .map(|mut c| std::mem::take(&mut *c))
        .map_err(|_| "collector poisoned".to_string())?;
    Ok(collector.finish(wall))
}
