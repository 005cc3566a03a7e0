//! `ninety.v1.Referrals`: the referral lifecycle, one referral with its history, and the
//! worklist.
//!
//! Mapping to the engine (documented for clients in `referrals.proto` / the API docs):
//! * `RequestReferral` is the engine's `RequestReferralWith`: origin, destination
//!   (`to_hospital_id`, 0 for none), direction, `reason_code` and `note` are stored (the
//!   engine's `referrals::{check_code, check_note}` rules, checked here first so a bad one
//!   costs no log entry). `specialty`, `urgency`, `mode` and `needs_bed` are checked and not
//!   stored (a referral reports its specialty and urgency once triaged, `mode` unspecified,
//!   `needs_bed` true when it holds a bed). `ttl_ms` must be 0: the region's
//!   `referral_ttl_ms` applies.
//! * `TriageReferral` with `URGENCY_UNSPECIFIED` or an empty specialty keeps the current
//!   value, read (linearizably) before the write; refused when there is none yet. Its
//!   `note` goes into the history (`TriageReferralNoted`).
//! * `MatchReferral` attaches pending holds (`bed_hold_id`, `slot_hold_id`); choosing a
//!   hospital inside the call is not implemented (its fields must be 0).
//! * `CompleteReferral`'s `outcome` is stored (`CompleteReferralWith`).
//! * `hospital_id` of ReportNoCapacity / AcceptReferral / RejectReferral and `eta_ms` of
//!   StartTransit are checked and not stored; the history names the acting side instead.
//! * A referral that found no capacity stays `TRIAGED` in the engine with the reason; the
//!   API reports it as `REFERRAL_STATE_NO_CAPACITY`.
//! * Worklist pages are ranges of referral ids (`after_referral_id`); within a page the
//!   referrals are sorted most urgent first, then oldest first. `hospital_id` 0 pages the
//!   whole region. What a page holds is the engine's rule (`ninety_engine::read::referrals`).
//! * A referral reports its current reason (`reason`, `reason_note`) and, per history step,
//!   the log index, the actor, the reason and the step's code or note.
//! * `Reach` answers from the published view, like matching (`ninety_engine::read::matching`).

use super::convert::{self, Field};
use super::{bad, local, Cluster, Deadline, READ_TIMEOUT, WRITE_TIMEOUT};
use ninety_engine::read::referrals::StepInfo;
use ninety_engine::read::{Answer, Query, ReasonKind, Record, ReferralInfo, WorklistQuery};
use ninety_engine::referrals::{check_code, check_note};
use ninety_engine::{Command, HoldId, HospitalId, ReferralId, Rejection, Request, RequestId};
use ninety_proto::v1 as pb;
use ninety_proto::v1::referrals_server::Referrals;
use std::sync::Arc;
use tonic::{Request as GrpcRequest, Response, Status};

/// Worklist page size when the request says 0.
pub const WORKLIST_LIMIT_DEFAULT: usize = 50;

/// The Referrals service.
pub struct ReferralsService {
    pub cluster: Arc<Cluster>,
}

/// The wire form of a referral.
pub fn referral_pb(info: &ReferralInfo) -> pb::Referral {
    let r = &info.referral;
    let history = info.history.iter().map(step_pb).collect();
    pb::Referral {
        referral_id: r.id.0,
        patient_ref: r.patient.to_string(),
        from_hospital_id: r.from.0,
        to_hospital_id: info.to_hospital.map_or(0, |h| h.0),
        specialty: r.specialty.map(convert::specialty_name).unwrap_or_default(),
        urgency: convert::urgency_pb(r.urgency) as i32,
        mode: pb::Mode::Unspecified as i32,
        state: convert::stage_pb(info.stage) as i32,
        needs_bed: r.bed_hold.is_some(),
        bed_hold_id: r.bed_hold.map_or(0, |h| h.0),
        slot_hold_id: r.slot_hold.map_or(0, |h| h.0),
        reason_code: r.reason_code.clone().unwrap_or_default(),
        created_ms: r.created_at.0,
        updated_ms: info.updated.0,
        expires_ms: if r.state.is_final() { 0 } else { r.deadline.0 },
        eta_ms: 0,
        history,
        matched: None,
        reason: info.reason.name().to_string(),
        reason_note: reason_note(&r.reason),
        direction: convert::direction_pb(r.kind) as i32,
        note: r.note.clone().unwrap_or_default(),
        outcome: r.outcome.clone().unwrap_or_default(),
        remote: info.remote.as_ref().map(remote_pb),
    }
}

/// The wire form of a referral's bed in another region.
fn remote_pb(b: &ninety_engine::remote::RemoteBed) -> pb::RemoteBed {
    use ninety_engine::remote::RemoteStage as S;
    use pb::RemoteBedStage as P;
    let stage = match b.stage {
        S::Holding => P::Holding,
        S::Held => P::Held,
        S::Confirming => P::Confirming,
        S::Confirmed => P::Confirmed,
        S::Releasing => P::Releasing,
        S::Released => P::Released,
    };
    pb::RemoteBed {
        region: b.region.clone(),
        ward_id: b.ward.0,
        ttl_ms: b.ttl_ms,
        attempt: b.attempt,
        stage: stage as i32,
        hold_id: b.hold.map_or(0, |h| h.0),
        since_ms: b.since.0,
        stuck_reason: b.stuck.clone().unwrap_or_default(),
    }
}

/// `HoldRemoteBed`: every field checked here, so a bad one costs no log entry. The
/// internal commands of the saga (`RecordRemote`, `HoldBedForRegion`) have no client call:
/// only the node's driver (`runtime::remote_driver`) proposes them.
fn hold_remote_bed(r: &pb::HoldRemoteBedRequest) -> Result<Request, Rejection> {
    use ninety_engine::limits::{HOLD_TTL_MS_MAX, HOLD_TTL_MS_MIN};
    let at = Field::top();
    let id = super::parse_request_id(&at, "request_id", &r.request_id)?;
    let referral = ReferralId(at.id("referral_id", r.referral_id)?);
    if !ninety_engine::remote::is_region_key(&r.region) {
        return Err(at.invalid(
            "region",
            format!(
                "{}: must be 1 to {} lowercase letters, digits, - or _",
                convert::echo(&r.region),
                ninety_engine::limits::REGION_KEY_BYTES_MAX
            ),
        ));
    }
    let ward = ninety_engine::WardId(at.id("ward_id", r.ward_id)?);
    if !(HOLD_TTL_MS_MIN..=HOLD_TTL_MS_MAX).contains(&r.ttl_ms) {
        return Err(at.invalid(
            "ttl_ms",
            format!("must be {HOLD_TTL_MS_MIN} to {HOLD_TTL_MS_MAX} ms"),
        ));
    }
    Ok(Request {
        id,
        command: Command::HoldRemoteBed {
            referral,
            region: r.region.clone(),
            ward,
            ttl_ms: r.ttl_ms,
        },
    })
}

/// One history step on the wire: the step's own code, else its reason's text.
fn step_pb(s: &StepInfo) -> pb::ReferralEvent {
    pb::ReferralEvent {
        state: convert::stage_pb(s.stage) as i32,
        at_ms: s.step.at.0,
        hospital_id: s.hospital.map_or(0, |h| h.0),
        note: s
            .step
            .note
            .clone()
            .unwrap_or_else(|| reason_note(&s.step.reason)),
        log_index: s.step.index,
        actor: s
            .step
            .actor
            .map(|a| a.name().to_string())
            .unwrap_or_default(),
        reason: s.reason.name().to_string(),
    }
}

/// The text of a referral's reason, empty for the reasons that have none.
fn reason_note(reason: &ninety_engine::ReferralReason) -> String {
    use ninety_engine::ReferralReason as R;
    match reason {
        R::NoCapacity(text) | R::Stated(text) => text.clone(),
        R::HoldExpired(hold) => format!("hold {} expired", hold.0),
        R::Remote { region, note } => format!("region {region}: {note}"),
        R::AwaitingTriage | R::AwaitingMatch | R::DeadlinePassed => String::new(),
    }
}

/// An optional code field (`reason_code`, `outcome`): empty is none.
fn opt_code(field: &str, code: &str) -> Result<Option<String>, Rejection> {
    if code.is_empty() {
        return Ok(None);
    }
    check_code(field, code)?;
    Ok(Some(code.to_string()))
}

/// An optional note: empty is none.
fn opt_note(field: &str, note: &str) -> Result<Option<String>, Rejection> {
    if note.is_empty() {
        return Ok(None);
    }
    check_note(field, note)?;
    Ok(Some(note.to_string()))
}

fn request_referral(r: &pb::RequestReferralRequest) -> Result<Request, Rejection> {
    let at = Field::top();
    let id = super::parse_request_id(&at, "request_id", &r.request_id)?;
    let patient = at.patient("patient_ref", &r.patient_ref)?;
    let from = HospitalId(at.id("from_hospital_id", r.from_hospital_id)?);
    at.opt_specialty("specialty", &r.specialty)?;
    at.opt_urgency("urgency", r.urgency)?;
    at.opt_mode("mode", r.mode)?;
    at.unsupported(
        "ttl_ms",
        &r.ttl_ms,
        "the region's referral_ttl_ms applies; send 0",
    )?;
    Ok(Request {
        id,
        command: Command::RequestReferralWith {
            from,
            to: at.opt_id(r.to_hospital_id).map(HospitalId),
            patient,
            direction: at.direction("direction", r.direction)?,
            reason_code: opt_code("reason_code", &r.reason_code)?,
            note: opt_note("note", &r.note)?,
        },
    })
}

fn match_referral(r: &pb::MatchReferralRequest) -> Result<Request, Rejection> {
    let at = Field::top();
    let id = super::parse_request_id(&at, "request_id", &r.request_id)?;
    let referral = ReferralId(at.id("referral_id", r.referral_id)?);
    let why = "choosing inside MatchReferral is not implemented; allocate first and pass bed_hold_id / slot_hold_id";
    at.unsupported("to_hospital_id", &r.to_hospital_id, why)?;
    at.unsupported("hold_ttl_ms", &r.hold_ttl_ms, why)?;
    at.unsupported("max_travel_minutes", &r.max_travel_minutes, why)?;
    let bed_hold = at.opt_id(r.bed_hold_id).map(HoldId);
    let slot_hold = at.opt_id(r.slot_hold_id).map(HoldId);
    if bed_hold.is_none() && slot_hold.is_none() {
        return Err(at.invalid("bed_hold_id", "name a bed hold, a slot hold or both"));
    }
    Ok(Request {
        id,
        command: Command::MatchReferral {
            referral,
            slot_hold,
            bed_hold,
        },
    })
}

fn worklist_query(r: &pb::WorklistRequest) -> Result<WorklistQuery, Rejection> {
    let at = Field::top();
    let hospital = at.opt_id(r.hospital_id).map(HospitalId);
    let (incoming, outgoing) = match pb::WorklistDirection::try_from(r.direction) {
        Ok(pb::WorklistDirection::Incoming) => (true, false),
        Ok(pb::WorklistDirection::Outgoing) => (false, true),
        Ok(pb::WorklistDirection::Both | pb::WorklistDirection::Unspecified) => (true, true),
        Err(_) => return Err(at.invalid("direction", format!("unknown direction {}", r.direction))),
    };
    let stages = r
        .states
        .iter()
        .enumerate()
        .map(|(i, s)| at.stage(&format!("states.{i}"), *s))
        .collect::<Result<Vec<_>, _>>()?;
    let reasons = r
        .reasons
        .iter()
        .enumerate()
        .map(|(i, name)| {
            ReasonKind::parse(name).ok_or_else(|| {
                at.invalid(&format!("reasons.{i}"), format!("unknown reason {name:?}"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let urgencies = r
        .urgencies
        .iter()
        .enumerate()
        .map(|(i, u)| at.urgency(&format!("urgencies.{i}"), *u))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(WorklistQuery {
        hospital,
        incoming,
        outgoing,
        stages,
        reasons,
        urgencies,
        after: ReferralId(r.after_referral_id),
        limit: at.limit(
            "limit",
            r.limit,
            WORKLIST_LIMIT_DEFAULT,
            ninety_engine::limits::WORKLIST_LIMIT_MAX,
        )?,
    })
}

/// The origin and the bound of a reach query.
fn reach_ask(r: &pb::ReachRequest) -> Result<(HospitalId, u32), Rejection> {
    let at = Field::top();
    let from = HospitalId(at.id("from_hospital_id", r.from_hospital_id)?);
    let minutes = r.max_travel_minutes;
    if !(1..=ninety_engine::limits::TRAVEL_MINUTES_MAX).contains(&minutes) {
        return Err(at.invalid(
            "max_travel_minutes",
            format!("must be 1 to {}", ninety_engine::limits::TRAVEL_MINUTES_MAX),
        ));
    }
    Ok((from, minutes))
}

/// Request id and referral id of a lifecycle call.
fn ids(request_id: &str, referral_id: u64) -> Result<(RequestId, ReferralId), Status> {
    let at = Field::top();
    let id = super::parse_request_id(&at, "request_id", request_id).map_err(bad)?;
    let referral = at.id("referral_id", referral_id).map_err(bad)?;
    Ok((id, ReferralId(referral)))
}

impl ReferralsService {
    async fn write(
        &self,
        request: Request,
        deadline: Deadline,
    ) -> Result<Response<pb::ReferralResponse>, Status> {
        let (w, _) = self.cluster.write_ok(&request, deadline).await?;
        let referral = match &w.applied.record {
            Some(Record::Referral(r)) => referral_pb(r),
            _ => return Err(Status::internal("the write's answer carries no referral")),
        };
        Ok(Response::new(pb::ReferralResponse {
            referral: Some(referral),
            commit: Some(w.commit()),
        }))
    }

    async fn lookup(
        &self,
        id: ReferralId,
        local: bool,
        deadline: Deadline,
    ) -> Result<(ReferralInfo, u64), Status> {
        let (result, index) = self
            .cluster
            .read(&Query::Referral(id), local, deadline)
            .await?;
        match result {
            Answer::Referral(Some(r)) => Ok((r, index)),
            Answer::Referral(None) => Err(bad(Rejection::UnknownReferral(id))),
            _ => Err(Status::internal("unexpected query result")),
        }
    }
}

#[tonic::async_trait]
impl Referrals for ReferralsService {
    async fn request_referral(
        &self,
        request: GrpcRequest<pb::RequestReferralRequest>,
    ) -> Result<Response<pb::ReferralResponse>, Status> {
        let deadline = Deadline::of(&request, WRITE_TIMEOUT);
        let request = request_referral(request.get_ref()).map_err(bad)?;
        self.write(request, deadline).await
    }

    async fn triage_referral(
        &self,
        request: GrpcRequest<pb::TriageReferralRequest>,
    ) -> Result<Response<pb::ReferralResponse>, Status> {
        let deadline = Deadline::of(&request, WRITE_TIMEOUT);
        let r = request.into_inner();
        let at = Field::top();
        let (id, referral) = ids(&r.request_id, r.referral_id)?;
        let note = opt_note("note", &r.note).map_err(bad)?;
        let mut urgency = at.opt_urgency("urgency", r.urgency).map_err(bad)?;
        let mut specialty = at.opt_specialty("specialty", &r.specialty).map_err(bad)?;
        if urgency.is_none() || specialty.is_none() {
            let (current, _) = self.lookup(referral, false, deadline).await?;
            urgency = urgency.or(current.referral.urgency);
            specialty = specialty.or(current.referral.specialty);
        }
        let urgency = urgency
            .ok_or_else(|| bad(at.invalid("urgency", "required: the referral has none yet")))?;
        let specialty = specialty
            .ok_or_else(|| bad(at.invalid("specialty", "required: the referral has none yet")))?;
        let command = match note {
            Some(note) => Command::TriageReferralNoted {
                referral,
                specialty,
                urgency,
                note,
            },
            None => Command::TriageReferral {
                referral,
                specialty,
                urgency,
            },
        };
        let request = Request { id, command };
        self.write(request, deadline).await
    }

    async fn match_referral(
        &self,
        request: GrpcRequest<pb::MatchReferralRequest>,
    ) -> Result<Response<pb::ReferralResponse>, Status> {
        let deadline = Deadline::of(&request, WRITE_TIMEOUT);
        let request = match_referral(request.get_ref()).map_err(bad)?;
        self.write(request, deadline).await
    }

    async fn hold_remote_bed(
        &self,
        request: GrpcRequest<pb::HoldRemoteBedRequest>,
    ) -> Result<Response<pb::ReferralResponse>, Status> {
        let deadline = Deadline::of(&request, WRITE_TIMEOUT);
        let request = hold_remote_bed(request.get_ref()).map_err(bad)?;
        self.write(request, deadline).await
    }

    async fn report_no_capacity(
        &self,
        request: GrpcRequest<pb::ReportNoCapacityRequest>,
    ) -> Result<Response<pb::ReferralResponse>, Status> {
        let deadline = Deadline::of(&request, WRITE_TIMEOUT);
        let r = request.into_inner();
        let (id, referral) = ids(&r.request_id, r.referral_id)?;
        Field::top().text("reason", &r.reason).map_err(bad)?;
        let request = Request {
            id,
            command: Command::ReportNoCapacity {
                referral,
                reason: r.reason,
            },
        };
        self.write(request, deadline).await
    }

    async fn accept_referral(
        &self,
        request: GrpcRequest<pb::AcceptReferralRequest>,
    ) -> Result<Response<pb::ReferralResponse>, Status> {
        let deadline = Deadline::of(&request, WRITE_TIMEOUT);
        let r = request.get_ref();
        let (id, referral) = ids(&r.request_id, r.referral_id)?;
        let command = Command::AcceptReferral { referral };
        self.write(Request { id, command }, deadline).await
    }

    async fn start_transit(
        &self,
        request: GrpcRequest<pb::StartTransitRequest>,
    ) -> Result<Response<pb::ReferralResponse>, Status> {
        let deadline = Deadline::of(&request, WRITE_TIMEOUT);
        let r = request.get_ref();
        let (id, referral) = ids(&r.request_id, r.referral_id)?;
        let command = Command::StartTransit { referral };
        self.write(Request { id, command }, deadline).await
    }

    async fn admit_referral(
        &self,
        request: GrpcRequest<pb::AdmitReferralRequest>,
    ) -> Result<Response<pb::ReferralResponse>, Status> {
        let deadline = Deadline::of(&request, WRITE_TIMEOUT);
        let r = request.get_ref();
        let (id, referral) = ids(&r.request_id, r.referral_id)?;
        let command = Command::AdmitReferral { referral };
        self.write(Request { id, command }, deadline).await
    }

    async fn complete_referral(
        &self,
        request: GrpcRequest<pb::CompleteReferralRequest>,
    ) -> Result<Response<pb::ReferralResponse>, Status> {
        let deadline = Deadline::of(&request, WRITE_TIMEOUT);
        let r = request.get_ref();
        let (id, referral) = ids(&r.request_id, r.referral_id)?;
        let command = match opt_code("outcome", &r.outcome).map_err(bad)? {
            Some(outcome) => Command::CompleteReferralWith { referral, outcome },
            None => Command::CompleteReferral { referral },
        };
        self.write(Request { id, command }, deadline).await
    }

    async fn reject_referral(
        &self,
        request: GrpcRequest<pb::RejectReferralRequest>,
    ) -> Result<Response<pb::ReferralResponse>, Status> {
        let deadline = Deadline::of(&request, WRITE_TIMEOUT);
        let r = request.into_inner();
        let (id, referral) = ids(&r.request_id, r.referral_id)?;
        Field::top().text("reason", &r.reason).map_err(bad)?;
        let command = Command::RejectReferral {
            referral,
            reason: r.reason,
        };
        self.write(Request { id, command }, deadline).await
    }

    async fn cancel_referral(
        &self,
        request: GrpcRequest<pb::CancelReferralRequest>,
    ) -> Result<Response<pb::ReferralResponse>, Status> {
        let deadline = Deadline::of(&request, WRITE_TIMEOUT);
        let r = request.into_inner();
        let (id, referral) = ids(&r.request_id, r.referral_id)?;
        Field::top().text("reason", &r.reason).map_err(bad)?;
        let command = Command::CancelReferral {
            referral,
            reason: r.reason,
        };
        self.write(Request { id, command }, deadline).await
    }

    async fn get_referral(
        &self,
        request: GrpcRequest<pb::GetReferralRequest>,
    ) -> Result<Response<pb::GetReferralResponse>, Status> {
        let deadline = Deadline::of(&request, READ_TIMEOUT);
        let r = request.get_ref();
        let id = Field::top().id("referral_id", r.referral_id).map_err(bad)?;
        let (info, index) = self
            .lookup(ReferralId(id), local(r.consistency)?, deadline)
            .await?;
        Ok(Response::new(pb::GetReferralResponse {
            referral: Some(referral_pb(&info)),
            applied_index: index,
        }))
    }

    async fn worklist(
        &self,
        request: GrpcRequest<pb::WorklistRequest>,
    ) -> Result<Response<pb::WorklistResponse>, Status> {
        let deadline = Deadline::of(&request, READ_TIMEOUT);
        let r = request.get_ref();
        let query = worklist_query(r).map_err(bad)?;
        let hospital = query.hospital.unwrap_or(HospitalId(0));
        let (result, index) = self
            .cluster
            .read(&Query::Worklist(query), local(r.consistency)?, deadline)
            .await?;
        let Answer::Worklist(page) = result else {
            return Err(Status::internal("unexpected query result"));
        };
        let (items, next) = page.ok_or_else(|| bad(Rejection::UnknownHospital(hospital)))?;
        Ok(Response::new(pb::WorklistResponse {
            referrals: items.iter().map(referral_pb).collect(),
            next_after_referral_id: next.map_or(0, |n| n.0),
            applied_index: index,
        }))
    }

    async fn reach(
        &self,
        request: GrpcRequest<pb::ReachRequest>,
    ) -> Result<Response<pb::ReachResponse>, Status> {
        let deadline = Deadline::of(&request, READ_TIMEOUT);
        let r = request.into_inner();
        let (from, minutes) = reach_ask(&r).map_err(bad)?;
        let view = self
            .cluster
            .view_read(local(r.consistency)?, deadline)
            .await?;
        let reached = ninety_engine::read::matching::reach(&view, from, minutes)
            .ok_or_else(|| bad(Rejection::UnknownHospital(from)))?;
        let hospitals = reached
            .iter()
            .map(|h| pb::ReachedHospital {
                hospital_id: h.hospital.0,
                travel_minutes: h.travel_minutes,
                tier: convert::tier_pb(h.tier) as i32,
            })
            .collect();
        Ok(Response::new(pb::ReachResponse {
            hospitals,
            applied_index: view.log_index,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(r: Rejection) -> String {
        match r {
            Rejection::Invalid { field, .. } => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn referral_requests_are_checked() {
        let mut r = pb::RequestReferralRequest {
            request_id: "r".into(),
            patient_ref: "4".repeat(32),
            from_hospital_id: 2,
            specialty: "neurology".into(),
            urgency: pb::Urgency::P2 as i32,
            ..Default::default()
        };
        assert!(request_referral(&r).is_ok());
        r.ttl_ms = 1;
        assert_eq!(field_of(request_referral(&r).unwrap_err()), "ttl_ms");
        r.ttl_ms = 0;
        r.specialty = "x".into();
        assert_eq!(field_of(request_referral(&r).unwrap_err()), "specialty");
        r.specialty.clear();
        r.to_hospital_id = 5;
        r.direction = pb::ReferralDirection::Down as i32;
        r.reason_code = "I21.4".into();
        r.note = "bring imaging; family informed".into();
        let Command::RequestReferralWith {
            to,
            direction,
            reason_code,
            note,
            ..
        } = request_referral(&r).unwrap().command
        else {
            panic!("RequestReferral is RequestReferralWith");
        };
        assert_eq!(to, Some(HospitalId(5)));
        assert_eq!(direction, Some(ninety_engine::ReferralKind::DownTier));
        assert_eq!(reason_code.as_deref(), Some("I21.4"));
        assert!(note.is_some());
        r.direction = 7;
        assert_eq!(field_of(request_referral(&r).unwrap_err()), "direction");
        r.direction = 0;
        r.reason_code = "chest pain".into();
        assert_eq!(field_of(request_referral(&r).unwrap_err()), "reason_code");
        r.reason_code = "x".repeat(33);
        assert_eq!(field_of(request_referral(&r).unwrap_err()), "reason_code");
        r.reason_code.clear();
        r.note = "call 13800138000".into();
        assert_eq!(field_of(request_referral(&r).unwrap_err()), "note");
        r.note = format!("see {}", "0".repeat(32));
        assert!(
            request_referral(&r).is_ok(),
            "an opaque reference may be named"
        );
        r.note = "x".repeat(257);
        assert_eq!(field_of(request_referral(&r).unwrap_err()), "note");
        let mut m = pb::MatchReferralRequest {
            request_id: "m".into(),
            referral_id: 1,
            ..Default::default()
        };
        assert_eq!(field_of(match_referral(&m).unwrap_err()), "bed_hold_id");
        m.bed_hold_id = 5;
        assert!(match_referral(&m).is_ok());
        m.to_hospital_id = 3;
        assert_eq!(field_of(match_referral(&m).unwrap_err()), "to_hospital_id");
        let w = pb::WorklistRequest {
            hospital_id: 1,
            states: vec![pb::ReferralState::NoCapacity as i32, 0],
            ..Default::default()
        };
        assert_eq!(field_of(worklist_query(&w).unwrap_err()), "states.1");
    }
}
