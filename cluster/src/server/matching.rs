//! `ninety.v1.Matching`: ranked specialists (a read) and the allocations (one replicated
//! command each: choose and hold).
//!
//! `MatchSpecialist` is answered from the engine's published availability view, lock-free,
//! on the gRPC task (linearizable by default: a ReadIndex round first, then the view once it
//! reflects the read index; `LOCAL` reads this node's latest view; `applied_index` is the
//! index the view reflects). The matching rules (modes merged by score for
//! `MODE_UNSPECIFIED`, alliances, `max_travel_minutes` and `min_tier`) are the engine's
//! (`ninety_engine::read::matching`): this module only maps the wire to a `MatchAsk`.
//!
//! Allocations run inside apply on the authoritative state; the engine's allocation takes
//! no travel or tier bound, so `AllocateBed`/`AllocateSlot` refuse a non-zero
//! `max_travel_minutes` or `min_tier` rather than ignore them; `sub_specialty` is refused
//! when set (the engine has no sub-specialty filter). `channel` and `referral_id` of
//! `AllocateBed` are accepted and not stored, as for `HoldBed`. `AllocateSlot.ttl_ms` must be
//! 0: slot holds from allocation last the region's `slot_hold_ttl_ms`.

use super::convert::{self, Field};
use super::{bad, local, Cluster, Deadline, READ_TIMEOUT, WRITE_TIMEOUT};
use ninety_engine::matching::{BedQuery, Origin, SlotQuery, MATCH_LIMIT_MAX};
use ninety_engine::read::matching::{specialists, MatchAsk, MatchInfo};
use ninety_engine::{
    BedNeeds, Channel, Command, HospitalId, LogTime, Mode, Rejection, Reply, Request,
};
use ninety_proto::v1 as pb;
use ninety_proto::v1::matching_server::Matching;
use std::sync::Arc;
use tonic::{Request as GrpcRequest, Response, Status};

/// `MatchSpecialist` answers this many candidates when the request says 0.
pub const MATCH_LIMIT_DEFAULT: usize = 10;

/// The Matching service.
pub struct MatchingService {
    pub cluster: Arc<Cluster>,
}

/// `[start, end)` on the wire; the engine's window is `[earliest, latest]`. Unset, it is
/// `(0, 0)`, which the engine reads as the next seven days from when the search runs
/// (`SlotQuery::window_at`).
fn engine_window(at: &Field, w: Option<&pb::TimeRange>) -> Result<(LogTime, LogTime), Rejection> {
    Ok(match at.opt_window("window", w)? {
        Some((start, end)) => (start, LogTime(end.0 - 1)),
        None => (LogTime(0), LogTime(0)),
    })
}

fn refuse_sub_specialty(at: &Field, s: &str) -> Result<(), Rejection> {
    at.unsupported(
        "sub_specialty",
        &s.to_string(),
        "no sub-specialty filter yet; leave empty",
    )
}

fn match_ask(r: &pb::MatchSpecialistRequest) -> Result<MatchAsk, Rejection> {
    let at = Field::top();
    let from = HospitalId(at.id("from_hospital_id", r.from_hospital_id)?);
    refuse_sub_specialty(&at, &r.sub_specialty)?;
    let mode = at.opt_mode("mode", r.mode)?;
    let (earliest, latest) = engine_window(&at, r.window.as_ref())?;
    let limit = at.limit(
        "limit",
        r.limit,
        MATCH_LIMIT_DEFAULT,
        usize::from(MATCH_LIMIT_MAX),
    )?;
    let query = SlotQuery {
        origin: Origin::Hospital(from),
        specialty: at.specialty("specialty", &r.specialty)?,
        urgency: at.urgency("urgency", r.urgency)?,
        language: None,
        mode: mode.unwrap_or(Mode::InPerson),
        earliest,
        latest,
        channel: at.channel_or("channel", r.channel, Some(Channel::Public))?,
        limit: limit as u16,
    };
    Ok(MatchAsk {
        query,
        any_mode: mode.is_none(),
        limit,
        max_travel_minutes: (r.max_travel_minutes != 0).then_some(r.max_travel_minutes),
        min_tier: at.opt_tier("min_tier", r.min_tier)?,
    })
}

fn candidate_pb(rank: usize, m: &MatchInfo) -> pb::Candidate {
    let c = &m.candidate;
    pb::Candidate {
        rank: rank as u32,
        doctor_id: c.doctor.0,
        slot_id: c.slot.0,
        hospital_id: c.hospital.0,
        ward_id: 0,
        travel_minutes: c.travel_minutes,
        wait_minutes: c.wait_minutes,
        tier: convert::tier_pb(m.tier) as i32,
        alliance_id: m.alliance.map_or(0, |a| a.0),
        score: c.score as f64,
        explanation: c.explain.clone(),
        start_ms: c.start.0,
        mode: convert::mode_pb(m.mode) as i32,
    }
}

fn allocate_bed_request(r: &pb::AllocateBedRequest) -> Result<Request, Rejection> {
    let at = Field::top();
    let id = super::parse_request_id(&at, "request_id", &r.request_id)?;
    let patient = at.patient("patient_ref", &r.patient_ref)?;
    let from = HospitalId(at.id("from_hospital_id", r.from_hospital_id)?);
    let why = "allocation has no such bound yet; send 0";
    at.unsupported("max_travel_minutes", &r.max_travel_minutes, why)?;
    at.unsupported("min_tier", &r.min_tier, why)?;
    at.channel_or("channel", r.channel, Some(Channel::Public))?;
    let ttl_ms = at
        .ttl_or_policy("ttl_ms", r.ttl_ms)?
        .ok_or_else(|| at.invalid("ttl_ms", "must be set: bed holds have no policy default"))?;
    let query = BedQuery {
        origin: Origin::Hospital(from),
        needs: BedNeeds::default(),
        specialty: at.opt_specialty("specialty", &r.specialty)?,
        isolation: false,
        urgency: at.urgency("urgency", r.urgency)?,
        limit: 1,
    };
    Ok(Request {
        id,
        command: Command::AllocateBed {
            query,
            ttl_ms,
            patient,
        },
    })
}

fn allocate_slot_request(r: &pb::AllocateSlotRequest) -> Result<Request, Rejection> {
    let at = Field::top();
    let id = super::parse_request_id(&at, "request_id", &r.request_id)?;
    let patient = at.patient("patient_ref", &r.patient_ref)?;
    let from = HospitalId(at.id("from_hospital_id", r.from_hospital_id)?);
    refuse_sub_specialty(&at, &r.sub_specialty)?;
    let why = "allocation has no such bound yet; send 0";
    at.unsupported("max_travel_minutes", &r.max_travel_minutes, why)?;
    at.unsupported("min_tier", &r.min_tier, why)?;
    at.unsupported(
        "ttl_ms",
        &r.ttl_ms,
        "allocated slot holds last the region's slot_hold_ttl_ms; send 0",
    )?;
    let (earliest, latest) = engine_window(&at, r.window.as_ref())?;
    let channel = at.channel_or("channel", r.channel, Some(Channel::Public))?;
    let query = SlotQuery {
        origin: Origin::Hospital(from),
        specialty: at.specialty("specialty", &r.specialty)?,
        urgency: at.urgency("urgency", r.urgency)?,
        language: None,
        mode: at.mode("mode", r.mode)?,
        earliest,
        latest,
        channel,
        limit: 1,
    };
    Ok(Request {
        id,
        command: Command::AllocateSlot {
            query,
            patient,
            // The engine checks the referral (exists, same patient, triaged).
            referral: (r.referral_id != 0).then_some(ninety_engine::ReferralId(r.referral_id)),
        },
    })
}

#[tonic::async_trait]
impl Matching for MatchingService {
    async fn match_specialist(
        &self,
        request: GrpcRequest<pb::MatchSpecialistRequest>,
    ) -> Result<Response<pb::MatchSpecialistResponse>, Status> {
        let deadline = Deadline::of(&request, READ_TIMEOUT);
        let r = request.into_inner();
        let ask = match_ask(&r).map_err(bad)?;
        // On the published view, on this task: the node task only takes part in the
        // ReadIndex round of a linearizable read.
        let view = self
            .cluster
            .view_read(local(r.consistency)?, deadline)
            .await?;
        let index = view.log_index;
        let found = specialists(&view, &ask);
        drop(view);
        let candidates = found
            .map_err(bad)?
            .iter()
            .enumerate()
            .map(|(i, m)| candidate_pb(i + 1, m))
            .collect();
        Ok(Response::new(pb::MatchSpecialistResponse {
            candidates,
            applied_index: index,
        }))
    }

    async fn allocate_bed(
        &self,
        request: GrpcRequest<pb::AllocateBedRequest>,
    ) -> Result<Response<pb::AllocateBedResponse>, Status> {
        let deadline = Deadline::of(&request, WRITE_TIMEOUT);
        let request = allocate_bed_request(request.get_ref()).map_err(bad)?;
        let (w, reply) = self.cluster.write_ok(&request, deadline).await?;
        let Reply::BedAllocated {
            ward,
            hospital,
            travel_minutes,
            score,
            ..
        } = reply
        else {
            return Err(Status::internal("unexpected reply to AllocateBed"));
        };
        let hold = w
            .applied
            .hold
            .as_ref()
            .map(|(h, hosp)| super::beds::to_pb(h, *hosp));
        let chosen = pb::Candidate {
            rank: 1,
            hospital_id: hospital.0,
            ward_id: ward.0,
            travel_minutes,
            score: score as f64,
            explanation: format!("best admissible ward for the query (cost {score})"),
            ..Default::default()
        };
        Ok(Response::new(pb::AllocateBedResponse {
            hold,
            chosen: Some(chosen),
            commit: Some(w.commit()),
        }))
    }

    async fn allocate_slot(
        &self,
        request: GrpcRequest<pb::AllocateSlotRequest>,
    ) -> Result<Response<pb::AllocateSlotResponse>, Status> {
        let deadline = Deadline::of(&request, WRITE_TIMEOUT);
        let request = allocate_slot_request(request.get_ref()).map_err(bad)?;
        let (w, reply) = self.cluster.write_ok(&request, deadline).await?;
        let Reply::SlotAllocated {
            slot,
            doctor,
            hospital,
            start,
            travel_minutes,
            wait_minutes,
            score,
            ..
        } = reply
        else {
            return Err(Status::internal("unexpected reply to AllocateSlot"));
        };
        let booking = super::scheduling::written_seat(&w)?;
        let chosen = pb::Candidate {
            rank: 1,
            doctor_id: doctor.0,
            slot_id: slot.0,
            hospital_id: hospital.0,
            travel_minutes,
            wait_minutes,
            score: score as f64,
            explanation: format!("best open slot for the query (cost {score})"),
            start_ms: start.0,
            mode: booking.mode,
            ..Default::default()
        };
        Ok(Response::new(pb::AllocateSlotResponse {
            booking: Some(booking),
            chosen: Some(chosen),
            commit: Some(w.commit()),
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
    fn match_request_is_checked_and_mapped() {
        let mut r = pb::MatchSpecialistRequest {
            from_hospital_id: 1,
            specialty: "cardiology".into(),
            urgency: pb::Urgency::P3 as i32,
            window: Some(pb::TimeRange {
                start_ms: 100,
                end_ms: 200,
            }),
            ..Default::default()
        };
        let ask = match_ask(&r).unwrap();
        assert!(ask.any_mode);
        assert_eq!(ask.limit, MATCH_LIMIT_DEFAULT);
        assert_eq!(ask.query.latest, LogTime(199));
        r.min_tier = pb::Tier::Tertiary as i32;
        assert_eq!(
            match_ask(&r).unwrap().min_tier,
            Some(ninety_engine::Tier::Tertiary)
        );
        r.limit = 51;
        assert_eq!(field_of(match_ask(&r).err().unwrap()), "limit");
        r.limit = 0;
        r.sub_specialty = "interventional".into();
        assert_eq!(field_of(match_ask(&r).err().unwrap()), "sub_specialty");
        r.sub_specialty.clear();
        r.urgency = 0;
        assert_eq!(field_of(match_ask(&r).err().unwrap()), "urgency");
    }

    #[test]
    fn allocations_refuse_bounds_they_cannot_honour() {
        let mut b = pb::AllocateBedRequest {
            request_id: "b".into(),
            patient_ref: "3".repeat(32),
            from_hospital_id: 1,
            specialty: "cardiology".into(),
            urgency: pb::Urgency::P1 as i32,
            ttl_ms: 60_000,
            ..Default::default()
        };
        assert!(allocate_bed_request(&b).is_ok());
        b.max_travel_minutes = 30;
        assert_eq!(
            field_of(allocate_bed_request(&b).unwrap_err()),
            "max_travel_minutes"
        );
        b.max_travel_minutes = 0;
        b.ttl_ms = 0;
        assert_eq!(field_of(allocate_bed_request(&b).unwrap_err()), "ttl_ms");
        let mut s = pb::AllocateSlotRequest {
            request_id: "s".into(),
            patient_ref: "3".repeat(32),
            from_hospital_id: 1,
            specialty: "cardiology".into(),
            urgency: pb::Urgency::P4 as i32,
            mode: pb::Mode::InPerson as i32,
            window: Some(pb::TimeRange {
                start_ms: 1,
                end_ms: 10,
            }),
            ..Default::default()
        };
        assert!(allocate_slot_request(&s).is_ok());
        s.ttl_ms = 1_000;
        assert_eq!(field_of(allocate_slot_request(&s).unwrap_err()), "ttl_ms");
    }
}
