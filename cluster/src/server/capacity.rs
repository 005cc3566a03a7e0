//! `ninety.v1.Capacity`: the calls hospital systems and operators keep capacity true with.
//! Bed state changes (discharge, clean, block, unblock), new beds and staffed counts, ward,
//! doctor and hospital records, travel times, referral paths, the policy, and lifting a
//! patient's no-show block.
//!
//! Each request is checked in full here (fields named as the client sent them, through
//! [`Field`]) and becomes one engine command, so the engine's dedup table makes a retry
//! with the same request id return the first answer. An engine refusal naming a field of a
//! record (`ward.hospital`, `road.a`) is renamed to the wire's name ([`RECORD_FIELDS`]).
//! Answers say what changed: the bed's new state, the ids `AddBeds` assigned, the record
//! as stored. Roles: `security::roles` (bed, ward and doctor calls `hospital`, the
//! region-wide ones `operator`).

use super::convert::{self, echo, Field};
use super::{Cluster, Deadline, WRITE_TIMEOUT};
use ninety_engine::{
    AllianceId, BedId, BlockReason, Command, Doctor, DoctorId, Hospital, HospitalId, LogTime,
    Policy, ReferralKind, Rejection, Reply, Request, Ward, WardId,
};
use ninety_proto::v1 as pb;
use ninety_proto::v1::capacity_server::Capacity;
use serde::{de::DeserializeOwned, Serialize};
use std::sync::Arc;
use tonic::{Request as GrpcRequest, Response, Status};

/// The Capacity service.
pub struct CapacityService {
    pub cluster: Arc<Cluster>,
}

/// Engine names of record fields and their names on the wire (a prefix each: list indexes
/// after it are kept).
const RECORD_FIELDS: &[(&str, &str)] = &[
    ("ward.hospital", "ward.hospital_id"),
    ("doctor.hospital", "doctor.hospital_id"),
    ("hospital.alliances", "hospital.alliance_ids"),
    ("road.a", "hospital_a_id"),
    ("road.b", "hospital_b_id"),
    ("road.travel_minutes", "travel_minutes"),
];

/// An engine refusal with record fields renamed as on the wire.
fn on_the_wire(r: Rejection) -> Rejection {
    let Rejection::Invalid { field, reason } = r else {
        return r;
    };
    let renamed = RECORD_FIELDS.iter().find_map(|(engine, wire)| {
        let rest = field.strip_prefix(engine)?;
        (rest.is_empty() || rest.starts_with('[')).then(|| format!("{wire}{rest}"))
    });
    Rejection::Invalid {
        field: renamed.unwrap_or(field),
        reason,
    }
}

/// An engine enum from its region-file name (`"icu"`, `"zh"`), or a refusal naming `field`.
fn named<T: DeserializeOwned>(at: &Field, field: &str, text: &str) -> Result<T, Rejection> {
    serde_json::from_value(serde_json::Value::String(text.to_string()))
        .map_err(|_| at.invalid(field, format!("unknown value {}", echo(text))))
}

/// An engine enum's region-file name.
fn name_of<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// Each of `texts` parsed with [`named`], the i-th named `field.i`.
fn all_named<T: DeserializeOwned>(
    at: &Field,
    field: &str,
    texts: &[String],
) -> Result<Vec<T>, Rejection> {
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| named(at, &format!("{field}.{i}"), t))
        .collect()
}

/// A required message field.
fn required<'a, T>(at: &Field, field: &str, v: &'a Option<T>) -> Result<&'a T, Rejection> {
    v.as_ref().ok_or_else(|| at.invalid(field, "must be set"))
}

fn request(at: &Field, request_id: &str, command: Command) -> Result<Request, Rejection> {
    let id = super::parse_request_id(at, "request_id", request_id)?;
    Ok(Request { id, command })
}

// ---- beds ----

fn bed(at: &Field, bed_id: u32) -> Result<BedId, Rejection> {
    at.id("bed_id", bed_id).map(BedId)
}

fn block_reason(at: &Field, v: i32) -> Result<BlockReason, Rejection> {
    match pb::BlockReason::try_from(v) {
        Ok(pb::BlockReason::Isolation) => Ok(BlockReason::Isolation),
        Ok(pb::BlockReason::Maintenance) => Ok(BlockReason::Maintenance),
        Ok(pb::BlockReason::NoStaff) => Ok(BlockReason::NoStaff),
        Ok(pb::BlockReason::Unspecified) => Err(at.invalid("reason", "must be specified")),
        Err(_) => Err(at.invalid("reason", format!("unknown block reason {v}"))),
    }
}

fn discharge(r: &pb::DischargeRequest, at: &Field) -> Result<Request, Rejection> {
    let bed = bed(at, r.bed_id)?;
    request(at, &r.request_id, Command::Discharge { bed })
}

fn mark_clean(r: &pb::MarkBedCleanRequest, at: &Field) -> Result<Request, Rejection> {
    let bed = bed(at, r.bed_id)?;
    request(at, &r.request_id, Command::MarkBedClean { bed })
}

fn block(r: &pb::BlockBedRequest, at: &Field) -> Result<Request, Rejection> {
    let bed = bed(at, r.bed_id)?;
    let reason = block_reason(at, r.reason)?;
    request(at, &r.request_id, Command::BlockBed { bed, reason })
}

fn unblock(r: &pb::UnblockBedRequest, at: &Field) -> Result<Request, Rejection> {
    let bed = bed(at, r.bed_id)?;
    request(at, &r.request_id, Command::UnblockBed { bed })
}

/// The answer to a bed state change: the bed is now in `state`.
fn bed_now(
    bed_id: u32,
    state: pb::BedState,
    reason: pb::BlockReason,
    commit: pb::CommitInfo,
) -> pb::BedChangeResponse {
    pb::BedChangeResponse {
        bed_id,
        state: state as i32,
        block_reason: reason as i32,
        commit: Some(commit),
    }
}

fn add_beds(r: &pb::AddBedsRequest, at: &Field) -> Result<Request, Rejection> {
    let ward = WardId(at.id("ward_id", r.ward_id)?);
    at.id("count", r.count)?;
    request(
        at,
        &r.request_id,
        Command::AddBeds {
            ward,
            count: r.count,
        },
    )
}

fn beds_added(r: &pb::AddBedsRequest, reply: Reply, commit: pb::CommitInfo) -> pb::AddBedsResponse {
    let bed_ids = match reply {
        Reply::BedsAdded { first, count } => (0..count).map(|i| first.0 + i).collect(),
        _ => Vec::new(),
    };
    pb::AddBedsResponse {
        ward_id: r.ward_id,
        bed_ids,
        commit: Some(commit),
    }
}

fn set_staffed(r: &pb::SetStaffedBedsRequest, at: &Field) -> Result<Request, Rejection> {
    let ward = WardId(at.id("ward_id", r.ward_id)?);
    let command = Command::SetStaffedBeds {
        ward,
        staffed_beds: r.staffed_beds,
    };
    request(at, &r.request_id, command)
}

fn staffed_set(
    r: &pb::SetStaffedBedsRequest,
    reply: Reply,
    commit: pb::CommitInfo,
) -> pb::SetStaffedBedsResponse {
    let previous = match reply {
        Reply::StaffedBedsSet { previous, .. } => previous,
        _ => 0,
    };
    pb::SetStaffedBedsResponse {
        ward_id: r.ward_id,
        staffed_beds: r.staffed_beds,
        previous_staffed_beds: previous,
        commit: Some(commit),
    }
}

// ---- records ----

fn ward_record(w: &pb::Ward, at: &Field) -> Result<Ward, Rejection> {
    Ok(Ward {
        id: WardId(at.id("ward.ward_id", w.ward_id)?),
        hospital: HospitalId(at.id("ward.hospital_id", w.hospital_id)?),
        name: w.name.clone(),
        specialty: at.specialty("ward.specialty", &w.specialty)?,
        kind: named(at, "ward.kind", &w.kind)?,
        sex: named(at, "ward.sex", &w.sex)?,
        equipment: all_named(at, "ward.equipment", &w.equipment)?,
        staffed_beds: w.staffed_beds,
    })
}

pub(super) fn ward_pb(w: &Ward) -> pb::Ward {
    pb::Ward {
        ward_id: w.id.0,
        hospital_id: w.hospital.0,
        name: w.name.clone(),
        specialty: convert::specialty_name(w.specialty),
        kind: name_of(&w.kind),
        sex: name_of(&w.sex),
        equipment: w.equipment.iter().map(name_of).collect(),
        staffed_beds: w.staffed_beds,
    }
}

fn upsert_ward(r: &pb::UpsertWardRequest, at: &Field) -> Result<Request, Rejection> {
    let ward = ward_record(required(at, "ward", &r.ward)?, at)?;
    request(at, &r.request_id, Command::UpsertWard(ward))
}

fn doctor_record(d: &pb::Doctor, at: &Field) -> Result<Doctor, Rejection> {
    let specialties = d
        .specialties
        .iter()
        .enumerate()
        .map(|(i, s)| at.specialty(&format!("doctor.specialties.{i}"), s))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Doctor {
        id: DoctorId(at.id("doctor.doctor_id", d.doctor_id)?),
        hospital: HospitalId(at.id("doctor.hospital_id", d.hospital_id)?),
        specialties,
        sub_specialties: d.sub_specialties.clone(),
        title: named(at, "doctor.title", &d.title)?,
        languages: all_named(at, "doctor.languages", &d.languages)?,
        remote: d.remote,
    })
}

fn doctor_pb(d: &Doctor) -> pb::Doctor {
    pb::Doctor {
        doctor_id: d.id.0,
        hospital_id: d.hospital.0,
        specialties: d
            .specialties
            .iter()
            .map(|s| convert::specialty_name(*s))
            .collect(),
        sub_specialties: d.sub_specialties.clone(),
        title: name_of(&d.title),
        languages: d.languages.iter().map(name_of).collect(),
        remote: d.remote,
    }
}

fn upsert_doctor(r: &pb::UpsertDoctorRequest, at: &Field) -> Result<Request, Rejection> {
    let doctor = doctor_record(required(at, "doctor", &r.doctor)?, at)?;
    request(at, &r.request_id, Command::UpsertDoctor(doctor))
}

fn hospital_record(h: &pb::Hospital, at: &Field) -> Result<Hospital, Rejection> {
    let tier = at
        .opt_tier("hospital.tier", h.tier)?
        .ok_or_else(|| at.invalid("hospital.tier", "must be specified"))?;
    Ok(Hospital {
        id: HospitalId(at.id("hospital.hospital_id", h.hospital_id)?),
        name: h.name.clone(),
        city: h.city.clone(),
        lat_micro_deg: h.lat_micro_deg,
        lon_micro_deg: h.lon_micro_deg,
        tier,
        languages: all_named(at, "hospital.languages", &h.languages)?,
        alliances: h.alliance_ids.iter().map(|a| AllianceId(*a)).collect(),
    })
}

fn hospital_pb(h: &Hospital) -> pb::Hospital {
    pb::Hospital {
        hospital_id: h.id.0,
        name: h.name.clone(),
        city: h.city.clone(),
        lat_micro_deg: h.lat_micro_deg,
        lon_micro_deg: h.lon_micro_deg,
        tier: convert::tier_pb(h.tier) as i32,
        languages: h.languages.iter().map(name_of).collect(),
        alliance_ids: h.alliances.iter().map(|a| a.0).collect(),
    }
}

fn upsert_hospital(r: &pb::UpsertHospitalRequest, at: &Field) -> Result<Request, Rejection> {
    let hospital = hospital_record(required(at, "hospital", &r.hospital)?, at)?;
    request(at, &r.request_id, Command::UpsertHospital(hospital))
}

// ---- the region ----

fn set_travel(r: &pb::SetTravelRequest, at: &Field) -> Result<Request, Rejection> {
    let a = HospitalId(at.id("hospital_a_id", r.hospital_a_id)?);
    let b = HospitalId(at.id("hospital_b_id", r.hospital_b_id)?);
    let travel_minutes = at.opt_id(r.travel_minutes);
    let command = Command::SetTravel {
        a,
        b,
        travel_minutes,
    };
    request(at, &r.request_id, command)
}

fn path_kind(at: &Field, v: i32) -> Result<Option<ReferralKind>, Rejection> {
    use pb::ReferralPathKind as K;
    match K::try_from(v) {
        Ok(K::Unspecified) => Ok(None),
        Ok(K::UpTier) => Ok(Some(ReferralKind::UpTier)),
        Ok(K::DownTier) => Ok(Some(ReferralKind::DownTier)),
        Ok(K::SameLevel) => Ok(Some(ReferralKind::SameLevel)),
        Err(_) => Err(at.invalid("kind", format!("unknown referral path kind {v}"))),
    }
}

fn path_kind_pb(k: Option<ReferralKind>) -> pb::ReferralPathKind {
    match k {
        None => pb::ReferralPathKind::Unspecified,
        Some(ReferralKind::UpTier) => pb::ReferralPathKind::UpTier,
        Some(ReferralKind::DownTier) => pb::ReferralPathKind::DownTier,
        Some(ReferralKind::SameLevel) => pb::ReferralPathKind::SameLevel,
    }
}

fn set_referral_path(r: &pb::SetReferralPathRequest, at: &Field) -> Result<Request, Rejection> {
    let from = HospitalId(at.id("from_hospital_id", r.from_hospital_id)?);
    let to = HospitalId(at.id("to_hospital_id", r.to_hospital_id)?);
    let kind = path_kind(at, r.kind)?;
    request(
        at,
        &r.request_id,
        Command::SetReferralPath { from, to, kind },
    )
}

fn policy_record(p: &pb::Policy) -> Policy {
    Policy {
        reach_minutes: p.reach_minutes,
        slot_hold_ttl_ms: p.slot_hold_ttl_ms,
        cancel_deadline_minutes: p.cancel_deadline_minutes,
        no_show_limit: p.no_show_limit,
        no_show_window_days: p.no_show_window_days,
        no_show_block_days: p.no_show_block_days,
        referral_ttl_ms: p.referral_ttl_ms,
        resolved_retention_ms: p.resolved_retention_ms,
        dedup_window_ms: p.dedup_window_ms,
    }
}

fn set_policy(r: &pb::SetPolicyRequest, at: &Field) -> Result<Request, Rejection> {
    let policy = policy_record(required(at, "policy", &r.policy)?);
    request(at, &r.request_id, Command::SetPolicy(policy))
}

fn unblock_patient(r: &pb::UnblockPatientRequest, at: &Field) -> Result<Request, Rejection> {
    let patient = at.patient("patient_ref", &r.patient_ref)?;
    request(at, &r.request_id, Command::UnblockPatient { patient })
}

fn patient_unblocked(
    r: &pb::UnblockPatientRequest,
    reply: Reply,
    commit: pb::CommitInfo,
) -> pb::UnblockPatientResponse {
    let until = match reply {
        Reply::PatientUnblocked { blocked_until, .. } => blocked_until,
        _ => None,
    };
    pb::UnblockPatientResponse {
        patient_ref: r.patient_ref.clone(),
        lifted_blocked_until_ms: until.map_or(0, |t: LogTime| t.0),
        commit: Some(commit),
    }
}

impl CapacityService {
    /// One call: the client's deadline, the request checked and mapped by `build` (a
    /// refusal names the field), proposed, and the engine's reply turned into the answer
    /// by `answer`; an engine refusal becomes its status with the field as on the wire.
    async fn write<R, A>(
        &self,
        request: GrpcRequest<R>,
        build: fn(&R, &Field) -> Result<Request, Rejection>,
        answer: impl FnOnce(&R, Reply, pb::CommitInfo) -> A,
    ) -> Result<Response<A>, Status> {
        let deadline = Deadline::of(&request, WRITE_TIMEOUT);
        let r = request.into_inner();
        let command = build(&r, &Field::top()).map_err(super::bad)?;
        let written = self.cluster.write(&command, deadline).await?;
        let reply = match written.applied.outcome.clone() {
            Ok(reply) => reply,
            Err(refusal) => return Err(super::bad(on_the_wire(refusal))),
        };
        Ok(Response::new(answer(&r, reply, written.commit())))
    }
}

#[tonic::async_trait]
impl Capacity for CapacityService {
    async fn discharge(
        &self,
        request: GrpcRequest<pb::DischargeRequest>,
    ) -> Result<Response<pb::BedChangeResponse>, Status> {
        self.write(request, discharge, |r, _, c| {
            bed_now(
                r.bed_id,
                pb::BedState::ToClean,
                pb::BlockReason::Unspecified,
                c,
            )
        })
        .await
    }

    async fn mark_bed_clean(
        &self,
        request: GrpcRequest<pb::MarkBedCleanRequest>,
    ) -> Result<Response<pb::BedChangeResponse>, Status> {
        self.write(request, mark_clean, |r, _, c| {
            bed_now(
                r.bed_id,
                pb::BedState::Free,
                pb::BlockReason::Unspecified,
                c,
            )
        })
        .await
    }

    async fn block_bed(
        &self,
        request: GrpcRequest<pb::BlockBedRequest>,
    ) -> Result<Response<pb::BedChangeResponse>, Status> {
        self.write(request, block, |r, _, c| {
            bed_now(r.bed_id, pb::BedState::Blocked, r.reason(), c)
        })
        .await
    }

    async fn unblock_bed(
        &self,
        request: GrpcRequest<pb::UnblockBedRequest>,
    ) -> Result<Response<pb::BedChangeResponse>, Status> {
        self.write(request, unblock, |r, _, c| {
            bed_now(
                r.bed_id,
                pb::BedState::Free,
                pb::BlockReason::Unspecified,
                c,
            )
        })
        .await
    }

    async fn add_beds(
        &self,
        request: GrpcRequest<pb::AddBedsRequest>,
    ) -> Result<Response<pb::AddBedsResponse>, Status> {
        self.write(request, add_beds, beds_added).await
    }

    async fn set_staffed_beds(
        &self,
        request: GrpcRequest<pb::SetStaffedBedsRequest>,
    ) -> Result<Response<pb::SetStaffedBedsResponse>, Status> {
        self.write(request, set_staffed, staffed_set).await
    }

    async fn upsert_ward(
        &self,
        request: GrpcRequest<pb::UpsertWardRequest>,
    ) -> Result<Response<pb::UpsertWardResponse>, Status> {
        self.write(request, upsert_ward, |r, _, c| pb::UpsertWardResponse {
            ward: ward_record(
                r.ward.as_ref().unwrap_or(&pb::Ward::default()),
                &Field::top(),
            )
            .ok()
            .as_ref()
            .map(ward_pb),
            commit: Some(c),
        })
        .await
    }

    async fn upsert_doctor(
        &self,
        request: GrpcRequest<pb::UpsertDoctorRequest>,
    ) -> Result<Response<pb::UpsertDoctorResponse>, Status> {
        self.write(request, upsert_doctor, |r, _, c| pb::UpsertDoctorResponse {
            doctor: doctor_record(
                r.doctor.as_ref().unwrap_or(&pb::Doctor::default()),
                &Field::top(),
            )
            .ok()
            .as_ref()
            .map(doctor_pb),
            commit: Some(c),
        })
        .await
    }

    async fn upsert_hospital(
        &self,
        request: GrpcRequest<pb::UpsertHospitalRequest>,
    ) -> Result<Response<pb::UpsertHospitalResponse>, Status> {
        self.write(request, upsert_hospital, |r, _, c| {
            pb::UpsertHospitalResponse {
                hospital: hospital_record(
                    r.hospital.as_ref().unwrap_or(&pb::Hospital::default()),
                    &Field::top(),
                )
                .ok()
                .as_ref()
                .map(hospital_pb),
                commit: Some(c),
            }
        })
        .await
    }

    async fn set_travel(
        &self,
        request: GrpcRequest<pb::SetTravelRequest>,
    ) -> Result<Response<pb::SetTravelResponse>, Status> {
        self.write(request, set_travel, |r, _, c| pb::SetTravelResponse {
            hospital_a_id: r.hospital_a_id,
            hospital_b_id: r.hospital_b_id,
            travel_minutes: r.travel_minutes,
            commit: Some(c),
        })
        .await
    }

    async fn set_referral_path(
        &self,
        request: GrpcRequest<pb::SetReferralPathRequest>,
    ) -> Result<Response<pb::SetReferralPathResponse>, Status> {
        self.write(request, set_referral_path, |r, _, c| {
            let kind = path_kind(&Field::top(), r.kind).ok().flatten();
            pb::SetReferralPathResponse {
                from_hospital_id: r.from_hospital_id,
                to_hospital_id: r.to_hospital_id,
                kind: path_kind_pb(kind) as i32,
                commit: Some(c),
            }
        })
        .await
    }

    async fn set_policy(
        &self,
        request: GrpcRequest<pb::SetPolicyRequest>,
    ) -> Result<Response<pb::SetPolicyResponse>, Status> {
        self.write(request, set_policy, |r, _, c| pb::SetPolicyResponse {
            policy: r.policy,
            commit: Some(c),
        })
        .await
    }

    async fn unblock_patient(
        &self,
        request: GrpcRequest<pb::UnblockPatientRequest>,
    ) -> Result<Response<pb::UnblockPatientResponse>, Status> {
        self.write(request, unblock_patient, patient_unblocked)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(r: Rejection) -> String {
        super::super::rejection_pb(&on_the_wire(r)).field
    }

    #[test]
    fn record_fields_are_named_as_on_the_wire() {
        assert_eq!(
            field_of(Rejection::invalid("ward.hospital", "x")),
            "ward.hospital_id"
        );
        assert_eq!(
            field_of(Rejection::invalid("hospital.alliances[2]", "x")),
            "hospital.alliance_ids.2"
        );
        assert_eq!(field_of(Rejection::invalid("road.b", "x")), "hospital_b_id");
        assert_eq!(
            field_of(Rejection::invalid("from", "x")),
            "from_hospital_id"
        );
        assert_eq!(
            field_of(Rejection::invalid("policy.no_show_limit", "x")),
            "policy.no_show_limit"
        );
        // A longer engine name that only starts like a record field is left alone.
        assert_eq!(field_of(Rejection::invalid("road.ab", "x")), "road.ab");
    }

    #[test]
    fn records_round_trip_and_bad_names_are_refused_by_field() {
        let ward = pb::Ward {
            ward_id: 9,
            hospital_id: 1,
            name: "W9".into(),
            specialty: "cardiology".into(),
            kind: "icu".into(),
            sex: "mixed".into(),
            equipment: vec!["monitor".into(), "negative_pressure".into()],
            staffed_beds: 4,
        };
        let at = Field::top();
        assert_eq!(ward_pb(&ward_record(&ward, &at).unwrap()), ward);
        let bad = pb::Ward {
            equipment: vec!["monitor".into(), "laser".into()],
            ..ward.clone()
        };
        let Err(Rejection::Invalid { field, .. }) = ward_record(&bad, &at) else {
            panic!("an unknown equipment name is refused")
        };
        assert_eq!(field, "ward.equipment.1");
        let doctor = pb::Doctor {
            doctor_id: 3,
            hospital_id: 1,
            specialties: vec!["cardiology".into()],
            sub_specialties: vec!["interventional".into()],
            title: "chief".into(),
            languages: vec!["zh".into(), "yue".into()],
            remote: true,
        };
        assert_eq!(doctor_pb(&doctor_record(&doctor, &at).unwrap()), doctor);
        let hospital = pb::Hospital {
            hospital_id: 5,
            name: "H5".into(),
            city: "Zhuhai".into(),
            lat_micro_deg: 22_270_000,
            lon_micro_deg: 113_570_000,
            tier: pb::Tier::Secondary as i32,
            languages: vec!["pt".into()],
            alliance_ids: vec![],
        };
        assert_eq!(
            hospital_pb(&hospital_record(&hospital, &at).unwrap()),
            hospital
        );
        let untiered = pb::Hospital {
            tier: 0,
            ..hospital
        };
        let Err(Rejection::Invalid { field, .. }) = hospital_record(&untiered, &at) else {
            panic!("a hospital needs a tier")
        };
        assert_eq!(field, "hospital.tier");
    }
}
