//! `ninety.v1.BedHolds`: the unary bed-hold calls. The batch and streaming calls
//! (`HoldBeds`, `ResolveHolds`, `Stream`) belong to issue 5 and answer `UNIMPLEMENTED`.
//!
//! The engine's `HoldBed` takes no urgency, channel or referral yet: those request fields
//! are accepted and not stored, and holds report them as unspecified.

use super::{invalid, is_local, Cluster};
use crate::engine_sm::{Query, QueryResult};
use ninety_engine::beds::BedHold;
use ninety_engine::{
    BedId, BedTarget, Command, HoldId, HoldState, HospitalId, PatientRef, Request, WardId,
};
use ninety_proto::v1 as pb;
use ninety_proto::v1::bed_holds_server::BedHolds;
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::Stream;
use tonic::{Request as GrpcRequest, Response, Status, Streaming};

/// The BedHolds service.
pub struct BedHoldsService {
    pub cluster: Arc<Cluster>,
}

fn hold_state(s: &HoldState) -> pb::HoldState {
    match s {
        HoldState::Pending => pb::HoldState::Active,
        HoldState::Confirmed { .. } => pb::HoldState::Confirmed,
        HoldState::Released { .. } => pb::HoldState::Released,
        HoldState::Expired { .. } => pb::HoldState::Expired,
    }
}

/// The wire form of a hold.
pub fn to_pb(hold: &BedHold, hospital: HospitalId) -> pb::BedHold {
    pb::BedHold {
        hold_id: hold.id.0,
        hospital_id: hospital.0,
        ward_id: hold.ward.0,
        bed_id: hold.bed.0,
        patient_ref: hold.patient.to_string(),
        state: hold_state(&hold.state) as i32,
        urgency: pb::Urgency::Unspecified as i32,
        channel: pb::Channel::Unspecified as i32,
        referral_id: 0,
        created_ms: hold.created_at.0,
        expires_ms: hold.expires_at.0,
        resolved_ms: hold.state.resolved_at().map_or(0, |t| t.0),
    }
}

impl BedHoldsService {
    async fn mutate(&self, request: Request) -> Result<Response<pb::BedHoldResponse>, Status> {
        let (written, _) = self.cluster.write_ok(&request).await?;
        let hold = written
            .applied
            .hold
            .as_ref()
            .map(|(h, hosp)| to_pb(h, *hosp));
        Ok(Response::new(pb::BedHoldResponse {
            hold,
            commit: Some(written.commit()),
        }))
    }
}

type BedOpStream = Pin<Box<dyn Stream<Item = Result<pb::BedOpResult, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl BedHolds for BedHoldsService {
    async fn hold_bed(
        &self,
        request: GrpcRequest<pb::HoldBedRequest>,
    ) -> Result<Response<pb::BedHoldResponse>, Status> {
        let r = request.into_inner();
        let id = super::request_id(&r.request_id)?;
        let patient = PatientRef::parse_hex(&r.patient_ref)
            .filter(|_| r.patient_ref.chars().all(|c| !c.is_ascii_uppercase()))
            .ok_or_else(|| invalid("patient_ref", "must be exactly 32 lowercase hex digits"))?;
        let target = match (r.ward_id, r.bed_id) {
            (_, b) if b != 0 => BedTarget::Bed(BedId(b)),
            (0, _) => return Err(invalid("ward_id", "must name a ward (or give bed_id)")),
            (w, _) => BedTarget::Ward(WardId(w)),
        };
        let command = Command::HoldBed {
            target,
            patient,
            ttl_ms: r.ttl_ms,
        };
        self.mutate(Request { id, command }).await
    }

    async fn confirm_hold(
        &self,
        request: GrpcRequest<pb::ConfirmHoldRequest>,
    ) -> Result<Response<pb::BedHoldResponse>, Status> {
        let r = request.into_inner();
        let id = super::request_id(&r.request_id)?;
        if r.hold_id == 0 {
            return Err(invalid("hold_id", "must not be 0"));
        }
        let command = Command::ConfirmHold {
            hold: HoldId(r.hold_id),
        };
        self.mutate(Request { id, command }).await
    }

    async fn release_hold(
        &self,
        request: GrpcRequest<pb::ReleaseHoldRequest>,
    ) -> Result<Response<pb::BedHoldResponse>, Status> {
        let r = request.into_inner();
        let id = super::request_id(&r.request_id)?;
        if r.hold_id == 0 {
            return Err(invalid("hold_id", "must not be 0"));
        }
        if r.reason.len() > ninety_engine::limits::TEXT_BYTES_MAX {
            return Err(invalid("reason", "too long"));
        }
        let command = Command::ReleaseHold {
            hold: HoldId(r.hold_id),
        };
        self.mutate(Request { id, command }).await
    }

    async fn get_hold(
        &self,
        request: GrpcRequest<pb::GetHoldRequest>,
    ) -> Result<Response<pb::GetHoldResponse>, Status> {
        let r = request.into_inner();
        if r.hold_id == 0 {
            return Err(invalid("hold_id", "must not be 0"));
        }
        let query = Query::Hold(HoldId(r.hold_id));
        let (result, index) = self.cluster.read(&query, is_local(r.consistency)).await?;
        match result {
            QueryResult::Hold(Some((hold, hospital))) => Ok(Response::new(pb::GetHoldResponse {
                hold: Some(to_pb(&hold, hospital)),
                applied_index: index,
            })),
            QueryResult::Hold(None) => Err(super::rejection_status(
                &ninety_engine::Rejection::UnknownHold(HoldId(r.hold_id)),
            )),
            _ => Err(Status::internal("unexpected query result")),
        }
    }

    async fn ward_availability(
        &self,
        request: GrpcRequest<pb::WardAvailabilityRequest>,
    ) -> Result<Response<pb::WardAvailabilityResponse>, Status> {
        let r = request.into_inner();
        if r.hospital_id == 0 {
            return Err(invalid("hospital_id", "must not be 0"));
        }
        let query = Query::Wards {
            hospital: HospitalId(r.hospital_id),
            wards: r.ward_ids.iter().map(|w| WardId(*w)).collect(),
        };
        let (result, index) = self.cluster.read(&query, is_local(r.consistency)).await?;
        let QueryResult::Wards(wards) = result else {
            return Err(Status::internal("unexpected query result"));
        };
        let wards = wards.ok_or_else(|| {
            super::rejection_status(&ninety_engine::Rejection::UnknownHospital(HospitalId(
                r.hospital_id,
            )))
        })?;
        let wards = wards
            .into_iter()
            .map(|w| pb::WardAvailability {
                hospital_id: w.hospital.0,
                ward_id: w.ward.0,
                specialty: w.specialty,
                total_beds: w.counts.physical,
                free_beds: w.counts.free,
                held_beds: w.counts.held,
                occupied_beds: w.counts.occupied,
                // Beds being cleaned cannot be held: reported with the blocked ones so
                // free + held + occupied + blocked = total.
                blocked_beds: w.counts.blocked + w.counts.to_clean,
            })
            .collect();
        Ok(Response::new(pb::WardAvailabilityResponse {
            wards,
            applied_index: index,
        }))
    }

    async fn hold_beds(
        &self,
        _request: GrpcRequest<pb::HoldBedsRequest>,
    ) -> Result<Response<pb::BedHoldResults>, Status> {
        Err(Status::unimplemented("HoldBeds arrives with issue 5"))
    }

    async fn resolve_holds(
        &self,
        _request: GrpcRequest<pb::ResolveHoldsRequest>,
    ) -> Result<Response<pb::BedHoldResults>, Status> {
        Err(Status::unimplemented("ResolveHolds arrives with issue 5"))
    }

    type StreamStream = BedOpStream;

    async fn stream(
        &self,
        _request: GrpcRequest<Streaming<pb::BedOp>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        Err(Status::unimplemented("Stream arrives with issue 5"))
    }
}
