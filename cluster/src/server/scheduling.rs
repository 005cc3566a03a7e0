//! `ninety.v1.Scheduling`: published slots, slot holds and bookings, waitlists, joint
//! consultations and no-shows.
//!
//! Mapping to the engine (what the proto offers that the engine does not keep is refused or
//! documented in `scheduling.proto`):
//! * `SlotSpec.capacity` is the engine's capacity, `overbook` its overbooking allowance
//!   (referral channel only), `referral_reserved` its referral quota;
//!   `cancel_before_minutes` must be 0: the region's policy sets one cancellation deadline
//!   for every slot.
//! * `AmendSlot`, `WithdrawSlots` and `SetWeeklyTemplate` live in [`super::schedules`].
//! * `HoldSlot.ttl_ms` 0 holds for the region's `slot_hold_ttl_ms`, else for `ttl_ms`
//!   (engine `HoldSlotFor`). `referral_id` is required for `CHANNEL_REFERRAL` as the proto
//!   says; the engine checks it (an existing, triaged referral of the same patient) but does
//!   not store it: a seat serves a referral once `MatchReferral` attaches it.
//! * `CancelBooking` releases a hold or cancels a booking (engine `CancelSeat`, one command
//!   either way so a retry is the same command).
//! * `JoinWaitlist`: the engine's waitlist is first come, first served and offers any freed
//!   seat of the doctor: `urgency` is accepted and ignored, `window` and `mode` must be unset.
//!   `referral_id` is required for `CHANNEL_REFERRAL` and checked like `HoldSlot`'s; the
//!   entry keeps it.
//! * `HoldJointConsult` resolves the doctors' slots inside apply (engine
//!   `HoldJointConsultIn`, deterministic) and takes public seats only (a consultation names
//!   no referral); `requesting_hospital_id` is accepted, not stored (reported as 0).
//! * `CancelJointConsult` cancels a booked consultation (engine `CancelJointConsult`, the
//!   region's cancellation deadline) or releases a held one; it reports `RELEASED`.
//! * The reads `GetBooking`, `ListPatientBookings`, `GetJointConsult` and `ListWaitlist`
//!   live in [`super::bookings`].

use super::convert::{self, Field};
use super::{bad, local, Cluster, Deadline, Written, READ_TIMEOUT, WRITE_TIMEOUT};
use ninety_engine::read::{Answer, ConsultInfo, Query, Record, SeatInfo, SlotInfo, SlotSearch};
use ninety_engine::time::MS_PER_MINUTE;
use ninety_engine::{
    Channel, Command, ConsultId, DoctorId, HoldId, HospitalId, LogTime, ReferralId, Rejection,
    Request, SeatState, SlotId, SlotSpec,
};
use ninety_proto::v1 as pb;
use ninety_proto::v1::scheduling_server::Scheduling;
use std::sync::Arc;
use tonic::{Request as GrpcRequest, Response, Status};

/// `FindSlots` answers this many slots when the request says 0.
pub const FIND_SLOTS_LIMIT_DEFAULT: usize = 50;

/// The Scheduling service.
pub struct SchedulingService {
    pub cluster: Arc<Cluster>,
}

/// The wire form of a slot.
pub fn slot_pb(s: &SlotInfo) -> pb::Slot {
    let spec = &s.slot.spec;
    pb::Slot {
        slot_id: s.slot.id.0,
        doctor_id: s.slot.doctor.0,
        hospital_id: s.hospital.0,
        start_ms: spec.start.0,
        duration_minutes: u32::from(spec.duration_minutes),
        mode: convert::mode_pb(spec.mode) as i32,
        capacity: u32::from(spec.capacity),
        referral_reserved: u32::from(spec.referral_quota),
        overbook: u32::from(spec.overbook),
        withdrawn_ms: s.slot.withdrawn_at.map_or(0, |t| t.0),
        booked: s.booked,
        held: s.held,
        specialty: s.specialty.map(convert::specialty_name).unwrap_or_default(),
    }
}

/// The wire form of a slot hold or booking.
pub fn booking_pb(s: &SeatInfo) -> pb::SlotBooking {
    use pb::BookingState as B;
    let state = match s.seat.state {
        SeatState::Held => B::Held,
        SeatState::Booked { .. } => B::Booked,
        SeatState::Released { .. } | SeatState::Cancelled { .. } => B::Cancelled,
        SeatState::Expired { .. } => B::Expired,
        SeatState::NoShow { .. } => B::NoShow,
        SeatState::Withdrawn { .. } => B::Withdrawn,
    };
    let booked = matches!(s.seat.state, SeatState::Booked { .. });
    pb::SlotBooking {
        hold_id: s.seat.id.0,
        slot_id: s.seat.slot.0,
        doctor_id: s.seat.doctor.0,
        hospital_id: s.hospital.0,
        patient_ref: s.seat.patient.to_string(),
        state: state as i32,
        channel: convert::channel_pb(s.seat.channel) as i32,
        referral_id: s.referral.map_or(0, |r| r.0),
        start_ms: s.start.0,
        mode: convert::mode_pb(s.mode) as i32,
        created_ms: s.seat.created_at.0,
        expires_ms: if s.seat.state == SeatState::Held {
            s.seat.expires_at.0
        } else {
            0
        },
        cancel_deadline_ms: if booked { s.cancel_deadline.0 } else { 0 },
    }
}

/// The wire form of a joint consultation.
pub fn consult_pb(c: &ConsultInfo) -> pb::JointConsult {
    let jc = &c.consult;
    pb::JointConsult {
        consult_id: jc.id.0,
        patient_ref: jc.patient.to_string(),
        doctor_ids: c.doctors.iter().map(|d| d.0).collect(),
        slot_ids: c.slots.iter().map(|s| s.0).collect(),
        start_ms: jc.start.0,
        duration_minutes: (jc.end.0.saturating_sub(jc.start.0) / MS_PER_MINUTE) as u32,
        state: convert::consult_state_pb(&jc.state) as i32,
        expires_ms: if jc.state == ninety_engine::HoldState::Pending {
            jc.expires_at.0
        } else {
            0
        },
        requesting_hospital_id: 0,
    }
}

/// The seat a write's answer carries.
pub fn written_seat(w: &Written) -> Result<pb::SlotBooking, Status> {
    match &w.applied.record {
        Some(Record::Seat(s)) => Ok(booking_pb(s)),
        _ => Err(Status::internal("the write's answer carries no booking")),
    }
}

fn written_consult(w: &Written) -> Result<pb::JointConsult, Status> {
    match &w.applied.record {
        Some(Record::Consult(c)) => Ok(consult_pb(c)),
        _ => Err(Status::internal(
            "the write's answer carries no consultation",
        )),
    }
}

fn slot_spec(at: &Field, s: &pb::SlotSpec) -> Result<SlotSpec, Rejection> {
    let u16_of = |field: &str, v: u32| u16::try_from(v).map_err(|_| at.invalid(field, "too large"));
    at.unsupported(
        "cancel_before_minutes",
        &s.cancel_before_minutes,
        "the region's policy sets the cancellation deadline; send 0",
    )?;
    Ok(SlotSpec {
        start: LogTime(at.id("start_ms", s.start_ms)?),
        duration_minutes: u16_of("duration_minutes", s.duration_minutes)?,
        mode: at.mode("mode", s.mode)?,
        capacity: u16_of("capacity", s.capacity)?,
        overbook: u16_of("overbook", s.overbook)?,
        referral_quota: u16_of("referral_reserved", s.referral_reserved)?,
    })
}

fn publish_request(r: &pb::PublishScheduleRequest) -> Result<Request, Rejection> {
    let at = Field::top();
    let id = super::parse_request_id(&at, "request_id", &r.request_id)?;
    let doctor = DoctorId(at.id("doctor_id", r.doctor_id)?);
    let max = ninety_engine::limits::SLOTS_PER_PUBLISH_MAX;
    if r.slots.is_empty() || r.slots.len() > max {
        return Err(at.invalid("slots", format!("must hold 1 to {max} slots")));
    }
    let slots = r
        .slots
        .iter()
        .enumerate()
        .map(|(i, s)| slot_spec(&Field::item("slots", i), s))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Request {
        id,
        command: Command::PublishSchedule { doctor, slots },
    })
}

fn find_query(r: &pb::FindSlotsRequest) -> Result<SlotSearch, Rejection> {
    let at = Field::top();
    let (from, to) = at
        .opt_window("window", r.window.as_ref())?
        .unwrap_or((LogTime(0), LogTime(u64::MAX)));
    Ok(SlotSearch {
        doctor: at.opt_id(r.doctor_id).map(DoctorId),
        hospital: at.opt_id(r.hospital_id).map(HospitalId),
        specialty: at.opt_specialty("specialty", &r.specialty)?,
        from,
        to,
        mode: at.opt_mode("mode", r.mode)?,
        channel: at.channel_or("channel", r.channel, Some(Channel::Public))?,
        limit: at.limit(
            "limit",
            r.limit,
            FIND_SLOTS_LIMIT_DEFAULT,
            ninety_engine::limits::FIND_SLOTS_LIMIT_MAX,
        )?,
    })
}

fn hold_slot_request(r: &pb::HoldSlotRequest) -> Result<Request, Rejection> {
    let at = Field::top();
    let id = super::parse_request_id(&at, "request_id", &r.request_id)?;
    let slot = SlotId(at.id("slot_id", r.slot_id)?);
    let patient = at.patient("patient_ref", &r.patient_ref)?;
    let channel = at.channel_or("channel", r.channel, None)?;
    let referral = referral_of(&at, channel, r.referral_id)?;
    let command = match at.ttl_or_policy("ttl_ms", r.ttl_ms)? {
        None => Command::HoldSlot {
            slot,
            patient,
            channel,
            referral,
        },
        Some(ttl_ms) => Command::HoldSlotFor {
            slot,
            patient,
            channel,
            ttl_ms,
            referral,
        },
    };
    Ok(Request { id, command })
}

fn joint_request(r: &pb::HoldJointConsultRequest) -> Result<Request, Rejection> {
    let at = Field::top();
    let id = super::parse_request_id(&at, "request_id", &r.request_id)?;
    let patient = at.patient("patient_ref", &r.patient_ref)?;
    let max = ninety_engine::limits::JOINT_CONSULT_DOCTORS_MAX;
    if r.doctor_ids.len() < 2 || r.doctor_ids.len() > max {
        return Err(at.invalid("doctor_ids", format!("must name 2 to {max} doctors")));
    }
    let doctors = r
        .doctor_ids
        .iter()
        .enumerate()
        .map(|(i, d)| at.id(&format!("doctor_ids.{i}"), *d).map(DoctorId))
        .collect::<Result<Vec<_>, _>>()?;
    // Unset: the engine reads (0, 0) as the next seven days from apply time.
    let (earliest, latest) = at
        .opt_window("window", r.window.as_ref())?
        .unwrap_or((LogTime(0), LogTime(0)));
    let duration_minutes = u16::try_from(at.id("duration_minutes", r.duration_minutes)?)
        .map_err(|_| at.invalid("duration_minutes", "too large"))?;
    let ttl_ms = at.ttl_or_policy("ttl_ms", r.ttl_ms)?.unwrap_or(0);
    Ok(Request {
        id,
        command: Command::HoldJointConsultIn {
            doctors,
            earliest,
            latest,
            duration_minutes,
            patient,
            ttl_ms,
        },
    })
}

fn waitlist_request(r: &pb::JoinWaitlistRequest) -> Result<Request, Rejection> {
    let at = Field::top();
    let id = super::parse_request_id(&at, "request_id", &r.request_id)?;
    let doctor = DoctorId(at.id("doctor_id", r.doctor_id)?);
    let patient = at.patient("patient_ref", &r.patient_ref)?;
    at.opt_urgency("urgency", r.urgency)?;
    if at.opt_window("window", r.window.as_ref())?.is_some() {
        return Err(at.invalid(
            "window",
            "not supported: the waitlist is offered any freed seat of the doctor; leave unset",
        ));
    }
    if at.opt_mode("mode", r.mode)?.is_some() {
        return Err(at.invalid(
            "mode",
            "not supported: the waitlist is offered any freed seat of the doctor; send MODE_UNSPECIFIED",
        ));
    }
    let channel = at.channel_or("channel", r.channel, None)?;
    let referral = referral_of(&at, channel, r.referral_id)?;
    Ok(Request {
        id,
        command: Command::JoinWaitlist {
            doctor,
            patient,
            channel,
            referral,
        },
    })
}

/// The referral a seat or waitlist entry serves (`referral_id`, 0 for none): required for
/// `CHANNEL_REFERRAL`. The engine checks the rest (an existing, triaged referral of the same
/// patient).
fn referral_of(
    at: &Field,
    channel: Channel,
    referral_id: u64,
) -> Result<Option<ReferralId>, Rejection> {
    if channel == Channel::Referral && referral_id == 0 {
        return Err(at.invalid("referral_id", "required for CHANNEL_REFERRAL"));
    }
    Ok((referral_id != 0).then_some(ReferralId(referral_id)))
}

/// A request with a request id and one id field.
fn simple(
    request_id: &str,
    field: &str,
    v: u64,
    make: impl FnOnce(u64) -> Command,
) -> Result<Request, Status> {
    let at = Field::top();
    let id = super::parse_request_id(&at, "request_id", request_id).map_err(bad)?;
    let v = at.id(field, v).map_err(bad)?;
    Ok(Request {
        id,
        command: make(v),
    })
}

impl SchedulingService {
    async fn seat_write(
        &self,
        request: Request,
        deadline: Deadline,
    ) -> Result<Response<pb::SlotBookingResponse>, Status> {
        let (w, _) = self.cluster.write_ok(&request, deadline).await?;
        Ok(Response::new(pb::SlotBookingResponse {
            booking: Some(written_seat(&w)?),
            commit: Some(w.commit()),
        }))
    }

    async fn consult_write(
        &self,
        request: Request,
        deadline: Deadline,
    ) -> Result<Response<pb::JointConsultResponse>, Status> {
        let (w, _) = self.cluster.write_ok(&request, deadline).await?;
        Ok(Response::new(pb::JointConsultResponse {
            consult: Some(written_consult(&w)?),
            commit: Some(w.commit()),
        }))
    }
}

#[tonic::async_trait]
impl Scheduling for SchedulingService {
    async fn publish_schedule(
        &self,
        request: GrpcRequest<pb::PublishScheduleRequest>,
    ) -> Result<Response<pb::PublishScheduleResponse>, Status> {
        let deadline = Deadline::of(&request, WRITE_TIMEOUT);
        let request = publish_request(request.get_ref()).map_err(bad)?;
        let (w, _) = self.cluster.write_ok(&request, deadline).await?;
        let slots = match &w.applied.record {
            Some(Record::Slots(s)) => s.iter().map(slot_pb).collect(),
            _ => return Err(Status::internal("the write's answer carries no slots")),
        };
        Ok(Response::new(pb::PublishScheduleResponse {
            slots,
            commit: Some(w.commit()),
        }))
    }

    async fn find_slots(
        &self,
        request: GrpcRequest<pb::FindSlotsRequest>,
    ) -> Result<Response<pb::FindSlotsResponse>, Status> {
        let deadline = Deadline::of(&request, READ_TIMEOUT);
        let r = request.into_inner();
        let query = Query::FindSlots(find_query(&r).map_err(bad)?);
        let (result, index) = self
            .cluster
            .read(&query, local(r.consistency)?, deadline)
            .await?;
        let Answer::Slots(slots) = result else {
            return Err(Status::internal("unexpected query result"));
        };
        Ok(Response::new(pb::FindSlotsResponse {
            slots: slots.iter().map(slot_pb).collect(),
            applied_index: index,
        }))
    }

    async fn hold_slot(
        &self,
        request: GrpcRequest<pb::HoldSlotRequest>,
    ) -> Result<Response<pb::SlotBookingResponse>, Status> {
        let deadline = Deadline::of(&request, WRITE_TIMEOUT);
        let request = hold_slot_request(request.get_ref()).map_err(bad)?;
        self.seat_write(request, deadline).await
    }

    async fn book_slot(
        &self,
        request: GrpcRequest<pb::BookSlotRequest>,
    ) -> Result<Response<pb::SlotBookingResponse>, Status> {
        let deadline = Deadline::of(&request, WRITE_TIMEOUT);
        let r = request.get_ref();
        let request = simple(&r.request_id, "hold_id", r.hold_id, |h| Command::BookSlot {
            hold: HoldId(h),
        })?;
        self.seat_write(request, deadline).await
    }

    async fn cancel_booking(
        &self,
        request: GrpcRequest<pb::CancelBookingRequest>,
    ) -> Result<Response<pb::SlotBookingResponse>, Status> {
        let deadline = Deadline::of(&request, WRITE_TIMEOUT);
        let r = request.get_ref();
        Field::top().text("reason", &r.reason).map_err(bad)?;
        let request = simple(&r.request_id, "hold_id", r.hold_id, |h| {
            Command::CancelSeat { hold: HoldId(h) }
        })?;
        self.seat_write(request, deadline).await
    }

    async fn join_waitlist(
        &self,
        request: GrpcRequest<pb::JoinWaitlistRequest>,
    ) -> Result<Response<pb::JoinWaitlistResponse>, Status> {
        let deadline = Deadline::of(&request, WRITE_TIMEOUT);
        let request = waitlist_request(request.get_ref()).map_err(bad)?;
        let (w, reply) = self.cluster.write_ok(&request, deadline).await?;
        let ninety_engine::Reply::Waitlisted { position } = reply else {
            return Err(Status::internal("unexpected reply to JoinWaitlist"));
        };
        Ok(Response::new(pb::JoinWaitlistResponse {
            position,
            commit: Some(w.commit()),
        }))
    }

    async fn leave_waitlist(
        &self,
        request: GrpcRequest<pb::LeaveWaitlistRequest>,
    ) -> Result<Response<pb::LeaveWaitlistResponse>, Status> {
        let deadline = Deadline::of(&request, WRITE_TIMEOUT);
        let r = request.get_ref();
        let at = Field::top();
        let id = super::parse_request_id(&at, "request_id", &r.request_id).map_err(bad)?;
        let doctor = DoctorId(at.id("doctor_id", r.doctor_id).map_err(bad)?);
        let patient = at.patient("patient_ref", &r.patient_ref).map_err(bad)?;
        let request = Request {
            id,
            command: Command::LeaveWaitlist { doctor, patient },
        };
        let (w, _) = self.cluster.write_ok(&request, deadline).await?;
        Ok(Response::new(pb::LeaveWaitlistResponse {
            commit: Some(w.commit()),
        }))
    }

    async fn hold_joint_consult(
        &self,
        request: GrpcRequest<pb::HoldJointConsultRequest>,
    ) -> Result<Response<pb::JointConsultResponse>, Status> {
        let deadline = Deadline::of(&request, WRITE_TIMEOUT);
        let request = joint_request(request.get_ref()).map_err(bad)?;
        self.consult_write(request, deadline).await
    }

    async fn book_joint_consult(
        &self,
        request: GrpcRequest<pb::BookJointConsultRequest>,
    ) -> Result<Response<pb::JointConsultResponse>, Status> {
        let deadline = Deadline::of(&request, WRITE_TIMEOUT);
        let r = request.get_ref();
        let request = simple(&r.request_id, "consult_id", r.consult_id, |c| {
            Command::BookJointConsult {
                consult: ConsultId(c),
            }
        })?;
        self.consult_write(request, deadline).await
    }

    async fn release_joint_consult(
        &self,
        request: GrpcRequest<pb::ReleaseJointConsultRequest>,
    ) -> Result<Response<pb::JointConsultResponse>, Status> {
        let deadline = Deadline::of(&request, WRITE_TIMEOUT);
        let r = request.get_ref();
        Field::top().text("reason", &r.reason).map_err(bad)?;
        let request = simple(&r.request_id, "consult_id", r.consult_id, |c| {
            Command::ReleaseJointConsult {
                consult: ConsultId(c),
            }
        })?;
        self.consult_write(request, deadline).await
    }

    async fn mark_no_show(
        &self,
        request: GrpcRequest<pb::MarkNoShowRequest>,
    ) -> Result<Response<pb::MarkNoShowResponse>, Status> {
        let deadline = Deadline::of(&request, WRITE_TIMEOUT);
        let r = request.get_ref();
        let request = simple(&r.request_id, "hold_id", r.hold_id, |h| {
            Command::MarkNoShow { booking: HoldId(h) }
        })?;
        let (w, reply) = self.cluster.write_ok(&request, deadline).await?;
        let ninety_engine::Reply::NoShowRecorded { blocked_until, .. } = reply else {
            return Err(Status::internal("unexpected reply to MarkNoShow"));
        };
        Ok(Response::new(pb::MarkNoShowResponse {
            booking: Some(written_seat(&w)?),
            online_booking_blocked_until_ms: blocked_until.map_or(0, |t| t.0),
            commit: Some(w.commit()),
        }))
    }

    async fn cancel_joint_consult(
        &self,
        request: GrpcRequest<pb::CancelJointConsultRequest>,
    ) -> Result<Response<pb::JointConsultResponse>, Status> {
        let deadline = Deadline::of(&request, WRITE_TIMEOUT);
        let r = request.get_ref();
        Field::top().text("reason", &r.reason).map_err(bad)?;
        let request = simple(&r.request_id, "consult_id", r.consult_id, |c| {
            Command::CancelJointConsult {
                consult: ConsultId(c),
            }
        })?;
        self.consult_write(request, deadline).await
    }

    async fn get_booking(
        &self,
        request: GrpcRequest<pb::GetBookingRequest>,
    ) -> Result<Response<pb::GetBookingResponse>, Status> {
        super::bookings::get_booking(&self.cluster, request).await
    }

    async fn list_patient_bookings(
        &self,
        request: GrpcRequest<pb::ListPatientBookingsRequest>,
    ) -> Result<Response<pb::ListPatientBookingsResponse>, Status> {
        super::bookings::list_patient_bookings(&self.cluster, request).await
    }

    async fn get_joint_consult(
        &self,
        request: GrpcRequest<pb::GetJointConsultRequest>,
    ) -> Result<Response<pb::GetJointConsultResponse>, Status> {
        super::bookings::get_joint_consult(&self.cluster, request).await
    }

    async fn list_waitlist(
        &self,
        request: GrpcRequest<pb::ListWaitlistRequest>,
    ) -> Result<Response<pb::ListWaitlistResponse>, Status> {
        super::bookings::list_waitlist(&self.cluster, request).await
    }

    async fn amend_slot(
        &self,
        request: GrpcRequest<pb::AmendSlotRequest>,
    ) -> Result<Response<pb::AmendSlotResponse>, Status> {
        super::schedules::amend_slot(&self.cluster, request).await
    }

    async fn withdraw_slots(
        &self,
        request: GrpcRequest<pb::WithdrawSlotsRequest>,
    ) -> Result<Response<pb::WithdrawSlotsResponse>, Status> {
        super::schedules::withdraw_slots(&self.cluster, request).await
    }

    async fn set_weekly_template(
        &self,
        request: GrpcRequest<pb::SetWeeklyTemplateRequest>,
    ) -> Result<Response<pb::SetWeeklyTemplateResponse>, Status> {
        super::schedules::set_weekly_template(&self.cluster, request).await
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
    fn publish_names_the_bad_slot_field() {
        let spec = pb::SlotSpec {
            start_ms: 10,
            duration_minutes: 30,
            mode: pb::Mode::Remote as i32,
            capacity: 2,
            referral_reserved: 1,
            cancel_before_minutes: 0,
            overbook: 0,
        };
        let mut r = pb::PublishScheduleRequest {
            request_id: "a".into(),
            doctor_id: 4,
            slots: vec![spec, spec],
        };
        assert!(publish_request(&r).is_ok());
        r.slots[1].mode = 0;
        assert_eq!(field_of(publish_request(&r).unwrap_err()), "slots.1.mode");
        r.slots[1].mode = 1;
        r.slots[1].cancel_before_minutes = 60;
        assert_eq!(
            field_of(publish_request(&r).unwrap_err()),
            "slots.1.cancel_before_minutes"
        );
        r.slots[1].cancel_before_minutes = 0;
        r.slots[0].capacity = 70_000;
        assert_eq!(
            field_of(publish_request(&r).unwrap_err()),
            "slots.0.capacity"
        );
        r.doctor_id = 0;
        assert_eq!(field_of(publish_request(&r).unwrap_err()), "doctor_id");
    }

    #[test]
    fn hold_slot_maps_ttl_and_channel() {
        let mut r = pb::HoldSlotRequest {
            request_id: "x".into(),
            slot_id: 7,
            patient_ref: "0".repeat(32),
            ttl_ms: 0,
            channel: pb::Channel::Public as i32,
            referral_id: 0,
        };
        assert!(matches!(
            hold_slot_request(&r).unwrap().command,
            Command::HoldSlot { .. }
        ));
        r.ttl_ms = 60_000;
        assert!(matches!(
            hold_slot_request(&r).unwrap().command,
            Command::HoldSlotFor { ttl_ms: 60_000, .. }
        ));
        r.ttl_ms = 5;
        assert_eq!(field_of(hold_slot_request(&r).unwrap_err()), "ttl_ms");
        r.ttl_ms = 0;
        r.channel = pb::Channel::Referral as i32;
        assert_eq!(field_of(hold_slot_request(&r).unwrap_err()), "referral_id");
        r.channel = 0;
        assert_eq!(field_of(hold_slot_request(&r).unwrap_err()), "channel");
        r.channel = 1;
        r.patient_ref = "Z".repeat(32);
        assert_eq!(field_of(hold_slot_request(&r).unwrap_err()), "patient_ref");
    }

    #[test]
    fn joint_and_waitlist_refuse_what_the_engine_cannot_honour() {
        let mut j = pb::HoldJointConsultRequest {
            request_id: "j".into(),
            patient_ref: "1".repeat(32),
            doctor_ids: vec![1, 2],
            window: Some(pb::TimeRange {
                start_ms: 1,
                end_ms: 2,
            }),
            duration_minutes: 30,
            ttl_ms: 0,
            requesting_hospital_id: 9,
        };
        assert!(joint_request(&j).is_ok());
        j.doctor_ids = vec![1];
        assert_eq!(field_of(joint_request(&j).unwrap_err()), "doctor_ids");
        j.doctor_ids = vec![1, 0];
        assert_eq!(field_of(joint_request(&j).unwrap_err()), "doctor_ids.1");
        j.doctor_ids = vec![1, 2];
        j.window = None;
        assert!(joint_request(&j).is_ok(), "unset: the next seven days");
        j.window = Some(pb::TimeRange {
            start_ms: 5,
            end_ms: 2,
        });
        assert_eq!(field_of(joint_request(&j).unwrap_err()), "window.end_ms");
        let mut w = pb::JoinWaitlistRequest {
            request_id: "w".into(),
            doctor_id: 3,
            patient_ref: "2".repeat(32),
            urgency: pb::Urgency::P2 as i32,
            window: None,
            mode: 0,
            channel: pb::Channel::Public as i32,
            referral_id: 0,
        };
        assert!(waitlist_request(&w).is_ok());
        w.channel = pb::Channel::Referral as i32;
        assert_eq!(field_of(waitlist_request(&w).unwrap_err()), "referral_id");
        w.referral_id = 12;
        assert!(matches!(
            waitlist_request(&w).unwrap().command,
            Command::JoinWaitlist {
                channel: Channel::Referral,
                referral: Some(ReferralId(12)),
                ..
            }
        ));
        w.mode = pb::Mode::Remote as i32;
        assert_eq!(field_of(waitlist_request(&w).unwrap_err()), "mode");
    }
}
