//! The `Watch` service (`ninety.v1.Watch`): the node's change feed ([`crate::feed`]) as a
//! server stream, filtered by kind, hospital and ward.
//!
//! Served from the answering node's own applied log, so any node serves the same sequence
//! (a follower's may trail the leader's). Each event carries its entry's index and its
//! position in the entry: a watcher that saw (i, p) resumes with `start_index = i,
//! start_position = p + 1`, on any node that still keeps index i, and misses nothing and
//! sees nothing twice. Statuses:
//!
//! * `INVALID_ARGUMENT`: a kind that is unspecified or unknown (naming `kinds.N`).
//! * `OUT_OF_RANGE`: `start_index` is older than what the node keeps; the message names
//!   `start_index` and the oldest kept index, also in the metadata `x-ninety-oldest-index`.
//! * `RESOURCE_EXHAUSTED`: the watcher fell [`crate::feed::WATCH_LAG_EVENTS_MAX`] events
//!   behind and was cut; `UNAVAILABLE`: the node installed a snapshot (skipping entries),
//!   is starting or is stopping. Each names where to resume, also in the metadata
//!   `x-ninety-resume-index` and `x-ninety-resume-position`.

use super::convert::{cap_chars, Field};
use crate::feed::{Cursor, Feed, FeedError, FeedEvent, Subscription};
use ninety_engine::referrals::ReferralReason;
use ninety_engine::{
    BedState, BlockReason, DoctorId, Event, EventKind, HoldId, HospitalId, PatientRef, Rejection,
    SlotId, WardId,
};
use ninety_proto::v1 as pb;
use ninety_proto::v1::watch_server::Watch;
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// Longest free-text reason carried in an event, in characters.
pub const REASON_CHARS_MAX: usize = 256;

/// The service: a handle on the node's feed.
pub struct WatchService {
    pub feed: Feed,
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = EventStream;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let r = request.get_ref();
        let filter = Filter::parse(r).map_err(super::bad)?;
        let start = Cursor {
            index: r.start_index,
            position: if r.start_index == 0 {
                0
            } else {
                r.start_position
            },
        };
        let subscription = self.feed.subscribe(start).map_err(feed_status)?;
        let stream =
            futures_util::stream::unfold(Some((subscription, filter)), |state| async move {
                let (mut sub, filter) = state?;
                match next_admitted(&mut sub, &filter).await {
                    Ok(event) => Some((Ok(event_pb(&event)), Some((sub, filter)))),
                    // The error ends the stream.
                    Err(e) => Some((Err(feed_status(e)), None)),
                }
            });
        Ok(Response::new(Box::pin(stream) as EventStream))
    }
}

/// The next event the filter admits.
async fn next_admitted(
    sub: &mut Subscription,
    filter: &Filter,
) -> Result<Arc<FeedEvent>, FeedError> {
    loop {
        let event = sub.next().await?;
        if filter.admits(&event.event) {
            return Ok(event);
        }
    }
}

/// What a watcher asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Empty: every kind.
    kinds: Vec<EventKind>,
    hospital: Option<HospitalId>,
    ward: Option<WardId>,
}

impl Filter {
    /// The request's filter; an unspecified or unknown kind is refused naming `kinds.N`.
    pub fn parse(r: &pb::WatchRequest) -> Result<Filter, Rejection> {
        let f = Field::top();
        let mut kinds = Vec::with_capacity(r.kinds.len());
        for (i, &k) in r.kinds.iter().enumerate() {
            let field = f.name(&format!("kinds.{i}"));
            let kind = match pb::EventKind::try_from(k) {
                Ok(pb::EventKind::BedHold) => EventKind::BedHold,
                Ok(pb::EventKind::Seat) => EventKind::Seat,
                Ok(pb::EventKind::WaitlistOffer) => EventKind::WaitlistOffer,
                Ok(pb::EventKind::Referral) => EventKind::Referral,
                Ok(pb::EventKind::Bed) => EventKind::Bed,
                Ok(pb::EventKind::Unspecified) => {
                    return Err(Rejection::invalid(field, "must name a kind"))
                }
                Err(_) => return Err(Rejection::invalid(field, format!("unknown kind {k}"))),
            };
            kinds.push(kind);
        }
        Ok(Filter {
            kinds,
            hospital: (r.hospital_id != 0).then_some(HospitalId(r.hospital_id)),
            ward: (r.ward_id != 0).then_some(WardId(r.ward_id)),
        })
    }

    /// Whether `event` passes: of a wanted kind, of the hospital (a referral's sender or
    /// receiver), of the ward (only bed and bed-hold events have one).
    pub fn admits(&self, event: &Event) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&event.kind()))
            && self.hospital.is_none_or(|h| event.concerns_hospital(h))
            && self.ward.is_none_or(|w| event.ward() == Some(w))
    }
}

/// The status that ends a watch, with where to resume in the metadata.
pub fn feed_status(e: FeedError) -> Status {
    let resumable = |code: tonic::Code, why: &str, at: Cursor| {
        let mut s = Status::new(
            code,
            format!(
                "{why}; resume with start_index = {}, start_position = {}",
                at.index, at.position
            ),
        );
        let md = s.metadata_mut();
        if let Ok(v) = at.index.to_string().parse() {
            md.insert("x-ninety-resume-index", v);
        }
        if let Ok(v) = at.position.to_string().parse() {
            md.insert("x-ninety-resume-position", v);
        }
        s
    };
    match e {
        FeedError::Compacted { start, oldest } => {
            let mut s = Status::out_of_range(format!(
                "start_index {start} is compacted: the oldest index this node keeps is \
                 {oldest} (it keeps watch_events_retained events, from its last snapshot on)"
            ));
            if let Ok(v) = oldest.to_string().parse() {
                s.metadata_mut().insert("x-ninety-oldest-index", v);
            }
            s
        }
        FeedError::Starting => Status::unavailable(
            "the node has not applied its log yet: retry, or watch on another node",
        ),
        FeedError::Lagged { resume } => resumable(
            tonic::Code::ResourceExhausted,
            "the watcher fell too far behind the node's change feed and was cut",
            resume,
        ),
        FeedError::Gap { resume } => resumable(
            tonic::Code::Unavailable,
            "the node installed a snapshot and skipped entries; watch on another node",
            resume,
        ),
        FeedError::Closed { resume } => {
            resumable(tonic::Code::Unavailable, "the node is stopping", resume)
        }
    }
}

/// The wire form of one event.
pub fn event_pb(e: &FeedEvent) -> pb::WatchEvent {
    let mut out = pb::WatchEvent {
        log_index: e.at.index,
        position: e.at.position,
        log_time_ms: e.log_time_ms,
        kind: kind_pb(e.event.kind()) as i32,
        state: e.event.state_name().to_string(),
        ..pb::WatchEvent::default()
    };
    fill(&mut out, &e.event);
    out
}

fn kind_pb(k: EventKind) -> pb::EventKind {
    match k {
        EventKind::BedHold => pb::EventKind::BedHold,
        EventKind::Seat => pb::EventKind::Seat,
        EventKind::WaitlistOffer => pb::EventKind::WaitlistOffer,
        EventKind::Referral => pb::EventKind::Referral,
        EventKind::Bed => pb::EventKind::Bed,
    }
}

/// Copies the event's ids and details into `out`.
fn fill(out: &mut pb::WatchEvent, event: &Event) {
    match event {
        Event::ReferralMoved {
            referral,
            from,
            to,
            reason,
            ..
        } => {
            (out.referral_id, out.hospital_id) = (referral.0, from.0);
            out.to_hospital_id = to.map_or(0, |h| h.0);
            out.reason = reason_text(reason);
        }
        Event::BedChanged {
            bed,
            ward,
            hospital,
            state,
        } => {
            (out.bed_id, out.ward_id, out.hospital_id) = (bed.0, ward.0, hospital.0);
            if let BedState::Blocked { reason } = state {
                out.reason = block_reason(*reason).to_string();
            }
        }
        _ => fill_hold(out, event),
    }
}

/// The fields of a bed-hold or seat event.
fn fill_hold(out: &mut pb::WatchEvent, event: &Event) {
    match *event {
        Event::BedHoldPlaced {
            hold,
            bed,
            ward,
            hospital,
            patient,
            expires_at,
        } => {
            (out.hold_id, out.bed_id, out.ward_id) = (hold.0, bed.0, ward.0);
            (out.hospital_id, out.expires_ms) = (hospital.0, expires_at.0);
            out.patient_ref = patient.to_string();
        }
        Event::BedHoldResolved {
            hold,
            bed,
            ward,
            hospital,
            patient,
            ..
        } => {
            (out.hold_id, out.bed_id, out.ward_id) = (hold.0, bed.0, ward.0);
            out.hospital_id = hospital.0;
            out.patient_ref = patient.to_string();
        }
        Event::SeatHeld {
            hold,
            slot,
            doctor,
            hospital,
            patient,
            expires_at,
            consult,
        } => {
            fill_seat(out, (hold, slot, doctor, hospital), patient);
            out.expires_ms = expires_at.0;
            out.consult_id = consult.map_or(0, |c| c.0);
        }
        Event::SeatOffered {
            hold,
            slot,
            doctor,
            hospital,
            patient,
            expires_at,
        } => {
            fill_seat(out, (hold, slot, doctor, hospital), patient);
            out.expires_ms = expires_at.0;
        }
        Event::SeatChanged {
            hold,
            slot,
            doctor,
            hospital,
            patient,
            state,
        } => {
            fill_seat(out, (hold, slot, doctor, hospital), patient);
            // Why a booking ended when its patient did not end it.
            if matches!(state, ninety_engine::SeatState::Withdrawn { .. }) {
                out.reason = "slot_withdrawn".into();
            }
        }
        Event::ReferralMoved { .. } | Event::BedChanged { .. } => {}
    }
}

fn fill_seat(
    out: &mut pb::WatchEvent,
    (hold, slot, doctor, hospital): (HoldId, SlotId, DoctorId, HospitalId),
    patient: PatientRef,
) {
    (out.hold_id, out.slot_id, out.doctor_id) = (hold.0, slot.0, doctor.0);
    out.hospital_id = hospital.0;
    out.patient_ref = patient.to_string();
}

/// A referral's reason as the feed carries it: a code, then the text when there is one.
pub fn reason_text(r: &ReferralReason) -> String {
    let text = match r {
        ReferralReason::AwaitingTriage => "awaiting_triage".to_string(),
        ReferralReason::AwaitingMatch => "awaiting_match".to_string(),
        ReferralReason::NoCapacity(why) => format!("no_capacity: {why}"),
        ReferralReason::HoldExpired(hold) => format!("hold_expired: {}", hold.0),
        ReferralReason::Stated(why) => format!("stated: {why}"),
        ReferralReason::DeadlinePassed => "deadline_passed".to_string(),
        ReferralReason::Remote { region, note } => format!("remote: {region}: {note}"),
    };
    cap_chars(&text, REASON_CHARS_MAX)
}

fn block_reason(r: BlockReason) -> &'static str {
    match r {
        BlockReason::Isolation => "isolation",
        BlockReason::Maintenance => "maintenance",
        BlockReason::NoStaff => "no_staff",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ninety_engine::{LogTime, ReferralId, ReferralState};

    fn referral(from: u32, to: Option<u32>) -> Event {
        Event::ReferralMoved {
            referral: ReferralId(1),
            from: HospitalId(from),
            to: to.map(HospitalId),
            state: ReferralState::Triaged,
            reason: ReferralReason::NoCapacity("no icu bed".into()),
        }
    }

    #[test]
    fn an_unnamed_or_unknown_kind_is_refused_naming_it() {
        let r = pb::WatchRequest {
            kinds: vec![pb::EventKind::Seat as i32, 0],
            ..Default::default()
        };
        let err = Filter::parse(&r).expect_err("unspecified");
        assert_eq!(super::super::rejection_pb(&err).field, "kinds.1");
        let r = pb::WatchRequest {
            kinds: vec![99],
            ..Default::default()
        };
        let err = Filter::parse(&r).expect_err("unknown");
        assert_eq!(super::super::rejection_pb(&err).field, "kinds.0");
    }

    #[test]
    fn a_referral_matches_its_sender_and_its_receiver() {
        let r = pb::WatchRequest {
            hospital_id: 7,
            kinds: vec![pb::EventKind::Referral as i32],
            ..Default::default()
        };
        let f = Filter::parse(&r).expect("valid");
        assert!(f.admits(&referral(7, None)));
        assert!(f.admits(&referral(3, Some(7))));
        assert!(!f.admits(&referral(3, Some(4))));
        let ward = pb::WatchRequest {
            ward_id: 2,
            ..Default::default()
        };
        assert!(!Filter::parse(&ward)
            .expect("valid")
            .admits(&referral(7, None)));
    }

    #[test]
    fn an_event_on_the_wire_names_its_entry_and_reason() {
        let e = FeedEvent {
            at: Cursor {
                index: 12,
                position: 3,
            },
            log_time_ms: LogTime(5).0,
            event: referral(1, Some(2)),
        };
        let pb = event_pb(&e);
        assert_eq!((pb.log_index, pb.position, pb.log_time_ms), (12, 3, 5));
        assert_eq!(pb.kind, pb::EventKind::Referral as i32);
        assert_eq!(pb.state, "triaged");
        assert_eq!((pb.hospital_id, pb.to_hospital_id), (1, 2));
        assert_eq!(pb.reason, "no_capacity: no icu bed");
    }

    #[test]
    fn a_compacted_start_is_out_of_range_naming_the_oldest_index() {
        let s = feed_status(FeedError::Compacted {
            start: 3,
            oldest: 41,
        });
        assert_eq!(s.code(), tonic::Code::OutOfRange);
        assert!(s.message().contains("start_index 3"), "{}", s.message());
        assert!(s.message().contains("41"), "{}", s.message());
        assert_eq!(s.metadata().get("x-ninety-oldest-index").unwrap(), "41");
        let s = feed_status(FeedError::Lagged {
            resume: Cursor {
                index: 9,
                position: 2,
            },
        });
        assert_eq!(s.code(), tonic::Code::ResourceExhausted);
        assert_eq!(s.metadata().get("x-ninety-resume-index").unwrap(), "9");
        assert_eq!(s.metadata().get("x-ninety-resume-position").unwrap(), "2");
    }
}
