//! `ninety.v1.Scheduling`'s schedule upkeep: amend and withdraw published slots, and set a
//! doctor's rolling weekly template. Each maps the wire request to one engine command
//! (`AmendSlot`, `WithdrawSlots`, `SetWeeklyTemplate`) and the slots it answers back; what
//! may be amended or withdrawn, and how a template rolls, is the engine's rule
//! (`ninety_engine::horizon`).

use super::convert::Field;
use super::scheduling::slot_pb;
use super::{bad, Cluster, Deadline, Written, WRITE_TIMEOUT};
use ninety_engine::read::Record;
use ninety_engine::{
    Command, DoctorId, LogTime, Rejection, Reply, Request, SeatLimits, SlotId, TemplateSlot,
    WeeklyTemplate,
};
use ninety_proto::v1 as pb;
use tonic::{Request as GrpcRequest, Response, Status};

/// A u32 wire number that the engine keeps in 16 bits.
fn u16_of(at: &Field, field: &str, v: u32) -> Result<u16, Rejection> {
    u16::try_from(v).map_err(|_| at.invalid(field, "too large"))
}

fn seat_limits(at: &Field, c: u32, o: u32, r: u32) -> Result<SeatLimits, Rejection> {
    Ok(SeatLimits {
        capacity: u16_of(at, "capacity", c)?,
        overbook: u16_of(at, "overbook", o)?,
        referral_quota: u16_of(at, "referral_reserved", r)?,
    })
}

fn amend_request(r: &pb::AmendSlotRequest) -> Result<Request, Rejection> {
    let at = Field::top();
    let id = super::parse_request_id(&at, "request_id", &r.request_id)?;
    let slot = SlotId(at.id("slot_id", r.slot_id)?);
    let seats = seat_limits(&at, r.capacity, r.overbook, r.referral_reserved)?;
    Ok(Request {
        id,
        command: Command::AmendSlot { slot, seats },
    })
}

fn withdraw_request(r: &pb::WithdrawSlotsRequest) -> Result<Request, Rejection> {
    let at = Field::top();
    let id = super::parse_request_id(&at, "request_id", &r.request_id)?;
    at.text("reason", &r.reason)?;
    let max = ninety_engine::limits::SLOTS_PER_WITHDRAW_MAX;
    if r.slot_ids.is_empty() || r.slot_ids.len() > max {
        return Err(at.invalid("slot_ids", format!("must name 1 to {max} slots")));
    }
    let slots = (r.slot_ids.iter().enumerate())
        .map(|(i, s)| at.id(&format!("slot_ids.{i}"), *s).map(SlotId))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Request {
        id,
        command: Command::WithdrawSlots {
            slots,
            cancel_bookings: r.cancel_bookings,
        },
    })
}

fn template_slot(at: &Field, s: &pb::TemplateSlot) -> Result<TemplateSlot, Rejection> {
    let seats = seat_limits(at, s.capacity, s.overbook, s.referral_reserved)?;
    Ok(TemplateSlot {
        weekdays: u8::try_from(s.weekdays).map_err(|_| at.invalid("weekdays", "too large"))?,
        minute_of_day: u16_of(at, "minute_of_day", s.minute_of_day)?,
        duration_minutes: u16_of(at, "duration_minutes", s.duration_minutes)?,
        mode: at.mode("mode", s.mode)?,
        capacity: seats.capacity,
        overbook: seats.overbook,
        referral_quota: seats.referral_quota,
    })
}

fn template_request(r: &pb::SetWeeklyTemplateRequest) -> Result<Request, Rejection> {
    let at = Field::top();
    let id = super::parse_request_id(&at, "request_id", &r.request_id)?;
    let doctor = DoctorId(at.id("doctor_id", r.doctor_id)?);
    let max = ninety_engine::limits::TEMPLATE_SLOTS_MAX;
    if r.slots.len() > max {
        return Err(at.invalid("slots", format!("must hold at most {max} slots")));
    }
    let slots = (r.slots.iter().enumerate())
        .map(|(i, s)| template_slot(&Field::item("slots", i), s))
        .collect::<Result<Vec<_>, _>>()?;
    // An empty template stops the rolling; its horizon is not looked at.
    let horizon_days = match slots.is_empty() {
        true => 1,
        false => u16_of(&at, "horizon_days", r.horizon_days)?,
    };
    Ok(Request {
        id,
        command: Command::SetWeeklyTemplate {
            doctor,
            template: WeeklyTemplate {
                slots,
                horizon_days,
            },
            from: LogTime(r.from_ms),
        },
    })
}

/// The slots a write's answer carries.
fn written_slots(w: &Written) -> Result<Vec<pb::Slot>, Status> {
    match &w.applied.record {
        Some(Record::Slots(s)) => Ok(s.iter().map(slot_pb).collect()),
        _ => Err(Status::internal("the write's answer carries no slots")),
    }
}

pub async fn amend_slot(
    cluster: &Cluster,
    request: GrpcRequest<pb::AmendSlotRequest>,
) -> Result<Response<pb::AmendSlotResponse>, Status> {
    let deadline = Deadline::of(&request, WRITE_TIMEOUT);
    let request = amend_request(request.get_ref()).map_err(bad)?;
    let (w, _) = cluster.write_ok(&request, deadline).await?;
    let slot = written_slots(&w)?.into_iter().next();
    Ok(Response::new(pb::AmendSlotResponse {
        slot,
        commit: Some(w.commit()),
    }))
}

pub async fn withdraw_slots(
    cluster: &Cluster,
    request: GrpcRequest<pb::WithdrawSlotsRequest>,
) -> Result<Response<pb::WithdrawSlotsResponse>, Status> {
    let deadline = Deadline::of(&request, WRITE_TIMEOUT);
    let request = withdraw_request(request.get_ref()).map_err(bad)?;
    let (w, reply) = cluster.write_ok(&request, deadline).await?;
    let Reply::SlotsWithdrawn { cancelled, .. } = reply else {
        return Err(Status::internal("unexpected reply to WithdrawSlots"));
    };
    Ok(Response::new(pb::WithdrawSlotsResponse {
        slots: written_slots(&w)?,
        cancelled_hold_ids: cancelled.iter().map(|h| h.0).collect(),
        commit: Some(w.commit()),
    }))
}

pub async fn set_weekly_template(
    cluster: &Cluster,
    request: GrpcRequest<pb::SetWeeklyTemplateRequest>,
) -> Result<Response<pb::SetWeeklyTemplateResponse>, Status> {
    let deadline = Deadline::of(&request, WRITE_TIMEOUT);
    let request = template_request(request.get_ref()).map_err(bad)?;
    let (w, reply) = cluster.write_ok(&request, deadline).await?;
    let Reply::TemplateSet { next_day_start, .. } = reply else {
        return Err(Status::internal("unexpected reply to SetWeeklyTemplate"));
    };
    Ok(Response::new(pb::SetWeeklyTemplateResponse {
        slots: written_slots(&w)?,
        next_day_start_ms: next_day_start.0,
        commit: Some(w.commit()),
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
    fn template_names_the_bad_field_as_sent() {
        let slot = |minute_of_day| pb::TemplateSlot {
            weekdays: 0x7F,
            minute_of_day,
            duration_minutes: 15,
            mode: pb::Mode::InPerson as i32,
            capacity: 1,
            overbook: 0,
            referral_reserved: 0,
        };
        let mut r = pb::SetWeeklyTemplateRequest {
            request_id: "00000000000000000000000000000001".into(),
            doctor_id: 1,
            slots: vec![slot(0), slot(30)],
            horizon_days: 14,
            from_ms: 0,
        };
        assert!(template_request(&r).is_ok());
        r.slots[1].mode = 0;
        assert_eq!(field_of(template_request(&r).unwrap_err()), "slots.1.mode");
        r.slots[1].mode = pb::Mode::InPerson as i32;
        r.slots[0].weekdays = 256;
        assert_eq!(
            field_of(template_request(&r).unwrap_err()),
            "slots.0.weekdays"
        );
        r.slots[0].weekdays = 1;
        r.horizon_days = 70_000;
        assert_eq!(field_of(template_request(&r).unwrap_err()), "horizon_days");
        r.slots.clear();
        assert!(
            template_request(&r).is_ok(),
            "an empty template ignores the horizon"
        );
    }

    #[test]
    fn withdraw_names_the_bad_slot() {
        let mut r = pb::WithdrawSlotsRequest {
            request_id: "00000000000000000000000000000001".into(),
            slot_ids: vec![3, 0],
            cancel_bookings: false,
            reason: String::new(),
        };
        assert_eq!(field_of(withdraw_request(&r).unwrap_err()), "slot_ids.1");
        r.slot_ids.clear();
        assert_eq!(field_of(withdraw_request(&r).unwrap_err()), "slot_ids");
    }
}
