//! The scheduling reads a patient platform needs (`ninety.v1.Scheduling`): one booking, a
//! patient's bookings and bed holds, one joint consultation, and waitlists. Each maps the
//! wire request to a `ninety_engine::read::Query`, reads it (linearizable unless `LOCAL`)
//! and maps the answer back; what the answer holds is the engine's rule.

use super::convert::Field;
use super::scheduling::{booking_pb, consult_pb};
use super::{bad, local, Cluster, Deadline, READ_TIMEOUT};
use ninety_engine::limits::PATIENT_RECORDS_MAX;
use ninety_engine::read::{Answer, Query, WaitlistQuery};
use ninety_engine::{ConsultId, DoctorId, HoldId, Rejection};
use ninety_proto::v1 as pb;
use tonic::{Request as GrpcRequest, Response, Status};

/// `ListPatientBookings` answers this many records when the request says 0.
pub const PATIENT_BOOKINGS_LIMIT_DEFAULT: usize = 50;

fn unexpected() -> Status {
    Status::internal("unexpected query result")
}

pub async fn get_booking(
    cluster: &Cluster,
    request: GrpcRequest<pb::GetBookingRequest>,
) -> Result<Response<pb::GetBookingResponse>, Status> {
    let deadline = Deadline::of(&request, READ_TIMEOUT);
    let r = request.into_inner();
    let id = HoldId(Field::top().id("hold_id", r.hold_id).map_err(bad)?);
    let (answer, index) = cluster
        .read(&Query::Seat(id), local(r.consistency)?, deadline)
        .await?;
    let Answer::Seat(seat) = answer else {
        return Err(unexpected());
    };
    let seat = seat.ok_or_else(|| bad(Rejection::UnknownHold(id)))?;
    Ok(Response::new(pb::GetBookingResponse {
        booking: Some(booking_pb(&seat)),
        online_booking_blocked_until_ms: seat.blocked_until.map_or(0, |t| t.0),
        applied_index: index,
    }))
}

pub async fn list_patient_bookings(
    cluster: &Cluster,
    request: GrpcRequest<pb::ListPatientBookingsRequest>,
) -> Result<Response<pb::ListPatientBookingsResponse>, Status> {
    let deadline = Deadline::of(&request, READ_TIMEOUT);
    let r = request.into_inner();
    let at = Field::top();
    let patient = at.patient("patient_ref", &r.patient_ref).map_err(bad)?;
    let limit = at
        .limit(
            "limit",
            r.limit,
            PATIENT_BOOKINGS_LIMIT_DEFAULT,
            PATIENT_RECORDS_MAX,
        )
        .map_err(bad)?;
    let query = Query::PatientBookings { patient, limit };
    let (answer, index) = cluster
        .read(&query, local(r.consistency)?, deadline)
        .await?;
    let Answer::PatientBookings(found) = answer else {
        return Err(unexpected());
    };
    Ok(Response::new(pb::ListPatientBookingsResponse {
        bookings: found.seats.iter().map(booking_pb).collect(),
        bed_holds: found
            .beds
            .iter()
            .map(|(h, hospital)| super::beds::to_pb(h, *hospital))
            .collect(),
        truncated: found.more,
        applied_index: index,
    }))
}

pub async fn get_joint_consult(
    cluster: &Cluster,
    request: GrpcRequest<pb::GetJointConsultRequest>,
) -> Result<Response<pb::GetJointConsultResponse>, Status> {
    let deadline = Deadline::of(&request, READ_TIMEOUT);
    let r = request.into_inner();
    let id = ConsultId(Field::top().id("consult_id", r.consult_id).map_err(bad)?);
    let (answer, index) = cluster
        .read(&Query::Consult(id), local(r.consistency)?, deadline)
        .await?;
    let Answer::Consult(consult) = answer else {
        return Err(unexpected());
    };
    let consult = consult.ok_or_else(|| bad(Rejection::UnknownConsult(id)))?;
    Ok(Response::new(pb::GetJointConsultResponse {
        consult: Some(consult_pb(&consult)),
        applied_index: index,
    }))
}

fn waitlist_query(r: &pb::ListWaitlistRequest) -> Result<WaitlistQuery, Rejection> {
    let at = Field::top();
    match (r.doctor_id, r.patient_ref.is_empty()) {
        (0, true) => Err(at.invalid("doctor_id", "set doctor_id or patient_ref")),
        (d, true) => Ok(WaitlistQuery::Doctor(DoctorId(d))),
        (0, false) => Ok(WaitlistQuery::Patient(
            at.patient("patient_ref", &r.patient_ref)?,
        )),
        (_, false) => Err(at.invalid("patient_ref", "set doctor_id or patient_ref, not both")),
    }
}

pub async fn list_waitlist(
    cluster: &Cluster,
    request: GrpcRequest<pb::ListWaitlistRequest>,
) -> Result<Response<pb::ListWaitlistResponse>, Status> {
    let deadline = Deadline::of(&request, READ_TIMEOUT);
    let r = request.into_inner();
    let query = waitlist_query(&r).map_err(bad)?;
    let (answer, index) = cluster
        .read(&Query::Waitlist(query), local(r.consistency)?, deadline)
        .await?;
    let Answer::Waitlist(found) = answer else {
        return Err(unexpected());
    };
    let found = found.ok_or_else(|| bad(Rejection::UnknownDoctor(DoctorId(r.doctor_id))))?;
    let entries = found
        .entries
        .iter()
        .map(|(doctor, place, e)| pb::WaitlistEntry {
            doctor_id: doctor.0,
            patient_ref: e.patient.to_string(),
            position: place + 1,
            channel: super::convert::channel_pb(e.channel) as i32,
            joined_ms: e.joined_at.0,
            referral_id: e.referral.map_or(0, |r| r.0),
        })
        .collect();
    Ok(Response::new(pb::ListWaitlistResponse {
        entries,
        truncated: found.more,
        applied_index: index,
    }))
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
    fn a_waitlist_read_names_one_doctor_or_one_patient() {
        let mut r = pb::ListWaitlistRequest::default();
        assert_eq!(field_of(waitlist_query(&r).unwrap_err()), "doctor_id");
        r.doctor_id = 4;
        assert_eq!(
            waitlist_query(&r).unwrap(),
            WaitlistQuery::Doctor(DoctorId(4))
        );
        r.patient_ref = "7".repeat(32);
        assert_eq!(field_of(waitlist_query(&r).unwrap_err()), "patient_ref");
        r.doctor_id = 0;
        assert!(matches!(
            waitlist_query(&r).unwrap(),
            WaitlistQuery::Patient(_)
        ));
        r.patient_ref = "not hex".into();
        assert_eq!(field_of(waitlist_query(&r).unwrap_err()), "patient_ref");
    }
}
